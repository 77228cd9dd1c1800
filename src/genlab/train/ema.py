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
        """shadow <- shadow + (1 - decay) (weights - shadow); buffers copied. On CUDA in a few
        multi-tensor launches (``torch._foreach_*``), on CPU one tensor at a time, as genlab's
        CPU results were computed."""
        shadow, params = list(self.shadow.parameters()), list(net.parameters())
        if len(shadow) != len(params):
            raise ValueError(f"EMA of {len(shadow)} parameters updated from {len(params)}")
        if params and params[0].is_cuda:
            torch._foreach_lerp_(shadow, params, 1 - self.decay)
            shadow_buffers, buffers = list(self.shadow.buffers()), list(net.buffers())
            if buffers:
                torch._foreach_copy_(shadow_buffers, buffers)
            return
        for s, p in zip(shadow, params, strict=True):
            s.lerp_(p, 1 - self.decay)
        for s, b in zip(self.shadow.buffers(), net.buffers(), strict=True):
            s.copy_(b)
