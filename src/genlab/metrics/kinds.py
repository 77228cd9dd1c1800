"""How each kind of data is judged (DESIGN rule 3): the evaluator ``fit-evaluator`` trains for a
dataset, chosen by the field kind of its ``x`` (``genlab.data.base.FIELD_KINDS``), whether the
real-vs-real floor applies, and an optional baseline scored exactly like a model.

- ``image``: the classifier CNN of ``genlab.metrics.evaluator`` (features for Frechet/KID/PRDC);
- ``points``: no network, the mixture's modes (``genlab.metrics.toy``);
- a kind a later module registers (word images: a CTC recogniser; clips: a frame classifier;
  token rows and trajectories: no network, with a baseline model) through ``evaluator_kind``.

The checkpoint ``models/evaluator/<dataset>.pt`` names its kind (``"kind"``); one without it
holds an image evaluator (written before kinds existed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from genlab.io import torch_load, torch_save
from genlab.metrics.evaluator import fit_evaluator, load_evaluator, save_evaluator
from genlab.registry import Registry

# (train split, test split, meta, settings) -> (evaluator or None, stats for the evaluator's
# metrics JSON); settings: seed, device and the dataset's evaluator.fit(...) (epochs,
# batch_size, lr, downsample)
Fit = Callable[[dict, dict, dict, dict], tuple[Any, dict[str, Any]]]
# (train split, test split, meta, sample.n, seed) -> (its name, a samples.pt-like dict: "x" and
# the per-row "source" fields; a baseline fed test rows answers the first min(sample.n, n_test))
Baseline = Callable[[dict, dict, dict, int, int], tuple[str, dict[str, Any]]]


@dataclass(frozen=True)
class EvaluatorKind:
    fit: Fit | None = None  # None: no network (the metrics need none)
    # (net or None, path, what the evaluator's file records, the dataset's meta) -> None;
    # None: a marker naming the kind
    save: Callable[[Any, Path, dict, dict], None] | None = None
    load: Callable[[dict], Any] | None = None  # (the checkpoint's dict) -> net
    floor: bool = True  # score training rows as if they were samples (the real-vs-real floor)
    # fit the evaluator without the floor's rows: an evaluator that scores rows by reading them
    # (a recogniser's error rates) would otherwise read the very words it learned, and the floor
    # would be its training error, not the error on real words it has not seen
    holdout_floor: bool = False
    baseline: Baseline | None = None  # a reference model scored like a variant


EVALUATOR_KINDS: Registry[EvaluatorKind] = Registry("evaluator kind")


def evaluator_kind(name: str, kind: EvaluatorKind) -> EvaluatorKind:
    """Register how datasets whose ``x`` has field kind ``name`` are judged."""
    EVALUATOR_KINDS.register(name)(kind)
    return kind


def save_any(kind: str, net: Any, path: Path, info: dict, meta: dict) -> None:
    """Write ``path`` for an evaluator of ``kind``: its own ``save``, or a marker naming the
    kind (``info``: what the file records, e.g. the test accuracy; ``meta``: the dataset's)."""
    entry = EVALUATOR_KINDS.get(kind)
    if entry.save is None:
        torch_save({"kind": kind, "meta": info}, path)
    else:
        entry.save(net, path, info, meta)


def load_any(path: Path) -> Any:
    """The evaluator at ``path`` (None for a kind without a network)."""
    ckpt = torch_load(path, "evaluator")
    kind = ckpt.get("kind", "image")
    if kind == "image":
        return load_evaluator(path)[0]
    entry = EVALUATOR_KINDS.get(kind)
    return None if entry.load is None or "state_dict" not in ckpt else entry.load(ckpt)


def evaluator_split(split: dict[str, Tensor], meta: dict) -> dict[str, Tensor]:
    """The images and classes the image evaluator learns from: ``x`` and ``y``, or for an
    unpaired set every domain's (meta ``evaluator_fields``), so that one feature space scores
    both."""
    fields = meta.get("evaluator_fields", [["x", "y"]])
    return {"x": torch.cat([split[x] for x, _ in fields]),
            "y": torch.cat([split[y] for _, y in fields])}  # fmt: skip


def _fit_image(train: dict, test: dict, meta: dict, settings: dict) -> tuple[Any, dict]:
    net, stats = fit_evaluator(
        evaluator_split(train, meta), evaluator_split(test, meta), num_classes=meta["num_classes"],
        **settings,
    )  # fmt: skip
    return net.cpu(), stats


def _save_image(net: Any, path: Path, info: dict, meta: dict) -> None:
    save_evaluator(net, path, info)


def _save_points(net: Any, path: Path, info: dict, meta: dict) -> None:
    torch_save({"kind": "points", "modes": meta["modes"], "std": meta["mode_std"]}, path)


evaluator_kind("image", EvaluatorKind(fit=_fit_image, save=_save_image))
evaluator_kind("points", EvaluatorKind(save=_save_points))

__all__ = [
    "EVALUATOR_KINDS",
    "Baseline",
    "EvaluatorKind",
    "Fit",
    "evaluator_kind",
    "evaluator_split",
    "load_any",
    "save_any",
]
