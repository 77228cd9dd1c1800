"""pix2pix (Isola et al. 2017): the U-Net, the conditional PatchGAN, the cGAN + L1 objective, its
ablations, and a few seeded training steps through the one training driver, on tiny synthetic
paired, super-resolution and label-map splits registered by this file."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from genlab.data import DATASETS
from genlab.data.base import dataset
from genlab.errors import ConfigError
from genlab.families import FAMILIES
from genlab.families.pix2pix.nets import SourceInput, build_unet, patch_layers
from genlab.families.pix2pix.trainer import pix2pix_terms
from genlab.nets.patchgan import PatchGAN, measured_receptive_field, receptive_field
from genlab.nets.unet import UNet, unet_channels, unet_depth
from genlab.objectives.terms import Step, total
from genlab.options import Options
from tests.conftest import tiny_params_dict

TOY = "p2p_toy"  # a paired dataset registered for this module (8x8, source = -target)
FIELDS = {"source": {"kind": "image"}, "x": {"kind": "image"}, "y": {"kind": "class"}}


def toy_meta(kind: str = "paired", size: int = 8, source_side: int | None = None) -> dict:
    """meta.json of a tiny translation split: paired image, super resolution or label map."""
    source_side = source_side or size
    fields = dict(FIELDS)
    meta = {"name": TOY, "kind": "image", "shape": [1, size, size], "num_classes": 2}
    if kind == "labelmap":
        fields["source"] = {"kind": "labelmap"}
        meta |= {"source_shape": [size, size], "label_classes": 3}
    else:
        meta["source_shape"] = [1, source_side, source_side]
    direction = {"name": "", "source": "source", "target": "x", "labels": "y", "paired": True}
    return meta | {"fields": fields, "translation": {"task": kind, "directions": [direction]}}


def toy_split(meta: dict, n: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    size = meta["shape"][-1]
    x = torch.rand(n, 1, size, size, generator=gen) * 2 - 1
    if meta["fields"]["source"]["kind"] == "labelmap":
        source = torch.randint(meta["label_classes"], (n, size, size), generator=gen)
    else:
        side = meta["source_shape"][-1]
        source = -F.interpolate(x, size=(side, side), mode="area")
    return {"source": source, "x": x, "y": torch.randint(2, (n,), generator=gen)}


class _NoOptions(Options):
    pass


@pytest.fixture(scope="module")
def toy_dataset():
    """Register TOY (task "paired") for params validation; unregistered afterwards."""
    if TOY not in DATASETS:
        meta = toy_meta()
        dataset(TOY, options=_NoOptions, fields=FIELDS, task="paired")(
            lambda cfg, raw, seed: (toy_split(meta), toy_split(meta, 16, 1), meta)
        )
    yield TOY
    DATASETS.unregister(TOY)


def variant_cfg(**keys):
    """A validated VariantCfg of pix2pix on TOY (tiny widths, Adam 2e-4 as the paper)."""
    from genlab.config import validate_params

    raw = tiny_params_dict()
    raw["variants"] = {"p2p": {"dataset": TOY, "family": "pix2pix", "arch": "unet", "width": 4,
                               "batch_size": 8, **keys}}  # fmt: skip
    return validate_params(raw).variant("p2p")


# ---------------------------------------------------------------- U-Net
def test_depth_halves_to_1x1_or_the_minimum_side_and_channels_cap_at_8_width():
    assert [unet_depth(s) for s in (32, 8, 256, 28)] == [5, 3, 8, 2]
    assert unet_depth(32, min_side=4) == 3
    assert unet_channels(8, 64) == [64, 128, 256, 512, 512, 512, 512, 512]  # the paper's encoder
    net = UNet(in_channels=3, out_channels=1, size=32, width=8)
    convs = [next(m for m in d if isinstance(m, nn.Conv2d)) for d in net.down]
    assert [c.out_channels for c in convs] == [8, 16, 32, 64, 64]
    assert [u[1].out_channels for u in net.up] == [64, 32, 16, 8, 1]
    assert [u[1].in_channels for u in net.up] == [64, 128, 64, 32, 16]  # 2x: the skips


@pytest.mark.parametrize(("size", "c_in", "c_out"), [(32, 1, 1), (32, 11, 3), (8, 3, 3), (8, 1, 3)])
def test_unet_keeps_the_side_and_maps_channels_into_tanh_range(size, c_in, c_out):
    torch.manual_seed(0)
    net = UNet(in_channels=c_in, out_channels=c_out, size=size, width=4)
    y = net(torch.randn(2, c_in, size, size))
    assert y.shape == (2, c_out, size, size)
    assert y.abs().max() <= 1


def test_unet_layers_follow_the_paper():
    """No norm on the first and innermost encoder layers; LeakyReLU 0.2 in, ReLU out; dropout
    0.5 in the first three decoder layers; tanh at the output."""
    net = UNet(in_channels=1, out_channels=1, size=32, width=4)
    has = lambda seq, kind: any(isinstance(m, kind) for m in seq)  # noqa: E731
    assert [has(d, nn.BatchNorm2d) for d in net.down] == [False, True, True, True, False]
    assert [has(d, nn.LeakyReLU) for d in net.down] == [False, True, True, True, True]
    assert all(m.negative_slope == 0.2 for m in net.modules() if isinstance(m, nn.LeakyReLU))
    assert all(isinstance(u[0], nn.ReLU) for u in net.up)
    drops = [[m.p for m in u if isinstance(m, nn.Dropout)] for u in net.up]
    assert drops == [[0.5], [0.5], [0.5], [], []]
    assert isinstance(net.up[-1][-1], nn.Tanh)
    small = UNet(in_channels=1, out_channels=1, size=8, width=4)  # depth 3: the output has none
    assert [has(u, nn.Dropout) for u in small.up] == [True, True, False]


def test_skip_connections_carry_the_input_past_a_dead_bottleneck(monkeypatch):
    """With the innermost encoder convolution zeroed, the bottleneck is constant; the output
    still depends on the input only because of the skips (depth - 1 concatenations)."""
    torch.manual_seed(0)
    net = UNet(in_channels=1, out_channels=1, size=8, width=4).eval()
    inner = net.down[-1][-1]
    with torch.no_grad():
        inner.weight.zero_()
        inner.bias.zero_()
    a, b = torch.randn(2, 1, 1, 8, 8)
    bottleneck = [nn.Sequential(*net.down)(v) for v in (a, b)]
    torch.testing.assert_close(bottleneck[0], bottleneck[1])
    assert net.skips == 2
    assert (net(a) - net(b)).abs().max() > 1e-3

    calls = []  # and the forward concatenates exactly depth - 1 times, encoder maps included
    real_cat = torch.cat

    def spy(tensors, dim=0):
        calls.append([t.shape[1] for t in tensors])
        return real_cat(tensors, dim=dim)

    monkeypatch.setattr(torch, "cat", spy)
    net(a)
    monkeypatch.undo()
    assert calls == [[8, 8], [4, 4]]


def test_dropout_is_the_noise_in_training_mode_only():
    torch.manual_seed(0)
    net = UNet(in_channels=1, out_channels=1, size=8, width=4)
    x = torch.randn(4, 1, 8, 8)
    torch.manual_seed(1)
    y1 = net(x)
    torch.manual_seed(2)
    y2 = net(x)
    assert (y1 - y2).abs().max() > 1e-4
    net.eval()
    torch.testing.assert_close(net(x), net(x))


# ---------------------------------------------------------------- source and PatchGAN
def test_label_maps_are_one_hot_and_small_sources_upsampled_bicubically():
    maps = torch.tensor([[[0, 2], [1, 0]]])
    one_hot = SourceInput(kind="labelmap", channels=3, size=2)(maps)
    expected = torch.tensor([[[[1.0, 0], [0, 1]], [[0, 0], [1, 0]], [[0, 1], [0, 0]]]])
    torch.testing.assert_close(one_hot, expected)

    small = torch.rand(2, 3, 8, 8) * 2 - 1
    up = SourceInput(kind="image", channels=3, size=32)(small)
    bicubic = F.interpolate(small, size=(32, 32), mode="bicubic", align_corners=False)
    torch.testing.assert_close(up, bicubic.clamp(-1, 1))
    assert up.abs().max() <= 1
    same = torch.rand(2, 1, 8, 8)
    assert SourceInput(kind="image", channels=1, size=8)(same) is same


@pytest.mark.parametrize(("layers", "size"), [(1, 40), (2, 64), (3, 96)])
def test_patchgan_receptive_field_matches_the_gradients(layers, size):
    """r = 9 * 2**layers - 2: 16, 34 and the paper's 70, on the conditional D's input."""
    torch.manual_seed(0)
    D = PatchGAN(in_channels=2, width=4, layers=layers)
    assert receptive_field(layers) == {1: 16, 2: 34, 3: 70}[layers]
    assert measured_receptive_field(D, 2, size) == receptive_field(layers)


def test_default_patch_is_at_most_half_the_side():
    cfg = SimpleNamespace(patch_layers=None)
    assert [patch_layers(cfg, s) for s in (256, 128, 64, 32, 8)] == [3, 2, 1, 1, 1]
    assert patch_layers(SimpleNamespace(patch_layers=2), 32) == 2


@pytest.mark.parametrize(
    ("kind", "source_side", "d_in", "g_in"),
    [("paired", 32, 2, (2, 1, 32, 32)), ("super_resolution", 8, 2, (2, 1, 8, 8)),
     ("labelmap", 32, 4, (2, 32, 32))],
)  # fmt: skip
def test_builder_shapes_for_every_task(kind, source_side, d_in, g_in):
    """G takes the raw source field; D sees concat(prepared source, image) as 14x14 logits of
    16x16 patches at 32x32 (patch_layers 1)."""
    torch.manual_seed(0)
    meta = toy_meta(kind, 32, source_side)
    cfg = SimpleNamespace(width=4, adversarial=True, patch_layers=None)
    nets = build_unet(meta, cfg)
    source = torch.randint(3, g_in) if kind == "labelmap" else torch.rand(g_in) * 2 - 1
    fake = nets["G"](source)
    assert fake.shape == (2, 1, 32, 32)
    assert nets["D"].net[0].in_channels == d_in
    pair = torch.cat([nets["G"].condition(source), fake], dim=1)
    assert nets["D"](pair).shape == (2, 1, 14, 14)
    assert set(build_unet(meta, SimpleNamespace(width=4, adversarial=False))) == {"G"}


# ---------------------------------------------------------------- objective
def _step(d_real, d_fake, fake, target) -> Step:
    gen = torch.Generator()
    return Step({}, None, target, fake, target, None, d_real, d_fake, gen, batch={"x": target})


def test_generator_loss_is_cgan_plus_100_l1_by_hand():
    """Non-saturating: -log sigmoid(0) = ln 2 on a 1x1 map, plus 100 * mean |G(x) - y| with
    |0.5 - 0|, |-0.5 - 0|, |1 - 1|, |0 - 1| -> mean 0.5: ln 2 + 50."""
    cfg = SimpleNamespace(adversarial=True, l1_weight=100.0, loss="nonsaturating")
    fake = torch.tensor([[[[0.5, -0.5], [1.0, 0.0]]]])
    target = torch.tensor([[[[0.0, 0.0], [1.0, 1.0]]]])
    loss, stats = total(pix2pix_terms(cfg), "generator", _step(None, torch.zeros(1, 1, 1, 1),
                                                                fake, target))  # fmt: skip
    torch.testing.assert_close(loss, torch.tensor(math.log(2) + 50))
    assert stats["l1"] == pytest.approx(0.5)
    assert stats["g_adversarial"] == pytest.approx(math.log(2))


def test_discriminator_loss_is_halved_over_the_patch_map():
    """D: (softplus(-d_real) + softplus(d_fake)) / 2, means over the logit map (sec. 3.3);
    hinge: (relu(1 - d_real) + relu(1 + d_fake)) / 2."""
    d_real = torch.tensor([[[[0.0, 2.0], [-1.0, 3.0]]]])
    d_fake = torch.tensor([[[[1.0, -2.0], [0.0, 0.5]]]])
    sp = lambda t: math.log1p(math.exp(t))  # noqa: E731
    expected = sum(sp(-v) for v in (0, 2, -1, 3)) / 4 + sum(sp(v) for v in (1, -2, 0, 0.5)) / 4
    img = torch.zeros(1, 1, 2, 2)
    for loss, value in (("nonsaturating", expected / 2),
                        ("hinge", ((1 + 0 + 2 + 0) / 4 + (2 + 0 + 1 + 1.5) / 4) / 2)):  # fmt: skip
        cfg = SimpleNamespace(adversarial=True, l1_weight=100.0, loss=loss)
        got, _ = total(pix2pix_terms(cfg), "discriminator", _step(d_real, d_fake, img, img))
        torch.testing.assert_close(got, torch.tensor(value))


def test_l1_only_ablation_has_no_discriminator_loss():
    cfg = SimpleNamespace(adversarial=False, l1_weight=3.0, loss="nonsaturating")
    fake, target = torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)
    loss, _ = total(pix2pix_terms(cfg), "generator", _step(None, None, fake, target))
    torch.testing.assert_close(loss, torch.tensor(3.0))
    with pytest.raises(ValueError, match="no term"):
        total(pix2pix_terms(cfg), "discriminator", _step(None, None, fake, target))


# ---------------------------------------------------------------- family and training
def test_family_declares_what_the_pipeline_needs(toy_dataset):
    family = FAMILIES.get("pix2pix")
    assert family.saved_modules == ("G",) and family.generator == "G"
    assert family.metrics == ("translation",) and "Image-to-image translation" in family.sections
    cfg = variant_cfg()
    assert (cfg.l1_weight, cfg.adversarial, cfg.patch_layers, cfg.loss) == (
        100.0, True, None, "nonsaturating")  # fmt: skip
    assert cfg.optimizer.lr == 2e-4 and cfg.optimizer.betas == (0.5, 0.999)


@pytest.mark.parametrize(
    ("keys", "message"),
    [({"adversarial": False, "l1_weight": 0.0}, "nothing to train"),
     ({"dataset": "digits"}, "generative dataset"),
     ({"adversarial": False, "patch_layers": 2}, "has no effect"),
     ({"patch_layers": 0}, "greater than or equal to 1")],
)  # fmt: skip
def test_invalid_variants_are_refused_at_params_load(toy_dataset, keys, message):
    with pytest.raises(ConfigError, match=message):
        variant_cfg(**keys)


def _train(cfg, meta, seed: int, steps: int):
    from genlab.train.loop import build_trainer, training_steps

    trainer, batches, ema, _ = build_trainer(cfg, toy_split(meta), meta, seed, "cpu", 1)
    stats = [s for _, s in training_steps(trainer, batches, ema, 0, steps, "p2p")]
    return trainer, stats


def test_a_few_steps_train_deterministically_with_finite_stats(toy_dataset):
    cfg, meta = variant_cfg(steps=3), toy_meta()
    trainer, stats = _train(cfg, meta, 0, 3)
    again, _ = _train(cfg, meta, 0, 3)
    other, _ = _train(cfg, meta, 1, 3)
    assert set(trainer.modules) == {"G", "D"}
    for key, net in trainer.modules.items():
        twin = again.modules[key].state_dict().values()
        for a, b in zip(net.state_dict().values(), twin, strict=True):
            assert torch.equal(a, b)
    g, g1 = trainer.G.state_dict(), other.G.state_dict()
    assert any(not torch.equal(g[k], g1[k]) for k in g)
    for row in stats:
        assert all(math.isfinite(v) for v in row.values())
        assert {"loss_g", "loss_d", "l1", "d_real", "d_fake"} <= set(row)
        assert row["loss_g"] == pytest.approx(row["g_adversarial"] + 100 * row["l1"], rel=1e-5)


def test_l1_only_ablation_never_calls_d(toy_dataset, monkeypatch):
    def refuse(self, x):
        raise AssertionError("D was called")

    monkeypatch.setattr(PatchGAN, "forward", refuse)
    trainer, stats = _train(variant_cfg(adversarial=False), toy_meta(), 0, 2)
    assert set(trainer.modules) == set(trainer.optimizers) == {"G"}
    assert "loss_d" not in stats[-1] and stats[-1]["loss_g"] == pytest.approx(
        100 * stats[-1]["l1"])  # fmt: skip
    with pytest.raises(AssertionError, match="D was called"):  # the spy does catch a D call
        _train(variant_cfg(), toy_meta(), 0, 1)


def test_cgan_only_ablation_reports_l1_without_training_on_it(toy_dataset):
    _, stats = _train(variant_cfg(l1_weight=0.0), toy_meta(), 0, 2)
    assert stats[-1]["loss_g"] == pytest.approx(stats[-1]["g_adversarial"], rel=1e-6)
    assert stats[-1]["l1"] > 0


@pytest.mark.parametrize("kind", ["super_resolution", "labelmap"])
def test_other_tasks_train_a_step(toy_dataset, kind):
    meta = toy_meta(kind, 8, 4 if kind == "super_resolution" else None)
    trainer, stats = _train(variant_cfg(), meta, 0, 1)
    assert math.isfinite(stats[0]["loss_g"])


def test_l1_training_fits_the_paired_mapping(toy_dataset):
    """The L1 term does its job: 30 steps at lr 1e-2 lower the per-pixel L1 of source = -x."""
    cfg = variant_cfg(adversarial=False, optimizer={"lr": 0.01})
    _, stats = _train(cfg, toy_meta(), 0, 30)
    assert sum(s["l1"] for s in stats[-5:]) < 0.7 * sum(s["l1"] for s in stats[:5])


def test_sampler_translates_the_test_split_with_seeded_dropout(toy_dataset):
    meta = toy_meta()
    torch.manual_seed(0)
    G = build_unet(meta, SimpleNamespace(width=4, adversarial=False))["G"].eval()
    sampler = FAMILIES.get("pix2pix").sampler({"G": G}, None, meta)
    test = toy_split(meta, 6, 3)
    out = [sampler.generate(sampler.inputs(s, 6, "cpu", test), 4) for s in (0, 0, 1)]
    assert out[0].shape == (6, 1, 8, 8)
    torch.testing.assert_close(out[0], out[1])
    assert (out[0] - out[2]).abs().max() > 1e-5  # dropout on at test time: the noise z
    assert not G.training and all(not m.training for m in G.modules())
