"""Unpaired translation: CycleGAN (Zhu et al. 2017) and DiscoGAN (Kim et al. 2017). Network
shapes, the cycle / identity / reconstruction terms against hand-computed values, the history
pool of Shrivastava et al. 2017, the summed objectives by hand, the params-load check, seeded
training through the one driver and an exact resume (the pools' contents included)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.testing import assert_close

from genlab.config import validate_params
from genlab.data.base import DATASETS, dataset
from genlab.errors import ArchitectureError
from genlab.families import FAMILIES
from genlab.families.cyclegan import cyclegan_terms, discogan_terms, sampler
from genlab.families.cyclegan.nets import CYCLEGAN_ARCHS, DISCOGAN_ARCHS
from genlab.nets.translators import DiscoDiscriminator, EncoderDecoderGenerator, ResnetGenerator
from genlab.objectives.terms import total
from genlab.objectives.translation import (
    CycleConsistency,
    Identity,
    ImagePool,
    TwoAdversarial,
    TwoDomains,
    l1,
    mse,
)
from genlab.options import Options
from genlab.train.loop import build_trainer
from tests.conftest import restore_training, training_snapshot

TOY = "twodomain_toy"  # a tiny unpaired dataset this module registers
SIZE = 16
META = {
    "name": TOY,
    "kind": "image",
    "shape": [1, SIZE, SIZE],
    "num_classes": 10,
    "fields": {
        "x": {"kind": "image", "domain": "a"},
        "y": {"kind": "class", "domain": "a"},
        "x_b": {"kind": "image", "domain": "b"},
        "y_b": {"kind": "class", "domain": "b"},
    },
    "translation": {
        "task": "unpaired",
        "directions": [
            {"name": "a2b", "source": "x", "target": "x_b", "labels": "y_b", "paired": False},
            {"name": "b2a", "source": "x_b", "target": "x", "labels": "y", "paired": False},
        ],
    },
}


def two_domain_split(n_a: int = 24, n_b: int = 20, seed: int = 0) -> dict[str, torch.Tensor]:
    """Domain A: smooth blobs; domain B: the same kind of images negated (different sizes, so
    the two are drawn independently)."""
    gen = torch.Generator().manual_seed(seed)

    def images(n: int) -> torch.Tensor:
        coarse = torch.rand(n, 1, 4, 4, generator=gen) * 2 - 1
        return F.interpolate(coarse, size=SIZE, mode="bilinear", align_corners=False)

    return {"x": images(n_a), "y": torch.randint(10, (n_a,), generator=gen),
            "x_b": -images(n_b), "y_b": torch.randint(10, (n_b,), generator=gen)}  # fmt: skip


class ToyCfg(Options):
    pass


@pytest.fixture(scope="module", autouse=True)
def toy_dataset():
    """Register the unpaired toy dataset for this module only."""
    dataset(TOY, options=ToyCfg, fields=META["fields"], task="unpaired")(
        lambda cfg, raw, seed: (two_domain_split(), two_domain_split(seed=1), dict(META))
    )
    yield
    DATASETS.unregister(TOY)


def variant(family: str = "cyclegan", **overrides):
    """A validated tiny variant of ``family`` on the toy dataset."""
    arch = {"cyclegan": "resnet", "discogan": "encoder_decoder"}[family]
    extra = {"residual_blocks": 1, "image_pool": 6} if family == "cyclegan" else {}
    cfg = {"dataset": TOY, "family": family, "arch": arch, "width": 4, "batch_size": 4,
           "steps": 4, **extra, **overrides}  # fmt: skip
    return validate_params({"variants": {"v": cfg}}).variant("v")


class Affine(nn.Module):
    """x -> scale * x + shift (a generator whose outputs are known by hand)."""

    def __init__(self, scale: float, shift: float) -> None:
        super().__init__()
        self.scale, self.shift = scale, shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x + self.shift


class MeanD(nn.Module):
    """x -> (B, 1, 1, 1) map holding w * mean(x) (a discriminator known by hand)."""

    def __init__(self, w: float) -> None:
        super().__init__()
        self.w = w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w * x.mean(dim=(1, 2, 3), keepdim=True)


A = torch.tensor([[[[0.5, -0.5], [1.0, 0.0]]], [[[-1.0, 0.25], [0.0, 0.5]]]])  # (2, 1, 2, 2)
B = torch.tensor([[[[0.0, 1.0], [-0.5, 0.5]]], [[[0.75, -0.25], [1.0, -1.0]]]])


def view(G: nn.Module, F_: nn.Module, D_A=None, D_B=None) -> TwoDomains:
    nets = {"G": G, "F": F_, "D_A": D_A or MeanD(1.0), "D_B": D_B or MeanD(1.0)}
    return TwoDomains(nets, A, B, G(A), F_(B))


# ---------------------------------------------------------------- networks
def test_resnet_generator_keeps_the_image_shape_in_tanh_range():
    G = ResnetGenerator(in_channels=1, out_channels=3, width=4, residual_blocks=2)
    out = G(torch.randn(2, 1, 32, 32) * 3)
    assert out.shape == (2, 3, 32, 32) and out.abs().max() <= 1
    # c7s1-k, d2k, d4k, n residual blocks, u2k, uk, c7s1-C: two halvings, 4k at the bottleneck
    convs = [m for m in G.modules() if isinstance(m, nn.Conv2d)]
    assert [m.stride[0] for m in convs[:3]] == [2 if i else 1 for i in range(3)]
    assert convs[2].out_channels == 16 and len(convs) == 3 + 2 * 2 + 1


def test_discogan_networks_go_down_to_four_by_four():
    G = EncoderDecoderGenerator(in_channels=1, out_channels=1, size=32, width=4)
    D = DiscoDiscriminator(channels=1, size=32, width=4)
    x = torch.randn(3, 1, 32, 32)
    assert G(x).shape == (3, 1, 32, 32) and D(x).shape == (3,)
    downs = [m for m in G.modules() if isinstance(m, nn.Conv2d)]
    assert len(downs) == 3 and downs[-1].out_channels == 16  # 32 -> 16 -> 8 -> 4
    assert sum(isinstance(m, nn.BatchNorm2d) for m in D.modules()) == 2  # none on layer 1
    with pytest.raises(ArchitectureError, match="power of 2"):
        DiscoDiscriminator(channels=1, size=24, width=4)


def test_arch_builders_return_both_generators_and_patch_discriminators():
    cfg = variant(cycle_patch_layers=1)
    nets = CYCLEGAN_ARCHS.build("resnet", META, cfg)
    x = torch.randn(2, 1, SIZE, SIZE)
    assert set(nets) == {"G", "F", "D_A", "D_B"}
    assert nets["G"](x).shape == x.shape and nets["F"](x).shape == x.shape
    assert nets["D_A"](x).shape == (2, 1, SIZE // 2 - 2, SIZE // 2 - 2)  # one logit per patch
    assert any(isinstance(m, nn.InstanceNorm2d) for m in nets["D_B"].modules())
    disco = DISCOGAN_ARCHS.build("encoder_decoder", META, variant("discogan"))
    assert disco["D_B"](x).shape == (2,) and disco["F"](x).shape == x.shape


# ---------------------------------------------------------------- terms
def test_cycle_and_identity_terms_vanish_for_identity_mappings():
    s = view(nn.Identity(), nn.Identity())
    for term in (CycleConsistency(10.0, l1), Identity(5.0, l1), CycleConsistency(1.0, mse)):
        value, _ = term.generator(s)
        assert value.item() == 0.0


def test_cycle_term_equals_the_hand_computed_l1():
    # G(a) = 2a, F(b) = b + 1: F(G(a)) - a = a + 1 and G(F(b)) - b = b + 2
    s = view(Affine(2.0, 0.0), Affine(1.0, 1.0))
    value, stats = CycleConsistency(10.0, l1).generator(s)
    cyc_a = (0.5 + 1.5 + 2.0 + 1.0 + 0.0 + 1.25 + 1.0 + 1.5) / 8  # mean |a + 1|
    cyc_b = (2.0 + 3.0 + 1.5 + 2.5 + 2.75 + 1.75 + 3.0 + 1.0) / 8  # mean |b + 2|
    assert stats == pytest.approx({"cycle_a": cyc_a, "cycle_b": cyc_b})
    assert_close(value, torch.tensor(10.0 * (cyc_a + cyc_b)))
    value, stats = CycleConsistency(1.0, mse, name="reconstruction").generator(s)
    rec_a = (0.25 + 2.25 + 4.0 + 1.0 + 0.0 + 1.5625 + 1.0 + 2.25) / 8  # mean (a + 1)^2
    assert stats["reconstruction_a"] == pytest.approx(rec_a)


def test_identity_term_equals_the_hand_computed_l1():
    # G(b) - b = b, F(a) - a = 1
    s = view(Affine(2.0, 0.0), Affine(1.0, 1.0))
    value, stats = Identity(5.0, l1).generator(s)
    idt_b = (0.0 + 1.0 + 0.5 + 0.5 + 0.75 + 0.25 + 1.0 + 1.0) / 8
    assert stats == pytest.approx({"identity_b": idt_b, "identity_a": 1.0})
    assert_close(value, torch.tensor(5.0 * (idt_b + 1.0)))


def least_squares_cfg(**overrides):
    cfg = {"loss": "least_squares", "ls_targets": (0.0, 1.0, 1.0), "cycle_weight": 10.0,
           "identity_weight": 0.5}  # fmt: skip
    return SimpleNamespace(**{**cfg, **overrides})


def test_cyclegan_objectives_by_hand():
    """G: LSGAN + lambda L_cyc + 0.5 lambda L_identity; D: half the LSGAN D loss of each D."""
    G, F_, D_A, D_B = Affine(2.0, 0.0), Affine(1.0, 1.0), MeanD(1.0), MeanD(-2.0)
    s = view(G, F_, D_A, D_B)
    loss_g, _ = total(cyclegan_terms(least_squares_cfg()), "generator", s)

    def mean_d(w, x):  # D(x) per sample
        return w * x.mean(dim=(1, 2, 3))

    adv = (
        0.5 * (mean_d(-2.0, 2 * A) - 1).pow(2).mean() + 0.5 * (mean_d(1.0, B + 1) - 1).pow(2).mean()
    )
    cyc = (A + 1).abs().mean() + (B + 2).abs().mean()
    idt = B.abs().mean() + 1.0
    assert_close(loss_g, adv + 10 * cyc + 0.5 * 10 * idt)

    loss_d, stats = total(cyclegan_terms(least_squares_cfg()), "discriminator", s)
    d_b = 0.5 * (mean_d(-2.0, B) - 1).pow(2).mean() + 0.5 * mean_d(-2.0, 2 * A).pow(2).mean()
    d_a = 0.5 * (mean_d(1.0, A) - 1).pow(2).mean() + 0.5 * mean_d(1.0, B + 1).pow(2).mean()
    assert_close(loss_d, 0.5 * (d_a + d_b))
    assert stats["adversarial_d_b"] == pytest.approx(d_b.item())


def test_discogan_has_no_identity_term_and_sums_gan_and_mse_reconstruction():
    cfg = SimpleNamespace(loss="nonsaturating", reconstruction_weight=0.7)
    terms = discogan_terms(cfg)
    assert not any(isinstance(t, Identity) for t in terms)
    assert [type(t) for t in terms] == [TwoAdversarial, CycleConsistency]
    G, F_, D_A, D_B = Affine(2.0, 0.0), Affine(1.0, 1.0), MeanD(1.0), MeanD(-2.0)
    loss_g, _ = total(terms, "generator", view(G, F_, D_A, D_B))
    adv = (
        F.softplus(2.0 * (2 * A).mean(dim=(1, 2, 3))).mean()
        + F.softplus(-(B + 1).mean(dim=(1, 2, 3))).mean()
    )  # -log sigmoid(D(fake)) per direction
    rec = (A + 1).pow(2).mean() + (B + 2).pow(2).mean()
    assert_close(loss_g, adv + 0.7 * rec)


def test_identity_weight_is_a_fraction_of_lambda():
    terms = cyclegan_terms(least_squares_cfg(cycle_weight=4.0))
    assert [t.weight for t in terms[1:]] == [4.0, 2.0]


# ---------------------------------------------------------------- image pool
def images(n: int, start: int = 0) -> torch.Tensor:
    """n distinguishable 1x1x1 images holding start, start + 1, ..."""
    return torch.arange(start, start + n, dtype=torch.float32).view(n, 1, 1, 1)


def test_pool_returns_the_new_images_while_filling_and_never_grows_beyond_its_size():
    pool = ImagePool(50, seed=0)
    for k in range(6):
        out = pool(images(8, 8 * k))
        if 8 * (k + 1) <= 50:
            assert torch.equal(out, images(8, 8 * k))
        assert len(pool) == min(50, 8 * (k + 1))
    for k in range(6, 30):
        pool(images(8, 8 * k))
        assert len(pool) == 50


def test_a_full_pool_mixes_history_and_new_images_half_and_half():
    pool = ImagePool(10, seed=3)
    pool(images(10))  # filled with 0 .. 9
    returned_new = 0
    for k in range(1, 101):
        batch = images(10, 10 * k)
        history = {float(x) for x in torch.stack(pool.images).flatten()}
        out = pool(batch)
        is_new = (out == batch).flatten()
        returned_new += int(is_new.sum())
        # the others were stored before, or stored by an earlier image of this batch
        for i in (~is_new).nonzero().flatten().tolist():
            assert out[i].item() in history | set(batch[:i].flatten().tolist())
    assert 400 < returned_new < 600  # p = 1/2 over 1000 seeded draws


def test_pool_returns_a_stored_image_and_keeps_the_new_one_in_its_place():
    pool = ImagePool(2, seed=0)
    pool(images(2))
    seen = set(pool(images(50, 100)).flatten().tolist())
    stored = {float(x) for x in torch.stack(pool.images).flatten()}
    assert seen <= set(range(100, 150)) | {0.0, 1.0}
    assert stored <= set(range(100, 150)) | {0.0, 1.0} and len(pool) == 2


def test_pool_is_deterministic_for_a_seed_and_its_state_round_trips():
    first, second = ImagePool(5, seed=7), ImagePool(5, seed=7)
    outs = [first(images(4, 4 * k)) for k in range(4)]
    assert all(torch.equal(o, second(images(4, 4 * k))) for k, o in enumerate(outs))
    state = first.state_dict()
    resumed = ImagePool(5, seed=123)
    resumed.load_state_dict(state)
    for k in range(4, 8):
        assert torch.equal(first(images(4, 4 * k)), resumed(images(4, 4 * k)))
    with pytest.raises(ValueError, match="holds 5 images"):
        ImagePool(3).load_state_dict(state)


def test_pool_of_size_zero_is_no_history():
    x = torch.randn(3, 1, 2, 2, requires_grad=True)
    out = ImagePool(0)(x)
    assert torch.equal(out, x) and not out.requires_grad


# ---------------------------------------------------------------- family
def test_params_load_refuses_a_dataset_without_two_domains():
    with pytest.raises(Exception, match="unpaired"):
        validate_params({"variants": {"v": {"dataset": "digits", "family": "cyclegan",
                                            "arch": "resnet"}}})  # fmt: skip
    with pytest.raises(Exception, match="image_pool"):  # a CycleGAN key on DiscoGAN
        variant("discogan", image_pool=3)
    cfg = variant()
    assert (cfg.loss, cfg.cycle_weight, cfg.identity_weight) == ("least_squares", 10.0, 0.5)
    assert variant("discogan").loss == "nonsaturating"


def train(cfg, steps: int, seed: int = 0, state=None):
    trainer, batches, ema, _ = build_trainer(cfg, two_domain_split(), META, seed, "cpu", 1)
    if state is not None:
        restore_training(state, trainer, batches)
    stats = [trainer.step(batches) for _ in range(steps)]
    return trainer, batches, ema, stats


@pytest.mark.parametrize("family", ["cyclegan", "discogan"])
def test_training_steps_are_seeded_and_finite(family):
    cfg = variant(family)
    t1, _, _, s1 = train(cfg, 3)
    t2, _, _, s2 = train(cfg, 3)
    assert s1 == s2
    for key in ("G", "F", "D_A", "D_B"):
        for p, q in zip(t1.modules[key].parameters(), t2.modules[key].parameters(), strict=True):
            assert torch.equal(p, q)
    for stats in s1:
        assert all(torch.isfinite(torch.tensor(v)) for v in stats.values())
        assert {"loss_g", "loss_d"} <= set(stats)
    assert ("identity_a" in s1[0]) == (family == "cyclegan")


def test_resume_restores_the_pools_and_continues_bit_for_bit():
    cfg = variant()  # batch 4, pool 6: after two steps the pools are full and mixing
    trainer, batches, _, _ = train(cfg, 2)
    state = training_snapshot(trainer, batches)
    state = _round_trip(state)
    assert len(state["trainer"]["pools"]["a"]["images"]) == 6
    continued = [trainer.step(batches) for _ in range(3)]
    resumed, _, _, again = train(cfg, 3, state=state)
    assert continued == again and resumed.steps == trainer.steps == 5
    for a, b in zip(trainer.pools["b"].images, resumed.pools["b"].images, strict=True):
        assert torch.equal(a, b)


def _round_trip(state: dict) -> dict:
    """Through torch.save / torch.load (weights_only), as the checkpoint stores it."""
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def test_ema_averages_g_only_and_the_sampler_translates_both_ways():
    cfg = variant(ema=0.5)
    trainer, _, ema, _ = train(cfg, 2)
    assert ema is not None and ema.key == "G" == FAMILIES.get("cyclegan").generator
    assert FAMILIES.get("cyclegan").saved_modules == ("G", "F")
    modules = {k: trainer.modules[k].eval() for k in ("G", "F")}
    s = sampler(modules, cfg, META)
    test = two_domain_split(seed=5)
    inputs = s.inputs(0, 6, "cpu", data=test)
    out = s.generate(inputs, batch_size=4)
    with torch.no_grad():
        assert_close(out, modules["G"](test["x"][:6]))
        assert_close(inputs["cycles"]["b2a"], modules["G"](modules["F"](test["x_b"][:6])))
    assert inputs["outputs"]["b2a"].shape == (6, 1, SIZE, SIZE)
