"""The generators and the critic of the token-row GANs (text_wgan, gumbel_gan).

``conv``: the 1-D convolutional G and critic of Gulrajani et al. 2017 (sec. 5 and appendix,
their character-level language model). G: z -> linear -> (width, length) -> ``blocks`` residual
blocks -> 1x1 convolution to the vocabulary -> softmax over it at every position: (N, length,
vocab) probabilities, never sampled during training (the critic sees them as they are). Critic:
one-hot rows (or G's probabilities) (N, length, vocab) -> 1x1 convolution -> ``blocks`` residual
blocks -> linear -> one value per row. A residual block is x + 0.3 * conv5(relu(conv5(relu(x)))),
no normalisation (the gradient penalty needs a per-sample critic, sec. 4). The paper: width 512,
5 blocks, z of 128.

``lstm``: the recurrent G of Kusner & Hernandez-Lobato 2016 (sec. 3): an LSTM whose state starts
from z and whose input at each position is the relaxed sample it emitted at the one before, so
every character is drawn knowing the ones before it; the same convolutional critic.

Both generators give their rows through ``rows(z, relax)``: ``relax(logits, t)`` maps the logits
of position(s) ``t`` to what is emitted there (a softmax, a Gumbel-softmax sample, a one-hot
draw); the convolutional G calls it once on all positions (``t`` = ``ALL``), the recurrent G once
per position and feeds its output back.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.nets.srresnet import RESIDUAL_BLOCKS
from genlab.options import declare
from genlab.registry import Registry

# the architectures of the token-row GANs (text_wgan, gumbel_gan): name -> (meta, cfg) -> nets
SEQUENCE_ARCHS: Registry = Registry("sequence arch")
KERNEL = 5  # the paper's kernel width along the sequence
RESIDUAL_SCALE = 0.3  # the residual branch is scaled by 0.3 (the paper's code)
ALL = slice(None)  # ``relax``'s position argument for all positions at once
# (logits (N, V) of position t, or (N, L, V) with t = ALL; t) -> what G emits there, same shape
Relax = Callable[[Tensor, "int | slice"], Tensor]


def softmax_relax(logits: Tensor, t: int | slice = ALL) -> Tensor:
    """G's distribution itself (WGAN-GP on characters: no sampling)."""
    return torch.softmax(logits, dim=-1)


def one_hot(tokens: Tensor, vocab_size: int) -> Tensor:
    """int64 (N, L) tokens -> float (N, L, V) one-hot rows."""
    return F.one_hot(tokens, vocab_size).float()


class ResBlock1d(nn.Module):
    """x + 0.3 * conv(relu(conv(relu(x)))), two ``kernel_size`` convolutions of ``width``
    channels, length kept ("same" padding)."""

    def __init__(self, width: int, kernel_size: int = KERNEL) -> None:
        super().__init__()
        pad = kernel_size // 2
        self.conv_1 = nn.Conv1d(width, width, kernel_size, padding=pad)
        self.conv_2 = nn.Conv1d(width, width, kernel_size, padding=pad)

    def forward(self, x: Tensor) -> Tensor:
        return x + RESIDUAL_SCALE * self.conv_2(F.relu(self.conv_1(F.relu(x))))


class SequenceGenerator(nn.Module):
    """z (N, latent_dim) -> (N, length, vocab_size): ``logits`` or, as ``forward``, their softmax
    over the vocabulary at every position."""

    def __init__(
        self,
        latent_dim: int,  # z's size (the paper: 128)
        length: int,  # characters per row
        vocab_size: int,  # token values
        width: int = 128,  # channels of every block (the paper: 512)
        blocks: int = 5,  # residual blocks
    ) -> None:
        super().__init__()
        self.latent_dim, self.length, self.vocab_size, self.width = (
            latent_dim, length, vocab_size, width,
        )  # fmt: skip
        self.fc = nn.Linear(latent_dim, width * length)
        self.blocks = nn.Sequential(*[ResBlock1d(width) for _ in range(blocks)])
        self.out = nn.Conv1d(width, vocab_size, 1)

    def logits(self, z: Tensor) -> Tensor:
        h = self.fc(z).view(len(z), self.width, self.length)
        return self.out(self.blocks(h)).transpose(1, 2)  # (N, L, V)

    def rows(self, z: Tensor, relax: Relax) -> Tensor:
        """``relax`` of all positions' logits at once."""
        return relax(self.logits(z), ALL)

    def forward(self, z: Tensor) -> Tensor:
        return self.rows(z, softmax_relax)


