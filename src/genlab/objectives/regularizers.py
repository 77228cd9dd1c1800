"""Discriminator regularisers, composable, each with a weight and a lazy interval.

A regulariser has up to three hooks: ``setup(D)`` once after the networks are built (spectral
norm), ``penalty(D, real, fake, noise) -> (Tensor, stats)`` added to D's loss times its weight,
and ``after_step(D)`` after every D update (weight clipping). A regulariser with interval k runs
its penalty every k-th D update with the weight multiplied by k (lazy regularisation, Karras et
al. 2020, StyleGAN2 section 3.1).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genlab.options import Field, Options
from genlab.registry import Registry

GAN_REGULARIZERS: Registry = Registry("regularizer")


class RegularizerOptions(Options):
    """``regularizers.<name>`` in a variant; each regulariser ``reads`` some of these keys, the
    others must stay at their defaults."""

    weight: float = Field(1.0, ge=0)  # multiplies the penalty (gamma for r1/r2, lambda for GP)
    every: int = Field(1, ge=1)  # lazy regularisation interval (StyleGAN2)
    clip: float = Field(0.01, gt=0)  # weight_clip: parameters clamped to [-clip, clip]
    one_sided: bool = False  # gradient_penalty: penalise only gradient norms above 1


class Regularizer:
    """No-op hooks; subclasses override what they need. ``cfg``: its RegularizerOptions."""

    has_penalty = True
    second_order = False  # whether its penalty is differentiated through a gradient of D
    reads: frozenset[str] = frozenset({"weight", "every"})  # the options it uses
    no_batch_norm = ""  # why it needs D without batch norm (genlab.nets.base.per_sample_critic)

    def __init__(self, cfg: RegularizerOptions | None = None) -> None:
        self.cfg = cfg if cfg is not None else RegularizerOptions()

    def setup(self, D: nn.Module) -> None: ...

    def penalty(
        self, D: nn.Module, real: Tensor, fake: Tensor, noise: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        raise NotImplementedError

    def after_step(self, D: nn.Module) -> None: ...


# why R1 and R2 need D without batch norm
GRAD_OF_SUM = (
    "the penalty is on each sample's gradient (Mescheder et al. 2018, eqs. 9-10), taken as the "
    "gradient of D's summed outputs, which is that only when D has no batch norm"
)


def grad_norm_at(D: nn.Module, x: Tensor) -> Tensor:
    """||grad_x D(x)|| per sample, with a graph so a penalty on it can be backpropagated."""
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x).float().sum(), x, create_graph=True)
    return grad.flatten(1).norm(dim=1)


@GAN_REGULARIZERS.register("r1")
class R1(Regularizer):
    """Zero-centred gradient penalty on real data, (1/2) E[||grad D(x)||^2] (Mescheder et al. 2018,
    eq. 9); its weight is gamma."""

    second_order = True  # differentiates D's gradient (torch.compile cannot)

    no_batch_norm = GRAD_OF_SUM

    def penalty(self, D, real, fake, noise=None):
        norm = grad_norm_at(D, real)
        return 0.5 * norm.pow(2).mean(), {"r1_grad_norm": norm.detach().mean()}


@GAN_REGULARIZERS.register("r2")
class R2(Regularizer):
    """Zero-centred gradient penalty on generated data, (1/2) E[||grad D(G(z))||^2] (Mescheder et
    al. 2018, eq. 10)."""

    second_order = True  # differentiates D's gradient (torch.compile cannot)

    no_batch_norm = GRAD_OF_SUM

    def penalty(self, D, real, fake, noise=None):
        norm = grad_norm_at(D, fake)
        return 0.5 * norm.pow(2).mean(), {"r2_grad_norm": norm.detach().mean()}


@GAN_REGULARIZERS.register("gradient_penalty")
class GradientPenalty(Regularizer):
    """WGAN-GP (Gulrajani et al. 2017, eq. 3): E[(||grad D(x_hat)|| - 1)^2] on x_hat = a x + (1 - a)
    G(z), a ~ U[0, 1]; ``one_sided: true`` penalises only norms above 1, E[max(0, ||.|| - 1)^2]."""

    second_order = True  # differentiates D's gradient (torch.compile cannot)

    reads = frozenset({"weight", "every", "one_sided"})
    no_batch_norm = (
        "the penalty is on each sample's gradient, which batch norm makes depend on the "
        "other samples (Gulrajani et al. 2017, sec. 4: no batch norm in the critic)"
    )

    def penalty(self, D, real, fake, noise=None):
        shape = (len(real),) + (1,) * (real.dim() - 1)
        alpha = torch.rand(shape, generator=noise, device=real.device, dtype=real.dtype)
        norm = grad_norm_at(D, alpha * real.detach() + (1 - alpha) * fake.detach())
        excess = norm - 1
        if self.cfg.one_sided:
            excess = excess.clamp(min=0)
        return excess.pow(2).mean(), {"gp_grad_norm": norm.detach().mean()}


@GAN_REGULARIZERS.register("weight_clip")
class WeightClip(Regularizer):
    """WGAN weight clipping (Arjovsky et al. 2017, Algorithm 1): every D parameter is clamped to
    [-c, c] after each D update; ``clip`` is c (0.01 in the paper)."""

    has_penalty = False
    reads = frozenset({"clip"})

    @torch.no_grad()
    def after_step(self, D: nn.Module) -> None:
        c = self.cfg.clip
        for p in D.parameters():
            p.clamp_(-c, c)


@GAN_REGULARIZERS.register("spectral_norm")
class SpectralNorm(Regularizer):
    """Spectral normalisation (Miyato et al. 2018): every convolution, linear and embedding
    layer of D (the projection discriminator's class embedding too, as Miyato & Koyama 2018 do) is
    divided by its largest singular value, estimated by one power iteration per forward pass
    (PyTorch's ``torch.nn.utils.parametrizations.spectral_norm``)."""

    has_penalty = False
    reads: frozenset[str] = frozenset()
    no_batch_norm = (
        "batch norm divides by the batch's standard deviation, so D's Lipschitz constant is no "
        "longer bounded by the product of its layers' spectral norms (Miyato et al. 2018)"
    )

    def setup(self, D: nn.Module) -> None:
        layers = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.Embedding)
        for module in list(D.modules()):
            if isinstance(module, layers):
                nn.utils.parametrizations.spectral_norm(module)
