"""What every training step needs: the device, determinism and RNG state, optimizers by name,
mixed precision and gradient norms. Families' trainers, the driver and the stages use it."""

from __future__ import annotations

import contextlib
import os
import random
from typing import Any, Literal

import numpy as np
import torch
from pydantic import field_validator
from torch import nn

from genlab.errors import ConfigError, TrainingDiverged
from genlab.options import Field, Options


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device = 'cuda' but no CUDA device is available; allowed: auto, cpu")
    return torch.device(name)


# "auto" gives models below this many parameters one intra-op thread (every lecture model)
SMALL_MODEL_PARAMETERS = 20_000_000


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. under ``taskset`` or a container)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


_SHARE = {"processes": 1}  # processes splitting this machine's cores (set by sweep workers)


def share_cores(processes: int) -> None:
    """Declare that ``processes`` workers split the cores (``auto`` divides them)."""
    _SHARE["processes"] = max(1, processes)


def resolve_threads(setting: int | str, parameters: int) -> int:
    """Torch intra-op threads for a model of ``parameters`` parameters.

    ``auto``: one thread below ``SMALL_MODEL_PARAMETERS``, else the available cores divided
    among the processes sharing them (``share_cores``).
    The count depends on the model and the machine, never on its momentary load, because the
    bits of a run depend on the thread count (reductions split differently): a load-dependent
    choice would make the same params give different results. One thread costs a small model
    about 1.3-1.4x on an idle machine and saves about 3x beside one busy process, where
    spinning threads stall (benchmarks/threads.py)."""
    if setting != "auto":
        return int(setting)
    if parameters < SMALL_MODEL_PARAMETERS:
        return 1
    return max(1, available_cores() // _SHARE["processes"])


def use_threads(setting: int | str, modules: Any = ()) -> int:
    """Set torch's intra-op threads for ``modules`` (an iterable of nn.Module); returns it."""
    parameters = sum(p.numel() for m in modules for p in m.parameters())
    threads = resolve_threads(setting, parameters)
    torch.set_num_threads(threads)
    return threads


def configure_determinism(seed: int) -> None:
    """Seed every global RNG and make torch pick deterministic kernels."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast mixed precision (CPU too) or a no-op for fp32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


class OptimizerCfg(Options):
    name: Literal["adam", "rmsprop", "sgd"] = "adam"
    lr: float = Field(2e-4, gt=0)
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = Field(0.0, ge=0)

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= b < 1 for b in v):
            raise ValueError("each beta must lie in [0, 1)")
        return v


def make_optimizer(params, cfg: OptimizerCfg) -> torch.optim.Optimizer:
    """Optimizer by name from an ``OptimizerCfg``."""
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
    if cfg.name == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


def grad_norm(module: nn.Module) -> float:
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    return torch.nn.utils.get_total_norm(grads).item() if grads else 0.0


def global_rng_state() -> dict[str, Any]:
    """torch, CUDA, numpy and python RNG states, in a form ``weights_only`` loading accepts."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": random.getstate(),
    }


def set_global_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))


__all__ = [
    "OptimizerCfg",
    "TrainingDiverged",
    "autocast",
    "configure_determinism",
    "global_rng_state",
    "grad_norm",
    "make_optimizer",
    "resolve_device",
    "set_global_rng_state",
]
