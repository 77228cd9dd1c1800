"""A study's tables, after Lucic et al. 2018 ("Are GANs Created Equal?"): every trial, per-arm
statistics, the expected best score as a function of the number of trials (and its figure), seed
variance of each arm's best configuration, fANOVA importances, and the best configurations as
variants to paste into params.yaml. Written to ``reports/sweeps/<study>/``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import yaml

from genlab.io import write_text
from genlab.sweeps.space import ARM_KEYS, arm_label, arms
from genlab.sweeps.storage import (
    RETRAIN_PREFIX,
    best_by_arm,
    retried_numbers,
    study_dir,
    trial_arm,
)

if TYPE_CHECKING:
    from genlab.sweeps.context import Context

TRIAL_COLUMNS = ["number", "state", "loss", "regularizer", "last_reported", "steps_done",
                 "train_seconds", "retried", "fail_reason"]  # fmt: skip


# ---------------------------------------------------------------- statistics
def expected_best(values: np.ndarray, ks: list[int]) -> pd.DataFrame:
    """The distribution of the best (lowest) of k trials drawn with replacement from ``values``
    (failed trials = inf), exactly: the limit of Lucic et al.'s bootstrap. Columns: k, mean,
    median, lo (2.5%), hi (97.5%)."""
    v = np.sort(np.asarray(values, dtype=float))
    n = len(v)
    rows = []
    for k in ks:
        i = np.arange(n)  # 0-based rank; min >= v[i] iff every draw has rank >= i
        survive = ((n - i) / n) ** k
        p = survive - np.append(survive[1:], 0.0)
        cdf = 1.0 - np.append(survive[1:], 0.0)
        finite = np.isfinite(v)
        mean = float(np.sum(p[finite] * v[finite])) if p[~finite].sum() == 0 else math.inf

        q = {name: float(v[min(int(np.searchsorted(cdf, level - 1e-12)), n - 1)])
             for name, level in (("median", 0.5), ("lo", 0.025), ("hi", 0.975))}  # fmt: skip
        rows.append({"k": k, "mean": mean, **q})
    return pd.DataFrame(rows)


def bootstrap_ci(values: np.ndarray, resamples: int, seed: int) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2 or not np.all(np.isfinite(values)):
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(resamples, len(values)), replace=True).mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return float(lo), float(hi)


# ---------------------------------------------------------------- tables
def trials_frame(study, ctx: Context) -> pd.DataFrame:
    key = ctx.sweep.objectives[0]
    retried = retried_numbers(study.get_trials(deepcopy=False))
    rows = []
    for t in study.get_trials(deepcopy=False):
        loss, reg = trial_arm(t, ctx)
        last = t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None
        rows.append({
            "number": t.number, "state": t.state.name, "loss": loss, "regularizer": reg,
            key: t.values[0] if t.values else math.nan,
            **({"seconds_objective": t.values[1]} if t.values and len(t.values) > 1 else {}),
            "last_reported": last, "steps_done": t.user_attrs.get("steps_done"),
            "train_seconds": t.user_attrs.get("seconds"),
            "retried": t.number in retried,
            "fail_reason": t.user_attrs.get("fail_reason", ""),
            **{f"param.{k}": v for k, v in t.params.items() if k not in ARM_KEYS},
        })  # fmt: skip
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=TRIAL_COLUMNS)


def write_tables(study, ctx: Context) -> dict[str, Any]:
    """trials.csv, table.csv, expected_best.csv/.png, importances.csv, best_params.yaml."""
    from optuna.trial import TrialState

    sweep, out = ctx.sweep, study_dir(ctx.root, ctx.name)
    key = sweep.objectives[0]
    df = trials_frame(study, ctx)
    if key not in df:
        df[key] = pd.Series(dtype=float)
    counted = df[~df["retried"].astype(bool)]
    _write_csv(df, out / "trials.csv")

    best = best_by_arm(study, ctx)
    finished = counted[counted["state"].isin(["COMPLETE", "PRUNED", "FAIL"])]
    rows, curves = [], []
    for arm in arms(sweep, ctx.base):
        sub = finished[(finished["loss"] == arm[0]) & (finished["regularizer"] == arm[1])]
        done = sub[sub["state"] == "COMPLETE"][key].to_numpy(dtype=float)
        row = {
            "loss": arm[0], "regularizer": arm[1], "trials": len(sub),
            "completed": int((sub["state"] == "COMPLETE").sum()),
            "pruned": int((sub["state"] == "PRUNED").sum()),
            "failed": int((sub["state"] == "FAIL").sum()),
            "best": float(done.min()) if len(done) else math.nan,
            "median": float(np.median(done)) if len(done) else math.nan,
            "iqr": float(np.subtract(*np.percentile(done, [75, 25]))) if len(done) else math.nan,
        }  # fmt: skip
        row.update(seed_stats(study, ctx, best.get(arm)))
        rows.append(row)
        pool = sub[sub["state"].isin(["COMPLETE", "FAIL"])][key].to_numpy(dtype=float)
        pool = np.where(np.isnan(pool), math.inf, pool)
        if len(pool):
            curve = expected_best(pool, list(range(1, len(pool) + 1)))
            labels = zip(["arm", *ARM_KEYS], [arm_label(arm), *arm], strict=True)
            for i, (col, value) in enumerate(labels):
                curve.insert(i, col, value)
            curves.append(curve)
    table = pd.DataFrame(rows)
    paths = {
        "dir": out, "trials": out / "trials.csv", "table": out / "table.csv",
        "expected_best": out / "expected_best.csv", "figure": out / "expected_best.png",
        "importances": out / "importances.csv", "best_params": out / "best_params.yaml",
    }  # fmt: skip
    _write_csv(table, paths["table"])
    curve_df = (
        pd.concat(curves, ignore_index=True)
        if curves
        else pd.DataFrame(columns=["arm", "k", "mean", "median", "lo", "hi"])
    )
    _write_csv(curve_df, paths["expected_best"])
    _expected_best_figure(curve_df, paths["figure"], f"{ctx.name}: {key} of the best of k trials")
    _write_csv(importances(study, ctx), paths["importances"])
    write_text(paths["best_params"], best_params_yaml(study, ctx, best))
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    counts = {
        "total": int(len(counted)),
        **{s.lower(): int((counted["state"] == s).sum()) if len(counted) else 0
           for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING", "WAITING")},
    }  # fmt: skip
    return {
        **paths,
        "counts": counts,
        "table_frame": table,
        "best_value": min((t.values[0] for t in complete), default=math.nan),
    }


def seed_stats(study, ctx: Context, trial) -> dict[str, Any]:
    """The arm's best configuration re-measured on the study's seeds (the search's own seed is
    excluded: its score was selected as the minimum, so it is biased low): count, failures,
    mean, sample std and a 95% percentile-bootstrap interval of the mean."""
    out = {"best_trial": None, "seeds": 0, "seeds_failed": 0, "seed_mean": math.nan,
           "seed_std": math.nan, "ci_low": math.nan, "ci_high": math.nan}  # fmt: skip
    if trial is None:
        return out
    records = [study.user_attrs.get(f"{RETRAIN_PREFIX}{trial.number}:{s}") for s in ctx.sweep.seeds]
    records = [r for r in records if r is not None]
    scores = np.asarray([r["value"] for r in records if r["value"] is not None], dtype=float)
    lo, hi = bootstrap_ci(scores, ctx.sweep.bootstrap, ctx.params.seed)
    return {
        "best_trial": trial.number, "seeds": len(scores),
        "seeds_failed": len(records) - len(scores),
        "seed_mean": float(scores.mean()) if len(scores) else math.nan,
        "seed_std": float(scores.std(ddof=1)) if len(scores) > 1 else math.nan,
        "ci_low": lo, "ci_high": hi,
    }  # fmt: skip


def _write_csv(df: pd.DataFrame, path: Path) -> None:
    write_text(path, df.to_csv(index=False, float_format="%.6g"))


def importances(study, ctx: Context) -> pd.DataFrame:
    """fANOVA importances of the parameters every completed trial has (seeded)."""
    import optuna
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if len(complete) < 2:
        return pd.DataFrame(columns=["param", "importance"])
    evaluator = optuna.importance.FanovaImportanceEvaluator(seed=ctx.params.seed)
    try:
        imp = optuna.importance.get_param_importances(
            study, evaluator=evaluator, target=lambda t: t.values[0]
        )
    except (RuntimeError, ValueError) as e:  # e.g. every parameter constant
        print(f"sweep {ctx.name}: no parameter importances ({e})")
        return pd.DataFrame(columns=["param", "importance"])
    return pd.DataFrame({"param": list(imp), "importance": list(imp.values())})


def best_params_yaml(study, ctx: Context, best: dict) -> str:
    """The overall best and each arm's best as entries to paste under ``variants:``."""
    key = ctx.sweep.objectives[0]
    lines = [
        f"# Best configurations of sweep {ctx.name!r} (study {ctx.study_name}), by {key} after "
        f"{ctx.sweep.steps} steps at seed {ctx.params.seed}.",
        "# Paste an entry under `variants:` in params.yaml; `dvc repro` then trains, samples and "
        "evaluates it",
        "# through the pipeline and reproduces the score of the trial it came from.",
    ]
    entries: list[tuple[str, Any]] = []
    if best:
        overall = min(best.values(), key=lambda t: t.values[0])
        entries.append((f"{ctx.name}_best", overall))
    for arm, t in sorted(best.items(), key=lambda kv: kv[1].values[0]):
        entries.append((f"{ctx.name}_{arm[0]}_{arm[1]}".replace(",", "_"), t))
    body: dict[str, Any] = {}
    for label, t in entries:
        lines.append(f"# {label}: trial {t.number}, {key} {t.values[0]:.6g}")
        body[label] = json.loads(json.dumps(t.user_attrs["config"]))  # a copy: no YAML anchors
    if not body:
        lines.append("# (no completed trial yet)")
        return "\n".join(lines) + "\n"
    return "\n".join(lines) + "\n" + yaml.safe_dump(body, sort_keys=False, width=100)


