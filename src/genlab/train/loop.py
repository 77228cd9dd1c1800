"""The one training driver, shared by every family, ``genlab train``, sweep trials and the toys
that train networks.

``build_training`` seeds everything and builds the family's trainer, its batch stream and the
EMA; ``training_steps`` calls ``trainer.step`` with the NaN check and the EMA update;
``train_variant`` adds the outputs: per-step statistics, the full state every
``checkpoint_every`` steps, ``model.pt`` at the end, and the MLflow run.
"""

from __future__ import annotations

import csv
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch

import genlab
from genlab import tracking
from genlab.data import load_prepared
from genlab.data.stream import BatchStream
from genlab.drawing import training_curves_figure
from genlab.errors import CheckpointError, ConfigError, TrainingDiverged
from genlab.families import FAMILIES
from genlab.io import replace_dir, torch_save, write_json
from genlab.objectives.regularizers import GAN_REGULARIZERS
from genlab.paths import Paths
from genlab.runtime import (
    compile_modules,
    configure_determinism,
    global_rng_state,
    resolve_device,
    set_global_rng_state,
    use_threads,
)
from genlab.train import distributed
from genlab.train.checkpoint import load_checkpoint, save_model
from genlab.train.distributed import SINGLE, World
from genlab.train.ema import EMA


class StatsWriter:
    """Per-step statistics: buffered rows appended to the CSV at each checkpoint. On resume the
    rows after the checkpoint's step are dropped, so the CSV matches an uninterrupted run."""

    def __init__(self, path: Path, resume_step: int | None) -> None:
        self.path, self.rows, self.columns = path, [], None
        path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is None or not path.exists():
            path.unlink(missing_ok=True)
            return
        with path.open(newline="") as f:
            kept = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
        self.columns = list(kept[0]) if kept else None
        self._write(kept, mode="w")

    def add(self, step: int, stats: dict[str, Any], seconds: float) -> None:
        """One step's row; ``stats`` may still hold device tensors (``training_steps`` reads
        them in place before the next checkpoint), so the row is built at ``flush``."""
        self.rows.append((step, stats, seconds))

    def flush(self) -> list[dict[str, Any]]:
        rows = [{"step": step, **stats, "seconds": seconds} for step, stats, seconds in self.rows]
        self.rows = []
        self._write(rows, mode="a")
        return rows

    def _write(self, rows: list[dict[str, Any]], mode: str) -> None:
        if not rows:
            return
        if self.columns is None:
            self.columns = list(rows[0])
        new = not self.path.exists() or mode == "w"
        with self.path.open(mode, newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.columns, restval="")
            if new:
                writer.writeheader()
            writer.writerows(rows)


def read_stats(rows: list[dict[str, Any]], world: World = SINGLE) -> None:
    """Replace, in place, the tensors among ``rows``' values by Python numbers, with one
    device-to-host copy for all of them.

    Trainers return their statistics as detached 0-d tensors, so that a step never waits for
    the device; the driver reads them every ``log_every`` steps (``training_steps``). A float
    tensor becomes the float ``.item()`` would give (float64 holds every float32 and bfloat16
    value exactly), an integer tensor an int.

    In data-parallel training (``world.active``) every statistic, numbers included, becomes its
    mean over the ranks (every rank has the same keys): a mean loss becomes the global batch's,
    a gradient norm the mean of the shards' norms."""
    numbers = torch.Tensor | int | float if world.active else torch.Tensor
    found = [
        (row, k, v) for row in rows for k, v in row.items()
        if isinstance(v, numbers) and not isinstance(v, bool)
    ]  # fmt: skip
    if not found:
        return
    device = world.device if world.active else None  # NCCL reduces GPU tensors
    values = torch.stack([
        v.detach().reshape(()).to(device, torch.float64) if isinstance(v, torch.Tensor)
        else torch.tensor(float(v), dtype=torch.float64, device=device)
        for _, _, v in found
    ])  # fmt: skip
    world.average([values])  # a no-op in a single process
    for (row, k, v), x in zip(found, values.cpu().tolist(), strict=True):
        is_float = v.is_floating_point() if isinstance(v, torch.Tensor) else isinstance(v, float)
        row[k] = x if is_float else round(x)


