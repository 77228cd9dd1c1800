"""The VQ-VAE family: a discrete autoencoder and a causal transformer prior over its codes,
trained in two stages of one run; sampling draws codes from the prior (one Gaussian entry per
code position, through the prior's inverse CDF)."""

from __future__ import annotations

from genlab.families.base import Family, register
from genlab.families.latent import latent_figures, sampler_of
from genlab.families.vqvae import metrics  # noqa: F401  (registers the VQ-VAE metrics)
from genlab.families.vqvae.trainer import VQVAETrainer
from genlab.nets.vqvae import VQ_ARCHS, VQ_LOSSES

VQVAE = register(
    Family(
        name="vqvae",
        archs=VQ_ARCHS,
        losses=VQ_LOSSES,
        default_loss="vq",
        trainer=VQVAETrainer,
        sampler=sampler_of("vae"),
        generator="vae",
        figures=latent_figures,
        metrics=("vq",),
        sections={
            "VQ-VAE with an autoregressive prior": "Discrete codes (codebook, commitment, "
            "straight-through gradient, dead-code restart) and a small causal transformer prior "
            "over the code grid, conditioned on the class as DALL-E conditions on text; samples "
            "are drawn from the prior."
        },
    )
)
