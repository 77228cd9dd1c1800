"""The GAN family's networks."""

from __future__ import annotations

from torch import nn

from genlab.nets import GAN_ARCHS, conditional


def build(meta: dict, cfg) -> dict[str, nn.Module]:
    """G and D: the arch's pair, or its label-conditional / InfoGAN form (dcgan)."""
    return conditional.build(meta, cfg) or GAN_ARCHS.build(cfg.arch, meta, cfg)
