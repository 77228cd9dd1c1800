"""How trajectory predictions are judged (Gupta et al. 2018, sec. 4): the best-of-k average and
final displacement errors, and the evaluator kind of datasets whose ``x`` is a trajectory.

Samples are (N scenes, k predictions, agents, steps, 2) positions; ``ctx.source["future"]``
(N, agents, steps, 2) holds the true future of each scene's agents. No network judges them, and
a real-vs-real floor would mean nothing (a true future scored against itself is 0): the
reference row is the constant-velocity baseline instead, scored exactly like a model.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genlab.metrics.kinds import EvaluatorKind, evaluator_kind
from genlab.metrics.scores import Context, metric

BASELINE = "constant velocity"


def with_k(pred: Tensor) -> Tensor:
    """Predictions as (N, k, agents, steps, 2): a single prediction per scene (N, agents,
    steps, 2) is k = 1."""
    return pred[:, None] if pred.dim() == 4 else pred


def min_displacements(pred: Tensor, future: Tensor) -> tuple[Tensor, Tensor]:
    """Per scene, the mean over agents of minADE_k and of minFDE_k (Gupta et al. 2018, sec. 4):
    for each agent the best of its k predictions by ADE (mean L2 distance over the steps) and,
    separately, by FDE (L2 distance at the last step). ``pred`` (N, k, A, T, 2) or (N, A, T, 2),
    ``future`` (N, A, T, 2) -> two (N,) float64 tensors, in the units of the positions."""
    pred = with_k(pred).double()
    dist = (pred - future.double()[:, None]).norm(dim=-1)  # (N, k, A, T)
    ade = dist.mean(-1).amin(1)  # (N, A): the best of k, per agent
    fde = dist[..., -1].amin(1)
    return ade.mean(-1), fde.mean(-1)


def _displacement_rows(ctx: Context) -> dict[str, Tensor]:
    ade, fde = min_displacements(ctx.samples, ctx.source["future"])
    return {"samples.min_ade": ade, "samples.min_fde": fde}


@metric(
    "displacement", requires=("trajectory",), settings=("k",),
    ranges={"min_ade": (0.0, math.inf), "min_fde": (0.0, math.inf)},
    descriptions={
        "min_ade": "minADE_k: per agent the best of k predicted futures by mean distance to the "
                   "true positions over the predicted steps, in metres, averaged over agents "
                   "and scenes (Gupta et al. 2018; lower is better)",
        "min_fde": "minFDE_k: per agent the best of k predictions by distance to the true final "
                   "position, in metres, averaged over agents and scenes (lower is better)",
        "k": "predictions per scene the best is chosen from (a deterministic baseline has 1)",
    },
    headline={"min_ade": True, "min_fde": True},
)  # fmt: skip
def _displacement(ctx: Context) -> dict[str, float]:
    """minADE_k and minFDE_k of the scored scenes against their true futures (the source rows);
    per-scene values are computed once and a bootstrap replicate averages its rows'."""
    if ctx.source is None or "future" not in ctx.source:
        return {}
    rows = ctx.per_row("displacement", _displacement_rows)
    return {"min_ade": float(rows["samples.min_ade"].mean()),
            "min_fde": float(rows["samples.min_fde"].mean()),
            "k": with_k(ctx.samples).shape[1]}  # fmt: skip


def constant_velocity(observed: Tensor, steps: int) -> Tensor:
    """Each agent keeps its last observed velocity (the last displacement per frame):
    p_{t+s} = p_t + s (p_t - p_{t-1}), s = 1..steps. ``observed`` (N, A, T_obs, 2) ->
    (N, A, steps, 2)."""
    last, velocity = observed[:, :, -1], observed[:, :, -1] - observed[:, :, -2]
    s = torch.arange(1, steps + 1, dtype=observed.dtype, device=observed.device)
    return last[:, :, None] + s[:, None] * velocity[:, :, None]


def _constant_velocity_baseline(
    train: dict, test: dict, meta: dict, sample_n: int, seed: int
) -> tuple[str, dict]:
    """The first min(sample.n, n_test) test scenes, as a model's sample stage answers them:
    one prediction each (k = 1; k copies of it would score the same)."""
    n = min(sample_n, len(test["observed"]))
    observed, future = test["observed"][:n], test["future"][:n]
    x = constant_velocity(observed, future.shape[-2])[:, None]
    return BASELINE, {"x": x, "source": {"observed": observed, "future": future}}


evaluator_kind(
    "trajectory", EvaluatorKind(floor=False, baseline=_constant_velocity_baseline)
)  # fmt: skip

__all__ = ["BASELINE", "constant_velocity", "min_displacements", "with_k"]
