"""The handwriting family (Alonso et al. 2019; ScrabbleGAN, Fogel et al. 2020): the filter-bank
generator's width and locality, the gradient balancing by hand, R learning from real words only,
variable-length CTC without padding leaks, deterministic steps with an exact resume, the
seeded sampler and figures, the family's rules, and a tiny end-to-end run."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from torch.testing import assert_close

from genlab.config import validate_params
from genlab.data.strings import digit_strings
from genlab.errors import ConfigError
from genlab.families import FAMILIES
from genlab.families.handwriting.figures import WordSampler, handwriting_figures
from genlab.families.handwriting.nets import ScrabbleGenerator, WordDiscriminator, column_mask
from genlab.families.handwriting.trainer import (
    HandwritingTrainer,
    balance_weight,
    ctc_term,
    figure_texts,
)
from genlab.nets.recognizer import Recognizer
from genlab.train.loop import build_trainer
from tests.conftest import restore_training, tiny_params_dict, training_snapshot

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def words():
    """A small digit_strings (train, test, meta): 8 x 48 words of 1 to 6 digits."""
    cfg = {"n_train": 64, "n_test": 16, "min_length": 1, "max_length": 6,
           "glyph_test_fraction": 0.2}  # fmt: skip
    return digit_strings(cfg, None, 0)


def variant(**overrides):
    cfg = {"dataset": "digit_strings", "family": "handwriting", "arch": "scrabble",
           "latent_dim": 8, "width": 16, "recognizer_width": 4, "steps": 4, "batch_size": 8,
           **overrides}  # fmt: skip
    return validate_params({"variants": {"v": cfg}}).variant("v")


def generator(seed: int = 0) -> ScrabbleGenerator:
    torch.manual_seed(seed)
    return ScrabbleGenerator(vocab_size=11, latent_dim=8, width=16).eval()


# ---------------------------------------------------------------- the generator
def test_the_width_follows_the_text_and_padding_is_background():
    G = generator()
    z = torch.randn(3, 8)
    text = torch.tensor([[3, 4, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6], [7, 0, 0, 0, 0, 0]])
    lengths = torch.tensor([2, 6, 1])
    x = G(z, text, lengths)
    assert x.shape == (3, 1, 8, 48) and x.abs().max() <= 1
    assert torch.equal(x[0, :, :, 16:], torch.full((1, 8, 32), -1.0))
    assert torch.equal(x[2, :, :, 8:], torch.full((1, 8, 40), -1.0))
    assert (x[0, :, :, :16] != -1).float().mean() > 0.9  # the word itself is drawn
    # a word never depends on its padding: the same 2 characters given as a 2-token row
    assert_close(G(z[:1], text[:1, :2], lengths[:1]), x[:1, :, :, :16])


def test_changing_a_character_changes_mostly_its_own_columns():
    """Receptive field: +-1 column per 3 x 3 conv, doubled by each later upsampling: the two
    convs at 4 px/char reach 2 * 2 = 4 px, the two at 8 px/char and the output conv 3 px, so
    character 1 (columns 8..15) reaches columns 1..22 and nothing else."""
    G = generator(1)
    z = torch.randn(1, 8)
    text = torch.tensor([[2, 5, 9, 0, 0, 0]])
    other = text.clone()
    other[0, 1] = 3
    lengths = torch.tensor([3])
    diff = (G(z, other, lengths) - G(z, text, lengths)).abs()[0, 0].sum(0)  # per column
    assert diff[:1].max() == 0 and diff[23:].max() == 0
    own, near = diff[8:16].mean(), torch.cat([diff[1:8], diff[16:23]]).mean()
    assert own > 2 * near > 0


def test_column_mask_by_hand():
    mask = column_mask(torch.tensor([1, 3]), 2, 8)
    assert mask.shape == (2, 1, 1, 8)
    assert mask[:, 0, 0].tolist() == [[1, 1, 0, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1, 0, 0]]


def test_an_impossible_char_width_is_refused():
    from genlab.errors import ArchitectureError

    with pytest.raises(ArchitectureError, match="char_width = 6"):
        ScrabbleGenerator(vocab_size=11, latent_dim=4, char_width=6)


def test_discriminator_gives_patch_logits_for_any_length():
    D = WordDiscriminator(height=8, width=8)
    assert D(torch.randn(2, 1, 8, 48)).shape == (2, 1, 1, 12)
    assert D(torch.randn(2, 1, 8, 16)).shape == (2, 1, 1, 4)


# ---------------------------------------------------------------- gradient balancing
def test_balance_weight_by_hand():
    """alpha = gamma * std(grad_adv) / std(grad_R), population deviations:
    std([1, -1, 3, -3]) = sqrt(5), std([.5, .5, -.5, -.5]) = 0.5."""
    g_adv = torch.tensor([[1.0, -1.0], [3.0, -3.0]])
    g_ctc = torch.tensor([[0.5, 0.5], [-0.5, -0.5]])
    alpha, stats = balance_weight(g_adv, g_ctc, 0.5)
    assert alpha == pytest.approx(0.5 * math.sqrt(5) / 0.5)
    assert stats["grad_std_adversarial"] == pytest.approx(math.sqrt(5))
    assert stats["grad_std_ctc"] == pytest.approx(0.5)
    assert balance_weight(g_adv, torch.zeros(2, 2), 2.0)[0] == 2.0  # guard: ratio 1
    assert balance_weight(torch.zeros(2, 2), g_ctc, 2.0)[0] == 2.0


def test_g_step_sends_the_balanced_sum_of_both_gradients_through_g(words):
    """G's gradient equals d(l_adv + alpha l_R)/d theta_G with alpha computed by hand from the
    gradients at the generated image; D and R receive none."""
    train, _, meta = words
    trainer = HandwritingTrainer(variant(ctc_weight=0.7), meta, CPU, 0)
    G, D, R = trainer.G, trainer.D, trainer.R
    D.eval()  # no power iteration of the spectral norm: the same D in both computations
    z, text, lengths = torch.randn(6, 8), train["text"][:6], train["lengths"][:6]

    fake = G(z, text, lengths)
    l_adv = -D(fake).mean()  # the hinge generator loss
    R.eval()  # R reads fakes in eval mode (its batch norm keeps to real words)
    l_r = ctc_term(R, fake, text, lengths, 8)
    R.train()
    g_adv = torch.autograd.grad(l_adv, fake, retain_graph=True)[0]
    g_r = torch.autograd.grad(l_r, fake, retain_graph=True)[0]
    alpha = 0.7 * g_adv.std(correction=0) / g_r.std(correction=0)
    expected = torch.autograd.grad(l_adv + alpha * l_r, list(G.parameters()))

    trainer.opt_g.step = lambda: None  # keep the gradients, skip the update
    stats = trainer.generator_step(z, text, lengths)
    assert stats["alpha"] == pytest.approx(alpha.item(), rel=1e-5)
    assert stats["loss_g"] == pytest.approx((l_adv + alpha * l_r).item(), rel=1e-5)
    for p, g in zip(G.parameters(), expected, strict=True):
        assert_close(p.grad, g, rtol=1e-4, atol=1e-7)
    assert all(p.grad is None for p in [*D.parameters(), *R.parameters()])
    assert trainer.opt_r.state_dict()["state"] == {}
    assert all(p.requires_grad for p in R.parameters())  # R is unfrozen for its own step
    assert R.training  # and back in training mode


def test_r_learns_from_the_real_batch_only(words):
    """After one full step R's weights are exactly one Adam step on CTC(real words) from its
    starting weights, and its batch-norm statistics those of the real batch: neither D's step
    nor G's step touched them."""
    train, _, meta = words
    cfg = variant()
    trainer, batches, _, _ = build_trainer(cfg, train, meta, 0, "cpu", 1)
    R0 = copy.deepcopy(trainer.R)
    batch = copy.deepcopy(batches).next()
    opt = torch.optim.Adam(R0.parameters(), lr=1e-3, betas=(0.9, 0.999))
    loss = ctc_term(R0, batch["x"], batch["text"], batch["lengths"], 8)
    loss.backward()
    opt.step()
    stats = trainer.step(batches)
    assert stats["loss_r"] == pytest.approx(loss.item())
    after = R0.state_dict()  # weights and batch-norm statistics
    for name, value in trainer.R.state_dict().items():
        assert torch.equal(value, after[name]), f"R.{name} was changed by more than real words"


