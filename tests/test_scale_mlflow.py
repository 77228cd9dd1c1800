"""An MLflow tracking server on PostgreSQL that many processes (machines) log into.

The server is the one the README's "Scaling out" section starts: ``mlflow server
--backend-store-uri postgresql://... --artifacts-destination DIR --host 127.0.0.1`` (artifacts
proxied through the server, so a client on another machine needs no shared file system). N
writer processes start together and log through ``genlab.tracking`` (a parent run with nested
runs, params, per-step metrics in batches, artifacts, as a sweep does); every run, metric value,
param and artifact is then read back from the server. A tiny project's ``genlab`` commands log
into the server the same run they log into a local SQLite store.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import tiny_params_dict, write_params

WRITERS = 8  # concurrent processes
CHILDREN = 3  # nested runs per writer
STEPS = 200  # metric steps per nested run
CHUNK = 50  # steps per log_batch call (the training driver logs at each checkpoint)
METRICS = ("loss_d", "loss_g")
EXPERIMENT = "scale"


def value(writer: int, child: int, metric: int, step: int) -> float:
    """The value a writer logs: distinct per run, metric and step (exact in float64)."""
    return writer * 1e6 + child * 1e4 + metric * 1e3 + step + 0.25


WRITER = """
import json, os, sys, time
from pathlib import Path
from types import SimpleNamespace
import mlflow, mlflow.entities, mlflow.exceptions, mlflow.tracking.registry
from genlab import tracking
from tests.test_scale_mlflow import CHILDREN, CHUNK, EXPERIMENT, METRICS, STEPS, value
url, writer, root, sync = sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
cfg = SimpleNamespace(enabled=True, uri=url, experiment=EXPERIMENT)  # a TrackingCfg's fields
(sync / f"ready.{writer}").touch()
while not (sync / "go").exists():  # start together once every process has imported mlflow
    time.sleep(0.01)
t0 = time.monotonic()
parent = tracking.Run.start(cfg, root, name=f"writer {writer}", params={"writer": writer},
                            tags={"kind": "sweep"})
children = []
for child in range(CHILDREN):
    run = tracking.Run.start(
        cfg, root, name=f"writer {writer} child {child}",
        params={"writer": writer, "child": child,
                "optimizer": {"lr": 1e-4 * (child + 1), "betas": [0.5, 0.999]}},
        tags={"mlflow.parentRunId": parent.run_id, "kind": "trial"},
    )
    for start in range(1, STEPS + 1, CHUNK):
        run.log_metrics({"step": s, **{m: value(writer, child, i, s)
                                       for i, m in enumerate(METRICS)}}
                        for s in range(start, min(start + CHUNK, STEPS + 1)))
    artifact = root / f"child{child}" / "stats.csv"
    artifact.parent.mkdir(parents=True)
    artifact.write_text(f"writer,child\\n{writer},{child}\\n")
    run.log_artifact(artifact)
    run.end()
    children.append(run.run_id)
parent.log_metrics([{"step": 0, "children": CHILDREN}])
parent.end()
print(json.dumps({"parent": parent.run_id, "children": children,
                  "seconds": time.monotonic() - t0}))
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    repo = str(Path(__file__).resolve().parents[1])  # `tests.` importable in the writers
    env["PYTHONPATH"] = os.pathsep.join([repo, *filter(None, [env.get("PYTHONPATH")])])
    return env


@pytest.fixture(scope="module")
def server(mlflow_server):
    """The session's MLflow server on PostgreSQL (tests/conftest.py) and the seconds it took to
    answer."""
    return mlflow_server, mlflow_server.startup_seconds


