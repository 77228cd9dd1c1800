"""The VAE family: VAE, beta-VAE and conditional VAE (one gradient step on the negative ELBO)."""

from __future__ import annotations

from typing import Literal

from genlab.families.base import CONDITIONAL, Family, register
from genlab.families.latent import ARITHMETIC, CLASSES, sampler_of
from genlab.families.vae import metrics  # noqa: F401  (registers the VAE-only metrics)
from genlab.families.vae.figures import vae_figures
from genlab.families.vae.trainer import VAETrainer
from genlab.nets import VAE_ARCHS
from genlab.objectives import VAE_LOSSES
from genlab.options import Field, Option

VAE = register(
    Family(
        name="vae",
        archs=VAE_ARCHS,
        losses=VAE_LOSSES,
        default_loss="elbo",
        trainer=VAETrainer,
        sampler=sampler_of("vae"),
        generator="vae",
        figures=vae_figures,
        metrics=("elbo", "iwae"),
        captions={
            **CLASSES,
            "traversal": "latent traversals: one dimension per row (largest KL first), -3 to 3",
            "editing": "editing: test image, reconstruction, then the top latent dimension set "
            "to -3 .. 3",
            **ARITHMETIC,
        },
        options={
            "beta": Option(float, Field(1.0, ge=0)),  # weight of the KL term (beta-VAE)
            "likelihood": Option(Literal["bernoulli", "gaussian"], "bernoulli"),
            "conditional": CONDITIONAL,  # conditional VAE: the label enters encoder and decoder
        },
        sections={
            "VAE family": "VAE, beta-VAE and conditional VAE: ELBO and importance-sampled test "
            "NLL, latent traversals and image editing."
        },
    )
)