# ---------------------------------------------------------------- variable-length CTC
def test_variable_length_ctc_reads_each_row_over_its_own_frames(words):
    """A batch of words of different lengths gives each row the loss it gets alone; reading the
    padding (all 24 frames) would give another loss."""
    train, _, _ = words
    torch.manual_seed(0)
    R = Recognizer(11, 8, width=4).eval()
    rows = [int(i) for i in torch.argsort(train["lengths"])[[0, 20, 40, 63]]]
    x, text, lengths = train["x"][rows], train["text"][rows], train["lengths"][rows]
    assert len(set(lengths.tolist())) > 2
    together = ctc_term(R, x, text, lengths, 8, reduction="none")
    alone = torch.cat([ctc_term(R, x[i : i + 1], text[i : i + 1], lengths[i : i + 1], 8,
                                reduction="none") for i in range(4)])  # fmt: skip
    assert_close(together, alone)
    frames = torch.full((4,), 24)
    from genlab.objectives.ctc import ctc_loss

    padded = ctc_loss(R(x), text, frames, lengths, reduction="none")
    short = lengths < 6
    assert (padded[short] - together[short]).abs().min() > 1e-4
    # "mean": each row's loss over its own length, averaged (torch's definition)
    assert_close(ctc_term(R, x, text, lengths, 8), (together / lengths).mean())


