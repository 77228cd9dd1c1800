"""SPADE (Park et al. 2019): eq. 1 by hand, the locality of the modulation, the generator, the
discriminator's features, the hinge and feature-matching terms, deterministic training steps
with an exact resume, the seeded sampler, and the family's dataset rule."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from genlab.config import ConfigError, validate_params
from genlab.data.base import DATASETS, dataset
from genlab.families import FAMILIES
from genlab.families.spade import sampler
from genlab.families.spade.trainer import SPADETrainer, feature_matching
from genlab.families.translation import TRANSLATION_LOSSES
from genlab.nets.spade import SPADE, SPADEDiscriminator, SPADEGenerator, one_hot_map
from genlab.options import Options
from genlab.train.loop import build_trainer
from tests.conftest import restore_training, training_snapshot

SIDE = 8
FIELDS = {"source": {"kind": "labelmap"}, "x": {"kind": "image"}, "y": {"kind": "class"}}


def toy_split(n: int, seed: int) -> dict[str, torch.Tensor]:
    """Class 0: a horizontal bar, class 1: a vertical one, at a random offset; the map marks the
    bar with c + 1, the target image is +1 on the bar and -1 elsewhere."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(2, (n,), generator=gen)
    offset = torch.randint(1, SIDE - 3, (n,), generator=gen)
    source = torch.zeros(n, SIDE, SIDE, dtype=torch.long)
    for i in range(n):
        o = int(offset[i])
        if y[i] == 0:
            source[i, o : o + 2, 1:-1] = 1
        else:
            source[i, 1:-1, o : o + 2] = 2
    x = torch.where(source > 0, 1.0, -1.0)[:, None]
    return {"source": source, "x": x, "y": y}


META = {
    "name": "spade_toy",
    "kind": "image",
    "shape": [1, SIDE, SIDE],
    "source_shape": [SIDE, SIDE],
    "num_classes": 2,
    "label_classes": 3,
    "fields": FIELDS,
    "translation": {
        "task": "labelmap",
        "directions": [{"name": "", "source": "source", "target": "x", "labels": "y",
                        "paired": True}],
    },
}  # fmt: skip


class NoOptions(Options):
    pass


@pytest.fixture(scope="module", autouse=True)
def toy_datasets():
    """A label-map and a paired toy dataset, registered for this module's tests."""

    def build(cfg, raw, seed):
        return toy_split(64, seed), toy_split(16, seed + 1), META

    dataset("spade_toy", options=NoOptions, fields=FIELDS, task="labelmap")(build)
    dataset("paired_toy", options=NoOptions, fields=FIELDS, task="paired")(build)
    yield
    DATASETS.unregister("spade_toy")
    DATASETS.unregister("paired_toy")


def variant(**overrides):
    cfg = {"dataset": "spade_toy", "family": "spade", "arch": "spade", "latent_dim": 4,
           "width": 4, "steps": 4, "batch_size": 8, "spade_d_layers": 1,
           "optimizer": {"lr": 1e-4, "betas": [0.0, 0.999]},
           "optimizer_d": {"lr": 4e-4, "betas": [0.0, 0.999]}, **overrides}  # fmt: skip
    return validate_params({"variants": {"v": cfg}}).variant("v")


# ---------------------------------------------------------------- SPADE, eq. 1
def test_spade_is_eq_1_by_hand():
    """1 x 1 convolutions on a one-hot map make gamma and beta a per-class table:
    gamma_c = W_g relu(W_s[:, c] + b_s) + b_g; the map is upsampled 2x (nearest)."""
    torch.manual_seed(0)
    spade = SPADE(norm_channels=2, label_channels=3, hidden=2, kernel_size=1)
    W_s = torch.tensor([[1.0, -2.0, 0.5], [0.0, 1.0, -1.0]])
    b_s = torch.tensor([0.1, 0.2])
    W_g, b_g = torch.tensor([[1.0, 2.0], [-1.0, 0.5]]), torch.tensor([0.0, 0.3])
    W_b, b_b = torch.tensor([[0.5, 0.0], [1.0, -1.0]]), torch.tensor([-0.2, 0.1])
    with torch.no_grad():
        for conv, (W, b) in ((spade.shared[0], (W_s, b_s)), (spade.gamma, (W_g, b_g)),
                             (spade.beta, (W_b, b_b))):  # fmt: skip
            conv.weight.copy_(W[:, :, None, None])
            conv.bias.copy_(b)
    x = torch.randn(2, 2, 4, 4)
    labels = torch.tensor([[[0, 1], [2, 1]], [[2, 2], [0, 1]]])
    out = spade(x, one_hot_map(labels, 3))

    hidden = (W_s + b_s[:, None]).clamp(min=0)  # (hidden, class)
    gamma_of, beta_of = W_g @ hidden + b_g[:, None], W_b @ hidden + b_b[:, None]  # (C, class)
    up = labels.repeat_interleave(2, 1).repeat_interleave(2, 2)  # (B, 4, 4)
    gamma = gamma_of[:, up].permute(1, 0, 2, 3)
    beta = beta_of[:, up].permute(1, 0, 2, 3)
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    var = x.var(dim=(0, 2, 3), unbiased=False, keepdim=True)
    expected = (x - mean) / torch.sqrt(var + 1e-5) * (1 + gamma) + beta
    assert_close(out, expected)


