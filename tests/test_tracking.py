"""MLflow tracking: store location, one run per variant with flat params, tags and metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from genlab import tracking
from genlab.cli import main
from genlab.config import TrackingCfg, validate_params
from genlab.data import load_prepared
from genlab.errors import ConfigError
from genlab.evaluate import evaluate_variant, fit_evaluator_stage
from genlab.sample import sample_variant
from genlab.train.loop import train_variant
from tests.conftest import free_port, serve_and_fetch, tiny_params_dict, write_params


def test_store_resolves_against_project_root_and_dvc_temp_copies(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    root = tmp_path / "proj"
    assert tracking.tracking_uri("sqlite:///mlflow.db", root) == f"sqlite:///{root}/mlflow.db"
    temp_copy = root / ".dvc" / "tmp" / "exps" / "tmpabc123"
    assert tracking.tracking_uri("sqlite:///mlflow.db", temp_copy) == (
        f"sqlite:///{root}/mlflow.db"
    )
    assert tracking.tracking_uri("sqlite:////abs/x.db", root) == "sqlite:////abs/x.db"
    assert tracking.tracking_uri("http://127.0.0.1:5000", root) == "http://127.0.0.1:5000"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql://u@h/db")
    assert tracking.tracking_uri("sqlite:///mlflow.db", root) == "postgresql://u@h/db"


def test_flatten():
    assert tracking.flatten({"a": 1, "b": {"c": 2, "d": {"e": 3}}, "f": {}}) == {
        "a": 1, "b.c": 2, "b.d.e": 3, "f": {},
    }  # fmt: skip


def test_one_run_per_variant_with_params_tags_metrics_and_evaluation(tiny_project):
    root, _ = tiny_project
    params = validate_params(tiny_params_dict(tracking=True))
    tracking.init_store(params.tracking, root)
    fit_evaluator_stage(params, "digits", root)
    train_variant(params, "dcgan_ns", root)
    sample_variant(params, "dcgan_ns", root)
    metrics = evaluate_variant(params, "dcgan_ns", root)

    (run,) = tracking.runs(params.tracking, root)
    run_id = json.loads((root / "models/dcgan_ns/run.json").read_text())["run_id"]
    assert run.info.run_id == run_id and run.info.status == "FINISHED"
    p = run.data.params
    assert p["loss"] == "nonsaturating" and p["optimizer.lr"] == "0.0002"
    assert p["optimizer.betas"] == "[0.5, 0.999]" and p["seed"] == "0"
    tags = run.data.tags
    assert tags["dataset"] == "digits" and tags["family"] == "gan"
    assert tags["dvc.stage"] == "train@dcgan_ns" and len(tags["git.commit"]) > 0
    assert run.data.metrics["eval.frechet"] == pytest.approx(metrics["frechet"])

    client = tracking._client(tracking.tracking_uri(params.tracking.uri, root))
    history = client.get_metric_history(run_id, "loss_d")
    assert [m.step for m in history] == [1, 2, 3, 4]  # log_every = 1
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"model.pt", "curves.png", "dcgan_ns.csv", "samples"} <= artifacts
    assert "state.pt" not in artifacts
    assert {a.path for a in client.list_artifacts(run_id, "samples")} == {
        "samples/grid.png", "samples/interpolation.png",
    }  # fmt: skip
    got = client.get_run(run_id)
    (output,) = got.outputs.model_outputs  # the generator, a LoggedModel
    model = client.get_logged_model(output.model_id)
    assert (model.name, model.source_run_id, model.status) == ("dcgan_ns", run_id, "READY")
    (data,) = got.inputs.dataset_inputs
    _, _, meta = load_prepared(root, "digits")
    assert data.dataset.name == "digits" and data.dataset.source == "data/prepared/digits"
    assert data.dataset.digest == tracking.dataset_digest(meta)
    profile = {"n_train": meta["n_train"], "n_test": meta["n_test"]}
    assert json.loads(data.dataset.profile) == profile


def test_disabled_tracking_writes_no_store(tiny_project):
    root, params = tiny_project
    out = train_variant(params, "ring_gan", root)
    assert out["run_id"] is None and not (root / "mlflow.db").exists()


@pytest.mark.slow
def test_genlab_ui_serves_the_store_on_localhost(tmp_path):
    raw = tiny_params_dict(tracking=True)
    params_file = write_params(tmp_path, raw)
    tracking.init_store(validate_params(raw).tracking, tmp_path)
    port = free_port()
    body = serve_and_fetch(
        ["--params", str(params_file), "ui", "--port", str(port)],
        f"http://127.0.0.1:{port}/ajax-api/2.0/mlflow/experiments/search",
        data=b'{"max_results": 10}',
    )
    assert '"tiny"' in body


# ---------------------------------------------------------------- the store
@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """(cfg, root): one SQLite store for the unit tests below (creating one takes seconds)."""
    root = tmp_path_factory.mktemp("store")
    cfg = TrackingCfg(uri="sqlite:///mlflow.db", experiment="unit")
    tracking.init_store(cfg, root)
    return cfg, root


RACE = """
import os, sys, time
from pathlib import Path
from types import SimpleNamespace
import mlflow
from genlab import tracking
root, sync = Path(sys.argv[1]), Path(sys.argv[2])
(sync / f"ready.{os.getpid()}").touch()
while not (sync / "go").exists():  # start together once every process has imported mlflow
    time.sleep(0.01)
