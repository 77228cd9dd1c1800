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
    "feature_norm",
    "require_kind",
    "upsampling_plan",
]

# options several architectures read (declared once, so every owner agrees on the default)
ATTENTION = Option(int, Field(0, ge=0))  # SAGAN self-attention at this image side (0 = none)
D_NORM = Option(Literal["batch", "none", "layer"], "batch")  # D's normalisation (feature_norm)
DEPTH = Option(int, Field(3, ge=1))  # hidden layers of MLPs


def feature_norm(kind: str, channels: int) -> list[nn.Module]:
    """The normalisation of a convolution block: ``batch`` (DCGAN), ``none``, or ``layer``.

    ``layer`` is ``GroupNorm(1, C)``: each sample normalised over its (C, H, W) features with a
    per-channel scale and shift (Ba et al. 2016; Wu & He 2018, sec. 3: one group is layer
    norm). Gulrajani et al. (2017, sec. 4) suggest it for a critic in place of batch norm: the
    statistics are the sample's own, so D(x_i) does not depend on the other samples of the batch.
    ``nn.LayerNorm([C, H, W])`` would normalise the same way but learn a scale per pixel, tied to
    the resolution."""
    if kind == "batch":
        return [nn.BatchNorm2d(channels)]
    if kind == "layer":
        return [nn.GroupNorm(1, channels)]
    if kind == "none":
        return []
    raise ArchitectureError(f"norm = {kind!r}; allowed: batch, layer, none")


def per_sample_critic(v) -> None:
    """Regularisers defined for a D without batch norm (spectral norm, R1, R2, the gradient
    penalty: ``Regularizer.no_batch_norm`` says why) refuse ``d_norm: batch``."""
    from genlab.objectives.regularizers import GAN_REGULARIZERS

    if v.d_norm != "batch":
        return
    for name in v.regularizers:
        why = GAN_REGULARIZERS.get(name).no_batch_norm
        if why:
            raise ValueError(
                f"d_norm = 'batch' with regularizer {name!r}: {why}; allowed with {name}: "
                "d_norm: none or d_norm: layer"
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
