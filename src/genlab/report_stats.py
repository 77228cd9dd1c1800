"""The report's answer first: per dataset, each headline metric of every variant with its
bootstrap interval, best first, the floor as a line, and which variants the data cannot tell
from the best; the variants trained on several seeds with their mean and interval over seeds.

"Cannot tell from the best" is a paired bootstrap test: every variant of a dataset is scored
against the same reference resamples (``genlab.metrics.bootstrap``), so replicate b of two
variants differ by the samples alone, and the basic interval of the difference (at the
evaluation's confidence) containing 0 marks the variant.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import torch

from genlab.io import atomic_path
from genlab.metrics.bootstrap import basic_interval, mean_interval
from genlab.paths import Paths

# metric -> True when lower is better; the first ones a dataset has are its headline: a paired
# translation's PSNR, SSIM and class preservation, an unpaired one's per direction, then the
# distribution metrics
HEADLINE = {"psnr": False, "ssim": False, "class_preservation": False,
            "a2b_class_preservation": False, "b2a_class_preservation": False,
            "a2b_frechet": True, "b2a_frechet": True,
            "frechet": True, "kid": True, "precision": False, "recall": False,
            "modes_captured": False, "high_quality_pct": False, "test_nll_nats": True}  # fmt: skip
MAX_HEADLINE = 4


def headline_keys() -> dict[str, bool]:
    """The keys the headline may rank (first found first), lower-is-better: ``HEADLINE``, then
    those the registered metrics declare (``genlab.metrics.metric(headline=...)``)."""
    from genlab.metrics import METRICS

    out = dict(HEADLINE)
    for name in METRICS.registered():
        out.update({k: v for k, v in METRICS.get(name).headline.items() if k not in out})
    return out


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _replicates(path: Path) -> pd.DataFrame | None:
    """The replicates CSV; None when missing or empty (evaluate.bootstrap: 0)."""
    if not path.is_file() or not path.read_text(encoding="utf-8").strip():
        return None
    return pd.read_csv(path)


def baseline_name(scored: dict) -> str:
    """The report's name of a dataset's baseline row (``fit-evaluator``'s ``baseline_name``)."""
    return f"{scored.get('baseline_name', 'baseline')} (baseline)"


def _baseline_replicates(path: Path) -> pd.DataFrame | None:
    """The baseline's columns (``baseline.<key>``) of the floor's replicates CSV."""
    frame = _replicates(path)
    if frame is None:
        return None
    columns = [c for c in frame.columns if c.startswith("baseline.")]
    return frame[columns].rename(columns=lambda c: c.removeprefix("baseline."))


def interval_text(point: float, low: float, high: float) -> str:
    """``4.34 [4.05, 4.66]``; a point without interval alone; missing as an empty string."""
    if point is None or (isinstance(point, float) and math.isnan(point)):
        return ""
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return f"{point:.4g}"
    return f"{point:.3g} [{low:.3g}, {high:.3g}]"


def same_as_best(
    point: float, best_point: float, reps: pd.Series, best_reps: pd.Series, level: float
) -> bool:
    """The paired basic interval of (variant - best) contains 0."""
    if point == best_point:
        return True
    diff = torch.tensor((reps - best_reps).to_numpy(dtype=float), dtype=torch.float64)
    low, high = basic_interval(point - best_point, diff, level, cut_at_zero=False)
    return low <= 0 <= high  # False for NaN (fewer than 2 replicates)


def headline(
    root: Path, variants: dict[str, dict], level: float
) -> dict[str, dict[str, pd.DataFrame]]:
    """dataset -> metric -> frame (variant, value, low, high, best, same_as_best), best first;
    the floor of the dataset is the frame's ``attrs["floor"]``."""
    paths, out = Paths(root), {}
    by_dataset: dict[str, list[str]] = {}
    for v, cfg in variants.items():
        by_dataset.setdefault(cfg["dataset"], []).append(v)
    for ds, names in by_dataset.items():
        metrics = {v: _json(paths.metrics(v)) for v in names}
        reps = {v: _replicates(paths.replicates(v)) for v in names}
        scored = _json(paths.evaluator_metrics(ds))
        floor = scored.get("floor", {})
        if scored.get("baseline"):  # e.g. bicubic upsampling, scored like a model
            names = [*names, baseline_name(scored)]
            metrics[names[-1]] = scored["baseline"]
            reps[names[-1]] = _baseline_replicates(paths.floor_replicates(ds))
        ranked = headline_keys()
        chosen = [m for m in ranked if any(m in metrics[v] for v in names)][:MAX_HEADLINE]
        out[ds] = {}
        for m in chosen:
            rows = [
                {
                    "variant": v,
                    "value": metrics[v][m],
                    "low": metrics[v].get(f"{m}_ci_low"),
                    "high": metrics[v].get(f"{m}_ci_high"),
                }  # fmt: skip
                for v in names
                if m in metrics[v]
            ]
            df = pd.DataFrame(rows).sort_values("value", ascending=ranked[m], kind="stable")
            best = df.iloc[0]["variant"]
            same = []
            for v, value in zip(df["variant"], df["value"], strict=True):
                r, rb = reps.get(v), reps.get(best)
                ok = r is not None and rb is not None and m in r and m in rb and len(r) == len(rb)
                same.append(
                    v == best or (ok and same_as_best(value, metrics[best][m], r[m], rb[m], level))
                )
            df["best"] = df["variant"] == best
            df["same_as_best"] = same
            df.attrs["floor"] = floor.get(m)
            df.attrs["lower_is_better"] = ranked[m]
            out[ds][m] = df.reset_index(drop=True)
    return out


def headline_table(frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """One row per variant (ordered by the first metric), one column per headline metric:
    ``value [low, high]``, bold for the best, ``≈`` for those not distinguishable from it; the
    floor as the last row (none where the dataset's kind has no floor, e.g. trajectories)."""
    first = next(iter(frames.values()))
    order = list(first["variant"])
    for df in frames.values():
        order += [v for v in df["variant"] if v not in order]
    has_floor = any(df.attrs.get("floor") is not None for df in frames.values())
    table = {"variant": order + (["real-vs-real floor"] if has_floor else [])}
    for m, df in frames.items():
        cells = {}
        for row in df.itertuples():
            text = interval_text(row.value, row.low, row.high)
            if row.best:
                text = f"**{text}**"
            elif row.same_as_best:
                text = f"≈ {text}"
            cells[row.variant] = text
        floor = df.attrs.get("floor")
        table[m] = [cells.get(v, "") for v in order]
        if has_floor:
            table[m].append("" if floor is None else f"{floor:.3g}")
    return pd.DataFrame(table)


def headline_figure(ds: str, frames: dict[str, pd.DataFrame], path: Path) -> None:
    """One panel per headline metric: each variant's value and interval, best at the top, the
    floor as a dashed line, variants not distinguishable from the best in orange."""
    from matplotlib.figure import Figure

    n = len(frames)
    height = 0.6 + 0.28 * max(len(df) for df in frames.values())
    fig = Figure(figsize=(3.6 * n, height + 0.6), dpi=90)
    axes = fig.subplots(1, n, squeeze=False)[0]
    for ax, (m, df) in zip(axes, frames.items(), strict=True):
        y = list(range(len(df)))[::-1]
        lows = (df["value"] - df["low"].astype(float)).clip(lower=0).fillna(0)
        highs = (df["high"].astype(float) - df["value"]).clip(lower=0).fillna(0)
        colors = ["tab:blue" if b else "tab:orange" if s else "tab:gray"
                  for b, s in zip(df["best"], df["same_as_best"], strict=True)]  # fmt: skip
        for yi, v, lo, hi, c in zip(y, df["value"], lows, highs, colors, strict=True):
            ax.errorbar(v, yi, xerr=[[lo], [hi]], fmt="o", color=c, capsize=3, ms=4)
        floor = df.attrs.get("floor")
        if floor is not None:
            ax.axvline(floor, ls="--", color="k", lw=1, label="real-vs-real floor")
            ax.legend(fontsize=7, loc="best")
        spread = df["value"].abs()
        if spread.max() > 10 * max(spread.median(), 1e-12):  # an outlier would squash the rest
            ax.set_xscale("symlog", linthresh=max(spread.median(), 1e-6))
        ax.set_yticks(y, list(df["variant"]), fontsize=7)
        better = "lower" if df.attrs["lower_is_better"] else "higher"
        ax.set_title(f"{m} ({better} is better)", fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
    fig.suptitle(f"{ds}: blue best, orange not distinguishable from it", fontsize=9)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp)


def seeds_table(root: Path, seeds: dict, seed: int, level: float) -> pd.DataFrame:
    """Per variant of ``seeds.variants`` and headline metric: the value on every seed, the mean
    over seeds with its Student-t interval, and the project seed's bootstrap interval."""
    paths, rows = Paths(root), []
    all_seeds = [seed, *seeds.get("seeds", [])]
    for v in seeds.get("variants", []):
        runs = {seed: _json(paths.metrics(v))}
        runs.update({s: _json(paths.metrics(f"{v}-seed{s}")) for s in seeds.get("seeds", [])})
        for m in HEADLINE:
            values = [runs[s].get(m) for s in all_seeds]
            if any(x is None for x in values):
                continue
            mean, low, high = mean_interval(values, level)
            main = runs[seed]
            rows.append({
                "variant": v, "metric": m,
                **{f"seed {s}": f"{x:.3g}" for s, x in zip(all_seeds, values, strict=True)},
                "mean over seeds [t interval]": interval_text(mean, low, high),
                f"seed {seed} [bootstrap]": interval_text(
                    main[m], main.get(f"{m}_ci_low", math.nan), main.get(f"{m}_ci_high", math.nan)
                ),
            })  # fmt: skip
    return pd.DataFrame(rows)
