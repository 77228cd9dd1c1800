"""Tests for genlab.metrics.prdc: Naeem's reference package, known answers, bootstrap ids."""

from __future__ import annotations

import pytest
import torch

from genlab.metrics.prdc import feature_distances, knn_radii, prdc, prdc_from_distances

KEYS = ("precision", "recall", "density", "coverage")


def _gauss(n: int, d: int, seed: int, shift: float = 0.0, scale: float = 1.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=gen, dtype=torch.float64) * scale + shift


# ---------------------------------------------------------------- reference implementation


@pytest.mark.parametrize(
    ("n", "m", "d", "shift", "scale"),
    [
        (200, 300, 16, 0.5, 1.0),
        (150, 100, 8, 1.0, 1.5),
        (120, 120, 2, 0.0, 0.7),
        (80, 50, 32, 0.2, 1),
    ],
)
def test_matches_prdc_package(n: int, m: int, d: int, shift: float, scale: float) -> None:
    ref = pytest.importorskip("prdc")
    real, fake = _gauss(n, d, seed=n + d), _gauss(m, d, seed=m + 7 * d, shift=shift, scale=scale)
    ours = prdc(real, fake, k_pr=3, k_dc=5)
    pr = ref.compute_prdc(real.numpy(), fake.numpy(), nearest_k=3)
    dc = ref.compute_prdc(real.numpy(), fake.numpy(), nearest_k=5)
    expected = {
        "precision": pr["precision"],
        "recall": pr["recall"],
        "density": dc["density"],
        "coverage": dc["coverage"],
    }
    for key in KEYS:
        assert abs(ours[key] - float(expected[key])) <= 1e-12, (key, ours[key], expected[key])
    assert 0.0 < ours["precision"] < 1.0 or shift == 0.0  # the test is not vacuous


def test_strict_ball_membership_matches_prdc_package() -> None:
    """1-D points 0..9, k = 3: NND_3(0) = NND_3(9) = 3. Fakes at -3 and 12 lie exactly on those
    radii and are outside (strict <, as in prdc); the other six are inside a ball, so precision
    = 6/8. With <= it would be 1. (prdc needs k + 2 points per set, hence 8 fakes.)"""
    ref = pytest.importorskip("prdc")
    real = torch.arange(10, dtype=torch.float64)[:, None]
    fake = torch.tensor([-3.0, -2.5, 3.5, 4.5, 5.5, 6.5, 11.5, 12.0], dtype=torch.float64)[:, None]
    ours = prdc(real, fake, k_pr=3, k_dc=3)
    assert ours["precision"] == 0.75
    assert ours["precision"] == float(ref.compute_prdc(real.numpy(), fake.numpy(), 3)["precision"])
    assert knn_radii(feature_distances(real, real)[0], 3)[[0, 5, 9]].tolist() == [3.0, 2.0, 3.0]


# ---------------------------------------------------------------- known answers


def test_identical_sets() -> None:
    """fake = real: each f_j = r_j is at distance 0 from its own ball's centre, so precision =
    recall = coverage = 1. Density is exactly 1, not (k+1)/k: with strict membership the ball
    B(r_i, NND_k(r_i)) holds r_i and its k-1 nearest neighbours (the k-th sits on the boundary),
    so sum_j sum_i 1[...] = k N and density = k N / (k N) (Gaussian data: no distance ties)."""
    x = _gauss(100, 8, seed=3)
    assert prdc(x, x.clone()) == {"precision": 1.0, "recall": 1.0, "density": 1.0, "coverage": 1.0}


def test_disjoint_far_apart_sets() -> None:
    real, fake = _gauss(60, 4, seed=4), _gauss(70, 4, seed=5, shift=1000.0)
    assert prdc(real, fake) == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_collapsed_generator() -> None:
    """All M fakes equal r_0, a real outlier far from the other N-1 (clustered) reals.
    precision = 1: every fake is at distance 0 < NND_3(r_0). recall = 0: the fake radii are 0
    (every other fake is a copy) and nothing is at distance < 0 (with <= it would be 1/N, r_0).
    coverage = 1/N: only r_0's ball holds a fake. density = M / (k M) = 1/k: each fake lies in
    r_0's ball only."""
    n, m, k_dc = 50, 40, 5
    real = _gauss(n, 6, seed=6)
    real[0] = 100.0
    fake = real[0].expand(m, -1).clone()
    out = prdc(real, fake, k_pr=3, k_dc=k_dc)
    assert out == {"precision": 1.0, "recall": 0.0, "density": 1.0 / k_dc, "coverage": 1.0 / n}


