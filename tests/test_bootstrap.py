"""Bootstrap intervals (genlab.metrics.bootstrap, scores.score): coverage of a known value,
features computed once, known answers, and the settings that are refused."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch

from genlab.config import validate_params
from genlab.errors import ConfigError
from genlab.metrics.bootstrap import basic_interval, mean_interval, percentile_interval
from genlab.metrics.frechet import frechet_distance
from genlab.metrics.kid import mmd2_unbiased, polynomial_kernel
from genlab.metrics.scores import Context, check_kid_subsets, score
from tests.conftest import tiny_params_dict

IMAGES = {"fields": {"x": {"kind": "image"}}, "kind": "image", "name": "toy", "n_train": 10_000}


class Identity:
    """An evaluator whose features are the inputs; counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def features(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return x.flatten(1)


def _params(**evaluate):
    cfg = {"kid_subset_size": "all", "kid_subsets": 5, "pr_k": 3, "dc_k": 5, **evaluate}
    return SimpleNamespace(seed=0, evaluate=SimpleNamespace(**cfg))


def _context(x, y, evaluator=None, **evaluate) -> Context:
    return Context(x, {"x": y}, IMAGES, evaluator or Identity(), _params(**evaluate))


def test_basic_interval_reflects_the_replicates_about_the_estimate():
    reps = torch.arange(1, 100, dtype=torch.float64)  # quantiles 3.45 and 96.55
    low, high = basic_interval(60.0, reps, 0.95)
    assert (low, high) == pytest.approx((120 - 96.55, 120 - 3.45))
    assert percentile_interval(reps, 0.95) == pytest.approx((3.45, 96.55))
    # a statistic that is never negative keeps a lower end >= 0, and high >= low
    assert basic_interval(0.1, torch.tensor([0.3, 0.4, 0.5]), 0.95) == (0.0, pytest.approx(0.0))
    assert all(math.isnan(v) for v in basic_interval(1.0, torch.tensor([math.nan, 1.0]), 0.95))


def test_mean_interval_is_the_student_t_interval():
    mean, low, high = mean_interval([1.0, 2.0, 3.0], 0.95)
    half = 4.302652729911275 * 1.0 / math.sqrt(3)  # t(0.975, 2) * sd / sqrt(n)
    assert (mean, low, high) == pytest.approx((2.0, 2.0 - half, 2.0 + half))


@pytest.mark.slow
def test_frechet_intervals_cover_the_closed_form_value_at_the_nominal_rate():
    """200 repetitions on 2-D Gaussians with a closed-form Frechet distance: the basic 95%
    interval holds the true value about 95% of the time (binomial sd 1.5%)."""
    gen = torch.Generator().manual_seed(7)
    mu1, mu2 = torch.zeros(2, dtype=torch.float64), torch.tensor([0.5, -0.3], dtype=torch.float64)
    s1 = torch.tensor([[1.0, 0.3], [0.3, 0.5]], dtype=torch.float64)
    s2 = torch.tensor([[0.6, -0.1], [-0.1, 1.2]], dtype=torch.float64)
    true = frechet_distance(mu1, s1, mu2, s2)
    l1, l2 = torch.linalg.cholesky(s1), torch.linalg.cholesky(s2)
    hits, reps = 0, 200
    for r in range(reps):
        x = mu1 + torch.randn(400, 2, generator=gen, dtype=torch.float64) @ l1.T
        y = mu2 + torch.randn(300, 2, generator=gen, dtype=torch.float64) @ l2.T
        out = score(_context(x, y), ["frechet"], replicates=100, seed=r)
        hits += out["frechet_ci_low"] <= true <= out["frechet_ci_high"]
    assert 0.90 <= hits / reps <= 0.99, hits / reps


def test_replicates_reuse_features_and_are_seeded():
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(120, 4, generator=gen), torch.randn(80, 4, generator=gen) + 0.3
    evaluator = Identity()
    ctx = _context(x, y, evaluator)
    out = score(ctx, ["frechet", "kid", "prdc"], replicates=30, seed=3)
    assert evaluator.calls == 2  # samples and test, once each, for every replicate
    again = score(_context(x, y), ["frechet", "kid", "prdc"], replicates=30, seed=3)
    assert out == again
    for key in ("frechet", "kid", "precision", "recall", "density", "coverage"):
        assert out[f"{key}_ci_low"] <= out[f"{key}_ci_high"]
    assert "pr_k_ci_low" not in out and "feature_dim_ci_low" not in out  # settings
    assert (out["n_samples"], out["n_reference"]) == (120, 80)


def test_prdc_through_score_matches_the_reference_package():
    prdc = pytest.importorskip("prdc")
    gen = torch.Generator().manual_seed(1)
    x, y = (
        torch.randn(150, 8, generator=gen, dtype=torch.float64),
        torch.randn(120, 8, generator=gen, dtype=torch.float64),
    )
    x = x + 0.4
    out = score(_context(x, y), ["prdc"])
    ref3 = prdc.compute_prdc(y.numpy(), x.numpy(), nearest_k=3)
    ref5 = prdc.compute_prdc(y.numpy(), x.numpy(), nearest_k=5)
    assert out["precision"] == pytest.approx(ref3["precision"], abs=1e-12)
    assert out["recall"] == pytest.approx(ref3["recall"], abs=1e-12)
    assert out["density"] == pytest.approx(ref5["density"], abs=1e-12)
    assert out["coverage"] == pytest.approx(ref5["coverage"], abs=1e-12)


def test_identical_sets_have_full_precision_recall_and_coverage_with_no_spread():
    x = torch.randn(60, 3, generator=torch.Generator().manual_seed(2))
    out = score(_context(x, x.clone()), ["prdc"], replicates=20)
    for key in ("precision", "recall", "coverage"):
        assert out[key] == out[f"{key}_ci_low"] == out[f"{key}_ci_high"] == 1.0


def test_a_collapsed_generator_has_recall_and_coverage_near_zero():
    y = torch.randn(80, 3, generator=torch.Generator().manual_seed(3))
    x = y[:1].repeat(100, 1)  # every sample is the first real point
    out = score(_context(x, y), ["prdc"], replicates=20)
    assert out["precision"] == 1.0 and out["recall"] == 0.0
    d = torch.cdist(y.double(), y.double())
    radius5 = d.sort(dim=1).values[:, 5]  # column 0 is the point itself
    covered = (d[:, 0] < radius5).double().mean()  # real balls holding y[0], the only sample
    assert out["coverage"] == pytest.approx(float(covered)) and out["coverage"] < 0.15


def test_kid_excludes_copies_of_one_point_from_the_within_set_pairs():
    gen = torch.Generator().manual_seed(4)
    x, y = (
        torch.randn(30, 5, generator=gen, dtype=torch.float64),
        torch.randn(20, 5, generator=gen, dtype=torch.float64),
    )
    kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
    plain = mmd2_unbiased(kxx, kyy, kxy)
    assert mmd2_unbiased(kxx, kyy, kxy, torch.arange(30), torch.arange(20)) == pytest.approx(plain)
    rows = torch.tensor([0, 0, 1, 2, 3])  # a resample holding point 0 twice
    with_copies = mmd2_unbiased(kxx[rows][:, rows], kyy, kxy[rows], rows, None)
    by_hand = kxx[rows][:, rows][rows[:, None] != rows[None, :]].mean()
    expected = float(by_hand + (kyy.sum() - kyy.trace()) / (20 * 19) - 2 * kxy[rows].mean())
    assert with_copies == pytest.approx(expected)


def test_kid_subsets_that_do_not_fit_are_refused():
    with pytest.raises(ConfigError, match=r"evaluate.kid_subset_size = 1000.*allowed: all, or"):
        check_kid_subsets(1000, 2000, 360)
    x = torch.randn(50, 3)
    with pytest.raises(ConfigError, match="kid_subset_size = 60"):
        score(_context(x, x + 1, kid_subset_size=60), ["kid"])


def test_a_frechet_distance_with_fewer_rows_than_dimensions_is_not_reported():
    gen = torch.Generator().manual_seed(5)
    out = score(_context(torch.randn(100, 8, generator=gen), torch.randn(8, 8, generator=gen)),
                ["frechet", "kid"])  # fmt: skip
    assert "frechet" not in out and out["feature_dim"] == 8 and math.isfinite(out["kid"])


def test_seeds_settings_are_checked():
    raw = tiny_params_dict()
    raw["seeds"] = {"variants": ["zz"], "seeds": [1]}
    with pytest.raises(ConfigError, match=r"seeds.variants names 'zz'.*allowed: dcgan_ns"):
        validate_params(raw)
    raw["seeds"] = {"variants": ["vae"], "seeds": [0, 1]}
    with pytest.raises(ConfigError, match="project seed 0"):
        validate_params(raw)
    raw["seeds"] = {"variants": ["vae"], "seeds": [1, 1]}
    with pytest.raises(ConfigError, match="repeats a seed"):
        validate_params(raw)
    raw["seeds"] = {"variants": ["vae"], "seeds": [2]}
    params, name = validate_params(raw).replica("vae", 2)
    assert name == "vae-seed2" and params.seed == 2
    assert params.variant(name) == params.variant("vae")


def test_a_class_with_one_distinct_point_in_a_replicate_gives_no_intra_kid_there():
    """Two test images of class 1: a replicate may draw one of them twice; its intra-class KID
    is undefined there (NaN, dropped), not an error."""
    gen = torch.Generator().manual_seed(6)
    x, y = torch.randn(40, 3, generator=gen), torch.randn(22, 3, generator=gen)
    meta = {**IMAGES, "fields": {"x": {"kind": "image"}, "y": {"kind": "class"}},
            "num_classes": 2}  # fmt: skip
    test = {"x": y, "y": torch.tensor([0] * 20 + [1] * 2)}
    ctx = Context(x, test, meta, Identity(), _params(), labels=torch.arange(40) % 2)
    ctx.cache["predictions"] = torch.arange(40) % 2  # the evaluator's classes
    out = score(ctx, ["conditional"], replicates=50)
    assert math.isfinite(out["intra_kid"]) and out["intra_n_reference_min"] == 2
    assert out["intra_kid_ci_low"] <= out["intra_kid_ci_high"]


def test_evaluate_settings_that_cannot_fit_the_dataset_are_refused_before_any_work():
    from genlab.evaluate import check_evaluate

    raw = tiny_params_dict()
    meta = {**IMAGES, "name": "digits", "n_train": 1437, "n_test": 360}
    params = validate_params({**raw, "evaluate": {**raw["evaluate"], "dc_k": 150}})
    with pytest.raises(ConfigError, match=r"evaluate.dc_k = 150.*150 samples.*allowed: 1 to 149"):
        check_evaluate(params, meta)
    params = validate_params({**raw, "evaluate": {**raw["evaluate"], "n": 50}})
    evaluator = SimpleNamespace(kwargs={"feature_dim": 64})
    with pytest.raises(ConfigError, match=r"Frechet distance needs.*64 feature dimensions"):
        check_evaluate(params, meta, evaluator, ["frechet"])
    check_evaluate(params, meta, evaluator, ["kid"])  # KID is fine at any size
