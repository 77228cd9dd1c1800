"""Style-based generator (Karras et al. 2019, StyleGAN; Karras et al. 2020, StyleGAN2).

A mapping MLP turns z into w; the synthesis network starts from a learned constant and each 3x3
convolution gets its own style, an affine map of w: ``style_mode: adain`` normalises every feature
map and rescales it with the style (StyleGAN eq. 1), ``demod`` scales the convolution's weights
instead and divides them by their norm (StyleGAN2 eqs. 1-3). Per-layer noise adds stochastic
detail. While training, style mixing feeds a second w from a random crossover layer on; ``w_avg``
tracks the mean w for the truncation trick w = w_avg + psi (w - w_avg) at sampling time.

Randomness: noise maps, the mixing coin, the crossover layer and the second z come from the
global torch RNG (the trainer seeds it), in that order: coin, crossover, z2 (if mixing), then one
noise map per layer. In eval mode the noise maps are fixed buffers drawn at construction (StyleGAN's
``noise_mode='const'``), so a sample depends on z alone and the EMA copy carries the same maps.

D for arch ``style`` is the DCGAN discriminator (normalisation from ``d_norm``).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
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
from genlab.nets.dcgan import Discriminator
from genlab.options import Field, Option, declare

W_AVG_DECAY = 0.995  # StyleGAN2's w_avg_beta


def pixel_norm(x: Tensor, eps: float = 1e-8) -> Tensor:
    """x / sqrt(mean over channels of x^2) (Karras et al. 2018, ProGAN eq. 2)."""
    return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + eps)


def adain(x: Tensor, y_s: Tensor, y_b: Tensor, eps: float = 1e-8) -> Tensor:
    """AdaIN(x_i, y) = y_{s,i} (x_i - mu(x_i)) / sigma(x_i) + y_{b,i} per sample and channel
    (StyleGAN eq. 1; mu and sigma over the feature map, population variance)."""
    mu = x.mean(dim=(2, 3), keepdim=True)
    var = x.var(dim=(2, 3), keepdim=True, unbiased=False)
    return y_s[:, :, None, None] * (x - mu) * torch.rsqrt(var + eps) + y_b[:, :, None, None]


def modulate(weight: Tensor, styles: Tensor, demodulate: bool = True, eps: float = 1e-8) -> Tensor:
    """Per-sample weights (B, O, I, k, k): w'_{ijk} = s_i w_{ijk}, then, if ``demodulate``,
    w''_{ijk} = w'_{ijk} / sqrt(sum_{i,k} w'_{ijk}^2 + eps) (StyleGAN2 eqs. 1 and 3)."""
    w = weight[None] * styles[:, None, :, None, None]
    if demodulate:
        w = w * torch.rsqrt(w.pow(2).sum(dim=(2, 3, 4), keepdim=True) + eps)
    return w


def modulated_conv2d(
    x: Tensor,
    weight: Tensor,
    styles: Tensor,
    demodulate: bool = True,
    padding: int = 0,
    eps: float = 1e-8,
) -> Tensor:
    """The convolution with the per-sample weights of ``modulate``, computed as StyleGAN2's
    non-fused path: scale the input channels by s, convolve with the shared weight, scale each
    output channel by the demodulation factor 1 / sqrt(sum_{i,k} (s_i w_{ijk})^2 + eps). Equal to
    one grouped convolution with B groups; on a CPU about twice as fast at the digits sizes
    (64 channels, 8x8, batch 64), slower on large maps (32 channels, 32x32); see
    benchmarks/modconv.py."""
    out = F.conv2d(x * styles.to(x.dtype)[:, :, None, None], weight.to(x.dtype), padding=padding)
    if demodulate:
        norm = (weight[None].pow(2) * styles[:, None, :, None, None].pow(2)).sum(dim=(2, 3, 4))
        out = out * torch.rsqrt(norm + eps).to(x.dtype)[:, :, None, None]
    return out


def truncate(w: Tensor, w_avg: Tensor, psi: float) -> Tensor:
    """The truncation trick w' = w_avg + psi (w - w_avg) (StyleGAN sec. 3.1 / appendix B)."""
    return torch.lerp(w_avg.to(w.dtype), w, psi)


class EqualLinear(nn.Module):
    """Linear layer with equalised learning rate: weights N(0, 1/lr_mul) scaled at run time by
    lr_mul / sqrt(fan_in) (ProGAN sec. 4.1; lr_mul = 0.01 for StyleGAN's mapping, appendix C)."""

    def __init__(self, dim: int, dim_out: int, bias_init: float = 0.0, lr_mul: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(dim_out, dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((dim_out,), float(bias_init)) / lr_mul)
        self.scale, self.lr_mul = lr_mul / math.sqrt(dim), lr_mul

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)


