"""Precision, recall, density and coverage of generated features against real features.

Precision and recall (k = 3): Kynkaanniemi et al. 2019, "Improved precision and recall metric
for assessing generative models". Density and coverage (k = 5): Naeem et al. 2020, "Reliable
fidelity and diversity metrics for generative models". The formulas are in
``prdc_from_distances``.

Every metric compares a point with k-NN balls B(x, NND_k(x)): the ball around x whose radius is
the distance from x to its k-th nearest other point of the same set. Ball membership is strict,
``d(y, x) < NND_k(x)``, as in Naeem's reference implementation (the ``prdc`` package, 0.2), so
results match it exactly: a point at exactly the radius (x's k-th neighbour itself) is outside.
(Kynkaanniemi's own code tests ``<=``; the two differ only on ties, e.g. duplicated points.)

The core works on distance matrices and id vectors, so that a bootstrap computes distances once
and resamples real and fake sets by indexing::

    d_rr, d_ff, d_rf = feature_distances(real, fake)
    i, j = torch.randint(n, (n,)), torch.randint(m, (m,))  # resample with replacement
    prdc_from_distances(d_rr[i][:, i], d_ff[j][:, j], d_rf[i][:, j], real_ids=i, fake_ids=j)
"""

from __future__ import annotations

import torch
from torch import Tensor


def knn_radii(d_self: Tensor, k: int, ids: Tensor | None = None) -> Tensor:
    """NND_k of every row point: its k-th smallest distance to the OTHER points of its set.

    d_self (n, n) holds the distances within one set. "Other" excludes the diagonal and, when
    ``ids`` (n,) gives each row's original index, every column with the row's id: copies of the
    same point drawn twice by a bootstrap resample are not neighbours of each other, while each
    copy of a different point counts once per copy.
    """
    if d_self.ndim != 2 or d_self.shape[0] != d_self.shape[1]:
        raise ValueError(f"d_self must be a square (n, n) matrix; got {tuple(d_self.shape)}")
    if k < 1:
        raise ValueError(f"k must be at least 1; got {k}")
    n = d_self.shape[0]
    if ids is None:
        same = torch.eye(n, dtype=torch.bool, device=d_self.device)
    else:
        ids = torch.as_tensor(ids, device=d_self.device)
        if ids.shape != (n,):
            raise ValueError(f"ids must have shape ({n},); got {tuple(ids.shape)}")
        same = ids[:, None] == ids[None, :]
    others = n - same.sum(dim=1)
    if n <= k or int(others.min()) < k:
        raise ValueError(
            f"the k-th nearest neighbour (k={k}) needs more than k points in the set; got {n} "
            f"points, and as few as {int(others.min())} others for one of them (copies of the "
            "same id excluded)"
        )
    d = d_self.to(torch.float64).masked_fill(same, float("inf"))
    return torch.kthvalue(d, k, dim=1).values


def _radii(which: str, d_self: Tensor, k: int, ids: Tensor | None) -> Tensor:
    try:
        return knn_radii(d_self, k, ids)
    except ValueError as e:
        raise ValueError(f"{which} set: {e}") from None


def prdc_from_distances(
    d_rr: Tensor,  # (N, N) real-real distances
    d_ff: Tensor,  # (M, M) fake-fake distances
    d_rf: Tensor,  # (N, M) real-fake distances
    *,
    k_pr: int = 3,  # k of the precision/recall manifolds (Kynkaanniemi et al. 2019)
    k_dc: int = 5,  # k of the density/coverage balls (Naeem et al. 2020)
    real_ids: Tensor | None = None,  # (N,) original index of each real row (bootstrap copies)
    fake_ids: Tensor | None = None,  # (M,) original index of each fake row
) -> dict[str, float]:
    """Precision, recall, density and coverage from distance matrices, in float64.

    With r_i real, f_j fake and 1[y in B(x, NND_k(x))] = 1[d(y, x) < NND_k(x)]:
      precision = (1/M) sum_j 1[exists i: f_j in B(r_i, NND_k(r_i))],  k = k_pr
      recall    = (1/N) sum_i 1[exists j: r_i in B(f_j, NND_k(f_j))],  k = k_pr
      density   = (1/(k M)) sum_j sum_i 1[f_j in B(r_i, NND_k(r_i))],  k = k_dc
      coverage  = (1/N) sum_i 1[exists j: f_j in B(r_i, NND_k(r_i))],  k = k_dc
    Radii come from ``knn_radii``, so real_ids / fake_ids keep bootstrap copies of one point
    from being each other's neighbours.
    """
    n, m = d_rr.shape[0], d_ff.shape[0]
    if d_rf.shape != (n, m):
        raise ValueError(f"d_rf must be (N, M) = ({n}, {m}); got {tuple(d_rf.shape)}")
    d_rf = d_rf.to(torch.float64)
    r_real_pr = _radii("real", d_rr, k_pr, real_ids)
    r_fake_pr = _radii("fake", d_ff, k_pr, fake_ids)
    r_real_dc = _radii("real", d_rr, k_dc, real_ids)
    in_real_pr = d_rf < r_real_pr[:, None]  # (N, M): f_j inside the precision ball of r_i
    in_fake_pr = d_rf < r_fake_pr[None, :]  # (N, M): r_i inside the recall ball of f_j
    in_real_dc = d_rf < r_real_dc[:, None]  # (N, M): f_j inside the density ball of r_i
    return {
        "precision": float(in_real_pr.any(dim=0).double().mean()),
        "recall": float(in_fake_pr.any(dim=1).double().mean()),
        "density": float(in_real_dc.sum(dtype=torch.float64) / (k_dc * m)),
        "coverage": float(in_real_dc.any(dim=1).double().mean()),
    }


def feature_distances(real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Euclidean (d_rr, d_ff, d_rf) in float64; exactly 0 between identical feature vectors.

    torch.cdist's fast matrix-product form leaves ~1e-6 of rounding where it should give 0, which
    would decide strict ball membership at random for copies of a point (a collapsed generator,
    a fake equal to a real sample); distances between identical rows are therefore set to 0.
    """
    x = torch.as_tensor(real).detach().to(torch.float64)
    y = torch.as_tensor(fake).detach().to(torch.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"need features (N, D), (M, D); got {tuple(x.shape)}, {tuple(y.shape)}")
    if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        raise ValueError("features contain NaN or inf")
    _, key = torch.unique(torch.cat([x, y]), dim=0, return_inverse=True)
    key_x, key_y = key[: x.shape[0]], key[x.shape[0] :]

    def dist(a: Tensor, b: Tensor, key_a: Tensor, key_b: Tensor) -> Tensor:
        return torch.cdist(a, b).masked_fill(key_a[:, None] == key_b[None, :], 0.0)

    return dist(x, x, key_x, key_x), dist(y, y, key_y, key_y), dist(x, y, key_x, key_y)


def prdc(real: Tensor, fake: Tensor, *, k_pr: int = 3, k_dc: int = 5) -> dict[str, float]:
    """Precision, recall (k_pr-NN) and density, coverage (k_dc-NN) of fake (M, D) against real
    (N, D) features; see ``prdc_from_distances`` for the formulas."""
    return prdc_from_distances(*feature_distances(real, fake), k_pr=k_pr, k_dc=k_dc)
