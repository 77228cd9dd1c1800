"""Data-parallel training on several processes (``genlab train V --nproc N``, or ``torchrun``).

Each of the N processes (ranks) holds a copy of every network and optimizer. Every step, each
rank takes its own contiguous shard of the global batch of ``batch_size`` examples (the batch
order is the run's seeded permutation, the same on every rank) and draws its own noise (rank r
seeds its generators with ``rank_seed(seed, r)``; rank 0 with the run's seed). Before every
optimizer step the gradients are averaged over the ranks with one ``all_reduce`` per dtype, so
every rank applies the same update to the same weights: for a loss that is a mean over the
batch, the update of the global batch (what is computed per shard stays per shard: batch-norm
statistics, VQ-GAN's adaptive weight, the handwriting recogniser's gradient balance). After each
step the buffers (batch-norm statistics, StyleGAN's w average, ...) and the
parameters no optimizer updates (networks a trainer fits itself) are broadcast from rank 0, and
the statistics are averaged over the ranks when they are read (a mean loss becomes the global
batch's; a gradient norm becomes the mean of the shards' norms). A trainer that edits its
weights outside the optimizer from its shard (VQ-VAE's dead-code restarts) sums its counts over
the ranks and keeps rank 0's edit (``genlab.runtime.sum_over_processes``, ``take_rank0``). Rank 0
alone writes the statistics, the checkpoints, ``model.pt`` and the MLflow run; a checkpoint also
holds every other rank's RNG and trainer state, so a resumed run continues exactly.

Why the gradients are averaged at the optimizer step rather than by wrapping each network in
``torch.nn.parallel.DistributedDataParallel``: the average is the same (DDP all-reduces and
averages the gradients of every backward), but DDP's wrapper must be the module the trainer
calls, while each family's trainer calls its networks by attribute and the checkpoints, the EMA
and ``model.pt`` use the unwrapped networks' state_dict keys, so every trainer would change.
DDP also needs ``find_unused_parameters=True`` (a graph traversal after every forward) where a
step leaves parameters without gradients (ProGAN's blocks not yet grown). The hook here
communicates once per optimizer update and works for every family's step unchanged; NVIDIA's
StyleGAN2-ADA training loop runs GANs data-parallel the same way (it all-reduces the flattened
gradients before each optimizer step, Karras et al. 2020). The process group, the launcher
(``torchrun``), the collectives and their backends (gloo on CPU, NCCL on CUDA) are PyTorch's.

Same world size and seed: the same bits (the collectives sum in a fixed order). Another world
size is another run (other shards, other noise): its checkpoint refuses to resume on another
``--nproc``.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from genlab.errors import ConfigError

RANK_SEED_STRIDE = 1_000_003  # rank r's seed: seed + r * stride (far from seed + small offsets)


@dataclass(frozen=True)
class World:
    """This process's place among the ranks (``torchrun`` sets RANK, WORLD_SIZE, ...)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1

    @property
    def active(self) -> bool:
        """More than one process: the collectives run."""
        return self.size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes."""
        return self.rank == 0

    def seed(self, seed: int) -> int:
        return rank_seed(seed, self.rank)

    def shard(self, batch_size: int) -> tuple[int, int]:
        """[lo, hi) of this rank's examples in a global batch of ``batch_size``."""
        check_batch(batch_size, self.size)
        per = batch_size // self.size
        return self.rank * per, (self.rank + 1) * per

    # ------------------------------------------------------------ collectives
    def broadcast(self, tensors: Iterable[Tensor]) -> None:
        """Rank 0's values into every rank's ``tensors`` (in place)."""
        if self.active:
            with _peers():
                _coalesced(list(tensors), lambda flat: dist.broadcast(flat, src=0))

    def average(self, tensors: Iterable[Tensor]) -> None:
        """Every rank's ``tensors`` replaced, in place, by their mean over the ranks."""
        if self.active:
            with _peers():
                _coalesced(list(tensors), self._mean)

    def _mean(self, flat: Tensor) -> None:
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat.div_(self.size)

    def gather(self, obj: Any) -> list[Any]:
        """Every rank's ``obj`` (picklable), in rank order, on every rank."""
        if not self.active:
            return [obj]
        out: list[Any] = [None] * self.size
        with _peers():
            dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.active:
            with _peers():
                dist.barrier()

    @property
    def device(self) -> torch.device:
        """Where the backend reduces: the process's GPU under NCCL, else the CPU."""
        if self.active and dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")

    # ------------------------------------------------------------ training hooks
    def synchronize(self, modules: Iterable[nn.Module]) -> None:
        """Rank 0's parameters and buffers into every rank (once, after building: the ranks
        built their networks from different seeds)."""
        modules = list(modules)
        self.broadcast(t.data for m in modules for t in [*m.parameters(), *m.buffers()])

    def share_state(
        self, modules: Iterable[nn.Module], optimizers: Iterable[torch.optim.Optimizer]
    ) -> None:
        """Rank 0's buffers and the parameters no optimizer updates into every rank (after each
        step). Buffers as DDP's ``broadcast_buffers``; the frozen parameters are those of
        networks a trainer fits itself while training (SRGAN's and VQ-GAN's feature networks,
        fitted on each rank at their first step): rank 0's fit is the one every rank keeps."""
        optimized = {id(p) for o in optimizers for g in o.param_groups for p in g["params"]}
        self.broadcast(
            t.data for m in modules
            for t in [*m.buffers(), *(p for p in m.parameters() if id(p) not in optimized)]
        )  # fmt: skip

    def average_gradients_before_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Average the gradients ``optimizer`` is about to apply, before each of its steps."""
        if not self.active:
            return

        def hook(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
            grads = [p.grad for g in opt.param_groups for p in g["params"] if p.grad is not None]
            self.average(grads)

        optimizer.register_step_pre_hook(hook)


SINGLE = World()


def rank_seed(seed: int, rank: int) -> int:
    """Rank r's seed for its noise and its other random draws; rank 0 keeps the run's seed."""
    return seed + rank * RANK_SEED_STRIDE


def check_batch(batch_size: int, size: int) -> None:
    """The global batch must split evenly, at least 2 examples a process (batch norm)."""
    if batch_size % size or batch_size < 2 * size:
        raise ConfigError(
            f"batch_size = {batch_size} does not split into {size} processes (--nproc {size}) of "
            f"at least 2 examples; allowed: a multiple of {size} from {2 * size}, or another "
            "--nproc"
        )


def current() -> World:
    """The world ``torchrun`` (or ``genlab train --nproc``) started this process in; a single
    process otherwise."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return SINGLE
    return World(
        rank=int(os.environ["RANK"]),
        size=size,
        local_rank=int(os.environ.get("LOCAL_RANK", "0")),
        local_size=int(os.environ.get("LOCAL_WORLD_SIZE", str(size))),
    )


