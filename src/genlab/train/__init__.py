"""Training: one loop per family, resolved by name through ``FAMILIES``."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from genlab.nets import GAN_ARCHS, VAE_ARCHS
from genlab.nets.vqvae import VQ_ARCHS, VQ_LOSSES
from genlab.objectives import GAN_LOSSES, VAE_LOSSES
from genlab.objectives.regularizers import GAN_REGULARIZERS
from genlab.registry import Registry


@dataclass(frozen=True)
class Family:
    """What a model family offers: its architectures, losses, regularisers and trainer."""

    archs: Registry
    losses: Registry
    regularizers: Registry
    default_loss: str
    trainer: Callable  # (cfg, meta, device, seed) -> a trainer (see train/gan.py)


def _gan_trainer(*args):
    from genlab.train.gan import GANTrainer

    return GANTrainer(*args)


def _vae_trainer(*args):
    from genlab.train.vae import VAETrainer

    return VAETrainer(*args)


def _vqvae_trainer(*args):
    from genlab.train.vqvae import VQVAETrainer

    return VQVAETrainer(*args)


FAMILIES: Registry = Registry("family")
FAMILIES.register("gan")(
    Family(GAN_ARCHS, GAN_LOSSES, GAN_REGULARIZERS, "nonsaturating", _gan_trainer)
)
FAMILIES.register("vae")(
    Family(VAE_ARCHS, VAE_LOSSES, Registry("regularizer"), "elbo", _vae_trainer)
)
FAMILIES.register("vqvae")(
    Family(VQ_ARCHS, VQ_LOSSES, Registry("regularizer"), "vq", _vqvae_trainer)
)
