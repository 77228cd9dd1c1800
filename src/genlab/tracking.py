"""The only module that talks to MLflow.

One run per trained variant (its id goes to ``models/<v>/run.json``); ``evaluate`` logs into the
same run. The default store is ``sqlite:///mlflow.db`` resolved against the project root; inside
``dvc exp run --temp`` (a copy under ``.dvc/tmp/exps/``) it resolves to the original project so
every experiment lands in one store. ``MLFLOW_TRACKING_URI`` overrides params.

MLflow creates and migrates a SQLite store's tables when a process first opens it, which is not
safe across processes (parallel ``dvc repro`` stages corrupt a fresh store), so every client is
opened by ``_client``, which holds a file lock beside the database (``mlflow.db.lock``) meanwhile.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from genlab.errors import ConfigError

EXPS_TMP = (".dvc", "tmp", "exps")
MAX_BATCH = 1000  # MLflow's limit of metrics per log_batch call
LOCK_TIMEOUT_S = 600  # waiting for another process to create or migrate the store
# MLflow 3's UI opens an experiment without this tag in its GenAI view (traces, evaluations)
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
FAILURE_TAG = "failure"  # why a run failed; removed when a resumed run finishes
MAX_TAG = 5000  # characters kept of a failure reason
# one request, no retries, when checking an http(s) store (MLflow retries for minutes by default):
# a missing server refuses the connection at once; a busy one (many machines starting runs
# together) may take seconds to answer, which is no error
PROBE_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "60"}
SCHEME_EXAMPLES = {
    "sqlite": "sqlite:///mlflow.db (relative to the project) or sqlite:////abs/path.db",
    "": "a directory path (file store)",
    "file": "file:///abs/dir",
    "http": "http://host:port (an MLflow server)",
    "https": "https://host:port",
    "postgresql": "postgresql://user@host/db",
    "mysql": "mysql://user@host/db",
    "mssql": "mssql://user@host/db",
    "databricks": "databricks",
}
NOT_TRACKING = {"uc", "databricks-uc"}  # model-registry-only schemes MLflow lists too


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


def is_server(uri: str) -> bool:
    """An MLflow tracking server (http/https): it keeps the artifacts (``mlflow-artifacts:/``
    under its ``--artifacts-destination``), so clients on any machine read and write the same."""
    return uri.partition("://")[0] in ("http", "https")


def _store_lock(uri: str) -> contextlib.AbstractContextManager:
    """An inter-process lock beside a SQLite store's file (``<db>.lock``); none for other stores
    (their servers serialise schema changes themselves)."""
    if not uri.startswith("sqlite:///"):
        return contextlib.nullcontext()
    path = uri.removeprefix("sqlite:///").split("?")[0]
    if path in ("", ":memory:"):
        return contextlib.nullcontext()
    from filelock import FileLock

    return FileLock(f"{path}.lock", timeout=LOCK_TIMEOUT_S)


def _client(uri: str):
    """An ``MlflowClient`` on ``uri``: every client is opened here. On SQLite the store (whose
    construction creates or migrates the tables) is built under the lock."""
    from mlflow import MlflowClient

    with _store_lock(uri):
        client = MlflowClient(tracking_uri=uri)
        if uri.startswith("sqlite:"):
            client.search_experiments(max_results=1)  # builds the store once per process
    return client


def check_store(cfg, root: Path):
    """The client of ``cfg``'s store, opened (tables created under the lock); a URI MLflow cannot
    use, or an http(s) server that does not answer, is a ConfigError naming the key. None (and
    nothing written) when tracking is off."""
    if not cfg.enabled:
        return None
    from mlflow.exceptions import MlflowException
    from mlflow.tracking.registry import UnsupportedModelRegistryStoreURIException

    env = os.environ.get("MLFLOW_TRACKING_URI")
    key = "tracking.uri" if env is None else "MLFLOW_TRACKING_URI (overriding tracking.uri)"
    given = cfg.uri if env is None else env
    uri = tracking_uri(cfg.uri, root)
    try:
        client = _client(uri)
        if is_server(uri):
            with _env(PROBE_ENV):
                client.search_experiments(max_results=1)
    except UnsupportedModelRegistryStoreURIException as e:
        known = [s for s in SCHEME_EXAMPLES if s in e.supported_uri_schemes]
        other = [s for s in e.supported_uri_schemes
                 if s not in SCHEME_EXAMPLES and s not in NOT_TRACKING]  # fmt: skip
        allowed = "; ".join([SCHEME_EXAMPLES[s] for s in known] + [f"{s}://..." for s in other])
        raise ConfigError(
            f"{key} = {given!r}: MLflow has no store for the scheme {uri.partition(':')[0]!r}; "
            f"allowed: {allowed}"
        ) from None
    except MlflowException as e:
        hint = ("; start the server (`mlflow server --host 127.0.0.1 --port 5000`) or use a "
                "local store, e.g. sqlite:///mlflow.db")  # fmt: skip
        raise ConfigError(
            f"{key} = {given!r}: MLflow cannot open the store: {e.message.splitlines()[0]}"
            + (hint if uri.startswith("http") else "")
        ) from e
    return client


@contextlib.contextmanager
def _env(values: dict[str, str]) -> Iterator[None]:
    """Environment variables set for the duration of a block, then restored."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _experiment_id(client, cfg, root: Path) -> str:
    """Get or create ``cfg.experiment`` (under the lock on SQLite), tagged as model training so
    the MLflow UI opens its runs table (also on experiments created before the tag). Its artifacts
    go to the project's ``mlartifacts/``, or on a tracking server to the server's artifact root
    (a folder of the machine that created the experiment would hold every machine's files)."""
    from mlflow.exceptions import MlflowException

    kind_key, kind = EXPERIMENT_KIND
    with _store_lock(client.tracking_uri):
        exp = client.get_experiment_by_name(cfg.experiment)
        if exp is None:
            try:
                location = None if is_server(client.tracking_uri) else artifact_location(root)
                return client.create_experiment(
                    cfg.experiment, artifact_location=location, tags={kind_key: kind}
                )
            except MlflowException:  # a server store: another process created it first
                exp = client.get_experiment_by_name(cfg.experiment)
                if exp is None:
                    raise
        if kind_key not in exp.tags:
            client.set_experiment_tag(exp.experiment_id, kind_key, kind)
        return exp.experiment_id


