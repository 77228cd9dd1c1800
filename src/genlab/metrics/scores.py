"""The metric registry and the metrics every family shares (DESIGN rule 3: computed from saved
samples and checkpoints, so any run can be re-scored).

A metric declares the kinds of data fields it needs (``requires``: e.g. an image field, or an
image field and a class field); it runs for every dataset whose meta declares them. A metric that
only makes sense for one family's model (the VAE's test ELBO, the VQ-VAE's code statistics) is
registered with ``generic=False`` by that family, which lists it in its ``metrics``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from genlab.errors import ConfigError
from genlab.metrics.bootstrap import basic_interval, resample_indices
from genlab.metrics.coverage import class_coverage
from genlab.metrics.evaluator import predict
from genlab.metrics.frechet import frechet_from_features
from genlab.metrics.kid import mmd2_unbiased, polynomial_kernel
from genlab.metrics.prdc import feature_distances, knn_radii
from genlab.metrics.toy import mode_metrics
from genlab.registry import Registry


@dataclass(frozen=True)
class Metric:
    fn: Callable[[Context], dict[str, float]]
    requires: tuple[str, ...]  # field kinds the dataset must declare (meta["fields"])
    generic: bool = True  # False: only for the families that list it in their ``metrics``
    settings: tuple[str, ...] = ()  # keys that state a setting (e.g. k), not an estimate
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)  # bounds of a key's values
    descriptions: dict[str, str] = field(default_factory=dict)  # key -> what the report says
    headline: dict[str, bool] = field(default_factory=dict)  # keys the report ranks: lower better?


METRICS: Registry = Registry("metric")


def field_kinds(meta: dict) -> set[str]:
    """The kinds of the dataset's fields (meta["fields"]; older metas: their ``kind``)."""
    fields = meta.get("fields")
    if fields is None:
        return {meta["kind"], "class"} if meta.get("num_classes") else {meta["kind"]}
    return {f["kind"] for f in fields.values()}


@dataclass
class Context:
    """What a metric may look at. Features, predictions, pairwise kernels and distances,
    per-example model values and the model are computed once, on demand; ``resample`` gives a
    bootstrap view that indexes them instead of computing them again."""

    samples: Tensor
    test: dict[str, Tensor]
    meta: dict
    evaluator: Any
    params: Any
    load_model: Callable[[], torch.nn.Module] | None = None  # the model of model.pt, on demand
    labels: Tensor | None = None  # the class each sample was generated for (conditional models)
    codes: Tensor | None = None  # InfoGAN: each sample's categorical code
    # translation: per-sample data of each output's source (its paired "target", the source's
    # class "labels", the "cycle_l1" error), rows aligned with the samples
    source: dict[str, Tensor] | None = None
    cache: dict[str, Any] = field(default_factory=dict)
    # a bootstrap view: the rows of the base context's samples and test set it holds
    sample_ids: Tensor | None = None
    test_ids: Tensor | None = None
    base: Context | None = None

    def ids(self, which: str) -> Tensor | None:
        """Each row's index in the scored set (None: the scored set itself, no copies)."""
        return self.sample_ids if which == "samples" else self.test_ids

    def features(self, which: str) -> Tensor:
        if self.base is not None:
            return self.base.features(which)[self.ids(which)]
        if which not in self.cache:
            x = self.samples if which == "samples" else self.test["x"]
            self.cache[which] = self.evaluator.features(x)
        return self.cache[which]

    def predictions(self) -> Tensor:
        """The evaluator's class for every sample, computed once for all metrics."""
        if self.base is not None:
            return self.base.predictions()[self.sample_ids]
        if "predictions" not in self.cache:
            self.cache["predictions"] = predict(self.evaluator, self.samples)
        return self.cache["predictions"]

    def pairwise(
        self, kind: str, a: str, b: str, rows_a: Tensor | None = None, rows_b: Tensor | None = None
    ) -> Tensor:
        """``kind`` ("kernel": KID's cubic kernel; "distance": Euclidean, exact 0 for equal
        rows) between the features of ``a`` and ``b`` ("samples" or "test"), float64, computed
        once on the scored sets; ``rows_a`` / ``rows_b`` pick rows of this context's sets."""
        if self.base is not None:
            ids_a, ids_b = self.ids(a), self.ids(b)
            ids_a = ids_a if rows_a is None else ids_a[rows_a]
            ids_b = ids_b if rows_b is None else ids_b[rows_b]
            return self.base.pairwise(kind, a, b, ids_a, ids_b)
        key = (kind, a, b)
        if key not in self.cache and kind == "distance":  # all three at once, exact zeros
            d_tt, d_ss, d_ts = feature_distances(self.features("test"), self.features("samples"))
            self.cache.update({("distance", "test", "test"): d_tt, ("distance", "test",
                "samples"): d_ts, ("distance", "samples", "samples"): d_ss})  # fmt: skip
        if key not in self.cache:
            if kind != "kernel":
                raise ValueError(f"pairwise({kind!r}, {a!r}, {b!r}): no such matrix")
            fa, fb = self.features(a).double(), self.features(b).double()
            self.cache[key] = polynomial_kernel(fa, fb)
        m = self.cache[key]
        m = m if rows_a is None else m[rows_a]
        return m if rows_b is None else m[:, rows_b]

    def per_row(self, key: str, fn: Callable[[Context], dict[str, Tensor]]) -> dict[str, Tensor]:
        """Per-row values ``fn(ctx)``, each named ``samples.<name>`` (first axis: the samples)
        or ``test.<name>`` (the test set), computed once on the scored sets; a bootstrap view
        gets its rows."""
        if self.base is not None:
            values = self.base.per_row(key, fn)
            return {k: v[self.ids(_side(k))] for k, v in values.items()}
        if key not in self.cache:
            self.cache[key] = fn(self)
        return self.cache[key]

    def resample(self, sample_ids: Tensor, test_ids: Tensor) -> Context:
        """The bootstrap view holding rows ``sample_ids`` of the samples and ``test_ids`` of
        the test set."""
        pick = lambda t: None if t is None else t[sample_ids]  # noqa: E731
        return Context(
            samples=self.samples[sample_ids], test={k: v[test_ids] for k, v in self.test.items()},
            meta=self.meta, evaluator=self.evaluator, params=self.params,
            load_model=self.load_model, labels=pick(self.labels), codes=pick(self.codes),
            source=None if self.source is None else {k: v[sample_ids] for k, v in
                                                     self.source.items()},
            sample_ids=sample_ids, test_ids=test_ids, base=self,
        )  # fmt: skip

    @property
    def model(self) -> torch.nn.Module:
        if self.base is not None:
            return self.base.model
        if "model" not in self.cache:
            if self.load_model is None:
                raise ValueError("this metric needs the trained model, and none was given")
            self.cache["model"] = self.load_model()
        return self.cache["model"]


