"""The VQ-GAN family (Esser et al. 2021, "Taming Transformers for High-Resolution Image
Synthesis"): the VQ-VAE's discrete autoencoder trained with an L1 + perceptual reconstruction
loss and a PatchGAN discriminator whose term is weighted adaptively (eq. 7), then the VQ-VAE's
causal transformer prior over its codes; sampling draws codes from the prior, as the VQ-VAE."""

from __future__ import annotations

from genlab.families.base import Family, register
from genlab.families.gan import GAN
from genlab.families.latent import CLASSES, sampler_of
from genlab.families.translation import TRANSLATION_LOSSES
from genlab.families.vqgan.trainer import VQGANTrainer, disc_start_of
from genlab.families.vqvae import VQVAE
from genlab.families.vqvae.figures import CAPTIONS, vq_figures
from genlab.nets.vqvae import VQ_ARCHS
from genlab.options import Field, Option

SHARED = ("conditional", "codebook_size", "commitment", "restart_every", "prior_steps")


def _check(v) -> None:
    """The VQ-VAE's rule (prior_steps below steps), and D switching on within stage 1."""
    VQVAE.check(v)
    start, autoencoder = disc_start_of(v), v.steps - v.prior_steps
    if start >= autoencoder:
        raise ValueError(
            f"disc_start = {start} must be below steps - prior_steps = {autoencoder}: the "
            "discriminator switches on after disc_start of the autoencoder steps"
        )


VQGAN = register(
    Family(
        name="vqgan",
        archs=VQ_ARCHS,
        losses=TRANSLATION_LOSSES,  # means over D's outputs: they apply to a PatchGAN's map
        default_loss="hinge",  # the taming code's disc_loss
        trainer=VQGANTrainer,
        sampler=sampler_of("vae"),
        generator="vae",
        model_modules=("vae",),  # D and the feature net stay in state.pt
        figures=vq_figures,
        metrics=("vq",),
        captions={**CLASSES, **CAPTIONS},
        options={
            **{key: VQVAE.options[key] for key in SHARED},  # the VQ-VAE's, identical objects
            "optimizer_d": GAN.options["optimizer_d"],  # D's; None = ``optimizer``
            # autoencoder steps before D and the GAN term switch on; None = half of them
            "disc_start": Option(int | None, Field(None, ge=0)),
            "disc_weight": Option(float, Field(0.8, ge=0)),  # times lambda (taming configs)
            "perceptual_weight": Option(float, Field(1.0, ge=0)),  # of the feature loss in L_rec
            "perceptual_epochs": Option(  # epochs of the feature net's classifier
                int,
                Field(5, ge=1),
                when=lambda v: v.perceptual_weight > 0,
                when_doc="when perceptual_weight > 0",
            ),
            # PatchGAN stride-2 layers: patches of 9 * 2**n - 2 pixels (2 -> 34 x 34)
            "disc_layers": Option(int, Field(2, ge=1)),
            "disc_width": Option(int, Field(64, ge=1)),  # PatchGAN first-layer channels (ndf)
        },
        check=_check,
        sections={
            "VQ-GAN": "The VQ-VAE's codebook autoencoder trained as VQ-GAN (Esser et al. 2021): "
            "L1 + perceptual reconstruction loss (features of a small classifier fitted on the "
            "training split, in place of LPIPS), a PatchGAN discriminator with the hinge loss "
            "switched on after `disc_start` steps, its term weighted adaptively by the ratio of "
            "the reconstruction and GAN gradient norms at the decoder's last layer (eq. 7); then "
            "the same causal transformer prior over the codes. `test_recon_mse`: reconstruction "
            "error through the codebook on the test split."
        },
    )
)
