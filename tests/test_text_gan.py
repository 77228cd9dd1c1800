"""The token-row GANs: the Gumbel-softmax relaxation against the categorical distribution it
relaxes (Jang et al. 2017; Kusner & Hernandez-Lobato 2016), the temperature schedule, the
n-gram Jensen-Shannon divergence (Gulrajani et al. 2017) and the grammar metric by hand, the
unigram baseline, the gradient penalty on one-hot interpolates by hand, the k-then-1 step,
determinism and exact resume of both families, the samplers, the families' rules at params
load, and (slow) both families through prepare -> fit-evaluator -> train -> sample -> evaluate."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch.testing import assert_close

from genlab.config import ConfigError, validate_params
from genlab.data.text import GRAMMAR_CHARS, TEXT_CHARS
from genlab.families import FAMILIES
from genlab.families.gumbel_gan.gumbel import annealed_tau, gumbel_noise, gumbel_softmax
from genlab.metrics.scores import Context, score
from genlab.metrics.text import (
    _grammar,
    _ngram,
    js_divergence,
    ngram_ids,
    unigram_baseline,
    unigram_rows,
)
from genlab.nets.sequence import RecurrentGenerator, SequenceCritic, SequenceGenerator, one_hot
from genlab.objectives.regularizers import GradientPenalty
from genlab.train.loop import build_trainer
from tests.conftest import restore_training, tiny_params_dict, training_snapshot

LN2 = math.log(2)


# ---------------------------------------------------------------------------- Gumbel-softmax
def test_gumbel_max_draws_follow_the_categorical_distribution():
    """argmax(log pi + g) over 40000 seeded draws: a chi-square test at 3 degrees of freedom
    (99.9% quantile 16.27)."""
    pi = torch.tensor([0.5, 0.3, 0.15, 0.05])
    n = 40_000
    g = gumbel_noise((n, 4), torch.Generator().manual_seed(0))
    counts = torch.bincount((pi.log() + g).argmax(-1), minlength=4).double()
    expected = n * pi.double()
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    assert chi2 < 16.27


def test_soft_samples_tend_to_one_hot_draws_as_tau_falls_and_to_uniform_as_it_grows():
    pi = torch.tensor([0.6, 0.25, 0.1, 0.05])
    g = gumbel_noise((20_000, 4), torch.Generator().manual_seed(1))
    cold = gumbel_softmax(pi.log(), 0.02, g)
    assert_close(cold.mean(0), pi, atol=0.015, rtol=0)  # E[y] -> pi as tau -> 0
    assert float(cold.amax(-1).mean()) > 0.97  # nearly one-hot
    warm = gumbel_softmax(pi.log(), 1.0, g)
    assert float(warm.amax(-1).mean()) < 0.9
    hot = gumbel_softmax(pi.log(), 1000.0, g)
    assert_close(hot, torch.full_like(hot, 0.25), atol=0.01, rtol=0)
    assert_close(warm.sum(-1), torch.ones(20_000))


def test_straight_through_is_one_hot_forward_and_the_soft_gradient_backward():
    logits = torch.tensor([[1.0, 0.2, -0.5], [0.0, 2.0, 0.3]], requires_grad=True)
    g = gumbel_noise((2, 3), torch.Generator().manual_seed(2))
    w = torch.tensor([[1.0, -2.0, 0.5], [3.0, 1.0, -1.0]])
    hard = gumbel_softmax(logits, 0.7, g, hard=True)
    soft = gumbel_softmax(logits, 0.7, g)
    assert torch.equal(hard.detach(), torch.nn.functional.one_hot(soft.argmax(-1), 3).float())
    (grad_hard,) = torch.autograd.grad((w * hard).sum(), logits)
    (grad_soft,) = torch.autograd.grad((w * soft).sum(), logits)
    assert_close(grad_hard, grad_soft)
    # by hand: d softmax(u / tau) / d u = (diag(y) - y y^T) / tau
    y = soft.detach()
    by_hand = torch.stack([(torch.diag(y[i]) - torch.outer(y[i], y[i])) @ w[i] / 0.7
                           for i in range(2)])  # fmt: skip
    assert_close(grad_soft, by_hand)


def test_the_temperature_anneals_geometrically_from_start_to_end():
    assert annealed_tau(0, 11, 2.0, 0.5) == 2.0
    assert annealed_tau(10, 11, 2.0, 0.5) == pytest.approx(0.5)
    assert annealed_tau(5, 11, 2.0, 0.5) == pytest.approx(1.0)  # sqrt(2 * 0.5)
    assert annealed_tau(50, 11, 2.0, 0.5) == pytest.approx(0.5)  # held after the run
    assert annealed_tau(0, 1, 2.0, 0.5) == 0.5


# ---------------------------------------------------------------------------- n-gram metric
META_TOY = {"vocabulary": "ab", "pad": None, "kind": "tokens", "fields": {"x": {"kind": "tokens"}}}


def _ctx(samples, test, meta=META_TOY):
    return Context(torch.tensor(samples), {"x": torch.tensor(test)}, meta, None, None)


def test_js_divergence_by_hand_on_two_tiny_sets():
    """Samples "aba", test "bba" (a = 0, b = 1):
    1-grams: P = (2/3, 1/3), Q = (1/3, 2/3), M = (1/2, 1/2);
    2-grams: P = {ab, ba}, Q = {bb, ba}, each 1/2, M = {ab: 1/4, ba: 1/2, bb: 1/4};
    3-grams: {aba} vs {bba}, disjoint."""
    out = _ngram(_ctx([[0, 1, 0]], [[1, 1, 0]]))
    js1 = 0.5 * (2 / 3 * math.log(4 / 3) + 1 / 3 * math.log(2 / 3)) * 2
    js2 = 0.5 * (0.5 * math.log(2)) + 0.5 * (0.5 * math.log(2))
    assert out["js_1"] == pytest.approx(js1)
    assert out["js_2"] == pytest.approx(js2)
    assert out["js_3"] == pytest.approx(LN2)
    assert "js_4" not in out  # rows of 3 characters have no 4-grams


def test_js_is_zero_for_equal_distributions_and_bounded_by_ln2():
    rows = [[0, 1, 1, 0, 1], [1, 1, 0, 0, 0]]
    out = _ngram(_ctx(rows, rows[::-1] + rows))  # the same n-gram distribution
    assert all(v == pytest.approx(0.0, abs=1e-12) for v in out.values())
    disjoint = _ngram(_ctx([[0, 0, 0, 0]], [[1, 1, 1, 1]]))
    assert all(v == pytest.approx(LN2) for v in disjoint.values())
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randint(2, (20, 8), generator=gen), torch.randint(2, (30, 8), generator=gen)
    for v in _ngram(_ctx(a.tolist(), b.tolist())).values():
        assert 0 <= v <= LN2
    p, q = torch.tensor([3.0, 1.0, 0.0]), torch.tensor([1.0, 1.0, 2.0])
    assert js_divergence(p, q) == pytest.approx(js_divergence(q, p))


def test_ngram_ids_number_equal_ngrams_alike_within_rows_only():
    tokens = torch.tensor([[0, 1, 0, 1], [1, 0, 1, 1]])
    ids = ngram_ids(tokens, 2)  # 01 10 01 | 10 01 11
    assert ids.shape == (2, 3)
    assert ids[0, 0] == ids[0, 2] == ids[1, 1] and ids[0, 1] == ids[1, 0]
    assert len(ids.unique()) == 3  # no "10" across the row boundary counts extra
    assert torch.equal(ngram_ids(tokens, 1), tokens)
    wide = torch.tensor([[48, 3, 48, 3, 7]])  # a large vocabulary: ids stay dense
    assert sorted(ngram_ids(wide, 4).flatten().tolist()) == [0, 1]


def test_a_bootstrap_replicate_equals_the_metric_on_the_resampled_rows():
    gen = torch.Generator().manual_seed(3)
    samples, test = (
        torch.randint(3, (12, 6), generator=gen),
        torch.randint(3, (9, 6), generator=gen),
    )
    meta = {**META_TOY, "vocabulary": "abc"}
    base = Context(samples, {"x": test}, meta, None, None)
    _ngram(base)
    ids_s, ids_t = torch.randint(12, (12,), generator=gen), torch.randint(9, (9,), generator=gen)
    view = _ngram(base.resample(ids_s, ids_t))
    direct = _ngram(Context(samples[ids_s], {"x": test[ids_t]}, meta, None, None))
    assert view == pytest.approx(direct)


def test_metrics_skip_datasets_whose_x_is_not_token_rows():
    word = {"vocabulary": "ab", "fields": {"x": {"kind": "word"}, "text": {"kind": "tokens"}}}
    ctx = Context(torch.zeros(2, 1, 8, 8), {"x": torch.zeros(2, 1, 8, 8)}, word, None, None)
    assert _ngram(ctx) == {} and _grammar(ctx) == {}


GRAMMAR_META = {"vocabulary": GRAMMAR_CHARS, "pad": " ", "grammar": "arithmetic",
                "kind": "tokens", "fields": {"x": {"kind": "tokens"}}}  # fmt: skip


def _rows(*texts: str) -> torch.Tensor:
    return torch.tensor([[GRAMMAR_CHARS.index(c) for c in t.ljust(6)] for t in texts])


def test_grammar_metric_by_hand():
    samples = _rows("x+y", "x+y", "(z)", "x+", " x", "y*(x)")  # valid: 1, 1, 1, 0, 0, 1
    ctx = Context(samples, {"x": _rows("x")}, GRAMMAR_META, None, None)
    assert _grammar(ctx) == {"valid": pytest.approx(4 / 6), "distinct_valid": 3}
    assert _grammar(_ctx([[0, 1]], [[1, 0]])) == {}  # no grammar, no metric


def test_score_gives_intervals_for_js_and_valid_but_not_for_distinct_valid():
    params = validate_params(tiny_params_dict())
    samples = _rows("x+y", "x+", "(z)", "y", "z-x", "((")
    ctx = Context(samples, {"x": _rows("x", "y+z", "(x)", "x*y")}, GRAMMAR_META, None, params)
    out = score(ctx, ["ngram", "grammar"], replicates=30, seed=0)
    assert out["valid"] == pytest.approx(4 / 6) and out["distinct_valid"] == 4
    assert "distinct_valid_ci_low" not in out
    for key in ("js_1", "js_4", "valid"):
        assert out[f"{key}_ci_low"] <= out[f"{key}_ci_high"]
    assert 0 <= out["valid_ci_low"] and out["valid_ci_high"] <= 1
    assert 0 <= out["js_4_ci_low"] and out["js_4_ci_high"] <= LN2


def test_the_unigram_baseline_draws_training_frequencies_iid_and_seeded():
    train = torch.tensor([[0, 0, 0, 1]] * 50)  # a: 3/4, b: 1/4
    rows = unigram_rows(train, 4000, 3, seed=0)
    assert rows.shape == (4000, 4) and rows.dtype == torch.int64
    freq = torch.bincount(rows.flatten(), minlength=3).double() / rows.numel()
    assert_close(freq, torch.tensor([0.75, 0.25, 0.0], dtype=torch.float64), atol=0.01, rtol=0)
    first = rows[:, 0].double().mean()
    assert first == pytest.approx(0.25, abs=0.02)  # no position is special
    assert torch.equal(rows, unigram_rows(train, 4000, 3, seed=0))
    name, saved = unigram_baseline({"x": train}, {"x": train}, {"vocabulary": "abc"}, 7, 1)
    assert name == "unigram" and saved["x"].shape == (7, 4)


# ---------------------------------------------------------------------------- networks
def test_generators_emit_distributions_and_the_recurrent_one_feeds_back():
    torch.manual_seed(0)
    z = torch.randn(3, 5)
    conv = SequenceGenerator(5, length=7, vocab_size=4, width=8, blocks=2)
    p = conv(z)
    assert p.shape == (3, 7, 4)
    assert_close(p.sum(-1), torch.ones(3, 7))
    assert_close(p, torch.softmax(conv.logits(z), -1))
    lstm = RecurrentGenerator(5, length=7, vocab_size=4, width=8)
    assert_close(lstm(z).sum(-1), torch.ones(3, 7))
    seen: list[torch.Tensor] = []

    def forced(token: int):
        def relax(logits, t):
            seen.append(logits)
            return one_hot(torch.full((len(logits),), token if t == 0 else 0), 4)

        return relax

    lstm.rows(z, forced(1))
    first = [s.clone() for s in seen]
    seen.clear()
    lstm.rows(z, forced(2))
    assert torch.equal(first[0], seen[0])  # position 0 does not see what it emits
    assert not torch.allclose(first[1], seen[1])  # position 1 reads position 0's output
    critic = SequenceCritic(length=7, vocab_size=4, width=8, blocks=1)
    assert critic(p).shape == (3,)


def test_gradient_penalty_on_one_hot_interpolates_by_hand():
    """D(x) = sum_{l,v} W x^2: grad = 2 W x at x_hat = a real + (1 - a) fake, a ~ U(0, 1) per
    row from the generator; GP = mean over rows of (||grad|| - 1)^2."""
    W = torch.tensor([[0.5, -1.0, 2.0], [1.0, 0.0, -0.5]])
    D = lambda x: (W * x**2).sum(dim=(1, 2))  # noqa: E731
    real = one_hot(torch.tensor([[0, 2], [1, 1]]), 3)
    fake = torch.softmax(torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]],
                                       [[0.0, 0.0, 2.0], [0.5, 0.5, 0.0]]]), -1)  # fmt: skip
    penalty, stats = GradientPenalty().penalty(D, real, fake, torch.Generator().manual_seed(0))
    a = torch.rand((2, 1, 1), generator=torch.Generator().manual_seed(0))
    x_hat = a * real + (1 - a) * fake
    norms = (2 * W * x_hat).flatten(1).norm(dim=1)
    assert_close(penalty, ((norms - 1) ** 2).mean())
    assert stats["gp_grad_norm"] == pytest.approx(float(norms.mean()))


# ---------------------------------------------------------------------------- training
TOKENS_FIELDS = {"x": {"kind": "tokens"}}


def _meta(name: str, vocab: str, length: int, **extra) -> dict:
    return {"name": name, "kind": "tokens", "vocabulary": vocab, "length": length,
            "shape": [length], "fields": TOKENS_FIELDS, **extra}  # fmt: skip


TEXT_META = _meta("text", TEXT_CHARS, 8, pad=None)
GRAMMAR_TOY = _meta("grammar", GRAMMAR_CHARS, 6, pad=" ", grammar="arithmetic")


def _split(meta: dict, n: int = 48) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return {"x": torch.randint(len(meta["vocabulary"]), (n, meta["length"]), generator=gen)}


WGAN = {"dataset": "text", "family": "text_wgan", "arch": "conv", "width": 8,
        "residual_blocks": 1, "latent_dim": 4, "batch_size": 8, "steps": 4, "d_steps": 2,
        "regularizers": {"gradient_penalty": {"weight": 10}},
        "optimizer": {"lr": 1e-3, "betas": [0.5, 0.9]}}  # fmt: skip
GUMBEL = {"dataset": "grammar", "family": "gumbel_gan", "arch": "lstm", "width": 8,
          "residual_blocks": 1, "latent_dim": 4, "batch_size": 8, "steps": 4, "gumbel_hard": True,
          "tau_start": 2.0, "tau_end": 0.5, "regularizers": {"r1": {"weight": 1.0}},
          "optimizer_d": {"lr": 2e-4, "betas": [0.5, 0.999]}}  # fmt: skip
CASES = {"text_wgan": (WGAN, TEXT_META), "gumbel_gan": (GUMBEL, GRAMMAR_TOY)}


def variant(**cfg):
    return validate_params({"variants": {"v": cfg}}).variant("v")


def steps(cfg, meta, n: int, state: dict | None = None):
    trainer, batches, _, _ = build_trainer(cfg, _split(meta), meta, 0, "cpu", 1)
    if state is not None:
        restore_training(state, trainer, batches)
    stats = [trainer.step(batches) for _ in range(n)]
    return trainer, batches, stats


@pytest.mark.parametrize("family", list(CASES))
def test_training_steps_are_deterministic_and_resume_exactly(family):
    raw, meta = CASES[family]
    cfg = variant(**raw)
    a, _, stats_a = steps(cfg, meta, 4)
    _, _, stats_b = steps(cfg, meta, 4)
    assert stats_a == stats_b
    assert all(math.isfinite(v) for v in stats_a[-1].values())
    first, batches, _ = steps(cfg, meta, 2)
    resumed, _, stats_r = steps(cfg, meta, 2, state=training_snapshot(first, batches))
    assert stats_r == stats_a[2:]
    for key in ("G", "D"):
        after = resumed.modules[key].state_dict()
        for name, p in a.modules[key].state_dict().items():
            assert torch.equal(p, after[name]), f"{key}.{name} differs after resuming"


def test_the_critic_is_updated_d_steps_times_per_generator_update():
    cfg = variant(**{**WGAN, "d_steps": 3})
    trainer, batches, stats = steps(cfg, TEXT_META, 2)
    assert (trainer.d_updates, trainer.g_updates) == (6, 2)
    assert batches.state_dict()["pos"] == 6 * 8  # one real batch per critic update
    assert {"loss_d", "loss_g", "wasserstein_estimate", "gp_grad_norm", "grad_norm_d",
            "grad_norm_g", "fake_confidence"} <= set(stats[0])  # fmt: skip
    assert trainer.opt_d.param_groups[0]["betas"] == (0.5, 0.9)


def test_the_gumbel_trainer_anneals_tau_over_the_run_and_uses_d_s_optimizer():
    cfg = variant(**GUMBEL)
    trainer, _, stats = steps(cfg, GRAMMAR_TOY, 4)
    taus = [s["tau"] for s in stats]
    assert taus[0] == 2.0 and taus[-1] == pytest.approx(0.5)
    assert taus == sorted(taus, reverse=True)
    assert trainer.opt_d.param_groups[0]["lr"] == 2e-4
    assert trainer.opt_g.param_groups[0]["lr"] == cfg.optimizer.lr
    assert "r1_grad_norm" in stats[0]


@pytest.mark.parametrize("family", list(CASES))
def test_samplers_are_seeded_and_give_token_rows(family):
    raw, meta = CASES[family]
    cfg = variant(**raw)
    trainer, _, _ = steps(cfg, meta, 1)
    G = trainer.G.eval()
    sampler = FAMILIES.get(family).sampler({"G": G}, cfg, meta)

    def draw(seed: int) -> torch.Tensor:
        return sampler.generate(sampler.inputs(seed, 10, "cpu"), batch_size=4)

    x = draw(5)
    assert x.shape == (10, meta["length"]) and x.dtype == torch.int64
    assert torch.equal(x, draw(5))
    assert int(x.max()) < len(meta["vocabulary"])
    path = sampler.interpolation(sampler.inputs(5, 10, "cpu"), rows=2, steps=3, batch_size=4)
    assert path.shape == (6, meta["length"])
    assert set(sampler.saved(sampler.inputs(5, 10, "cpu"))) == {"z"}


def test_the_wgan_sampler_decodes_the_argmax_of_g_and_the_gumbel_one_draws():
    cfg = variant(**{**WGAN, "arch": "conv"})
    trainer, _, _ = steps(cfg, TEXT_META, 1)
    G = trainer.G.eval()
    inputs = FAMILIES.get("text_wgan").sampler({"G": G}, cfg, TEXT_META).inputs(0, 6, "cpu")
    wgan = FAMILIES.get("text_wgan").sampler({"G": G}, cfg, TEXT_META).generate(inputs, 4)
    assert torch.equal(wgan, G(inputs["z"]).argmax(-1))
    gumbel = FAMILIES.get("gumbel_gan").sampler({"G": G}, cfg, TEXT_META)
    noisy = gumbel.inputs(0, 6, "cpu")
    assert torch.equal(noisy["z"], inputs["z"])
    expected = (G.logits(noisy["z"]) + noisy["noise"]).argmax(-1)
    assert torch.equal(gumbel.generate(noisy, 4), expected)


# ---------------------------------------------------------------------------- the families' rules
def test_a_dataset_without_token_rows_is_refused_at_params_load():
    for raw in (WGAN, GUMBEL):
        with pytest.raises(ConfigError, match="dataset = 'digits'.*allowed datasets:.*grammar"):
            variant(**{**raw, "dataset": "digits"})


def test_text_wgan_needs_a_lipschitz_critic_and_gumbel_tau_must_anneal_down():
    with pytest.raises(ConfigError, match="regularizers = \\{\\}.*gradient_penalty"):
        variant(**{**WGAN, "regularizers": {}})
    with pytest.raises(ConfigError, match="tau_end = 3.0 exceeds tau_start = 2.0"):
        variant(**{**GUMBEL, "tau_end": 3.0})
    with pytest.raises(ConfigError, match="tau_start"):
        variant(**{**WGAN, "tau_start": 3.0})  # a gumbel_gan key has no effect on text_wgan
    with pytest.raises(ConfigError, match="r1"):
        variant(**{**WGAN, "regularizers": {"r1": {"weight": 1}}})


def test_family_declarations():
    wgan, gumbel = FAMILIES.get("text_wgan"), FAMILIES.get("gumbel_gan")
    assert variant(**WGAN).loss == "wasserstein" and variant(**GUMBEL).loss == "nonsaturating"
    assert wgan.saved_modules == ("G",) and gumbel.saved_modules == ("G",)
    assert wgan.sections == gumbel.sections and "Text" in wgan.sections
    assert set(wgan.archs.names()) == {"conv", "lstm"}
    cfg = {k: v for k, v in GUMBEL.items() if k not in ("tau_start", "tau_end", "gumbel_hard")}
    v = variant(**cfg)
    assert (v.tau_start, v.tau_end, v.gumbel_hard) == (2.0, 0.5, False)


# ---------------------------------------------------------------------------- end to end
def _e2e_params(dataset: str, raw: dict):
    tiny = tiny_params_dict()
    tiny["data"] = {dataset: {"n_train": 200, "n_test": 100}}
    tiny["variants"] = {"v": {**raw, "dataset": dataset, "steps": 6, "batch_size": 16,
                              "checkpoint_every": 3}}  # fmt: skip
    tiny["sample"] = {"n": 150, "grid": 16, "interpolation_steps": 4, "batch_size": 100}
    tiny["evaluate"] = {"metrics": ["ngram", "grammar"], "n": 100, "bootstrap": 20}
    return validate_params(tiny)


@pytest.mark.slow
@pytest.mark.parametrize(("family", "dataset"), [("text_wgan", "text"), ("gumbel_gan", "grammar")])
def test_prepare_fit_evaluator_train_sample_evaluate(tmp_path, family, dataset):
    from genlab.data import prepare_dataset
    from genlab.evaluate import evaluate_variant, fit_evaluator_stage
    from genlab.paths import Paths
    from genlab.sample import sample_variant
    from genlab.train.loop import train_variant

    params = _e2e_params(dataset, CASES[family][0])
    prepare_dataset(dataset, params.dataset_cfg(dataset), tmp_path, params.seed)
    ev = fit_evaluator_stage(params, dataset, tmp_path)
    assert ev["baseline_name"] == "unigram" and ev["test_accuracy"] is None
    keys = ["js_1", "js_2", "js_3", "js_4"] + (["valid"] if dataset == "grammar" else [])
    for row in ("floor", "baseline"):
        for key in keys:
            assert ev[row][f"{key}_ci_low"] <= ev[row][f"{key}_ci_high"]
    assert ev["baseline"]["js_4"] > ev["floor"]["js_4"]
    if dataset == "grammar":
        assert ev["floor"]["valid"] == 1.0 and ev["baseline"]["valid"] < 0.2
    assert json.loads(Paths(tmp_path).evaluator_metrics(dataset).read_text())["dataset"] == dataset
    assert Paths(tmp_path).evaluator(dataset).is_file()

    assert train_variant(params, "v", tmp_path)["steps"] == 6
    out = sample_variant(params, "v", tmp_path)
    saved = torch.load(out["samples"], weights_only=True)
    assert saved["x"].shape == (150, 32 if dataset == "text" else 12)
    assert saved["x"].dtype == torch.int64
    for figure in ("grid.png", "interpolation.png"):
        assert (out["dir"] / figure).stat().st_size > 1000
    metrics = evaluate_variant(params, "v", tmp_path)
    assert metrics["n_samples"] == 100 and metrics["n_reference"] == 100
    for key in keys:
        assert metrics[f"{key}_ci_low"] <= metrics[f"{key}_ci_high"]
        assert 0 <= metrics[key] <= (1 if key == "valid" else LN2)
    assert ("distinct_valid" in metrics) == (dataset == "grammar")
