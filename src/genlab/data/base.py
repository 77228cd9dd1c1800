"""Dataset registry, builder contract and atomic prepare/load of `data/prepared/<name>/`."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from genlab.errors import DataUnavailableError
from genlab.io import replace_dir, torch_load, torch_save
from genlab.options import Options
from genlab.paths import Paths
from genlab.registry import Registry

Split = dict[str, torch.Tensor]  # field -> tensor, e.g. {"x": inputs, "y": int64 labels}
Builder = Callable[[dict[str, Any], Path, int], tuple[Split, Split, dict[str, Any]]]

# The kinds a field may declare in meta["fields"]; metrics, figures and samplers choose by them.
# "labelmap": an int64 (N, H, W) per-pixel class map (0 = background), the source of label map to
# image translation; "word": a word image (N, C, H, W) padded on the right to the longest word
# (its text and length are "tokens" / "lengths" fields); "trajectory": float (N, agents, steps, 2)
# positions; "video": float (N, frames, C, H, W) clips in [-1, 1]
FIELD_KINDS = (
    "image", "points", "class", "tokens", "lengths", "labelmap", "word", "trajectory", "video",
)  # fmt: skip
# What a translation dataset pairs (meta["translation"]["task"]); None: a generative dataset
TASKS = ("paired", "unpaired", "super_resolution", "labelmap")


@dataclass(frozen=True)
class Dataset:
    """A registered dataset: its builder ``(options as dict, raw_dir, seed) -> (train, test,
    meta)``, its options (defaults in one place), its batch schema: field -> {"kind": one of
    FIELD_KINDS, optionally "domain": the fields drawn together (unpaired data)}, and ``task``:
    for a translation dataset what it pairs (one of TASKS), known at params load."""

    build: Builder
    options: type[Options]
    fields: dict[str, dict[str, Any]]
    task: str | None = None


DATASETS: Registry[Dataset] = Registry("dataset")


def dataset(
    name: str,
    *,
    options: type[Options],
    fields: dict[str, dict[str, Any]],
    task: str | None = None,  # translation datasets: one of TASKS
):
    """Register the decorated builder as dataset ``name``."""
    if task is not None and task not in TASKS:
        raise ValueError(f"dataset {name!r}: task {task!r}; allowed: {', '.join(TASKS)}")
    for field, spec in fields.items():
        if spec.get("kind") not in FIELD_KINDS:
            raise ValueError(f"dataset {name!r}: field {field!r} has kind {spec.get('kind')!r}; "
                             f"allowed: {', '.join(FIELD_KINDS)}")  # fmt: skip

    def decorator(fn: Builder) -> Builder:
        DATASETS.register(name)(Dataset(fn, options, fields, task))
        return fn

    return decorator


FILES = ("train.pt", "test.pt", "meta.json")


def prepared_dir(root: Path, name: str) -> Path:
    """Folder holding the prepared dataset `name` under project `root`."""
    return Paths(root).prepared(name)


def prepare_dataset(name: str, cfg: dict[str, Any], root: Path, seed: int) -> Path:
    """Build `name` and atomically write root/data/prepared/<name>/{train.pt,test.pt,meta.json}."""
    entry = DATASETS.get(name)
    cfg = {**entry.options().model_dump(), **cfg}  # defaults filled in (validated at params load)
    root = Path(root)
    train, test, meta = entry.build(cfg, Paths(root).raw, seed)
    meta = {**meta, "fields": entry.fields, "seed": seed, "config": cfg,
            "genlab_version": _version()}  # fmt: skip
    meta_text = json.dumps(meta, indent=2, sort_keys=True) + "\n"  # fail before touching disk

    target = prepared_dir(root, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=target.parent))
    try:
        torch_save(train, tmp / "train.pt")
        torch_save(test, tmp / "test.pt")
        (tmp / "meta.json").write_text(meta_text)
        replace_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def load_prepared(root: Path, name: str) -> tuple[Split, Split, dict[str, Any]]:
    """Load (train, test, meta) written by `prepare_dataset` (tensors only: weights_only=True)."""
    folder = prepared_dir(root, name)
    missing = [f for f in FILES if not (folder / f).is_file()]
    if missing:
        raise DataUnavailableError(
            f"prepared dataset {name!r} not found at {folder} (missing {', '.join(missing)}); "
            f"run `genlab prepare {name}` first"
        )
    train = torch_load(folder / "train.pt", f"prepared dataset {name!r}")
    test = torch_load(folder / "test.pt", f"prepared dataset {name!r}")
    meta = json.loads((folder / "meta.json").read_text())
    return train, test, meta


def field_kind(meta: dict, name: str = "x") -> str:
    """The kind of field ``name`` in a prepared dataset's batch schema (meta.json ``fields``;
    metas written before the schema: their ``kind``, which describes x)."""
    fields = meta.get("fields")
    if fields is None:
        return meta["kind"] if name == "x" else "class"
    return fields[name]["kind"]


def _version() -> str:
    """genlab.__version__, imported lazily to keep this module import-cycle free."""
    import genlab

    return genlab.__version__
