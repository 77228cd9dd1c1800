"""2-D Gaussian-mixture benchmarks for mode collapse (VEEGAN ring, PacGAN grid)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from pydantic import Field

from genlab.data.base import Split, dataset
from genlab.options import Options


def ring_modes(k: int = 8, radius: float = 2.0) -> list[list[float]]:
    """`k` centres equally spaced on a circle (VEEGAN, Srivastava et al. 2017)."""
    angles = [2 * math.pi * i / k for i in range(k)]
    return [[radius * math.cos(a), radius * math.sin(a)] for a in angles]


def grid_modes(values: tuple[float, ...] = (-4.0, -2.0, 0.0, 2.0, 4.0)) -> list[list[float]]:
    """Centres on the grid values^2 (PacGAN, Lin et al. 2018)."""
    return [[a, b] for a in values for b in values]


def sample_mixture(modes: list[list[float]], std: float, n: int, gen: torch.Generator) -> Split:
    """Draw `n` points: mode index uniform, then isotropic Gaussian noise around its centre."""
    centres = torch.tensor(modes, dtype=torch.float32)
    y = torch.randint(len(modes), (n,), generator=gen, dtype=torch.int64)
    x = centres[y] + std * torch.randn(n, 2, generator=gen, dtype=torch.float32)
    return {"x": x, "y": y}


def _build(
    name: str, modes: list[list[float]], std: float, cfg: dict[str, Any], seed: int
) -> tuple[Split, Split, dict[str, Any]]:
    """Train then test from one generator seeded with `seed`; meta records modes and std."""
    gen = torch.Generator().manual_seed(seed)
    n, n_test = cfg["n"], cfg["n_test"]
    train = sample_mixture(modes, std, n, gen)
    test = sample_mixture(modes, std, n_test, gen)
    meta = {
        "name": name,
        "kind": "points",
        "shape": [2],
        "num_classes": len(modes),
        "n_train": n,
        "n_test": n_test,
        "modes": modes,
        "mode_std": std,
    }
    return train, test, meta


class Ring8Cfg(Options):
    n: int = Field(20000, ge=16)
    n_test: int = Field(5000, ge=16)
    std: float = Field(0.02, gt=0)
    radius: float = Field(2.0, gt=0)


class Grid25Cfg(Options):
    n: int = Field(20000, ge=25)
    n_test: int = Field(5000, ge=25)
    std: float = Field(0.05, gt=0)


POINTS = {"x": {"kind": "points"}, "y": {"kind": "class"}}


@dataset("ring8", options=Ring8Cfg, fields=POINTS)
def ring8(cfg: dict[str, Any], raw_dir: Path, seed: int) -> tuple[Split, Split, dict[str, Any]]:
    """8 Gaussians on a circle of radius 2, std 0.02 (VEEGAN, Srivastava et al. 2017)."""
    modes = ring_modes(8, cfg["radius"])
    return _build("ring8", modes, cfg["std"], cfg, seed)


@dataset("grid25", options=Grid25Cfg, fields=POINTS)
def grid25(cfg: dict[str, Any], raw_dir: Path, seed: int) -> tuple[Split, Split, dict[str, Any]]:
    """25 Gaussians on {-4,-2,0,2,4}^2, std 0.05 (PacGAN, Lin et al. 2018)."""
    return _build("grid25", grid_modes(), cfg["std"], cfg, seed)