def check_finite(stats: dict[str, float], variant: str, step: int) -> None:
    bad = {k: v for k, v in stats.items() if k.startswith("loss") and not math.isfinite(v)}
    if bad:
        raise TrainingDiverged(
            f"variant {variant!r} diverged at step {step}: "
            + ", ".join(f"{k} = {v}" for k, v in bad.items())
            + ". Lower the learning rate (optimizer.lr), add a regulariser, or use precision: fp32."
        )


def build_training(
    cfg,  # validated VariantCfg
    seed: int,  # seeds every global RNG, the noise and the batch order
    root: Path,  # project root holding data/prepared
    device: str,  # auto | cpu | cuda
    threads: int | str = "auto",  # torch intra-op threads (genlab.runtime.resolve_threads)
    compile: str = "none",  # none | a torch.compile mode (genlab.runtime.compile_modules)
    world: World = SINGLE,  # data-parallel ranks (genlab.train.distributed)
) -> tuple[Any, BatchStream, EMA | None, dict]:
    """A fresh, seeded trainer of ``cfg``: (trainer, batches, ema or None, dataset meta)."""
    train, _, meta = load_prepared(root, cfg.dataset)
    return build_trainer(cfg, train, meta, seed, device, threads, compile, world)


def build_trainer(
    cfg,
    train: dict,
    meta: dict,
    seed: int,
    device: str,
    threads: int | str = "auto",
    compile: str = "none",
    world: World = SINGLE,
) -> tuple[Any, BatchStream, EMA | None, dict]:
    """``build_training`` on a split held in memory (the toys build their data themselves).
    The EMA copy is taken before the networks are compiled: it is only averaged into, never
    run while training.

    Data-parallel (``world.active``): rank r builds its trainer for its shard of the batch with
    its own seed (``world.seed``: its noise), takes rank 0's networks, averages the gradients
    before every optimizer step and walks the run's batch order taking its shard."""
    device = resolve_device(device)
    configure_determinism(world.seed(seed))
    family = FAMILIES.get(cfg.family)
    shard = world.shard(cfg.batch_size) if world.active else None
    local = cfg if shard is None else cfg.model_copy(update={"batch_size": shard[1] - shard[0]})
    trainer = family.trainer(local, meta, device, world.seed(seed))
    use_threads(threads, trainer.modules.values())
    if world.active:
        world.synchronize(trainer.modules.values())
        for optimizer in trainer.optimizers.values():
            world.average_gradients_before_step(optimizer)
    batches = BatchStream(train, cfg.batch_size, seed, device, meta, shard)
    key = family.generator
    ema = EMA(trainer.modules[key], cfg.ema, key) if cfg.ema > 0 else None
    compile_modules(compiled_modules(cfg, trainer, key, compile), compile)
    trainer.compile_mode = compile
    return trainer, batches, ema, meta


def compiled_modules(cfg, trainer, generator: str, compile: str) -> list[torch.nn.Module]:
    """The networks ``compile`` compiles: all of them, or only the generator when a
    regulariser differentiates D's gradient (R1, R2, the gradient penalty): torch.compile's
    autograd does not support double backward."""
    if compile == "none":
        return []
    names = getattr(cfg, "regularizers", None) or {}
    if any(GAN_REGULARIZERS.get(n).second_order for n in names if n in GAN_REGULARIZERS):
        return [trainer.modules[generator]]
    return list(trainer.modules.values())


def model_modules(trainer, ema: EMA | None, family: str) -> dict[str, torch.nn.Module]:
    """The modules ``model.pt`` holds: the family's ``saved_modules``, the generator's EMA
    weights in place of the trained ones when EMA is on."""
    keys = FAMILIES.get(family).saved_modules
    modules = {key: trainer.modules[key] for key in keys}
    if ema is not None:
        modules[ema.key] = ema.shadow
    return modules


