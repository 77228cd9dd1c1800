"""Shared fixtures: a tiny project (2 steps, small data, CPU) in a temporary folder."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.pop("MLFLOW_TRACKING_URI", None)

REPO = Path(__file__).resolve().parents[1]


def tiny_params_dict(tracking: bool = False) -> dict:
    """Small enough that every stage runs in seconds on a CPU."""
    return {
        "seed": 0,
        "device": "cpu",
        "threads": "auto",
        "compile": "none",  # dvc.yaml's train stages read it, so it must be in params.yaml
        "tracking": {"enabled": tracking, "uri": "sqlite:///mlflow.db", "experiment": "tiny"},
        "data": {"digits": {"test_fraction": 0.2}, "ring8": {"n": 512, "n_test": 256}},
        "evaluator": {"epochs": 2, "batch_size": 128, "lr": 0.001},
        "train": {
            "steps": 4,
            "batch_size": 16,
            "log_every": 1,
            "checkpoint_every": 2,
            "optimizer": {"name": "adam", "lr": 0.0002, "betas": [0.5, 0.999]},
        },
        "variants": {
            "vae": {"dataset": "digits", "family": "vae", "arch": "conv_vae", "latent_dim": 4,
                    "width": 8},
            "dcgan_ns": {"dataset": "digits", "family": "gan", "arch": "dcgan",
                         "loss": "nonsaturating", "latent_dim": 8, "width": 8},
            "ring_gan": {"dataset": "ring8", "family": "gan", "arch": "mlp", "loss": "minimax",
                         "latent_dim": 2, "width": 16},
        },
        "sample": {"n": 200, "grid": 16, "interpolation_steps": 4, "batch_size": 100},
        "evaluate": {"metrics": ["frechet", "kid", "prdc", "coverage", "elbo", "iwae", "modes"],
                     "n": 150, "bootstrap": 20, "kid_subsets": 5, "kid_subset_size": 50,
                     "iwae_samples": 16},
        "seeds": {"variants": [], "seeds": []},  # dvc.yaml's replicate matrix reads both
    }  # fmt: skip


def write_params(root: Path, raw: dict) -> Path:
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


@pytest.fixture
def tiny_project(tmp_path: Path):
    """(root, params) with digits and ring8 prepared; tracking off."""
    from genlab.config import load_params
    from genlab.data import prepare_dataset

    params = load_params(write_params(tmp_path, tiny_params_dict()))
    for name in ("digits", "ring8"):
        prepare_dataset(name, params.dataset_cfg(name), tmp_path, params.seed)
    return tmp_path, params


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_and_fetch(
    args: list[str], url: str, data: bytes | None = None, timeout: float = 120
) -> str:
    """Start ``genlab ARGS`` (a server on 127.0.0.1), return the body of ``url`` once it answers,
    and stop the server whatever happens."""
    genlab = Path(sys.executable).with_name("genlab")
    proc = subprocess.Popen([str(genlab), *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                headers = {"Content-Type": "application/json"} if data else {}
                req = urllib.request.Request(url, data=data, headers=headers)
                return urllib.request.urlopen(req, timeout=2).read().decode()
            except OSError:
                assert proc.poll() is None, f"genlab {args[-3:]} exited early"
                time.sleep(0.5)
        raise AssertionError(f"{url} did not answer within {timeout} s")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def training_snapshot(trainer, batches) -> dict:
    """What ``state.pt`` holds of a trainer mid-run (nets, optimizers, its extra state, the
    batch stream, the global RNGs), copied; ``restore_training`` puts it into a fresh one."""
    import copy

    from genlab.runtime import global_rng_state

    return copy.deepcopy({
        "nets": {k: m.state_dict() for k, m in trainer.modules.items()},
        "optimizers": {k: o.state_dict() for k, o in trainer.optimizers.items()},
        "trainer": trainer.extra_state(),
        "batches": batches.state_dict(),
        "rng": global_rng_state(),
    })  # fmt: skip


def restore_training(state: dict, trainer, batches) -> None:
    """The training driver's own restore (``genlab.train.loop``), as ``--resume`` does it."""
    from genlab.train.loop import _restore

    _restore(state, trainer, None, batches, Path("state.pt"))


def step_rows(trainer, batches, n: int) -> list[dict]:
    """``n`` trainer steps' statistics as Python numbers (trainers return device tensors; the
    driver reads them in batches with ``read_stats``)."""
    from genlab.train.loop import read_stats

    rows = [trainer.step(batches) for _ in range(n)]
    read_stats(rows)
    return rows


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL cluster (tests/servers.py) for the whole session, stopped at the
    end; skipped with the reason where no PostgreSQL can be had."""
    from tests.servers import PostgresCluster, unavailable_reason

    reason = unavailable_reason()
    if reason is not None:
        pytest.skip(reason)
    cluster = PostgresCluster()
    try:
        yield cluster.start()
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def mlflow_server(postgres, tmp_path_factory):
    """One ``mlflow server`` (tests/servers.py) for the session, its backend store a fresh
    PostgreSQL database and its artifacts in a temporary folder; ``startup_seconds`` says how
    long it took to answer. Tests sharing it use experiments of their own."""
    from tests.servers import MlflowServer

    base = tmp_path_factory.mktemp("mlflow-server")
    server = MlflowServer(postgres.create_database("mlflow"), base / "artifacts",
                          base / "server.log")  # fmt: skip
    t0 = time.monotonic()
    server.start()
    try:
        import mlflow

        client = mlflow.MlflowClient(server.url)
        for _ in range(2 * server.workers):  # each server worker opens its store on its first
            client.search_experiments(max_results=1)  # request: not inside genlab's probe
        server.startup_seconds = time.monotonic() - t0
        yield server
    finally:
        server.stop()
