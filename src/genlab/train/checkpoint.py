"""The two artifacts of a trained variant (DESIGN rule 4).

``model.pt``: the modules the family samples with (its ``saved_modules``; the EMA weights of its
generator when EMA is on), the variant config, the dataset meta and the genlab version: enough to
sample. ``state.pt``: every network, optimizer, EMA, the step, the trainer's and the global RNG
states: enough to resume bit-exactly (written by ``genlab.train.loop``).
Both are sealed with a checksum and loaded with ``genlab.io.torch_load`` (``weights_only``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

import genlab
from genlab.config import VariantCfg
from genlab.errors import CheckpointError
from genlab.families import FAMILIES
from genlab.io import torch_load, torch_save

MODEL_FORMAT = "genlab.model/3"  # 3: sealed with a checksum

__all__ = ["MODEL_FORMAT", "CheckpointError", "load_checkpoint", "load_model", "load_modules",
           "save_model"]  # fmt: skip


def save_model(
    path: Path, *, family: str, modules: dict[str, nn.Module], cfg: dict, meta: dict
) -> None:
    torch_save(
        {
            "format": MODEL_FORMAT,
            "genlab_version": genlab.__version__,
            "family": family,
            "config": cfg,
            "meta": meta,
            "modules": {key: m.state_dict() for key, m in modules.items()},
        },
        path,
    )


def load_checkpoint(path: Path, what: str) -> dict[str, Any]:
    """A checkpoint's dict, its checksum verified (``genlab.io.torch_load``)."""
    if not path.exists():
        raise CheckpointError(f"{what} {path} does not exist; run `genlab train` first")
    return torch_load(path, what)


def load_modules(
    path: Path, device: torch.device | str = "cpu"
) -> tuple[dict[str, nn.Module], VariantCfg, dict]:
    """Rebuild the modules of ``model.pt`` through its family: (modules in eval mode, config,
    checkpoint)."""
    ckpt = load_checkpoint(path, "model")
    if ckpt.get("format") != MODEL_FORMAT:
        raise CheckpointError(
            f"{path} is not a genlab model of format {MODEL_FORMAT!r} (found "
            f"{ckpt.get('format')!r}); retrain it with this genlab: genlab train <variant>"
        )
    cfg = VariantCfg.model_validate(ckpt["config"])
    family = FAMILIES.get(ckpt["family"])
    built = family.build(ckpt["meta"], cfg)
    modules = {}
    for key, state in ckpt["modules"].items():
        built[key].load_state_dict(state)
        modules[key] = built[key].to(device).eval()
    return modules, cfg, ckpt


def load_model(path: Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """The generating module of ``model.pt`` (the family's ``generator``), in eval mode, and the
    checkpoint."""
    modules, _, ckpt = load_modules(path, device)
    return modules[FAMILIES.get(ckpt["family"]).generator], ckpt
