"""The handwriting networks: ScrabbleGAN's generator and a patch discriminator on word images
(Fogel et al. 2020, sec. 3), beside the recogniser R of ``genlab.nets.recognizer``.

G is a filter bank (Fogel et al. 2020, sec. 3.1): every character token owns a learned
(C, h0, w0) feature block, modulated by the word's style noise z; the blocks are placed side by
side, so the image width follows the text, then upsampled by convolutional blocks whose 3 x 3
kernels overlap neighbouring characters (the junctions between letters). Everything beyond the
text's own width is background, at every layer, so a word never depends on its padding.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from genlab.errors import ArchitectureError
from genlab.families.words import word_vocabulary
from genlab.nets.recognizer import Recognizer
from genlab.registry import Registry

BLOCK_WIDTH = 2  # feature columns per character in the filter bank (ScrabbleGAN: 2 after 4 x 2)
BACKGROUND = -1.0  # the value of the word images' padding (``FIELD_KINDS["word"]``)


def column_mask(lengths: Tensor, per_char: int, width: int) -> Tensor:
    """(N, 1, 1, width) float mask: 1 on the first ``per_char * lengths[i]`` columns of row i."""
    cols = torch.arange(width, device=lengths.device)
    return (cols[None, :] < (lengths[:, None] * per_char)).float()[:, None, None, :]


class PixelNorm(nn.Module):
    """Each pixel's feature vector scaled to unit RMS (Karras et al. 2018, sec. 4.2): a
    normalisation that reads one pixel only, so the generator stays local across characters."""

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + 1e-8)


class StyledUp(nn.Module):
    """2x nearest upsampling, then two 3 x 3 convolutions, each followed by PixelNorm, a
    per-channel scale and shift computed from z (ScrabbleGAN's z-conditioned normalisation) and
    LeakyReLU; padding columns are zeroed after each convolution."""

    def __init__(self, dim: int, dim_out: int, latent_dim: int) -> None:
        super().__init__()
        self.conv_0 = nn.Conv2d(dim, dim_out, 3, padding=1)
        self.conv_1 = nn.Conv2d(dim_out, dim_out, 3, padding=1)
        self.style = nn.Linear(latent_dim, 4 * dim_out)
        self.norm = PixelNorm()
        self.act = nn.LeakyReLU(0.2)

    def forward(self, x: Tensor, z: Tensor, lengths: Tensor, per_char: int) -> Tensor:
        x = nn.functional.interpolate(x, scale_factor=2, mode="nearest")
        mask = column_mask(lengths, per_char, x.shape[-1])
        scales = self.style(z)[:, :, None, None].chunk(4, 1)
        for conv, gamma, beta in ((self.conv_0, *scales[:2]), (self.conv_1, *scales[2:])):
            x = self.act(self.norm(conv(x)) * (1 + gamma) + beta) * mask
        return x


class ScrabbleGenerator(nn.Module):
    """G(z, text, lengths): (N, latent_dim), (N, L) int64 tokens, (N,) characters ->
    (N, channels, height, L * char_width) in [-1, 1], background beyond char_width * lengths."""

    def __init__(
        self,
        *,
        vocab_size: int,  # tokens incl. the blank / padding token 0
        latent_dim: int,  # style noise z, shared by the characters of a word
        height: int = 8,  # image height (pixels)
        char_width: int = 8,  # pixels per character
        channels: int = 1,  # image channels
        width: int = 64,  # channels of the filter bank; halved per upsampling
    ) -> None:
        super().__init__()
        ups = int(math.log2(char_width // BLOCK_WIDTH)) if char_width >= BLOCK_WIDTH else -1
        if ups < 1 or BLOCK_WIDTH * 2**ups != char_width or height % 2**ups:
            raise ArchitectureError(
                f"char_width = {char_width}, height = {height}: the handwriting generator needs "
                f"char_width = {BLOCK_WIDTH} * 2**k (k >= 1) and a height divisible by 2**k"
            )
        self.latent_dim, self.vocab_size, self.channels = latent_dim, vocab_size, channels
        self.height, self.char_width, self.width = height, char_width, width
        self.h0 = height // 2**ups
        self.bank = nn.Embedding(vocab_size, width * self.h0 * BLOCK_WIDTH)  # the filter bank
        self.style = nn.Linear(latent_dim, 2 * width)  # z modulates every character's block
        dims = [max(8, width // 2**i) for i in range(ups + 1)]
        self.ups = nn.ModuleList(
            StyledUp(a, b, latent_dim) for a, b in zip(dims, dims[1:], strict=False)
        )
        self.out = nn.Conv2d(dims[-1], channels, 3, padding=1)
        self.kwargs = {"vocab_size": vocab_size, "latent_dim": latent_dim, "height": height,
                       "char_width": char_width, "channels": channels, "width": width}  # fmt: skip

    def blocks(self, z: Tensor, text: Tensor) -> Tensor:
        """The filter-bank rows of ``text``'s characters, styled by z, side by side:
        (N, width, h0, L * BLOCK_WIDTH)."""
        n, length = text.shape
        f = self.bank(text).view(n, length, self.width, self.h0, BLOCK_WIDTH)
        gamma, beta = self.style(z)[:, None, :, None, None].chunk(2, 2)
        f = f * (1 + gamma) + beta
        return f.permute(0, 2, 3, 1, 4).reshape(n, self.width, self.h0, length * BLOCK_WIDTH)

    def forward(self, z: Tensor, text: Tensor, lengths: Tensor) -> Tensor:
        x = self.blocks(z, text) * column_mask(lengths, BLOCK_WIDTH, text.shape[1] * BLOCK_WIDTH)
        per_char = BLOCK_WIDTH
        for up in self.ups:
            per_char *= 2
            x = up(x, z, lengths, per_char)
        x = torch.tanh(self.out(x))
        inside = column_mask(lengths, self.char_width, x.shape[-1]).bool()
        return torch.where(inside, x, torch.full_like(x, BACKGROUND))


class WordDiscriminator(nn.Module):
    """(N, channels, H, W) word images -> (N, 1, 1, W / 4) patch logits: two stride-2 4 x 4
    convolutions (spectrally normalised, LeakyReLU 0.2, as ScrabbleGAN's BigGAN D), a 3 x 3 one,
    then a convolution over the remaining height. Every logit sees a window of a few characters,
    so one D judges words of any length; the losses average the logits."""

    def __init__(self, *, channels: int = 1, height: int = 8, width: int = 32) -> None:
        super().__init__()
        if height % 4:
            raise ArchitectureError(
                f"image height = {height}; the word discriminator needs a multiple of 4"
            )
        sn = nn.utils.parametrizations.spectral_norm
        self.net = nn.Sequential(
            sn(nn.Conv2d(channels, width, 4, 2, 1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(width, 2 * width, 4, 2, 1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(2 * width, 2 * width, 3, 1, 1)), nn.LeakyReLU(0.2),
            sn(nn.Conv2d(2 * width, 1, (height // 4, 3), 1, (0, 1))),
        )  # fmt: skip
        self.kwargs = {"channels": channels, "height": height, "width": width}

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


HANDWRITING_ARCHS: Registry = Registry("handwriting arch")


@HANDWRITING_ARCHS.register("scrabble")
def build_nets(meta: dict, cfg) -> dict[str, nn.Module]:
    """G (``width`` channels in its filter bank, default 64), D (half as many) and R
    (``recognizer_width`` base channels) for the dataset's vocabulary, height and char_width."""
    channels, height = int(meta["shape"][0]), int(meta["shape"][1])
    vocab_size = word_vocabulary(meta).size
    width = cfg.width or 64
    G = ScrabbleGenerator(
        vocab_size=vocab_size, latent_dim=cfg.latent_dim, height=height,
        char_width=int(meta["char_width"]), channels=channels, width=width,
    )  # fmt: skip
    D = WordDiscriminator(channels=channels, height=height, width=max(8, width // 2))
    R = Recognizer(vocab_size, height, width=cfg.recognizer_width)
    return {"G": G, "D": D, "R": R}


__all__ = ["BACKGROUND", "HANDWRITING_ARCHS", "ScrabbleGenerator", "WordDiscriminator",
           "build_nets", "column_mask"]  # fmt: skip
