"""Optuna sweeps: search-space validation, the variants a trial trains, exact trial budgets over
workers and resumptions, pruned and failed trials, nested MLflow runs, the tables."""

from __future__ import annotations

import copy
import math
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from genlab import sweeps as sw
from genlab import tracking
from genlab.cli import main
from genlab.config import load_params, validate_params
from genlab.data import prepare_dataset
from genlab.errors import ConfigError
from genlab.evaluate import evaluate_variant, fit_evaluator_stage
from genlab.sample import sample_variant
from genlab.sweeps import objective
from genlab.train.loop import train_variant
from tests.conftest import free_port, serve_and_fetch, tiny_params_dict, write_params

TABLE_COLUMNS = ["loss", "regularizer", "trials", "completed", "pruned", "failed", "best",
                 "median", "iqr", "best_trial", "seeds", "seeds_failed", "seed_mean", "seed_std",
                 "ci_low", "ci_high"]  # fmt: skip


def sweep_raw(**overrides) -> dict:
    """Tiny params with a study over 2 losses x 2 regularisers, 4 steps per trial."""
    raw = tiny_params_dict(tracking=True)
    raw["variants"]["dcgan_ns"]["d_norm"] = "none"
    study = {
        "base": "dcgan_ns",
        "trials_per_arm": 1,
        "steps": 4,
        "report_every": 2,
        "pruner": {"name": "none"},
        "seeds": [1],
        "space": {
            "loss": {"choices": ["nonsaturating", "wasserstein"]},
            "regularizer": {"choices": ["none", "gradient_penalty"]},
            "regularizers.gradient_penalty.weight": {
                "low": 1, "high": 20, "log": True, "when": {"regularizer": "gradient_penalty"}
            },
            "regularizers.weight_clip.clip": {
                "low": 0.005, "high": 0.05, "log": True,
                "when": {"loss": "wasserstein", "regularizer": "none"},
            },
            "optimizer.lr": {"low": 1e-4, "high": 1e-3, "log": True},
            "optimizer.betas.0": {"choices": [0.0, 0.5]},
        },
    }  # fmt: skip
    study.update(overrides)
    raw["sweeps"] = {"tiny": study}
    return raw


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """digits prepared and its evaluator fitted once for the module."""
    root = tmp_path_factory.mktemp("prepared")
    params = validate_params(sweep_raw())
    prepare_dataset("digits", params.dataset_cfg("digits"), root, params.seed)
    fit_evaluator_stage(params.model_copy(update={"tracking": params.tracking.model_copy(
        update={"enabled": False})}), "digits", root)  # fmt: skip
    return root


def project(prepared: Path, tmp_path: Path, raw: dict) -> tuple[Path, Path]:
    for sub in ("data", "models", "metrics"):
        shutil.copytree(prepared / sub, tmp_path / sub)
    return tmp_path, write_params(tmp_path, raw)


def study_of(root: Path, params, name: str = "tiny"):
    ctx = sw.Context(params, name, root, f"{name}-{sw.fingerprint(params, name, root)}",
                     sw.storage_url(sw.study_cfg(params, name), name, root))  # fmt: skip
    return ctx, ctx.open()