# ---------------------------------------------------------------- figure
def _expected_best_figure(curves: pd.DataFrame, path: Path, title: str) -> None:
    """One panel per loss, one line per regulariser: the median best score of k trials with its
    95% band, on a log axis (scores of different arms differ by orders of magnitude)."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from genlab.io import atomic_path

    losses = list(dict.fromkeys(curves["loss"])) or [""]
    regs = list(dict.fromkeys(curves["regularizer"]))
    ncols = min(3, len(losses))
    nrows = math.ceil(len(losses) / ncols)
    fig = Figure(figsize=(3.4 * ncols, 2.8 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True).ravel()
    for ax, loss in zip(axes, losses, strict=False):
        for reg, c in curves[curves["loss"] == loss].groupby("regularizer", sort=False):
            c = c[np.isfinite(c["median"])]
            color = f"C{regs.index(reg) % 10}"
            ax.plot(c["k"], c["median"], marker="o", ms=3, color=color, label=reg)
            ax.fill_between(c["k"], c["lo"], c["hi"].where(np.isfinite(c["hi"])), color=color,
                            alpha=0.15, lw=0)  # fmt: skip
        ax.set_title(loss, fontsize=9)
        ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3, which="both")
        ax.tick_params(labelsize=7)
        ax.set_xlabel("trials k", fontsize=8)
    for ax in axes[len(losses) :]:
        ax.set_axis_off()
    axes[0].set_ylabel("best of k (median, 95%)", fontsize=8)
    if len(curves):
        axes[0].legend(fontsize=7, title="regularizer", title_fontsize=7)
    fig.suptitle(title, fontsize=10)
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
