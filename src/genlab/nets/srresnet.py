"""SRResNet and the SRGAN discriminator (Ledig et al. 2017, Fig. 4), sized by ``width``.

Generator: a 9x9 convolution and PReLU; ``residual_blocks`` blocks conv3-BN-PReLU-conv3-BN with
an identity skip; conv3-BN and a long skip from the first activation; log2(scale) upsampling
blocks conv3 (4 ``width`` channels) -> PixelShuffle(2) (Shi et al. 2016) -> PReLU; a 9x9
convolution to the image channels. The paper leaves the last layer linear; here a tanh puts the
output in [-1, 1], the range of the target images (tanh rather than a clamp: no zero gradient
where the net overshoots). With ``bicubic_skip`` (not in the paper) the net learns the residual
to bicubic upsampling of its input, as VDSR does (Kim et al. 2016, global residual learning):
the last convolution starts at zero, so training starts from the bicubic baseline, and the
output is bicubic + residual clamped to [-1, 1]; a CPU-sized run then need not relearn the whole
image.

Discriminator: LeakyReLU(0.2) convolutions k3n64s1, k3n64s2, k3n128s1, k3n128s2, ... (batch norm
on all but the first), channels doubling every pair, with ``width`` in place of 64; pairs are
added until the map is 4x4 or smaller (the paper's 96x96 input ends at 6x6 after four pairs; a
32x32 one ends at 4x4 after three), then dense 16 ``width`` (1024 at the paper's width 64),
LeakyReLU, dense 1: one logit per image. D sees high-resolution images only (real or G's).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from genlab.nets.base import ArchitectureError
from genlab.options import Field, Option, declare
from genlab.registry import Registry

SR_ARCHS: Registry = Registry("arch")
DEFAULT_WIDTH = 32  # the paper's 64, halved for 8x8 -> 32x32 images on a CPU
RESIDUAL_BLOCKS = Option(int, Field(4, ge=0, le=64))  # the paper's B = 16
BICUBIC_SKIP = Option(bool, False)  # learn the residual to bicubic upsampling (VDSR); not in SRGAN


def upsampling_steps(scale: int) -> int:
    """log2(scale): the x2 pixel-shuffle blocks a scale needs (ArchitectureError unless the scale
    is a power of 2, at least 2)."""
    if not isinstance(scale, int) or scale < 2 or scale & (scale - 1):
        raise ArchitectureError(
            f"scale = {scale!r}: SRResNet upsamples by x2 pixel-shuffle blocks, so the scale "
            "must be a power of 2 (2, 4, 8, ...)"
        )
    return scale.bit_length() - 1


class ResidualBlock(nn.Module):
    """x + BN(conv3(PReLU(BN(conv3(x))))) (Ledig et al. Fig. 4, after Gross & Wilber 2016)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.PReLU(channels),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


def upsample_block(channels: int) -> list[nn.Module]:
    """conv3 to 4C channels, PixelShuffle(2) to C channels at twice the side, PReLU."""
    return [nn.Conv2d(channels, 4 * channels, 3, padding=1), nn.PixelShuffle(2), nn.PReLU(channels)]


