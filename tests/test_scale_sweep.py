"""One Optuna study on a PostgreSQL storage, run by two machines at once (issue 16).

Two project clones (same params, same prepared data and evaluator) stand for two machines; each
runs ``genlab sweep tiny --workers 2`` with ``GENLAB_SWEEP_STORAGE`` on one PostgreSQL database
and ``MLFLOW_TRACKING_URI`` on one MLflow server (itself on PostgreSQL), as a user would:

    GENLAB_SWEEP_STORAGE=postgresql://user@host/optuna \\
    MLFLOW_TRACKING_URI=http://host:5000 genlab sweep tiny --workers 2

The study gets exactly its budget (workers claim trials under a lock held by the database), no
trial twice, none left RUNNING; the per-arm table equals the one SQLite gives on one machine. A
machine killed with SIGKILL mid-trial loses its running trials; its rerun re-queues and finishes
them after the heartbeat grace period.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from genlab import sweeps as sw
from genlab import tracking
from genlab.cli import main
from genlab.config import load_params
from tests.test_sweep import prepared, project, sweep_raw  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow

GENLAB = Path(sys.executable).with_name("genlab")
TIMEOUT = 300  # seconds a sweep may take here (about 60 on 2 busy cores)
TIMING = ["train_seconds"]  # trials.csv columns that measure time, not results


def sweep_env(storage: str, tracking_uri: str) -> dict[str, str]:
    return dict(
        os.environ, GENLAB_SWEEP_STORAGE=storage, MLFLOW_TRACKING_URI=tracking_uri,
        OMP_NUM_THREADS="1", MLFLOW_DISABLE_TELEMETRY="true", DVC_NO_ANALYTICS="1",
    )  # fmt: skip


def start_sweep(params_file: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    """``genlab sweep tiny --workers 2`` in its own process group (its workers join it)."""
    with open(log, "ab") as out:
        return subprocess.Popen(
            [str(GENLAB), "--params", str(params_file), "sweep", "tiny", "--workers", "2"],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip


def finish(procs: list[subprocess.Popen], logs: list[Path]) -> None:
    """Wait for every sweep; kill the groups of those still running at the deadline."""
    deadline = time.monotonic() + TIMEOUT
    try:
        for proc in procs:
            proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    for proc, log in zip(procs, logs, strict=True):
        assert proc.returncode == 0, log.read_text()[-4000:]


def states(postgres, db: str) -> dict[str, int]:
    rows = postgres.query(db, "SELECT state, count(*) FROM trials GROUP BY state")
    return {state: n for state, n in rows}


def the_study(url: str, root: Path, params):
    """(Context, study) of the one study in storage ``url`` (its name read from the storage, not
    recomputed: the fingerprint hashes genlab's sources, which may change while tests run)."""
    import optuna

    (name,) = optuna.get_all_study_names(url)  # both machines computed the same fingerprint
    assert name.startswith("tiny-")
    ctx = sw.Context(params, "tiny", root, name, url)
    return ctx, ctx.open()


def children_runs(params, root: Path, study_name: str) -> tuple:
    """The study's MLflow parent run (exactly one, whichever machine started first) and its
    nested runs, read from the server."""
    runs = tracking.runs(params.tracking, root)
    (parent,) = [r for r in runs if r.data.tags.get("kind") == "sweep"
                 and r.data.tags.get("optuna.study") == study_name]  # fmt: skip
    kids = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    return parent, kids


def test_two_machines_run_exactly_the_budget_and_match_one_sqlite_machine(
    prepared,  # noqa: F811 (the fixture imported above)
    postgres,
    mlflow_server,
    tmp_path,
    monkeypatch,
):
    raw = sweep_raw(trials_per_arm=1, seeds=[1])  # 4 arms x 1 = 4 trials, no pruning
    n = 4
    # the reference: one machine, SQLite storage, local MLflow store
    solo, solo_file = project(prepared, tmp_path / "solo", raw)
    assert main(["--params", str(solo_file), "sweep", "tiny"]) == 0

    storage = postgres.create_database("scale_sweep_two")
    env = sweep_env(storage, mlflow_server.url)
    machines = [project(prepared, tmp_path / f"machine{i}", raw) for i in (1, 2)]
    logs = [root / "sweep.log" for root, _ in machines]
    t0 = time.monotonic()
    procs = [start_sweep(f, env, log) for (_, f), log in zip(machines, logs, strict=True)]
    finish(procs, logs)
    seconds = time.monotonic() - t0

    monkeypatch.setenv("GENLAB_SWEEP_STORAGE", storage)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    root, params_file = machines[0]
    params = load_params(params_file)
    ctx, study = the_study(storage, root, params)
    trials = study.get_trials()
    assert states(postgres, "scale_sweep_two") == {"COMPLETE": n}  # none RUNNING or WAITING
    assert sorted(t.number for t in trials) == list(range(n))
    arms = [sw.trial_arm(t, ctx) for t in trials]
    assert sorted(arms) == sorted(sw.arms(ctx.sweep, ctx.base))  # each arm once
    assert len({json.dumps(t.params, sort_keys=True) for t in trials}) == n  # none duplicated
    logged = "".join(log.read_text() for log in logs)
    assert sum(f"  trial {k:>3} [" in logged for k in range(n)) == n  # each ran on one machine
    assert all(logged.count(f"  trial {k:>3} [") == 1 for k in range(n))

    # the same study on one machine with SQLite: trial k drew the same values and scored the same
    solo_db = f"sqlite:///{solo / 'reports/sweeps/tiny/study.db'}"
    _, solo_study = the_study(solo_db, solo, load_params(solo_file))
    assert [t.params for t in solo_study.get_trials()] == [t.params for t in trials]
    assert [t.values for t in solo_study.get_trials()] == [t.values for t in trials]
    reference = pd.read_csv(solo / "reports/sweeps/tiny/table.csv")
    reference_trials = pd.read_csv(solo / "reports/sweeps/tiny/trials.csv").drop(columns=TIMING)
    for machine, _ in machines:  # every machine's tables, all columns (no timing column there)
        pd.testing.assert_frame_equal(pd.read_csv(machine / "reports/sweeps/tiny/table.csv"),
                                      reference)  # fmt: skip
        got = pd.read_csv(machine / "reports/sweeps/tiny/trials.csv").drop(columns=TIMING)
        pd.testing.assert_frame_equal(got, reference_trials)
    assert (reference["seeds"] == 1).all()  # each arm's best retrained on seed 1

    # MLflow: one parent run; each trial's and each retrain's nested run once, with its values
    parent, kids = children_runs(params, root, ctx.study_name)
    client = tracking._client(mlflow_server.url)
    exp = client.get_experiment(parent.info.experiment_id)
    assert exp.artifact_location.startswith("mlflow-artifacts:"), exp.artifact_location
    trial_runs = {int(r.data.tags["optuna.trial"]): r for r in kids
                  if r.data.tags["kind"] == "trial"}  # fmt: skip
    assert sorted(int(r.data.tags["optuna.trial"]) for r in kids
                  if r.data.tags["kind"] == "trial") == list(range(n))  # fmt: skip
    for t in trials:
        run = trial_runs[t.number]
        assert run.info.status == "FINISHED" and run.data.tags["optuna.state"] == "COMPLETE"
        assert float(run.data.params["optimizer.lr"]) == pytest.approx(t.params["optimizer.lr"])
        assert run.data.params["variant.loss"] == t.params["loss"]
        assert run.data.metrics["final.frechet"] == pytest.approx(t.values[0], rel=1e-12)
        history = client.get_metric_history(run.info.run_id, "frechet")
        assert [m.step for m in history] == [2, 4]
    retrains = [r for r in kids if r.data.tags["kind"] == "retrain"]
    assert sorted((r.data.tags["optuna.trial"], r.data.tags["seed"]) for r in retrains) == sorted(
        (str(number), "1") for number in reference["best_trial"]
    )  # each retrain ran once, on one machine
    assert all(r.info.status == "FINISHED" for r in retrains)
    assert parent.info.status == "FINISHED" and parent.data.metrics["trials_complete"] == n
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "sweep")}
    assert {"sweep/table.csv", "sweep/trials.csv", "sweep/expected_best.png"} <= artifacts
    stored = list(mlflow_server.artifacts.rglob("table.csv"))
    assert stored and pd.read_csv(stored[0]).equals(reference)
    print(f"\ntwo machines x 2 workers: {n} trials requested, {states(postgres, 'scale_sweep_two')}"
          f", 0 duplicated, 0 left RUNNING, {seconds:.1f} s")  # fmt: skip


