"""A training objective is a list of terms, summed in order (DESIGN rule 2).

A term contributes to the discriminator's loss, the generator's loss, or both; each returns
``(value or None, stats)`` for one update, already weighted. The GAN step hands every term the
same ``Step`` record (the batch, the fakes, D's outputs), so the adversarial loss, each
regulariser and InfoGAN's mutual-information bound plug in the same way, and so will an L1,
cycle, identity, feature-matching, content or CTC term.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

Stats = dict[str, float]


@dataclass
class Step:
    """One update's view for the terms. ``D`` is the discriminator as a function of x alone
    (a conditional D with the labels bound), ``nets`` the raw networks by key."""

    nets: dict[str, nn.Module]
    D: Any
    real: Tensor | None  # the real batch (None in G's update)
    fake: Tensor
    z: Tensor
    y: Tensor | None
    d_real: Tensor | None
    d_fake: Tensor
    noise: torch.Generator  # the trainer's seeded generator (interpolation weights, ...)
    amp: contextlib.AbstractContextManager = field(default_factory=contextlib.nullcontext)
    d_update: int = 0  # how many D updates came before this one (lazy regularisation)
    batch: dict[str, Tensor] = field(default_factory=dict)


class Term:
    """No-op hooks; a term overrides what it contributes."""

    def setup(self, nets: dict[str, nn.Module]) -> None:
        """Once, after the networks are built (spectral norm wraps D's layers here)."""

    def discriminator(self, s: Step) -> tuple[Tensor | None, Stats]:
        return None, {}

    def generator(self, s: Step) -> tuple[Tensor | None, Stats]:
        return None, {}

    def after_d_step(self, nets: dict[str, nn.Module]) -> None:
        """After every D update (weight clipping)."""


def total(terms: list[Term], side: str, s: Step) -> tuple[Tensor, Stats]:
    """Sum of the terms' values for ``side`` ("discriminator" or "generator"), in list order,
    and their statistics merged in the same order."""
    loss: Tensor | None = None
    stats: Stats = {}
    for term in terms:
        value, term_stats = getattr(term, side)(s)
        if value is not None:
            loss = value if loss is None else loss + value
        stats.update(term_stats)
    if loss is None:
        raise ValueError(f"no term contributes to the {side}'s loss")
    return loss, stats


class Adversarial(Term):
    """The GAN loss (``genlab.objectives.gan``) on D's outputs, as logits in float32."""

    def __init__(self, loss) -> None:
        self.loss = loss

    def setup(self, nets: dict[str, nn.Module]) -> None:
        self.loss.setup(nets["G"], nets["D"])

    def discriminator(self, s: Step) -> tuple[Tensor, Stats]:
        return self.loss.discriminator(s.d_real.float(), s.d_fake.float())

    def generator(self, s: Step) -> tuple[Tensor, Stats]:
        return self.loss.generator(s.d_fake.float())


class Regularized(Term):
    """A discriminator regulariser (``genlab.objectives.regularizers``) with its weight and its
    interval k: the penalty runs every k-th D update, weighted k times (lazy regularisation,
    Karras et al. 2020, StyleGAN2 sec. 3.1)."""

    def __init__(self, reg, weight: float, every: int) -> None:
        self.reg, self.weight, self.every = reg, weight, every

    def setup(self, nets: dict[str, nn.Module]) -> None:
        self.reg.setup(nets["D"])

    def discriminator(self, s: Step) -> tuple[Tensor | None, Stats]:
        if not self.reg.has_penalty or s.d_update % self.every:
            return None, {}
        with s.amp:
            penalty, stats = self.reg.penalty(s.D, s.real, s.fake, s.noise)
        return self.weight * self.every * penalty, stats

    def after_d_step(self, nets: dict[str, nn.Module]) -> None:
        self.reg.after_step(nets["D"])