class SRResNet(nn.Module):
    """Low-resolution (B, in_channels, h, w) -> (B, out_channels, scale h, scale w) in [-1, 1]."""

    def __init__(
        self,
        *,
        in_channels: int,  # channels of the low-resolution source
        out_channels: int,  # channels of the high-resolution output
        scale: int,  # upscaling factor, a power of 2
        width: int = DEFAULT_WIDTH,  # feature channels (the paper's 64)
        residual_blocks: int = 4,  # B (the paper's 16)
        bicubic_skip: bool = False,  # output = bicubic(x) + the net's residual (VDSR)
    ) -> None:
        super().__init__()
        steps = upsampling_steps(scale)
        self.scale, self.bicubic_skip = scale, bicubic_skip
        self.head = nn.Sequential(nn.Conv2d(in_channels, width, 9, padding=4), nn.PReLU(width))
        self.blocks = nn.Sequential(
            *[ResidualBlock(width) for _ in range(residual_blocks)],
            nn.Conv2d(width, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
        )
        self.upsample = nn.Sequential(*[m for _ in range(steps) for m in upsample_block(width)])
        last = nn.Conv2d(width, out_channels, 9, padding=4)
        if bicubic_skip:  # start from the bicubic baseline
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        self.tail = nn.Sequential(last) if bicubic_skip else nn.Sequential(last, nn.Tanh())

    def forward(self, x: Tensor) -> Tensor:
        h = self.head(x)
        out = self.tail(self.upsample(h + self.blocks(h)))
        if not self.bicubic_skip:
            return out
        size = (x.shape[-2] * self.scale, x.shape[-1] * self.scale)
        up = F.interpolate(x, size=size, mode="bicubic", align_corners=False)
        return (up + out).clamp(-1, 1)


def _d_block(c_in: int, c_out: int, stride: int, norm: bool) -> list[nn.Module]:
    conv = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=not norm)
    return [conv, *([nn.BatchNorm2d(c_out)] if norm else []), nn.LeakyReLU(0.2)]


class SRDiscriminator(nn.Module):
    """(B, channels, size, size) -> (B,) logits: the strided VGG-style D of Ledig et al."""

    def __init__(
        self,
        *,
        channels: int,  # image channels
        size: int,  # image side (high resolution)
        width: int = DEFAULT_WIDTH,  # channels of the first pair (the paper's 64)
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c_in, c, side, first = channels, width, size, True
        while first or side > 4:
            layers += _d_block(c_in, c, 1, norm=not first)
            layers += _d_block(c, c, 2, norm=True)
            side = (side + 1) // 2  # k3 s2 p1: ceil(side / 2)
            c_in, c, first = c, 2 * c, False
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(c_in * side * side, 16 * width),
            nn.LeakyReLU(0.2),
            nn.Linear(16 * width, 1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x)).squeeze(1)


def sr_shapes(arch: str, meta: dict) -> tuple[int, int, int, int]:
    """(source channels, target channels, scale, target side) of a super-resolution dataset;
    ArchitectureError when its meta does not describe one this arch can build."""
    if "scale" not in meta or "source_shape" not in meta:
        raise ArchitectureError(
            f"arch {arch!r} needs a super-resolution dataset (meta.json with 'scale' and "
            f"'source_shape'); dataset {meta.get('name')!r} has neither"
        )
    scale = meta["scale"]
    upsampling_steps(scale)
    (c_in, h, w), (c_out, height, width) = meta["source_shape"], meta["shape"]
    if (h * scale, w * scale) != (height, width) or height != width:
        raise ArchitectureError(
            f"arch {arch!r}: source {h}x{w} times scale {scale} must be the square target "
            f"{height}x{width}"
        )
    return c_in, c_out, scale, height


@SR_ARCHS.register("srresnet")
@declare(residual_blocks=RESIDUAL_BLOCKS, bicubic_skip=BICUBIC_SKIP)
def build_srresnet(meta: dict, cfg) -> dict[str, nn.Module]:
    """{"G": SRResNet, "D": SRDiscriminator} for the dataset's shapes and ``meta["scale"]``."""
    c_in, c_out, scale, size = sr_shapes("srresnet", meta)
    width = cfg.width or DEFAULT_WIDTH
    G = SRResNet(
        in_channels=c_in,
        out_channels=c_out,
        scale=scale,
        width=width,
        residual_blocks=cfg.residual_blocks,
        bicubic_skip=cfg.bicubic_skip,
    )
    return {"G": G, "D": SRDiscriminator(channels=c_out, size=size, width=width)}


__all__ = [
    "SR_ARCHS",
    "ResidualBlock",
    "SRDiscriminator",
    "SRResNet",
    "build_srresnet",
    "sr_shapes",
    "upsampling_steps",
]
