"""What a study shows outside genlab: its objectives' names in optuna-dashboard, and a clear
error from ``genlab dashboard`` before the study has a storage."""

from __future__ import annotations

import os
import shutil

import pytest

from genlab import sweeps as sw
from genlab.cli import main
from genlab.config import validate_params
from tests.conftest import REPO, tiny_params_dict


def test_a_created_study_names_its_objectives(tmp_path):
    raw = tiny_params_dict()
    raw["sweeps"] = {"tiny": {
        "base": "dcgan_ns", "trials": 2, "steps": 4, "report_every": 2,
        "pruner": {"name": "none"}, "seeds": [1], "objectives": ["kid", "seconds"],
        "space": {"optimizer.lr": {"low": 1e-4, "high": 1e-3, "log": True}},
    }}  # fmt: skip
    params = validate_params(raw)
    ctx = sw.Context(params, "tiny", tmp_path, "tiny-x", f"sqlite:///{tmp_path / 'study.db'}")
    assert sw.create_study(ctx).metric_names == ["kid", "seconds"]  # not "Objective 0", "1"
    assert ctx.open().metric_names == ["kid", "seconds"]  # kept in the storage


def test_dashboard_before_any_sweep_says_to_run_the_sweep(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv(sw.storage.STORAGE_ENV, raising=False)
    monkeypatch.setattr(os, "execv", lambda *a: pytest.fail("optuna-dashboard was started"))
    shutil.copy(REPO / "params.yaml", tmp_path)
    assert main(["--params", str(tmp_path / "params.yaml"), "dashboard", "losses_digits"]) == 2
    err = capsys.readouterr().err
    assert "genlab: error: study 'losses_digits' has no storage yet" in err
    assert "run `genlab sweep losses_digits` first" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]
