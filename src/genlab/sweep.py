"""Optuna studies over losses, regularisers and learning rates (the only module that imports
Optuna, DESIGN rule 5).

A study (``sweeps.<name>`` in params.yaml) samples variant settings from a search space around a
base variant, trains each trial in memory for ``steps`` generator steps and scores it with the same
seeded latent batch and metric functions as ``sample`` + ``evaluate`` (``GeneratorScorer``), every
``report_every`` steps for the pruner. The arms are the loss x regulariser choices; the best
trial of each arm is retrained over ``seeds``. Tables follow Lucic et al. 2018 ("Are GANs Created
Equal?"): per-arm statistics, the expected best score as a function of the number of trials, seed
variance of the best configurations. Trials, retrains and the study's MLflow parent run live in
the Optuna storage, so a study resumes where it stopped and many workers can share it.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import math
import multiprocessing
import os
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

import genlab
from genlab.config import ARM_KEYS, ConfigError, SweepCfg, VariantCfg, format_errors
from genlab.io import write_text

STORAGE_ENV = "GENLAB_SWEEP_STORAGE"  # an Optuna storage URL that overrides params
NONE = "none"  # the regulariser choice "no regulariser"
RETRAIN_PREFIX = "retrain:"  # study user attrs "retrain:<trial>:<seed>" hold seed re-runs


# ---------------------------------------------------------------- search space -> variants
def active(dim, values: dict[str, Any]) -> bool:
    """Whether a conditional parameter is sampled, given the values chosen before it."""
    return all(
        key in values and values[key] in (allowed if isinstance(allowed, list) else [allowed])
        for key, allowed in dim.when.items()
    )


def variant_for(base: VariantCfg, sweep: SweepCfg, values: dict[str, Any]) -> VariantCfg:
    """The base variant with the sampled ``values`` applied and ``steps`` set to the study's.

    ``regularizer`` replaces the base's regularisers by the chosen one (or none); every other key
    is a path into the variant (``optimizer.lr``, ``optimizer.betas.0``,
    ``regularizers.r1.weight``). Sampled ``optimizer_d.*`` keys start from the base's D optimizer
    when it has one, else from G's final optimizer (so a sampled beta1 reaches D too unless the
    base gives D its own optimizer). Raises ``ConfigError`` for a combination that is not valid.
    """
    raw = base.model_dump(mode="json")
    raw["steps"] = sweep.steps
    d_opt_base = raw.get("optimizer_d")
    if "regularizer" in values:
        name = values["regularizer"]
        raw["regularizers"] = {} if name == NONE else {name: raw["regularizers"].get(name, {})}
    d_opt: dict[str, Any] = {}
    for key, value in values.items():
        if key == "regularizer":
            continue
        if key.startswith("optimizer_d."):
            _set_path(d_opt, key.split(".")[1:], value)
        else:
            _set_path(raw, key.split("."), value)
    if d_opt:
        start = d_opt_base if d_opt_base is not None else raw["optimizer"]
        merged = json.loads(json.dumps(start))
        for path, value in _leaves(d_opt):
            _set_path(merged, path, value)
        raw["optimizer_d"] = merged
    try:
        return VariantCfg.model_validate(raw)
    except Exception as e:  # noqa: BLE001 - pydantic errors and registry errors alike
        from pydantic import ValidationError

        msg = format_errors(e, "variant") if isinstance(e, ValidationError) else str(e)
        raise ConfigError(msg.replace("\n", ";")) from None


def _set_path(node: Any, path: list[str], value: Any) -> None:
    """``node[path[0]][path[1]]... = value``; a numeric part indexes a list (``betas.0``)."""
    for part in path[:-1]:
        if isinstance(node, list):
            node = node[int(part)]
        else:
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
    if isinstance(node, list):
        node[int(path[-1])] = value
    else:
        node[path[-1]] = value


def _leaves(d: dict, prefix: tuple = ()) -> Iterator[tuple[list[str], Any]]:
    for key, value in d.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, (*prefix, key))
        else:
            yield [*prefix, key], value


def arms(sweep: SweepCfg, base: VariantCfg) -> list[tuple[str, str]]:
    """Every (loss, regulariser) arm of the space; a key the space omits keeps the base's."""
    base_reg = ",".join(base.regularizers) or NONE
    losses = sweep.space["loss"].choices if "loss" in sweep.space else [base.loss]
    regs = sweep.space["regularizer"].choices if "regularizer" in sweep.space else [base_reg]
    return list(itertools.product(losses, regs))


def arm_label(arm: tuple[str, str]) -> str:
    return f"{arm[0]} x {arm[1]}"


def default_values(sweep: SweepCfg, fixed: dict[str, Any]) -> dict[str, Any]:
    """One point of the space: ``fixed`` arm values, else the first choice or the lower bound."""
    values: dict[str, Any] = {}
    for key, dim in sweep.space.items():
        if not active(dim, values):
            continue
        if key in fixed:
            values[key] = fixed[key]
        elif dim.choices is not None:
            values[key] = dim.choices[0]
        else:
            values[key] = int(dim.low) if dim.int else dim.low
    return values


