"""The VQ-VAE family: a discrete autoencoder and a causal transformer prior over its codes,
trained in two stages of one run; sampling draws codes from the prior (one Gaussian entry per
code position, through the prior's inverse CDF)."""

from __future__ import annotations

from genlab.families.base import CONDITIONAL, Family, register
from genlab.families.latent import CLASSES, sampler_of
from genlab.families.vqvae import metrics  # noqa: F401  (registers the VQ-VAE metrics)
from genlab.families.vqvae.figures import CAPTIONS, vq_figures
from genlab.families.vqvae.trainer import VQVAETrainer
from genlab.nets.vqvae import VQ_ARCHS, VQ_LOSSES
from genlab.options import Field, Option


def _prior_after_autoencoder(v) -> None:
    if v.prior_steps >= v.steps:
        raise ValueError(
            f"prior_steps = {v.prior_steps} must be below steps = {v.steps}: the first "
            "steps - prior_steps steps train the VQ-VAE, the rest its prior"
        )


VQVAE = register(
    Family(
        name="vqvae",
        archs=VQ_ARCHS,
        losses=VQ_LOSSES,
        default_loss="vq",
        trainer=VQVAETrainer,
        sampler=sampler_of("vae"),
        generator="vae",
        figures=vq_figures,
        metrics=("vq",),
        captions={**CLASSES, **CAPTIONS},
        options={
            "conditional": CONDITIONAL,  # the prior is conditioned on the label
            "codebook_size": Option(int, Field(64, ge=2)),  # codes K
            "commitment": Option(float, Field(0.25, ge=0)),  # beta of the commitment loss
            "restart_every": Option(int, Field(100, ge=0)),  # restart dead codes (0 = off)
            "prior_steps": Option(int, Field(1000, ge=1)),  # the last prior_steps train the prior
        },
        check=_prior_after_autoencoder,
        sections={
            "VQ-VAE with an autoregressive prior": "Discrete codes (codebook, commitment, "
            "straight-through gradient, dead-code restart) and a small causal transformer prior "
            "over the code grid, conditioned on the class as DALL-E conditions on text; samples "
            "are drawn from the prior."
        },
    )
)
