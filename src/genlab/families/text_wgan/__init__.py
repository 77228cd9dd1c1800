"""The text WGAN-GP family (Gulrajani et al. 2017, sec. 5): a 1-D convolutional residual G whose
softmax over the vocabulary the critic sees directly (one-hot real rows vs softmax fake rows, no
sampling in training), the Wasserstein loss with the gradient penalty on their interpolates
(lambda 10), ``d_steps`` critic updates per G update (10 in their language model), Adam with
lr 1e-4 and betas (0.5, 0.9). Samples: the argmax of G's softmax at each position."""

from __future__ import annotations

from typing import Any

from torch import nn

from genlab.families.base import Family, register, requires_fields
from genlab.families.gan import GAN
from genlab.families.text_wgan.figures import CAPTIONS, SECTIONS, text_figures
from genlab.families.text_wgan.sampler import TokenSampler
from genlab.families.text_wgan.trainer import (
    TEXT_WGAN_LOSSES,
    TEXT_WGAN_REGULARIZERS,
    TextWGANTrainer,
)
from genlab.nets.sequence import SEQUENCE_ARCHS

_tokens = requires_fields(x="tokens")


def check(v: Any) -> None:
    """Token rows, and a critic kept Lipschitz: WGAN's estimate means nothing without it."""
    _tokens(v)
    if not v.regularizers:
        raise ValueError(
            "regularizers = {}: family 'text_wgan' needs a Lipschitz critic; allowed: "
            "regularizers: {gradient_penalty: {weight: 10}} (Gulrajani et al. 2017) or "
            "regularizers: {weight_clip: {clip: 0.01}}"
        )


def sampler(modules: dict[str, nn.Module], cfg, meta: dict) -> TokenSampler:
    """The argmax of G's softmax for seeded latents."""
    return TokenSampler(modules["G"], meta)


TEXT_WGAN = register(
    Family(
        name="text_wgan",
        archs=SEQUENCE_ARCHS,
        losses=TEXT_WGAN_LOSSES,
        regularizers=TEXT_WGAN_REGULARIZERS,
        default_loss="wasserstein",
        trainer=TextWGANTrainer,
        sampler=sampler,
        generator="G",
        figures=text_figures,
        sections=SECTIONS,
        captions=CAPTIONS,
        options={
            "optimizer_d": GAN.options["optimizer_d"],  # D's; None = ``optimizer``
            "d_steps": GAN.options["d_steps"],  # critic updates per G update (the paper: 10)
            "regularizers": GAN.options["regularizers"],
        },
        check=check,
    )
)

__all__ = ["TEXT_WGAN", "check", "sampler"]
