"""``fit-evaluator`` and ``evaluate``: metrics computed from saved samples and checkpoints only
(DESIGN rule 2), so any run can be re-scored.

Image sets are scored on the penultimate features and class predictions of a per-dataset
evaluator CNN (Inception features are wrong for 8x8 digits); 2-D point sets on their known
mixture modes. The real-vs-real floor (train split scored as if it were samples, against the test
split) is written by ``fit-evaluator`` next to the evaluator's test accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from genlab.data import field_kind, load_prepared
from genlab.families import FAMILIES
from genlab.io import torch_load, torch_save, write_json
from genlab.metrics import Context, fit_evaluator, load_evaluator, save_evaluator, score
from genlab.paths import Paths
from genlab.runtime import resolve_device


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
        self,
        modules: dict[str, torch.nn.Module],  # the family's generating modules, in training
        cfg,  # the variant (VariantCfg)
        seed: int,  # seeds the sample batch, as ``sample`` does
    ) -> dict[str, float]:
        family = FAMILIES.get(cfg.family)
        was_training = {k: m.training for k, m in modules.items()}
        net = modules[family.generator]
        device = next(net.parameters()).device
        sampler = family.sampler({k: m.eval() for k, m in modules.items()}, cfg, self.meta)
        try:
            inputs = sampler.inputs(seed, self.params.sample.n, device)
            x = sampler.generate(inputs, self.params.sample.batch_size)
        finally:
            for k, m in modules.items():
                m.train(was_training[k])
        saved = sampler.saved(inputs)
        ctx = Context(x, self.test, self.meta, self.evaluator, self.params,
                      **_labelled(saved.get("y"), saved.get("y_kind")))  # fmt: skip
        ctx.cache.update(self.test_cache)
        return score(ctx, self.names, family.metrics)


def _labelled(y: Tensor | None, kind: str | None) -> dict[str, Tensor]:
    """Context keywords for the labels a conditional generator was given."""
    if y is None:
        return {}
    return {"labels": y.cpu()} if kind == "class" else {"codes": y.cpu()}


def evaluator_path(root: Path, dataset: str) -> Path:
    return Paths(root).evaluator(dataset)


def load_any_evaluator(root: Path, dataset: str):
    path = evaluator_path(root, dataset)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; run `genlab fit-evaluator {dataset}`")
    ckpt = torch_load(path, "evaluator")
    return None if ckpt.get("kind") == "points" else load_evaluator(path)[0]


def fit_evaluator_stage(params, dataset: str, root: Path) -> dict[str, Any]:
    """Train the evaluator (image sets) and score the real-vs-real floor."""
    params.dataset_cfg(dataset)  # unknown dataset -> ConfigError
    train, test, meta = load_prepared(root, dataset)
    out: dict[str, Any] = {"dataset": dataset, "test_accuracy": None}
    path = evaluator_path(root, dataset)
    if field_kind(meta) == "image":
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
    out["floor"] = score(ctx, params.evaluate.metrics)
    if net is not None:
        save_evaluator(net, path, {"dataset": dataset, **{k: out[k] for k in ("test_accuracy",)}})
    write_json(Paths(root).evaluator_metrics(dataset), out)
    return out


def evaluate_variant(params, name: str, root: Path) -> dict[str, float]:
    """Score ``samples/<name>/samples.pt`` and write ``metrics/<name>.json``."""
    from genlab import tracking
    from genlab.train.checkpoint import load_checkpoint, load_model

    cfg, paths = params.variant(name), Paths(root)
    saved = load_checkpoint(paths.samples(name), "samples")
    _, test, meta = load_prepared(root, cfg.dataset)
    evaluator = load_any_evaluator(root, cfg.dataset)
    labelled = _labelled(saved.get("y"), saved.get("y_kind"))
    ctx = Context(saved["x"], test, meta, evaluator, params,
                  load_model=lambda: load_model(paths.model(name))[0], **labelled)  # fmt: skip
    metrics = score(ctx, params.evaluate.metrics, FAMILIES.get(cfg.family).metrics)
    write_json(paths.metrics(name), metrics)

    run_file = paths.run(name)
    run_id = json.loads(run_file.read_text()).get("run_id") if run_file.exists() else None
    tracking.reopen(params.tracking, root, run_id).log_metrics(
        [{"step": cfg.steps, **{f"eval.{k}": v for k, v in metrics.items()}}]
    )
    return metrics