def start(device: torch.device) -> World:
    """Join the process group of ``current()`` (gloo on CPU, NCCL on CUDA: the GPU of this
    process's local rank) and split the machine's cores among its local ranks. Idempotent."""
    from genlab.runtime import share_cores

    world = current()
    if not world.active:
        return world
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(world.local_rank)
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if world.main:  # torchrun stops the other ranks with SIGTERM when one fails
            signal.signal(signal.SIGTERM, _stopped)
    share_cores(world.local_size)
    return world


class RankStopped(Exception):
    """Another process of the run stopped (its collective failed), or torchrun stopped this
    one (SIGTERM): rank 0 marks its run and exits 1 with one line, no traceback. Not a
    RuntimeError, which some callers read as a bad checkpoint."""


def _stopped(signum: int, frame: Any) -> None:
    raise RankStopped(
        "stopped by torchrun (SIGTERM): another process of this run failed, or the run was stopped"
    )


@contextlib.contextmanager
def _peers() -> Iterator[None]:
    """A collective whose peer died (gloo: "Connection closed by peer", NCCL: a DistBackendError)
    becomes RankStopped naming that, instead of a backend traceback."""
    try:
        yield
    except RuntimeError as e:
        reason = " ".join(str(e).split())[:200]
        raise RankStopped(f"another process of this run stopped ({reason})") from None


def ignore_stop() -> None:
    """Rank 0 handling a failure: torchrun's SIGTERM must not interrupt the cleanup (marking
    the MLflow run, keeping the checkpoint); torchrun kills it after its grace period anyway."""
    if current().active and current().main:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)


def stop() -> None:
    """Leave the process group (at the end of a data-parallel command)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _coalesced(tensors: list[Tensor], op: Callable[[Tensor], None]) -> None:
    """Apply the collective ``op`` to one flat copy of ``tensors`` per (dtype, device), then
    write the results back: one message per group instead of one per tensor."""
    groups: dict[tuple, list[Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.dtype, t.device), []).append(t)
    for group in groups.values():
        flat = torch.cat([t.reshape(-1) for t in group])
        op(flat)
        for t, part in zip(group, flat.split([t.numel() for t in group]), strict=True):
            t.copy_(part.view_as(t))


def launch(nproc: int, argv: list[str]) -> int:
    """Run ``genlab <argv>`` in ``nproc`` processes on this machine through torchrun
    (``--standalone``: a local rendezvous on a free port); returns the exit code: 0, or the
    first failing rank's (2 for bad input)."""
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    from genlab.runtime import available_cores

    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, available_cores() // nproc)))
    args = get_args_parser().parse_args(
        ["--standalone", f"--nproc-per-node={nproc}", "-m", "genlab.cli", *argv]
    )
    try:
        run(args)
    except ChildFailedError as e:  # bad input on any rank wins: its message says what to fix
        codes = [f.exitcode for _, f in sorted(e.failures.items())]
        return 2 if 2 in codes else next((c for c in codes if c > 0), 1)
    except SignalException as e:  # Ctrl-C or a kill of the launcher (passed on to the ranks)
        return 128 + int(e.sigval)
    return 0


__all__ = ["SINGLE", "RankStopped", "World", "check_batch", "current", "launch", "rank_seed",
           "start"]  # fmt: skip