def check_study(base: VariantCfg, sweep: SweepCfg, seed: int) -> list[str]:
    """Everything wrong with a study that its schema alone cannot see: every arm, and every
    conditional parameter at a point where it is active, must make a valid variant; a
    ``regularizers.X.*`` key must be tied to the arm it belongs to; seeds are re-measurements."""
    errors = []
    for arm in arms(sweep, base):
        fixed = {k: v for k, v in zip(ARM_KEYS, arm, strict=True) if k in sweep.space}
        try:
            variant_for(base, sweep, default_values(sweep, fixed))
        except ConfigError as e:
            errors.append(f"the arm {arm_label(arm)} is not a valid variant: {e}")
    for key, dim in sweep.space.items():
        fixed = {k: v[0] if isinstance(v, list) else v for k, v in dim.when.items()}
        fixed[key] = dim.choices[-1] if dim.choices is not None else dim.high
        try:
            variant_for(base, sweep, default_values(sweep, fixed))
        except ConfigError as e:
            errors.append(f"space.{key} makes an invalid variant where it applies: {e}")
        head, _, rest = key.partition(".")
        if head == "regularizers" and "regularizer" in sweep.space:
            name = rest.split(".")[0]
            tied = dim.when.get("regularizer")
            if tied is None or (name in sweep.space["regularizer"].choices and tied != name
                                and tied != [name]):  # fmt: skip
                errors.append(
                    f"space.{key} needs when: {{regularizer: {name}}} (or another regularizer "
                    f"value when {name} is not a choice); unconditioned it would add {name} to "
                    "every arm"
                )
    if seed in sweep.seeds:
        errors.append(
            f"seeds = {sweep.seeds} contains the project seed {seed}, which the search trials "
            "use: their scores were selected as the best, not re-measured; use other seeds"
        )
    if any(s < 0 for s in sweep.seeds):
        errors.append(f"seeds = {sweep.seeds}: seeds must be >= 0")
    if sweep.grace <= 2 * sweep.heartbeat:
        errors.append(
            f"grace = {sweep.grace} must exceed 2 x heartbeat = {2 * sweep.heartbeat}, or live "
            "trials are taken for dead ones"
        )
    return errors


# ---------------------------------------------------------------- storage and study
def study_dir(root: Path, name: str) -> Path:
    return root / "reports" / "sweeps" / name


def storage_url(sweep: SweepCfg, name: str, root: Path) -> str:
    """``GENLAB_SWEEP_STORAGE``, else ``sweeps.<name>.storage``, else SQLite in the study's dir."""
    url = os.environ.get(STORAGE_ENV) or sweep.storage
    if url is None:
        return f"sqlite:///{study_dir(root, name).resolve() / 'study.db'}"
    if "://" not in url:
        raise ConfigError(
            f"sweeps.{name}.storage = {url!r} is not a database URL; allowed: "
            "sqlite:///path.db, postgresql://user@host/db, mysql://..."
        )
    return url


def public_url(url: str) -> str:
    """The storage URL without a password, for logs and MLflow."""
    head, sep, tail = url.partition("://")
    if "@" in tail and ":" in tail.split("@")[0]:
        user = tail.split("@")[0].split(":")[0]
        return f"{head}{sep}{user}:***@{tail.split('@', 1)[1]}"
    return url


def fingerprint(params, name: str, root: Path) -> str:
    """What a trial's score depends on: the study settings (not its budget), the base variant,
    the sample settings, the project seed, the prepared data, the evaluator and genlab's code.
    A study with another fingerprint is a new study in the same storage (the old one stays)."""
    sweep = params.sweeps[name]
    base = params.variants[sweep.base]
    settings = sweep.model_dump(
        mode="json", exclude={"trials", "trials_per_arm", "workers", "storage", "seeds",
                              "heartbeat", "grace", "max_retry", "bootstrap"}
    )  # fmt: skip
    h = hashlib.sha256()
    what = [settings, base.model_dump(mode="json"), params.seed, params.device,
            params.sample.model_dump(mode="json"),
            params.evaluate.model_dump(mode="json")]  # fmt: skip
    h.update(json.dumps(what, sort_keys=True).encode())
    files = [root / "models" / "evaluator" / f"{base.dataset}.pt"]
    files += sorted((root / "data" / "prepared" / base.dataset).rglob("*"))
    files += sorted(Path(genlab.__file__).parent.rglob("*.py"))
    for path in files:
        if path.is_file():
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:10]


def _quiet_optuna():
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # trial outcomes: printed by _print_trial
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
    return optuna


def make_storage(url: str, sweep: SweepCfg, on_stale: Callable | None = None):
    """An RDB storage with heartbeats: a trial whose worker died is failed after ``grace``
    seconds and re-queued (at most ``max_retry`` times)."""
    optuna = _quiet_optuna()
    engine = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {}
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=sweep.max_retry)

    def stale(study, trial) -> None:
        retry(study, trial)
        if on_stale is not None:
            on_stale(trial)

    storage = optuna.storages.RDBStorage(
        url, engine_kwargs=engine, heartbeat_interval=sweep.heartbeat,
        grace_period=sweep.grace, heartbeat_stale_trial_callback=stale,
    )  # fmt: skip
    if url.startswith("sqlite"):
        _serialize_sqlite(storage.engine)
    return storage


def _serialize_sqlite(engine) -> None:
    """Make every SQLite transaction take the write lock when it begins (BEGIN IMMEDIATE).

    Optuna pops a queued trial by reading its state and then writing RUNNING; SQLite's default
    deferred transactions let two processes both read WAITING and both run the trial. PostgreSQL
    and MySQL lock the row (SELECT ... FOR UPDATE); this gives SQLite the same guarantee
    (SQLAlchemy's pysqlite recipe for serializable transactions)."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection, _record) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN itself, below

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened before the listeners existed are dropped


def make_sampler(sweep: SweepCfg, seed: int):
    """Random: seeded per trial number, so trial k draws the same values whichever worker runs
    it and however often the study was resumed (a study is reproducible with any number of
    workers). TPE: seeded, but it learns from the trials finished so far, which with several
    workers depends on timing."""
    optuna = _quiet_optuna()
    if sweep.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)

    class PerTrialRandomSampler(optuna.samplers.RandomSampler):
        def before_trial(self, study, trial) -> None:
            self._rng.rng.seed(_seed(seed, trial.number))

    return PerTrialRandomSampler(seed=seed)


def make_pruner(sweep: SweepCfg):
    optuna = _quiet_optuna()
    cfg = sweep.pruner
    if cfg.name == "median":
        return optuna.pruners.MedianPruner(
            n_startup_trials=cfg.startup_trials, n_warmup_steps=cfg.warmup_steps,
            interval_steps=sweep.report_every,
        )  # fmt: skip
    if cfg.name == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=sweep.report_every, max_resource=sweep.steps,
            reduction_factor=cfg.reduction_factor,
        )  # fmt: skip
    return optuna.pruners.NopPruner()


@dataclass
class Context:
    """Everything a worker needs: params, the study's name in params and in storage, the root."""

    params: Any
    name: str
    root: Path
    study_name: str
    url: str

    @property
    def sweep(self) -> SweepCfg:
        return self.params.sweeps[self.name]

    @property
    def base(self) -> VariantCfg:
        return self.params.variants[self.sweep.base]

    def open(self):
        """The study, loaded from storage (it must exist)."""
        optuna = _quiet_optuna()
        storage = make_storage(self.url, self.sweep, self._end_stale_run)
        return optuna.load_study(
            study_name=self.study_name, storage=storage,
            sampler=make_sampler(self.sweep, self.params.seed), pruner=make_pruner(self.sweep),
        )  # fmt: skip

    def _end_stale_run(self, trial) -> None:
        from genlab import tracking

        run = tracking.reopen(self.params.tracking, self.root, trial.user_attrs.get("mlflow_run"))
        run.set_tags({"optuna.state": "FAIL", "failure": "worker stopped sending heartbeats"})
        run.end("FAILED")


