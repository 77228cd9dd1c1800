"""SPADE (Park et al. 2019, "Semantic Image Synthesis with Spatially-Adaptive Normalization").

A label map m (per-pixel class, 0 = background) modulates every normalisation of the generator:
``SPADE`` normalises x with parameter-free batch norm and scales and shifts it by gamma(m) and
beta(m), maps computed per pixel from m by a small conv net (eq. 1; appendix A, fig. 10). The
generator maps a noise vector z through a linear layer to a 4 x 4 grid and up to the image side
with SPADE residual blocks (fig. 11 without the image encoder), so the map enters only through
the normalisations. The discriminator is a PatchGAN (``genlab.nets.patchgan``) on the one-hot map
and the image concatenated, with spectral norm on every convolution and instance norm, as in the
paper (sec. 4, which uses pix2pixHD's multi-scale version of it; one scale here).

Simplifications for 32 x 32 images: one discriminator scale, plain (not synchronised) batch norm,
ReLU where the official code uses LeakyReLU 0.2 in G (the paper's fig. 10 says ReLU), and no
spectral norm in G (the paper applies it to G too; left out to keep the CPU step cheap).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.nets.base import ArchitectureError, upsampling_plan
from genlab.nets.patchgan import PatchGAN
from genlab.options import Field, Option, declare
from genlab.registry import Registry

SPADE_ARCHS: Registry = Registry("arch")


def one_hot_map(labels: Tensor, classes: int) -> Tensor:
    """int64 (B, H, W) label map -> float (B, classes, H, W) one-hot channels."""
    return F.one_hot(labels, classes).permute(0, 3, 1, 2).float()


class SPADE(nn.Module):
    """Spatially-adaptive normalisation (eq. 1):
    out = (x - mu_c) / sigma_c * (1 + gamma_c,y,x(m)) + beta_c,y,x(m),
    mu and sigma per channel over the batch and positions (batch norm without affine), gamma and
    beta from one shared conv + ReLU on the one-hot map resized (nearest) to x's side, then one
    conv each. ``1 + gamma`` (the official code's form) starts the scale near 1."""

    def __init__(
        self,
        norm_channels: int,  # channels of x
        label_channels: int,  # one-hot channels of the map (classes incl. background)
        hidden: int,  # channels of the shared embedding of the map (128 in the paper)
        kernel_size: int = 3,  # of the three convolutions (3 in the paper)
    ):
        super().__init__()
        pad = kernel_size // 2
        self.norm = nn.BatchNorm2d(norm_channels, affine=False)
        self.shared = nn.Sequential(
            nn.Conv2d(label_channels, hidden, kernel_size, padding=pad), nn.ReLU()
        )
        self.gamma = nn.Conv2d(hidden, norm_channels, kernel_size, padding=pad)
        self.beta = nn.Conv2d(hidden, norm_channels, kernel_size, padding=pad)

    def modulation(self, x: Tensor, m: Tensor) -> tuple[Tensor, Tensor]:
        """gamma(m), beta(m) at x's side, from the one-hot map ``m``."""
        m = F.interpolate(m, size=x.shape[-2:], mode="nearest")
        h = self.shared(m)
        return self.gamma(h), self.beta(h)

    def forward(self, x: Tensor, m: Tensor) -> Tensor:
        gamma, beta = self.modulation(x, m)
        return self.norm(x) * (1 + gamma) + beta


class SPADEResBlock(nn.Module):
    """SPADE ResBlk (fig. 10): two SPADE-ReLU-conv3x3 steps on the residual path (middle
    channels min(in, out)); the shortcut is learned (SPADE, then a 1 x 1 conv without bias) when
    the channels change, the identity otherwise."""

    def __init__(
        self,
        ch_in: int,  # input channels
        ch_out: int,  # output channels
        label_channels: int,  # one-hot channels of the map
        hidden: int,  # SPADE's embedding channels
    ):
        super().__init__()
        mid = min(ch_in, ch_out)
        self.norm_0 = SPADE(ch_in, label_channels, hidden)
        self.conv_0 = nn.Conv2d(ch_in, mid, 3, padding=1)
        self.norm_1 = SPADE(mid, label_channels, hidden)
        self.conv_1 = nn.Conv2d(mid, ch_out, 3, padding=1)
        self.learned_shortcut = ch_in != ch_out
        if self.learned_shortcut:
            self.norm_s = SPADE(ch_in, label_channels, hidden)
            self.conv_s = nn.Conv2d(ch_in, ch_out, 1, bias=False)

    def forward(self, x: Tensor, m: Tensor) -> Tensor:
        dx = self.conv_0(F.relu(self.norm_0(x, m)))
        dx = self.conv_1(F.relu(self.norm_1(dx, m)))
        shortcut = self.conv_s(self.norm_s(x, m)) if self.learned_shortcut else x
        return shortcut + dx


class SPADEGenerator(nn.Module):
    """G(z, map): z (B, latent_dim) -> linear -> (8 width) x start x start -> a SPADE ResBlk,
    then per doubling nearest x2 upsampling and a ResBlk halving the channels (down to
    ``width``) -> ReLU -> conv3x3 -> tanh. ``map``: int64 (B, H, W) classes."""

    def __init__(
        self,
        *,
        latent_dim: int,  # size of the Gaussian noise z
        label_classes: int,  # classes of the map incl. background (one-hot channels)
        channels: int,  # image channels
        size: int,  # image side (start * 2**n, genlab.shapes.upsampling_plan)
        width: int,  # channels at full resolution; 2**n times more at the start
        hidden: int,  # SPADE's embedding channels
    ):
        super().__init__()
        self.start, n = upsampling_plan("spade", size)
        ch = width * 2**n
        self.fc = nn.Linear(latent_dim, ch * self.start**2)
        self.head = SPADEResBlock(ch, ch, label_classes, hidden)
        self.ups = nn.ModuleList()
        for _ in range(n):
            self.ups.append(SPADEResBlock(ch, ch // 2, label_classes, hidden))
            ch //= 2
        self.out = nn.Conv2d(ch, channels, 3, padding=1)
        self.latent_dim, self.label_classes = latent_dim, label_classes

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        m = one_hot_map(labels, self.label_classes)
        h = self.fc(z).view(len(z), -1, self.start, self.start)
        h = self.head(h, m)
        for block in self.ups:
            h = block(F.interpolate(h, scale_factor=2, mode="nearest"), m)
        return torch.tanh(self.out(F.relu(h)))


class SPADEDiscriminator(nn.Module):
    """D(map, x): a PatchGAN on [one-hot map, x] (channels concatenated) -> (B, 1, h, w) logits.
    ``features`` also returns the output of every intermediate LeakyReLU, for pix2pixHD's
    feature-matching loss (Wang et al. 2018, eq. 4), which SPADE keeps."""

    def __init__(
        self,
        *,
        label_classes: int,  # one-hot channels of the map
        channels: int,  # image channels
        width: int,  # PatchGAN's first-layer channels
        layers: int,  # its stride-2 convolutions
        norm: str = "instance",  # the paper's: instance norm with spectral norm
    ):
        super().__init__()
        self.label_classes = label_classes
        self.patch = PatchGAN(
            in_channels=label_classes + channels, width=width, layers=layers, norm=norm,
            spectral=True,
        )  # fmt: skip

    def _input(self, labels: Tensor, x: Tensor) -> Tensor:
        return torch.cat([one_hot_map(labels, self.label_classes).to(x.dtype), x], 1)

    def forward(self, labels: Tensor, x: Tensor) -> Tensor:
        return self.patch(self._input(labels, x))

    def features(self, labels: Tensor, x: Tensor) -> tuple[list[Tensor], Tensor]:
        """(intermediate activations, logits) of one pass."""
        h, feats = self._input(labels, x), []
        for layer in self.patch.net:
            h = layer(h)
            if isinstance(layer, nn.LeakyReLU):
                feats.append(h)
        return feats, h


def label_classes(meta: dict) -> int:
    """One-hot channels of a label-map dataset (meta["label_classes"])."""
    k = int(meta.get("label_classes") or 0)
    if k < 2:
        raise ArchitectureError(
            f"arch 'spade' needs a label-map dataset (meta label_classes >= 2); dataset "
            f"{meta['name']!r} has label_classes = {meta.get('label_classes')!r}"
        )
    return k


@SPADE_ARCHS.register("spade")
@declare(
    spade_d_layers=Option(int, Field(2, ge=1)),  # PatchGAN's stride-2 convs (2: 34 x 34 patches)
)
def build_spade(meta: dict, cfg) -> dict[str, nn.Module]:
    """G and D for a label-map dataset; ``width`` (default 16) sizes both, SPADE's embedding
    has 2 width channels (the paper's 128 for 64)."""
    channels, size, _ = meta["shape"]
    k = label_classes(meta)
    width = cfg.width or 16
    if size // 2**cfg.spade_d_layers - 1 < 2:  # instance norm needs > 1 pixel per map
        raise ArchitectureError(
            f"spade_d_layers = {cfg.spade_d_layers} shrinks D's {size} x {size} input below 2 x 2 "
            f"before its last norm; allowed for side {size}: spade_d_layers <= "
            f"{max(1, (size // 3).bit_length() - 1)}"
        )
    G = SPADEGenerator(latent_dim=cfg.latent_dim, label_classes=k, channels=channels, size=size,
                       width=width, hidden=2 * width)  # fmt: skip
    D = SPADEDiscriminator(label_classes=k, channels=channels, width=width,
                           layers=cfg.spade_d_layers)  # fmt: skip
    return {"G": G, "D": D}


__all__ = [
    "SPADE",
    "SPADE_ARCHS",
    "SPADEDiscriminator",
    "SPADEGenerator",
    "SPADEResBlock",
    "build_spade",
    "one_hot_map",
]
