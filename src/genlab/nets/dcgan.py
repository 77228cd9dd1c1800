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
    feature_norm,
    per_sample_critic,
    require_kind,
    upsampling_plan,
)
from genlab.options import Field, Option, declare


def up_block(ch_in: int, ch_out: int, norm: str = "batch", **conv) -> list[nn.Module]:
    """Transposed convolution, ``feature_norm(norm)``, ReLU; the convolution has a bias only
    without a norm (a norm's shift replaces it)."""
    conv_t = nn.ConvTranspose2d(ch_in, ch_out, bias=norm == "none", **conv)
    return [conv_t, *feature_norm(norm, ch_out), nn.ReLU()]


def down_block(ch_in: int, ch_out: int, norm: str = "batch") -> list[nn.Module]:
    """Strided 4x4 convolution, ``feature_norm(norm)``, LeakyReLU 0.2 (bias only without a
    norm)."""
    conv = nn.Conv2d(ch_in, ch_out, 4, 2, 1, bias=norm == "none")
    return [conv, *feature_norm(norm, ch_out), nn.LeakyReLU(0.2)]


class Generator(nn.Module):
    """z (B, latent_dim) -> image (B, C, H, W) in [-1, 1]. ``norm``: batch (DCGAN); none or layer
    where the generator is part of D (EBGAN's decoder)."""

    def __init__(
        self,
        *,
        latent_dim: int,
        channels: int,
        size: int,
        width: int,
        out=nn.Tanh,
        attention: int = 0,  # SAGAN self-attention after the layer at this side (0 = none)
        norm: str = "batch",  # feature_norm of every block: batch, none or layer
    ):
        super().__init__()
        start, n = upsampling_plan("dcgan", size)
        at = attention_position(attention, [start * 2**k for k in range(n + 1)])
        ch = width * 2**n
        layers = up_block(latent_dim, ch, norm, kernel_size=start, stride=1, padding=0)
        if at == 0:
            layers.append(SelfAttention(ch))
        for k in range(1, n + 1):
            layers += up_block(ch, ch // 2, norm, kernel_size=4, stride=2, padding=1)
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
    """image -> one logit per sample; no norm on the input layer (DCGAN). ``norm``: batch norm
    (DCGAN), none, or layer norm (``feature_norm``), the two WGAN-GP allows its critic (Gulrajani
    et al. 2017, sec. 4): the penalty is per sample, and batch norm couples the samples of a
    batch."""

    def __init__(
        self,
        *,
        channels: int,
        size: int,
        width: int,
        dim_out: int = 1,
        norm: str | bool = "batch",  # feature_norm of the strided blocks: batch, none or layer
        attention: int = 0,  # SAGAN self-attention after the layer at this side (0 = none)
    ):
        super().__init__()
        if isinstance(norm, bool):  # the former spelling: True = batch, False = none
            norm = "batch" if norm else "none"
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
            norm=cfg.d_norm,
            attention=cfg.attention,
        ),
    }
    for net in nets.values():
        dcgan_init(net)
    return nets
