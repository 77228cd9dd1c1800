"""The PatchGAN discriminator (Isola et al. 2017, sec. 3.2.2 and appendix 6.1.2): a fully
convolutional net that classifies every N x N patch of its input as real or fake and returns the
map of logits; the GAN losses average over it. With ``layers`` = 3 it is the paper's 70 x 70
discriminator C64-C128-C256-C512 (4 x 4 convolutions; stride 2 except the last two; no norm on
the first layer; LeakyReLU 0.2), used by pix2pix, CycleGAN, SPADE and VQ-GAN.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

KERNEL = 4  # every convolution is 4 x 4 with padding 1


def receptive_field(layers: int) -> int:
    """Side of the input patch one output logit sees: the final stride-1 convolution sees 4
    pixels, the stride-1 one before it 4 + 3 = 7, and each of the ``layers`` stride-2
    convolutions maps r to 2 (r - 1) + 4, so r = 9 * 2**layers - 2 (16, 34, 70, 142)."""
    if layers < 1:
        raise ValueError(f"layers = {layers}; allowed: 1 or more")
    return 9 * 2**layers - 2


def _norm(kind: str, channels: int) -> list[nn.Module]:
    if kind == "batch":
        return [nn.BatchNorm2d(channels)]
    if kind == "instance":  # per-sample statistics, no affine (CycleGAN's default)
        return [nn.InstanceNorm2d(channels)]
    if kind == "none":
        return []
    raise ValueError(f"norm = {kind!r}; allowed: batch, instance, none")


class PatchGAN(nn.Module):
    """(B, in_channels, H, W) -> (B, 1, h, w) logits, one per receptive-field patch
    (``receptive_field(layers)`` pixels on a side)."""

    def __init__(
        self,
        *,
        in_channels: int,  # image channels (plus the condition's, for a conditional D)
        width: int = 64,  # channels of the first layer; doubled per layer up to 8 * width
        layers: int = 3,  # stride-2 convolutions (3: the paper's 70 x 70 PatchGAN)
        norm: Literal["batch", "instance", "none"] = "batch",
        spectral: bool = False,  # spectral norm on every convolution (SPADE, SN-GAN)
    ):
        super().__init__()
        self.layers = layers
        wrap = nn.utils.parametrizations.spectral_norm if spectral else (lambda m: m)
        body: list[nn.Module] = [
            wrap(nn.Conv2d(in_channels, width, KERNEL, 2, 1)),
            nn.LeakyReLU(0.2),
        ]
        ch = width
        for i in range(1, layers + 1):  # layers - 1 more stride-2 convs, then one of stride 1
            out = width * min(2**i, 8)
            stride = 2 if i < layers else 1
            body += [wrap(nn.Conv2d(ch, out, KERNEL, stride, 1, bias=norm == "none")),
                     *_norm(norm, out), nn.LeakyReLU(0.2)]  # fmt: skip
            ch = out
        body.append(wrap(nn.Conv2d(ch, 1, KERNEL, 1, 1)))
        self.net = nn.Sequential(*body)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    @property
    def receptive_field(self) -> int:
        return receptive_field(self.layers)


def measured_receptive_field(net: nn.Module, in_channels: int, size: int) -> int:
    """The receptive field read off the gradients: the side of the input region on which the
    centre logit of ``net`` (eval mode) depends, on a random ``size`` x ``size`` input. With
    instance norm every logit depends on the whole image (its statistics span it)."""
    was_training = net.training
    net.eval()
    try:
        gen = torch.Generator().manual_seed(0)
        x = torch.randn(1, in_channels, size, size, generator=gen, requires_grad=True)
        out = net(x)
        out[0, 0, out.shape[2] // 2, out.shape[3] // 2].backward()
    finally:
        net.train(was_training)
    rows = x.grad.abs().sum(dim=(0, 1, 3)).nonzero().flatten()
    cols = x.grad.abs().sum(dim=(0, 1, 2)).nonzero().flatten()
    return int(max(rows.max() - rows.min(), cols.max() - cols.min())) + 1
