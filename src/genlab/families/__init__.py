"""Model families, one folder each (``genlab.families.base`` says what a family declares)."""

from genlab.families import (  # noqa: F401  (registers the families)
    cyclegan,
    gan,
    pix2pix,
    spade,
    srgan,
    vae,
    vqgan,
    vqvae,
)
from genlab.families.base import FAMILIES, Family, FigureContext, Sampler, Trainer, register

__all__ = ["FAMILIES", "Family", "FigureContext", "Sampler", "Trainer", "register"]
