"""GAN losses on discriminator logits (Goodfellow et al. 2014).

Every loss has one interface: ``discriminator(d_real, d_fake) -> (loss, stats)`` and
``generator(d_fake) -> (loss, stats)``, where ``d_*`` are raw discriminator outputs (logits).
Working on logits with ``softplus`` keeps log D and log(1 - D) finite when D saturates:
log D(x) = -softplus(-l) and log(1 - D(x)) = -softplus(l) for D(x) = sigmoid(l).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from genlab.registry import Registry

GAN_LOSSES: Registry = Registry("loss")

Stats = dict[str, float]


class GANLoss:
    """Base class: the discriminator maximises V(D, G); subclasses choose the generator's loss."""

    def discriminator(self, d_real: Tensor, d_fake: Tensor) -> tuple[Tensor, Stats]:
        # -V(D, G) = -E[log D(x)] - E[log(1 - D(G(z)))], lecture notes' D step.
        loss = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
        return loss, _probabilities(d_real, d_fake)

    def generator(self, d_fake: Tensor) -> tuple[Tensor, Stats]:
        raise NotImplementedError


def _probabilities(d_real: Tensor, d_fake: Tensor) -> Stats:
    """Mean D(x) and D(G(z)) as probabilities, for the training curves."""
    with torch.no_grad():
        return {
            "d_real": torch.sigmoid(d_real.float()).mean().item(),
            "d_fake": torch.sigmoid(d_fake.float()).mean().item(),
        }


@GAN_LOSSES.register("minimax")
class Minimax(GANLoss):
    """Saturating minimax GAN: G minimises E[log(1 - D(G(z)))] (Goodfellow et al. 2014, eq. 1)."""

    def generator(self, d_fake: Tensor) -> tuple[Tensor, Stats]:
        return -F.softplus(d_fake).mean(), {}


@GAN_LOSSES.register("nonsaturating")
class NonSaturating(GANLoss):
    """Non-saturating GAN: G minimises -E[log D(G(z))] (Goodfellow et al. 2014, section 3)."""

    def generator(self, d_fake: Tensor) -> tuple[Tensor, Stats]:
        return F.softplus(-d_fake).mean(), {}
