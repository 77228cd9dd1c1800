"""The trajectory figures ``genlab sample`` writes (Gupta et al. 2018, fig. 4 style), one panel
per test scene, one colour per agent:

- ``grid.png``: the observed path (solid), the k predicted futures (thin) and the true future
  (dashed);
- ``best_of_k.png``: per agent the prediction minADE picks (solid), the constant-velocity
  baseline (dotted) and the true future (dashed).
"""

from __future__ import annotations

import math
from pathlib import Path

from matplotlib.figure import Figure  # Agg canvas, no pyplot state
from torch import Tensor

from genlab.families.base import FigureContext
from genlab.io import atomic_path
from genlab.metrics.trajectory import constant_velocity

SCENES = 6  # panels per figure
CAPTIONS = {
    "best_of_k": "per test scene: the best of k predictions per agent by ADE (solid), constant "
    "velocity (dotted), the true future (dashed)",
}


def _panels(n: int) -> tuple[Figure, list]:
    cols = min(3, n)
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(3.2 * cols, 3.2 * rows), layout="constrained")
    return fig, list(fig.subplots(rows, cols, squeeze=False).ravel())


def _save(fig: Figure, path: Path) -> Path:
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    return path


def scenes_figure(observed: Tensor, future: Tensor, pred: Tensor, path: Path,
                  title: str = "") -> Path:  # fmt: skip
    """Scenes ``observed`` (N, A, T_obs, 2), ``future`` (N, A, T, 2) with predictions ``pred``
    (N, k, A, T, 2): observed solid, predictions thin, truth dashed."""
    fig, axes = _panels(len(observed))
    for ax, obs, fut, k_pred in zip(axes, observed, future, pred, strict=False):
        for a in range(obs.shape[0]):
            colour = f"C{a % 10}"
            for p in k_pred[:, a]:
                line = [obs[a, -1].tolist(), *p.tolist()]
                ax.plot(*zip(*line, strict=True), color=colour, lw=0.5, alpha=0.35)
            ax.plot(obs[a, :, 0], obs[a, :, 1], color=colour, lw=2, marker=".", ms=3)
            truth = [obs[a, -1].tolist(), *fut[a].tolist()]
            ax.plot(*zip(*truth, strict=True), color=colour, lw=1.5, ls="--")
        _style(ax)
    return _finish(fig, axes, len(observed), title, path)


def best_of_k_figure(observed: Tensor, future: Tensor, pred: Tensor, path: Path,
                     title: str = "") -> Path:  # fmt: skip
    """Per agent its best prediction by ADE, the constant-velocity extrapolation and the truth."""
    fig, axes = _panels(len(observed))
    ade = (pred - future[:, None]).norm(dim=-1).mean(-1)  # (N, k, A)
    best = ade.argmin(1)  # (N, A)
    cv = constant_velocity(observed, future.shape[-2])
    for i, (ax, obs, fut) in enumerate(zip(axes, observed, future, strict=False)):
        for a in range(obs.shape[0]):
            colour = f"C{a % 10}"
            ax.plot(obs[a, :, 0], obs[a, :, 1], color=colour, lw=2, marker=".", ms=3)
            for p, style in ((pred[i, best[i, a], a], "-"), (cv[i, a], ":"), (fut[a], "--")):
                line = [obs[a, -1].tolist(), *p.tolist()]
                ax.plot(*zip(*line, strict=True), color=colour, lw=1.2, ls=style)
        _style(ax)
    return _finish(fig, axes, len(observed), title, path)


def _style(ax) -> None:
    ax.set_aspect("equal", adjustable="datalim")
    ax.tick_params(labelsize=6)
    ax.grid(alpha=0.3)


def _finish(fig: Figure, axes: list, used: int, title: str, path: Path) -> Path:
    for ax in axes[used:]:
        ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=9)
    return _save(fig, path)


def trajectory_figures(ctx: FigureContext) -> list[Path]:
    """``grid.png`` and ``best_of_k.png`` of the first test scenes of the sample batch."""
    n = min(SCENES, len(ctx.samples))
    observed = ctx.inputs["observed"][:n].float().cpu()
    future = ctx.inputs["future"][:n].float().cpu()
    pred = ctx.samples[:n].float().cpu()
    k = pred.shape[1]
    return [
        scenes_figure(observed, future, pred, ctx.out / "grid.png",
                      f"observed (solid), {k} predictions (thin), truth (dashed); metres"),
        best_of_k_figure(observed, future, pred, ctx.out / "best_of_k.png",
                         f"best of {k} by ADE (solid), constant velocity (dotted), truth (dashed)"),
    ]  # fmt: skip


__all__ = ["CAPTIONS", "best_of_k_figure", "scenes_figure", "trajectory_figures"]
