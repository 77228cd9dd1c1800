"""DCGAN (Radford et al. 2016), sized from the dataset's resolution.

The lecture notes' guidelines: strided convolutions instead of pooling in D, transposed
convolutions in G, batch norm, no fully connected hidden layers, ReLU in G with Tanh at the
output, LeakyReLU in D. G's first layer maps the 1x1 noise "pixel" to a start x start map with a
transposed convolution (the paper's project-and-reshape); D ends with a start x start
convolution to one logit. ``attention = s`` inserts SAGAN self-attention after the layer that
outputs the s x s feature maps (in G and D); with 0 the layers are exactly those above.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

from genlab.nets.attention import SelfAttention, attention_position
from genlab.nets.base import (
    ATTENTION,
    D_NORM,
    GAN_ARCHS,
    dcgan_init,
    per_sample_critic,
    require_kind,
    upsampling_plan,
)
from genlab.options import Field, Option, declare


def up_block(ch_in: int, ch_out: int, **conv) -> list[nn.Module]:
    return [
        nn.ConvTranspose2d(ch_in, ch_out, bias=False, **conv),
        nn.BatchNorm2d(ch_out),
        nn.ReLU(),
    ]


def down_block(ch_in: int, ch_out: int, norm: bool = True) -> list[nn.Module]:
    if not norm:
        return [nn.Conv2d(ch_in, ch_out, 4, 2, 1), nn.LeakyReLU(0.2)]
    return [
        nn.Conv2d(ch_in, ch_out, 4, 2, 1, bias=False),
        nn.BatchNorm2d(ch_out),
        nn.LeakyReLU(0.2),
    ]


class Generator(nn.Module):
    """z (B, latent_dim) -> image (B, C, H, W) in [-1, 1]."""

    def __init__(
        self,
        *,
        latent_dim: int,
        channels: int,
        size: int,
        width: int,
        out=nn.Tanh,
        attention: int = 0,  # SAGAN self-attention after the layer at this side (0 = none)
    ):
        super().__init__()
        start, n = upsampling_plan("dcgan", size)
        at = attention_position(attention, [start * 2**k for k in range(n + 1)])
        ch = width * 2**n
        layers = up_block(latent_dim, ch, kernel_size=start, stride=1, padding=0)
        if at == 0:
            layers.append(SelfAttention(ch))
        for k in range(1, n + 1):
            layers += up_block(ch, ch // 2, kernel_size=4, stride=2, padding=1)
            ch //= 2
            if at == k:
                layers.append(SelfAttention(ch))
        layers.append(nn.ConvTranspose2d(ch, channels, 3, 1, 1))
        if out is not None:
            layers.append(out())
        self.net = nn.Sequential(*layers)
        self.latent_dim = latent_dim

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z[:, :, None, None])


class Discriminator(nn.Module):
    """image -> one logit per sample; no batch norm on the input layer (DCGAN). ``norm=False``
    drops batch norm everywhere, as WGAN-GP asks of its critic (Gulrajani et al. 2017, sec. 4):
    the penalty is per sample, and batch norm couples the samples of a batch."""

    def __init__(
        self,
        *,
        channels: int,
        size: int,
        width: int,
        dim_out: int = 1,
        norm=True,
        attention: int = 0,  # SAGAN self-attention after the layer at this side (0 = none)
    ):
        super().__init__()
        start, n = upsampling_plan("dcgan", size)
        at = attention_position(attention, [size // 2**k for k in range(n + 1)])
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, 1, 1), nn.LeakyReLU(0.2)]
        ch = width
        if at == 0:
            layers.append(SelfAttention(ch))
        for k in range(1, n + 1):
            layers += down_block(ch, ch * 2, norm)
            ch *= 2
            if at == k:
                layers.append(SelfAttention(ch))
        layers.append(nn.Conv2d(ch, dim_out, start, 1, 0))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).flatten(1).squeeze(1)


def _dcgan_rules(v) -> None:
    if (v.g_condition == "none") != (v.d_condition == "none"):
        raise ValueError(
            f"g_condition = {v.g_condition!r} and d_condition = {v.d_condition!r}: "
            "a conditional GAN conditions both G and D on the label (or neither)"
        )
    if v.g_condition != "none" and v.info_categorical + v.info_continuous:
        raise ValueError("InfoGAN codes (info_*) and label conditioning do not combine here")
    per_sample_critic(v)


@GAN_ARCHS.register("dcgan")
@declare(
    d_norm=D_NORM,
    attention=ATTENTION,
    # conditioning on the class label (Mirza & Osindero 2014): how the label enters G and D
    g_condition=Option(Literal["none", "concat", "embed", "cbn"], "none"),
    d_condition=Option(Literal["none", "concat", "embed", "projection"], "none"),
    # InfoGAN (Chen et al. 2016): codes and the lambdas of their mutual-information bounds
    info_categorical=Option(int, Field(0, ge=0)),  # classes of the categorical code (0 = none)
    info_continuous=Option(int, Field(0, ge=0)),  # continuous codes
    info_weight=Option(float, Field(1.0, ge=0), when=lambda v: v.info_categorical > 0,
                       when_doc="when info_categorical > 0"),
    info_weight_continuous=Option(float, Field(0.1, ge=0), when=lambda v: v.info_continuous > 0,
                                  when_doc="when info_continuous > 0"),
    check=_dcgan_rules,
)  # fmt: skip
def build_dcgan(meta: dict, cfg) -> dict[str, nn.Module]:
    require_kind("dcgan", meta, "image")
    channels, size, _ = meta["shape"]
    width = cfg.width or 64
    nets = {
        "G": Generator(
            latent_dim=cfg.latent_dim,
            channels=channels,
            size=size,
            width=width,
            attention=cfg.attention,
        ),
        "D": Discriminator(
            channels=channels,
            size=size,
            width=width,
            norm=cfg.d_norm == "batch",
            attention=cfg.attention,
        ),
    }
    for net in nets.values():
        dcgan_init(net)
    return nets
