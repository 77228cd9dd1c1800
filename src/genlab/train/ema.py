"""Exponential moving average of the generating network's weights (the driver applies it)."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """Exponential moving average of a network's weights (buffers are copied)."""

    def __init__(self, net: nn.Module, decay: float, key: str = "G") -> None:
        self.decay, self.key = decay, key  # key: which of the trainer's modules it averages
        self.shadow = copy.deepcopy(net).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        for s, p in zip(self.shadow.parameters(), net.parameters(), strict=True):
            s.lerp_(p, 1 - self.decay)
        for s, b in zip(self.shadow.buffers(), net.buffers(), strict=True):
            s.copy_(b)
