"""Model families, one folder each (``genlab.families.base`` says what a family declares).
The import order is the order of the report's sections."""

from genlab.families import gan, vae, vqvae  # noqa: F401, I001  (registers the families)
from genlab.families import vqgan, pix2pix, cyclegan, srgan, spade  # noqa: F401, I001
from genlab.families import handwriting, text2image, text_wgan, gumbel_gan  # noqa: F401, I001
from genlab.families import trajectory_gan, video_gan  # noqa: F401, I001
from genlab.families.base import FAMILIES, Family, FigureContext, Sampler, Trainer, register

__all__ = ["FAMILIES", "Family", "FigureContext", "Sampler", "Trainer", "register"]
