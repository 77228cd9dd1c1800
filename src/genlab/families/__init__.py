"""Model families, one folder each (``genlab.families.base`` says what a family declares)."""

from genlab.families import gan, vae, vqvae  # noqa: F401  (registers the families)
from genlab.families.base import FAMILIES, Family, FigureContext, Sampler, Trainer, register

__all__ = ["FAMILIES", "Family", "FigureContext", "Sampler", "Trainer", "register"]
