"""``digit_strings``: handwritten numbers of 1 to ``max_length`` digits composed from real
scikit-learn digit glyphs (8 x 8 each, one glyph per character side by side on the fixed height
of 8 px), the data of the handwriting and text-to-image families (Alonso et al. 2019; Reed et al.
2016). The glyph images are split (stratified by class) before composing, so train and test words
are built from disjoint glyph images. Images are float32 in [-1, 1] (ink = 1), padded on the right
with background (-1) to the longest word; ``text`` holds the CTC tokens (digit d is token d + 1,
0 = blank / padding) and ``lengths`` the number of characters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field, model_validator

from genlab.data.base import Split, dataset
from genlab.data.vocab import Vocabulary
from genlab.options import Options

DIGITS = Vocabulary("0123456789", blank=True)
CHAR_WIDTH = 8  # pixels per character: one 8 x 8 glyph
HEIGHT = 8


class DigitStringsCfg(Options):
    n_train: int = Field(4000, ge=10, le=200_000)  # training words
    n_test: int = Field(1000, ge=10, le=200_000)  # test words
    min_length: int = Field(1, ge=1, le=16)  # characters per word, uniform in [min, max]
    max_length: int = Field(6, ge=1, le=16)
    glyph_test_fraction: float = Field(0.2, gt=0, lt=1)  # glyph images kept for test words

    @model_validator(mode="after")
    def _ordered(self) -> DigitStringsCfg:
        if self.min_length > self.max_length:
            raise ValueError(
                f"min_length = {self.min_length} exceeds max_length = {self.max_length}; "
                "allowed: min_length <= max_length"
            )
        return self


def _glyphs() -> tuple[torch.Tensor, torch.Tensor]:
    """sklearn's 1797 digits as (N, 8, 8) float32 in [-1, 1] and their int64 classes."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(bunch.data.astype(np.float32) / 16.0).reshape(-1, 8, 8)
    return x.mul(2.0).sub(1.0), torch.from_numpy(bunch.target.astype(np.int64))


def compose(
    glyphs: torch.Tensor,  # (G, 8, 8) glyph images of this split
    classes: torch.Tensor,  # (G,) their digits
    n: int,
    min_length: int,
    max_length: int,
    gen: torch.Generator,
) -> Split:
    """``n`` words: a length uniform in [min_length, max_length], digits uniform, each drawn as a
    uniformly chosen glyph image of its class, side by side."""
    by_class = [torch.nonzero(classes == c).flatten() for c in range(10)]
    lengths = torch.randint(min_length, max_length + 1, (n,), generator=gen)
    digits = torch.randint(0, 10, (n, max_length), generator=gen)
    pick = torch.rand((n, max_length), generator=gen)
    x = torch.full((n, 1, HEIGHT, CHAR_WIDTH * max_length), -1.0)
    text = torch.zeros((n, max_length), dtype=torch.int64)
    for i in range(n):
        for j in range(int(lengths[i])):
            d = int(digits[i, j])
            pool = by_class[d]
            glyph = pool[min(int(pick[i, j] * len(pool)), len(pool) - 1)]
            x[i, 0, :, j * CHAR_WIDTH : (j + 1) * CHAR_WIDTH] = glyphs[glyph]
            text[i, j] = d + 1
    return {"x": x, "text": text, "lengths": lengths.to(torch.int64)}


@dataset(
    "digit_strings",
    options=DigitStringsCfg,
    fields={"x": {"kind": "word"}, "text": {"kind": "tokens"}, "lengths": {"kind": "lengths"}},
)
def digit_strings(cfg: dict[str, Any], raw_dir: Path, seed: int) -> tuple[Split, Split, dict]:
    from genlab.data.translation import stratified_split

    glyphs, classes = _glyphs()
    tr, te = stratified_split(classes, cfg["glyph_test_fraction"], seed)
    gen = torch.Generator().manual_seed(seed)
    lo, hi = cfg["min_length"], cfg["max_length"]
    train = compose(glyphs[tr], classes[tr], cfg["n_train"], lo, hi, gen)
    test = compose(glyphs[te], classes[te], cfg["n_test"], lo, hi, gen)
    meta = {
        "name": "digit_strings", "kind": "word", "shape": [1, HEIGHT, CHAR_WIDTH * hi],
        "n_train": cfg["n_train"], "n_test": cfg["n_test"], "vocabulary": DIGITS.chars,
        "blank": 0, "min_length": lo, "max_length": hi, "char_width": CHAR_WIDTH,
        "glyphs": {"train": len(tr), "test": len(te), "source": "sklearn.datasets.load_digits"},
        # per-row fields a model is fed (the test split's, at sampling) and the metrics read
        "source_fields": ["text", "lengths"],
    }  # fmt: skip
    return train, test, meta


__all__ = ["CHAR_WIDTH", "DIGITS", "HEIGHT", "compose", "digit_strings"]