def _step(trainer, batches) -> dict[str, Any]:
    """``trainer.step``; a network that torch.compile cannot compile (it compiles at the first
    call) is a ConfigError naming the ``compile`` setting, not a traceback."""
    try:
        return trainer.step(batches)
    except RuntimeError as e:
        mode = getattr(trainer, "compile_mode", "none")
        if mode == "none" or not isinstance(e, torch._dynamo.exc.TorchDynamoException):
            raise
        reason = " ".join(str(e).split())[:300]
        raise ConfigError(
            f"compile = {mode!r}: torch.compile failed on this variant ({type(e).__name__}: "
            f"{reason}); allowed: compile: none (eager), or fix what the message names"
        ) from None


def training_steps(
    trainer,
    batches: BatchStream,
    ema: EMA | None,
    start: int,
    stop: int,
    name: str,  # the variant, named in a divergence message
    read_every: int = 1,  # read the statistics from the device (and check them) every k steps
    world: World = SINGLE,  # data-parallel ranks: buffers shared, statistics averaged
):
    """Yield (step, stats) for steps start+1 .. stop: one trainer step, the EMA update, and
    every ``read_every`` steps (and at ``stop``) the statistics of the steps since the last
    read, copied to the host at once (``read_stats``) and checked for NaN.

    Until it is read, a step's stats dict may hold 0-d tensors still on the device: the dicts
    yielded before a read become plain numbers, in place, when it happens. A caller that
    checkpoints at step k must read at k (k a multiple of ``read_every``), so that no state
    after a NaN is saved. ``read_every`` = 1 reads every step, as genlab did before.
    Data-parallel: after each step every rank takes rank 0's buffers and frozen networks
    (before the EMA reads them), and the statistics read are the means over the ranks, so
    every rank sees the same NaN at the same step."""
    pending: list[tuple[int, dict[str, Any]]] = []
    graphs = getattr(trainer, "compile_mode", "none") == "reduce-overhead"
    for step in range(start + 1, stop + 1):
        if graphs:  # outputs of the last step's CUDA graphs may be overwritten from here on
            torch.compiler.cudagraph_mark_step_begin()
        stats = _step(trainer, batches)
        if graphs:  # a statistic read later must not be a graph output replayed over since
            stats = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in stats.items()}
        if world.active:
            world.share_state(trainer.modules.values(), trainer.optimizers.values())
        if ema is not None:
            ema.update(trainer.modules[ema.key])
        pending.append((step, stats))
        if step % read_every == 0 or step == stop:
            read_stats([row for _, row in pending], world)
            for k, row in pending:
                check_finite(row, name, k)
            pending.clear()
        yield step, stats


