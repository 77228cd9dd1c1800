"""Paper reproductions on exact toy problems, registered by name in ``TOYS``."""

from pydantic import ValidationError

from genlab.config import format_errors
from genlab.errors import ConfigError
from genlab.toys import dirac, fgan_gaussian, modes2d, parallel_lines  # noqa: F401  (registers)
from genlab.toys.base import TOYS, Toy, ToyConfig

__all__ = ["TOYS", "Toy", "ToyConfig", "check_toys", "toy_cfg"]


def check_toys(params) -> None:
    """Every ``toys`` entry names a registered toy with valid settings (any command checks all,
    so a typo is caught before a long pipeline reaches the toy's stage)."""
    for name in params.toys:
        toy_cfg(params, name)


def toy_cfg(params, name: str) -> ToyConfig:
    """The validated settings of toy ``name`` (the paper's defaults where params are silent);
    ConfigError naming ``toys.<name>.<key>`` on a bad one."""
    if name not in TOYS:
        raise ConfigError(f"unknown toy {name!r} (toys.{name}); allowed: {', '.join(TOYS.names())}")
    try:
        return TOYS.get(name).config.model_validate(params.toys.get(name) or {})
    except ValidationError as e:
        raise ConfigError(
            format_errors(e, "params", model=TOYS.get(name).config, prefix=("toys", name))
        ) from None
