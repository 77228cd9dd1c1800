"""Self-attention for convolutional GANs (Zhang et al. 2019, SAGAN, sec. 3).

Every position attends to every other one, so G can coordinate details far apart and D can check
them; ``gamma`` starts at 0, so a fresh block is the identity and the network first relies on
local convolutions. ``cfg.attention = s`` inserts one block right after the layer that outputs the
s x s feature maps (G and D); ``attention_position`` checks s against the network's sides.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genlab.nets.base import ArchitectureError


class SelfAttention(nn.Module):
    """y = gamma * o + x with o_j = sum_i beta_{j,i} h(x_i), beta_{j,i} = softmax_i(f(x_i)^T g(x_j))
    (SAGAN eqs. 1-3; h keeps all ``dim`` channels, f and g have dim // 8, at least 1)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        inner = max(dim // 8, 1)
        self.f = nn.Conv2d(dim, inner, 1)  # keys: f(x_i)
        self.g = nn.Conv2d(dim, inner, 1)  # queries: g(x_j)
        self.h = nn.Conv2d(dim, dim, 1)  # values: h(x_i)
        self.gamma = nn.Parameter(torch.zeros(()))

    def attention_map(self, x: Tensor) -> Tensor:
        """beta (B, N, N) over the N = H * W positions; row j: position j's weights over i."""
        f, g = self.f(x).flatten(2), self.g(x).flatten(2)  # (B, C', N)
        s = torch.bmm(g.transpose(1, 2), f)  # s[b, j, i] = g(x_j) . f(x_i)
        return s.softmax(dim=-1)

    def forward(self, x: Tensor) -> Tensor:
        beta = self.attention_map(x).to(x.dtype)
        h = self.h(x).flatten(2)  # (B, C, N)
        o = torch.bmm(h, beta.transpose(1, 2)).view_as(x)  # o[:, :, j] = sum_i beta[j, i] h_i
        return self.gamma * o + x


def attention_position(side: int, sides: list[int]) -> int | None:
    """Index in ``sides`` (the network's feature-map sides, in the order its layers output them)
    after which to insert self-attention; None for side 0; ArchitectureError if not a side."""
    if side == 0:
        return None
    if side not in sides:
        allowed = ", ".join(str(s) for s in sorted(set(sides)))
        raise ArchitectureError(
            f"attention = {side} is not a feature-map side of this network; allowed: {allowed} "
            "(or 0 for no self-attention)"
        )
    return sides.index(side)
