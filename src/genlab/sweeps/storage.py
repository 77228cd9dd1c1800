"""Where a study lives and how its trials are counted: the storage URL, the fingerprint that names
the study, the RDB storage with heartbeats (SQLite transactions serialised), the seeded sampler,
the pruner, and the bookkeeping of the budget (re-queued, interrupted and per-arm trials, the
retrains still to run).

The budget is exact across processes and machines that share one storage: every change to the
set of trials (creating one, queueing arms or retries, failing stale ones) happens under
``budget_lock``, a lock held by the database itself (PostgreSQL advisory lock, MySQL
``GET_LOCK``; SQLite: a lock file beside the database). ``claim_trial`` counts the trials that use
the budget and creates (or pops) the next one only while the count is below the budget: a
count-then-create that no other worker can interleave. Optuna is imported inside the functions
that need it."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import genlab
from genlab.errors import ConfigError
from genlab.paths import Paths
from genlab.sweeps.space import ARM_KEYS, NONE, SweepCfg, arms, study_cfg

Context = Any  # genlab.sweeps.context.Context (which imports this module)

STORAGE_ENV = "GENLAB_SWEEP_STORAGE"  # an Optuna storage URL that overrides params
RETRAIN_PREFIX = "retrain:"  # study user attrs "retrain:<trial>:<seed>" hold seed re-runs
CLAIM_PREFIX = "retrain-claim:"  # "retrain-claim:<trial>:<seed>": who runs it, last heartbeat


# ---------------------------------------------------------------- storage and study
def study_dir(root: Path, name: str) -> Path:
    return Paths(root).study_dir(name)


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
    sweep = study_cfg(params, name)
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
    paths = Paths(root)
    files = [paths.evaluator(base.dataset)]
    files += sorted(paths.prepared(base.dataset).rglob("*"))
    files += sorted(Path(genlab.__file__).parent.rglob("*.py"))
    for path in files:
        if path.is_file():
            h.update(path.name.encode())
            h.update(path.read_bytes())
    return h.hexdigest()[:10]


def quiet_optuna():
    """Optuna, imported, with its per-trial logging and experimental warnings silenced."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # trial outcomes: printed by the workers
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    # the workers' loop (workers.run_trials) sends heartbeats itself, around ask/tell
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
    return optuna


def make_storage(url: str, sweep: SweepCfg, on_stale: Callable | None = None):
    """An RDB storage with heartbeats: a trial whose worker died is failed after ``grace``
    seconds and re-queued (at most ``max_retry`` times)."""
    optuna = quiet_optuna()
    engine = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {}
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=sweep.max_retry)

    def stale(study, trial) -> None:
        retry(study, trial)
        if on_stale is not None:
            on_stale(trial)

    with _schema_lock(url):
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


@contextlib.contextmanager
def _schema_lock(url: str) -> Iterator[None]:
    """Machines that open a fresh server database at the same moment would all create Optuna's
    tables (PostgreSQL refuses the second CREATE TABLE); they take turns here. SQLite: nothing
    (its writers are serialised and one `genlab sweep` creates the file before its workers)."""
    if url.startswith("sqlite"):
        yield
        return
    from sqlalchemy import create_engine
    from sqlalchemy.pool import NullPool

    engine = create_engine(url, poolclass=NullPool)
    try:
        with db_lock(engine, "genlab:optuna-schema"):
            yield
    finally:
        engine.dispose()


def sqlite_lock_path(db: str) -> Path:
    """The lock file of the SQLite database ``db`` (``db_lock``)."""
    import tempfile

    digest = hashlib.sha256(str(Path(db).resolve()).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"genlab-sweep-{digest}.lock"


@contextlib.contextmanager
def db_lock(engine, name: str) -> Iterator[None]:
    """An exclusive lock called ``name``, held by the database for every process and machine that
    shares it: PostgreSQL ``pg_advisory_xact_lock`` (released when its transaction ends, also
    when the holder is killed: the server drops its connection), MySQL ``GET_LOCK``. SQLite:
    a lock file in the temporary folder named after the database's path (``sqlite_lock_path``;
    the processes that can share a SQLite file share that folder; not beside the database, which
    lives in a DVC output, and never deleted: a deleted lock file lets a second holder in).
    Waits as long as it takes; not reentrant (a thread holding it must not take it again)."""
    from sqlalchemy import text

    dialect = engine.dialect.name
    if dialect == "sqlite":
        from filelock import FileLock

        db = engine.url.database
        if not db or db == ":memory:":  # one process only: nothing to share
            yield
            return
        with FileLock(sqlite_lock_path(db)):
            yield
    elif dialect == "postgresql":
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little", signed=True)
        with engine.begin() as conn:  # committed (and the lock released) on leaving
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
            yield
    elif dialect in ("mysql", "mariadb"):
        short = hashlib.sha256(name.encode()).hexdigest()[:60]  # GET_LOCK names: <= 64 chars
        with engine.connect() as conn:
            conn.execute(text("SELECT GET_LOCK(:name, -1)"), {"name": short})
            try:
                yield
            finally:
                conn.execute(text("SELECT RELEASE_LOCK(:name)"), {"name": short})
    else:
        raise ConfigError(
            f"sweep storage {engine.url.render_as_string(hide_password=True)!r}: genlab has no "
            f"lock for {dialect!r} databases; allowed: sqlite, postgresql, mysql"
        )


def make_sampler(sweep: SweepCfg, seed: int):
    """Random: seeded per trial number, so trial k draws the same values whichever worker runs
    it and however often the study was resumed (a study is reproducible with any number of
    workers). TPE: seeded, but it learns from the trials finished so far, which with several
    workers depends on timing."""
    optuna = quiet_optuna()
    if sweep.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True)

    class PerTrialRandomSampler(optuna.samplers.RandomSampler):
        def before_trial(self, study, trial) -> None:
            self._rng.rng.seed(_seed(seed, trial.number))

    return PerTrialRandomSampler(seed=seed)


