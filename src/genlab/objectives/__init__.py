"""Training objectives: GAN losses and VAE bounds, each a registered callable object."""

from genlab.objectives.fgan import DIVERGENCES
from genlab.objectives.gan import GAN_LOSSES, GANLoss
from genlab.objectives.vae import ELBO, VAE_LOSSES, gaussian_kl

__all__ = ["DIVERGENCES", "GAN_LOSSES", "GANLoss", "VAE_LOSSES", "ELBO", "gaussian_kl"]
