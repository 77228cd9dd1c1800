"""Seeded bootstrap intervals for every metric (Efron & Tibshirani 1993, ch. 13-14).

A replicate draws the generated samples and the reference set again, each with replacement and
at its own size, and recomputes the metric from the features, kernels, distances and per-example
values computed once for the point estimate (``genlab.metrics.scores.Context.resample``): a
replicate costs index arithmetic, not a pass of the evaluator or the model.

The interval is the *basic* bootstrap interval [2 t - q(1 - a/2), 2 t - q(a/2)] (Davison &
Hinkley 1997, eq. 5.6), not the percentile interval [q(a/2), q(1 - a/2)]: plug-in statistics
such as the Frechet distance are biased upwards at these sample sizes, every replicate carries
the bias again, and the basic interval subtracts it where the percentile interval would double
it (``tests/test_bootstrap.py`` measures both on Gaussians with a closed-form distance). A
statistic that is never negative (the point and every replicate >= 0) keeps a lower end >= 0.

Test indices come from their own generator, so every variant of a dataset sees the same
reference resamples for a given seed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor


def resample_indices(
    n_samples: int, n_reference: int, replicates: int, seed: int
) -> Iterator[tuple[Tensor, Tensor]]:
    """``replicates`` pairs (sample rows, reference rows), each drawn with replacement."""
    gen_s = torch.Generator().manual_seed(seed)
    gen_r = torch.Generator().manual_seed(seed + 1)
    for _ in range(replicates):
        yield (
            torch.randint(n_samples, (n_samples,), generator=gen_s),
            torch.randint(n_reference, (n_reference,), generator=gen_r),
        )


def basic_interval(
    point: float, replicates: Tensor, level: float, cut_at_zero: bool = True
) -> tuple[float, float]:
    """The basic bootstrap interval at confidence ``level`` from replicate values (NaN: the
    statistic was undefined on that replicate, e.g. a class absent from it; dropped). With
    ``cut_at_zero`` a statistic that is never negative keeps a lower end >= 0 (not for a
    difference of two statistics)."""
    reps = torch.as_tensor(replicates, dtype=torch.float64)
    reps = reps[~torch.isnan(reps)]
    if not math.isfinite(point) or reps.numel() < 2:
        return math.nan, math.nan
    alpha = (1.0 - level) / 2.0
    q_low, q_high = torch.quantile(reps, torch.tensor([alpha, 1.0 - alpha], dtype=torch.float64))
    low, high = 2.0 * point - float(q_high), 2.0 * point - float(q_low)
    if cut_at_zero and point >= 0 and float(reps.min()) >= 0:
        low = max(low, 0.0)
    return low, max(high, low)


def percentile_interval(replicates: Tensor, level: float) -> tuple[float, float]:
    """The percentile interval, for comparison (tests; not used for reported numbers)."""
    reps = torch.as_tensor(replicates, dtype=torch.float64)
    reps = reps[~torch.isnan(reps)]
    alpha = (1.0 - level) / 2.0
    q = torch.quantile(reps, torch.tensor([alpha, 1.0 - alpha], dtype=torch.float64))
    return float(q[0]), float(q[1])


def mean_interval(values: list[float], level: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student-t interval of the mean of independent runs (e.g. seeds)."""
    from scipy.stats import t

    x = torch.tensor(values, dtype=torch.float64)
    mean = float(x.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    half = float(t.ppf(0.5 + level / 2, len(values) - 1)) * float(x.std()) / math.sqrt(len(values))
    return mean, mean - half, mean + half
