"""Registries and shared helpers for the architectures."""

from __future__ import annotations

from torch import nn

from genlab.registry import Registry

GAN_ARCHS: Registry = Registry("arch")
VAE_ARCHS: Registry = Registry("arch")


class ArchitectureError(ValueError):
    """An architecture that cannot be built for this dataset (e.g. dcgan on 2-D points)."""


def require_kind(arch: str, meta: dict, kind: str) -> None:
    if meta["kind"] != kind:
        raise ArchitectureError(
            f"arch {arch!r} needs a dataset of kind {kind!r}, but dataset "
            f"{meta['name']!r} is of kind {meta['kind']!r}; choose another arch or dataset"
        )


def upsampling_plan(arch: str, size: int) -> tuple[int, int]:
    """(start, n): the image side is start * 2**n with 3 <= start <= 7, n as large as possible.

    8 -> (4, 1), 28 -> (7, 2), 32 -> (4, 3), 64 -> (4, 4).
    """
    n = 0
    while size % (2 ** (n + 1)) == 0 and size // 2 ** (n + 1) >= 4:
        n += 1
    start = size // 2**n
    if start > 7 or n == 0:
        raise ArchitectureError(
            f"arch {arch!r} needs an image side of the form s * 2**n with 4 <= s <= 7 and "
            f"n >= 1 (8, 12, 16, 28, 32, 64, ...); got {size}"
        )
    return start, n


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