# ---------------------------------------------------------------- training
def run_steps(cfg, train, meta, n: int, state: dict | None = None):
    trainer, batches, _, _ = build_trainer(cfg, train, meta, 0, "cpu", 1)
    if state is not None:
        restore_training(state, trainer, batches)
    return trainer, batches, [trainer.step(batches) for _ in range(n)]


def test_training_steps_are_deterministic_and_resume_exactly(words):
    train, _, meta = words
    cfg = variant()
    a, _, stats_a = run_steps(cfg, train, meta, 4)
    _, _, stats_b = run_steps(cfg, train, meta, 4)
    assert stats_a == stats_b
    for key in ("loss_r", "loss_d", "loss_g", "loss_g_adversarial", "ctc_fake", "alpha"):
        assert math.isfinite(stats_a[-1][key]), key
    assert stats_a[-1]["alpha"] > 0
    first, batches, _ = run_steps(cfg, train, meta, 2)
    resumed, _, _ = run_steps(cfg, train, meta, 2, state=training_snapshot(first, batches))
    for key in ("G", "D", "R"):
        after = resumed.modules[key].state_dict()
        for name, p in a.modules[key].state_dict().items():
            assert torch.equal(p, after[name]), f"{key}.{name} differs after resuming"


def test_optimizers_and_loss_follow_the_variant(words):
    _, _, meta = words
    cfg = variant(loss="nonsaturating", optimizer_d={"lr": 4e-4, "betas": [0.0, 0.9]},
                  optimizer_r={"lr": 3e-3})  # fmt: skip
    trainer = HandwritingTrainer(cfg, meta, CPU, 0)
    assert trainer.opt_d.param_groups[0]["lr"] == 4e-4
    assert trainer.opt_r.param_groups[0]["lr"] == 3e-3
    assert trainer.opt_g.param_groups[0]["lr"] == cfg.optimizer.lr
    assert type(trainer.loss).__name__ == "NonSaturating"
    assert set(trainer.modules) == {"G", "D", "R"} == set(trainer.optimizers)


# ---------------------------------------------------------------- sampler and figures
def test_sampler_writes_the_first_test_texts_with_seeded_styles(words):
    _, test, meta = words
    s = WordSampler(generator(), meta)
    inputs = s.inputs(3, 100, "cpu", data=test)  # more asked than there are test rows
    assert len(inputs["z"]) == 16 and torch.equal(inputs["text"], test["text"])
    x = s.generate(inputs, batch_size=5)
    assert x.shape == (16, 1, 8, 48)
    assert torch.equal(x, s.generate(s.inputs(3, 100, "cpu", data=test), 5))
    assert_close(x, s.generate(inputs, 7))  # rows do not depend on their chunk
    assert not torch.equal(x, s.generate(s.inputs(4, 100, "cpu", data=test), 5))
    pad = column_mask(test["lengths"], 8, 48).expand_as(x) == 0
    assert (x[pad] == -1).all()
    saved = s.saved(s.inputs(3, 10, "cpu", data=test))
    assert torch.equal(saved["source"]["text"], test["text"][:10])
    assert torch.equal(saved["source"]["lengths"], test["lengths"][:10])
    assert saved["z"].shape == (10, 8)
    path = s.interpolation(inputs, rows=3, steps=4, batch_size=5)
    assert path.shape == (12, 1, 8, 48)
    assert torch.equal(path, s.interpolation(inputs, rows=3, steps=4, batch_size=5))
    ends = path.view(3, 4, 1, 8, 48)
    assert not torch.equal(ends[:, 0], ends[:, -1])  # the style changes along a row
    assert (ends[0][pad[:1].expand(4, -1, -1, -1)] == -1).all()  # the text does not
    with pytest.raises(ValueError, match="data=test"):
        s.inputs(0, 4, "cpu")


def test_figures_are_written(words, tmp_path):
    from genlab.families.base import FigureContext

    _, test, meta = words
    raw = tiny_params_dict()
    raw["variants"] = {"v": {"dataset": "digit_strings", "family": "handwriting",
                             "arch": "scrabble", "figure_texts": ["12", "3"]}}  # fmt: skip
    params = validate_params(raw)
    G = generator()
    s = WordSampler(G, meta)
    inputs = s.inputs(0, 12, "cpu", data=test)
    x = s.generate(inputs, 100)
    ctx = FigureContext({"G": G}, params.variant("v"), params, tmp_path, tmp_path, inputs, x,
                        s, CPU)  # fmt: skip
    paths = handwriting_figures(ctx)
    names = {p.name for p in paths}
    assert names == {"grid.png", "styles.png", "texts.png", "interpolation.png"}
    assert all(p.stat().st_size > 1000 for p in paths)