def init_store(cfg, root: Path) -> str | None:
    """Create the store and the experiment once (before any parallel stage); returns its id.
    A store MLflow cannot open is a ConfigError (``check_store``)."""
    if not cfg.enabled:
        return None
    return _experiment_id(check_store(cfg, root), cfg, root)


def dataset_digest(meta: dict[str, Any]) -> str:
    """A short digest of a prepared dataset's ``meta.json`` fields (its settings, seed, sizes)."""
    return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:16]


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

        client = check_store(cfg, root)
        if run_id is not None:
            client.update_run(run_id, status="RUNNING")
            return cls(client, run_id)
        experiment_id = _experiment_id(client, cfg, root)
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

    def log_dataset(
        self,
        name: str,  # e.g. the dataset's params key: digits
        digest: str,  # identifies its contents (at most 36 characters: MLflow's column)
        source: str,  # where it lives, e.g. data/prepared/digits
        schema: dict | None = None,  # shown as the dataset's schema (JSON)
        profile: dict | None = None,  # shown as its profile (JSON), e.g. sizes
    ) -> None:
        """The run's training dataset, shown in its inputs (an MLflow Dataset, context training)."""
        from mlflow.entities import Dataset, DatasetInput, InputTag
        from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

        dataset = Dataset(
            name=name, digest=digest[:36], source_type="local", source=source,
            schema=None if schema is None else json.dumps(schema),
            profile=None if profile is None else json.dumps(profile),
        )  # fmt: skip
        tags = [InputTag(MLFLOW_DATASET_CONTEXT, "training")]
        self.client.log_inputs(self.run_id, [DatasetInput(dataset, tags)])

    def log_model(self, path: Path, name: str, step: int = 0) -> str:
        """``path`` (a file such as ``model.pt``, or a folder) stored as it is as an MLflow 3
        LoggedModel of this run (no pickling, no requirements inferred), finalised READY and
        linked as the run's output (the runs table's Models column). Returns the model id."""
        from mlflow.entities import LoggedModelOutput

        experiment_id = self.client.get_run(self.run_id).info.experiment_id
        model = self.client.create_logged_model(experiment_id, name=name,
                                                source_run_id=self.run_id)  # fmt: skip
        try:
            if path.is_dir():
                self.client.log_model_artifacts(model.model_id, str(path))
            else:
                with tempfile.TemporaryDirectory() as tmp:
                    shutil.copy2(path, tmp)  # the API uploads folders
                    self.client.log_model_artifacts(model.model_id, tmp)
        except BaseException:
            self.client.finalize_logged_model(model.model_id, "FAILED")
            raise
        self.client.finalize_logged_model(model.model_id, "READY")
        self.client.log_outputs(self.run_id, [LoggedModelOutput(model.model_id, step)])
        return model.model_id

    def fail(self, reason: str, status: str = "FAILED") -> None:
        """End the run as FAILED (or KILLED: interrupted) with the reason in its ``failure`` tag."""
        if status not in ("FAILED", "KILLED"):
            raise ValueError(f"status = {status!r}; allowed: FAILED, KILLED")
        self.client.set_tag(self.run_id, FAILURE_TAG, reason[:MAX_TAG])
        self.client.set_terminated(self.run_id, status=status)

    def end(self, status: str = "FINISHED") -> None:
        """End the run; a FINISHED run loses the ``failure`` tag of an earlier, resumed attempt."""
        if status == "FINISHED" and FAILURE_TAG in self.client.get_run(self.run_id).data.tags:
            self.client.delete_tag(self.run_id, FAILURE_TAG)
        self.client.set_terminated(self.run_id, status=status)