def _side(name: str) -> str:
    side = name.split(".")[0]
    if side not in ("samples", "test"):
        raise ValueError(f"per-row value {name!r} must be named samples.<x> or test.<x>")
    return side


def metric(
    name: str, requires: tuple[str, ...], generic: bool = True, settings=(), ranges=None,
    descriptions=None, headline=None,
):  # fmt: skip
    """Register ``fn(ctx) -> {key: value}`` as metric ``name``; ``settings``: the keys that
    state a setting rather than an estimate (no interval); ``ranges``: key -> (low, high), the
    values a key can take, which bound its interval; ``descriptions``: key -> the sentence the
    report's column glossary shows (with "lower/higher is better"); ``headline``: key -> True
    when lower is better, for the keys the report's headline may rank."""

    def decorator(fn):
        METRICS.register(name)(Metric(fn, requires, generic, tuple(settings), dict(ranges or {}),
                                      dict(descriptions or {}), dict(headline or {})))  # fmt: skip
        return fn

    return decorator


def applicable(meta: dict, names: list[str], family_metrics: tuple[str, ...] = ()) -> list:
    """The metrics ``names`` (in order) whose required field kinds the dataset declares and that
    are generic or one of ``family_metrics``."""
    kinds = field_kinds(meta)
    chosen = [METRICS.get(name) for name in names]
    return [
        m
        for name, m in zip(names, chosen, strict=True)
        if set(m.requires) <= kinds and (m.generic or name in family_metrics)
    ]


def score(
    ctx: Context,
    names: list[str],
    family_metrics: tuple[str, ...] = (),
    *,
    replicates: int = 0,  # bootstrap replicates; 0: point estimates only
    level: float = 0.95,
    seed: int = 0,
    keep: dict[str, list[float]] | None = None,  # filled with every key's replicate values
) -> dict[str, float]:
    """The metrics ``names`` that apply (``applicable``), each estimate with its basic bootstrap
    interval as ``<key>_ci_low`` / ``<key>_ci_high`` when ``replicates`` > 0 (DESIGN rule 3)."""
    chosen = applicable(ctx.meta, names, family_metrics)
    out: dict[str, float] = {"n_samples": len(ctx.samples), "n_reference": len(ctx.test["x"])}
    point: dict[str, float] = {}
    for m in chosen:
        point.update({k: float(v) for k, v in m.fn(ctx).items()})
    out.update(point)
    settings = {k for m in chosen for k in m.settings}
    ranges = {k: r for m in chosen for k, r in m.ranges.items()}
    keys = [k for k in point if k not in settings]
    if replicates and keys:
        reps: dict[str, list[float]] = {k: [] for k in keys}
        for sample_ids, test_ids in resample_indices(
            len(ctx.samples), len(ctx.test["x"]), replicates, seed
        ):
            view, values = ctx.resample(sample_ids, test_ids), {}
            for m in chosen:
                values.update(m.fn(view))
            for k in keys:
                reps[k].append(float(values.get(k, math.nan)))
        if keep is not None:
            keep.update(reps)
        for k in keys:
            low, high = basic_interval(point[k], torch.tensor(reps[k], dtype=torch.float64), level)
            lo, hi = ranges.get(k, (-math.inf, math.inf))
            out[f"{k}_ci_low"], out[f"{k}_ci_high"] = min(max(low, lo), hi), min(max(high, lo), hi)
    return out