# ---------------------------------------------------------------- params
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"trials": 3}, "exactly one of trials"),
        ({"trials_per_arm": None}, "exactly one of trials"),
        ({"objectives": ["seconds"]}, "the first must be frechet or kid"),
        ({"objectives": ["frechet", "seconds"], "pruner": {"name": "median"}}, "cannot prune"),
        ({"report_every": 10}, "exceeds steps"),
        ({"seeds": [1, 1]}, "repeat a seed"),
        ({"seeds": [0, 1]}, "contains the project seed 0"),
        ({"seeds": [-1]}, "seeds must be >= 0"),
        ({"heartbeat": 10, "grace": 20}, "grace = 20 must exceed 2 x heartbeat = 20"),
        ({"space": {"regularizer": {"choices": ["none", "r1"]},
                    "regularizers.r1.weight": {"low": 1, "high": 10}}},
         "space.regularizers.r1.weight needs when: {regularizer: r1}"),
        ({"space": {"regularizer": {"choices": ["none", "r1"]},
                    "regularizers.r1.wieght": {"low": 1, "high": 10,
                                               "when": {"regularizer": "r1"}}}},
         "space.regularizers.r1.wieght makes an invalid variant where it applies"),
        ({"base": "nope"}, "is not a variant; the variants are: dcgan_ns, ring_gan, vae"),
        ({"space": {"dataset": {"choices": ["digits"]}}}, "dataset is fixed by the study"),
        ({"space": {"lr": {"low": 1, "high": 2}}}, "'lr' is not a variant key"),
        ({"space": {"optimizer.lr": {"low": 0, "high": 1, "log": True}}}, "needs low > 0"),
        ({"space": {"optimizer.lr": {"low": 2, "high": 1}}}, "need low < high"),
        ({"space": {"d_steps": {"choices": [1], "low": 1, "high": 2}}}, "either choices"),
        ({"space": {"d_steps": {"choices": [1, 2], "when": {"loss": "hinge"}}}},
         "not an earlier key"),
        ({"space": {"loss": {"choices": ["hinge"]},
                    "d_steps": {"choices": [1, 2], "when": {"loss": "minimax"}}}},
         "loss = 'minimax' is not among its choices"),
        ({"space": {"loss": {"choices": ["hinge", "energy"]}}},
         "the arm energy x none is not a valid variant"),
        ({"space": {"loss": {"choices": ["hinge", "nope"]}}}, "nope"),
        ({"pruner": {"name": "x"}},
         "sweeps.tiny.pruner.name = 'x': allowed: 'none', 'median' or 'hyperband'"),
        ({"bogus": 1}, "sweeps.tiny.bogus = 1: unknown key; allowed keys: base, bootstrap, grace"),
        ({"pruner": {"nme": "none"}}, "sweeps.tiny.pruner.nme = 'none': unknown key; allowed keys: "
                                      "name, reduction_factor"),
        ({"steps": 0}, "sweeps.tiny.steps = 0: Input should be greater than or equal to 1"),
    ],
)  # fmt: skip
def test_bad_studies_are_refused_with_the_key_and_what_is_allowed(change, message):
    raw = sweep_raw()
    raw["sweeps"]["tiny"].update(change)
    params = validate_params(raw)  # params hold the raw study; running or reading it validates
    with pytest.raises(ConfigError, match=r"^sweeps\.tiny") as err:
        sw.study_cfg(params, "tiny")
    assert message in str(err.value)


