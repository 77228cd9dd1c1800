"""The Gumbel-softmax GAN family (Kusner & Hernandez-Lobato 2016): G emits, at every position, a
Gumbel-softmax sample y = softmax((logits + g) / tau) of its logits, tau annealed from
``tau_start`` to ``tau_end`` over training (``gumbel_hard``: the straight-through one-hot), and
D tells one-hot real rows from y with the standard GAN loss. G is the 1-D convolutional residual
generator of ``genlab.nets.sequence`` (the paper's G and D are LSTMs; the relaxation is what
this family shows). Samples: a categorical draw per position, argmax(logits + g) with seeded
Gumbel noise g (the Gumbel-max trick)."""

from __future__ import annotations

from typing import Any

from torch import nn

from genlab.families.base import Family, register, requires_fields
from genlab.families.gan import GAN
from genlab.families.gumbel_gan.gumbel import gumbel_noise
from genlab.families.gumbel_gan.trainer import (
    GUMBEL_LOSSES,
    GUMBEL_REGULARIZERS,
    GumbelGANTrainer,
)
from genlab.families.text_wgan.figures import CAPTIONS, SECTIONS, text_figures
from genlab.families.text_wgan.sampler import TokenSampler
from genlab.nets.sequence import SEQUENCE_ARCHS
from genlab.options import Field, Option

_tokens = requires_fields(x="tokens")


def check(v: Any) -> None:
    """Token rows, and a temperature that anneals down (or stays)."""
    _tokens(v)
    if v.tau_end > v.tau_start:
        raise ValueError(
            f"tau_end = {v.tau_end} exceeds tau_start = {v.tau_start}; allowed: tau_end <= "
            "tau_start (the temperature is annealed towards one-hot samples)"
        )


def sampler(modules: dict[str, nn.Module], cfg, meta: dict) -> TokenSampler:
    """argmax(logits + g), g seeded Gumbel noise: a categorical draw from G's softmax."""
    return TokenSampler(modules["G"], meta, perturb=gumbel_noise)


GUMBEL_GAN = register(
    Family(
        name="gumbel_gan",
        archs=SEQUENCE_ARCHS,
        losses=GUMBEL_LOSSES,
        regularizers=GUMBEL_REGULARIZERS,
        default_loss="nonsaturating",
        trainer=GumbelGANTrainer,
        sampler=sampler,
        generator="G",
        figures=text_figures,
        sections=SECTIONS,
        captions=CAPTIONS,
        options={
            "optimizer_d": GAN.options["optimizer_d"],  # D's; None = ``optimizer``
            "d_steps": GAN.options["d_steps"],  # D updates per G update
            "regularizers": GAN.options["regularizers"],  # r1, r2 (none in the paper)
            "tau_start": Option(float, Field(2.0, gt=0, le=100)),  # temperature at the start
            "tau_end": Option(float, Field(0.5, gt=0, le=100)),  # ... at the last G update
            "gumbel_hard": Option(bool, False),  # straight-through: one-hot forward
        },
        check=check,
    )
)

__all__ = ["GUMBEL_GAN", "check", "sampler"]
