"""Text to image, GAN-CLS (Reed et al. 2016): the matching-aware losses of Algorithm 1 by hand,
the mismatching texts, the text encoder's masking, the joint-embedding loss by hand, the
networks, deterministic training with an exact resume across phi's pre-training, the seeded
sampler fed the test texts, the figures, the family's rules, and a tiny run through the API."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from torch.testing import assert_close

from genlab.config import ConfigError, validate_params
from genlab.data.strings import compose
from genlab.families import FAMILIES, FigureContext
from genlab.families.text2image import TextSampler
from genlab.families.text2image.figures import DEFAULT_TEXTS, figure_texts, text2image_figures
from genlab.families.text2image.nets import Discriminator, Generator, TextEncoder, build
from genlab.families.text2image.trainer import (
    GANCLS,
    TextToImageTrainer,
    joint_embedding_loss,
    mismatched_rows,
    same_text,
)
from genlab.train.loop import build_trainer
from tests.conftest import restore_training, tiny_params_dict, training_snapshot

META = {
    "name": "digit_strings", "kind": "word", "shape": [1, 8, 48], "vocabulary": "0123456789",
    "blank": 0, "max_length": 6, "char_width": 8, "n_train": 64, "n_test": 12,
    "fields": {"x": {"kind": "word"}, "text": {"kind": "tokens"}, "lengths": {"kind": "lengths"}},
    "source_fields": ["text", "lengths"],
}  # fmt: skip


def split(n: int, seed: int) -> dict[str, torch.Tensor]:
    """``n`` words of 1-6 characters composed from random 8 x 8 'glyphs' (two per digit)."""
    gen = torch.Generator().manual_seed(seed)
    glyphs = torch.rand(20, 8, 8, generator=gen) * 2 - 1
    return compose(glyphs, torch.arange(20) % 10, n, 1, 6, gen)


def variant(**overrides):
    cfg = {"dataset": "digit_strings", "family": "text2image", "arch": "dcgan", "latent_dim": 4,
           "width": 4, "text_dim": 8, "steps": 6, "batch_size": 8, "encoder_steps": 2,
           "optimizer": {"lr": 1e-3, "betas": [0.5, 0.999]}, **overrides}  # fmt: skip
    return validate_params({"variants": {"v": cfg}}).variant("v")


def log_sigmoid(v: float) -> float:
    return math.log(1 / (1 + math.exp(-v)))


# ---------------------------------------------------------------- the GAN-CLS losses
def test_discriminator_loss_is_algorithm_1_by_hand():
    """-L_D = -log s_r - (log(1 - s_w) + log(1 - s_f)) / 2, s = sigmoid(logit), batch means."""
    s_r, s_w, s_f = [0.0, 2.0], [1.0, -1.0], [-0.5, 3.0]
    loss, stats = GANCLS().discriminator(torch.tensor(s_r), torch.tensor(s_w), torch.tensor(s_f))
    real = -sum(log_sigmoid(v) for v in s_r) / 2
    wrong = -sum(log_sigmoid(-v) for v in s_w) / 2  # log(1 - sigmoid(v)) = log sigmoid(-v)
    fake = -sum(log_sigmoid(-v) for v in s_f) / 2
    assert_close(loss, torch.tensor(real + (wrong + fake) / 2))
    assert stats["d_wrong"] == pytest.approx((1 / (1 + math.exp(-1)) + 1 / (1 + math.exp(1))) / 2)
    # a row without a mismatching text leaves the s_w mean
    loss, _ = GANCLS().discriminator(torch.tensor(s_r), torch.tensor(s_w), torch.tensor(s_f),
                                     torch.tensor([True, False]))  # fmt: skip
    assert_close(loss, torch.tensor(real + (-log_sigmoid(-1.0) + fake) / 2))
    loss, _ = GANCLS().discriminator(torch.tensor(s_r), torch.tensor(s_w), torch.tensor(s_f),
                                     torch.tensor([False, False]))  # fmt: skip
    assert_close(loss, torch.tensor(real + fake / 2))


def test_generator_loss_is_minus_log_s_f_by_hand():
    s_f = [-1.0, 0.5, 2.0]
    expected = -sum(log_sigmoid(v) for v in s_f) / 3
    assert_close(GANCLS().generator(torch.tensor(s_f)), torch.tensor(expected))


# ---------------------------------------------------------------- mismatching texts
TOKENS = torch.tensor([[2, 3, 0, 0], [2, 3, 0, 0], [4, 0, 0, 0], [2, 3, 5, 0], [4, 0, 0, 0],
                       [6, 7, 0, 0], [2, 3, 0, 9], [8, 0, 0, 0]])  # fmt: skip
LENGTHS = torch.tensor([2, 2, 1, 3, 1, 2, 2, 1])  # row 6 pads with a stray 9: still "12"


def test_same_text_ignores_the_padding():
    same = same_text(TOKENS, LENGTHS)
    groups = [{0, 1, 6}, {2, 4}, {3}, {5}, {7}]
    for i in range(8):
        expected = next(g for g in groups if i in g)
        assert {j for j in range(8) if same[i, j]} == expected


@pytest.mark.parametrize("hard", [0.0, 0.5, 1.0])
def test_mismatching_texts_really_differ_and_are_seeded(hard):
    for seed in range(20):
        gen = torch.Generator().manual_seed(seed)
        index, valid = mismatched_rows(TOKENS, LENGTHS, gen, hard)
        assert valid.all()
        same = same_text(TOKENS, LENGTHS)
        assert not same[torch.arange(8), index].any()  # every pair really differs
        again = mismatched_rows(TOKENS, LENGTHS, torch.Generator().manual_seed(seed), hard)
        assert torch.equal(index, again[0])
        if hard == 1.0:  # a different text of the same length wherever there is one
            has = [(same_text(TOKENS, LENGTHS)[i] == 0) & (LENGTHS == LENGTHS[i]) for i in range(8)]
            for i in range(8):
                if has[i].any():
                    assert LENGTHS[index[i]] == LENGTHS[i]


def test_mismatch_is_the_shifted_row_or_the_next_that_differs():
    """hard = 0: the row k away (k drawn first from the generator), else the next that differs."""
    gen = torch.Generator().manual_seed(3)
    k = int(torch.randint(1, 8, (1,), generator=gen))
    index, _ = mismatched_rows(TOKENS, LENGTHS, torch.Generator().manual_seed(3), 0.0)
    same = same_text(TOKENS, LENGTHS)
    for i in range(8):
        j = (i + k) % 8
        while same[i, j]:
            j = (j + 1) % 8
        assert index[i] == j


def test_a_batch_of_one_text_has_no_mismatching_rows():
    tokens, lengths = TOKENS[[0, 1, 6]], LENGTHS[[0, 1, 6]]
    _, valid = mismatched_rows(tokens, lengths, torch.Generator().manual_seed(0))
    assert not valid.any()


# ---------------------------------------------------------------- text encoder, joint loss
def test_text_encoder_reads_only_the_first_length_tokens():
    torch.manual_seed(0)
    phi = TextEncoder(vocab_size=11, max_length=4, dim=8)
    tokens = torch.tensor([[2, 3, 0, 0], [5, 1, 7, 0]])
    lengths = torch.tensor([2, 3])
    h = phi(tokens, lengths)
    padded = tokens.clone()
    padded[0, 2:] = torch.tensor([9, 4])
    padded[1, 3] = 10
    assert_close(phi(padded, lengths), h, rtol=0, atol=0)
    changed = tokens.clone()
    changed[0, 1] = 4  # a character within the length
    assert (phi(changed, lengths)[0] - h[0]).abs().max() > 1e-4
    assert (phi(tokens, torch.tensor([1, 3]))[0] - h[0]).abs().max() > 1e-4  # the length itself


def test_joint_embedding_loss_by_hand_on_a_2x2_compatibility_matrix():
    """S = v t^T = [[2, 1], [0, 1]]: rows pick texts, columns pick images; the mean of both."""
    v = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    t = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    rows = (-math.log(math.e**2 / (math.e**2 + math.e)) - math.log(math.e / (1 + math.e))) / 2
    cols = (-math.log(math.e**2 / (math.e**2 + 1)) - math.log(0.5)) / 2
    assert_close(joint_embedding_loss(v, t, torch.eye(2, dtype=torch.bool)),
                 torch.tensor((rows + cols) / 2))  # fmt: skip
    # both rows hold the same text: each image's target is half on each text
    same = torch.ones(2, 2, dtype=torch.bool)
    p_rows = torch.tensor([[2.0, 1.0], [0.0, 1.0]]).log_softmax(1)
    p_cols = torch.tensor([[2.0, 1.0], [0.0, 1.0]]).log_softmax(0)
    expected = (-(p_rows.sum(1) / 2).mean() - (p_cols.sum(0) / 2).mean()) / 2
    assert_close(joint_embedding_loss(v, t, same), expected)


# ---------------------------------------------------------------- networks
def test_generator_and_discriminator_shapes_and_conditioning():
    torch.manual_seed(0)
    G = Generator(latent_dim=4, text_dim=8, shape=[1, 8, 48], width=4).eval()
    D = Discriminator(text_dim=8, shape=[1, 8, 48], width=4)
    z, h = torch.randn(5, 4), torch.randn(5, 8)
    x = G(z, h)
    assert x.shape == (5, 1, 8, 48) and x.abs().max() <= 1
    assert (G(z, h.roll(1, 0)) - x).abs().amax(dim=(1, 2, 3)).min() > 0  # the text changes x
    torch.nn.init.normal_(D.where)
    s = D(x, h)
    assert s.shape == (5,)
    assert (D(x, h.roll(1, 0)) - s).abs().min() > 0  # D judges the pair, not the image alone
    assert D.joint[0].in_channels == 2 * 4 + 8  # features + the replicated text code


def test_build_has_the_image_encoder_only_while_phi_is_pre_trained():
    assert set(build(META, variant())) == {"G", "D", "text", "image"}
    assert set(build(META, variant(encoder_steps=0))) == {"G", "D", "text"}
    from genlab.errors import ArchitectureError

    with pytest.raises(ArchitectureError, match="multiples of 4"):
        build({**META, "shape": [1, 8, 42]}, variant())


# ---------------------------------------------------------------- training
TRAIN = split(64, 0)


def steps(cfg, n: int, seed: int = 0, state: dict | None = None):
    trainer, batches, _, _ = build_trainer(cfg, TRAIN, META, seed, "cpu", 1)
    for m in trainer.modules.values():
        m.train()
    if state is not None:
        restore_training(state, trainer, batches)
    stats = [trainer.step(batches) for _ in range(n)]
    return trainer, batches, stats


def test_training_steps_are_deterministic_and_resume_exactly_across_the_phases():
    cfg = variant(gan_int=True)
    a, _, stats_a = steps(cfg, 5)
    _, _, stats_b = steps(cfg, 5)
    assert stats_a == stats_b
    assert [s["phase"] for s in stats_a] == [0, 0, 1, 1, 1]
    assert all(list(s) == list(stats_a[0]) for s in stats_a)  # one set of CSV columns
    assert stats_a[0]["loss_joint"] > 0 and stats_a[-1]["loss_d"] > 0
    assert stats_a[-1]["loss_g_int"] > 0
    first, batches, _ = steps(cfg, 1)  # stop inside the pre-training
    resumed, _, rest = steps(cfg, 4, state=training_snapshot(first, batches))
    assert rest == stats_a[1:]
    for key, module in a.modules.items():
        after = resumed.modules[key].state_dict()
        for name, p in module.state_dict().items():
            assert torch.equal(p, after[name]), f"{key}.{name} differs after resuming"


def test_phi_is_frozen_after_pre_training_and_learns_with_d_without_it():
    cfg = variant()
    trainer, batches, _ = steps(cfg, 2)
    phi = {k: v.clone() for k, v in trainer.modules["text"].state_dict().items()}
    for _ in range(2):
        trainer.step(batches)
    assert all(torch.equal(v, trainer.modules["text"].state_dict()[k]) for k, v in phi.items())

    cfg = variant(encoder_steps=0)
    trainer, batches, stats = steps(cfg, 0)
    assert set(trainer.optimizers) == {"G", "D"}
    before = {k: v.clone() for k, v in trainer.modules["text"].state_dict().items()}
    trainer.step(batches)
    after = trainer.modules["text"].state_dict()
    assert any(not torch.equal(v, after[k]) for k, v in before.items())
    d_params = {id(p) for g in trainer.optimizers["D"].param_groups for p in g["params"]}
    assert all(id(p) in d_params for p in trainer.modules["text"].parameters())
    g_params = {id(p) for g in trainer.optimizers["G"].param_groups for p in g["params"]}
    assert not any(id(p) in g_params for p in trainer.modules["text"].parameters())


@pytest.mark.parametrize("bad", [["12a"], ["1234567"], ["42", ""]])
def test_bad_figure_texts_are_refused_when_the_trainer_is_built(bad):
    with pytest.raises(ConfigError, match="figure_texts"):
        TextToImageTrainer(variant(figure_texts=bad), META, torch.device("cpu"), 0)


# ---------------------------------------------------------------- sampler and figures
def trained_modules() -> dict[str, torch.nn.Module]:
    torch.manual_seed(0)
    return {k: m.eval() for k, m in build(META, variant()).items()}


def test_sampler_answers_the_first_test_texts_with_seeded_noise():
    test = split(10, 1)
    s = FAMILIES.get("text2image").sampler(trained_modules(), variant(), META)
    assert isinstance(s, TextSampler)
    inputs = s.inputs(5, 6, "cpu", data=test)
    x = s.generate(inputs, batch_size=4)
    assert x.shape == (6, 1, 8, 48)
    saved = s.saved(inputs)
    assert torch.equal(saved["source"]["text"], test["text"][:6])
    assert torch.equal(saved["source"]["lengths"], test["lengths"][:6])
    assert torch.equal(x, s.generate(s.inputs(5, 6, "cpu", data=test), 4))
    assert_close(x, s.generate(s.inputs(5, 6, "cpu", data=test), 100))
    assert not torch.equal(saved["z"], s.inputs(6, 6, "cpu", data=test)["z"])
    assert len(s.inputs(5, 50, "cpu", data=test)["z"]) == 10  # at most the test split
    path = s.interpolation(inputs, rows=3, steps=4, batch_size=5)
    assert path.shape == (12, 1, 8, 48)
    rows = zip(test["text"][:3].tolist(), test["lengths"][:3].tolist(), strict=True)
    assert inputs["interpolation"]["texts"] == ["".join(str(t - 1) for t in r[:n]) for r, n in rows]
    with pytest.raises(ValueError, match="data=test"):
        s.inputs(5, 6, "cpu")


def test_figures_are_drawn_and_bad_texts_refused(tmp_path: Path):
    modules, cfg = trained_modules(), variant(figure_texts=["2026", "7"])
    s = FAMILIES.get("text2image").sampler(modules, cfg, META)
    inputs = s.inputs(0, 10, "cpu", data=split(10, 1))
    x = s.generate(inputs, 100)
    s.interpolation(inputs, 2, 3, 100)
    params = validate_params(tiny_params_dict())
    out = tmp_path / "t2i"
    out.mkdir()
    ctx = FigureContext(modules, cfg, params, tmp_path, out, inputs, x, s, torch.device("cpu"))
    written = text2image_figures(ctx)
    assert [p.name for p in written] == ["grid.png", "interpolation.png", "styles.png",
                                         "texts.png"]  # fmt: skip
    assert all(p.stat().st_size > 0 for p in written)
    bad = FigureContext(modules, variant(figure_texts=["x1"]), params, tmp_path, out, inputs, x,
                        s, torch.device("cpu"))  # fmt: skip
    with pytest.raises(ConfigError, match=r"variants\.t2i\.figure_texts.*'0123456789'"):
        text2image_figures(bad)
    assert figure_texts(variant(), {**META, "max_length": 3}) == ["202", "314", "42", "7", "100"]
    assert figure_texts(variant(), META) == DEFAULT_TEXTS


# ---------------------------------------------------------------- the family's rules
def test_family_declarations():
    family = FAMILIES.get("text2image")
    assert family.default_loss == "gan_cls" and family.generator == "G"
    assert family.saved_modules == ("G", "text") and family.metrics == ()
    assert "Text to image" in family.sections
    cfg = variant()
    assert cfg.loss == "gan_cls" and cfg.gan_int is False


def test_a_dataset_without_words_is_refused_at_params_load():
    with pytest.raises(ConfigError, match="dataset = 'digits'.*allowed datasets: .*digit_strings"):
        variant(dataset="digits")


def test_pre_training_must_leave_gan_steps():
    with pytest.raises(ConfigError, match="encoder_steps = 6 must be below steps = 6"):
        variant(encoder_steps=6)


# ---------------------------------------------------------------- a tiny run through the API
@pytest.mark.slow
def test_prepare_fit_train_sample_evaluate(tmp_path: Path):
    from genlab.data import prepare_dataset
    from genlab.evaluate import evaluate_variant, fit_evaluator_stage
    from genlab.paths import Paths
    from genlab.sample import sample_variant
    from genlab.train.loop import train_variant

    raw = tiny_params_dict()
    raw["data"] = {"digit_strings": {"n_train": 200, "n_test": 100}}
    raw["evaluator"] = {"epochs": 1, "batch_size": 64, "lr": 0.003}
    raw["variants"] = {"t2i": {"dataset": "digit_strings", "family": "text2image",
                               "arch": "dcgan", "latent_dim": 4, "width": 4, "text_dim": 8,
                               "steps": 6, "encoder_steps": 2, "checkpoint_every": 3}}  # fmt: skip
    raw["sample"] = {"n": 120, "grid": 8, "interpolation_steps": 3, "batch_size": 50}
    raw["evaluate"] = {"metrics": ["recognition"], "n": 80, "bootstrap": 10}
    params = validate_params(raw)
    prepare_dataset("digit_strings", params.dataset_cfg("digit_strings"), tmp_path, params.seed)
    fitted = fit_evaluator_stage(params, "digit_strings", tmp_path)
    assert 0 <= fitted["test_accuracy"] <= 1 and "cer" in fitted["floor"]
    assert train_variant(params, "t2i", tmp_path)["steps"] == 6
    paths = sample_variant(params, "t2i", tmp_path)
    saved = torch.load(paths["samples"], weights_only=True)
    assert saved["x"].shape == (100, 1, 8, 48)  # one per test text
    assert set(saved["source"]) == {"text", "lengths"}
    for name in ("grid", "interpolation", "styles", "texts"):
        assert (paths["dir"] / f"{name}.png").is_file()
    metrics = evaluate_variant(params, "t2i", tmp_path)
    assert metrics["n_samples"] == 80
    for key in ("cer", "wer", "word_frechet"):
        assert metrics[f"{key}_ci_low"] <= metrics[key] <= metrics[f"{key}_ci_high"]
    assert 0 <= metrics["wer"] <= 1
    assert json.loads(Paths(tmp_path).metrics("t2i").read_text())["cer"] == metrics["cer"]
