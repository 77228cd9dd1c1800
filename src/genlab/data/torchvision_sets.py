"""MNIST-style IDX datasets read through torchvision (official 60k/10k train/test split)."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path
from typing import Any

import torch
from pydantic import Field

from genlab.data.base import Split, dataset
from genlab.errors import DataUnavailableError
from genlab.options import Options

IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _unpack_gz(folder: Path) -> None:
    """Decompress `<file>.gz` when only the archive is present (torchvision reads plain IDX)."""
    for fname in IDX_FILES:
        plain, packed = folder / fname, folder / f"{fname}.gz"
        if not plain.exists() and packed.exists():
            tmp = plain.with_name(plain.name + ".part")
            with gzip.open(packed, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
            tmp.replace(plain)


def _missing_message(name: str, folder: Path) -> str:
    """Explain where torchvision looks for the IDX files and how to download them."""
    return (
        f"dataset {name!r} is not available offline: torchvision expects the IDX files "
        f"{', '.join(IDX_FILES)} (or the same names with .gz) in {folder}/ ; "
        f"put them there, or set `data.{name}.download: true` in params.yaml to download them"
    )


def _load_idx(
    name: str, cls_name: str, cfg: dict[str, Any], raw_dir: Path
) -> tuple[Split, Split, dict[str, Any]]:
    """Read both official splits, scale uint8 pixels to [-1, 1] and apply the optional `limit`."""
    import torchvision.datasets  # imported here: it takes seconds, and params loading needs none

    cls = getattr(torchvision.datasets, cls_name)
    folder = Path(raw_dir) / cls.__name__ / "raw"  # torchvision's `raw_folder`
    download = bool(cfg["download"])
    _unpack_gz(folder)
    if not download and not all((folder / f).is_file() for f in IDX_FILES):
        raise DataUnavailableError(_missing_message(name, folder))
    try:
        sets = [cls(root=str(raw_dir), train=t, download=download) for t in (True, False)]
    except (RuntimeError, OSError) as err:  # torchvision reports failed downloads as these
        raise DataUnavailableError(f"{_missing_message(name, folder)} (error: {err})") from err

    limit = cfg.get("limit")
    splits = []
    for ds in sets:
        images, labels = ds.data[:limit], ds.targets[:limit]
        x = images.unsqueeze(1).to(torch.float32).div(127.5).sub(1.0)  # 0..255 -> [-1, 1]
        splits.append({"x": x, "y": labels.to(torch.int64).clone()})
    train, test = splits
    meta = {
        "name": name,
        "kind": "image",
        "shape": [1, 28, 28],
        "num_classes": 10,
        "n_train": len(train["y"]),
        "n_test": len(test["y"]),
    }
    return train, test, meta


class TorchvisionCfg(Options):
    download: bool = False
    limit: int | None = Field(None, ge=1)


IMAGES = {"x": {"kind": "image"}, "y": {"kind": "class"}}


@dataset("mnist", options=TorchvisionCfg, fields=IMAGES)
def mnist(cfg: dict[str, Any], raw_dir: Path, seed: int) -> tuple[Split, Split, dict[str, Any]]:
    """MNIST handwritten digits (LeCun et al. 1998) via torchvision.datasets.MNIST."""
    return _load_idx("mnist", "MNIST", cfg, raw_dir)


@dataset("fashion_mnist", options=TorchvisionCfg, fields=IMAGES)
def fashion_mnist(
    cfg: dict[str, Any], raw_dir: Path, seed: int
) -> tuple[Split, Split, dict[str, Any]]:
    """Fashion-MNIST (Xiao et al. 2017) via torchvision.datasets.FashionMNIST."""
    return _load_idx("fashion_mnist", "FashionMNIST", cfg, raw_dir)
