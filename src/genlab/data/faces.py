"""Faces vs non-faces: the LFW subset bundled with scikit-image (no download)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from genlab.data.base import Split, dataset
from genlab.errors import ArchitectureError, ConfigError, DataUnavailableError
from genlab.options import Options
from genlab.shapes import upsampling_plan

CLASSES = ["non-face", "face"]  # label 0, label 1
SOURCE_SIDE = 25  # lfw_subset images are 25 x 25


def dcgan_sides(up_to: int = 128) -> list[int]:
    """Image sides the dcgan arch can build (genlab.nets.base.upsampling_plan), up to `up_to`."""
    sides = []
    for side in range(2, up_to + 1):
        try:
            upsampling_plan("dcgan", side)
        except ArchitectureError:
            continue
        sides.append(side)
    return sides


def check_size(size: int) -> None:
    """Fail at prepare, not at train, when the dcgan arch cannot build `size` x `size` images."""
    try:
        upsampling_plan("dcgan", size)
    except ArchitectureError:
        raise ConfigError(
            f"data.faces.size = {size}: the image side must be s * 2**n with 4 <= s <= 7 and "
            f"n >= 1 so that the dcgan arch can build it; allowed: "
            f"{', '.join(map(str, dcgan_sides()))}, ..."
        ) from None


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of (N, C, H, W); antialiased when shrinking, where antialiasing applies."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    shrink = size < min(x.shape[-2:])
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                         antialias=shrink)  # fmt: skip


class FacesCfg(Options):
    test_fraction: float = Field(0.2, gt=0, lt=1)
    size: int = Field(32, ge=8)  # side the 25x25 images are resized to
    flip: bool = True  # add every training image mirrored left-right


@dataset("faces", options=FacesCfg, fields={"x": {"kind": "image"}, "y": {"kind": "class"}})
def faces(cfg: dict[str, Any], raw_dir: Path, seed: int) -> tuple[Split, Split, dict[str, Any]]:
    """skimage.data.lfw_subset: 100 LFW faces (label 1) and 100 non-faces (label 0), 25x25
    grayscale, stratified split, resized to `size` and scaled to [-1, 1]; with `flip` each
    training image is also added mirrored left-right (after the split: no test image leaks)."""
    size = cfg["size"]
    check_size(size)
    try:
        from skimage.data import lfw_subset  # imported here: scikit-image is slow to import
    except ImportError as err:
        raise DataUnavailableError(
            "dataset 'faces' needs scikit-image, which bundles the LFW subset "
            f"(`pip install 'scikit-image>=0.22'`); import failed: {err}"
        ) from err
    from sklearn.model_selection import train_test_split

    images = np.asarray(lfw_subset(), dtype=np.float32)  # (200, 25, 25) in [0, 1]
    if images.shape != (200, SOURCE_SIDE, SOURCE_SIDE):
        raise DataUnavailableError(
            f"skimage.data.lfw_subset() returned shape {images.shape}, expected (200, 25, 25)"
        )
    labels = np.repeat(np.array([1, 0], dtype=np.int64), 100)  # first 100 faces, then non-faces
    x_tr, x_te, y_tr, y_te = train_test_split(
        images, labels, test_size=cfg["test_fraction"], stratify=labels,
        random_state=seed,
    )  # fmt: skip

    def to_split(x: np.ndarray, y: np.ndarray) -> Split:
        t = torch.from_numpy(np.ascontiguousarray(x)).unsqueeze(1)
        t = resize(t, size).mul(2.0).sub(1.0).clamp(-1.0, 1.0)  # [0, 1] -> [-1, 1]
        return {"x": t.contiguous(), "y": torch.from_numpy(np.ascontiguousarray(y))}

    train, test = to_split(x_tr, y_tr), to_split(x_te, y_te)
    if cfg["flip"]:
        train = {
            "x": torch.cat([train["x"], train["x"].flip(-1)]),
            "y": torch.cat([train["y"], train["y"]]),
        }
    meta = {
        "name": "faces",
        "kind": "image",
        "shape": [1, size, size],
        "num_classes": len(CLASSES),
        "classes": CLASSES,
        "n_train": len(train["y"]),
        "n_test": len(test["y"]),
    }
    return train, test, meta
