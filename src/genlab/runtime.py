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


_CUDA_PATHS = {"emulated": False}


def cuda_path(x: torch.Tensor) -> bool:
    """Whether ``x`` takes genlab's CUDA-only code paths: the replacements for the CUDA kernels
    that have no deterministic form (``code_cross_entropy``, ``ReflectionPad``, ``ctc_loss``).
    ``emulate_cuda_paths`` makes CPU tensors take them too, so that CPU tests can check which
    kernels a CUDA run would call (tests/test_cuda_safety.py)."""
    return x.is_cuda or _CUDA_PATHS["emulated"]


@contextlib.contextmanager
def emulate_cuda_paths():
    """Within: ``cuda_path`` is true for CPU tensors too (tests only: results differ in the
    last bits from the CPU paths)."""
    before, _CUDA_PATHS["emulated"] = _CUDA_PATHS["emulated"], True
    try:
        yield
    finally:
        _CUDA_PATHS["emulated"] = before


def deterministic_kernels() -> None:
    """Make torch pick deterministic kernels, and refuse (RuntimeError) an op that has none on
    this device. cuBLAS needs a fixed workspace for deterministic matrix products on CUDA; cuDNN
    must not benchmark algorithms (its pick would vary from run to run)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False


def configure_determinism(seed: int) -> None:
    """Seed every global RNG and make torch pick deterministic kernels."""
    deterministic_kernels()
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")


def compile_modules(modules: Any, mode: str) -> None:
    """``torch.compile`` each module in place (``nn.Module.compile``: its state_dict keys stay
    the same, so checkpoints and ``model.pt`` are unaffected) with ``mode``; ``none`` leaves
    them eager. ``reduce-overhead`` records CUDA graphs, replayed while the shapes stay the
    same (genlab's batches have a fixed size); the caller marks each step's start with
    ``torch.compiler.cudagraph_mark_step_begin`` (``genlab.train.loop.training_steps``).
    Under ``torch.use_deterministic_algorithms`` inductor picks its kernels without timing
    them, so a compiled run is deterministic too."""
    if mode not in COMPILE_MODES:
        raise ConfigError(f"compile = {mode!r}; allowed: {', '.join(COMPILE_MODES)}")
    if mode == "none":
        return
    for module in modules:
        module.compile(mode=None if mode == "default" else mode, dynamic=False)


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
    """Optimizer by name from an ``OptimizerCfg``.

    On CUDA, Adam and SGD update every parameter in one fused kernel (``fused=True``: no
    per-parameter launches, deterministic) and RMSprop, which has no fused form, in a few
    multi-tensor launches (``foreach``). On CPU they keep torch's single-tensor loop, which
    genlab's CPU results were computed with (the fused CPU kernels round differently)."""
    params = list(params)
    tensors = [p for group in params for p in (group["params"] if isinstance(group, dict)
                                                else [group])]  # fmt: skip
    cuda = bool(tensors) and all(p.is_cuda for p in tensors)
    if cfg.name == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay,
                                fused=cuda or None)  # fmt: skip
    if cfg.name == "rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, weight_decay=cfg.weight_decay,
                                   foreach=cuda or None)  # fmt: skip
    return torch.optim.SGD(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=cuda or None)


def grad_norm(module: nn.Module) -> float:
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    return torch.nn.utils.get_total_norm(grads).detach() if grads else 0.0


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


def _data_parallel() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def sum_over_processes(t: torch.Tensor) -> torch.Tensor:
    """``t`` summed, in place, over the processes of a data-parallel run
    (``genlab.train.distributed``); ``t`` unchanged in a single process. For a trainer that
    edits its weights outside the optimizer from statistics of its shard (VQ-VAE's dead codes)."""
    if _data_parallel():
        torch.distributed.all_reduce(t)
    return t


def take_rank0(t: torch.Tensor) -> None:
    """Rank 0's value of ``t`` into every process of a data-parallel run, in place (a trainer's
    edit of its weights outside the optimizer, so that every process keeps the same model)."""
    if _data_parallel():
        torch.distributed.broadcast(t, src=0)


__all__ = [
    "OptimizerCfg",
    "TrainingDiverged",
    "autocast",
    "compile_modules",
    "configure_determinism",
    "cuda_path",
    "emulate_cuda_paths",
    "deterministic_kernels",
    "global_rng_state",
    "grad_norm",
    "make_optimizer",
    "resolve_device",
    "set_global_rng_state",
    "sum_over_processes",
    "take_rank0",
]
