"""Paper reproductions on exact toy problems, registered by name in ``TOYS``."""

from genlab.toys import dirac, fgan_gaussian, modes2d, parallel_lines  # noqa: F401  (registers)
from genlab.toys.base import TOYS, Toy, ToyConfig

__all__ = ["TOYS", "Toy", "ToyConfig"]