def test_spade_modulation_is_local_to_the_changed_region():
    """Two 3 x 3 convolutions see 5 x 5 pixels: relabelling pixel (5, 5) changes the output
    within 2 pixels of it and nowhere else (the batch-norm statistics come from x alone)."""
    torch.manual_seed(1)
    spade = SPADE(norm_channels=3, label_channels=4, hidden=8)
    x = torch.randn(2, 3, 12, 12)
    labels = torch.randint(4, (2, 12, 12))
    changed = labels.clone()
    changed[0, 5, 5] = (labels[0, 5, 5] + 1) % 4
    diff = (spade(x, one_hot_map(changed, 4)) - spade(x, one_hot_map(labels, 4))).abs().sum(1)
    near = torch.zeros(12, 12, dtype=torch.bool)
    near[3:8, 3:8] = True
    assert diff[0][near].max() > 1e-3
    assert diff[0][~near].max() == 0 and diff[1].max() == 0


def test_spade_norm_has_no_parameters_and_the_map_is_resized_nearest():
    spade = SPADE(norm_channels=2, label_channels=3, hidden=4)
    assert not spade.norm.affine
    m = one_hot_map(torch.tensor([[[0, 1], [2, 0]]]), 3)
    x = torch.zeros(1, 2, 4, 4)
    gamma, beta = spade.modulation(x, m)
    up = torch.nn.functional.interpolate(m, size=4, mode="nearest")
    g_up, b_up = spade.gamma(spade.shared(up)), spade.beta(spade.shared(up))
    assert_close(gamma, g_up)
    assert_close(beta, b_up)


# ---------------------------------------------------------------- networks
def test_generator_shape_range_and_inputs():
    torch.manual_seed(0)
    G = SPADEGenerator(latent_dim=4, label_classes=3, channels=1, size=32, width=4, hidden=8)
    split = toy_split(6, 0)
    labels = torch.nn.functional.interpolate(split["source"][:, None].float(), size=32)
    labels = labels[:, 0].long()
    z = torch.randn(6, 4)
    out = G(z, labels)
    assert out.shape == (6, 1, 32, 32)
    assert out.abs().max() <= 1
    G.eval()
    a, b = G(z, labels), G(z, labels.flip(0))
    assert (a - b).abs().amax(dim=(1, 2, 3)).min() > 0  # another map, another image
    assert (a - G(z + 1, labels)).abs().max() > 0  # another z, another image
    sides = [blk.norm_0.norm.num_features for blk in [G.head, *G.ups]]
    assert sides == [32, 32, 16, 8]  # 8 width at 4 x 4, halved per doubling down to width


def test_residual_block_learns_the_shortcut_only_when_channels_change():
    from genlab.nets.spade import SPADEResBlock

    same, change = SPADEResBlock(4, 4, 3, 8), SPADEResBlock(8, 4, 3, 8)
    assert not same.learned_shortcut and not hasattr(same, "conv_s")
    assert change.learned_shortcut and change.conv_s.bias is None
    m = one_hot_map(torch.randint(3, (2, 6, 6)), 3)
    with torch.no_grad():  # zero residual path: the block is its shortcut
        for blk in (same, change):
            blk.conv_1.weight.zero_()
            blk.conv_1.bias.zero_()
    x = torch.randn(2, 4, 6, 6)
    assert_close(same(x, m), x)
    x8 = torch.randn(2, 8, 6, 6)
    assert_close(change(x8, m), change.conv_s(change.norm_s(x8, m)))


def test_discriminator_sees_map_and_image_and_returns_its_features():
    torch.manual_seed(0)
    D = SPADEDiscriminator(label_classes=3, channels=1, width=4, layers=1)
    split = toy_split(4, 0)
    feats, logits = D.features(split["source"], split["x"])
    assert_close(logits, D(split["source"], split["x"]))
    assert len(feats) == 2  # after the first conv and after the stride-1 block
    assert [f.shape[-1] for f in feats] == [4, 3] and logits.shape == (4, 1, 2, 2)
    assert D.patch.net[0].parametrizations.weight.original.shape[1] == 3 + 1  # one-hot + image
    assert (D(split["source"].flip(0), split["x"]) - logits).abs().max() > 0


