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
from genlab.runtime import configure_determinism
from tests.conftest import tiny_params_dict

ARCH_DATASET = {"dcgan": "digits", "dcgan_ae": "digits", "mlp": "ring8", "mlp_ae": "ring8",
                "conv_vae": "digits", "style": "digits", "progressive": "digits"}  # fmt: skip
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
    return [trainer.step(batches) for _ in range(steps)]


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
    cfg = variant(dataset=ARCH_DATASET[arch], family="gan", arch=arch, loss=loss,
                  regularizers=regularizers)  # fmt: skip
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
