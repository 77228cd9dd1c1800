"""The adaptive weight of VQ-GAN's adversarial term (Esser et al. 2021, "Taming Transformers for
High-Resolution Image Synthesis", eq. 7), which balances the GAN loss against the reconstruction
loss at the decoder's last layer, as ``calculate_adaptive_weight`` of the taming code does."""

from __future__ import annotations

import torch
from torch import Tensor

DELTA = 1e-4  # delta of eq. 7
MAX_WEIGHT = 1e4  # the taming code clamps lambda to [0, 1e4]


def adaptive_weight(
    rec_loss: Tensor,  # L_rec: a scalar that depends on ``last_layer``
    gan_loss: Tensor,  # L_GAN: the generator's adversarial loss, a scalar
    last_layer: Tensor,  # G_L: the weights of the decoder's last layer
    delta: float = DELTA,  # keeps the ratio finite when the GAN gradient vanishes
    max: float = MAX_WEIGHT,  # noqa: A002  (the clamp's upper end, named as in torch.clamp)
) -> Tensor:
    """lambda = ||grad_{G_L} L_rec|| / (||grad_{G_L} L_GAN|| + delta)  (eq. 7), clamped to
    [0, ``max``] and detached: a constant weight of this step, so no gradient flows through it.

    Both gradients are taken with ``retain_graph=True``, so the caller can still backpropagate
    L_rec + lambda * L_GAN through the same graph."""
    rec_grad = torch.autograd.grad(rec_loss, last_layer, retain_graph=True)[0]
    gan_grad = torch.autograd.grad(gan_loss, last_layer, retain_graph=True)[0]
    ratio = rec_grad.float().norm() / (gan_grad.float().norm() + delta)
    return ratio.clamp(0.0, max).detach()


__all__ = ["DELTA", "MAX_WEIGHT", "adaptive_weight"]
