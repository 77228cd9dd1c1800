"""End to end: `dvc repro` of the real dvc.yaml in a temporary copy on tiny params.

Checks every declared output, the MLflow runs, the metrics against a committed golden file,
that an unchanged pipeline is a no-op, and that editing one variant reruns only its stages.
Regenerate the golden file with GENLAB_UPDATE_GOLDEN=1 after an intended change.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from genlab import tracking
from genlab.config import validate_params
from tests.conftest import REPO, tiny_params_dict, write_params

GOLDEN = Path(__file__).parent / "golden" / "tiny_metrics.json"
VARIANTS = ("vae", "dcgan_ns", "dcgan_mm", "ring_gan")
TOYS = ("dirac", "parallel-lines", "fgan-gaussian", "modes2d")


def e2e_params() -> dict:
    raw = tiny_params_dict(tracking=True)
    raw["train"]["steps"] = 30
    raw["train"]["log_every"] = 10
    raw["train"]["checkpoint_every"] = 15
    raw["train"]["optimizer"]["lr"] = 0.002  # so that 30 steps separate the losses clearly
    raw["variants"]["dcgan_mm"] = {**raw["variants"]["dcgan_ns"], "loss": "minimax"}
    raw["variants"]["ring_gan"]["batch_size"] = 64
    raw["sample"]["n"] = 300
    raw["toys"] = {  # every toy, on tiny settings
        "dirac": {"steps": 200},
        "parallel-lines": {"thetas": [-1.0, 0.0, 1.0], "critic_steps": 30, "n_samples": 512},
        "fgan-gaussian": {"steps": 30, "divergences": ["kl", "reverse_kl"], "batch_size": 128,
                          "eval_samples": 4096},
        "modes2d": {"methods": {"nonsaturating": {"loss": "nonsaturating"}}, "seeds": 2,
                    "steps": 5, "batch_size": 32, "n_train": 256, "n_samples": 250, "width": 16,
                    "budgets": {}},
    }  # fmt: skip
    raw["seeds"] = {"variants": ["dcgan_ns"], "seeds": [1]}  # stage replicate@dcgan_ns-1
    raw["variants"]["dcgan_ns"]["d_norm"] = "none"  # the sweep's base: spectral norm applies
    raw["sweeps"] = {  # a tiny study: 2 losses x 2 regularisers, one trial each
        "tiny": {"base": "dcgan_ns", "trials_per_arm": 1, "steps": 4, "report_every": 2,
                 "pruner": {"name": "none"}, "seeds": [1],
                 "space": {"loss": {"choices": ["nonsaturating", "hinge"]},
                           "regularizer": {"choices": ["none", "spectral_norm"]},
                           "optimizer.lr": {"low": 1e-4, "high": 1e-3, "log": True}}},
    }  # fmt: skip
    return raw


def dvc(root: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    out = subprocess.run([str(Path(sys.executable).with_name("dvc")), *args], cwd=root, env=env,
                         capture_output=True, text=True, timeout=1200)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout + out.stderr


def ran_stages(output: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", output))


def dvc_project(root: Path, raw: dict, folders: tuple[str, ...] = ()) -> Path:
    """A git + DVC project at ``root`` with the repository's dvc.yaml and src, params ``raw``,
    the empty ``folders`` made, and one ``dvc repro`` run (its log in first_run.log)."""
    shutil.copy(REPO / "dvc.yaml", root)
    shutil.copytree(REPO / "src", root / "src", ignore=shutil.ignore_patterns("__pycache__"))
    write_params(root, raw)
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    dvc(root, "init", "-q")
    dvc(root, "config", "core.analytics", "false")
    shutil.copytree(REPO / ".dvc" / "plots", root / ".dvc" / "plots")  # the curves template
    for folder in folders:
        (root / folder).mkdir(parents=True)
    root.joinpath("first_run.log").write_text(dvc(root, "repro"))
    return root


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return dvc_project(tmp_path_factory.mktemp("e2e"), e2e_params())


@pytest.mark.slow
def test_every_declared_output_exists(project):
    log = project.joinpath("first_run.log").read_text()
    expected = {f"{s}@{v}" for s in ("train", "sample", "evaluate") for v in VARIANTS}
    expected |= {f"{s}@{d}" for s in ("prepare", "fit-evaluator") for d in ("digits", "ring8")}
    expected |= {f"toy@{t}" for t in TOYS}
    assert ran_stages(log) == expected | {"report", "sweep@tiny", "replicate@dcgan_ns-1"}
    assert (project / "models/dcgan_ns-seed1/model.pt").is_file()
    replica = json.loads((project / "metrics/dcgan_ns-seed1.json").read_text())
    assert (
        replica["frechet"] != json.loads((project / "metrics/dcgan_ns.json").read_text())["frechet"]
    )  # another seed, another model
    for v in (*VARIANTS, "dcgan_ns-seed1"):
        assert (project / f"metrics/bootstrap/{v}.csv").is_file()
    for t in TOYS:
        assert (project / f"reports/toys/{t}.csv").is_file()
        assert (project / f"reports/toys/{t}.png").read_bytes()[:4] == b"\x89PNG"
    for d in ("digits", "ring8"):
        for f in ("train.pt", "test.pt", "meta.json"):
            assert (project / "data/prepared" / d / f).is_file()
        assert (project / f"models/evaluator/{d}.pt").is_file()
        assert json.loads((project / f"metrics/evaluator/{d}.json").read_text())["floor"]
    for v in VARIANTS:
        for f in ("model.pt", "state.pt", "run.json"):
            assert (project / "models" / v / f).is_file(), (v, f)
        for f in ("samples.pt", "grid.png", "interpolation.png"):
            assert (project / "samples" / v / f).is_file(), (v, f)
        rows = (project / f"plots/train/{v}.csv").read_text().splitlines()
        assert len(rows) == 31  # header + 30 steps
        assert (project / f"metrics/{v}.json").is_file()
    for f in ("README.md", "index.html", "comparison.csv"):
        assert (project / "reports" / f).is_file()
    readme = (project / "reports/README.md").read_text()
    assert all(v in readme for v in VARIANTS) and "real-vs-real" in readme
    assert "## The answer" in readme and "### Over seeds" in readme
    assert "frechet_ci_low" not in readme  # the intervals are in the cells, not in columns
    assert all(f"### {t}" in readme for t in TOYS)
    sweep = project / "reports/sweeps/tiny"
    for f in ("study.db", "trials.csv", "table.csv", "expected_best.csv", "expected_best.png",
              "importances.csv", "best_params.yaml"):  # fmt: skip
        assert (sweep / f).is_file(), f
    assert "## Sweeps" in readme and "### tiny" in readme
    table = (sweep / "table.csv").read_text().splitlines()
    assert len(table) == 5 and table[0].startswith("loss,regularizer,trials,completed")
    shown = dvc(project, "metrics", "show")
    assert "metrics/dcgan_ns.json" in shown and "frechet" in shown
    dvc(project, "plots", "show", "-o", str(project / "dvc_plots"))
    page = (project / "dvc_plots" / "index.html").read_text()
    for v in ("dcgan_ns", "vae"):  # every variant's curves, found without listing them anywhere
        assert f"plots/train/{v}.csv" in page, v


@pytest.mark.slow
def test_mlflow_has_one_finished_run_per_variant(project):
    params = validate_params(yaml.safe_load((project / "params.yaml").read_text()))
    everything = tracking.runs(params.tracking, project)
    skip = {"sweep", "replica_of"}
    runs = {r.info.run_name: r for r in everything if not skip & set(r.data.tags)}
    assert set(runs) == set(VARIANTS)
    (replica,) = [r for r in everything if r.data.tags.get("replica_of") == "dcgan_ns"]
    assert replica.info.run_name == "dcgan_ns-seed1" and replica.data.params["seed"] == "1"
    assert replica.data.tags["dvc.stage"] == "replicate@dcgan_ns-1"
    assert replica.info.status == "FINISHED" and "eval.frechet" in replica.data.metrics
    sweep_runs = [r for r in everything if r.data.tags.get("sweep") == "tiny"]
    assert (
        sorted(r.data.tags["kind"] for r in sweep_runs)
        == ["retrain"] * 4 + ["sweep"] + ["trial"] * 4
    )
    assert all(r.info.status == "FINISHED" for r in sweep_runs)
    for v, run in runs.items():
        assert run.info.status == "FINISHED"
        assert (
            run.info.run_id == json.loads((project / f"models/{v}/run.json").read_text())["run_id"]
        )
        assert any(k.startswith("eval.") for k in run.data.metrics)
        assert run.data.tags["dvc.stage"] == f"train@{v}"


@pytest.mark.slow
def test_metrics_match_golden(project):
    """Tight enough that a broken loss, metric or seed handling shows up."""
    got = {v: json.loads((project / f"metrics/{v}.json").read_text()) for v in VARIANTS}
    got["floor.digits"] = json.loads((project / "metrics/evaluator/digits.json").read_text())[
        "floor"
    ]
    table = pd.read_csv(project / "reports/sweeps/tiny/table.csv")
    got["sweep.tiny"] = {f"{r.loss} x {r.regularizer} {c}": float(getattr(r, c))
                         for r in table.itertuples() for c in ("best", "seed_mean")}  # fmt: skip
    if os.environ.get("GENLAB_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(got, indent=2, sort_keys=True) + "\n")
    golden = json.loads(GOLDEN.read_text())
    assert golden.keys() == got.keys()
    for name, metrics in golden.items():
        assert metrics.keys() == got[name].keys(), name
        for key, want in metrics.items():
            # identical on one machine; small slack for other CPUs' float summation order
            assert math.isclose(got[name][key], want, rel_tol=5e-3, abs_tol=1e-4), (
                name, key, got[name][key], want,
            )  # fmt: skip


@pytest.mark.slow
def test_unchanged_pipeline_is_a_noop_and_one_variant_edit_reruns_only_it(project):
    assert ran_stages(dvc(project, "repro")) == set()
    raw = yaml.safe_load((project / "params.yaml").read_text())
    raw["variants"]["ring_gan"]["steps"] = 20
    write_params(project, raw)
    reran = ran_stages(dvc(project, "repro"))
    assert reran == {"train@ring_gan", "sample@ring_gan", "evaluate@ring_gan", "report"}
