"""The only module that talks to MLflow.

One run per trained variant (its id goes to ``models/<v>/run.json``); ``evaluate`` logs into the
same run. The default store is ``sqlite:///mlflow.db`` resolved against the project root; inside
``dvc exp run --temp`` (a copy under ``.dvc/tmp/exps/``) it resolves to the original project so
every experiment lands in one store. ``MLFLOW_TRACKING_URI`` overrides params.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

EXPS_TMP = (".dvc", "tmp", "exps")
MAX_BATCH = 1000  # MLflow's limit of metrics per log_batch call


def store_root(root: Path) -> Path:
    """The project whose store we use: the original one when running in a DVC temp copy."""
    parts = root.resolve().parts
    for i in range(len(parts) - len(EXPS_TMP)):
        if parts[i : i + len(EXPS_TMP)] == EXPS_TMP:
            return Path(*parts[:i])
    return root.resolve()


def tracking_uri(uri: str, root: Path) -> str:
    """Resolve a relative ``sqlite:///`` or file path against the project root."""
    uri = os.environ.get("MLFLOW_TRACKING_URI", uri)
    base = store_root(root)
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        return f"sqlite:///{base / uri.removeprefix('sqlite:///')}"
    if "://" not in uri:
        return (base / uri).resolve().as_uri()
    return uri


def artifact_location(root: Path) -> str:
    return (store_root(root) / "mlartifacts").as_uri()


def _client(tracking):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=tracking)


def init_store(cfg, root: Path) -> str | None:
    """Create the store and the experiment once (before any parallel stage); returns its id."""
    if not cfg.enabled:
        return None
    client = _client(tracking_uri(cfg.uri, root))
    exp = client.get_experiment_by_name(cfg.experiment)
    if exp is not None:
        return exp.experiment_id
    try:
        return client.create_experiment(cfg.experiment, artifact_location=artifact_location(root))
    except Exception:  # another process created it first
        exp = client.get_experiment_by_name(cfg.experiment)
        if exp is None:
            raise
        return exp.experiment_id


def git_commit(root: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return out.stdout.strip() if out.returncode == 0 else "unknown"


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"optimizer": {"lr": 1e-4}}`` -> ``{"optimizer.lr": 1e-4}``."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


class Run:
    """One MLflow run, written through ``MlflowClient`` (no global active run)."""

    def __init__(self, client, run_id: str) -> None:
        self.client, self.run_id = client, run_id

    @classmethod
    def start(
        cls,
        cfg,
        root: Path,
        *,
        name: str,
        params: dict[str, Any],
        tags: dict[str, str],
        run_id: str | None = None,
    ) -> Run | NullRun:
        """A new run, or the run ``run_id`` reopened (resume). NullRun when tracking is off."""
        if not cfg.enabled:
            return NullRun()
        from mlflow.entities import Param, RunTag

        client = _client(tracking_uri(cfg.uri, root))
        if run_id is not None:
            client.update_run(run_id, status="RUNNING")
            return cls(client, run_id)
        experiment_id = init_store(cfg, root)
        tags = {"git.commit": git_commit(root), **tags}
        if "DVC_EXP_NAME" in os.environ:
            tags["dvc.exp_name"] = os.environ["DVC_EXP_NAME"]
        run = client.create_run(experiment_id, run_name=name, tags=tags)
        flat = [Param(k, str(v)) for k, v in flatten(params).items()]
        for i in range(0, len(flat), 100):
            client.log_batch(run.info.run_id, params=flat[i : i + 100])
        client.log_batch(run.info.run_id, tags=[RunTag("mlflow.source.type", "LOCAL")])
        return cls(client, run.info.run_id)

    def log_metrics(self, rows: Iterable[dict[str, float]], step_key: str = "step") -> None:
        """Per-step rows (``{"step": s, "loss_d": ...}``) in as few log_batch calls as allowed."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [
            Metric(k, float(v), now, int(row[step_key]))
            for row in rows
            for k, v in row.items()
            if k != step_key
        ]
        for i in range(0, len(metrics), MAX_BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[i : i + MAX_BATCH])

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        self.client.log_artifact(self.run_id, str(path), artifact_path)

    def set_tags(self, tags: dict[str, str]) -> None:
        for k, v in tags.items():
            self.client.set_tag(self.run_id, k, v)

    def end(self, status: str = "FINISHED") -> None:
        self.client.set_terminated(self.run_id, status=status)


class NullRun:
    """Tracking disabled: every call is a no-op."""

    run_id = None

    def log_metrics(self, rows, step_key: str = "step") -> None: ...
    def log_artifact(self, path, artifact_path=None) -> None: ...
    def set_tags(self, tags) -> None: ...
    def end(self, status: str = "FINISHED") -> None: ...


def reopen(cfg, root: Path, run_id: str | None) -> Run | NullRun:
    """An existing run for ``evaluate`` to log into (status untouched)."""
    if not cfg.enabled or run_id is None:
        return NullRun()
    return Run(_client(tracking_uri(cfg.uri, root)), run_id)


def runs(cfg, root: Path) -> list:
    """Every run of the experiment (for tests and the report)."""
    client = _client(tracking_uri(cfg.uri, root))
    exp = client.get_experiment_by_name(cfg.experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id], max_results=1000)


def ui_command(cfg, root: Path, port: int) -> list[str]:
    """``mlflow ui`` bound to 127.0.0.1 on the project's store."""
    return [
        "mlflow", "ui",
        "--backend-store-uri", tracking_uri(cfg.uri, root),
        "--default-artifact-root", artifact_location(root),
        "--host", "127.0.0.1",
        "--port", str(port),
    ]  # fmt: skip
