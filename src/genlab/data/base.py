"""Dataset registry, builder contract and atomic prepare/load of `data/prepared/<name>/`."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from genlab.registry import Registry

Split = dict[str, torch.Tensor]  # {"x": inputs, "y": int64 labels}
Builder = Callable[[dict[str, Any], Path, int], tuple[Split, Split, dict[str, Any]]]

DATASETS: Registry[Builder] = Registry("dataset")
FILES = ("train.pt", "test.pt", "meta.json")


class DataUnavailableError(RuntimeError):
    """Raw or prepared data is missing; the message says where it belongs and how to get it."""


def prepared_dir(root: Path, name: str) -> Path:
    """Folder holding the prepared dataset `name` under project `root`."""
    return Path(root) / "data" / "prepared" / name


def prepare_dataset(name: str, cfg: dict[str, Any], root: Path, seed: int) -> Path:
    """Build `name` and atomically write root/data/prepared/<name>/{train.pt,test.pt,meta.json}."""
    builder = DATASETS.get(name)
    root = Path(root)
    train, test, meta = builder(dict(cfg), root / "data" / "raw", seed)
    meta = {**meta, "seed": seed, "config": dict(cfg), "genlab_version": _version()}
    meta_text = json.dumps(meta, indent=2, sort_keys=True) + "\n"  # fail before touching disk

    target = prepared_dir(root, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=target.parent))
    try:
        torch.save(train, tmp / "train.pt")
        torch.save(test, tmp / "test.pt")
        (tmp / "meta.json").write_text(meta_text)
        _swap_into_place(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _swap_into_place(new: Path, target: Path) -> None:
    """Rename `new` to `target`; an existing `target` is moved aside and deleted only on success."""
    if not target.exists():
        os.replace(new, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
    os.replace(target, old / target.name)
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(old / target.name, target)
        shutil.rmtree(old, ignore_errors=True)
        raise
    shutil.rmtree(old, ignore_errors=True)


def load_prepared(root: Path, name: str) -> tuple[Split, Split, dict[str, Any]]:
    """Load (train, test, meta) written by `prepare_dataset` (tensors only: weights_only=True)."""
    folder = prepared_dir(root, name)
    missing = [f for f in FILES if not (folder / f).is_file()]
    if missing:
        raise DataUnavailableError(
            f"prepared dataset {name!r} not found at {folder} (missing {', '.join(missing)}); "
            f"run `genlab prepare {name}` first"
        )
    train = torch.load(folder / "train.pt", weights_only=True)
    test = torch.load(folder / "test.pt", weights_only=True)
    meta = json.loads((folder / "meta.json").read_text())
    return train, test, meta


def _version() -> str:
    """genlab.__version__, imported lazily to keep this module import-cycle free."""
    import genlab

    return genlab.__version__
