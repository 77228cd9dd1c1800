"""Every registered architecture and loss builds and takes a training step on CPU."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from genlab.config import validate_params
from genlab.data import load_prepared
from genlab.data.stream import BatchStream
from genlab.families import FAMILIES
from genlab.nets import GAN_ARCHS, ArchitectureError
from genlab.nets.base import upsampling_plan
from genlab.objectives import GAN_LOSSES
from genlab.objectives.regularizers import GAN_REGULARIZERS
from genlab.options import declared
from genlab.runtime import configure_determinism
from tests.conftest import step_rows, tiny_params_dict

ARCH_DATASET = {"biggan": "digits", "dcgan": "digits", "dcgan_ae": "digits", "mlp": "ring8",
                "mlp_ae": "ring8", "conv_vae": "digits", "style": "digits",
                "progressive": "digits"}  # fmt: skip
REGULARIZER_CHOICES = [{}] + [{name: {"weight": 1.0}} for name in GAN_REGULARIZERS]


def variant(**kw):
    raw = tiny_params_dict()
    raw["variants"] = {"v": {"latent_dim": 4, "width": 8, **kw}}
    return validate_params(raw).variant("v")


def step_once(root, cfg, steps: int = 2) -> list[dict]:
    configure_determinism(0)
    train, _, meta = load_prepared(root, cfg.dataset)
    trainer = FAMILIES.get(cfg.family).trainer(cfg, meta, torch.device("cpu"), 0)
    batches = BatchStream(train, cfg.batch_size, 0, torch.device("cpu"))
    return step_rows(trainer, batches, steps)


def assert_finite_gan_stats(stats_list):
    for stats in stats_list:
        assert all(math.isfinite(v) for v in stats.values()), stats
        assert {"loss_d", "loss_g", "d_real", "d_fake", "grad_norm_d", "grad_norm_g"} <= set(stats)


@pytest.mark.parametrize("regularizers", REGULARIZER_CHOICES, ids=str)
@pytest.mark.parametrize("loss", GAN_LOSSES.names())
def test_every_loss_with_every_regularizer_steps(tiny_project, loss, regularizers):
    root, _ = tiny_project
    energy = {"arch": "mlp_ae", "pull_away": 0.1} if loss == "energy" else {"arch": "mlp"}
    cfg = variant(dataset="ring8", family="gan", loss=loss, regularizers=regularizers,
                  d_steps=2, **energy)  # fmt: skip
    assert_finite_gan_stats(step_once(root, cfg))


@pytest.mark.parametrize("arch", GAN_ARCHS.names())
def test_every_gan_arch_steps(tiny_project, arch):
    root, _ = tiny_project
    loss = "energy" if arch.endswith("_ae") else "nonsaturating"
    regularizers = {"spectral_norm": {}, "r1": {"weight": 1.0, "every": 2}}
    if arch == "biggan":  # spectral norm is part of the arch (refused as a regulariser)
        regularizers = {"r1": {"weight": 1.0, "every": 2}}
    # these regularisers refuse a batch-normalised D: layer norm where the arch has a D norm
    norm = {"d_norm": "layer"} if "d_norm" in declared(GAN_ARCHS.get(arch)).options else {}
    cfg = variant(dataset=ARCH_DATASET[arch], family="gan", arch=arch, loss=loss,
                  regularizers=regularizers, **norm)  # fmt: skip
    assert_finite_gan_stats(step_once(root, cfg))


def test_energy_loss_needs_an_autoencoder_discriminator():
    from genlab.config import ConfigError

    with pytest.raises(ConfigError, match="needs an autoencoder discriminator.*dcgan_ae, mlp_ae"):
        variant(dataset="ring8", family="gan", arch="mlp", loss="energy")
    with pytest.raises(ArchitectureError, match="allowed arch: dcgan_ae, mlp_ae"):
        GAN_LOSSES.build("energy").setup(torch.nn.Identity(), torch.nn.Linear(2, 1))


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_vae_steps(tiny_project, likelihood, precision):
    root, _ = tiny_project
    cfg = variant(dataset="digits", family="vae", arch="conv_vae", likelihood=likelihood,
                  precision=precision)  # fmt: skip
    for stats in step_once(root, cfg):
        assert all(math.isfinite(v) for v in stats.values()), stats
        assert stats["elbo"] == pytest.approx(-(stats["recon"] + stats["kl"]), rel=1e-5)


def test_bf16_gan_step(tiny_project):
    root, _ = tiny_project
    cfg = variant(dataset="digits", family="gan", arch="dcgan", precision="bf16")
    assert all(math.isfinite(v) for v in step_once(root, cfg)[-1].values())


@pytest.mark.parametrize(("size", "plan"), [(8, (4, 1)), (28, (7, 2)), (32, (4, 3)), (64, (4, 4))])
def test_dcgan_is_sized_from_resolution(size, plan):
    assert upsampling_plan("dcgan", size) == plan
    cfg = variant(dataset="digits", family="gan", arch="dcgan")
    meta = {"name": "x", "kind": "image", "shape": [3, size, size], "num_classes": 10}
    nets = GAN_ARCHS.build("dcgan", meta, cfg)
    x = nets["G"](torch.randn(5, cfg.latent_dim))
    assert x.shape == (5, 3, size, size) and x.abs().max() <= 1
    assert nets["D"](x).shape == (5,)


def test_dcgan_follows_the_guidelines():
    """Radford et al.: strided convs in D, transposed convs in G, batch norm, no pooling, no fully
    connected hidden layers, ReLU + Tanh output in G, LeakyReLU in D."""
    cfg = variant(dataset="digits", family="gan", arch="dcgan")
    meta = {"name": "digits", "kind": "image", "shape": [1, 8, 8], "num_classes": 10}
    nets = GAN_ARCHS.build("dcgan", meta, cfg)
    G, D = (list(nets[k].modules()) for k in ("G", "D"))
    for mods in (G, D):
        assert not any(isinstance(m, (nn.Linear, nn.MaxPool2d, nn.AvgPool2d)) for m in mods)
        assert any(isinstance(m, nn.BatchNorm2d) for m in mods)
    assert any(isinstance(m, nn.ConvTranspose2d) and m.stride == (2, 2) for m in G)
    assert not any(isinstance(m, nn.Conv2d) for m in G)
    assert isinstance(G[-1], nn.Tanh) and any(isinstance(m, nn.ReLU) for m in G)
    assert any(isinstance(m, nn.Conv2d) and m.stride == (2, 2) for m in D)
    assert not any(isinstance(m, (nn.ReLU, nn.ConvTranspose2d)) for m in D)
    assert any(isinstance(m, nn.LeakyReLU) for m in D)


def test_arch_on_wrong_kind_of_data_is_a_clear_error():
    cfg = variant(dataset="ring8", family="gan", arch="dcgan")
    meta = {"name": "ring8", "kind": "points", "shape": [2], "num_classes": 8}
    with pytest.raises(ArchitectureError, match="arch 'dcgan' needs a dataset of kind 'image'"):
        GAN_ARCHS.build("dcgan", meta, cfg)
    with pytest.raises(ArchitectureError, match="got 25"):
        upsampling_plan("dcgan", 25)


def test_dcgan_critic_without_batch_norm_for_gradient_penalties():
    cfg = variant(dataset="digits", family="gan", arch="dcgan", d_norm="none")
    meta = {"name": "digits", "kind": "image", "shape": [1, 8, 8], "num_classes": 10}
    nets = GAN_ARCHS.build("dcgan", meta, cfg)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in nets["D"].modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in nets["G"].modules())
    # per-sample independence: D's output for a sample does not depend on the rest of the batch
    x = torch.randn(6, 1, 8, 8)
    nets["D"].train()
    torch.testing.assert_close(nets["D"](x)[:2], nets["D"](x[:2]))


# ---------------------------------------------------------------- d_norm
DIGITS = {"name": "digits", "kind": "image", "shape": [1, 8, 8], "num_classes": 10}
RING = {"name": "ring8", "kind": "points", "shape": [2], "num_classes": 8}
D_OF = {  # a D with each way of building it: variant keys, meta, whether D takes labels
    "dcgan": ({"arch": "dcgan"}, DIGITS, False),
    "projection": ({"arch": "dcgan", "g_condition": "cbn", "d_condition": "projection"}, DIGITS,
                   True),
    "concat": ({"arch": "dcgan", "g_condition": "concat", "d_condition": "concat"}, DIGITS, True),
    "infogan": ({"arch": "dcgan", "info_categorical": 3, "info_continuous": 1}, DIGITS, False),
    "style": ({"arch": "style"}, DIGITS, False),
    "dcgan_ae": ({"arch": "dcgan_ae", "loss": "energy"}, DIGITS, False),
    "mlp_ae": ({"arch": "mlp_ae", "loss": "energy", "dataset": "ring8"}, RING, False),
}  # fmt: skip


def build_d(name: str, d_norm: str | None) -> tuple[nn.Module, dict]:
    keys, meta, _ = D_OF[name]
    norm = {} if d_norm is None else {"d_norm": d_norm}
    cfg = variant(**{"dataset": "digits", "family": "gan", **keys, **norm})
    torch.manual_seed(0)
    return FAMILIES.get("gan").build(meta, cfg)["D"], meta


def d_outputs(name: str, D: nn.Module, x: torch.Tensor) -> torch.Tensor:
    if D_OF[name][2]:
        return D(x, torch.arange(len(x)) % 10)
    return D(x)


@pytest.mark.parametrize("d_norm", ["none", "layer", "batch"])
@pytest.mark.parametrize("name", ["dcgan", "projection", "dcgan_ae"])
def test_d_output_is_per_sample_without_batch_norm(name, d_norm):
    """With d_norm none or layer, changing one sample of a batch leaves D's output for every other
    sample exactly as it was (training mode); batch norm couples them."""
    D, meta = build_d(name, d_norm)
    D.train()
    x = torch.randn(6, *meta["shape"], generator=torch.Generator().manual_seed(1))
    changed = x.clone()
    changed[0] = torch.randn(meta["shape"], generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        before, after = d_outputs(name, D, x), d_outputs(name, D, changed)
    assert before[0] != after[0]
    # the same computation on the same values: equal to the last bit without batch statistics
    assert torch.equal(before[1:], after[1:]) == (d_norm != "batch")


def test_mlp_ae_energy_is_per_sample():
    """mlp_ae has no normalisation (it does not read d_norm)."""
    D, meta = build_d("mlp_ae", None)
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(1))
    changed = torch.cat([torch.zeros(1, 2), x[1:]])
    assert torch.equal(D(x)[1:], D(changed)[1:])


@pytest.mark.parametrize("name", [n for n in D_OF if n != "mlp_ae"])
def test_d_norm_layer_is_group_norm_of_one_group(name):
    """d_norm: layer puts GroupNorm(1, C) (layer norm over C, H, W, per-channel scale and shift)
    where batch puts BatchNorm2d, in D only; none puts neither, and a bias on the convolution."""
    layer, _ = build_d(name, "layer")
    batch, _ = build_d(name, "batch")
    none, _ = build_d(name, "none")
    norms = [m for m in layer.modules() if isinstance(m, nn.GroupNorm)]
    bns = [m for m in batch.modules() if isinstance(m, nn.BatchNorm2d)]
    assert norms and [m.num_groups for m in norms] == [1] * len(norms)
    assert [m.num_channels for m in norms] == [m.num_features for m in bns]
    assert not any(isinstance(m, nn.BatchNorm2d) for m in layer.modules())
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) for m in none.modules())
    convs = (nn.Conv2d, nn.ConvTranspose2d)
    no_bias = {k: [m.bias is None for m in d.modules() if isinstance(m, convs)]
               for k, d in (("layer", layer), ("batch", batch), ("none", none))}  # fmt: skip
    assert no_bias["layer"] == no_bias["batch"] and not any(no_bias["none"])
