"""``moving_digits``: short clips of one or two handwritten digits moving with constant velocity
and bouncing off the borders, Moving MNIST (Srivastava et al. 2015, sec. 3) in miniature: the
data of the MoCoGAN family (Tulyakov et al. 2018).

The digits are scikit-learn's 8 x 8 glyphs upsampled bicubic to ``digit_size``
(``genlab.data.translation.upsampled_digits``); the glyph images are split (stratified by class)
before the clips are composed, so training and test clips are drawn from disjoint glyph images.
Each digit starts at a uniform position in the frame with a uniform direction and speed
``speed`` pixels per frame; at a border its velocity component flips (``bounce``); overlapping
digits combine by the maximum intensity. Clips are float32 in [-1, 1] (ink = 1), ``y`` is the
class of the first digit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field, model_validator

from genlab.data.base import Split, dataset
from genlab.options import Options


class MovingDigitsCfg(Options):
    n_train: int = Field(500, ge=8, le=100_000)  # training clips
    n_test: int = Field(250, ge=8, le=100_000)  # test clips
    frames: int = Field(16, ge=2, le=64)  # frames per clip
    size: int = Field(32, ge=8, le=128)  # frame side in pixels
    digit_size: int = Field(14, ge=4, le=127)  # side the 8 x 8 glyphs are upsampled to
    digits: int = Field(1, ge=1, le=2)  # digits per clip (y: the first one's class)
    speed: float = Field(2.0, gt=0, le=16)  # pixels per frame
    glyph_test_fraction: float = Field(0.2, gt=0, lt=1)  # glyph images kept for test clips

    @model_validator(mode="after")
    def _digit_fits(self) -> MovingDigitsCfg:
        if self.digit_size >= self.size:
            raise ValueError(
                f"digit_size = {self.digit_size} does not fit a frame of size = {self.size} with "
                f"room to move; allowed: digit_size < size"
            )
        return self


def bounce(start: torch.Tensor, velocity: torch.Tensor, steps: int, limit: float) -> torch.Tensor:
    """Positions (..., steps, 2) of points that start at ``start`` (..., 2), move by ``velocity``
    (..., 2) per step and are reflected at 0 and ``limit`` (each velocity component flips at a
    wall, Moving MNIST's bounce): the free path start + t v folded into [0, limit] with period
    2 limit, p = L - |((start + t v) mod 2L) - L|, exact for any speed."""
    t = torch.arange(steps, dtype=start.dtype).view(*([1] * (start.dim() - 1)), steps, 1)
    free = start.unsqueeze(-2) + t * velocity.unsqueeze(-2)
    return limit - (torch.remainder(free, 2 * limit) - limit).abs()


@dataclass(frozen=True)
class Clips:
    x: torch.Tensor  # (N, T, 1, size, size) float32 in [-1, 1]
    y: torch.Tensor  # (N,) int64: the first digit's class
    glyph: torch.Tensor  # (N, digits) int64: index of each digit's glyph in the pool
    positions: torch.Tensor  # (N, digits, T, 2) float64 (row, column) of each glyph's top left


def render(
    glyphs: torch.Tensor, glyph: torch.Tensor, positions: torch.Tensor, size: int
) -> torch.Tensor:
    """Clips (N, T, 1, size, size) in [-1, 1]: glyph ``glyph[n, d]`` of ``glyphs`` ((G, s, s)
    intensities in [0, 1]) pasted with its top left at the rounded ``positions[n, d, t]``, the
    maximum where digits overlap, on a background of intensity 0 (-1)."""
    n, digits, frames, _ = positions.shape
    s = glyphs.shape[-1]
    corner = positions.round().long().numpy()
    pool, which = glyphs.numpy(), glyph.numpy()
    canvas = np.zeros((n, frames, size, size), dtype=np.float32)
    for i in range(n):
        for d in range(digits):
            g = pool[which[i, d]]
            for t in range(frames):
                r, c = corner[i, d, t]
                window = canvas[i, t, r : r + s, c : c + s]
                np.maximum(window, g, out=window)
    return torch.from_numpy(canvas).mul_(2.0).sub_(1.0).unsqueeze(2)


def moving_clips(
    glyphs: torch.Tensor,  # (G, s, s) glyph intensities in [0, 1] of this split
    classes: torch.Tensor,  # (G,) their digits
    n: int,
    frames: int,
    size: int,
    digits: int,
    speed: float,
    gen: torch.Generator,
) -> Clips:
    """``n`` clips: each digit a uniformly chosen glyph of the pool, a start uniform in the
    frame, a direction uniform on the circle and ``speed`` pixels per frame (``bounce``)."""
    limit = float(size - glyphs.shape[-1])
    glyph = torch.randint(len(glyphs), (n, digits), generator=gen)
    start = torch.rand((n, digits, 2), generator=gen, dtype=torch.float64) * limit
    angle = torch.rand((n, digits), generator=gen, dtype=torch.float64) * (2 * math.pi)
    velocity = speed * torch.stack([torch.sin(angle), torch.cos(angle)], dim=-1)
    positions = bounce(start, velocity, frames, limit)
    x = render(glyphs, glyph, positions, size)
    return Clips(x, classes[glyph[:, 0]].clone(), glyph, positions)


def glyph_split(digit_size: int, test_fraction: float, seed: int):
    """sklearn's digits upsampled to ``digit_size`` as intensities (G, s, s) in [0, 1], their
    classes, and the train / test glyph indices (stratified by class)."""
    from genlab.data.translation import stratified_split, upsampled_digits

    images, classes = upsampled_digits(digit_size)
    glyphs = images[:, 0].add(1.0).div(2.0)
    train_ids, test_ids = stratified_split(classes, test_fraction, seed)
    return glyphs, classes, train_ids, test_ids


@dataset(
    "moving_digits",
    options=MovingDigitsCfg,
    fields={"x": {"kind": "video"}, "y": {"kind": "class"}},
)
def moving_digits(cfg: dict[str, Any], raw_dir: Path, seed: int) -> tuple[Split, Split, dict]:
    glyphs, classes, tr, te = glyph_split(cfg["digit_size"], cfg["glyph_test_fraction"], seed)
    gen = torch.Generator().manual_seed(seed)
    shape = (cfg["frames"], cfg["size"], cfg["digits"], cfg["speed"])
    train = moving_clips(glyphs[tr], classes[tr], cfg["n_train"], *shape, gen)
    test = moving_clips(glyphs[te], classes[te], cfg["n_test"], *shape, gen)
    frames, size = cfg["frames"], cfg["size"]
    meta = {
        "name": "moving_digits", "kind": "video", "shape": [frames, 1, size, size],
        "frames": frames, "num_classes": 10, "n_train": cfg["n_train"], "n_test": cfg["n_test"],
        "digits": cfg["digits"], "digit_size": cfg["digit_size"], "speed": cfg["speed"],
        "labels": "y: the class of the first digit of each clip",
        "glyphs": {"train": len(tr), "test": len(te), "source": "sklearn.datasets.load_digits"},
    }  # fmt: skip
    return {"x": train.x, "y": train.y}, {"x": test.x, "y": test.y}, meta


__all__ = ["Clips", "MovingDigitsCfg", "bounce", "glyph_split", "moving_clips", "moving_digits",
           "render"]  # fmt: skip