def _frechet_valid(n_samples: int, n_reference: int, dim: int) -> bool:
    """A Frechet distance needs full-rank covariances: more rows than feature dimensions on
    both sides (else the Gaussian fit is singular and the number means little)."""
    return n_samples > dim and n_reference > dim


@metric("frechet", requires=("image",), settings=("feature_dim",))
def _frechet(ctx: Context) -> dict[str, float]:
    """Frechet distance of evaluator features, samples vs test split (Heusel et al. 2017);
    omitted when either set has no more rows than the features have dimensions."""
    fake, real = ctx.features("samples"), ctx.features("test")
    if not _frechet_valid(len(fake), len(real), fake.shape[1]):
        return {"feature_dim": fake.shape[1]}
    return {"frechet": frechet_from_features(fake, real), "feature_dim": fake.shape[1]}


def _kid_value(ctx: Context, rows_s: Tensor | None = None, rows_t: Tensor | None = None) -> float:
    """Unbiased MMD^2 with the cubic kernel between the samples and the test set, or between
    their rows ``rows_s`` / ``rows_t``, copies of one point excluded from the within-set pairs."""
    ids_s, ids_t = ctx.ids("samples"), ctx.ids("test")
    if rows_s is not None:
        ids_s = rows_s if ids_s is None else ids_s[rows_s]
    if rows_t is not None:
        ids_t = rows_t if ids_t is None else ids_t[rows_t]
    return mmd2_unbiased(
        ctx.pairwise("kernel", "samples", "samples", rows_s, rows_s),
        ctx.pairwise("kernel", "test", "test", rows_t, rows_t),
        ctx.pairwise("kernel", "samples", "test", rows_s, rows_t), ids_s, ids_t,
    )  # fmt: skip


@metric("kid", requires=("image",), settings=("kid_subset_size", "kid_subsets"))
def _kid(ctx: Context) -> dict[str, float]:
    """Kernel distance, unbiased MMD^2 with a cubic kernel (Binkowski et al. 2018): on the whole
    sets (``kid_subset_size: all``), or the mean over ``kid_subsets`` random subsets of a stated
    size, which must fit in both sets (``check_kid_subsets``)."""
    cfg = ctx.params.evaluate
    n_s, n_t = len(ctx.samples), len(ctx.test["x"])
    if cfg.kid_subset_size == "all":
        return {"kid": _kid_value(ctx), "kid_subset_size": min(n_s, n_t), "kid_subsets": 1}
    size = cfg.kid_subset_size
    check_kid_subsets(size, n_s, n_t)
    gen = torch.Generator().manual_seed(ctx.params.seed)
    values = [
        _kid_value(
            ctx,
            torch.randperm(n_s, generator=gen)[:size],
            torch.randperm(n_t, generator=gen)[:size],
        )  # fmt: skip
        for _ in range(cfg.kid_subsets)
    ]
    return {"kid": sum(values) / len(values), "kid_subset_size": size,
            "kid_subsets": cfg.kid_subsets}  # fmt: skip


def check_kid_subsets(size: int, n_samples: int, n_reference: int) -> None:
    if size > min(n_samples, n_reference):
        raise ConfigError(
            f"evaluate.kid_subset_size = {size} is larger than the sets it draws from "
            f"({n_samples} samples, {n_reference} reference images); allowed: all, or an "
            f"integer from 2 to {min(n_samples, n_reference)}"
        )


def _prdc_rows(ctx: Context) -> dict[str, Tensor]:
    """Per point, against the k-NN balls of the scored sets: is each sample inside the real
    manifold (precision) and in how many real density balls (density); is each test image inside
    the generated manifold (recall) and is its density ball hit by a sample (coverage)."""
    cfg = ctx.params.evaluate
    d_tt = ctx.pairwise("distance", "test", "test")
    d_ts = ctx.pairwise("distance", "test", "samples")
    d_ss = ctx.pairwise("distance", "samples", "samples")
    in_real = d_ts < knn_radii(d_tt, cfg.pr_k)[:, None]  # (test, samples)
    in_fake = d_ts < knn_radii(d_ss, cfg.pr_k)[None, :]
    in_dc = d_ts < knn_radii(d_tt, cfg.dc_k)[:, None]
    return {"samples.precise": in_real.any(0).double(), "test.recalled": in_fake.any(1).double(),
            "samples.density": in_dc.sum(0).double() / cfg.dc_k,
            "test.covered": in_dc.any(1).double()}  # fmt: skip


