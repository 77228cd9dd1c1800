"""Discriminator regularisers: ``reg(D, real, fake) -> (penalty, stats)``.

The training loop multiplies each penalty by its weight and sums it into D's loss; a regulariser
with interval k runs every k-th D update with its weight multiplied by k (lazy regularisation,
Karras et al. 2020, StyleGAN2 section 3.1).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genlab.registry import Registry

GAN_REGULARIZERS: Registry = Registry("regularizer")


def grad_sq_norm(D: nn.Module, x: Tensor) -> Tensor:
    """||grad_x D(x)||^2 per sample, with a graph so the penalty can be backpropagated."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x).float().sum(), x, create_graph=True)
    return grad.flatten(1).pow(2).sum(1)


@GAN_REGULARIZERS.register("r1")
class R1:
    """Zero-centred gradient penalty on real data, (1/2) E[||grad D(x)||^2] (Mescheder et al. 2018,
    eq. 9); the loop's weight is gamma."""

    def __call__(self, D: nn.Module, real: Tensor, fake: Tensor) -> tuple[Tensor, dict]:
        sq = grad_sq_norm(D, real)
        return 0.5 * sq.mean(), {"r1_grad_norm": sq.detach().sqrt().mean().item()}