cfg = SimpleNamespace(enabled=True, uri="sqlite:///mlflow.db", experiment="race")
tracking.Run.start(cfg, root, name="r", params={}, tags={}).end()
"""


@pytest.mark.slow
def test_processes_opening_a_fresh_store_at_once_all_succeed(tmp_path):
    """MLflow creates a new SQLite store's tables when a process first opens it; without the
    lock, parallel first use fails (alembic: "table _alembic_tmp_... already exists") and the
    store stays broken."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    root, sync = tmp_path / "proj", tmp_path / "sync"
    root.mkdir()
    sync.mkdir()

    def start():
        cmd = [sys.executable, "-c", RACE, str(root), str(sync)]
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)  # fmt: skip

    procs = [start() for _ in range(8)]
    deadline = time.monotonic() + 300
    while len(list(sync.glob("ready.*"))) < 8 and time.monotonic() < deadline:
        assert all(p.poll() is None for p in procs), "a process exited before the start"
        time.sleep(0.1)
    (sync / "go").touch()
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, "\n".join(outs)[-3000:]
    late = start()
    out = late.communicate(timeout=300)[0]
    assert late.returncode == 0, out[-3000:]
    cfg = TrackingCfg(uri="sqlite:///mlflow.db", experiment="race")
    assert len(tracking.runs(cfg, root)) == 9
    assert (root / "mlflow.db.lock").exists()