def train_variant(
    params,  # validated Params
    name: str,  # variant name in params.variants
    root: Path,  # project root (data/, models/, plots/ live here)
    *,
    resume: bool = False,  # continue from the interrupted or the finished run's state.pt
    progress: bool | None = None,  # tqdm bar; None = only when stderr is a terminal
) -> dict[str, Any]:
    """Train variant ``name``; returns {"run_id", "steps", "seconds"}.

    The run is written to ``Paths.partial(name)`` and replaces ``models/<name>/`` and its CSV
    only when it finishes, so a failed or interrupted run never damages the last good one. A
    run that diverged is deleted; one that stopped otherwise (interrupt, kill, full disk) stays
    there with its last checkpoint, and ``resume`` continues it. Every failure ends the MLflow
    run FAILED (KILLED for an interrupt) with the reason in its ``failure`` tag.

    Started by ``torchrun`` (``genlab train --nproc N``), every process trains its shard of
    each batch (``genlab.train.distributed``) and only rank 0 writes (files and MLflow)."""
    cfg = params.variant(name)
    paths = _paths(root, name)
    world = distributed.start(resolve_device(params.device))
    trainer, batches, ema, meta = build_training(
        cfg, params.seed, root, params.device, params.threads, params.compile, world
    )
    config = cfg.model_dump(mode="json")
    threads = torch.get_num_threads()
    # the bits depend on these too; a checkpoint written before genlab recorded the device
    # resumes on any (``_check_resumable`` compares only the keys a checkpoint has)
    device = resolve_device(params.device).type
    identity = {"seed": params.seed, "threads": threads, "device": device,
                "compile": params.compile}  # fmt: skip
    if world.active:  # a single process's checkpoint has no world_size (it means 1)
        identity["world_size"] = world.size

    start, seconds, run_id, source = 0, 0.0, None, None
    if resume:
        source = paths["partial"] if paths["p_state"].exists() else paths["dir"]
        state_path = source / paths["state"].name
        state = load_checkpoint(state_path, "training state")
        _check_state_fields(state, state_path)
        _check_resumable(state, config, identity, state_path)
        start, seconds, run_id = state["step"], state["seconds"], state["run_id"]
        _restore(state, trainer, ema, batches, state_path, world)
        world.barrier()  # every rank has read the state before rank 0 writes again
    if not world.main:
        return _train_rank(trainer, batches, ema, cfg, name, start, world)
    # the first write: Run.start opens the store first (a bad tracking.uri stops here)
    run = tracking.Run.start(
        params.tracking, root, name=name, run_id=run_id,
        params={"seed": params.seed, "device": params.device, "threads": threads,
                "compile": params.compile, "world_size": world.size,
                "variant": name, **config},
        tags={**params.run_tags(name), "dataset": cfg.dataset, "family": cfg.family,
              "variant": name, "genlab.version": genlab.__version__},
    )  # fmt: skip
    step = start
    try:
        if source != paths["partial"]:  # a fresh run, or continuing the finished one
            shutil.rmtree(paths["partial"], ignore_errors=True)
            paths["partial"].mkdir(parents=True)
            if source is not None and paths["csv"].exists():
                shutil.copyfile(paths["csv"], paths["p_csv"])
        stats_writer = StatsWriter(paths["p_csv"], start if resume else None)
        write_json(paths["p_run"], {"run_id": run.run_id, "variant": name})

        def checkpoint(step: int) -> None:
            ranks = _rank_states(trainer, world)
            torch_save(
                {
                    "step": step,
                    "seconds": seconds,
                    "run_id": run.run_id,
                    "config": config,
                    **identity,
                    "genlab_version": genlab.__version__,
                    "nets": {k: m.state_dict() for k, m in trainer.modules.items()},
                    "optimizers": {k: o.state_dict() for k, o in trainer.optimizers.items()},
                    "ema": ema.shadow.state_dict() if ema is not None else None,
                    "trainer": trainer.extra_state(),
                    "batches": batches.state_dict(),
                    "rng": global_rng_state(),
                    **ranks,
                },
                paths["p_state"],
            )
            rows = stats_writer.flush()
            run.log_metrics(
                r for r in rows if r["step"] % cfg.log_every == 0 or r["step"] == cfg.steps
            )

        bar = _progress(progress, cfg.steps, start, name)
        for module in trainer.modules.values():
            module.train()
        try:
            t0 = time.perf_counter() - seconds
            steps = training_steps(
                trainer, batches, ema, start, cfg.steps, name, _read_every(cfg), world
            )
            for step, stats in steps:
                seconds = time.perf_counter() - t0
                stats_writer.add(step, stats, round(seconds, 4))
                if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                    checkpoint(step)
                if bar is not None:
                    bar.update(1)
                    if step % cfg.log_every == 0:
                        bar.set_postfix({k: f"{v:.3g}" for k, v in stats.items() if "loss" in k})
        finally:
            if bar is not None:
                bar.close()

        modules = model_modules(trainer, ema, cfg.family)
        save_model(paths["p_model"], family=cfg.family, modules=modules, cfg=config, meta=meta)
        _log_final_artifacts(run, paths, name, cfg, meta)
        write_json(paths["p_run"], {"run_id": run.run_id, "variant": name, "seconds": seconds})
        _publish(paths)
    except BaseException as e:
        distributed.ignore_stop()  # data-parallel: torchrun's SIGTERM must not cut the cleanup
        _fail(e, run, paths, name, step, world)
        raise
    run.end("FINISHED")
    return {"run_id": run.run_id, "steps": cfg.steps, "seconds": seconds}


def _read_every(cfg) -> int:
    """Statistics are read (and checked) at every log and every checkpoint step."""
    return math.gcd(cfg.log_every, cfg.checkpoint_every)