class NullRun:
    """Tracking disabled: every call is a no-op."""

    run_id = None

    def log_metrics(self, rows, step_key: str = "step") -> None: ...
    def log_artifact(self, path, artifact_path=None) -> None: ...
    def set_tags(self, tags) -> None: ...
    def log_dataset(self, name, digest, source, schema=None, profile=None) -> None: ...
    def log_model(self, path, name, step: int = 0) -> None: ...
    def fail(self, reason: str, status: str = "FAILED") -> None: ...
    def end(self, status: str = "FINISHED") -> None: ...


def reopen(cfg, root: Path, run_id: str | None) -> Run | NullRun:
    """An existing run for ``sample`` and ``evaluate`` to log into (status untouched). A run
    the store does not hold (a fresh clone, a store replaced since training) is reported on
    stderr and skipped: the stage's files are written all the same."""
    if not cfg.enabled or run_id is None:
        return NullRun()
    import sys

    from mlflow.exceptions import MlflowException

    client = _client(tracking_uri(cfg.uri, root))
    try:
        client.get_run(run_id)
    except MlflowException as err:
        if getattr(err, "error_code", "") != "RESOURCE_DOES_NOT_EXIST":
            raise
        print(
            f"genlab: MLflow run {run_id} (models/<variant>/run.json) is not in the store "
            f"{cfg.uri}; nothing is logged to it (train again to get a run)",
            file=sys.stderr,
        )
        return NullRun()
    return Run(client, run_id)


def runs(cfg, root: Path) -> list:
    """Every run of the experiment (for tests and the report)."""
    client = _client(tracking_uri(cfg.uri, root))
    exp = client.get_experiment_by_name(cfg.experiment)
    return [] if exp is None else client.search_runs([exp.experiment_id], max_results=1000)


def ui_command(cfg, root: Path, port: int) -> list[str]:
    """``mlflow ui`` bound to 127.0.0.1 on the project's store (created first, under the lock,
    with the experiment tagged for the runs view)."""
    _experiment_id(check_store(cfg, root), cfg, root)
    return [
        "mlflow", "ui",
        "--backend-store-uri", tracking_uri(cfg.uri, root),
        "--default-artifact-root", artifact_location(root),
        "--host", "127.0.0.1",
        "--port", str(port),
    ]  # fmt: skip
