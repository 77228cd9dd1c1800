"""Tests for genlab.metrics against closed forms, scipy references and hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from torch.testing import assert_close

from genlab.metrics import (
    Evaluator,
    class_coverage,
    fit_evaluator,
    frechet_distance,
    frechet_from_features,
    gaussian_stats,
    kernel_inception_distance,
    load_evaluator,
    mmd2_unbiased,
    mode_metrics,
    predict,
    save_evaluator,
)
from genlab.metrics.coverage import EPS


def _random_spd(d: int, gen: torch.Generator) -> torch.Tensor:
    a = torch.randn(d, d, generator=gen, dtype=torch.float64)
    return a @ a.T / d + 0.1 * torch.eye(d, dtype=torch.float64)


# ---------------------------------------------------------------- Frechet distance


def test_frechet_diagonal_closed_form() -> None:
    mu1, mu2 = torch.tensor([0.0, 1.0, -2.0]), torch.tensor([1.0, 1.0, 0.0])
    a, b = torch.tensor([1.0, 4.0, 0.25]), torch.tensor([9.0, 1.0, 0.25])
    expected = 5.0 + ((a.sqrt() - b.sqrt()) ** 2).sum().item()  # 5 + 4 + 1 + 0
    assert_close(frechet_distance(mu1, torch.diag(a), mu2, torch.diag(b)), expected)
    assert_close(expected, 10.0)


def test_frechet_full_covariance_matches_scipy_sqrtm() -> None:
    gen = torch.Generator().manual_seed(0)
    d = 6
    mu1, mu2 = torch.randn(2, d, generator=gen, dtype=torch.float64)
    s1, s2 = _random_spd(d, gen), _random_spd(d, gen)
    covmean = scipy.linalg.sqrtm(s1.numpy() @ s2.numpy()).real
    ref = float(((mu1 - mu2) ** 2).sum() + np.trace(s1.numpy() + s2.numpy() - 2 * covmean))
    assert_close(frechet_distance(mu1, s1, mu2, s2), ref, rtol=1e-9, atol=1e-9)


def test_frechet_identity_and_symmetry() -> None:
    gen = torch.Generator().manual_seed(1)
    mu, s = torch.randn(5, generator=gen), _random_spd(5, gen)
    mu2, s2 = torch.randn(5, generator=gen), _random_spd(5, gen)
    assert_close(frechet_distance(mu, s, mu, s), 0.0, rtol=0, atol=1e-10)
    assert_close(frechet_distance(mu, s, mu2, s2), frechet_distance(mu2, s2, mu, s))
    # Rank-deficient (singular) covariances, as with ReLU features, stay finite and exact.
    v = torch.randn(5, 2, generator=gen, dtype=torch.float64)
    assert_close(frechet_distance(mu, v @ v.T, mu, v @ v.T), 0.0, rtol=0, atol=1e-7)


def test_gaussian_stats_unbiased() -> None:
    x = torch.randn(50, 4, generator=torch.Generator().manual_seed(2))
    mu, sigma = gaussian_stats(x)
    assert mu.dtype == sigma.dtype == torch.float64
    assert_close(mu, torch.from_numpy(x.double().numpy().mean(0)))
    assert_close(sigma, torch.from_numpy(np.cov(x.double().numpy(), rowvar=False, ddof=1)))


def test_frechet_from_features_approaches_closed_form() -> None:
    gen = torch.Generator().manual_seed(3)
    n = 200_000
    f1 = torch.randn(n, 2, generator=gen, dtype=torch.float64) * torch.tensor([1.0, 2.0])
    f2 = torch.randn(n, 2, generator=gen, dtype=torch.float64) * torch.tensor([3.0, 1.0]) + 1.0
    expected = 2.0 + (1 - 3) ** 2 + (2 - 1) ** 2  # ||mu||^2 + sum (sqrt(a) - sqrt(b))^2 = 7
    assert_close(frechet_from_features(f1, f2), expected, rtol=0.02, atol=0.0)


# ---------------------------------------------------------------- KID


def _mmd2_brute_force(x: torch.Tensor, y: torch.Tensor) -> float:
    def k(a: torch.Tensor, b: torch.Tensor) -> float:
        return (float(a @ b) / len(a) + 1.0) ** 3

    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_mmd2_unbiased_matches_double_loop() -> None:
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    y = torch.randn(7, 3, generator=gen, dtype=torch.float64) + 0.5
    k = lambda a, b: (a @ b.T / 3 + 1) ** 3  # noqa: E731
    ref = _mmd2_brute_force(x, y)
    assert_close(mmd2_unbiased(k(x, x), k(y, y), k(x, y)), ref, rtol=1e-12, atol=1e-12)
    # One subset covering both sets (subset_size clipped to 5): a permutation of the full sets.
    mean, std = kernel_inception_distance(x[:5], y[:5], num_subsets=1, subset_size=100)
    assert_close(mean, _mmd2_brute_force(x[:5], y[:5]), rtol=1e-12, atol=1e-12)
    assert std == 0.0


def test_kid_same_distribution_near_zero_and_shift_large() -> None:
    gen = torch.Generator().manual_seed(5)
    f1, f2 = torch.randn(2, 2000, 16, generator=gen)
    mean, std = kernel_inception_distance(f1, f2, num_subsets=50, subset_size=500)
    assert std > 0 and abs(mean) < std
    mean_s, std_s = kernel_inception_distance(f1, f2 + 0.5, num_subsets=50, subset_size=500)
    assert mean_s > 0 and mean_s > 10 * std_s and mean_s > 50 * abs(mean)
    # Seeded: same seed reproduces exactly, another seed differs.
    assert kernel_inception_distance(f1, f2, num_subsets=5, subset_size=100) == (
        kernel_inception_distance(f1, f2, num_subsets=5, subset_size=100)
    )
    assert kernel_inception_distance(f1, f2, num_subsets=5, subset_size=100, seed=1) != (
        kernel_inception_distance(f1, f2, num_subsets=5, subset_size=100)
    )


# ---------------------------------------------------------------- class coverage


def test_class_coverage_hand_computed() -> None:
    # p = [1/2, 1/2, 0], q = [1/4, 1/4, 1/2]: KL = 2 * 1/2 * log(2) = log 2.
    out = class_coverage(torch.tensor([0, 0, 1, 1]), torch.tensor([0, 1, 2, 2]), 3)
    assert out["classes_covered"] == 2
    assert_close(out["class_kl"], math.log(2))
    # Matching histograms: KL = 0, all classes covered.
    out = class_coverage(torch.tensor([2, 1, 0, 0]), torch.tensor([0, 1, 0, 2]), 3)
    assert out == {"classes_covered": 3, "class_kl": 0.0}
    # A predicted class absent from the real data: its empty real bin becomes EPS.
    out = class_coverage(torch.tensor([0, 2]), torch.tensor([0, 0, 1, 1]), 3)
    assert out["classes_covered"] == 2
    assert_close(out["class_kl"], 0.5 * math.log(0.5 / 0.5) + 0.5 * math.log(0.5 / EPS))


# ---------------------------------------------------------------- 2-D mode metrics


def _ring(m: int = 8, radius: float = 2.0) -> torch.Tensor:
    angle = torch.arange(m, dtype=torch.float64) * 2 * math.pi / m
    return radius * torch.stack([angle.cos(), angle.sin()], dim=1)


def test_mode_metrics_three_of_eight_modes() -> None:
    centers, std = _ring(), 0.02
    on_modes = centers[[0, 3, 5]].repeat_interleave(10, dim=0)  # 30 samples, 10 per mode
    jitter = torch.tensor([2.9 * std, 0.0], dtype=torch.float64)  # just inside 3 std
    out = mode_metrics(on_modes + jitter, centers, std)
    assert out["modes_captured"] == 3
    assert_close(out["high_quality_pct"], 100.0)
    assert_close(out["mode_kl"], math.log(8 / 3))
    # 10 points at the origin (distance 2 from every centre) and 10 just outside 3 std.
    far = torch.cat([torch.zeros(10, 2), centers[[1]] + torch.tensor([3.1 * std, 0.0])])
    far = far.double()
    out = mode_metrics(torch.cat([on_modes, far]), centers, std, min_count=1)
    assert out["modes_captured"] == 3
    assert_close(out["high_quality_pct"], 100.0 * 30 / 41)
    assert_close(out["mode_kl"], math.log(8 / 3))


def test_mode_metrics_unequal_counts_and_min_count() -> None:
    centers = _ring()
    x = centers[[0] * 6 + [1] * 3 + [2] * 1]
    p = torch.tensor([0.6, 0.3, 0.1], dtype=torch.float64)
    out = mode_metrics(x, centers, 0.1, min_count=3)
    assert out["modes_captured"] == 2
    assert_close(out["mode_kl"], float((p * (8 * p).log()).sum()))
    # Default min_count for N = 2500 is PacGAN's 20.
    x = centers[[0] * 2481 + [1] * 19]
    assert mode_metrics(x, centers, 0.1)["modes_captured"] == 1
    x = centers[[0] * 2480 + [1] * 20]
    assert mode_metrics(x, centers, 0.1)["modes_captured"] == 2


def test_mode_metrics_no_high_quality_samples() -> None:
    out = mode_metrics(torch.zeros(5, 2), _ring(), 0.02)
    assert out == {"modes_captured": 0, "high_quality_pct": 0.0, "mode_kl": math.log(8)}


# ---------------------------------------------------------------- evaluator


@pytest.fixture(scope="module")
def digits() -> tuple[dict, dict]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = torch.tensor(d.data, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16 * 2 - 1
    y = torch.tensor(d.target, dtype=torch.int64)
    tr, te = train_test_split(np.arange(len(y)), test_size=0.2, stratify=d.target, random_state=0)
    return {"x": x[tr], "y": y[tr]}, {"x": x[te], "y": y[te]}


@pytest.mark.slow
def test_evaluator_digits_accuracy(digits: tuple[dict, dict]) -> None:
    net, stats = fit_evaluator(*digits)
    assert stats["test_accuracy"] >= 0.97, stats
    assert not net.training and stats["epochs"] == 30
    test = digits[1]
    acc = (predict(net, test["x"]) == test["y"]).double().mean().item()
    assert_close(acc, stats["test_accuracy"])


def test_evaluator_seeded_determinism(digits: tuple[dict, dict]) -> None:
    train, test = digits
    small = {"x": train["x"][:300], "y": train["y"][:300]}
    fit = lambda seed: fit_evaluator(small, test, epochs=1, batch_size=64, seed=seed)[0]  # noqa: E731
    a, b, c = fit(0), fit(0), fit(1)
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name
    assert not torch.equal(a.head.weight, c.head.weight)


def test_evaluator_save_load_roundtrip(digits: tuple[dict, dict], tmp_path) -> None:
    train, test = digits
    net, _ = fit_evaluator({"x": train["x"][:200], "y": train["y"][:200]}, test, epochs=1)
    meta = {"dataset": "digits", "test_accuracy": 0.5, "classes": [0, 1]}
    path = tmp_path / "sub" / "evaluator.pt"
    save_evaluator(net, path, meta)
    loaded, meta2 = load_evaluator(path)
    assert meta2 == meta and loaded.kwargs == net.kwargs and not loaded.training
    assert list(path.parent.iterdir()) == [path]  # no temp file left behind
    assert torch.equal(loaded.features(test["x"]), net.features(test["x"]))
    assert torch.equal(predict(loaded, test["x"]), predict(net, test["x"]))


def test_evaluator_features_are_penultimate_and_batched() -> None:
    torch.manual_seed(0)
    net = Evaluator(in_channels=3, num_classes=5, feature_dim=16, width=8)
    x = torch.randn(70, 3, 32, 32)
    feats = net.features(x, batch_size=32)
    assert net.training  # mode restored
    net.eval()
    with torch.no_grad():
        assert_close(feats, net.body(x))
        assert_close(net.head(feats), net(x))
        assert_close(predict(net, x, batch_size=16), net(x).argmax(1))
    assert (feats >= 0).all()  # post-ReLU