def test_params_with_an_invalid_study_load_and_only_the_study_is_refused(tmp_path, capsys):
    raw = sweep_raw(seeds=[0, 1])  # contains the project seed: an invalid study
    space = {"loss": {"choices": ["hinge"]}}
    raw["sweeps"]["other"] = {"base": "nope", "space": space, "trials": 1}
    params_file = write_params(tmp_path, raw)
    params = load_params(params_file)  # what `genlab train` does: studies are not validated
    assert params.sweeps["tiny"]["seeds"] == [0, 1] and params.variant("vae").family == "vae"
    with pytest.raises(ConfigError, match=r"^sweeps\.tiny: seeds = \[0, 1\] contains the project"):
        sw.study_cfg(params, "tiny")
    with pytest.raises(ConfigError, match="sweeps.other.base = 'nope' is not a variant"):
        sw.study_cfg(params, "other")
    with pytest.raises(ConfigError, match="^unknown sweep 'x'; the sweeps in params.yaml") as err:
        sw.study_cfg(params, "x")
    assert str(err.value).endswith("are: other, tiny")
    for command in (["sweep", "tiny"], ["dashboard", "tiny"]):  # refused before anything runs
        assert main(["--params", str(params_file), *command]) == 2
        assert "sweeps.tiny: seeds = [0, 1] contains the project seed 0" in capsys.readouterr().err
    # loading params imports neither the sweeps nor Optuna
    code = ("import sys; from genlab.config import load_params; "
            f"load_params({str(params_file)!r}); "
            "assert not {'genlab.sweeps', 'optuna'} & set(sys.modules), 'imported'")  # fmt: skip
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_trial_variant_applies_arm_conditionals_and_optimizer_paths():
    params = validate_params(sweep_raw())
    cfg, base = sw.study_cfg(params, "tiny"), params.variants["dcgan_ns"]
    v = sw.variant_for(base, cfg, {"loss": "wasserstein", "regularizer": "none",
                                   "regularizers.weight_clip.clip": 0.02,
                                   "optimizer.betas.0": 0.0, "optimizer.lr": 5e-4})  # fmt: skip
    assert v.loss == "wasserstein" and set(v.regularizers) == {"weight_clip"}
    assert v.regularizers["weight_clip"].clip == 0.02 and v.steps == 4
    assert v.optimizer.betas == (0.0, 0.999) and v.optimizer.lr == 5e-4
    assert v.optimizer_d is None  # D uses G's optimizer settings
    v = sw.variant_for(base, cfg, {"optimizer.betas.0": 0.0, "optimizer_d.lr": 1e-3})
    assert v.optimizer_d.lr == 1e-3 and v.optimizer_d.betas == (0.0, 0.999)
    assert v.optimizer_d.name == "adam" and v.optimizer.lr == base.optimizer.lr
    with pytest.raises(ConfigError, match="energy"):
        sw.variant_for(base, cfg, {"loss": "energy"})
    assert [sw.arm_label(a) for a in sw.arms(cfg, base)] == [
        "nonsaturating x none", "nonsaturating x gradient_penalty",
        "wasserstein x none", "wasserstein x gradient_penalty",
    ]  # fmt: skip
    assert sw.check_study(base, cfg, seed=0) == []


def test_conditional_parameters_are_sampled_only_when_their_condition_holds():
    import optuna

    cfg = sw.study_cfg(validate_params(sweep_raw()), "tiny")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(30):
        values = sw.suggest(study.ask(), cfg)
        assert ("regularizers.gradient_penalty.weight" in values) == (
            values["regularizer"] == "gradient_penalty"
        )
        assert ("regularizers.weight_clip.clip" in values) == (
            values["loss"] == "wasserstein" and values["regularizer"] == "none"
        )
        assert 1e-4 <= values["optimizer.lr"] <= 1e-3


# ---------------------------------------------------------------- statistics
def test_expected_best_of_k_matches_a_monte_carlo_bootstrap():
    rng = np.random.default_rng(0)
    finite = rng.gamma(2.0, 10.0, size=11)
    for values in (finite, np.append(finite, [math.inf, math.inf])):  # failed trials = inf
        ks = [1, 2, 5, len(values)]
        exact = sw.expected_best(values, ks)
        draws = rng.choice(values, size=(200_000, len(values)), replace=True)
        for k, row in zip(ks, exact.itertuples(), strict=True):
            best = draws[:, :k].min(axis=1)
            if np.isinf(values).any():  # P(every draw failed) > 0: the mean is infinite
                assert row.mean == math.inf
            else:
                assert row.mean == pytest.approx(best.mean(), rel=5e-3)
            for name, q in (("median", 50), ("lo", 2.5), ("hi", 97.5)):
                assert getattr(row, name) == np.percentile(best, q, method="inverted_cdf")
    assert sw.expected_best(finite, [1])["mean"].iloc[0] == pytest.approx(finite.mean())
    assert sw.expected_best(finite, [10_000])["mean"].iloc[0] == pytest.approx(finite.min())


def test_bootstrap_interval_of_the_mean():
    assert sw.bootstrap_ci(np.array([3.0, 3.0, 3.0]), 1000, 0) == (3.0, 3.0)
    values = np.random.default_rng(1).normal(10.0, 1.0, size=50)
    lo, hi = sw.bootstrap_ci(values, 5000, 0)
    half = 1.96 * values.std(ddof=1) / math.sqrt(len(values))  # normal-theory interval
    assert lo == pytest.approx(values.mean() - half, abs=0.1)
    assert hi == pytest.approx(values.mean() + half, abs=0.1)
    assert math.isnan(sw.bootstrap_ci(np.array([1.0]), 1000, 0)[0])


