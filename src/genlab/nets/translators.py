"""Image-to-image generators and DiscoGAN's discriminator for unpaired translation.

``ResnetGenerator``: CycleGAN's generator (Zhu et al. 2017, appendix 7.2; Johnson et al. 2016):
c7s1-k, d2k, d4k, ``residual_blocks`` x R4k, u2k, uk, c7s1-C, tanh, with reflection padding and
instance norm. Written for 32 x 32 images its two stride-2 convolutions leave an 8 x 8 map.

``EncoderDecoderGenerator`` and ``DiscoDiscriminator``: DiscoGAN's networks (Kim et al. 2017,
sec. 4 and the official code, SKTBrain/DiscoGAN ``model.py``): 4 x 4 stride-2 convolutions with
LeakyReLU 0.2 and batch norm (none on the first layer) down to a 4 x 4 map, then, in G, 4 x 4
stride-2 transposed convolutions with batch norm and ReLU back up; D ends in one logit per
image. The official code outputs sigmoid images in [0, 1] and D probabilities; here G ends in
tanh ([-1, 1], the datasets' range) and D returns logits (the losses apply the sigmoid).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.errors import ArchitectureError
from genlab.runtime import cuda_path


class ReflectionPad(nn.Module):
    """``nn.ReflectionPad2d(pad)`` whose backward is deterministic on CUDA too.

    CUDA's reflection-pad backward accumulates with atomics and has no deterministic kernel
    (``torch.use_deterministic_algorithms`` refuses it), so on CUDA the pad is built from
    slices, flips and concatenations, whose gradients are plain copies and sums: the same
    values forward. On CPU it is torch's own pad, so the CPU bits are unchanged."""

    def __init__(self, pad: int) -> None:
        super().__init__()
        self.pad = pad

    def forward(self, x: Tensor) -> Tensor:
        if not cuda_path(x):
            return F.pad(x, (self.pad,) * 4, mode="reflect")
        return reflect_by_copies(x, self.pad)

    def extra_repr(self) -> str:
        return f"pad={self.pad}"


def reflect_by_copies(x: Tensor, p: int) -> Tensor:
    """Reflection padding of the last two dimensions by ``p`` from slices, flips and
    concatenations (``ReflectionPad``'s CUDA path)."""
    x = torch.cat([x[..., 1 : p + 1, :].flip(-2), x, x[..., -p - 1 : -1, :].flip(-2)], -2)
    return torch.cat([x[..., 1 : p + 1].flip(-1), x, x[..., -p - 1 : -1].flip(-1)], -1)


def instance_norm(channels: int) -> nn.InstanceNorm2d:
    """Per-sample, per-channel normalisation without a learned affine map or running statistics
    (the CycleGAN code's default); the convolution before it needs no bias (it is removed)."""
    return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)


