"""MLflow tracking: store location, one run per variant with flat params, tags and metrics."""

from __future__ import annotations

import json

import pytest

from genlab import tracking
from genlab.config import validate_params
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
