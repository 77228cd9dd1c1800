"""Kernel Inception Distance: unbiased MMD^2, cubic polynomial kernel (Binkowski et al. 2018)."""

from __future__ import annotations

import torch
from torch import Tensor


def polynomial_kernel(x: Tensor, y: Tensor) -> Tensor:
    """k(x, y) = (x . y / d + 1)^3 for all pairs of rows of x (N, d) and y (M, d)."""
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _within_mean(k: Tensor, ids: Tensor | None) -> Tensor:
    """Mean of k over pairs of distinct points: off the diagonal and, for a bootstrap resample
    (``ids``: each row's original index), off the pairs of copies of one point, whose k(x, x)
    would bias the U-statistic upwards."""
    if ids is None:
        n = k.shape[0]
        return (k.sum() - k.diagonal().sum()) / (n * (n - 1))
    other = ids[:, None] != ids[None, :]
    pairs = other.sum()
    if pairs == 0:
        raise ValueError("unbiased MMD^2 needs at least 2 distinct samples per set")
    return (k * other).sum() / pairs


def mmd2_unbiased(
    k_xx: Tensor,
    k_yy: Tensor,
    k_xy: Tensor,
    x_ids: Tensor | None = None,  # original index of each row of x (bootstrap copies), or None
    y_ids: Tensor | None = None,
) -> float:
    """Unbiased MMD^2 (Gretton et al. 2012, eq. 3) from kernel matrices (m,m), (n,n), (m,n)."""
    m, n = k_xx.shape[0], k_yy.shape[0]
    if m < 2 or n < 2:
        raise ValueError("unbiased MMD^2 needs at least 2 samples per set")
    xx, yy = _within_mean(k_xx, x_ids), _within_mean(k_yy, y_ids)
    return float(xx + yy - 2.0 * k_xy.mean())


def kernel_inception_distance(
    f1: Tensor, f2: Tensor, *, num_subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """(mean, std) of unbiased MMD^2 over random subsets, as in Binkowski et al. 2018, sec. 2.3.

    Subsets are drawn without replacement (seeded torch.Generator); subset_size is clipped to
    min(len(f1), len(f2)); std is the population std (ddof=0) over subsets, as in torch-fidelity.
    """
    x = torch.as_tensor(f1).detach().to("cpu", torch.float64)
    y = torch.as_tensor(f2).detach().to("cpu", torch.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"need features (N1, D), (N2, D); got {tuple(x.shape)}, {tuple(y.shape)}")
    m = min(subset_size, x.shape[0], y.shape[0])
    gen = torch.Generator().manual_seed(seed)
    vals = []
    for _ in range(num_subsets):
        a = x[torch.randperm(x.shape[0], generator=gen)[:m]]
        b = y[torch.randperm(y.shape[0], generator=gen)[:m]]
        vals.append(
            mmd2_unbiased(polynomial_kernel(a, a), polynomial_kernel(b, b), polynomial_kernel(a, b))
        )
    t = torch.tensor(vals, dtype=torch.float64)
    return float(t.mean()), float(t.std(correction=0))