def running(postgres, db: str, with_run: bool = True) -> list[int]:
    """Numbers of the RUNNING trials (that already have their MLflow run)."""
    sql = "SELECT t.number FROM trials t WHERE t.state = 'RUNNING'"
    if with_run:
        sql = (
            "SELECT t.number FROM trials t JOIN trial_user_attributes a ON a.trial_id = "
            "t.trial_id WHERE t.state = 'RUNNING' AND a.key = 'mlflow_run'"
        )
    try:
        rows = postgres.query(db, sql)
    except Exception:  # noqa: BLE001 (tables not created yet)
        return []
    return sorted(number for (number,) in rows)


def test_a_machine_killed_mid_trial_loses_nothing_once_it_reruns(
    prepared,  # noqa: F811 (the fixture imported above)
    postgres,
    mlflow_server,
    tmp_path,
    monkeypatch,
):
    raw = sweep_raw(trials_per_arm=None, trials=3, steps=100, report_every=50, seeds=[],
                    heartbeat=1, grace=3)  # fmt: skip
    storage = postgres.create_database("scale_sweep_kill")
    env = sweep_env(storage, mlflow_server.url)
    root, params_file = project(prepared, tmp_path / "machine1", raw)
    log = root / "sweep.log"
    proc = start_sweep(params_file, env, log)
    lost: list[int] = []
    try:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline and not lost:
            time.sleep(0.3)
            lost = running(postgres, "scale_sweep_kill")
            assert proc.poll() is None, log.read_text()[-4000:]
        assert lost, "the sweep never started a trial"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the sweep and its workers: kill -9
        proc.wait()
    time.sleep(1.0)
    lost = running(postgres, "scale_sweep_kill", with_run=False)  # what the kill left RUNNING
    assert lost

    t0 = time.monotonic()
    finish([start_sweep(params_file, env, log)], [log])
    seconds = time.monotonic() - t0
    with_runs = running(postgres, "scale_sweep_kill")  # (none now: all finished)
    assert with_runs == []

    monkeypatch.setenv("GENLAB_SWEEP_STORAGE", storage)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
    params = load_params(params_file)
    ctx, study = the_study(storage, root, params)
    trials = study.get_trials()
    requeued = [t for t in trials if t.system_attrs.get("failed_trial") in lost]
    for k in lost:
        assert trials[k].state.name == "FAIL"
        (again,) = [t for t in requeued if t.system_attrs["failed_trial"] == k]
        assert again.state.name == "COMPLETE" and again.params == trials[k].params
    assert len(sw.consumed(trials)) == 3 and len(trials) == 3 + len(lost)
    counts = states(postgres, "scale_sweep_kill")
    assert counts == {"COMPLETE": 3, "FAIL": len(lost)}  # none RUNNING or WAITING
    table = pd.read_csv(root / "reports/sweeps/tiny/table.csv")
    assert table["trials"].sum() == 3 and table["completed"].sum() == 3
    parent, kids = children_runs(params, root, ctx.study_name)
    for k in [k for k in lost if "mlflow_run" in trials[k].user_attrs]:
        # the lost trials' runs (those it had started) were closed by whoever found them stale
        (run,) = [r for r in kids if r.data.tags["optuna.trial"] == str(k)]
        assert run.info.status == "FAILED" and "heartbeat" in run.data.tags["failure"]
    assert sorted(r.data.tags["optuna.trial"] for r in kids if r.info.status == "FINISHED") == \
        sorted(str(t.number) for t in trials if t.state.name == "COMPLETE")  # fmt: skip
    print(f"\nkill -9: {len(lost)} trial(s) lost {lost}, {len(requeued)} re-queued, "
          f"{sum(t.state.name == 'COMPLETE' for t in requeued)} finished; rerun {seconds:.1f} s; "
          f"final {counts}")  # fmt: skip


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_the_storage_lock_is_exclusive_across_engines(kind, tmp_path, request):
    """``db_lock`` on two engines (two machines): the second waits until the first lets go."""
    import threading

    from sqlalchemy import create_engine

    from genlab.sweeps.storage import db_lock

    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / 'study.db'}"
    else:
        url = request.getfixturevalue("postgres").create_database("scale_sweep_lock")
    engines = [create_engine(url) for _ in range(2)]
    events: list[str] = []
    held = threading.Event()

    def second() -> None:
        held.wait()
        with db_lock(engines[1], "genlab:sweep:x"):
            events.append("second")

    thread = threading.Thread(target=second)
    thread.start()
    try:
        with db_lock(engines[0], "genlab:sweep:x"):
            held.set()
            time.sleep(1.0)  # the second engine is waiting meanwhile
            events.append("first")
        with db_lock(engines[0], "genlab:sweep:other"):  # another name: not blocked
            pass
    finally:
        thread.join(timeout=30)
        for engine in engines:
            engine.dispose()
    assert events == ["first", "second"]
