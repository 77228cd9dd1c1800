"""The U-Net generator of pix2pix (Isola et al. 2017, sec. 3.2.1 and appendix 6.1.1).

An encoder-decoder whose decoder layer n - i also sees encoder layer i (skip connections by
channel concatenation), so low-level detail shared by input and output (edges, positions) does
not have to pass the bottleneck. Encoder ``Ck``: 4x4 convolution of stride 2, batch norm,
LeakyReLU 0.2 (batch norm is left out on the first layer and at the innermost one, whose map may
be 1x1); decoder: ReLU, 4x4 transposed convolution of stride 2, batch norm, with dropout 0.5 in
its first layers (``CDk``), the paper's only noise source z; the last layer maps to the output
channels with tanh. Channels C64-C128-C256-C512-C512-...: ``width`` * 2**i, capped at
8 * ``width``.

The depth follows the resolution: the encoder halves the side while it is even and above
``min_side`` (32x32 -> 5 downsamplings to 1x1, as 256x256 -> 8 in the paper; 8x8 -> 3).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genlab.errors import ArchitectureError

MAX_MULTIPLIER = 8  # the paper's cap: C512 = 8 x C64


def unet_depth(size: int, min_side: int = 1) -> int:
    """Downsamplings of the encoder: the side is halved while it is even and above
    ``min_side`` (32 -> 5, 8 -> 3, 28 -> 2)."""
    depth = 0
    while size % 2 == 0 and size // 2 >= min_side:
        size //= 2
        depth += 1
    if depth == 0:
        raise ArchitectureError(
            f"the U-Net needs an even image side above min_side = {min_side}; got {size}"
        )
    return depth


def unet_channels(depth: int, width: int) -> list[int]:
    """Encoder channels: width * 2**i capped at 8 * width (C64-C128-C256-C512-C512-...)."""
    return [width * min(2**i, MAX_MULTIPLIER) for i in range(depth)]


class UNet(nn.Module):
    """(B, in_channels, S, S) -> (B, out_channels, S, S) in [-1, 1].

    ``self.down[i]`` outputs encoder level i (side S / 2**(i+1)); ``self.up[j]`` takes the
    previous decoder output concatenated with encoder level depth - 1 - j (``skips`` = depth - 1
    concatenations; the innermost level enters ``up[0]`` alone)."""

    def __init__(
        self,
        *,
        in_channels: int,  # source channels (after one-hot encoding / upsampling)
        out_channels: int,  # target channels
        size: int,  # image side S
        width: int = 64,  # channels of the first encoder layer (the paper's 64)
        min_side: int = 1,  # the encoder stops halving at this side
        dropout: float = 0.5,  # dropout of the first decoder layers (the noise z)
        dropout_layers: int = 3,  # how many decoder layers have dropout (never the output)
    ):
        super().__init__()
        self.depth = unet_depth(size, min_side)
        ch = unet_channels(self.depth, width)
        self.down = nn.ModuleList()
        for i in range(self.depth):
            inner = i == self.depth - 1
            layers: list[nn.Module] = [] if i == 0 else [nn.LeakyReLU(0.2)]
            c_in = in_channels if i == 0 else ch[i - 1]
            norm = 0 < i and not inner
            layers.append(nn.Conv2d(c_in, ch[i], 4, 2, 1, bias=not norm))
            if norm:
                layers.append(nn.BatchNorm2d(ch[i]))
            self.down.append(nn.Sequential(*layers))
        self.up = nn.ModuleList()
        for j in range(self.depth):
            level = self.depth - 1 - j  # the encoder level this layer's input mirrors
            c_in = ch[level] if j == 0 else 2 * ch[level]
            outer = j == self.depth - 1
            c_out = out_channels if outer else ch[level - 1]
            layers = [nn.ReLU(), nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=outer)]
            if outer:
                layers.append(nn.Tanh())
            else:
                layers.append(nn.BatchNorm2d(c_out))
                if j < dropout_layers and dropout > 0:
                    layers.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*layers))
        self.skips = self.depth - 1
        self.in_channels, self.out_channels, self.size = in_channels, out_channels, size

    def forward(self, x: Tensor) -> Tensor:
        features = []
        h = x
        for down in self.down:
            h = down(h)
            features.append(h)
        h = self.up[0](features[-1])
        for j in range(1, self.depth):
            skip = features[self.depth - 1 - j]  # the mirrored encoder level
            h = self.up[j](torch.cat([h, skip], dim=1))
        return h


__all__ = ["UNet", "unet_channels", "unet_depth"]
