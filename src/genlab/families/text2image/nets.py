"""The networks of GAN-CLS (Reed et al. 2016, "Generative Adversarial Text to Image Synthesis",
sec. 4.1 and fig. 2) for word images of ``digit_strings``:

- ``TextEncoder`` phi(t): character embeddings plus position embeddings, a temporal (1-D)
  convolution over the characters and a position-aware linear read-out (the char-CNN part of
  Reed et al. 2016b's char-CNN-RNN; the read-out keeps where each character stands, which a
  word image needs). Padding beyond a row's length is masked out before and after the
  convolution, so it cannot change the embedding.
- ``ImageEncoder`` theta(v): the image side of the joint embedding (Reed et al. 2016b), used
  only to pre-train phi.
- ``Generator`` G(z, phi(t)): the embedding compressed by a linear layer and a leaky ReLU,
  concatenated to z, then a DCGAN generator (Radford et al. 2016) to (C, H, W) with tanh.
  Nothing tells G where the characters go: it learns the layout from the text code.
- ``Discriminator`` D(x, phi(t)): stride-2 convolutions to a (2w, H/4, W/4) map plus a learned
  embedding of each map position, the compressed text embedding replicated spatially and
  concatenated to it, a 1 x 1 convolution with a leaky ReLU, and a final linear layer over the
  whole map (the paper's last 4 x 4 convolution) to one logit. The position embedding (not in
  the paper, whose images have no reading order) lets the 1 x 1 convolution compare what stands
  at a position with what the text code says of that position.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.errors import ArchitectureError
from genlab.registry import Registry

T2I_ARCHS: Registry = Registry("arch")

SLOPE = 0.2  # leaky ReLU slope (DCGAN, and Reed et al.'s text compression)
DEFAULT_WIDTH = 16


def length_mask(lengths: Tensor, max_length: int) -> Tensor:
    """(N, max_length) float: 1 at the first ``lengths[i]`` positions of row i, else 0."""
    positions = torch.arange(max_length, device=lengths.device)
    return (positions[None, :] < lengths[:, None]).float()


class TextEncoder(nn.Module):
    """phi(t) of token rows (N, L) with lengths (N,) -> (N, dim)."""

    def __init__(self, vocab_size: int, max_length: int, dim: int = 32, channels: int = 32) -> None:
        super().__init__()
        self.kwargs = {"vocab_size": vocab_size, "max_length": max_length, "dim": dim,
                       "channels": channels}  # fmt: skip
        self.max_length, self.dim = max_length, dim
        self.chars = nn.Embedding(vocab_size, channels)
        self.positions = nn.Parameter(torch.randn(max_length, channels) * 0.1)
        self.conv = nn.Conv1d(channels, channels, 3, padding=1)
        self.out = nn.Linear(channels * max_length, dim)

    def forward(self, tokens: Tensor, lengths: Tensor) -> Tensor:
        mask = length_mask(lengths, tokens.shape[1])[:, None, :]  # (N, 1, L)
        h = (self.chars(tokens) + self.positions[: tokens.shape[1]]).transpose(1, 2) * mask
        h = F.leaky_relu(self.conv(h), SLOPE) * mask  # padding neither read nor written
        return self.out(h.flatten(1))


def _trunk(channels: int, width: int) -> nn.Sequential:
    """Two stride-2 4 x 4 convolutions: (C, H, W) -> (2 width, H/4, W/4)."""
    return nn.Sequential(
        nn.Conv2d(channels, width, 4, 2, 1),
        nn.LeakyReLU(SLOPE),
        nn.Conv2d(width, 2 * width, 4, 2, 1),
        nn.LeakyReLU(SLOPE),
    )


class ImageEncoder(nn.Module):
    """theta(v): the image side of the joint embedding, (N, C, H, W) -> (N, dim)."""

    def __init__(self, shape: list[int], dim: int = 32, width: int = DEFAULT_WIDTH) -> None:
        super().__init__()
        c, h, w = shape
        self.trunk = _trunk(c, width)
        self.out = nn.Linear(2 * width * (h // 4) * (w // 4), dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(self.trunk(x).flatten(1))


class TextCode(nn.Module):
    """The compressed text code: linear layer + leaky ReLU (Reed et al. sec. 4.1)."""

    def __init__(self, text_dim: int, code_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(text_dim, code_dim)

    def forward(self, h: Tensor) -> Tensor:
        return F.leaky_relu(self.linear(h), SLOPE)


class Generator(nn.Module):
    """G(z, h): [z, code(h)] -> linear to a (4w, H/4, W/4) map (batch norm, ReLU) -> a 2x
    transposed convolution to 2w channels (batch norm, ReLU) -> a 2x transposed convolution to
    the image channels -> tanh (the DCGAN generator, Radford et al. 2016)."""

    def __init__(self, latent_dim: int, text_dim: int, shape: list[int], width: int) -> None:
        super().__init__()
        c, h, w = shape
        self.latent_dim, self.shape = latent_dim, (c, h, w)
        self.h0, self.w0, self.width = h // 4, w // 4, width
        self.code = TextCode(text_dim, text_dim)
        self.project = nn.Sequential(
            nn.Linear(latent_dim + text_dim, 4 * width * self.h0 * self.w0, bias=False),
            nn.BatchNorm1d(4 * width * self.h0 * self.w0),
            nn.ReLU(),
        )
        self.up = nn.Sequential(
            nn.ConvTranspose2d(4 * width, 2 * width, 4, 2, 1, bias=False),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * width, c, 4, 2, 1),
            nn.Tanh(),
        )

    def forward(self, z: Tensor, h: Tensor) -> Tensor:
        x = self.project(torch.cat([z, self.code(h)], 1))
        return self.up(x.view(-1, 4 * self.width, self.h0, self.w0))


class Discriminator(nn.Module):
    """D(x, h) -> (N,) logits of "real image matching the text"."""

    def __init__(self, text_dim: int, shape: list[int], width: int) -> None:
        super().__init__()
        c, h, w = shape
        self.trunk = _trunk(c, width)
        # a learned embedding of each map position, so the 1 x 1 convolution can compare the
        # characters at a position with what the text says of that position
        self.where = nn.Parameter(torch.zeros(2 * width, h // 4, w // 4))
        self.code = TextCode(text_dim, text_dim)
        self.joint = nn.Sequential(
            nn.Conv2d(2 * width + text_dim, 4 * width, 1), nn.LeakyReLU(SLOPE)
        )
        self.out = nn.Linear(4 * width * (h // 4) * (w // 4), 1)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        f = self.trunk(x) + self.where
        code = self.code(h)[:, :, None, None].expand(-1, -1, *f.shape[2:])  # replicated
        return self.out(self.joint(torch.cat([f, code], 1)).flatten(1)).squeeze(1)


def _check_shape(meta: dict) -> list[int]:
    shape = list(meta["shape"])
    if len(shape) != 3 or shape[1] % 4 or shape[2] % 4:
        raise ArchitectureError(
            f"arch 'dcgan' of family text2image halves the image twice: its height and width "
            f"must be multiples of 4, but dataset {meta.get('name', '?')!r} has shape {shape}"
        )
    return shape


@T2I_ARCHS.register("dcgan")
def build(meta: dict, cfg) -> dict[str, nn.Module]:
    """G, D, the text encoder phi ("text") and, when phi is pre-trained (``encoder_steps`` > 0),
    the image encoder of the joint embedding ("image")."""
    shape = _check_shape(meta)
    width = cfg.width or DEFAULT_WIDTH
    vocab = len(meta["vocabulary"]) + 1  # token 0: blank / padding
    nets = {
        "G": Generator(cfg.latent_dim, cfg.text_dim, shape, width),
        "D": Discriminator(cfg.text_dim, shape, width),
        "text": TextEncoder(vocab, int(meta["max_length"]), cfg.text_dim),
    }
    if cfg.encoder_steps > 0:
        nets["image"] = ImageEncoder(shape, cfg.text_dim, width)
    return nets


__all__ = ["T2I_ARCHS", "Discriminator", "Generator", "ImageEncoder", "TextCode", "TextEncoder",
           "build", "length_mask"]  # fmt: skip
