"""Architectures, registered by name per family: ``build(meta, cfg) -> dict[str, nn.Module]``.

``meta`` is the prepared dataset's meta.json (kind, shape, num_classes); ``cfg`` the variant.
GAN builders return ``{"G": ..., "D": ...}`` (G maps (B, latent_dim) noise to data, D data to
one logit per sample); VAE builders return ``{"vae": ...}``.
"""

from genlab.nets import (  # noqa: F401  (registers the builders)
    attention,
    autoencoder,
    conditional,
    conv_vae,
    dcgan,
    mlp,
    progressive,
    style,
    vqvae,
)
from genlab.nets.base import GAN_ARCHS, VAE_ARCHS, ArchitectureError


def build_gan(meta: dict, cfg) -> dict:
    """G and D of a GAN variant: the arch's pair, or its label-conditional / InfoGAN form."""
    return conditional.build(meta, cfg) or GAN_ARCHS.build(cfg.arch, meta, cfg)


__all__ = ["GAN_ARCHS", "VAE_ARCHS", "ArchitectureError", "build_gan"]
