"""Connectionist temporal classification (Graves et al. 2006) for variable-length text: torch's
own ``F.ctc_loss`` (blank 0, ``zero_infinity``), with the frames-per-text requirement checked
first so a recogniser too short for its words fails with a clear error instead of a silent
zero (an infeasible alignment has infinite loss, which ``zero_infinity`` would hide).

A CTC path emits each of the L labels and needs a blank between two equal neighbours, so a text
of L labels with r adjacent repeats needs at least T >= L + r frames."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from genlab.errors import ConfigError
from genlab.runtime import cuda_path


def frames_needed(targets: Tensor, target_lengths: Tensor) -> Tensor:
    """L + r per row of ``targets`` (N, S) padded token rows: the fewest frames a CTC
    alignment of the first ``target_lengths[i]`` tokens can use."""
    s = targets.shape[1]
    valid = torch.arange(s, device=targets.device)[None, :] < target_lengths[:, None]
    repeats = (targets[:, 1:] == targets[:, :-1]) & valid[:, 1:]
    return target_lengths + repeats.sum(1)


def check_frames(input_lengths: Tensor, targets: Tensor, target_lengths: Tensor, what: str) -> None:
    """Raise ``ConfigError`` when some row has fewer frames than its text needs (T < L + r)."""
    need = frames_needed(targets, target_lengths)
    short = torch.nonzero(input_lengths.to(need.device) < need).flatten()
    if len(short):
        i = int(short[0])
        raise ConfigError(
            f"{what}: a text of {int(target_lengths[i])} characters with "
            f"{int(need[i] - target_lengths[i])} repeated neighbours needs at least "
            f"{int(need[i])} CTC frames (T >= L + repeats), but the recogniser gives "
            f"{int(input_lengths[i])}; allowed: a recogniser with more frames per character "
            "(a smaller width stride) or shorter texts (the dataset's max_length)"
        )


def ctc_loss(
    log_probs: Tensor,  # (T, N, C) log-softmax over the vocabulary, blank = 0
    targets: Tensor,  # (N, S) int64 tokens, padded
    input_lengths: Tensor,  # (N,) frames per row
    target_lengths: Tensor,  # (N,) tokens per row
    reduction: str = "mean",
    what: str = "CTC loss",
) -> Tensor:
    """torch's CTC loss (blank 0, zero_infinity=True; ``mean``: each row's loss divided by its
    target length, then averaged, as torch defines it), after ``check_frames``. It runs in
    float32 (torch's CTC kernels need it). On CUDA with deterministic algorithms required (the
    training driver requires them) it runs on CPU copies, whose backward is deterministic where
    CUDA's is not (``.cpu()`` is differentiable, so the gradient still reaches the device)."""
    check_frames(input_lengths, targets, target_lengths, what)
    device = log_probs.device
    if cuda_path(log_probs) and torch.are_deterministic_algorithms_enabled():
        log_probs, targets = log_probs.cpu(), targets.cpu()
        input_lengths, target_lengths = input_lengths.cpu(), target_lengths.cpu()
    loss = F.ctc_loss(
        log_probs.float(), targets, input_lengths.long(), target_lengths.long(), blank=0,
        reduction=reduction, zero_infinity=True,
    )  # fmt: skip
    return loss.to(device)


def greedy_decode(log_probs: Tensor, input_lengths: Tensor) -> list[list[int]]:
    """Best-path decoding: per row the arg-max frame labels with repeats merged and blanks
    removed (tokens, blank 0 excluded)."""
    best = log_probs.argmax(-1).transpose(0, 1).tolist()  # (N, T)
    out = []
    for row, n in zip(best, input_lengths.tolist(), strict=True):
        tokens, prev = [], 0
        for t in row[: int(n)]:
            if t != prev and t != 0:
                tokens.append(t)
            prev = t
        out.append(tokens)
    return out


__all__ = ["check_frames", "ctc_loss", "frames_needed", "greedy_decode"]