def test_an_unsupported_store_is_a_config_error_before_anything_is_written(
    tmp_path, monkeypatch, capsys
):
    cfg = TrackingCfg(uri="nope://x", experiment="e")
    with pytest.raises(ConfigError) as err:
        tracking.check_store(cfg, tmp_path)
    message = str(err.value)
    assert message.startswith("tracking.uri = 'nope://x': MLflow has no store for the scheme")
    assert "sqlite:///mlflow.db" in message and "http://host:port" in message
    assert "postgresql://" in message
    with pytest.raises(ConfigError, match="nope://x"):
        tracking.init_store(cfg, tmp_path)
    with pytest.raises(ConfigError, match="nope://x"):
        tracking.Run.start(cfg, tmp_path, name="r", params={}, tags={})
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "nope://y")
    with pytest.raises(ConfigError, match="^MLFLOW_TRACKING_URI .* = 'nope://y'"):
        tracking.check_store(cfg, tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    assert tracking.check_store(cfg.model_copy(update={"enabled": False}), tmp_path) is None
    assert list(tmp_path.iterdir()) == []

    raw = tiny_params_dict(tracking=True)
    raw["tracking"]["uri"] = "nope://x"
    write_params(tmp_path, raw)
    monkeypatch.setattr(os, "execv", lambda *a: pytest.fail("a server was started"))
    assert main(["--params", str(tmp_path / "params.yaml"), "ui"]) == 2
    assert "genlab: error: tracking.uri = 'nope://x'" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_an_http_store_without_a_server_is_a_quick_config_error(tmp_path):
    cfg = TrackingCfg(uri=f"http://127.0.0.1:{free_port()}", experiment="e")
    t0 = time.monotonic()
    with pytest.raises(ConfigError, match="MLflow cannot open the store.*start the server"):
        tracking.Run.start(cfg, tmp_path, name="r", params={}, tags={})
    assert time.monotonic() - t0 < 15  # no retries with backoff


def test_the_experiment_opens_as_model_training_in_the_mlflow_ui(store):
    cfg, root = store
    key, kind = tracking.EXPERIMENT_KIND
    assert (key, kind) == ("mlflow.experimentKind", "custom_model_development")
    client = tracking.check_store(cfg, root)
    assert client.get_experiment_by_name("unit").tags[key] == kind
    old = client.create_experiment("older")  # made before the tag existed
    assert key not in client.get_experiment(old).tags
    assert tracking.init_store(cfg.model_copy(update={"experiment": "older"}), root) == old
    assert client.get_experiment(old).tags[key] == kind


def test_a_failed_run_resumed_and_finished_loses_its_failure(store):
    cfg, root = store
    run = tracking.Run.start(cfg, root, name="r", params={}, tags={})
    run.fail("x" * 6000)
    got = run.client.get_run(run.run_id)
    assert got.info.status == "FAILED" and got.data.tags["failure"] == "x" * 5000
    resumed = tracking.Run.start(cfg, root, name="r", params={}, tags={}, run_id=run.run_id)
    assert resumed.client.get_run(run.run_id).info.status == "RUNNING"
    resumed.end("FINISHED")
    got = run.client.get_run(run.run_id)
    assert got.info.status == "FINISHED" and "failure" not in got.data.tags

    killed = tracking.Run.start(cfg, root, name="k", params={}, tags={})
    killed.fail("interrupted", status="KILLED")
    got = run.client.get_run(killed.run_id)
    assert got.info.status == "KILLED" and got.data.tags["failure"] == "interrupted"
    with pytest.raises(ValueError, match="allowed: FAILED, KILLED"):
        killed.fail("?", status="FINISHED")
    null = tracking.NullRun()
    null.fail("x")
    null.log_dataset("d", "0", "s")
    assert null.log_model(root, "m") is None


def test_a_run_logs_its_dataset_input_and_its_model(store, tmp_path):
    cfg, root = store
    run = tracking.Run.start(cfg, root, name="m", params={}, tags={})
    run.log_dataset("digits", "abc123", "data/prepared/digits", schema={"shape": [1, 8, 8]},
                    profile={"n_train": 10})  # fmt: skip
    run.log_dataset("digits", "abc123", "data/prepared/digits")  # a resumed run: not twice
    (model_file := tmp_path / "model.pt").write_bytes(b"state dicts")
    model_id = run.log_model(model_file, "gen", step=4)

    got = run.client.get_run(run.run_id)
    (data,) = got.inputs.dataset_inputs
    assert (data.dataset.name, data.dataset.digest, data.dataset.source) == (
        "digits", "abc123", "data/prepared/digits",
    )  # fmt: skip
    assert json.loads(data.dataset.schema) == {"shape": [1, 8, 8]}
    assert [(t.key, t.value) for t in data.tags] == [("mlflow.data.context", "training")]
    (output,) = got.outputs.model_outputs
    assert (output.model_id, output.step) == (model_id, 4)
    model = run.client.get_logged_model(model_id)
    assert (model.name, model.source_run_id, model.status) == ("gen", run.run_id, "READY")
    assert [f.path for f in run.client.list_logged_model_artifacts(model_id)] == ["model.pt"]
