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

from genlab.options import Field, Option, declare, option_default
from genlab.registry import Registry

GAN_LOSSES: Registry = Registry("loss")

Stats = dict[str, float]


class GANLoss:
    """Base class: the discriminator maximises V(D, G); subclasses choose the generator's loss.
    ``cfg`` (the variant) carries loss options such as ``ls_targets``, ``margin``, ``divergence``.
    """

    def __init__(self, cfg=None) -> None:
        self.cfg = cfg

    def setup(self, G: torch.nn.Module, D: torch.nn.Module) -> None:
        """Called once with the built networks (e.g. to check that D fits the loss)."""

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
            "d_real": torch.sigmoid(d_real.float()).mean().detach(),
            "d_fake": torch.sigmoid(d_fake.float()).mean().detach(),
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


@GAN_LOSSES.register("wasserstein")
class Wasserstein(GANLoss):
    """WGAN (Arjovsky et al. 2017, eq. 3): the critic maximises E[D(x)] - E[D(G(z))], an estimate of
    W1 when D is 1-Lipschitz (pair it with weight_clip, gradient_penalty or spectral_norm)."""

    def discriminator(self, d_real: Tensor, d_fake: Tensor) -> tuple[Tensor, Stats]:
        estimate = d_real.mean() - d_fake.mean()
        return -estimate, mean_outputs(d_real, d_fake) | {"wasserstein_estimate": estimate.detach()}

    def generator(self, d_fake: Tensor) -> tuple[Tensor, Stats]:
        return -d_fake.mean(), {}


def _targets_differ(v) -> None:
    if v.ls_targets[0] == v.ls_targets[1]:
        raise ValueError("ls_targets: a (fake) and b (real) must differ or D learns nothing")


@GAN_LOSSES.register("least_squares")
@declare(ls_targets=Option(tuple[float, float, float], (0.0, 1.0, 1.0)), check=_targets_differ)
class LeastSquares(GANLoss):
    """LSGAN (Mao et al. 2017, eq. 2) with targets a (fake), b (real) for D and c for G:
    D minimises 1/2 E[(D(x) - b)^2] + 1/2 E[(D(G(z)) - a)^2], G minimises 1/2 E[(D(G(z)) - c)^2].
    (a, b, c) = (-1, 1, 0) minimises the Pearson chi^2 divergence; (0, 1, 1) is the usual choice."""

    def __init__(self, cfg=None) -> None:
        super().__init__(cfg)
        targets = cfg.ls_targets if cfg is not None else option_default(self, "ls_targets")
        self.a, self.b, self.c = targets

    def discriminator(self, d_real: Tensor, d_fake: Tensor) -> tuple[Tensor, Stats]:
        loss = 0.5 * (d_real - self.b).pow(2).mean() + 0.5 * (d_fake - self.a).pow(2).mean()
        return loss, mean_outputs(d_real, d_fake)

    def generator(self, d_fake: Tensor) -> tuple[Tensor, Stats]:
        return 0.5 * (d_fake - self.c).pow(2).mean(), {}


@GAN_LOSSES.register("hinge")
class Hinge(GANLoss):
    """Hinge loss (Lim & Ye 2017; Miyato et al. 2018): D minimises E[max(0, 1 - D(x))] +
    E[max(0, 1 + D(G(z)))], G minimises -E[D(G(z))]."""

    def discriminator(self, d_real: Tensor, d_fake: Tensor) -> tuple[Tensor, Stats]:
        loss = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
        return loss, mean_outputs(d_real, d_fake)

    def generator(self, d_fake: Tensor) -> tuple[Tensor, Stats]:
        return -d_fake.mean(), {}


def _needs_autoencoder(v) -> None:
    if not v.arch.endswith("_ae"):
        raise ValueError(
            f"loss 'energy' needs an autoencoder discriminator; arch = {v.arch!r}, "
            "allowed: dcgan_ae, mlp_ae"
        )


@GAN_LOSSES.register("energy")
@declare(
    margin=Option(float, Field(1.0, gt=0)),  # EBGAN margin m
    pull_away=Option(float, Field(0.0, ge=0)),  # weight of the pulling-away term
    check=_needs_autoencoder,
)
class Energy(GANLoss):
    """EBGAN (Zhao et al. 2017, eqs. 1-2): D is an autoencoder whose reconstruction error is the
    energy; D minimises E[D(x)] + E[max(0, m - D(G(z)))], G minimises E[D(G(z))] plus, with weight
    ``pull_away``, the pulling-away term on D's embeddings of the fakes (eq. 6)."""

    def __init__(self, cfg=None) -> None:
        super().__init__(cfg)
        self.margin = cfg.margin if cfg is not None else option_default(self, "margin")
        self.pull_away = cfg.pull_away if cfg is not None else option_default(self, "pull_away")
        self.D: torch.nn.Module | None = None

    def setup(self, G: torch.nn.Module, D: torch.nn.Module) -> None:
        if not hasattr(D, "embedding"):
            from genlab.errors import ArchitectureError

            raise ArchitectureError(
                "loss 'energy' needs an autoencoder discriminator; allowed arch: dcgan_ae, mlp_ae"
            )
        self.D = D

    def discriminator(self, d_real: Tensor, d_fake: Tensor) -> tuple[Tensor, Stats]:
        loss = d_real.mean() + F.relu(self.margin - d_fake).mean()
        return loss, mean_outputs(d_real, d_fake)

    def generator(self, d_fake: Tensor) -> tuple[Tensor, Stats]:
        loss = d_fake.mean()
        if self.pull_away > 0:
            pt = pulling_away(self.D.embedding)
            return loss + self.pull_away * pt, {"pull_away": pt.detach()}
        return loss, {}


def pulling_away(s: Tensor) -> Tensor:
    """PT(S) = 1 / (N (N - 1)) sum_{i != j} cos(s_i, s_j)^2 (Zhao et al. 2017, eq. 6)."""
    s = F.normalize(s.flatten(1).float(), dim=1)
    n = len(s)
    cos2 = (s @ s.T).pow(2)
    return (cos2.sum() - cos2.diagonal().sum()) / (n * (n - 1))


def mean_outputs(d_real: Tensor, d_fake: Tensor) -> Stats:
    """Mean raw D outputs (critic values, energies), for the training curves."""
    return {"d_real": d_real.mean().detach(), "d_fake": d_fake.mean().detach()}
