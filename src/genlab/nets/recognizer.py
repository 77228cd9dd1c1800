"""A CTC text recogniser for word images (Alonso et al. 2019, "the text recognition network R":
a gated convolutional recurrent network, CRNN).

The encoder has five convolutions with tanh activations, four of them preceded by a
convolutional gate (Bluche & Messina 2017: x * sigmoid(conv(x)), the gate of the "gated
convolutional" recogniser Alonso et al. build on), and max pooling: once by 2 x 2 after the
first convolution (the only halving of the width: T = W // 2 frames, 4 per 8-px character),
once more by 2 in height, then a max over the remaining height, so each column of 2 px becomes
one frame. The decoder is two stacked bidirectional LSTMs (``recurrent=True``, as in the paper)
or a per-frame linear layer with tanh (``recurrent=False``), then a linear layer to the
vocabulary and a log-softmax; CTC (Graves et al. 2006) trains it (``genlab.objectives.ctc``).

Departures from the paper, for a recogniser that learns in a few hundred CPU steps: the channels
are small (``width``, ``width``, ``2 width`` x 3); every convolution is batch-normalised before its
tanh, and the BiLSTM output is added to a linear map of its input (a skip connection). Without
either, CTC sat on its all-blank plateau for several epochs (measured on digit_strings).

Batch norm: apply R to generated images in eval mode (``R.eval()``; gradients still flow to the
images), so that fakes neither set the normalisation statistics nor update the running ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ConvGate(nn.Module):
    """Convolutional gate (Bluche & Messina 2017; Alonso et al. 2019):
    x * sigmoid(conv3x3(x)), a learned per-position, per-channel mask on the features."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(self.conv(x))


def _conv(c_in: int, c_out: int, gate: bool = True) -> list[nn.Module]:
    """[gate,] 3 x 3 convolution, batch norm, tanh: one encoder layer."""
    layers: list[nn.Module] = [ConvGate(c_in)] if gate else []
    return [*layers, nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.Tanh()]


class Recognizer(nn.Module):
    """Word image (N, 1, H, W) in [-1, 1] -> CTC log-probabilities (T, N, vocab_size) with
    T = W // 2 frames; blank is token 0."""

    def __init__(
        self,
        vocab_size: int,  # tokens incl. the CTC blank 0 (Vocabulary.size)
        height: int,  # image height in px (8 for digit_strings)
        width: int = 32,  # base channels of the encoder
        recurrent: bool = True,  # two stacked BiLSTMs (the paper) or a per-frame linear head
        feature_dim: int = 64,  # per-frame features of the head (features() averages them)
    ) -> None:
        super().__init__()
        if height < 2:
            raise ValueError(f"height = {height}; allowed: >= 2 (the encoder pools by 2)")
        if recurrent and feature_dim % 2:
            raise ValueError(f"feature_dim = {feature_dim} must be even with recurrent=True")
        self.kwargs = dict(
            vocab_size=vocab_size, height=height, width=width, recurrent=recurrent,
            feature_dim=feature_dim,
        )  # fmt: skip
        self.vocab_size, self.height, self.recurrent = vocab_size, height, recurrent
        w = width
        self.encoder = nn.Sequential(
            *_conv(1, w, gate=False),
            nn.MaxPool2d(2, 2),  # (H/2, W/2): the one halving of the width
            *_conv(w, w),
            nn.MaxPool2d((2, 1), (2, 1), ceil_mode=True),  # height only
            *_conv(w, 2 * w),
            *_conv(2 * w, 2 * w),
            *_conv(2 * w, 2 * w),
        )
        if recurrent:
            self.head = nn.LSTM(
                2 * w, feature_dim // 2, num_layers=2, bidirectional=True, batch_first=True
            )
            self.skip = nn.Linear(2 * w, feature_dim)  # added to the BiLSTM's output
        else:
            self.head = nn.Sequential(nn.Linear(2 * w, feature_dim), nn.Tanh())
        self.classifier = nn.Linear(feature_dim, vocab_size)

    def frames(self, lengths_px: Tensor) -> Tensor:
        """Frames a row of ``lengths_px`` image columns gives: ``lengths_px // 2`` (int64)."""
        return torch.div(lengths_px, 2, rounding_mode="floor").long()

    def frame_features(self, x: Tensor) -> Tensor:
        """(N, 1, H, W) -> the head's per-frame features (N, T, feature_dim)."""
        if x.dim() != 4 or x.shape[1] != 1 or x.shape[2] != self.height or x.shape[3] < 2:
            raise ValueError(
                f"Recognizer: input of shape {tuple(x.shape)}; allowed: (N, 1, {self.height}, W) "
                "with W >= 2"
            )
        h = self.encoder(x).amax(dim=2).transpose(1, 2)  # (N, T, 2w): max over the height
        if self.recurrent:
            return self.head(h)[0] + self.skip(h)
        return self.head(h)

    def forward(self, x: Tensor) -> Tensor:
        """log_probs (T, N, vocab_size) for CTC (log-softmax over the vocabulary)."""
        return F.log_softmax(self.classifier(self.frame_features(x)), dim=-1).transpose(0, 1)

    def features(self, x: Tensor, widths_px: Tensor | None = None) -> Tensor:
        """(N, feature_dim): the mean of each row's per-frame head features over its valid
        frames ``frames(widths_px)`` (at least one; None: all frames), for a Frechet distance of
        word images."""
        f = self.frame_features(x)
        if widths_px is None:
            return f.mean(1)
        n = self.frames(widths_px.to(f.device)).clamp(1, f.shape[1])
        valid = (torch.arange(f.shape[1], device=f.device)[None, :] < n[:, None]).to(f.dtype)
        return (f * valid[..., None]).sum(1) / n[:, None].to(f.dtype)


__all__ = ["ConvGate", "Recognizer"]