class ScaledLeakyReLU(nn.Module):
    """LeakyReLU 0.2 times sqrt(2), the gain that keeps unit variance through equalised layers
    (StyleGAN2's ``bias_act`` 'lrelu' gain); without it w shrinks by half per mapping layer and
    the styles barely depend on z."""

    def forward(self, x: Tensor) -> Tensor:
        return F.leaky_relu(x, 0.2) * math.sqrt(2)


class MappingNetwork(nn.Module):
    """z -> w: pixel norm, then ``depth`` layers of width ``dim`` with (scaled) LeakyReLU 0.2."""

    def __init__(self, latent_dim: int, dim: int, depth: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i in range(depth):
            layers += [EqualLinear(latent_dim if i == 0 else dim, dim, lr_mul=0.01)]
            layers += [ScaledLeakyReLU()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(pixel_norm(z))


class NoiseInjection(nn.Module):
    """x + strength_c * noise: one N(0, 1) map per sample shared by the channels, a learned
    per-channel strength (init 0). Fresh noise while training, a fixed buffer in eval mode."""

    def __init__(self, channels: int, side: int) -> None:
        super().__init__()
        self.strength = nn.Parameter(torch.zeros(channels))
        self.register_buffer("noise_const", torch.randn(1, 1, side, side))

    def forward(self, x: Tensor) -> Tensor:
        if self.training:
            noise = torch.randn(len(x), 1, *x.shape[2:], device=x.device, dtype=x.dtype)
        else:
            noise = self.noise_const.to(x.dtype)
        return x + self.strength.to(x.dtype)[None, :, None, None] * noise


class StyleLayer(nn.Module):
    """[2x nearest upsampling], 3x3 conv styled by w, noise, bias, LeakyReLU 0.2.

    ``adain``: plain conv, then AdaIN with (y_s, y_b) = A(w) at the end (StyleGAN fig. 1b).
    ``demod``: modulated and demodulated conv with s = A(w) (StyleGAN2 fig. 2c)."""

    def __init__(self, ch_in: int, ch_out: int, w_dim: int, side: int, mode: str, up: bool):
        super().__init__()
        self.mode, self.up = mode, up
        self.weight = nn.Parameter(torch.randn(ch_out, ch_in, 3, 3))
        self.scale = 1 / math.sqrt(ch_in * 9)  # equalised learning rate
        if mode == "demod":
            self.affine = EqualLinear(w_dim, ch_in, bias_init=1.0)  # s_i, 1 at init
        else:
            self.affine = EqualLinear(w_dim, 2 * ch_out)  # (y_s, y_b), (1, 0) at init
            with torch.no_grad():
                self.affine.bias[:ch_out] = 1.0
        self.noise = NoiseInjection(ch_out, side)
        self.bias = nn.Parameter(torch.zeros(ch_out))

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
        weight = self.weight * self.scale
        if self.mode == "demod":
            x = modulated_conv2d(x, weight, self.affine(w), demodulate=True, padding=1)
        else:
            x = F.conv2d(x, weight.to(x.dtype), padding=1)
        x = self.noise(x)
        x = F.leaky_relu(x + self.bias.to(x.dtype)[None, :, None, None], 0.2)
        if self.mode == "demod":
            return x * math.sqrt(2)  # keep unit variance after the LeakyReLU (StyleGAN2)
        y_s, y_b = self.affine(w).chunk(2, dim=1)
        return adain(x, y_s, y_b)


class StyleGenerator(nn.Module):
    """z (B, latent_dim) -> image (B, C, H, W) in [-1, 1] through w space.

    ``mapping(z)`` gives w (B, w_dim); ``synthesis(ws)`` takes one w per layer (B, num_layers,
    w_dim). Layers: one conv at the start side s0 on the constant, then two per doubling (the
    first upsamples); channels width * 2**n at s0, halved per doubling. toRGB is a plain 1x1 conv
    followed by tanh."""

    def __init__(
        self,
        *,
        latent_dim: int,  # z and w dimension (the mapping MLP's width too)
        channels: int,  # image channels
        size: int,  # image side
        width: int,  # channels at full resolution
        mode: str = "demod",  # "adain" (StyleGAN) or "demod" (StyleGAN2)
        mapping_depth: int = 4,  # layers of the mapping MLP
        style_mixing: float = 0.9,  # probability of mixing two styles while training
        truncation: float = 1.0,  # psi used by forward in eval mode
        attention: int = 0,  # SAGAN self-attention after the last layer at this side (0 = none)
    ):
        super().__init__()
        if mode not in ("adain", "demod"):
            raise ValueError(f"style mode {mode!r}; allowed: adain, demod")
        start, n = upsampling_plan("style", size)
        self.latent_dim = self.w_dim = latent_dim
        self.style_mixing, self.truncation = style_mixing, truncation
        self.mapping_net = MappingNetwork(latent_dim, latent_dim, mapping_depth)
        ch = width * 2**n
        self.const = nn.Parameter(torch.randn(1, ch, start, start))
        layers = [StyleLayer(ch, ch, latent_dim, start, mode, up=False)]
        sides = [start]
        for k in range(1, n + 1):
            side = start * 2**k
            layers.append(StyleLayer(ch, ch // 2, latent_dim, side, mode, up=True))
            layers.append(StyleLayer(ch // 2, ch // 2, latent_dim, side, mode, up=False))
            ch //= 2
            sides += [side, side]
        self.layers = nn.ModuleList(layers)
        # after the last layer at side s: reversed lookup of the last index with that side
        at = attention_position(attention, sides[::-1])
        self.attention_after = None if at is None else len(sides) - 1 - at
        self.attention = (
            None if at is None else SelfAttention(self.layers[self.attention_after].bias.numel())
        )
        self.to_rgb = nn.Conv2d(ch, channels, 1)
        self.register_buffer("w_avg", torch.zeros(latent_dim))

    @property
    def num_layers(self) -> int:
        """How many styled layers, i.e. how many w ``synthesis`` takes per sample."""
        return len(self.layers)

    def mapping(self, z: Tensor) -> Tensor:
        """z (B, latent_dim) -> w (B, w_dim); no truncation, no running-average update."""
        return self.mapping_net(z)

    def synthesis(self, ws: Tensor) -> Tensor:
        """ws (B, num_layers, w_dim) -> image in [-1, 1]; layer i is styled by ws[:, i]."""
        x = self.const.expand(len(ws), -1, -1, -1).to(ws.dtype)
        for i, layer in enumerate(self.layers):
            x = layer(x, ws[:, i])
            if i == self.attention_after:
                x = self.attention(x)
        return torch.tanh(self.to_rgb(x))

    def forward(self, z: Tensor, y: Tensor | None = None, psi: float | None = None) -> Tensor:
        """Sample images. ``psi`` None: ``truncation`` in eval mode, 1 (none) while training, as
        StyleGAN truncates only when sampling. ``y`` is ignored (unconditional)."""
        w = self.mapping(z)
        ws = w[:, None].expand(-1, self.num_layers, -1)
        if self.training:
            with torch.no_grad():
                self.w_avg.lerp_(w.detach().float().mean(0), 1 - W_AVG_DECAY)
            mix = torch.rand(()) < self.style_mixing  # StyleGAN sec. 3.1: mixing regularisation
            cutoff = int(torch.randint(1, self.num_layers, ()))
            if mix:
                w2 = self.mapping(torch.randn_like(z))
                later = torch.arange(self.num_layers, device=z.device)[None, :, None] >= cutoff
                ws = torch.where(later, w2[:, None], ws)
        if psi is None:
            psi = 1.0 if self.training else self.truncation
        if psi != 1:
            ws = truncate(ws, self.w_avg, psi)
        return self.synthesis(ws)


@GAN_ARCHS.register("style")
@declare(
    d_norm=D_NORM,
    attention=ATTENTION,
    style_mode=Option(Literal["adain", "demod"], "demod"),  # AdaIN (StyleGAN) or StyleGAN2
    mapping_depth=Option(int, Field(4, ge=1)),  # layers of the mapping MLP z -> w
    style_mixing=Option(float, Field(0.9, ge=0, le=1)),  # probability of mixing two styles
    truncation=Option(float, Field(1.0, ge=0, le=1)),  # psi of w = w_avg + psi (w - w_avg)
    check=per_sample_critic,
)
def build_style(meta: dict, cfg) -> dict[str, nn.Module]:
    """StyleGAN/StyleGAN2-like generator; DCGAN discriminator (``d_norm``, ``attention``)."""
    require_kind("style", meta, "image")
    channels, size, _ = meta["shape"]
    width = cfg.width or 64
    G = StyleGenerator(
        latent_dim=cfg.latent_dim,
        channels=channels,
        size=size,
        width=width,
        mode=cfg.style_mode,
        mapping_depth=cfg.mapping_depth,
        style_mixing=cfg.style_mixing,
        truncation=cfg.truncation,
        attention=cfg.attention,
    )
    D = Discriminator(
        channels=channels,
        size=size,
        width=width,
        norm=cfg.d_norm,
        attention=cfg.attention,
    )
    dcgan_init(D)
    return {"G": G, "D": D}
