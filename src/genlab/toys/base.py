"""Paper reproductions on exact toy problems: ``genlab toy NAME`` -> reports/toys/<name>.csv, .png.

A toy is a pydantic config (defaults = the paper's settings; tests pass tiny ones) and a
``run(cfg, seed, out_dir) -> DataFrame`` that writes ``out_dir/<name>.csv`` and ``<name>.png``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from genlab.options import Options
from genlab.registry import Registry

ToyConfig = Options  # strict, frozen, finite numbers (genlab.options)


@dataclass(frozen=True)
class Toy:
    config: type[ToyConfig]
    run: Callable[[ToyConfig, int, Path], pd.DataFrame]


TOYS: Registry = Registry("toy")