def _train_rank(trainer, batches, ema, cfg, name: str, start: int, world: World) -> dict:
    """Rank r > 0 of a data-parallel run: the same steps, its share of every collective (the
    checkpoints' state gathering included), no writes."""
    for module in trainer.modules.values():
        module.train()
    steps = training_steps(trainer, batches, ema, start, cfg.steps, name, _read_every(cfg), world)
    for step, _ in steps:
        if step % cfg.checkpoint_every == 0 or step == cfg.steps:
            _rank_states(trainer, world)
    return {"run_id": None, "steps": cfg.steps, "seconds": 0.0}


def _rank_states(trainer, world: World) -> dict[str, Any]:
    """What a checkpoint holds beyond rank 0's state: every other rank's RNG and trainer state
    (their noise generators differ), gathered from every rank (a collective: all ranks call it
    at the same steps). Empty for a single process."""
    if not world.active:
        return {}
    states = world.gather({"rng": global_rng_state(), "trainer": trainer.extra_state()})
    return {"ranks": states[1:]}


def _restore(
    state: dict, trainer, ema: EMA | None, batches: BatchStream, path: Path, world: World = SINGLE
) -> None:
    """Load a training state into freshly built objects (CheckpointError when it does not fit);
    rank r > 0 of a data-parallel run then takes its own RNG and trainer state."""
    try:
        for key, module in trainer.modules.items():
            module.load_state_dict(state["nets"][key])
        for key, opt in trainer.optimizers.items():
            opt.load_state_dict(state["optimizers"][key])
        if ema is not None:
            ema.shadow.load_state_dict(state["ema"])
        trainer.load_extra_state(state["trainer"])
        batches.load_state_dict(state["batches"])
        set_global_rng_state(state["rng"])
        if world.active and not world.main:
            own = state["ranks"][world.rank - 1]
            trainer.load_extra_state(own["trainer"])
            set_global_rng_state(own["rng"])
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as e:
        reason = " ".join(str(e).split())[:300]
        raise CheckpointError(
            f"training state {path} does not fit this variant ({type(e).__name__}: {reason}); "
            "train without --resume"
        ) from None


def _publish(paths: dict[str, Path]) -> None:
    """The finished run replaces the last one: its CSV, then its folder."""
    paths["csv"].parent.mkdir(parents=True, exist_ok=True)
    os.replace(paths["p_csv"], paths["csv"])
    replace_dir(paths["partial"], paths["dir"])


def _fail(
    error: BaseException,
    run,
    paths: dict[str, Path],
    name: str,
    step: int,
    world: World = SINGLE,
) -> None:
    """End the run FAILED (KILLED on an interrupt) with the reason; delete the partial run
    unless it can be resumed (it has a checkpoint and did not diverge)."""
    kept = paths["dir"].exists()
    resumable = paths["p_state"].exists() and not isinstance(error, TrainingDiverged)
    if not resumable:
        shutil.rmtree(paths["partial"], ignore_errors=True)
    reason = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    nproc = f" --nproc {world.size}" if world.active else ""
    where = (
        f"; resume with `genlab train {name} --resume{nproc}`" if resumable
        else "; the partial run was deleted"
    )  # fmt: skip
    if kept:
        where += f"; models/{name}/ still holds the last finished run"
    status = "KILLED" if isinstance(error, KeyboardInterrupt) else "FAILED"
    try:
        run.fail(f"stopped at step {step}: {reason}{where}", status)
    except Exception as e:  # noqa: BLE001 - the store itself may be what failed; keep the cause
        print(f"genlab: could not mark the MLflow run {status}: {e}", file=sys.stderr)
    if isinstance(error, TrainingDiverged):  # the message the command line shows
        error.args = (f"{error}{where}",)
    else:
        print(f"genlab: train {name} {status.lower()}{where}", file=sys.stderr)


def _paths(root: Path, name: str) -> dict[str, Path]:
    paths = Paths(root)
    partial = paths.partial(name)
    return {"dir": paths.model_dir(name), "model": paths.model(name), "state": paths.state(name),
            "run": paths.run(name), "csv": paths.train_csv(name), "partial": partial,
            "p_model": partial / "model.pt", "p_state": partial / "state.pt",
            "p_run": partial / "run.json", "p_csv": partial / f"{name}.csv"}  # fmt: skip


