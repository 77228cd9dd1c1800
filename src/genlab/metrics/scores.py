"""The metric registry and the metrics every family shares (DESIGN rule 3: computed from saved
samples and checkpoints, so any run can be re-scored).

A metric declares the kinds of data fields it needs (``requires``: e.g. an image field, or an
image field and a class field); it runs for every dataset whose meta declares them. A metric that
only makes sense for one family's model (the VAE's test ELBO, the VQ-VAE's code statistics) is
registered with ``generic=False`` by that family, which lists it in its ``metrics``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from genlab.metrics.coverage import class_coverage
from genlab.metrics.evaluator import predict
from genlab.metrics.frechet import frechet_from_features
from genlab.metrics.kid import kernel_inception_distance
from genlab.metrics.toy import mode_metrics
from genlab.registry import Registry


@dataclass(frozen=True)
class Metric:
    fn: Callable[[Context], dict[str, float]]
    requires: tuple[str, ...]  # field kinds the dataset must declare (meta["fields"])
    generic: bool = True  # False: only for the families that list it in their ``metrics``


METRICS: Registry = Registry("metric")


def field_kinds(meta: dict) -> set[str]:
    """The kinds of the dataset's fields (meta["fields"]; older metas: their ``kind``)."""
    fields = meta.get("fields")
    if fields is None:
        return {meta["kind"], "class"} if meta.get("num_classes") else {meta["kind"]}
    return {f["kind"] for f in fields.values()}


@dataclass
class Context:
    """What a metric may look at; features, predictions and the model are computed once, on
    demand."""

    samples: Tensor
    test: dict[str, Tensor]
    meta: dict
    evaluator: Any
    params: Any
    load_model: Callable[[], torch.nn.Module] | None = None  # the model of model.pt, on demand
    labels: Tensor | None = None  # the class each sample was generated for (conditional models)
    codes: Tensor | None = None  # InfoGAN: each sample's categorical code
    cache: dict[str, Any] = field(default_factory=dict)

    def features(self, which: str) -> Tensor:
        if which not in self.cache:
            x = self.samples if which == "samples" else self.test["x"]
            self.cache[which] = self.evaluator.features(x)
        return self.cache[which]

    def predictions(self) -> Tensor:
        """The evaluator's class for every sample, computed once for all metrics."""
        if "predictions" not in self.cache:
            self.cache["predictions"] = predict(self.evaluator, self.samples)
        return self.cache["predictions"]

    @property
    def model(self) -> torch.nn.Module:
        if "model" not in self.cache:
            if self.load_model is None:
                raise ValueError("this metric needs the trained model, and none was given")
            self.cache["model"] = self.load_model()
        return self.cache["model"]


def metric(name: str, requires: tuple[str, ...], generic: bool = True):
    """Register ``fn(ctx) -> {key: value}`` as metric ``name``."""

    def decorator(fn):
        METRICS.register(name)(Metric(fn, requires, generic))
        return fn

    return decorator


def score(ctx: Context, names: list[str], family_metrics: tuple[str, ...] = ()) -> dict[str, float]:
    """The metrics ``names`` (in order) that apply: the dataset declares the field kinds they
    require, and each is generic or one of ``family_metrics``."""
    out: dict[str, float] = {"n_samples": len(ctx.samples)}
    kinds = field_kinds(ctx.meta)
    for name in names:
        m = METRICS.get(name)
        if set(m.requires) <= kinds and (m.generic or name in family_metrics):
            out.update({k: float(v) for k, v in m.fn(ctx).items()})
    return out


@metric("frechet", requires=("image",))
def _frechet(ctx: Context) -> dict[str, float]:
    """Frechet distance of evaluator features, samples vs test split (Heusel et al. 2017)."""
    return {"frechet": frechet_from_features(ctx.features("samples"), ctx.features("test"))}


@metric("kid", requires=("image",))
def _kid(ctx: Context) -> dict[str, float]:
    """Kernel distance, unbiased MMD^2 with a cubic kernel (Binkowski et al. 2018)."""
    cfg = ctx.params.evaluate
    mean, std = kernel_inception_distance(
        ctx.features("samples"), ctx.features("test"),
        num_subsets=cfg.kid_subsets, subset_size=cfg.kid_subset_size, seed=ctx.params.seed,
    )  # fmt: skip
    return {"kid_mean": mean, "kid_std": std}


@metric("coverage", requires=("image", "class"))
def _coverage(ctx: Context) -> dict[str, float]:
    """Classes the evaluator finds among samples; KL(sample class histogram || test's)."""
    pred = ctx.predictions()
    return class_coverage(pred, ctx.test["y"], ctx.meta["num_classes"])


@metric("conditional", requires=("image", "class"))
def _conditional(ctx: Context) -> dict[str, float]:
    """Samples of a conditional model scored per class: conditional accuracy (the evaluator
    predicts the class the sample was generated for) and the intra-class Frechet distance (mean
    over classes of the distance between the class's samples and its test images; Miyato & Koyama
    2018). Nothing for unconditional models (no labels given)."""
    if ctx.labels is None:
        return {}
    pred = ctx.predictions()
    fake, real = ctx.features("samples"), ctx.features("test")
    distances = [
        frechet_from_features(fake[ctx.labels == c], real[ctx.test["y"] == c])
        for c in range(ctx.meta["num_classes"])
    ]
    return {
        "conditional_accuracy": float((pred == ctx.labels).float().mean()),
        "intra_frechet": float(sum(distances) / len(distances)),
    }


@metric("modes", requires=("points",))
def _modes(ctx: Context) -> dict[str, float]:
    """VEEGAN/PacGAN modes captured, high-quality %, reverse KL of the mode histogram."""
    return mode_metrics(ctx.samples, torch.tensor(ctx.meta["modes"]), ctx.meta["mode_std"])


def test_batches(ctx: Context, size: int, conditional: bool):
    """(x, y) batches of the test split; y is None unless the model is ``conditional``."""
    labels = ctx.test["y"] if conditional else None
    for i, x in enumerate(ctx.test["x"].split(size)):
        yield x, None if labels is None else labels[i * size : i * size + size]