def create_study(ctx: Context):
    """Create (or load) the study and record what it is; returns it."""
    optuna = _quiet_optuna()
    sweep = ctx.sweep
    directions = ["minimize"] * len(sweep.objectives)
    study = optuna.create_study(
        study_name=ctx.study_name, storage=make_storage(ctx.url, sweep), directions=directions,
        load_if_exists=True,
    )  # fmt: skip
    if "config" not in study.user_attrs:
        study.set_user_attr("config", sweep.model_dump(mode="json"))
        study.set_user_attr("base", ctx.base.model_dump(mode="json"))
        study.set_user_attr("genlab_version", genlab.__version__)
    return study


# ---------------------------------------------------------------- budget bookkeeping
def retried_numbers(trials) -> set[int]:
    """Trials that failed because their worker died and were re-queued."""
    return {n for t in trials for n in t.system_attrs.get("retry_history", [])}


def consumed(trials) -> list:
    """Trials that count against the budget: finished or running, not stale-and-retried."""
    from optuna.trial import TrialState

    retried = retried_numbers(trials)
    gone = {TrialState.WAITING}
    return [t for t in trials if t.state not in gone and not _stale_retried(t, retried)]


def _stale_retried(trial, retried: set[int]) -> bool:
    return trial.state.name == "FAIL" and trial.number in retried


def trial_arm(trial, ctx: Context) -> tuple[str, str]:
    fixed = getattr(trial, "system_attrs", {}).get("fixed_params", {})  # queued, not yet run
    params = {**trial.params, **fixed}
    base_reg = ",".join(ctx.base.regularizers) or NONE
    return (params.get("loss", ctx.base.loss), params.get("regularizer", base_reg))


def target(ctx: Context) -> int:
    sweep = ctx.sweep
    if sweep.trials is not None:
        return sweep.trials
    return sweep.trials_per_arm * len(arms(sweep, ctx.base))


def enqueue_arms(study, ctx: Context) -> int:
    """With ``trials_per_arm``, queue the missing trials of every arm (round robin), their arm
    fixed, the rest left to the sampler; returns how many were queued."""
    sweep = ctx.sweep
    if sweep.trials_per_arm is None:
        return 0

    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    have: dict[tuple[str, str], int] = {}
    for t in trials:
        if _stale_retried(t, retried):
            continue
        have[trial_arm(t, ctx)] = have.get(trial_arm(t, ctx), 0) + 1
    queued = 0
    for rep in range(sweep.trials_per_arm):
        for arm in arms(sweep, ctx.base):
            if have.get(arm, 0) > rep:
                continue
            fixed = {k: v for k, v in zip(ARM_KEYS, arm, strict=True) if k in sweep.space}
            study.enqueue_trial(fixed)
            queued += 1
    return queued


