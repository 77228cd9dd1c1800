"""Architectures, registered by name per family: ``build(meta, cfg) -> dict[str, nn.Module]``.

``meta`` is the prepared dataset's meta.json (kind, shape, num_classes); ``cfg`` the variant.
Each builder declares the variant keys it reads (``genlab.options.declare``). GAN builders
return ``{"G": ..., "D": ...}`` (G maps (B, latent_dim) noise to data, D data to
one logit per sample); VAE builders return ``{"vae": ...}``.
"""

from genlab.nets import (  # noqa: F401  (registers the builders)
    attention,
    autoencoder,
    biggan,
    conditional,
    conv_vae,
    dcgan,
    mlp,
    progressive,
    style,
    vqvae,
)
from genlab.nets.base import GAN_ARCHS, VAE_ARCHS, ArchitectureError

__all__ = ["GAN_ARCHS", "VAE_ARCHS", "ArchitectureError"]