def test_copies_have_exactly_zero_distance() -> None:
    """The matrix-product cdist leaves ~1e-6 where copies should be at distance 0."""
    real = _gauss(40, 64, seed=7) * 30.0
    fake = torch.cat([real[:5], real[:5], _gauss(10, 64, seed=8)])
    d_rr, d_ff, d_rf = feature_distances(real, fake)
    assert (d_rr.diagonal() == 0).all() and (d_ff.diagonal() == 0).all()
    assert (d_ff[:5, 5:10].diagonal() == 0).all() and (d_rf[:5, :5].diagonal() == 0).all()
    direct = torch.cdist(real, fake, compute_mode="donot_use_mm_for_euclid_dist")
    assert (d_rf - direct).abs().max() < 1e-9


# ---------------------------------------------------------------- bootstrap ids


def test_knn_radii_ids_exclude_own_copies_count_others() -> None:
    """1-D points [0, 1, 3, 6], resampled as ids [0, 0, 1, 2, 3], k = 2.
    Rows of point 0 ignore their twin: distances 1, 3, 6 -> 3 (without ids: 0, 1, 3, 6 -> 1).
    Point 1 counts both copies of point 0: 1, 1, 2, 5 -> 1 (once per point would give 2).
    Point 3: 3, 3, 2, 3 -> 3. Point 6: 6, 6, 5, 3 -> 5."""
    base = torch.tensor([0.0, 1.0, 3.0, 6.0], dtype=torch.float64)[:, None]
    ids = torch.tensor([0, 0, 1, 2, 3])
    d = torch.cdist(base[ids], base[ids])
    assert knn_radii(d, 2, ids).tolist() == [3.0, 3.0, 1.0, 3.0, 5.0]
    assert knn_radii(d, 2).tolist() == [1.0, 1.0, 1.0, 3.0, 5.0]


def test_identity_resample_equals_full_computation() -> None:
    real, fake = _gauss(60, 5, seed=9), _gauss(45, 5, seed=10, shift=0.3)
    d_rr, d_ff, d_rf = feature_distances(real, fake)
    ids_r, ids_f = torch.arange(60), torch.arange(45)
    boot = prdc_from_distances(d_rr, d_ff, d_rf, real_ids=ids_r, fake_ids=ids_f)
    assert boot == prdc(real, fake)


def test_every_point_twice_counts_each_copy() -> None:
    """Resample every real and every fake point twice. With ids a row's neighbours are the two
    copies of each other point, so its k-th smallest distance is the original ceil(k/2)-th:
    k_pr = 3 -> NND_2 and k_dc = 5 -> NND_3, for both sets. Precision, recall and coverage then
    equal the original sets' values at (k_pr, k_dc) = (2, 3); density counts 2 x 2 copies of each
    (ball, fake) pair over k M = 5 (2 M), i.e. 4 / 10 against 1 / 3: 1.2 times the original's.
    Without ids the twin at distance 0 would shrink the radii to NND_1 and NND_2."""
    real, fake = _gauss(60, 5, seed=11), _gauss(45, 5, seed=12, shift=0.3)
    d_rr, d_ff, d_rf = feature_distances(real, fake)
    base = prdc_from_distances(d_rr, d_ff, d_rf, k_pr=2, k_dc=3)
    i, j = torch.arange(60).repeat_interleave(2), torch.arange(45).repeat(2)
    twice = (d_rr[i][:, i], d_ff[j][:, j], d_rf[i][:, j])
    out = prdc_from_distances(*twice, k_pr=3, k_dc=5, real_ids=i, fake_ids=j)
    for key in ("precision", "recall", "coverage"):
        assert out[key] == base[key], key
    assert out["density"] == pytest.approx(1.2 * base["density"], rel=1e-14, abs=0)
    no_ids = prdc_from_distances(*twice, k_pr=3, k_dc=5)
    smaller = prdc_from_distances(d_rr, d_ff, d_rf, k_pr=1, k_dc=2)
    for key in ("precision", "recall", "coverage"):
        assert no_ids[key] == smaller[key] < out[key], key


# ---------------------------------------------------------------- errors


def test_too_few_points_raise() -> None:
    x = _gauss(20, 3, seed=13)
    with pytest.raises(ValueError, match=r"real set: .*k=5"):
        prdc(x[:5], x)  # 5 real points, k_dc = 5
    with pytest.raises(ValueError, match=r"fake set: .*k=3"):
        prdc(x, x[:3])  # 3 fake points, k_pr = 3
    d = torch.cdist(x[:5], x[:5])
    with pytest.raises(ValueError, match="as few as 2 others"):
        knn_radii(d, 3, torch.tensor([0, 0, 0, 1, 2]))  # the copies of point 0 see only 2 others
    with pytest.raises(ValueError, match="at least 1"):
        knn_radii(d, 0)
    with pytest.raises(ValueError, match="features"):
        prdc(x, x[:, :2])
