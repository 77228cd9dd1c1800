"""Registries and shared helpers for the architectures."""

from __future__ import annotations

from typing import Literal

from torch import nn

from genlab.errors import ArchitectureError
from genlab.options import Field, Option
from genlab.registry import Registry
from genlab.shapes import upsampling_plan

__all__ = [
    "GAN_ARCHS",
    "VAE_ARCHS",
    "ArchitectureError",
    "dcgan_init",
    "require_kind",
    "upsampling_plan",
]

# options several architectures read (declared once, so every owner agrees on the default)
ATTENTION = Option(int, Field(0, ge=0))  # SAGAN self-attention at this image side (0 = none)
D_NORM = Option(Literal["batch", "none"], "batch")  # D's normalisation (none for WGAN-GP)
DEPTH = Option(int, Field(3, ge=1))  # hidden layers of MLPs


def per_sample_critic(v) -> None:
    """A regulariser that needs each sample's gradient refuses a batch-normalised critic."""
    from genlab.objectives.regularizers import GAN_REGULARIZERS

    per_sample = [r for r in v.regularizers if GAN_REGULARIZERS.get(r).per_sample]
    if per_sample and v.d_norm != "none":
        raise ValueError(
            f"{per_sample[0]} on a batch-normalised critic: the per-sample gradient then "
            "depends on the batch (Gulrajani et al. 2017, sec. 4); set d_norm: none"
        )


GAN_ARCHS: Registry = Registry("arch")
VAE_ARCHS: Registry = Registry("arch")


def require_kind(arch: str, meta: dict, kind: str) -> None:
    if meta["kind"] != kind:
        raise ArchitectureError(
            f"arch {arch!r} needs a dataset of kind {kind!r}, but dataset "
            f"{meta['name']!r} is of kind {meta['kind']!r}; choose another arch or dataset"
        )


def dcgan_init(module: nn.Module) -> None:
    """DCGAN initialisation: conv weights N(0, 0.02), batch-norm scale N(1, 0.02), shift 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