UNIT = (0.0, 1.0)


@metric("prdc", requires=("image",), settings=("pr_k", "dc_k"),
        ranges={"precision": UNIT, "recall": UNIT, "coverage": UNIT})  # fmt: skip
def _prdc(ctx: Context) -> dict[str, float]:
    """Precision and recall (Kynkaenniemi et al. 2019, k = ``evaluate.pr_k``), density and
    coverage (Naeem et al. 2020, k = ``evaluate.dc_k``) of k-NN balls on evaluator features;
    the test split is the real set (``genlab.metrics.prdc``).

    Each is a mean over points of a per-point value against balls from the scored sets, and a
    bootstrap replicate resamples those points with the balls held fixed: a resample with copies
    would shrink every ball (a copy at distance 0 is a neighbour) and bias the replicates, so the
    interval covers the sampling of the points tested, not of the balls' radii."""
    cfg = ctx.params.evaluate
    rows = ctx.per_row("prdc", _prdc_rows)
    return {
        "precision": float(rows["samples.precise"].mean()),
        "recall": float(rows["test.recalled"].mean()),
        "density": float(rows["samples.density"].mean()),
        "coverage": float(rows["test.covered"].mean()),
        "pr_k": cfg.pr_k,
        "dc_k": cfg.dc_k,
    }


@metric("coverage", requires=("image", "class"))
def _coverage(ctx: Context) -> dict[str, float]:
    """Classes the evaluator finds among samples; KL(sample class histogram || test's)."""
    pred = ctx.predictions()
    return class_coverage(pred, ctx.test["y"], ctx.meta["num_classes"])


@metric("conditional", requires=("image", "class"), settings=("intra_n_reference_min",),
        ranges={"conditional_accuracy": UNIT})  # fmt: skip
def _conditional(ctx: Context) -> dict[str, float]:
    """Samples of a conditional model scored per class: conditional accuracy (the evaluator
    predicts the class the sample was generated for) and the intra-class kernel distance (mean
    over classes of KID between the class's samples and its test images). The intra-class
    Frechet distance (Miyato & Koyama 2018) is added only when every class has more samples and
    test images than the features have dimensions; with ~36 test digits per class against 64
    features its covariance is singular, while KID is unbiased at any size. Nothing for
    unconditional models (no labels given)."""
    if ctx.labels is None:
        return {}
    pred, y_test = ctx.predictions(), ctx.test["y"]
    fake, real = ctx.features("samples"), ctx.features("test")
    classes = range(ctx.meta["num_classes"])
    rows = [
        (torch.nonzero(ctx.labels == c).flatten(), torch.nonzero(y_test == c).flatten())
        for c in classes
    ]
    out = {"conditional_accuracy": float((pred == ctx.labels).float().mean())}
    n_min = min(min(len(s), len(t)) for s, t in rows)
    out["intra_n_reference_min"] = min(len(t) for _, t in rows)
    if (
        min(_distinct(ctx, "samples", s) for s, _ in rows) < 2
        or min(_distinct(ctx, "test", t) for _, t in rows) < 2
    ):  # a class with fewer than 2 distinct points (a bootstrap replicate may draw so)
        return {**out, "intra_kid": math.nan}
    out["intra_kid"] = sum(_kid_value(ctx, s, t) for s, t in rows) / len(rows)
    if _frechet_valid(n_min, n_min, fake.shape[1]):
        distances = [frechet_from_features(fake[s], real[t]) for s, t in rows]
        out["intra_frechet"] = sum(distances) / len(distances)
    return out


def _distinct(ctx: Context, which: str, rows: Tensor) -> int:
    ids = ctx.ids(which)
    return len(rows) if ids is None else len(ids[rows].unique())


@metric("modes", requires=("points",), ranges={"high_quality_pct": (0.0, 100.0)})
def _modes(ctx: Context) -> dict[str, float]:
    """VEEGAN/PacGAN modes captured, high-quality %, reverse KL of the mode histogram."""
    return mode_metrics(ctx.samples, torch.tensor(ctx.meta["modes"]), ctx.meta["mode_std"])


def test_batches(ctx: Context, size: int, conditional: bool):
    """(x, y) batches of the test split; y is None unless the model is ``conditional``."""
    labels = ctx.test["y"] if conditional else None
    for i, x in enumerate(ctx.test["x"].split(size)):
        yield x, None if labels is None else labels[i * size : i * size + size]
