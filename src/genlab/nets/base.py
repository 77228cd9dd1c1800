"""Registries and shared helpers for the architectures."""

from __future__ import annotations

from torch import nn

from genlab.errors import ArchitectureError
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
