"""The two artifacts of a trained variant (DESIGN rule 3).

``model.pt``: the generating network's weights (EMA when enabled), the variant config, the dataset
meta and the genlab version: enough to sample. ``state.pt``: every network, optimizer, EMA, the
step, the trainer's and the global RNG states: enough to resume bit-exactly.
Both are loaded with ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

import genlab
from genlab.io import torch_save

MODEL_FORMAT = "genlab.model/1"


class CheckpointError(RuntimeError):
    """A missing, foreign or mismatched checkpoint."""


def save_model(path: Path, *, family: str, net: nn.Module, cfg: dict, meta: dict) -> None:
    torch_save(
        {
            "format": MODEL_FORMAT,
            "genlab_version": genlab.__version__,
            "family": family,
            "config": cfg,
            "meta": meta,
            "state_dict": net.state_dict(),
        },
        path,
    )


def load_checkpoint(path: Path, what: str) -> dict[str, Any]:
    if not path.exists():
        raise CheckpointError(f"{what} {path} does not exist; run `genlab train` first")
    return torch.load(path, map_location="cpu", weights_only=True)


def load_model(path: Path, device: torch.device | str = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the generating network of ``model.pt``; returns (net in eval mode, checkpoint)."""
    from genlab.config import VariantCfg
    from genlab.nets import build_gan
    from genlab.train import FAMILIES

    ckpt = load_checkpoint(path, "model")
    if ckpt.get("format") != MODEL_FORMAT:
        raise CheckpointError(f"{path} is not a genlab model (format {ckpt.get('format')!r})")
    cfg = VariantCfg.model_validate(ckpt["config"])
    if ckpt["family"] == "gan":
        net = build_gan(ckpt["meta"], cfg)["G"]
    else:
        net = FAMILIES.get(ckpt["family"]).archs.build(cfg.arch, ckpt["meta"], cfg)["vae"]
    net.load_state_dict(ckpt["state_dict"])
    return net.to(device).eval(), ckpt
