"""Datasets shipped inside installed packages (no download needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from pydantic import Field

from genlab.data.base import Split, dataset
from genlab.options import Options


class DigitsCfg(Options):
    test_fraction: float = Field(0.2, gt=0, lt=1)


@dataset("digits", options=DigitsCfg, fields={"x": {"kind": "image"}, "y": {"kind": "class"}})
def digits(cfg: dict[str, Any], raw_dir: Path, seed: int) -> tuple[Split, Split, dict[str, Any]]:
    """UCI optical digits via sklearn.datasets.load_digits: 1797 8x8 images, 10 classes."""
    from sklearn.datasets import load_digits  # imported here: sklearn takes seconds to import
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.data.astype(np.float32) / 8.0 - 1.0).reshape(-1, 1, 8, 8)  # 0..16 -> [-1, 1]
    y = bunch.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=cfg["test_fraction"], stratify=y, random_state=seed
    )
    train = {"x": torch.from_numpy(np.ascontiguousarray(x_tr)), "y": torch.from_numpy(y_tr)}
    test = {"x": torch.from_numpy(np.ascontiguousarray(x_te)), "y": torch.from_numpy(y_te)}
    meta = {
        "name": "digits",
        "kind": "image",
        "shape": [1, 8, 8],
        "num_classes": 10,
        "n_train": len(y_tr),
        "n_test": len(y_te),
    }
    return train, test, meta
