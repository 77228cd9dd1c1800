"""``fit-evaluator`` and ``evaluate``: metrics computed from saved samples and checkpoints only
(DESIGN rule 2), so any run can be re-scored.

Image sets are scored on the penultimate features and class predictions of a per-dataset
evaluator CNN (Inception features are wrong for 8x8 digits); 2-D point sets on their known
mixture modes. The real-vs-real floor (training images scored as if they were samples, against
the test split) is written by ``fit-evaluator`` next to the evaluator's test accuracy.

One protocol for models and floor: ``scored_size`` rows (``evaluate.n``, or the training split
when it is smaller) drawn by ``scored_rows`` from the samples or the training split, scored
against the whole test split, every estimate with its bootstrap interval.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import Tensor

from genlab.data import field_kind, load_prepared
from genlab.errors import ConfigError
from genlab.families import FAMILIES
from genlab.io import write_json, write_text
from genlab.metrics import EVALUATOR_KINDS, Context, score
from genlab.metrics.kinds import load_any, save_any
from genlab.metrics.scores import check_kid_subsets, field_kinds
from genlab.metrics.translation import bicubic
from genlab.paths import Paths
from genlab.runtime import deterministic_kernels, resolve_device


class GeneratorScorer:
    """Scores a generator held in memory exactly as ``sample`` + ``evaluate`` score its model.pt:
    the same seeded latent batch (``sample.n`` latents drawn from the run's seed), the same metric
    functions.
    Sweeps call it every k steps instead of writing checkpoints; test features are computed once."""

    def __init__(self, params, dataset: str, root: Path, names: list[str]) -> None:
        _, self.test, self.meta = load_prepared(root, dataset)
        self.evaluator = load_any_evaluator(root, dataset)
        self.params, self.names = params, names
        check_evaluate(params, self.meta, self.evaluator, names)
        # image sets only: points are scored on their modes, other kinds' metrics compute their
        # own features (word widths, clip frames)
        images = self.evaluator is not None and field_kind(self.meta) == "image"
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
            inputs = sampler.inputs(seed, self.params.sample.n, device, self.test)
            x = sampler.generate(inputs, self.params.sample.batch_size)
        finally:
            for k, m in modules.items():
                m.train(was_training[k])
        saved = {**sampler.saved(inputs), "x": x}
        rows = scored_rows(len(x), scored_size(self.params, self.meta, len(x), "sample.n"), seed)
        ctx = Context(x[rows].cpu(), self.test, self.meta, self.evaluator, self.params,
                      **_labelled(saved, rows))  # fmt: skip
        ctx.cache.update(self.test_cache)
        return score(ctx, self.names, family.metrics)


def _labelled(saved: dict, rows: Tensor) -> dict[str, Any]:
    """Context keywords for what a conditional generator was given, at the scored rows: its
    class labels or codes (``y``), and the per-row ``source`` fields of a dataset that declares
    them (meta ``source_fields``: e.g. the text a word image was generated for)."""
    out: dict[str, Any] = {}
    y = saved.get("y")
    if y is not None:
        out["labels" if saved.get("y_kind") == "class" else "codes"] = y.cpu()[rows]
    if saved.get("source") is not None:
        out["source"] = {k: v.cpu()[rows] for k, v in saved["source"].items()}
    return out


def scored_size(params, meta: dict, available: int, source: str) -> int:
    """How many samples a model (and the floor) is scored on: ``evaluate.n``, or the training
    split's size when it is smaller, so that the floor is scored exactly like the models.
    ``available``: the rows there are to draw from (``source`` names the setting behind it)."""
    n = min(params.evaluate.n, _cap(meta, available))
    if available < n:
        raise ConfigError(
            f"{source} gives {available} samples, but evaluate.n = {params.evaluate.n} scores "
            f"{n} for dataset {meta.get('name', '?')!r}; allowed: {source} >= {n}, or a smaller "
            "evaluate.n"
        )
    return n


def _cap(meta: dict, available: int) -> int:
    """The most rows a generative dataset's models and floor are scored on: the training split
    (the floor draws from it), and the test split too when models are fed its rows (meta
    ``source_fields``: each sample answers one test row's input)."""
    cap = int(meta.get("n_train", available))
    if meta.get("source_fields"):
        cap = min(cap, int(meta.get("n_test", cap)))
    return cap


def check_evaluate(params, meta: dict, evaluator=None, names: list[str] = ()) -> None:
    """Refuse, before any work, evaluate settings that cannot fit this dataset: a KID subset or
    a k of precision/recall/density/coverage larger than the scored sets, and (for ``names``
    that need it, e.g. a sweep's objective) a Frechet distance the sizes leave undefined."""
    cfg = params.evaluate
    if "image" not in field_kinds(meta):
        return
    n, n_ref = min(_scored_sizes(meta, cfg.n).values())
    where = f"dataset {meta.get('name', '?')!r} scores {n} samples against {n_ref} test images"
    if cfg.kid_subset_size != "all" and "kid" in cfg.metrics:
        check_kid_subsets(cfg.kid_subset_size, n, n_ref)
    if "prdc" in cfg.metrics:
        for key in ("pr_k", "dc_k"):
            k = getattr(cfg, key)
            if k >= min(n, n_ref):
                raise ConfigError(
                    f"evaluate.{key} = {k}: the k-NN balls need more than k points per set, and "
                    f"{where}; allowed: 1 to {min(n, n_ref) - 1}"
                )
    dim = getattr(evaluator, "kwargs", {}).get("feature_dim")
    if "frechet" in names and dim is not None and min(n, n_ref) <= dim:
        raise ConfigError(
            f"the Frechet distance needs more samples and test images than the evaluator's "
            f"{dim} feature dimensions, and {where}; allowed: evaluate.n above {dim} (and a "
            "larger test split), or score kid instead"
        )


def _count(meta: dict, split: str, field: str) -> int | None:
    """Rows of ``field`` in ``split`` ("train"/"test") by meta.json: domain b of an unpaired set
    counts as ``n_<split>_b``."""
    domain = meta.get("fields", {}).get(field, {}).get("domain")
    value = meta.get(f"n_{split}_b" if domain == "b" else f"n_{split}")
    return None if value is None else int(value)


def _scored_sizes(meta: dict, n: int) -> dict[str, tuple[int, int]]:
    """Per scored set ("" for a generative dataset, else each translation direction): (outputs
    or samples scored, reference images). A generative model is scored on ``n`` samples (at most
    the training split's size); a translation model on its outputs for the first ``n`` test
    sources, against their paired targets or the whole test split of the target domain."""
    if "translation" not in meta:
        scored = min(n, _cap(meta, n))
        return {"": (scored, _count(meta, "test", "x") or scored)}
    out = {}
    for d in meta["translation"]["directions"]:
        scored = min(n, _count(meta, "test", d["source"]) or n)
        out[d["name"]] = (scored, scored if d.get("paired") else _count(meta, "test", d["target"]))
    return out


def scored_rows(available: int, n: int, seed: int) -> Tensor:
    """The ``n`` rows of ``available`` that are scored: a seeded draw without replacement (the
    same rows for every variant of a seed, whatever order a sampler writes its classes in)."""
    return torch.randperm(available, generator=torch.Generator().manual_seed(seed))[:n]


def _score(
    ctx: Context, params, keep: dict[str, list[float]], family_metrics: tuple[str, ...] = ()
) -> dict[str, float]:
    """Score with intervals; ``keep`` gets every key's replicates."""
    cfg = params.evaluate
    return score(ctx, cfg.metrics, family_metrics, replicates=cfg.bootstrap,
                 level=cfg.confidence, seed=params.seed, keep=keep)  # fmt: skip


def _saved_context(params, saved: dict, test: dict, meta: dict, evaluator, **model) -> Context:
    """The context scoring a generative model's ``samples.pt`` (or a baseline's like dict): the
    ``scored_size`` rows ``scored_rows`` draws, with their labels and source rows."""
    n = scored_size(params, meta, len(saved["x"]), "sample.n")
    rows = scored_rows(len(saved["x"]), n, params.seed)
    return Context(saved["x"][rows], test, meta, evaluator, params, **model,
                   **_labelled(saved, rows))  # fmt: skip


def evaluator_path(root: Path, dataset: str) -> Path:
    return Paths(root).evaluator(dataset)


def load_any_evaluator(root: Path, dataset: str):
    """The dataset's evaluator (None for a kind judged without a network)."""
    path = evaluator_path(root, dataset)
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; run `genlab fit-evaluator {dataset}`")
    return load_any(path)


def source_rows(split: dict[str, Tensor], meta: dict, rows: Tensor) -> dict[str, Tensor] | None:
    """The per-row ``source`` fields (meta ``source_fields``) of ``split`` at ``rows``."""
    fields = meta.get("source_fields")
    return None if not fields else {k: split[k][rows] for k in fields}


def fit_evaluator_stage(params, dataset: str, root: Path) -> dict[str, Any]:
    """Train the dataset's evaluator (``genlab.metrics.kinds``: chosen by the kind of its ``x``)
    and score the real-vs-real floor (training rows scored as if they were samples) and, where
    the kind has one, its baseline model."""
    params.dataset_cfg(dataset)  # unknown dataset -> ConfigError
    train, test, meta = load_prepared(root, dataset)
    check_evaluate(params, meta)  # before the evaluator trains
    kind_name = field_kind(meta)
    kind = EVALUATOR_KINDS.get(kind_name)
    out: dict[str, Any] = {"dataset": dataset, "test_accuracy": None}
    generative = "translation" not in meta
    rows = None
    if generative and kind.floor:
        n = scored_size(params, meta, len(train["x"]), "the training split")
        rows = scored_rows(len(train["x"]), n, params.seed)
    net = None
    if kind.fit is not None:
        deterministic_kernels()  # on CUDA too: the evaluator's weights decide every score
        settings = {"seed": params.seed, "device": str(resolve_device(params.device)),
                    **params.evaluator.fit(dataset)}  # fmt: skip
        fit_on = train
        if kind.holdout_floor and rows is not None:
            mask = torch.ones(len(train["x"]), dtype=torch.bool)
            mask[rows] = False
            fit_on = {k: v[mask] for k, v in train.items()}
            out["floor_held_out"] = len(rows)
        net, stats = kind.fit(fit_on, test, meta, settings)
        out.update(stats)
    paths = Paths(root)
    if not generative:
        out.update(_translation_floor(params, train, test, meta, net, root, dataset))
    else:
        keep: dict[str, list[float]] = {}
        if rows is not None:
            floor_ctx = Context(train["x"][rows], test, meta, net, params,
                                source=source_rows(train, meta, rows))  # fmt: skip
            out["floor"] = _score(floor_ctx, params, keep)
        if kind.baseline is not None:
            # as many rows as a model's sample stage writes (a test-fed baseline: at most the
            # test split's), scored like a model's
            name, saved = kind.baseline(train, test, meta, params.sample.n, params.seed)
            kept: dict[str, list[float]] = {}
            out["baseline"] = _score(_saved_context(params, saved, test, meta, net), params, kept)
            out["baseline_name"] = name
            keep.update({f"baseline.{k}": v for k, v in kept.items()})
        write_text(paths.floor_replicates(dataset), pd.DataFrame(keep).to_csv(index=False))
    save_any(kind_name, net, evaluator_path(root, dataset),
             {"dataset": dataset, "test_accuracy": out["test_accuracy"]}, meta)  # fmt: skip
    write_json(paths.evaluator_metrics(dataset), out)
    return out


def _translation_sets(
    params, outputs: dict[str, Tensor], test: dict[str, Tensor], meta: dict,
    cycles: dict[str, Tensor] | None = None,
) -> dict[str, tuple[Tensor, dict[str, Tensor], dict[str, Tensor]]]:  # fmt: skip
    """Per direction with outputs: (scored outputs, reference set, per-output source data). The
    outputs of the first ``evaluate.n`` test sources are drawn by ``scored_rows``; a paired
    direction's reference is their own targets (rows aligned: ``source["target"]``), an
    unpaired one's the target domain's whole test split."""
    sizes, out = _scored_sizes(meta, params.evaluate.n), {}
    for d in meta["translation"]["directions"]:
        name = d["name"]
        if name not in outputs:
            continue
        n = min(sizes[name][0], len(outputs[name]))
        rows = scored_rows(len(outputs[name]), n, params.seed)
        target, labels = test[d["target"]], test[d["labels"]]
        if d.get("paired"):
            reference = {"x": target[rows], "y": labels[rows]}
            source = {"target": target[rows], "labels": labels[rows]}
        else:
            reference = {"x": target, "y": labels}
            source = {"labels": test[d["source_labels"]][rows]}
        if cycles and name in cycles:
            back = cycles[name][rows] - test[d["source"]][rows]
            source["cycle_l1"] = back.abs().flatten(1).mean(1)
        out[name] = (outputs[name][rows], reference, source)
    return out


def _prefixed(name: str, values: dict) -> dict:
    return {f"{name}_{k}" if name else k: v for k, v in values.items()}


def _score_sets(
    params, sets: dict, meta: dict, evaluator, keep: dict, family_metrics=(), **ctx_kw
) -> dict[str, float]:
    """Score each direction's outputs with intervals, keys prefixed by the direction's name;
    ``keep`` gets the replicates under the same keys."""
    cfg, metrics = params.evaluate, {}
    for name, (samples, reference, source) in sets.items():
        ctx = Context(samples, reference, meta, evaluator, params, source=source, **ctx_kw)
        kept: dict[str, list[float]] = {}
        values = score(ctx, cfg.metrics, family_metrics, replicates=cfg.bootstrap,
                       level=cfg.confidence, seed=params.seed, keep=kept)  # fmt: skip
        metrics.update(_prefixed(name, values))
        keep.update(_prefixed(name, kept))
    return metrics


def _translation_floor(params, train, test, meta, evaluator, root: Path, dataset: str) -> dict:
    """The floor of each direction: as many training images of the target domain as a model's
    outputs, scored against the same reference; for super-resolution also the bicubic baseline,
    scored exactly like a model (``baseline``)."""
    paths, sizes, floor_sets = Paths(root), _scored_sizes(meta, params.evaluate.n), {}
    for d in meta["translation"]["directions"]:
        n_sources = min(params.sample.n, len(test[d["source"]]))  # the outputs a model has
        placeholder = {d["name"]: test[d["target"]][:n_sources]}
        _, reference, _ = _translation_sets(params, placeholder, test, meta)[d["name"]]
        real = train[d["target"]]
        n = min(sizes[d["name"]][0], n_sources, len(real))
        floor_sets[d["name"]] = (real[scored_rows(len(real), n, params.seed)], reference, None)
    keep: dict[str, list[float]] = {}
    out = {"floor": _score_sets(params, floor_sets, meta, evaluator, keep)}
    if meta["translation"]["task"] == "super_resolution":
        n_sources = min(params.sample.n, len(test["source"]))
        outputs = {"": bicubic(test["source"][:n_sources], meta["shape"][-1])}
        sets = _translation_sets(params, outputs, test, meta)
        kept: dict[str, list[float]] = {}
        out["baseline"] = _score_sets(params, sets, meta, evaluator, kept, ("translation",))
        out["baseline_name"] = "bicubic"
        keep.update({f"baseline.{k}": v for k, v in kept.items()})
    write_text(paths.floor_replicates(dataset), pd.DataFrame(keep).to_csv(index=False))
    return out


def evaluate_variant(params, name: str, root: Path) -> dict[str, float]:
    """Score ``samples/<name>/samples.pt`` and write ``metrics/<name>.json``."""
    from genlab import tracking
    from genlab.train.checkpoint import load_checkpoint, load_model

    cfg, paths = params.variant(name), Paths(root)
    saved = load_checkpoint(paths.samples(name), "samples")
    _, test, meta = load_prepared(root, cfg.dataset)
    evaluator = load_any_evaluator(root, cfg.dataset)
    check_evaluate(params, meta)
    family_metrics = FAMILIES.get(cfg.family).metrics
    model = {"load_model": lambda: load_model(paths.model(name))[0]}
    if "translation" in meta:
        sets = _translation_sets(params, saved["outputs"], test, meta, saved.get("cycles"))
        keep: dict[str, list[float]] = {}
        metrics = _score_sets(params, sets, meta, evaluator, keep, family_metrics, **model)
        write_text(paths.replicates(name), pd.DataFrame(keep).to_csv(index=False))
    else:
        keep = {}
        ctx = _saved_context(params, saved, test, meta, evaluator, **model)
        metrics = _score(ctx, params, keep, family_metrics)
        write_text(paths.replicates(name), pd.DataFrame(keep).to_csv(index=False))
    write_json(paths.metrics(name), metrics)

    run_file = paths.run(name)
    run_id = json.loads(run_file.read_text()).get("run_id") if run_file.exists() else None
    tracking.reopen(params.tracking, root, run_id).log_metrics(
        [{"step": cfg.steps, **{f"eval.{k}": v for k, v in metrics.items()}}]
    )
    return metrics
