"""Running a study: ``run_sweep`` tops the study up to its budget in one or more worker processes
(spawned; each exits with its parent), waits for trials running elsewhere, retrains each arm's
best over the seeds, writes the tables and keeps the study's MLflow parent run; and
``dashboard_command``.

Many machines: each runs ``genlab sweep STUDY --workers N`` on one shared storage. A worker
claims one trial at a time (``storage.claim_trial``: count-then-create under a lock held by the
database), so the study gets exactly its budget whoever runs what; retrains are claimed the same
way (``storage.claim_retrain``). A killed machine's trials stop sending heartbeats: after
``grace`` seconds any worker fails them and re-queues them with their parameters."""

from __future__ import annotations

import contextlib
import functools
import json
import multiprocessing
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import genlab
from genlab.errors import ConfigError, SweepFailed
from genlab.sweeps.context import Context
from genlab.sweeps.objective import Objective, TrialFailed, retrain
from genlab.sweeps.space import SweepCfg, study_cfg
from genlab.sweeps.storage import (
    beat_retrain,
    budget_lock,
    claim_retrain,
    claim_trial,
    consumed,
    create_study,
    enqueue_arms,
    fingerprint,
    public_url,
    requeue_interrupted,
    retrain_claims,
    storage_url,
    study_dir,
    target,
)
from genlab.sweeps.tables import write_tables


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
    sweep = study_cfg(params, name)  # an unknown or invalid study: ConfigError
    workers = sweep.workers if workers is None else workers
    if workers < 1:
        raise ConfigError(f"--workers = {workers}; allowed: an integer >= 1")
    if workers > 1 and source is None:
        raise ConfigError("workers > 1 needs the params file path to start worker processes")
    _check_inputs(params, sweep, name, root)
    study_dir(root, name).mkdir(parents=True, exist_ok=True)
    url = storage_url(sweep, name, root)
    ctx = Context(params, name, root, f"{name}-{fingerprint(params, name, root)}", url)
    t_start = time.perf_counter()
    study = create_study(ctx)
    with budget_lock(ctx):  # one parent run per study, also when machines start together
        parent = _parent_run(study, ctx)
    try:
        _run_to_budget(ctx, study, workers, source, parent)
        _retrain_bests(ctx, workers, source, parent)
        tables = write_tables(ctx.open(), ctx)
    except BaseException as e:
        from genlab import tracking

        run = tracking.reopen(params.tracking, root, parent)
        run.set_tags({"failure": f"{type(e).__name__}: {e}"[:5000]})
        run.end("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
        raise
    _finish_parent(parent, ctx, tables, time.perf_counter() - t_start)
    return tables


def dashboard_command(params, name: str, root: Path, port: int) -> list[str]:
    """``optuna-dashboard`` bound to 127.0.0.1 on the study's storage, which must exist (a SQLite
    file that ``genlab sweep`` has not yet written is a FileNotFoundError, exit 2)."""
    url = storage_url(study_cfg(params, name), name, root)
    db = Path(url.removeprefix("sqlite:///").split("?")[0])
    if url.startswith("sqlite:///") and not db.is_file():
        raise FileNotFoundError(
            f"study {name!r} has no storage yet ({db} does not exist); run `genlab sweep {name}` "
            "first"
        )
    return ["optuna-dashboard", url, "--host", "127.0.0.1", "--port", str(port)]


def _check_inputs(params, sweep: SweepCfg, name: str, root: Path) -> None:
    """The base's dataset must be prepared, be an image set, and have its evaluator."""
    from genlab.data import field_kind, load_prepared
    from genlab.evaluate import evaluator_path

    dataset = params.variants[sweep.base].dataset
    _, _, meta = load_prepared(root, dataset)
    if field_kind(meta) != "image":
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


def _run_to_budget(ctx: Context, study, workers: int, source, parent: str | None) -> None:
    """Run trials until the study holds its budget of finished trials. Trials RUNNING elsewhere
    are waited for as long as they run (their best may be an arm's best: the tables wait for
    them); one whose worker died stops sending heartbeats, and after ``grace`` seconds it is
    failed, re-queued and run here (every trial has a heartbeat from its claim on)."""
    import optuna

    sweep, waited = ctx.sweep, 0.0
    with budget_lock(ctx):
        requeued = requeue_interrupted(study)
        queued = enqueue_arms(study, ctx)
    first = True
    while True:
        with budget_lock(ctx):
            optuna.storages.fail_stale_trials(study)
        ctx.end_stale_runs()  # MLflow, after the lock
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
        if not running:
            return
        if waited == 0.0:
            print(
                f"sweep {ctx.name}: waiting for trials {running} (RUNNING elsewhere; failed and "
                f"re-queued if silent for {sweep.grace} s)",
                flush=True,
            )
        time.sleep(sweep.heartbeat)
        waited += sweep.heartbeat


def _retrain_bests(ctx: Context, workers: int, source, parent: str | None) -> None:
    """Retrain each arm's best over the seeds: workers claim the free retrains one by one, then
    this machine waits for those running elsewhere (and runs them if their claims go stale)."""
    sweep, announced = ctx.sweep, False
    while True:
        free, busy = retrain_claims(ctx.open(), ctx)
        if free:
            if not announced:
                print(f"sweep {ctx.name}: retraining the best trial of each arm on seeds "
                      f"{sweep.seeds}", flush=True)  # fmt: skip
                announced = True
            n = min(workers, len(free))
            if n == 1:
                run_retrains(ctx, parent)
            else:
                _in_processes([("retrain", (ctx.study_name, ctx.url, parent, n))] * n,
                              source, ctx.name)  # fmt: skip
            continue
        if not busy:
            return
        time.sleep(sweep.heartbeat)


# ---------------------------------------------------------------- one worker's trials
def run_trials(ctx: Context, n: int, parent_run: str | None) -> None:
    """One worker: claim a trial of the shared study (``claim_trial``, exact across machines),
    run it while sending heartbeats, tell the storage its outcome; at most ``n`` trials, and
    none once the study holds its budget. ``TrialFailed`` fails the trial and the worker goes
    on; any other exception fails it and stops the worker."""
    import optuna
    from optuna.trial import TrialState

    study = ctx.open()
    objective = Objective(ctx, parent_run)
    for _ in range(n):
        trial = claim_trial(study, ctx)
        if trial is None:
            return
        values, state = None, TrialState.COMPLETE
        beat = functools.partial(ctx.storage.record_heartbeat, trial._trial_id)  # as optimize does
        with _beating(beat, ctx.sweep.heartbeat):
            try:
                values = objective(trial)
            except optuna.TrialPruned:
                state = TrialState.PRUNED
            except TrialFailed:
                state = TrialState.FAIL
            except BaseException:
                study.tell(trial, state=TrialState.FAIL)
                raise
        # state None on success: Optuna records a NaN value as FAIL (as Study.optimize did)
        done = state if state != TrialState.COMPLETE else None
        _print_trial(study, study.tell(trial, values, state=done))


def run_retrains(ctx: Context, parent_run: str | None) -> None:
    """One worker: claim free retrains (``claim_retrain``) and run them until none is free."""
    study, owner = ctx.open(), f"{socket.gethostname()}:{os.getpid()}"
    while (task := claim_retrain(study, ctx, owner)) is not None:
        with _beating(lambda t=task: beat_retrain(study, t, owner), ctx.sweep.heartbeat):
            retrain(ctx, *task, parent_run)


@contextlib.contextmanager
def _beating(beat: Callable[[], None], interval: float) -> Iterator[None]:
    """Call ``beat`` now and every ``interval`` seconds from a thread, while inside."""
    stop = threading.Event()

    def loop() -> None:
        while True:
            try:
                beat()
            except Exception as e:  # noqa: BLE001 - a dropped connection: keep beating
                print(f"genlab sweep: heartbeat failed ({type(e).__name__}: {e}); retrying",
                      flush=True)  # fmt: skip
            if stop.wait(interval):
                return

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _print_trial(study, trial) -> None:
    value = "" if trial.values is None else " ".join(f"{v:.4g}" for v in trial.values)
    reason = trial.user_attrs.get("fail_reason", "")
    steps = trial.user_attrs.get("steps_done", "")
    print(
        f"  trial {trial.number:>3} [{trial.user_attrs.get('arm', '?')}] {trial.state.name}"
        f" {value} (steps {steps}) {reason}".rstrip(),
        flush=True,
    )


def split(n: int, workers: int) -> list[int]:
    """``n`` trials over ``workers`` as evenly as possible (sum is exactly n)."""
    return [n // workers + (i < n % workers) for i in range(workers)]


# ---------------------------------------------------------------- processes
def _worker_main(params_path: str, overrides: list[str], name: str, job: str, args: tuple) -> None:
    """Entry point of a worker process (spawned: a fresh interpreter, its own torch threads)."""
    from genlab.config import load_params
    from genlab.runtime import share_cores, use_threads

    _exit_with_parent(os.getppid())
    share_cores(args[-1])
    params = load_params(params_path, overrides)
    use_threads(params.threads)
    ctx = Context(params, name, Path(params_path).resolve().parent, *args[:2])
    if job == "trials":
        run_trials(ctx, *args[2:4])
    else:
        run_retrains(ctx, args[2])


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


# ---------------------------------------------------------------- the MLflow parent run
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