# ---------------------------------------------------------------- losses
def test_hinge_terms_by_hand_on_a_patch_map():
    hinge = TRANSLATION_LOSSES.build("hinge")
    d_real = torch.tensor([[[[2.0, 0.5], [-1.0, 0.0]]]])
    d_fake = torch.tensor([[[[-2.0, 0.5], [1.0, -0.5]]]])
    loss_d, _ = hinge.discriminator(d_real, d_fake)
    real_terms = [0.0, 0.5, 2.0, 1.0]  # max(0, 1 - d) for 2, 0.5, -1, 0
    fake_terms = [0.0, 1.5, 2.0, 0.5]  # max(0, 1 + d) for -2, 0.5, 1, -0.5
    assert_close(loss_d, torch.tensor(sum(real_terms) / 4 + sum(fake_terms) / 4))
    loss_g, _ = hinge.generator(d_fake)
    assert_close(loss_g, torch.tensor(-(-2.0 + 0.5 + 1.0 - 0.5) / 4))


def test_feature_matching_by_hand_and_only_g_gets_its_gradient():
    real = [torch.tensor([1.0, 2.0]), torch.tensor([[0.0, 0.0], [1.0, 1.0]])]
    fake = [torch.tensor([0.0, 4.0], requires_grad=True),
            torch.tensor([[1.0, 0.0], [1.0, -1.0]], requires_grad=True)]  # fmt: skip
    for r in real:
        r.requires_grad_(True)
    fm = feature_matching(real, fake)
    assert_close(fm, torch.tensor((1 + 2) / 2 + (1 + 0 + 0 + 2) / 4))
    fm.backward()
    assert all(r.grad is None for r in real)
    assert_close(fake[0].grad, torch.tensor([-0.5, 0.5]))


# ---------------------------------------------------------------- training
def steps(cfg, n: int, seed: int = 0, state: dict | None = None):
    trainer, batches, _, _ = build_trainer(cfg, toy_split(64, 0), META, seed, "cpu", 1)
    if state is not None:
        restore_training(state, trainer, batches)
    stats = [trainer.step(batches) for _ in range(n)]
    return trainer, batches, stats


def test_training_steps_are_deterministic_and_resume_exactly():
    cfg = variant()
    a, _, stats_a = steps(cfg, 4)
    b, _, stats_b = steps(cfg, 4)
    assert stats_a == stats_b
    assert all(k in stats_a[0] for k in ("loss_d", "loss_g", "feature_matching", "grad_norm_g"))
    assert stats_a[-1]["feature_matching"] > 0
    first, batches, _ = steps(cfg, 2)
    resumed, _, _ = steps(cfg, 2, state=training_snapshot(first, batches))
    for key in ("G", "D"):
        after = resumed.modules[key].state_dict()
        for name, p in a.modules[key].state_dict().items():
            assert torch.equal(p, after[name]), f"{key}.{name} differs after resuming"


def test_trainer_uses_the_two_time_scale_rates_and_the_feature_matching_weight():
    cfg = variant(spade_feature_matching=0.0)
    trainer = SPADETrainer(cfg, META, torch.device("cpu"), 0)
    assert trainer.opt_g.param_groups[0]["lr"] == 1e-4
    assert trainer.opt_d.param_groups[0]["lr"] == 4e-4
    assert trainer.opt_d.param_groups[0]["betas"] == (0.0, 0.999)
    _, _, stats = steps(cfg, 1)
    assert stats[0]["feature_matching"] == 0
    assert stats[0]["loss_g"] == stats[0]["loss_g_adversarial"]


def test_sampler_translates_the_test_maps_with_seeded_noise():
    torch.manual_seed(0)
    G = SPADEGenerator(latent_dim=4, label_classes=3, channels=1, size=SIDE, width=4, hidden=8)
    G.eval()
    cfg = variant()
    test = toy_split(10, 3)
    s = sampler({"G": G}, cfg, META)

    def run(seed: int) -> torch.Tensor:
        inputs = s.inputs(seed, 6, "cpu", data=test)
        return s.generate(inputs, batch_size=4)

    out = run(5)
    assert out.shape == (6, 1, SIDE, SIDE)
    assert torch.equal(out, run(5))
    assert not torch.equal(out, run(6))


# ---------------------------------------------------------------- the family's rules
def test_family_declarations():
    family = FAMILIES.get("spade")
    assert family.default_loss == "hinge" and family.generator == "G"
    assert family.saved_modules == ("G",) and family.metrics == ("translation",)
    assert variant().loss == "hinge"
    assert variant().spade_feature_matching == 10.0


def test_a_paired_dataset_is_refused_at_params_load():
    with pytest.raises(ConfigError, match="dataset = 'paired_toy'.*allowed.*spade_toy"):
        variant(dataset="paired_toy")


def test_a_discriminator_too_deep_for_the_image_is_refused():
    from genlab.nets.base import ArchitectureError

    with pytest.raises(ArchitectureError, match="spade_d_layers <= 1"):
        SPADETrainer(variant(spade_d_layers=2), META, torch.device("cpu"), 0)