def split(n: int, workers: int) -> list[int]:
    """``n`` trials over ``workers`` as evenly as possible (sum is exactly n)."""
    return [n // workers + (i < n % workers) for i in range(workers)]


# ---------------------------------------------------------------- one trial
def suggest(trial, sweep: SweepCfg) -> dict[str, Any]:
    """Define-by-run sampling of the space, in its order, skipping inactive conditionals."""
    values: dict[str, Any] = {}
    for key, dim in sweep.space.items():
        if not active(dim, values):
            continue
        if dim.choices is not None:
            values[key] = trial.suggest_categorical(key, dim.choices)
        elif dim.int:
            values[key] = trial.suggest_int(key, int(dim.low), int(dim.high), log=dim.log)
        else:
            values[key] = trial.suggest_float(key, dim.low, dim.high, log=dim.log)
    return values


def fit_and_score(
    params,  # validated Params (device, sample settings)
    cfg: VariantCfg,  # the trial's variant
    root: Path,  # project root
    seed: int,  # seeds training and the scored latent batch, as `seed:` would in the pipeline
    scorer,  # GeneratorScorer of the variant's dataset
    report_every: int,  # score every k steps (and at the last step)
    on_report: Callable[[int, dict[str, float], float], None] | None = None,  # (step, scores, s)
    label: str = "trial",  # names the run in a divergence message
) -> dict[str, Any]:
    """Train ``cfg`` from scratch in memory; returns the final scores and training seconds
    (scoring excluded). Raises TrainingDiverged on NaN; ``on_report`` may raise to stop."""
    from genlab.train.loop import build_training, training_steps

    trainer, batches, ema, _ = build_training(cfg, seed, root, params.device)
    seconds, t0, scores = 0.0, time.perf_counter(), {}
    for module in trainer.modules.values():
        module.train()
    for step, _stats in training_steps(trainer, batches, ema, 0, cfg.steps, label):
        if step % report_every == 0 or step == cfg.steps:
            seconds += time.perf_counter() - t0
            net = ema.shadow if ema is not None else trainer.generator
            scores = scorer(net, cfg.latent_dim, cfg.family, seed)
            if on_report is not None:
                on_report(step, scores, seconds)
            t0 = time.perf_counter()
    return {"scores": scores, "seconds": seconds}


METRIC_KEY = {"frechet": "frechet", "kid": "kid_mean"}


class Objective:
    """Optuna's objective: sample, build the variant, train, report, score; an MLflow child run."""

    def __init__(self, ctx: Context, parent_run: str | None) -> None:
        from genlab.evaluate import GeneratorScorer

        self.ctx, self.parent_run = ctx, parent_run
        sweep = ctx.sweep
        names = [m for m in sweep.objectives if m != "seconds"]
        self.scorer = GeneratorScorer(ctx.params, ctx.base.dataset, ctx.root, names)

    def __call__(self, trial) -> float | tuple[float, float]:
        import optuna

        from genlab import tracking
        from genlab.train.common import TrainingDiverged

        ctx, sweep = self.ctx, self.ctx.sweep
        key = METRIC_KEY[sweep.objectives[0]]
        values = suggest(trial, sweep)
        arm = trial_arm(trial, ctx)
        trial.set_user_attr("arm", arm_label(arm))
        try:
            cfg = variant_for(ctx.base, sweep, values)
        except ConfigError as e:
            trial.set_user_attr("fail_reason", f"invalid combination: {e}")
            raise TrialFailed(str(e)) from None
        trial.set_user_attr("config", cfg.model_dump(mode="json"))
        run = tracking.Run.start(
            ctx.params.tracking, ctx.root, name=f"{ctx.name} #{trial.number}",
            params={"trial": trial.number, "seed": ctx.params.seed, **values,
                    **variant_params(cfg)},
            tags=run_tags(ctx, self.parent_run, trial.number, arm, "trial"),
        )  # fmt: skip
        trial.set_user_attr("mlflow_run", run.run_id)

        def report(step: int, scores: dict[str, float], seconds: float) -> None:
            value = scores[key]
            run.log_metrics([{"step": step, key: value, "train_seconds": seconds}])
            trial.set_user_attr("steps_done", step)
            if not math.isfinite(value):
                raise TrainingDiverged(f"{key} = {value} at step {step}")
            if len(sweep.objectives) == 1:
                trial.report(value, step)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at step {step}: {key} = {value:.4g}")

        try:
            out = fit_and_score(
                ctx.params, cfg, ctx.root, ctx.params.seed, self.scorer, sweep.report_every,
                report, label=f"{ctx.name} trial {trial.number}",
            )  # fmt: skip
        except optuna.TrialPruned:
            run.set_tags({"optuna.state": "PRUNED"})
            run.end("FINISHED")
            raise
        except TrainingDiverged as e:
            trial.set_user_attr("fail_reason", str(e))
            run.set_tags({"optuna.state": "FAIL", "failure": str(e)[:5000]})
            run.end("FAILED")
            raise TrialFailed(str(e)) from None
        except KeyboardInterrupt:  # re-queued by the next `genlab sweep` (see requeue_interrupted)
            trial.set_user_attr("interrupted", True)
            run.set_tags({"optuna.state": "FAIL", "failure": "interrupted"})
            run.end("KILLED")
            raise
        except Exception as e:  # a bug, not a property of the trial: the sweep stops
            trial.set_user_attr("fail_reason", f"{type(e).__name__}: {e}")
            run.set_tags({"optuna.state": "FAIL", "failure": f"{type(e).__name__}: {e}"[:5000]})
            run.end("FAILED")
            raise
        trial.set_user_attr("seconds", out["seconds"])
        run.log_metrics([final_row(cfg.steps, out["scores"])])
        run.set_tags({"optuna.state": "COMPLETE"})
        run.end("FINISHED")
        value = out["scores"][key]
        return (value, out["seconds"]) if len(sweep.objectives) == 2 else value


def run_tags(
    ctx: Context, parent_run: str | None, number: int, arm: tuple[str, str], kind: str
) -> dict[str, str]:
    """MLflow tags of a trial's (or a retrain's) child run."""
    tags = {
        "sweep": ctx.name, "optuna.study": ctx.study_name, "kind": kind,
        "optuna.trial": str(number), "arm": arm_label(arm), "dataset": ctx.base.dataset,
        "family": ctx.base.family, "genlab.version": genlab.__version__,
    }  # fmt: skip
    if parent_run is not None:
        tags["mlflow.parentRunId"] = parent_run
    return tags


class SweepFailed(RuntimeError):
    """A worker process crashed; the trials it finished are kept in the storage."""


class TrialFailed(RuntimeError):
    """A trial that cannot finish (diverged, invalid combination): failed, and the sweep goes on."""


def variant_params(cfg: VariantCfg) -> dict[str, Any]:
    """The variant a trial or retrain trains, as MLflow params under ``variant.``."""
    return {f"variant.{k}": v for k, v in cfg.model_dump(mode="json").items()}


def final_row(step: int, scores: dict[str, float]) -> dict[str, float]:
    return {"step": step, **{f"final.{k}": v for k, v in scores.items()}}


def _print_trial(study, trial) -> None:
    value = "" if trial.values is None else " ".join(f"{v:.4g}" for v in trial.values)
    reason = trial.user_attrs.get("fail_reason", "")
    steps = trial.user_attrs.get("steps_done", "")
    print(
        f"  trial {trial.number:>3} [{trial.user_attrs.get('arm', '?')}] {trial.state.name}"
        f" {value} (steps {steps}) {reason}".rstrip(),
        flush=True,
    )


def run_trials(ctx: Context, n: int, parent_run: str | None) -> None:
    """One worker: at most ``n`` trials on the shared study."""
    if n <= 0:
        return
    study = ctx.open()
    budget = target(ctx)

    def stop_at_budget(study, trial) -> None:
        """Workers on other machines share the storage: stop once the study has its trials."""
        finished = [t for t in consumed(study.get_trials(deepcopy=False)) if t.state.is_finished()]
        if len(finished) >= budget:
            study.stop()

    study.optimize(
        Objective(ctx, parent_run), n_trials=n, catch=(TrialFailed,),
        callbacks=[_print_trial, stop_at_budget],
    )  # fmt: skip


def _seed(*parts: int) -> int:
    """A 32-bit seed derived from ``parts`` (e.g. the project seed and a trial number)."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:4], "little")


# ---------------------------------------------------------------- retraining over seeds
def retrain(ctx: Context, number: int, seed: int, parent_run: str | None) -> None:
    """Retrain trial ``number``'s configuration with ``seed``; the score goes to the study."""
    from genlab import tracking
    from genlab.evaluate import GeneratorScorer
    from genlab.train.common import TrainingDiverged

    study = ctx.open()
    trial = study.trials[number]
    cfg = VariantCfg.model_validate(trial.user_attrs["config"])
    key = METRIC_KEY[ctx.sweep.objectives[0]]
    scorer = GeneratorScorer(ctx.params, cfg.dataset, ctx.root, [ctx.sweep.objectives[0]])
    arm = trial_arm(trial, ctx)
    run = tracking.Run.start(
        ctx.params.tracking, ctx.root, name=f"{ctx.name} #{number} seed {seed}",
        params={"trial": number, "seed": seed,
                **variant_params(cfg)},
        tags={**run_tags(ctx, parent_run, number, arm, "retrain"), "seed": str(seed)},
    )  # fmt: skip
    status, reason = "FINISHED", ""
    try:
        out = fit_and_score(
            ctx.params, cfg, ctx.root, seed, scorer, cfg.steps,
            label=f"{ctx.name} trial {number} seed {seed}",
        )  # fmt: skip
        value = out["scores"][key]
        run.log_metrics([final_row(cfg.steps, out["scores"])])
        if not math.isfinite(value):
            status, reason = "FAILED", f"{key} = {value}"
    except TrainingDiverged as e:
        value, out, status, reason = math.nan, {"seconds": math.nan}, "FAILED", str(e)
    except BaseException as e:
        run.set_tags({"failure": f"{type(e).__name__}: {e}"[:5000]})
        run.end("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
        raise
    if reason:
        run.set_tags({"failure": reason[:5000]})
    run.end(status)
    study.set_user_attr(
        f"{RETRAIN_PREFIX}{number}:{seed}",
        {"value": value if math.isfinite(value) else None, "seconds": out["seconds"],
         "failure": reason},
    )  # fmt: skip
    print(f"  retrain trial {number} [{arm_label(arm)}] seed {seed}: {key} {value:.4g}", flush=True)


def best_by_arm(study, ctx: Context) -> dict[tuple[str, str], Any]:
    """The completed trial with the lowest first objective, per arm."""
    from optuna.trial import TrialState

    best: dict[tuple[str, str], Any] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        arm = trial_arm(t, ctx)
        if arm not in best or t.values[0] < best[arm].values[0]:
            best[arm] = t
    return best


def retrain_tasks(study, ctx: Context) -> list[tuple[int, int]]:
    """(trial, seed) pairs still to run: the project seed is the trial itself."""
    done = study.user_attrs
    return [
        (t.number, seed)
        for t in best_by_arm(study, ctx).values()
        for seed in ctx.sweep.seeds
        if seed != ctx.params.seed and f"{RETRAIN_PREFIX}{t.number}:{seed}" not in done
    ]


# ---------------------------------------------------------------- processes
def _worker_main(params_path: str, overrides: list[str], name: str, job: str, args: tuple) -> None:
    """Entry point of a worker process (spawned: a fresh interpreter, its own torch threads)."""
    import torch

    from genlab.config import load_params

    _exit_with_parent(os.getppid())
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // args[-1]))
    params = load_params(params_path, overrides)
    ctx = Context(params, name, Path(params_path).resolve().parent, *args[:2])
    if job == "trials":
        run_trials(ctx, *args[2:4])
    else:
        for number, seed in args[2]:
            retrain(ctx, number, seed, args[3])


def _exit_with_parent(parent: int) -> None:
    """A worker whose `genlab sweep` died (even by SIGKILL) stops too; its running trial is then
    failed by the heartbeat check and re-queued."""
    import threading

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _in_processes(jobs: list[tuple[str, tuple]], source: tuple[str, list[str]], name: str) -> None:
    """Run each job in its own spawned process; wait for all; fail if any failed."""
    mp = multiprocessing.get_context("spawn")
    procs = [mp.Process(target=_worker_main, args=(*source, name, job, args)) for job, args in jobs]
    try:
        for p in procs:
            p.start()
        for p in procs:
            p.join()
    except BaseException:
        for p in procs:
            p.terminate()
        raise
    bad = [i for i, p in enumerate(procs) if p.exitcode != 0]
    if bad:
        raise SweepFailed(
            f"sweep {name}: worker(s) {bad} exited with an error (see above); the finished "
            "trials are kept: run the sweep again to resume"
        )


# ---------------------------------------------------------------- the command
def run_sweep(
    params,  # validated Params
    name: str,  # study name in params.sweeps
    root: Path,  # project root
    *,
    workers: int | None = None,  # processes; None: sweeps.<name>.workers
    source: tuple[str, list[str]] | None = None,  # (params path, overrides) for worker processes
) -> dict[str, Any]:
    """Run (or resume) study ``name`` to its budget, retrain each arm's best over the seeds and
    write ``reports/sweeps/<name>/``. Returns the tables' paths and the trial counts."""
    if name not in params.sweeps:
        raise ConfigError(
            f"unknown sweep {name!r}; the sweeps in params.yaml are: "
            f"{', '.join(sorted(params.sweeps)) or '(none)'}"
        )
    sweep = params.sweeps[name]
    workers = sweep.workers if workers is None else workers
    if workers < 1:
        raise ConfigError(f"--workers = {workers}; allowed: an integer >= 1")
    if workers > 1 and source is None:
        raise ConfigError("workers > 1 needs the params file path to start worker processes")
    _check_inputs(params, name, root)
    study_dir(root, name).mkdir(parents=True, exist_ok=True)
    url = storage_url(sweep, name, root)
    ctx = Context(params, name, root, f"{name}-{fingerprint(params, name, root)}", url)
    t_start = time.perf_counter()
    study = create_study(ctx)
    parent = _parent_run(study, ctx)
    try:
        _run_to_budget(ctx, study, workers, source, parent)
        study = ctx.open()
        tasks = retrain_tasks(study, ctx)
        if tasks:
            print(f"sweep {name}: retraining the best trial of each arm on seeds {sweep.seeds}")
            if workers == 1:
                for number, seed in tasks:
                    retrain(ctx, number, seed, parent)
            else:
                _in_processes(
                    [("retrain", (ctx.study_name, url, tasks[w::workers], parent, workers))
                     for w in range(workers) if tasks[w::workers]],
                    source, name,
                )  # fmt: skip
        tables = write_tables(ctx.open(), ctx)
    except BaseException as e:
        from genlab import tracking

        run = tracking.reopen(params.tracking, root, parent)
        run.set_tags({"failure": f"{type(e).__name__}: {e}"[:5000]})
        run.end("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
        raise
    _finish_parent(parent, ctx, tables, time.perf_counter() - t_start)
    return tables


def _check_inputs(params, name: str, root: Path) -> None:
    """The base's dataset must be prepared, be an image set, and have its evaluator."""
    from genlab.data import load_prepared
    from genlab.evaluate import evaluator_path

    dataset = params.variants[params.sweeps[name].base].dataset
    _, _, meta = load_prepared(root, dataset)
    if meta["kind"] != "image":
        raise ConfigError(
            f"sweeps.{name}: the base's dataset {dataset!r} is a 2-D point set; the objectives "
            "(frechet, kid) are computed on evaluator features of an image dataset "
            "(digits, mnist, fashion_mnist)"
        )
    if not evaluator_path(root, dataset).exists():
        raise FileNotFoundError(
            f"{evaluator_path(root, dataset)} does not exist; run `genlab fit-evaluator "
            f"{dataset}` first"
        )


def requeue_interrupted(study) -> list[int]:
    """Trials stopped by Ctrl-C are re-queued with their parameters, like a dead worker's."""
    import optuna

    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    again = [t for t in trials if t.state.name == "FAIL" and t.user_attrs.get("interrupted")
             and t.number not in retried]  # fmt: skip
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback()
    for t in again:
        retry(study, t)
    return [t.number for t in again]


def _run_to_budget(ctx: Context, study, workers: int, source, parent: str | None) -> None:
    """Run trials until the study holds its budget of finished trials. Trials RUNNING without a
    live worker (killed elsewhere, within the grace period) are waited for until their heartbeat
    is stale, then failed, re-queued and run."""
    import optuna

    sweep, waited = ctx.sweep, 0.0
    requeued = requeue_interrupted(study)
    queued = enqueue_arms(study, ctx)
    first = True
    while True:
        optuna.storages.fail_stale_trials(ctx.open())
        trials = study.get_trials(deepcopy=False)
        remaining = max(0, target(ctx) - len(consumed(trials)))
        running = [t.number for t in trials if t.state.name == "RUNNING"]
        if first:
            print(
                f"sweep {ctx.name} (study {ctx.study_name} in {public_url(ctx.url)}): "
                f"{target(ctx)} trials, {len(consumed(trials))} done or running, {remaining} to "
                f"run on {workers} worker(s)"
                + (f", {queued} queued by arm" if queued else "")
                + (f", interrupted trials {requeued} re-queued" if requeued else ""),
                flush=True,
            )  # fmt: skip
            first = False
        if remaining > 0:
            waited = 0.0
            if workers == 1:
                run_trials(ctx, remaining, parent)
            else:
                _in_processes(
                    [("trials", (ctx.study_name, ctx.url, n, parent, workers))
                     for n in split(remaining, workers) if n > 0],
                    source, ctx.name,
                )  # fmt: skip
            continue
        if not running or waited > sweep.grace + 3 * sweep.heartbeat:
            if running:
                print(f"sweep {ctx.name}: trials {running} are still RUNNING elsewhere")
            return
        if waited == 0.0:
            print(
                f"sweep {ctx.name}: waiting for trials {running} (RUNNING elsewhere; failed and "
                f"re-queued if silent for {sweep.grace} s)",
                flush=True,
            )
        time.sleep(sweep.heartbeat)
        waited += sweep.heartbeat


def _parent_run(study, ctx: Context) -> str | None:
    """The study's MLflow parent run: created once, its id kept in the study, reopened on resume."""
    from genlab import tracking

    run_id = study.user_attrs.get("mlflow_run")
    if run_id is not None and ctx.params.tracking.enabled:
        with contextlib.suppress(Exception):  # a store that lost the run: start a new one
            tracking.Run.start(ctx.params.tracking, ctx.root, name=ctx.name, params={},
                               tags={}, run_id=run_id)  # fmt: skip
            return run_id
    sweep = ctx.sweep
    run = tracking.Run.start(
        ctx.params.tracking, ctx.root, name=f"sweep {ctx.name}",
        params={"study": ctx.study_name, "base": sweep.base, "sampler": sweep.sampler,
                "pruner": sweep.pruner.name, "steps": sweep.steps, "seeds": sweep.seeds,
                "objectives": sweep.objectives, "target_trials": target(ctx),
                "storage": public_url(ctx.url),
                "space": json.dumps(
                    {k: v.model_dump(exclude_defaults=True) for k, v in sweep.space.items()})},
        tags={"sweep": ctx.name, "optuna.study": ctx.study_name, "kind": "sweep",
              "dataset": ctx.base.dataset, "family": ctx.base.family,
              "genlab.version": genlab.__version__},
    )  # fmt: skip
    if run.run_id is not None:
        study.set_user_attr("mlflow_run", run.run_id)
    return run.run_id


def _finish_parent(parent: str | None, ctx: Context, tables: dict[str, Any], seconds: float):
    from genlab import tracking

    run = tracking.reopen(ctx.params.tracking, ctx.root, parent)
    counts = tables["counts"]
    run.log_metrics([{"step": 0, **{f"trials_{k}": v for k, v in counts.items()},
                      "best": tables["best_value"], "sweep_seconds": seconds}])  # fmt: skip
    for key in ("trials", "table", "expected_best", "best_params", "figure", "importances"):
        if tables.get(key) is not None and Path(tables[key]).exists():
            run.log_artifact(Path(tables[key]), "sweep")
    run.end("FINISHED")


# ---------------------------------------------------------------- tables
def expected_best(values: np.ndarray, ks: list[int]) -> pd.DataFrame:
    """The distribution of the best (lowest) of k trials drawn with replacement from ``values``
    (failed trials = inf), exactly: the limit of Lucic et al.'s bootstrap. Columns: k, mean,
    median, lo (2.5%), hi (97.5%)."""
    v = np.sort(np.asarray(values, dtype=float))
    n = len(v)
    rows = []
    for k in ks:
        i = np.arange(n)  # 0-based rank; min >= v[i] iff every draw has rank >= i
        survive = ((n - i) / n) ** k
        p = survive - np.append(survive[1:], 0.0)
        cdf = 1.0 - np.append(survive[1:], 0.0)
        finite = np.isfinite(v)
        mean = float(np.sum(p[finite] * v[finite])) if p[~finite].sum() == 0 else math.inf

        q = {name: float(v[min(int(np.searchsorted(cdf, level - 1e-12)), n - 1)])
             for name, level in (("median", 0.5), ("lo", 0.025), ("hi", 0.975))}  # fmt: skip
        rows.append({"k": k, "mean": mean, **q})
    return pd.DataFrame(rows)


def bootstrap_ci(values: np.ndarray, resamples: int, seed: int) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2 or not np.all(np.isfinite(values)):
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(resamples, len(values)), replace=True).mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


def trials_frame(study, ctx: Context) -> pd.DataFrame:
    key = ctx.sweep.objectives[0]
    retried = retried_numbers(study.get_trials(deepcopy=False))
    rows = []
    for t in study.get_trials(deepcopy=False):
        loss, reg = trial_arm(t, ctx)
        last = t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None
        rows.append({
            "number": t.number, "state": t.state.name, "loss": loss, "regularizer": reg,
            key: t.values[0] if t.values else math.nan,
            **({"seconds_objective": t.values[1]} if t.values and len(t.values) > 1 else {}),
            "last_reported": last, "steps_done": t.user_attrs.get("steps_done"),
            "train_seconds": t.user_attrs.get("seconds"),
            "retried": t.number in retried,
            "fail_reason": t.user_attrs.get("fail_reason", ""),
            **{f"param.{k}": v for k, v in t.params.items() if k not in ARM_KEYS},
        })  # fmt: skip
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=TRIAL_COLUMNS)


TRIAL_COLUMNS = ["number", "state", "loss", "regularizer", "last_reported", "steps_done",
                 "train_seconds", "retried", "fail_reason"]  # fmt: skip


def write_tables(study, ctx: Context) -> dict[str, Any]:
    """trials.csv, table.csv, expected_best.csv/.png, importances.csv, best_params.yaml."""
    from optuna.trial import TrialState

    sweep, out = ctx.sweep, study_dir(ctx.root, ctx.name)
    key = sweep.objectives[0]
    df = trials_frame(study, ctx)
    if key not in df:
        df[key] = pd.Series(dtype=float)
    counted = df[~df["retried"].astype(bool)]
    _write_csv(df, out / "trials.csv")

    best = best_by_arm(study, ctx)
    finished = counted[counted["state"].isin(["COMPLETE", "PRUNED", "FAIL"])]
    rows, curves = [], []
    for arm in arms(sweep, ctx.base):
        sub = finished[(finished["loss"] == arm[0]) & (finished["regularizer"] == arm[1])]
        done = sub[sub["state"] == "COMPLETE"][key].to_numpy(dtype=float)
        row = {
            "loss": arm[0], "regularizer": arm[1], "trials": len(sub),
            "completed": int((sub["state"] == "COMPLETE").sum()),
            "pruned": int((sub["state"] == "PRUNED").sum()),
            "failed": int((sub["state"] == "FAIL").sum()),
            "best": float(done.min()) if len(done) else math.nan,
            "median": float(np.median(done)) if len(done) else math.nan,
            "iqr": float(np.subtract(*np.percentile(done, [75, 25]))) if len(done) else math.nan,
        }  # fmt: skip
        row.update(seed_stats(study, ctx, best.get(arm)))
        rows.append(row)
        pool = sub[sub["state"].isin(["COMPLETE", "FAIL"])][key].to_numpy(dtype=float)
        pool = np.where(np.isnan(pool), math.inf, pool)
        if len(pool):
            curve = expected_best(pool, list(range(1, len(pool) + 1)))
            labels = zip(["arm", *ARM_KEYS], [arm_label(arm), *arm], strict=True)
            for i, (col, value) in enumerate(labels):
                curve.insert(i, col, value)
            curves.append(curve)
    table = pd.DataFrame(rows)
    paths = {
        "dir": out, "trials": out / "trials.csv", "table": out / "table.csv",
        "expected_best": out / "expected_best.csv", "figure": out / "expected_best.png",
        "importances": out / "importances.csv", "best_params": out / "best_params.yaml",
    }  # fmt: skip
    _write_csv(table, paths["table"])
    curve_df = (
        pd.concat(curves, ignore_index=True)
        if curves
        else pd.DataFrame(columns=["arm", "k", "mean", "median", "lo", "hi"])
    )
    _write_csv(curve_df, paths["expected_best"])
    _expected_best_figure(curve_df, paths["figure"], f"{ctx.name}: {key} of the best of k trials")
    _write_csv(importances(study, ctx), paths["importances"])
    write_text(paths["best_params"], best_params_yaml(study, ctx, best))
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    counts = {
        "total": int(len(counted)),
        **{s.lower(): int((counted["state"] == s).sum()) if len(counted) else 0
           for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")},
    }  # fmt: skip
    return {
        **paths,
        "counts": counts,
        "table_frame": table,
        "best_value": min((t.values[0] for t in complete), default=math.nan),
    }


def seed_stats(study, ctx: Context, trial) -> dict[str, Any]:
    """The arm's best configuration re-measured on the study's seeds (the search's own seed is
    excluded: its score was selected as the minimum, so it is biased low): count, failures,
    mean, sample std and a 95% percentile-bootstrap interval of the mean."""
    out = {"best_trial": None, "seeds": 0, "seeds_failed": 0, "seed_mean": math.nan,
           "seed_std": math.nan, "ci_low": math.nan, "ci_high": math.nan}  # fmt: skip
    if trial is None:
        return out
    records = [study.user_attrs.get(f"{RETRAIN_PREFIX}{trial.number}:{s}") for s in ctx.sweep.seeds]
    records = [r for r in records if r is not None]
    scores = np.asarray([r["value"] for r in records if r["value"] is not None], dtype=float)
    lo, hi = bootstrap_ci(scores, ctx.sweep.bootstrap, ctx.params.seed)
    return {
        "best_trial": trial.number, "seeds": len(scores),
        "seeds_failed": len(records) - len(scores),
        "seed_mean": float(scores.mean()) if len(scores) else math.nan,
        "seed_std": float(scores.std(ddof=1)) if len(scores) > 1 else math.nan,
        "ci_low": lo, "ci_high": hi,
    }  # fmt: skip


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    write_text(path, df.to_csv(index=False, float_format="%.6g"))


def importances(study, ctx: Context) -> pd.DataFrame:
    """fANOVA importances of the parameters every completed trial has (seeded)."""
    import optuna
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        return pd.DataFrame(columns=["param", "importance"])
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=ctx.params.seed)
    try:
        imp = optuna.importance.get_param_importances(
            study, evaluator=evaluator, target=lambda t: t.values[0]
        )
    except (RuntimeError, ValueError) as e:  # e.g. every parameter constant
        print(f"sweep {ctx.name}: no parameter importances ({e})")
        return pd.DataFrame(columns=["param", "importance"])
    return pd.DataFrame({"param": list(imp), "importance": list(imp.values())})


def best_params_yaml(study, ctx: Context, best: dict) -> str:
    """The overall best and each arm's best as entries to paste under ``variants:``."""
    key = ctx.sweep.objectives[0]
    lines = [
        f"# Best configurations of sweep {ctx.name!r} (study {ctx.study_name}), by {key} after "
        f"{ctx.sweep.steps} steps at seed {ctx.params.seed}.",
        "# Paste an entry under `variants:` in params.yaml; `dvc repro` then trains, samples and "
        "evaluates it",
        "# through the pipeline and reproduces the score of the trial it came from.",
    ]
    entries: list[tuple[str, Any]] = []
    if best:
        overall = min(best.values(), key=lambda t: t.values[0])
        entries.append((f"{ctx.name}_best", overall))
    for arm, t in sorted(best.items(), key=lambda kv: kv[1].values[0]):
        entries.append((f"{ctx.name}_{arm[0]}_{arm[1]}".replace(",", "_"), t))
    body: dict[str, Any] = {}
    for label, t in entries:
        lines.append(f"# {label}: trial {t.number}, {key} {t.values[0]:.6g}")
        body[label] = json.loads(json.dumps(t.user_attrs["config"]))  # a copy: no YAML anchors
    if not body:
        lines.append("# (no completed trial yet)")
        return "\n".join(lines) + "\n"
    return "\n".join(lines) + "\n" + yaml.safe_dump(body, sort_keys=False, width=100)


def _expected_best_figure(curves: pd.DataFrame, path: Path, title: str) -> None:
    """One panel per loss, one line per regulariser: the median best score of k trials with its
    95% band, on a log axis (scores of different arms differ by orders of magnitude)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from genlab.io import atomic_path

    losses = list(dict.fromkeys(curves["loss"])) or [""]
    regs = list(dict.fromkeys(curves["regularizer"]))
    ncols = min(3, len(losses))
    nrows = math.ceil(len(losses) / ncols)
    fig = Figure(figsize=(3.4 * ncols, 2.8 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True).ravel()
    for ax, loss in zip(axes, losses, strict=False):
        for reg, c in curves[curves["loss"] == loss].groupby("regularizer", sort=False):
            c = c[np.isfinite(c["median"])]
            color = f"C{regs.index(reg) % 10}"
            ax.plot(c["k"], c["median"], marker="o", ms=3, color=color, label=reg)
            ax.fill_between(c["k"], c["lo"], c["hi"].where(np.isfinite(c["hi"])), color=color,
                            alpha=0.15, lw=0)  # fmt: skip
        ax.set_title(loss, fontsize=9)
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3, which="both")
        ax.tick_params(labelsize=7)
        ax.set_xlabel("trials k", fontsize=8)
    for ax in axes[len(losses) :]:
        ax.set_axis_off()
    axes[0].set_ylabel("best of k (median, 95%)", fontsize=8)
    if len(curves):
        axes[0].legend(fontsize=7, title="regularizer", title_fontsize=7)
    fig.suptitle(title, fontsize=10)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)


def dashboard_command(params, name: str, root: Path, port: int) -> list[str]:
    """``optuna-dashboard`` bound to 127.0.0.1 on the study's storage."""
    if name not in params.sweeps:
        raise ConfigError(
            f"unknown sweep {name!r}; the sweeps in params.yaml are: "
            f"{', '.join(sorted(params.sweeps)) or '(none)'}"
        )
    url = storage_url(params.sweeps[name], name, root)
    return ["optuna-dashboard", url, "--host", "127.0.0.1", "--port", str(port)]
