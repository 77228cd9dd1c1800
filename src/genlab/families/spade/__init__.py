"""The SPADE family (Park et al. 2019): label map to image with spatially-adaptive
normalisation (``genlab.nets.spade``), hinge loss, feature matching and the two time-scale
learning rates (G 1e-4, D 4e-4, Adam betas (0, 0.999): ``optimizer`` and ``optimizer_d``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genlab.families.gan import GAN
from genlab.families.spade.trainer import SPADETrainer
from genlab.families.translation import (
    TranslationSampler,
    directions,
    register_translation,
    requires_task,
)
from genlab.nets.spade import SPADE_ARCHS
from genlab.options import Field, Option


def sampler(modules: dict[str, nn.Module], cfg, meta: dict) -> TranslationSampler:
    """G(z, map) on the test maps; z from the global RNG, which ``TranslationSampler`` seeds with
    the sample seed (in a forked RNG), so the same seed gives the same outputs."""
    G = modules["G"]

    def translate(labels: Tensor) -> Tensor:
        z = torch.randn(len(labels), G.latent_dim, device=labels.device)
        return G(z, labels)

    return TranslationSampler({directions(meta)[0]["name"]: translate}, meta)


SPADE = register_translation(
    name="spade",
    archs=SPADE_ARCHS,
    default_loss="hinge",
    trainer=SPADETrainer,
    sampler=sampler,
    sections={
        "Label map to image": "SPADE (Park et al. 2019): a noise vector is decoded to an "
        "image whose every normalisation is scaled and shifted per pixel by maps computed "
        "from the label map; hinge loss and feature matching against a spectrally normalised "
        "PatchGAN on (label map, image)."
    },
    captions={"translation": "test label maps, one per row: label map | G(z, map) | target"},
    options={
        "optimizer_d": GAN.options["optimizer_d"],  # D's (TTUR); None = ``optimizer``
        # lambda of pix2pixHD's feature-matching loss (10 in the paper; 0 = off)
        "spade_feature_matching": Option(float, Field(10.0, ge=0)),
    },
    check=requires_task("labelmap"),
)