class RecurrentGenerator(nn.Module):
    """z -> (h_0, c_0) by a linear map; at position t an LSTM cell reads what G emitted at t - 1
    (a learned start vector at t = 0) and a linear map gives the logits of position t (Kusner &
    Hernandez-Lobato 2016, sec. 3)."""

    def __init__(self, latent_dim: int, length: int, vocab_size: int, width: int = 128) -> None:
        super().__init__()
        self.latent_dim, self.length, self.vocab_size, self.width = (
            latent_dim, length, vocab_size, width,
        )  # fmt: skip
        self.init = nn.Linear(latent_dim, 2 * width)
        self.start = nn.Parameter(torch.zeros(vocab_size))
        self.cell = nn.LSTMCell(vocab_size, width)
        self.out = nn.Linear(width, vocab_size)

    def rows(self, z: Tensor, relax: Relax) -> Tensor:
        h, c = torch.tanh(self.init(z)).chunk(2, dim=1)
        emitted, out = self.start.expand(len(z), -1), []
        for t in range(self.length):
            h, c = self.cell(emitted, (h, c))
            emitted = relax(self.out(h), t)
            out.append(emitted)
        return torch.stack(out, dim=1)

    def forward(self, z: Tensor) -> Tensor:
        """G's distribution at every position, each fed back to the next (no sampling)."""
        return self.rows(z, softmax_relax)


class SequenceCritic(nn.Module):
    """(N, length, vocab_size) one-hot rows or distributions -> (N,) critic values (logits of a
    discriminator)."""

    def __init__(
        self,
        length: int,
        vocab_size: int,
        width: int = 128,
        blocks: int = 5,
    ) -> None:
        super().__init__()
        self.length, self.vocab_size, self.width = length, vocab_size, width
        self.inp = nn.Conv1d(vocab_size, width, 1)
        self.blocks = nn.Sequential(*[ResBlock1d(width) for _ in range(blocks)])
        self.fc = nn.Linear(width * length, 1)

    def forward(self, x: Tensor) -> Tensor:
        h = self.blocks(self.inp(x.transpose(1, 2)))
        return self.fc(h.flatten(1)).squeeze(1)


def _shape(meta: dict, cfg) -> tuple[int, int, int]:
    return int(meta["length"]), len(meta["vocabulary"]), cfg.width or 128


@SEQUENCE_ARCHS.register("conv")
@declare(residual_blocks=RESIDUAL_BLOCKS)
def conv_pair(meta: dict, cfg) -> dict[str, nn.Module]:
    """Convolutional G and critic for a token dataset (meta ``length`` and ``vocabulary``) and a
    variant's ``latent_dim``, ``width`` (None: 128) and ``residual_blocks``."""
    length, vocab, width = _shape(meta, cfg)
    return {
        "G": SequenceGenerator(cfg.latent_dim, length, vocab, width, cfg.residual_blocks),
        "D": SequenceCritic(length, vocab, width, cfg.residual_blocks),
    }


@SEQUENCE_ARCHS.register("lstm")
@declare(residual_blocks=RESIDUAL_BLOCKS)
def lstm_pair(meta: dict, cfg) -> dict[str, nn.Module]:
    """Recurrent G (``width`` LSTM units) and the convolutional critic (``residual_blocks``)."""
    length, vocab, width = _shape(meta, cfg)
    return {
        "G": RecurrentGenerator(cfg.latent_dim, length, vocab, width),
        "D": SequenceCritic(length, vocab, width, cfg.residual_blocks),
    }


__all__ = [
    "ALL",
    "SEQUENCE_ARCHS",
    "RecurrentGenerator",
    "Relax",
    "ResBlock1d",
    "SequenceCritic",
    "SequenceGenerator",
    "conv_pair",
    "lstm_pair",
    "one_hot",
    "softmax_relax",
]
