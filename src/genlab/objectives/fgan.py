"""f-GAN: variational divergence minimisation (Nowozin, Cseke & Tomioka 2016, "f-GAN").

An f-divergence D_f(P||Q) = int q(x) f(p(x)/q(x)) dx (eq. 2; f convex, f(1) = 0) has the
variational lower bound (eq. 4, with T = g_f(V) as in eq. 6)

    D_f(P||Q) >= F(V) = E_P[g_f(V(x))] - E_Q[f*(g_f(V(x)))],

tight at T*(x) = g_f(V*(x)) = f'(p(x)/q(x)) (eq. 5), where f* is the Fenchel conjugate of f
and the output activation g_f maps the raw output V (the "logit") into dom f*. Table 1 of the
paper gives f, Table 2 gives f*, dom f* and g_f; ``DIVERGENCES`` holds them.

Conventions are the paper's, checked here (see the tests):

* Jensen-Shannon: Table 1 writes D_JS with a factor 1/2, but its generator
  f(u) = -(u + 1) log((1 + u) / 2) + u log u, its conjugate -log(2 - e^t) and g_f (range
  t < log 2) all belong to the *unhalved* sum: int q f(p/q) = 2 * D_JS. We keep f, f*, g_f as
  printed, so ``jensen_shannon`` measures 2 * D_JS (max 2 log 2); the argmin is unchanged.
* GAN: f(u) = u log u - (u + 1) log(u + 1) has f(1) = -log 4 (not 0): D_GAN = 2 D_JS - log 4,
  and F(V) is exactly the GAN value E_P[log D] + E_Q[log(1 - D)] with D = sigmoid(V).
* Pearson / Neyman: named by their generator, so ``pearson`` (f = (u - 1)^2) is
  int (p - q)^2 / q; Table 1's integral column lists the two with p and q swapped.
* Pearson's f*(t) = t^2/4 + t (dom R) is the conjugate of (u - 1)^2 on all of R; over u >= 0
  the supremum is -1 for t < -2. The bound stays valid (only looser) there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from genlab.objectives.gan import GAN_LOSSES, GANLoss, Stats, mean_outputs
from genlab.options import Option, declare, option_default
from genlab.registry import Registry

LOG2 = math.log(2.0)
TensorFn = Callable[[Tensor], Tensor]


def log_lambertw_exp(a: Tensor, iters: int = 8) -> Tensor:
    """log W(e^a) for the principal branch: the y with e^y + y = a, i.e. w = e^y solves
    w + log w = a (any real a).

    Newton's method on h(y) = e^y + y - a: h is increasing and convex and the start (y = a for
    a <= 1, y = log a for a > 1) has h > 0, so the iterates fall monotonically to the root
    without overshoot (about 5 iterations reach float64 precision). The iterations run without
    autograd; one last Newton step from the converged point carries the exact gradient
    dy/da = 1 / (1 + W). Working with log W keeps 1 / W = e^-y and its gradient finite.
    """
    with torch.no_grad():
        y = torch.where(a > 1, torch.log(a.clamp(min=1)), a)
        for _ in range(iters):
            ey = torch.exp(y)
            y = y - (ey + y - a) / (ey + 1)
    ey = torch.exp(y)
    return y - (ey + y - a) / (ey + 1)


def lambertw(x: Tensor) -> Tensor:
    """Principal-branch Lambert W for x > 0 (solves w e^w = x), as exp(log W(e^(log x)))."""
    return torch.exp(log_lambertw_exp(torch.log(x)))


@dataclass(frozen=True)
class Interval:
    """A real interval (lo, hi); each end open unless flagged closed. Used for dom f*."""

    lo: float
    hi: float
    lo_closed: bool = False
    hi_closed: bool = False

    def contains(self, t: Tensor) -> Tensor:
        above = t >= self.lo if self.lo_closed else t > self.lo
        below = t <= self.hi if self.hi_closed else t < self.hi
        return above & below


REALS = Interval(-math.inf, math.inf)


@dataclass(frozen=True)
class Divergence:
    """One row of Tables 1-2: generator f(u), conjugate f*(t), activation g_f(v), dom f*.

    ``f_star_activation`` optionally gives f*(g_f(v)) in a form that stays finite for large |v|
    (e.g. softplus(v) for GAN instead of -log(1 - exp(-softplus(-v))))."""

    name: str
    f: TensorFn
    f_star: TensorFn
    activation: TensorFn
    domain: Interval
    f_star_activation: TensorFn | None = None

    def conjugate_of_activation(self, v: Tensor) -> Tensor:
        """f*(g_f(v)), computed stably when a closed form is known."""
        if self.f_star_activation is not None:
            return self.f_star_activation(v)
        return self.f_star(self.activation(v))

    def bound(self, v_p: Tensor, v_q: Tensor) -> Tensor:
        """F = mean g_f(v_p) - mean f*(g_f(v_q)) on raw outputs for P and Q samples (eq. 6)."""
        return self.activation(v_p).mean() - self.conjugate_of_activation(v_q).mean()


def _jeffrey_conjugate(t: Tensor) -> Tensor:
    """Table 2: f*(t) = W(e^(1-t)) + 1 / W(e^(1-t)) + t - 2 = 2 cosh(log W(e^(1-t))) + t - 2."""
    return 2 * torch.cosh(log_lambertw_exp(1 - t)) + t - 2


def _xlogx(u: Tensor) -> Tensor:
    return torch.xlogy(u, u)


DIVERGENCES: Registry = Registry("divergence")

for _d in (
    Divergence(
        "kl",
        f=_xlogx,
        f_star=lambda t: torch.exp(t - 1),
        activation=lambda v: v,
        domain=REALS,
    ),
    Divergence(
        "reverse_kl",
        f=lambda u: -torch.log(u),
        f_star=lambda t: -1 - torch.log(-t),
        activation=lambda v: -torch.exp(-v),
        domain=Interval(-math.inf, 0.0),
        f_star_activation=lambda v: v - 1,
    ),
    Divergence(
        "pearson",
        f=lambda u: (u - 1) ** 2,
        f_star=lambda t: 0.25 * t**2 + t,
        activation=lambda v: v,
        domain=REALS,
    ),
    Divergence(
        "neyman",
        f=lambda u: (1 - u) ** 2 / u,
        f_star=lambda t: 2 - 2 * torch.sqrt(1 - t),
        activation=lambda v: -torch.expm1(-v),
        domain=Interval(-math.inf, 1.0),
        f_star_activation=lambda v: 2 - 2 * torch.exp(-0.5 * v),
    ),
    Divergence(
        "squared_hellinger",
        f=lambda u: (torch.sqrt(u) - 1) ** 2,
        f_star=lambda t: t / (1 - t),
        activation=lambda v: -torch.expm1(-v),
        domain=Interval(-math.inf, 1.0),
        f_star_activation=torch.expm1,
    ),
    Divergence(
        "jeffrey",
        f=lambda u: (u - 1) * torch.log(u),
        f_star=_jeffrey_conjugate,
        activation=lambda v: v,
        domain=REALS,
    ),
    Divergence(
        "jensen_shannon",
        f=lambda u: _xlogx(u) - (u + 1) * (torch.log1p(u) - LOG2),
        f_star=lambda t: -LOG2 - torch.log1p(-torch.exp(t - LOG2)),
        activation=lambda v: LOG2 - F.softplus(-v),
        domain=Interval(-math.inf, LOG2),
        f_star_activation=lambda v: F.softplus(v) - LOG2,
    ),
    Divergence(
        "gan",
        f=lambda u: _xlogx(u) - (u + 1) * torch.log1p(u),
        f_star=lambda t: -torch.log(-torch.expm1(t)),
        activation=lambda v: -F.softplus(-v),
        domain=Interval(-math.inf, 0.0),
        f_star_activation=F.softplus,
    ),
    Divergence(
        "total_variation",
        f=lambda u: 0.5 * torch.abs(u - 1),
        f_star=lambda t: t,
        activation=lambda v: 0.5 * torch.tanh(v),
        domain=Interval(-0.5, 0.5, lo_closed=True, hi_closed=True),
    ),
):
    DIVERGENCES.register(_d.name)(_d)


@GAN_LOSSES.register("fgan")
@declare(divergence=Option(str, "gan", names=DIVERGENCES))  # Nowozin et al. 2016, table 1
class FGAN(GANLoss):
    """f-GAN loss (Nowozin et al. 2016) for the divergence ``cfg.divergence`` (default "gan").

    The discriminator (variational function V) maximises the bound of eq. 6,
    F = E_P[g_f(V(x))] - E_Q[f*(g_f(V(G(z))))], so its loss is -F; stats report F, the current
    lower estimate of D_f(P||Q). The generator minimises the paper's alternative objective of
    section 3.2, -E_Q[g_f(V(G(z)))] (the analogue of the non-saturating GAN loss), instead of
    the saddle objective E_Q[-f*(g_f(V))] (Algorithm 1 descends F itself).
    """

    def __init__(self, cfg=None, divergence: str | None = None) -> None:
        super().__init__(cfg)
        if divergence is None:
            divergence = cfg.divergence if cfg is not None else option_default(self, "divergence")
        name = divergence
        self.divergence: Divergence = DIVERGENCES.get(name)

    def discriminator(self, d_real: Tensor, d_fake: Tensor) -> tuple[Tensor, Stats]:
        bound = self.divergence.bound(d_real, d_fake)
        return -bound, mean_outputs(d_real, d_fake) | {"divergence_estimate": bound.detach()}

    def generator(self, d_fake: Tensor) -> tuple[Tensor, Stats]:
        return -self.divergence.activation(d_fake).mean(), {}
