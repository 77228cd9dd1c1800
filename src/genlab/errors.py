"""Every error genlab raises on purpose: a leaf module that every layer may import.

Bad input (exit code 2 at the command line): ``ConfigError`` and its kin below, each with a
message naming the params key, the value and what is allowed. A run that failed (exit code 1):
``TrainingDiverged``, ``SweepFailed``.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """Bad params: the message names the key, the value and what is allowed."""


class UnknownNameError(ValueError):
    """A params name that no registry knows; the message lists the valid names."""


class DataUnavailableError(RuntimeError):
    """Raw or prepared data is missing; the message says where it belongs and how to get it."""


class ArchitectureError(ValueError):
    """An architecture that cannot be built for the dataset (shape, classes, kind)."""


class CheckpointError(RuntimeError):
    """A missing, foreign or mismatched checkpoint."""


class TrainingDiverged(RuntimeError):
    """A loss became NaN or Inf."""


class SweepFailed(RuntimeError):
    """A study could not finish (every trial failed, a worker crashed)."""


# exceptions that mean bad input (exit code 2), not a failed computation
USAGE_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError,
    UnknownNameError,
    DataUnavailableError,
    ArchitectureError,
    CheckpointError,
    FileNotFoundError,
)
