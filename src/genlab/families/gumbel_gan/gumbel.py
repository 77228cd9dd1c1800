"""The Gumbel-softmax relaxation of a categorical sample (Jang et al. 2017; Maddison et al. 2017),
as Kusner & Hernandez-Lobato (2016, sec. 2) use it to train a GAN on discrete sequences.

With g_i = -log(-log u_i), u_i ~ U(0, 1), argmax_i (log pi_i + g_i) is a draw from the
categorical distribution pi (the Gumbel-max trick); y = softmax((log pi + g) / tau) relaxes its
one-hot vector, differentiably in pi, and tends to it as tau -> 0. The straight-through ("hard")
variant returns the one-hot argmax in the forward pass and the gradient of the soft y in the
backward pass. Logits stand for log pi (softmax is shift-invariant)."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

TINY = 1e-20  # keeps -log(-log u) finite at u = 0 or 1


def gumbel_noise(
    shape: tuple[int, ...], generator: torch.Generator | None = None, device: Any = "cpu"
) -> Tensor:
    """Standard Gumbel noise -log(-log u), u ~ U(0, 1), from ``generator``."""
    u = torch.rand(shape, generator=generator, device=device)
    return -torch.log(-torch.log(u + TINY) + TINY)


def gumbel_softmax(logits: Tensor, tau: float, noise: Tensor, hard: bool = False) -> Tensor:
    """y = softmax((logits + noise) / tau) over the last axis; ``hard``: the one-hot argmax of y
    forward, y's gradient backward (straight-through: y_hard - y.detach() + y)."""
    y = torch.softmax((logits + noise) / tau, dim=-1)
    if not hard:
        return y
    index = y.argmax(-1)
    y_hard = F.one_hot(index, y.shape[-1]).to(y.dtype)
    return y_hard - y.detach() + y


def annealed_tau(step: int, steps: int, tau_start: float, tau_end: float) -> float:
    """Temperature at G update ``step`` of ``steps``: geometric from ``tau_start`` (step 0) to
    ``tau_end`` (the last step), tau_start * (tau_end / tau_start) ** (step / (steps - 1)), so
    each update multiplies tau by the same factor (the exponential schedule of Jang et al. 2017,
    sec. 3.1); held at tau_end after."""
    if steps <= 1:
        return tau_end
    fraction = min(1.0, step / (steps - 1))
    return tau_start * math.exp(fraction * math.log(tau_end / tau_start))


__all__ = ["annealed_tau", "gumbel_noise", "gumbel_softmax"]
