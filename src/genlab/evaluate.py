"""``fit-evaluator`` and ``evaluate``: metrics computed from saved samples and checkpoints only
(DESIGN rule 2), so any run can be re-scored.

Image sets are scored on the penultimate features and class predictions of a per-dataset
evaluator CNN (Inception features are wrong for 8x8 digits); 2-D point sets on their known
mixture modes. The real-vs-real floor (train split scored as if it were samples, against the test
split) is written by ``fit-evaluator`` next to the evaluator's test accuracy.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from genlab.data import load_prepared
from genlab.io import torch_save, write_json
from genlab.metrics import (
    class_coverage,
    fit_evaluator,
    frechet_from_features,
    kernel_inception_distance,
    load_evaluator,
    mode_metrics,
    predict,
    save_evaluator,
)
from genlab.registry import Registry
from genlab.train.common import resolve_device


@dataclass(frozen=True)
class Metric:
    fn: Callable[[Context], dict[str, float]]
    kinds: tuple[str, ...]  # dataset kinds it applies to
    families: tuple[str, ...] = ("gan", "vae", "vqvae", "floor")


METRICS: Registry = Registry("metric")


@dataclass
class Context:
    """What a metric may look at; features and predictions are computed once, on demand."""

    samples: Tensor
    test: dict[str, Tensor]
    meta: dict
    evaluator: Any
    params: Any
    model: torch.nn.Module | None = None
    labels: Tensor | None = None  # the class each sample was generated for (conditional models)
    codes: Tensor | None = None  # InfoGAN: each sample's categorical code
    cache: dict[str, Tensor] = field(default_factory=dict)

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


def metric(
    name: str, kinds: tuple[str, ...], families: tuple[str, ...] = ("gan", "vae", "vqvae", "floor")
):
    def decorator(fn):
        METRICS.register(name)(Metric(fn, kinds, families))
        return fn

    return decorator


@metric("frechet", kinds=("image",))
def _frechet(ctx: Context) -> dict[str, float]:
    """Frechet distance of evaluator features, samples vs test split (Heusel et al. 2017)."""
    return {"frechet": frechet_from_features(ctx.features("samples"), ctx.features("test"))}


@metric("kid", kinds=("image",))
def _kid(ctx: Context) -> dict[str, float]:
    """Kernel distance, unbiased MMD^2 with a cubic kernel (Binkowski et al. 2018)."""
    cfg = ctx.params.evaluate
    mean, std = kernel_inception_distance(
        ctx.features("samples"), ctx.features("test"),
        num_subsets=cfg.kid_subsets, subset_size=cfg.kid_subset_size, seed=ctx.params.seed,
    )  # fmt: skip
    return {"kid_mean": mean, "kid_std": std}


@metric("coverage", kinds=("image",))
def _coverage(ctx: Context) -> dict[str, float]:
    """Classes the evaluator finds among samples; KL(sample class histogram || test's)."""
    pred = ctx.predictions()
    return class_coverage(pred, ctx.test["y"], ctx.meta["num_classes"])


@metric("conditional", kinds=("image",), families=("gan", "vae", "vqvae"))
def _conditional(ctx: Context) -> dict[str, float]:
    """Samples of a conditional model scored per class: conditional accuracy (the evaluator
    predicts the class the sample was generated for) and the intra-class Frechet distance (mean
    over classes of the distance between the class's samples and its test images; Miyato & Koyama
    2018). Nothing for unconditional models."""
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


@metric("info", kinds=("image",), families=("gan",))
def _info(ctx: Context) -> dict[str, float]:
    """InfoGAN: accuracy of the categorical code as a classifier of the evaluator's predicted
    class, after the best one-to-one matching of code values to classes (Hungarian algorithm);
    Chen et al. 2016 report 95% on MNIST. Nothing without a categorical code."""
    if ctx.codes is None:
        return {}
    from scipy.optimize import linear_sum_assignment

    pred = ctx.predictions()
    k, classes = int(ctx.codes.max()) + 1, ctx.meta["num_classes"]
    counts = torch.zeros(k, classes, dtype=torch.long)
    counts.index_put_((ctx.codes, pred), torch.ones_like(pred), accumulate=True)
    rows, cols = linear_sum_assignment(counts.numpy(), maximize=True)
    return {"info_matched_accuracy": float(counts[rows, cols].sum()) / len(pred)}


@metric("modes", kinds=("points",))
def _modes(ctx: Context) -> dict[str, float]:
    """VEEGAN/PacGAN modes captured, high-quality %, reverse KL of the mode histogram."""
    return mode_metrics(ctx.samples, torch.tensor(ctx.meta["modes"]), ctx.meta["mode_std"])


@metric("elbo", kinds=("image", "points"), families=("vae",))
@torch.no_grad()
def _elbo(ctx: Context) -> dict[str, float]:
    """Test-split ELBO in nats per example (one reparameterised sample, seeded)."""
    from genlab.objectives import gaussian_kl
    from genlab.objectives.vae import given

    gen = torch.Generator().manual_seed(ctx.params.seed)
    vae, total = ctx.model.cpu(), 0.0
    for x, y in _test_batches(ctx, 500):
        mu, logvar = vae.encode(x, **given(y))
        z = mu + torch.randn(mu.shape, generator=gen) * (0.5 * logvar).exp()
        decoded = vae.decode(z, **given(y))
        total += float((vae.log_likelihood(x, decoded) - gaussian_kl(mu, logvar)).sum())
    return {"test_elbo_nats": total / len(ctx.test["x"])}


@metric("iwae", kinds=("image", "points"), families=("vae",))
@torch.no_grad()
def _iwae(ctx: Context) -> dict[str, float]:
    """Test negative log-likelihood in nats per example, importance-sampled with k =
    ``evaluate.iwae_samples`` (minus the IWAE bound of Burda et al. 2016; an upper bound on the
    true NLL that tightens with k)."""
    from genlab.objectives.vae import iwae_bound

    k = ctx.params.evaluate.iwae_samples
    gen = torch.Generator().manual_seed(ctx.params.seed)
    vae = ctx.model.cpu()
    bound = torch.cat([iwae_bound(vae, x, k, gen, y) for x, y in _test_batches(ctx, 64)])
    return {"test_nll_nats": -float(bound.mean()), "iwae_samples": k}


@metric("vq", kinds=("image",), families=("vqvae",))
@torch.no_grad()
def _vq(ctx: Context) -> dict[str, float]:
    """VQ-VAE on the test split: reconstruction MSE per pixel through the codebook, codes in use,
    and the prior's negative log-likelihood of the test code grids in bits per code (given the
    class when the prior is conditional)."""
    vqvae = ctx.model.cpu()
    mse, bits, used, n = 0.0, 0.0, set(), len(ctx.test["x"])
    for x, y in _test_batches(ctx, 256):
        idx = vqvae.encode_indices(x)
        mse += float((vqvae.decode_indices(idx) - x).pow(2).flatten(1).mean(1).sum())
        bits += float(vqvae.prior_nll(idx, y).sum()) / idx[0].numel() / math.log(2)
        used.update(idx.unique().tolist())
    return {"test_recon_mse": mse / n, "test_prior_bits_per_code": bits / n,
            "codes_used": len(used)}  # fmt: skip


def _test_batches(ctx: Context, size: int):
    """(x, y) test batches; y is None unless the model is conditional."""
    labels = ctx.test["y"] if getattr(ctx.model, "num_classes", 0) else None
    for i, x in enumerate(ctx.test["x"].split(size)):
        yield x, None if labels is None else labels[i * size : i * size + size]


def score(ctx: Context, family: str, names: list[str] | None = None) -> dict[str, float]:
    """The metrics ``names`` (default: params ``evaluate.metrics``) that apply to the dataset
    kind and the family."""
    out: dict[str, float] = {"n_samples": len(ctx.samples)}
    for name in ctx.params.evaluate.metrics if names is None else names:
        m = METRICS.get(name)
        if ctx.meta["kind"] in m.kinds and family in m.families:
            out.update({k: float(v) for k, v in m.fn(ctx).items()})
    return out


class GeneratorScorer:
    """Scores a generator held in memory exactly as ``sample`` + ``evaluate`` score its model.pt:
    the same seeded latent batch (``sample.n`` latents drawn from the run's seed), the same metric
    functions.
    Sweeps call it every k steps instead of writing checkpoints; test features are computed once."""

    def __init__(self, params, dataset: str, root: Path, names: list[str]) -> None:
        _, self.test, self.meta = load_prepared(root, dataset)
        self.evaluator = load_any_evaluator(root, dataset)
        self.params, self.names = params, names
        images = self.evaluator is not None  # point sets are scored on their modes, not features
        self.test_cache = {"test": self.evaluator.features(self.test["x"])} if images else {}

    @torch.no_grad()
    def __call__(
        self, net: torch.nn.Module, latent_dim: int, family: str, seed: int
    ) -> dict[str, float]:
        from genlab.sample import generate, generator_inputs, label_kind

        was_training = net.training
        device = next(net.parameters()).device
        z, y, _ = generator_inputs(net, seed, self.params.sample.n, latent_dim, device)
        try:
            x = generate(net.eval(), z, self.params.sample.batch_size, y)
        finally:
            net.train(was_training)
        ctx = Context(x, self.test, self.meta, self.evaluator, self.params,
                      **_labelled(y, label_kind(net)))  # fmt: skip
        ctx.cache.update(self.test_cache)
        return score(ctx, family, self.names)


def _labelled(y: Tensor | None, kind: str | None) -> dict[str, Tensor]:
    """Context keywords for the labels a conditional generator was given."""
    if y is None:
        return {}
    return {"labels": y.cpu()} if kind == "class" else {"codes": y.cpu()}


def evaluator_path(root: Path, dataset: str) -> Path:
    return root / "models" / "evaluator" / f"{dataset}.pt"


def load_any_evaluator(root: Path, dataset: str):
    path = evaluator_path(root, dataset)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; run `genlab fit-evaluator {dataset}`")
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    return None if ckpt.get("kind") == "points" else load_evaluator(path)[0]


def fit_evaluator_stage(params, dataset: str, root: Path) -> dict[str, Any]:
    """Train the evaluator (image sets) and score the real-vs-real floor."""
    params.dataset_cfg(dataset)  # unknown dataset -> ConfigError
    train, test, meta = load_prepared(root, dataset)
    out: dict[str, Any] = {"dataset": dataset, "test_accuracy": None}
    path = evaluator_path(root, dataset)
    if meta["kind"] == "image":
        cfg = params.evaluator
        net, stats = fit_evaluator(
            train, test, epochs=cfg.epochs, batch_size=cfg.batch_size, lr=cfg.lr,
            seed=params.seed, device=str(resolve_device(params.device)),
            num_classes=meta["num_classes"],
        )  # fmt: skip
        net = net.cpu()
        out.update(stats)
    else:
        net = None
        torch_save({"kind": "points", "modes": meta["modes"], "std": meta["mode_std"]}, path)
    ctx = Context(train["x"], test, meta, net, params)
    out["floor"] = score(ctx, "floor")
    if net is not None:
        save_evaluator(net, path, {"dataset": dataset, **{k: out[k] for k in ("test_accuracy",)}})
    write_json(root / "metrics" / "evaluator" / f"{dataset}.json", out)
    return out


def evaluate_variant(params, name: str, root: Path) -> dict[str, float]:
    """Score ``samples/<name>/samples.pt`` and write ``metrics/<name>.json``."""
    from genlab import tracking
    from genlab.train.checkpoint import load_checkpoint, load_model

    cfg = params.variant(name)
    saved = load_checkpoint(root / "samples" / name / "samples.pt", "samples")
    _, test, meta = load_prepared(root, cfg.dataset)
    model = None
    if cfg.family in ("vae", "vqvae"):
        model, _ = load_model(root / "models" / name / "model.pt")
    evaluator = load_any_evaluator(root, cfg.dataset)
    labelled = _labelled(saved.get("y"), saved.get("y_kind"))
    ctx = Context(saved["x"], test, meta, evaluator, params, model=model, **labelled)
    metrics = score(ctx, cfg.family)
    write_json(root / "metrics" / f"{name}.json", metrics)

    run_file = root / "models" / name / "run.json"
    run_id = json.loads(run_file.read_text()).get("run_id") if run_file.exists() else None
    tracking.reopen(params.tracking, root, run_id).log_metrics(
        [{"step": cfg.steps, **{f"eval.{k}": v for k, v in metrics.items()}}]
    )
    return metrics