def _seed(*parts: int) -> int:
    """A 32-bit seed derived from ``parts`` (e.g. the project seed and a trial number)."""
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:4], "little")


def make_pruner(sweep: SweepCfg):
    optuna = quiet_optuna()
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


def create_study(ctx: Context):
    """Create (or load) the study and record what it is; returns it."""
    optuna = quiet_optuna()
    sweep = ctx.sweep
    directions = ["minimize"] * len(sweep.objectives)
    study = optuna.create_study(
        study_name=ctx.study_name, storage=ctx.storage, directions=directions,
        load_if_exists=True,
    )  # fmt: skip
    if study.metric_names != sweep.objectives:  # optuna-dashboard's labels, not "Objective 0"
        study.set_metric_names(list(sweep.objectives))
    if "config" not in study.user_attrs:
        study.set_user_attr("config", sweep.model_dump(mode="json"))
        study.set_user_attr("base", ctx.base.model_dump(mode="json"))
        study.set_user_attr("genlab_version", genlab.__version__)
    return study


# ---------------------------------------------------------------- budget bookkeeping
def budget_lock(ctx: Context) -> contextlib.AbstractContextManager:
    """The study's lock in its storage (``db_lock``): held while the trials are counted and one
    is created, queued, re-queued or failed as stale, so the count stays exact across workers
    and machines."""
    return db_lock(ctx.storage.engine, f"genlab:sweep:{ctx.study_name}")


def claim_trial(study, ctx: Context):
    """The next trial of the budget for this worker, or None when the study holds its budget.

    Under ``budget_lock``: trials whose worker stopped sending heartbeats are failed and
    re-queued, the trials using the budget are counted (``consumed``: finished or running,
    not a dead one that was re-queued), and while they are fewer than the budget ``study.ask()``
    pops the first queued trial (an arm of ``trials_per_arm``, a re-queued trial) or creates
    one. The trial's number, and with it what the seeded sampler draws, is fixed here. Its first
    heartbeat is recorded before the lock is released: a RUNNING trial without one would never
    count as stale (Optuna skips it), so a worker killed right after claiming would leave it
    RUNNING forever."""
    import optuna

    trial = None
    with budget_lock(ctx):
        optuna.storages.fail_stale_trials(study)
        if len(consumed(study.get_trials(deepcopy=False))) < target(ctx):
            trial = study.ask()
            ctx.storage.record_heartbeat(trial._trial_id)  # the private id, as optimize uses
    ctx.end_stale_runs()  # MLflow, after the lock
    return trial


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
    fixed, the rest left to the sampler; returns how many were queued. Call it under
    ``budget_lock`` (two machines starting together would both queue the same arms)."""
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


def requeue_interrupted(study) -> list[int]:
    """Trials stopped by Ctrl-C are re-queued with their parameters, like a dead worker's. Call
    it under ``budget_lock`` (each is re-queued once, whoever resumes first)."""
    import optuna

    trials = study.get_trials(deepcopy=False)
    retried = retried_numbers(trials)
    again = [t for t in trials if t.state.name == "FAIL" and t.user_attrs.get("interrupted")
             and t.number not in retried]  # fmt: skip
    retry = optuna.storages.RetryHeartbeatStaleTrialCallback()
    for t in again:
        retry(study, t)
    return [t.number for t in again]


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


def retrain_claims(study, ctx: Context) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The retrains still to run, split into (free, running elsewhere): a retrain is running
    elsewhere while its claim's heartbeat is younger than ``grace`` seconds (wall clocks of the
    machines must agree to well within ``grace``)."""
    attrs, now = study.user_attrs, time.time()
    free, busy = [], []
    for number, seed in retrain_tasks(study, ctx):
        claim = attrs.get(f"{CLAIM_PREFIX}{number}:{seed}")
        alive = claim is not None and now - claim["beat"] <= ctx.sweep.grace
        (busy if alive else free).append((number, seed))
    return free, busy


def claim_retrain(study, ctx: Context, owner: str) -> tuple[int, int] | None:
    """The next free retrain (trial, seed), claimed for ``owner`` under ``budget_lock`` so that
    each runs once across workers and machines; None when none is free. The claimant keeps its
    claim alive with ``beat_retrain``; a claim silent for ``grace`` seconds is free again."""
    with budget_lock(ctx):
        free, _ = retrain_claims(study, ctx)
        if not free:
            return None
        number, seed = free[0]
        study.set_user_attr(f"{CLAIM_PREFIX}{number}:{seed}", {"owner": owner, "beat": time.time()})
        return number, seed


def beat_retrain(study, task: tuple[int, int], owner: str) -> None:
    """Renew the claim on a retrain (called every ``heartbeat`` seconds while it runs)."""
    number, seed = task
    study.set_user_attr(f"{CLAIM_PREFIX}{number}:{seed}", {"owner": owner, "beat": time.time()})