@pytest.mark.slow
def test_concurrent_writers_lose_no_run_metric_param_or_artifact(server, tmp_path):
    srv, start_s = server
    from mlflow import MlflowClient

    sync = tmp_path / "sync"
    sync.mkdir()
    procs = []
    for w in range(WRITERS):
        root = tmp_path / f"machine{w}"
        root.mkdir()
        cmd = [sys.executable, "-c", WRITER, srv.url, str(w), str(root), str(sync)]
        procs.append(subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while len(list(sync.glob("ready.*"))) < WRITERS and time.monotonic() < deadline:
            assert all(p.poll() is None for p in procs), "a writer exited before the start"
            time.sleep(0.1)
        t0 = time.monotonic()
        (sync / "go").touch()
        outs = [p.communicate(timeout=600) for p in procs]
        wall = time.monotonic() - t0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in procs] == [0] * WRITERS, "\n".join(e for _, e in outs)[-4000:]
    written = [json.loads(o.strip().splitlines()[-1]) for o, _ in outs]

    client = MlflowClient(tracking_uri=srv.url)
    exp = client.get_experiment_by_name(EXPERIMENT)
    # artifacts go through the server to its artifact root, not to one writer's folder
    assert exp.artifact_location.startswith("mlflow-artifacts:"), exp.artifact_location
    found = client.search_runs([exp.experiment_id], max_results=1000)
    by_id = {r.info.run_id: r for r in found}
    counts = {"writers": WRITERS, "runs_written": 0, "runs_found": len(found),
              "metric_values_written": 0, "metric_values_found": 0, "params_written": 0,
              "params_found": 0, "artifacts_written": 0, "artifacts_found": 0}  # fmt: skip
    problems: list[str] = []
    for w, out in enumerate(written):
        parent = by_id[out["parent"]]
        counts["runs_written"] += 1 + len(out["children"])
        assert parent.info.status == "FINISHED" and parent.data.params == {"writer": str(w)}
        assert parent.data.metrics == {"children": CHILDREN}
        for c, run_id in enumerate(out["children"]):
            run = by_id.get(run_id)
            if run is None:
                problems.append(f"writer {w} child {c}: run {run_id} not found")
                continue
            if (
                run.info.status != "FINISHED"
                or run.data.tags["mlflow.parentRunId"] != out["parent"]
            ):
                problems.append(f"writer {w} child {c}: {run.info.status}, {run.data.tags}")
            want = {"writer": str(w), "child": str(c), "optimizer.lr": str(1e-4 * (c + 1)),
                    "optimizer.betas": "[0.5, 0.999]"}  # fmt: skip
            counts["params_written"] += len(want)
            counts["params_found"] += sum(run.data.params.get(k) == v for k, v in want.items())
            for i, m in enumerate(METRICS):
                history = client.get_metric_history(run_id, m)
                got = sorted((h.step, h.value) for h in history)
                expected = [(s, value(w, c, i, s)) for s in range(1, STEPS + 1)]
                counts["metric_values_written"] += len(expected)
                counts["metric_values_found"] += len(set(got) & set(expected))
                if got != expected:
                    problems.append(f"writer {w} child {c} {m}: {len(got)} values")
            counts["artifacts_written"] += 1
            files = [(a.path, a.file_size) for a in client.list_artifacts(run_id)]
            text = f"writer,child\n{w},{c}\n"
            stored = srv.artifacts / exp.experiment_id / run_id / "artifacts" / "stats.csv"
            ok = files == [("stats.csv", len(text))] and stored.read_text() == text
            counts["artifacts_found"] += ok
            if not ok:
                problems.append(f"writer {w} child {c}: artifacts {files}")
    counts["server_start_s"] = round(start_s, 1)
    counts["writers_wall_s"] = round(wall, 1)
    counts["writer_s_max"] = round(max(o["seconds"] for o in written), 1)
    print("mlflow server, concurrent writers:", counts)
    assert not problems, problems
    assert counts["runs_found"] == counts["runs_written"] == WRITERS * (1 + CHILDREN)
    for kind in ("metric_values", "params", "artifacts"):
        assert counts[f"{kind}_found"] == counts[f"{kind}_written"], counts
    assert counts["metric_values_written"] == WRITERS * CHILDREN * STEPS * len(METRICS)
    stored = list((srv.artifacts).rglob("stats.csv"))
    assert len(stored) == WRITERS * CHILDREN  # in the server's artifact root
    assert not list(tmp_path.glob("machine*/mlartifacts"))  # nothing beside the writers


def genlab(root: Path, *args: str) -> None:
    """``genlab --params root/params.yaml ARGS``, in this process (the command line's own entry
    point; a process per command would cost seconds of imports each)."""
    from genlab.cli import main

    assert main(["--params", str(root / "params.yaml"), *args]) == 0


@pytest.mark.slow
def test_genlab_commands_log_their_run_into_the_server(server, tmp_path):
    """What tests/test_tracking.py checks on a local SQLite store, on the server."""
    srv, _ = server
    from mlflow import MlflowClient

    raw = tiny_params_dict(tracking=True)
    raw["tracking"] = {"enabled": True, "uri": srv.url, "experiment": "cli"}
    write_params(tmp_path, raw)
    for args in (("prepare", "ring8"), ("fit-evaluator", "ring8"), ("train", "ring_gan"),
                 ("sample", "ring_gan"), ("evaluate", "ring_gan")):  # fmt: skip
        genlab(tmp_path, *args)

    client = MlflowClient(tracking_uri=srv.url)
    exp = client.get_experiment_by_name("cli")
    (run,) = client.search_runs([exp.experiment_id])
    run_id = json.loads((tmp_path / "models/ring_gan/run.json").read_text())["run_id"]
    assert run.info.run_id == run_id and run.info.status == "FINISHED"
    p = run.data.params
    assert p["loss"] == "minimax" and p["optimizer.lr"] == "0.0002" and p["seed"] == "0"
    tags = run.data.tags
    assert tags["dataset"] == "ring8" and tags["family"] == "gan"
    assert tags["dvc.stage"] == "train@ring_gan"
    scores = json.loads((tmp_path / "metrics/ring_gan.json").read_text())
    logged = {k: run.data.metrics.get(f"eval.{k}") for k in scores}
    assert logged == pytest.approx(scores) and "modes_captured" in scores  # evaluate's numbers
    history = client.get_metric_history(run_id, "loss_d")
    assert [m.step for m in history] == [1, 2, 3, 4]  # log_every = 1
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"model.pt", "curves.png", "ring_gan.csv", "samples"} <= artifacts
    assert "state.pt" not in artifacts
    samples = {a.path for a in client.list_artifacts(run_id, "samples")}
    assert "samples/grid.png" in samples
    model_pt = Path(client.download_artifacts(run_id, "model.pt", str(tmp_path / "dl")))
    assert model_pt.read_bytes() == (tmp_path / "models/ring_gan/model.pt").read_bytes()
    (output,) = client.get_run(run_id).outputs.model_outputs
    model = client.get_logged_model(output.model_id)
    assert (model.name, model.source_run_id, model.status) == ("ring_gan", run_id, "READY")
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "mlartifacts").exists()