# ---------------------------------------------------------------- the family's rules
def test_family_declarations():
    family = FAMILIES.get("handwriting")
    assert family.default_loss == "hinge" and family.generator == "G"
    assert family.saved_modules == ("G",) and family.metrics == ()
    assert set(family.losses.names()) == {"hinge", "least_squares", "minimax", "nonsaturating"}
    cfg = variant()
    assert cfg.loss == "hinge" and cfg.ctc_weight == 1.0 and cfg.figure_texts is None
    from genlab.families.words import FIGURE_TEXTS

    assert family.options["figure_texts"] is FIGURE_TEXTS
    assert "Handwriting" in family.sections and "cer" in family.sections["Handwriting"]


def test_default_figure_texts_fit_the_dataset(words):
    _, _, meta = words
    assert figure_texts(variant(), meta) == ["2026", "314159", "42", "7", "100"]
    short = {**meta, "max_length": 3}
    assert figure_texts(variant(), short) == ["202", "314", "42", "7", "100"]


@pytest.mark.parametrize(
    ("texts", "message"),
    [(["12", "12a"], r"figure_texts.*'12a'.*allowed: '0123456789'"),
     (["1234567"], r"figure_texts.*'1234567' has 7 characters; allowed: at most 6")],
)  # fmt: skip
def test_bad_figure_texts_are_refused_before_training(words, texts, message):
    _, _, meta = words
    with pytest.raises(ConfigError, match=message):
        HandwritingTrainer(variant(figure_texts=texts), meta, CPU, 0)


def test_a_dataset_without_word_fields_is_refused_at_params_load():
    with pytest.raises(ConfigError, match=r"dataset = 'digits' lacks the fields.*digit_strings"):
        variant(dataset="digits")


def test_family_keys_are_refused_for_other_families():
    raw = {"dataset": "digits", "family": "gan", "arch": "dcgan", "ctc_weight": 2.0}
    with pytest.raises(ConfigError, match="ctc_weight"):
        validate_params({"variants": {"g": raw}})


# ---------------------------------------------------------------- end to end
@pytest.mark.slow
def test_tiny_end_to_end_run_through_the_api(tmp_path):
    """prepare (200 / 80 words) -> fit-evaluator (1 epoch) -> train 6 steps -> sample ->
    evaluate: the recognition metric's keys with their intervals, and the figures (the word
    Frechet distance needs more scored rows than the 64 feature dimensions)."""
    from genlab.data import prepare_dataset
    from genlab.evaluate import evaluate_variant, fit_evaluator_stage
    from genlab.paths import Paths
    from genlab.sample import sample_variant
    from genlab.train.loop import train_variant

    raw = tiny_params_dict()
    raw["data"]["digit_strings"] = {"n_train": 200, "n_test": 80}
    raw["evaluator"]["datasets"] = {"digit_strings": {"epochs": 1, "batch_size": 64}}
    raw["variants"] = {"hw": {"dataset": "digit_strings", "family": "handwriting",
                              "arch": "scrabble", "latent_dim": 8, "width": 16,
                              "recognizer_width": 4, "steps": 6, "batch_size": 16,
                              "checkpoint_every": 3}}  # fmt: skip
    raw["evaluate"].update(metrics=["recognition"], n=70, bootstrap=10)
    raw["sample"]["n"] = 100
    params = validate_params(raw)
    prepare_dataset("digit_strings", params.dataset_cfg("digit_strings"), tmp_path, 0)
    fit_evaluator_stage(params, "digit_strings", tmp_path)
    assert train_variant(params, "hw", tmp_path)["steps"] == 6
    paths = sample_variant(params, "hw", tmp_path)
    saved = torch.load(paths["samples"], weights_only=True)
    assert saved["x"].shape == (80, 1, 8, 48)  # min(sample.n, n_test) test texts
    assert set(saved["source"]) == {"text", "lengths"}
    for name in ("grid.png", "styles.png", "texts.png", "interpolation.png"):
        assert (paths["dir"] / name).is_file(), name
    metrics = evaluate_variant(params, "hw", tmp_path)
    written = json.loads(Paths(tmp_path).metrics("hw").read_text())
    for key in ("cer", "wer", "word_frechet"):
        assert math.isfinite(written[key]), key
        assert written[f"{key}_ci_low"] <= written[f"{key}_ci_high"], key
    assert metrics["n_samples"] == 70