def test_split_shares_trials_exactly():
    assert sw.split(7, 3) == [3, 2, 2] and sum(sw.split(5, 8)) == 5 and sw.split(0, 2) == [0, 0]


def test_public_url_hides_the_password():
    assert (
        sw.public_url("postgresql://me:secret@db:5432/optuna")
        == "postgresql://me:***@db:5432/optuna"
    )
    assert sw.public_url("sqlite:///x.db") == "sqlite:///x.db"


# ---------------------------------------------------------------- running studies
def test_tiny_study_counts_states_mlflow_tables_and_resumes(prepared, tmp_path, capsys):
    root, params_file = project(prepared, tmp_path, sweep_raw())
    assert main(["--params", str(params_file), "sweep", "tiny"]) == 0
    params = load_params(params_file)
    ctx, study = study_of(root, params)
    trials = study.get_trials()
    assert len(trials) == 4 and {t.state.name for t in trials} == {"COMPLETE"}
    assert sorted(sw.trial_arm(t, ctx) for t in trials) == sorted(
        sw.arms(ctx.sweep, params.variants["dcgan_ns"])
    )  # one trial per arm
    for t in trials:
        assert sorted(t.intermediate_values) == [2, 4]
        assert t.values[0] == t.intermediate_values[4]

    out = root / "reports/sweeps/tiny"
    assert (out / "study.db").is_file() and not (out / "study.db.lock").exists()  # lock removed
    table = pd.read_csv(out / "table.csv")
    assert list(table.columns) == TABLE_COLUMNS and len(table) == 4
    assert (table["trials"] == 1).all() and (table["completed"] == 1).all()
    assert (table["seeds"] == 1).all() and (table["seeds_failed"] == 0).all()  # seed 1 retrain
    trials_csv = pd.read_csv(out / "trials.csv")
    assert len(trials_csv) == 4 and "param.optimizer.lr" in trials_csv
    curve = pd.read_csv(out / "expected_best.csv")
    assert list(curve.columns) == ["arm", "loss", "regularizer", "k", "mean", "median", "lo", "hi"]
    assert (out / "expected_best.png").stat().st_size > 0
    assert list(pd.read_csv(out / "importances.csv").columns) == ["param", "importance"]

    runs = tracking.runs(params.tracking, root)
    (parent,) = [r for r in runs if r.data.tags.get("kind") == "sweep"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    kinds = sorted(r.data.tags["kind"] for r in children)
    assert kinds == ["retrain"] * 4 + ["trial"] * 4
    assert parent.info.status == "FINISHED" and parent.data.metrics["trials_complete"] == 4
    child = next(r for r in children if r.data.tags["kind"] == "trial")
    assert child.data.tags["optuna.state"] == "COMPLETE" and child.info.status == "FINISHED"
    assert "optimizer.lr" in child.data.params and "variant.loss" in child.data.params
    history = tracking._client(tracking.tracking_uri(params.tracking.uri, root)).get_metric_history(
        child.info.run_id, "frechet"
    )
    assert [m.step for m in history] == [2, 4]

    # resume: nothing left to do; a larger budget runs only the difference
    assert main(["--params", str(params_file), "sweep", "tiny"]) == 0
    assert len(study.get_trials()) == 4
    assert "0 to run" in capsys.readouterr().out
    raw = sweep_raw(trials_per_arm=2)
    write_params(root, raw)
    assert main(["--params", str(params_file), "sweep", "tiny"]) == 0
    trials = study.get_trials()
    assert len(trials) == 8 and {t.state.name for t in trials} == {"COMPLETE"}
    table = pd.read_csv(out / "table.csv")
    assert (table["trials"] == 2).all()
    # changed settings are a new study next to the old one, in the same storage
    raw["sweeps"]["tiny"]["steps"] = 6
    write_params(root, raw)
    assert main(["--params", str(params_file), "sweep", "tiny"]) == 0
    names = {s.study_name for s in __import__("optuna").get_all_study_summaries(ctx.url)}
    assert len(names) == 2


def test_diverging_and_pruned_trials_are_recorded_and_the_sweep_goes_on(prepared, tmp_path):
    raw = sweep_raw(
        trials_per_arm=None, trials=12, steps=6, report_every=2,
        pruner={"name": "median", "startup_trials": 1},
        space={"loss": {"choices": ["least_squares"]},
               "optimizer.lr": {"choices": [0.0002, 0.001, 1e30, 50.0]}},
    )  # fmt: skip
    root, params_file = project(prepared, tmp_path, raw)
    assert main(["--params", str(params_file), "sweep", "tiny"]) == 0
    params = load_params(params_file)
    _, study = study_of(root, params)
    trials = study.get_trials()
    states = [t.state.name for t in trials]
    assert len(trials) == 12 and "FAIL" in states and "PRUNED" in states and "COMPLETE" in states
    for t in trials:
        assert (t.state.name == "FAIL") == (t.params["optimizer.lr"] == 1e30)
        if t.state.name == "FAIL":
            assert "diverged" in t.user_attrs["fail_reason"]
    runs = {r.data.tags["optuna.trial"]: r for r in tracking.runs(params.tracking, root)
            if r.data.tags.get("kind") == "trial"}  # fmt: skip
    for t in trials:
        run = runs[str(t.number)]
        assert run.data.tags["optuna.state"] == t.state.name
        assert run.info.status == ("FAILED" if t.state.name == "FAIL" else "FINISHED")
    table = pd.read_csv(root / "reports/sweeps/tiny/table.csv")
    row = table.iloc[0]
    assert row["trials"] == 12 and row["failed"] == states.count("FAIL")
    assert row["pruned"] == states.count("PRUNED") and row["completed"] == states.count("COMPLETE")


def test_best_params_reproduce_the_trial_score_through_the_pipeline(prepared, tmp_path):
    raw = sweep_raw(trials_per_arm=None, trials=2, seeds=[])
    root, params_file = project(prepared, tmp_path, raw)
    assert main(["--params", str(params_file), "sweep", "tiny"]) == 0
    best = yaml.safe_load((root / "reports/sweeps/tiny/best_params.yaml").read_text())
    _, study = study_of(root, load_params(params_file))
    assert study.best_trial.user_attrs["config"] == best["tiny_best"]

    raw2 = copy.deepcopy(raw)
    raw2["variants"]["tiny_best"] = best["tiny_best"]
    params = validate_params(raw2)
    train_variant(params, "tiny_best", root)
    sample_variant(params, "tiny_best", root)
    metrics = evaluate_variant(params, "tiny_best", root)
    assert metrics["frechet"] == study.best_value  # bit for bit: same seed, same latents


def test_an_interrupted_trial_is_requeued_and_the_budget_stays_exact(
    prepared, tmp_path, monkeypatch
):
    raw = sweep_raw(trials_per_arm=None, trials=3, seeds=[])
    root, params_file = project(prepared, tmp_path, raw)
    real, calls = objective.fit_and_score, []

    def interrupt_the_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(objective, "fit_and_score", interrupt_the_second)
    assert main(["--params", str(params_file), "sweep", "tiny"]) == 130
    params = load_params(params_file)
    ctx, study = study_of(root, params)
    (stopped,) = [t for t in study.get_trials() if t.state.name == "FAIL"]
    assert stopped.user_attrs["interrupted"]
    runs = tracking.runs(params.tracking, root)
    assert next(r for r in runs if r.data.tags.get("kind") == "sweep").info.status == "KILLED"
    assert main(["--params", str(params_file), "sweep", "tiny"]) == 0
    trials = study.get_trials()
    assert len(sw.consumed(trials)) == 3 and len(trials) == 4
    (again,) = [t for t in trials if t.system_attrs.get("failed_trial") == stopped.number]
    assert again.state.name == "COMPLETE" and again.params == stopped.params
    assert pd.read_csv(root / "reports/sweeps/tiny/table.csv")["trials"].sum() == 3
    runs = tracking.runs(params.tracking, root)
    assert next(r for r in runs if r.data.tags.get("kind") == "sweep").info.status == "FINISHED"


def test_a_point_set_base_is_refused(prepared, tmp_path, capsys):
    raw = sweep_raw()
    raw["sweeps"]["tiny"]["base"] = "ring_gan"
    raw["sweeps"]["tiny"]["space"] = {"loss": {"choices": ["minimax", "hinge"]}}
    root, params_file = project(prepared, tmp_path, raw)
    prepare_dataset("ring8", load_params(params_file).dataset_cfg("ring8"), root, 0)
    assert main(["--params", str(params_file), "sweep", "tiny"]) == 2
    assert "'ring8' is a 2-D point set" in capsys.readouterr().err


@pytest.mark.parametrize("objectives", [["kid"], ["frechet", "seconds"]])
def test_other_objectives(prepared, tmp_path, objectives):
    raw = sweep_raw(trials_per_arm=None, trials=2, seeds=[], objectives=objectives)
    root, params_file = project(prepared, tmp_path, raw)
    assert main(["--params", str(params_file), "sweep", "tiny"]) == 0
    ctx, study = study_of(root, load_params(params_file))
    trials = study.get_trials()
    assert len(study.directions) == len(objectives) and len(trials) == 2
    for t in trials:
        assert t.state.name == "COMPLETE" and len(t.values) == len(objectives)
        if objectives[-1] == "seconds":
            assert t.values[1] == t.user_attrs["seconds"] > 0
    df = pd.read_csv(root / "reports/sweeps/tiny/trials.csv")
    assert objectives[0] in df and ("seconds_objective" in df) == (len(objectives) == 2)
    assert sorted(df[objectives[0]]) == pytest.approx(sorted(t.values[0] for t in trials), rel=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("budget", [{"trials": 5}, {"trials_per_arm": 2}])
def test_two_workers_share_one_storage_and_run_exactly_the_budget(prepared, tmp_path, budget):
    raw = sweep_raw(seeds=[1], **{"trials_per_arm": None, **budget})
    root, params_file = project(prepared, tmp_path, raw)
    assert main(["--params", str(params_file), "sweep", "tiny", "--workers", "2"]) == 0
    params = load_params(params_file)
    ctx, study = study_of(root, params)
    n = budget.get("trials", 8)
    trials = study.get_trials()
    assert len(trials) == n and {t.state.name for t in trials} == {"COMPLETE"}
    assert sorted(t.number for t in trials) == list(range(n))
    if "trials_per_arm" in budget:  # queued trials: each popped by exactly one worker
        arms = [sw.trial_arm(t, ctx) for t in trials]
        assert all(arms.count(a) == 2 for a in sw.arms(ctx.sweep, ctx.base))
    runs = tracking.runs(params.tracking, root)
    trial_runs = [r for r in runs if r.data.tags.get("kind") == "trial"]
    assert sorted(int(r.data.tags["optuna.trial"]) for r in trial_runs) == list(range(n))
    assert all(r.info.status == "FINISHED" for r in runs)
    retrains = [r for r in runs if r.data.tags.get("kind") == "retrain"]
    assert len(retrains) == len(sw.best_by_arm(study, ctx))  # seed 1 for each arm's best
    # trial k samples the same values whichever worker runs it: one worker draws the same study
    solo = tmp_path / "solo"
    solo.mkdir()
    _, solo_file = project(prepared, solo, raw)
    assert main(["--params", str(solo_file), "sweep", "tiny"]) == 0
    _, solo_study = study_of(solo, load_params(solo_file))
    assert [t.params for t in solo_study.get_trials()] == [t.params for t in trials]


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def started_trial_with_run(db: Path) -> bool:
    """A RUNNING trial that already has its MLflow run, read with sqlite3 in read-only mode."""
    import sqlite3

    if not db.exists():
        return False
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            rows = con.execute(
                "SELECT 1 FROM trials t JOIN trial_user_attributes a ON a.trial_id = t.trial_id "
                "WHERE t.state = 'RUNNING' AND a.key = 'mlflow_run'"
            ).fetchall()
    except sqlite3.OperationalError:  # tables not created yet, or locked for a moment
        return False
    return bool(rows)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_a_killed_sweep_leaves_no_worker_and_no_trial_running_forever(prepared, tmp_path):
    raw = sweep_raw(trials_per_arm=None, trials=3, steps=400, report_every=200, seeds=[],
                    heartbeat=1, grace=3)  # fmt: skip
    root, params_file = project(prepared, tmp_path, raw)
    genlab = Path(sys.executable).with_name("genlab")
    proc = subprocess.Popen(
        [str(genlab), "--params", str(params_file), "sweep", "tiny", "--workers", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    params = load_params(params_file)
    db = root / "reports/sweeps/tiny/study.db"
    deadline, workers = time.monotonic() + 120, []
    try:
        while time.monotonic() < deadline and not workers:
            time.sleep(0.5)
            if started_trial_with_run(db):  # read-only: the sweep owns the fresh database
                workers = children(proc.pid)
        if not workers:
            pytest.fail("the sweep never started a trial")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    _, study = study_of(root, params)
    assert len(workers) >= 2  # two workers (and multiprocessing's resource tracker)
    deadline = time.monotonic() + 10
    while any(alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(alive(w) for w in workers), "worker processes outlived their sweep"
    killed = [t for t in study.get_trials() if t.state.name == "RUNNING"]
    assert killed
    # at once, within the grace period: the sweep waits for the silent trials, fails and reruns them
    assert main(["--params", str(params_file), "sweep", "tiny"]) == 0
    trials = study.get_trials()
    for k in killed:
        assert trials[k.number].state.name == "FAIL"
        (retry,) = [t for t in trials if t.system_attrs.get("failed_trial") == k.number]
        assert retry.state.name == "COMPLETE"
    assert len(sw.consumed(trials)) == 3 and not [t for t in trials if t.state.name == "RUNNING"]
    assert pd.read_csv(root / "reports/sweeps/tiny/table.csv")["trials"].sum() == 3
    runs = tracking.runs(params.tracking, root)
    for k in [k for k in killed if "mlflow_run" in k.user_attrs]:
        (run,) = [r for r in runs if r.data.tags.get("optuna.trial") == str(k.number)
                  and r.data.tags.get("kind") == "trial" and r.info.status == "FAILED"]  # fmt: skip
        assert "heartbeat" in run.data.tags["failure"]


@pytest.mark.slow
def test_genlab_dashboard_serves_the_study_on_localhost(prepared, tmp_path):
    raw = sweep_raw(trials_per_arm=None, trials=1, seeds=[])
    root, params_file = project(prepared, tmp_path, raw)
    assert main(["--params", str(params_file), "sweep", "tiny"]) == 0
    port = free_port()
    body = serve_and_fetch(
        ["--params", str(params_file), "dashboard", "tiny", "--port", str(port)],
        f"http://127.0.0.1:{port}/api/studies",
    )
    assert '"tiny-' in body


def test_sweep_command_errors_exit_2(prepared, tmp_path, capsys):
    root, params_file = project(prepared, tmp_path, sweep_raw())
    assert main(["--params", str(params_file), "sweep", "nope"]) == 2
    assert "unknown sweep 'nope'; the sweeps in params.yaml are: tiny" in capsys.readouterr().err
    assert main(["--params", str(params_file), "sweep", "tiny", "--workers", "0"]) == 2
    assert "--workers = 0" in capsys.readouterr().err
    assert main(["--params", str(params_file), "-S", "sweeps.tiny.storage=somewhere",
                 "sweep", "tiny"]) == 2  # fmt: skip
    assert "is not a database URL" in capsys.readouterr().err
    (root / "models/evaluator/digits.pt").unlink()
    assert main(["--params", str(params_file), "sweep", "tiny"]) == 2
    assert "genlab fit-evaluator digits" in capsys.readouterr().err