def conv_in_relu(ch_in: int, ch_out: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    """c7s1-k (reflection pad, 7 x 7 stride 1) or dk (3 x 3 stride 2, zero pad 1):
    convolution, instance norm, ReLU."""
    if stride == 1:
        pad: list[nn.Module] = [ReflectionPad(kernel // 2)]
        conv = nn.Conv2d(ch_in, ch_out, kernel, 1, 0, bias=False)
    else:
        pad = []
        conv = nn.Conv2d(ch_in, ch_out, kernel, stride, kernel // 2, bias=False)
    return [*pad, conv, instance_norm(ch_out), nn.ReLU()]


class ResidualBlock(nn.Module):
    """Rk: x + [reflection pad, 3 x 3 conv, IN, ReLU, reflection pad, 3 x 3 conv, IN](x)
    (He et al. 2016 as used by Johnson et al. 2016; no ReLU after the sum)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *conv_in_relu(channels, channels, 3),
            ReflectionPad(1),
            nn.Conv2d(channels, channels, 3, 1, 0, bias=False),
            instance_norm(channels),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    """(B, in_channels, H, W) -> (B, out_channels, H, W) in [-1, 1]; H and W divisible by 4."""

    def __init__(
        self,
        *,
        in_channels: int,  # channels of the source domain
        out_channels: int,  # channels of the target domain
        width: int = 64,  # k of c7s1-k (the paper's 64); the bottleneck has 4 * width
        residual_blocks: int = 6,  # R4k blocks at the bottleneck (the paper: 6 at 128, 9 at 256)
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            *conv_in_relu(in_channels, width, 7),  # c7s1-k
            *conv_in_relu(width, 2 * width, 3, stride=2),  # d2k
            *conv_in_relu(2 * width, 4 * width, 3, stride=2),  # d4k
        ]
        layers += [ResidualBlock(4 * width) for _ in range(residual_blocks)]
        for ch in (4 * width, 2 * width):  # u2k, uk: fractionally strided 3 x 3 convolutions
            layers += [
                nn.ConvTranspose2d(ch, ch // 2, 3, 2, 1, output_padding=1, bias=False),
                instance_norm(ch // 2),
                nn.ReLU(),
            ]
        layers += [ReflectionPad(3), nn.Conv2d(width, out_channels, 7), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def _halvings(size: int, what: str) -> int:
    """Stride-2 layers from ``size`` down to DiscoGAN's 4 x 4 map (4 at the paper's 64 x 64)."""
    n = int(math.log2(size)) - 2 if size > 0 else 0
    if n < 1 or 4 * 2**n != size:
        raise ArchitectureError(
            f"{what} needs a square image whose side is a power of 2, at least 8; got {size}"
        )
    return n


def _down(ch_in: int, ch_out: int, norm: bool) -> list[nn.Module]:
    """4 x 4 stride-2 convolution, batch norm (not on the first layer), LeakyReLU 0.2."""
    conv = nn.Conv2d(ch_in, ch_out, 4, 2, 1, bias=not norm)
    return [conv, *([nn.BatchNorm2d(ch_out)] if norm else []), nn.LeakyReLU(0.2)]


class EncoderDecoderGenerator(nn.Module):
    """DiscoGAN's G: (B, in_channels, S, S) -> (B, out_channels, S, S) in [-1, 1]; the encoder
    halves S down to 4 while doubling ``width``, the decoder mirrors it."""

    def __init__(
        self,
        *,
        in_channels: int,  # channels of the source domain
        out_channels: int,  # channels of the target domain
        size: int,  # image side S, a power of 2 >= 8
        width: int = 64,  # channels of the first layer (the paper's 64)
    ) -> None:
        super().__init__()
        n = _halvings(size, "the DiscoGAN generator")
        layers: list[nn.Module] = _down(in_channels, width, norm=False)
        ch = width
        for _ in range(n - 1):
            layers += _down(ch, 2 * ch, norm=True)
            ch *= 2
        for _ in range(n - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(ch // 2), nn.ReLU()]  # fmt: skip
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, out_channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class DiscoDiscriminator(nn.Module):
    """DiscoGAN's D: (B, channels, S, S) -> (B,) logits; stride-2 convolutions down to 4 x 4
    (batch norm after the first), then a 4 x 4 convolution to one logit."""

    def __init__(
        self,
        *,
        channels: int,  # image channels
        size: int,  # image side S, a power of 2 >= 8
        width: int = 64,  # channels of the first layer (the paper's 64)
    ) -> None:
        super().__init__()
        n = _halvings(size, "the DiscoGAN discriminator")
        layers: list[nn.Module] = _down(channels, width, norm=False)
        ch = width
        for _ in range(n - 1):
            layers += _down(ch, 2 * ch, norm=True)
            ch *= 2
        layers.append(nn.Conv2d(ch, 1, 4, 1, 0))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).flatten()


__all__ = [
    "DiscoDiscriminator",
    "EncoderDecoderGenerator",
    "ResidualBlock",
    "ResnetGenerator",
    "instance_norm",
]