STATE_FIELDS = {
    "step": int,
    "seconds": (int, float),
    "run_id": (str, type(None)),
    "config": dict,
    "nets": dict,
    "optimizers": dict,
    "batches": dict,
    "rng": dict,
}


def _check_state_fields(state: dict, path: Path) -> None:
    """A sealed file that is not a training state (a model.pt copied over it, an edited one)."""
    bad = sorted(
        k for k, kind in STATE_FIELDS.items()
        if not isinstance(state.get(k), kind) or isinstance(state.get(k), bool)
    )  # fmt: skip
    if bad:
        raise CheckpointError(
            f"training state {path} is not a genlab training state (missing or invalid: "
            f"{', '.join(bad)}); train without --resume"
        )


def _check_resumable(state: dict, config: dict, identity: dict, path: Path) -> None:
    """Resuming with other settings than the checkpoint's would not continue the same run;
    only ``steps`` (to train longer) and the logging/checkpoint intervals may change. The seed
    and the thread count must match too (the bits depend on both)."""
    free = {"steps", "log_every", "checkpoint_every"}
    written = _current_form(state["config"])
    diff = sorted(
        k for k in set(config) | set(written)
        if k not in free and config.get(k) != written.get(k)
    )  # fmt: skip
    diff += [
        f"{k} {state.get(k)} -> {v}" for k, v in identity.items()
        if k in state and k != "world_size" and state[k] != v
    ]  # fmt: skip
    if state.get("world_size", 1) != identity.get("world_size", 1):  # 1: no key written
        diff.append(
            f"world_size {state.get('world_size', 1)} -> {identity.get('world_size', 1)}: resume "
            f"with --nproc {state.get('world_size', 1)}"
        )
    if diff:
        raise CheckpointError(
            f"cannot resume from {path}: params changed since it was written ({', '.join(diff)}); "
            "only steps, log_every and checkpoint_every may change. Train without --resume."
        )
    if state["step"] > config["steps"]:
        raise CheckpointError(
            f"cannot resume from {path}: it is at step {state['step']} but steps = "
            f"{config['steps']}; allowed: steps >= {state['step']}"
        )


def _current_form(config: dict) -> dict:
    """A checkpoint's variant config as this version writes it: keys added since (a new
    family's options) at their defaults, so that they do not count as a change; as written
    when it no longer validates (then every difference is reported)."""
    from genlab.config import VariantCfg

    try:
        return VariantCfg.model_validate(config).model_dump(mode="json")
    except ValueError:
        return config


def _log_final_artifacts(
    run,  # tracking.Run or NullRun
    paths: dict[str, Path],  # _paths(root, name)
    name: str,  # the variant
    cfg,  # its VariantCfg (dataset, steps)
    meta: dict,  # the prepared dataset's meta.json
) -> None:
    """Curves, CSV and ``model.pt`` of the partial run (before it is published) as run
    artifacts; the generator as the run's LoggedModel; the prepared dataset as its input."""
    if run.run_id is None:
        return
    figure = training_curves_figure(paths["p_csv"], paths["partial"] / "curves.png", title=name)
    run.log_artifact(figure)
    run.log_artifact(paths["p_csv"])
    run.log_artifact(paths["p_model"])
    figure.unlink()
    run.log_model(paths["p_model"], name, step=cfg.steps)
    run.log_dataset(
        cfg.dataset, tracking.dataset_digest(meta), f"data/prepared/{cfg.dataset}",
        schema={k: meta[k] for k in ("fields", "shape", "num_classes") if k in meta},
        profile={k: meta[k] for k in ("n_train", "n_test") if k in meta},
    )  # fmt: skip


def _progress(enabled: bool | None, total: int, initial: int, name: str):
    if enabled is None:
        enabled = sys.stderr.isatty()
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=f"train {name}", dynamic_ncols=True)


__all__ = ["build_trainer", "build_training", "model_modules", "train_variant", "training_steps"]
