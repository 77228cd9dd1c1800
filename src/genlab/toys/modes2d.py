"""Mode collapse on the 2-D mixtures (VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al. 2018):
every loss and regulariser trains an MLP GAN on ring8 and grid25 over several seeds; each run is
scored by modes captured, high-quality % and the reverse KL of the mode histogram.

The runs are independent and seeded, each on one torch thread, so they go to a pool of spawned
processes and the table is the same bits whatever the pool size."""

from __future__ import annotations

import math
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
import torch
from pydantic import Field, field_validator

from genlab.config import validate_params
from genlab.data import DATASETS
from genlab.errors import TrainingDiverged
from genlab.families import FAMILIES
from genlab.io import atomic_path, write_text
from genlab.metrics import mode_metrics
from genlab.runtime import available_cores
from genlab.toys.base import TOYS, Toy, ToyConfig
from genlab.train import build_trainer, training_steps

# name -> variant keys (on top of the dataset's budget); every loss and regulariser appears
METHODS: dict[str, dict[str, Any]] = {
    "minimax": {"loss": "minimax"},
    "nonsaturating": {"loss": "nonsaturating"},
    "wgan_clip": {"loss": "wasserstein", "d_steps": 5, "optimizer": {"name": "rmsprop"},
                  "regularizers": {"weight_clip": {"clip": 0.01}}},
    # lambda = 0.1 for the toy sets, as in the WGAN-GP authors' 2-D experiments
    "wgan_gp": {"loss": "wasserstein", "d_steps": 5, "optimizer": {"betas": [0.5, 0.9]},
                "regularizers": {"gradient_penalty": {"weight": 0.1}}},
    "wgan_gp_one_sided": {"loss": "wasserstein", "d_steps": 5, "optimizer": {"betas": [0.5, 0.9]},
                          "regularizers": {"gradient_penalty": {"weight": 0.1, "one_sided": True}}},
    "lsgan": {"loss": "least_squares"},
    "hinge_sn": {"loss": "hinge", "regularizers": {"spectral_norm": {}}},
    "ns_r1": {"loss": "nonsaturating", "regularizers": {"r1": {"weight": 1.0}}},
    "ns_r2": {"loss": "nonsaturating", "regularizers": {"r2": {"weight": 1.0}}},
    "ebgan": {"loss": "energy", "arch": "mlp_ae", "margin": 1.0, "pull_away": 0.1},
    "fgan_kl": {"loss": "fgan", "divergence": "kl"},
    "fgan_js": {"loss": "fgan", "divergence": "jensen_shannon"},
}  # fmt: skip


# the training budget: one set of bounds for the shared settings and a dataset's own budget
Steps = Annotated[int, Field(ge=1)]  # G updates per run, equal for every method on a dataset
Width = Annotated[int, Field(ge=1)]  # hidden units of every MLP layer (G and D)
LearningRate = Annotated[float, Field(gt=0)]  # Adam's (RMSprop's for wgan_clip) step size
BatchSize = Annotated[int, Field(ge=2)]


class Budget(ToyConfig):
    """One dataset's training budget; a key left out takes the toy's shared setting."""

    steps: Steps | None = None
    width: Width | None = None
    lr: LearningRate | None = None
    batch_size: BatchSize | None = None


class Modes2dConfig(ToyConfig):
    datasets: list[str] = ["ring8", "grid25"]
    methods: dict[str, dict[str, Any]] = Field(default_factory=lambda: dict(METHODS))
    seeds: int = Field(3, ge=1)
    steps: Steps = 1000  # the shared budget: every dataset without one of its own in `budgets`
    batch_size: BatchSize = 128
    lr: LearningRate = 1e-3
    width: Width = 64
    # dataset -> its own budget. grid25: the non-saturating GAN captures no mode in 1000 steps at
    # width 64; at width 128 it reaches 18/25 by 5000 (PacGAN reports 17.3/25 for the plain GAN)
    budgets: dict[str, Budget] = Field(
        default_factory=lambda: {"grid25": Budget(steps=5000, width=128)}
    )
    latent_dim: int = Field(2, ge=1)
    n_train: int = Field(20000, ge=16)
    n_samples: int = Field(2500, ge=1)  # PacGAN scores 2500 samples
    workers: int | None = Field(None, ge=1)  # processes for the runs; None = the available cores

    @field_validator("datasets")
    @classmethod
    def _two_d_sets(cls, v: list[str]) -> list[str]:
        for name in v:
            DATASETS.get(name)  # raises UnknownNameError listing the registered datasets
        return v

    @field_validator("budgets")
    @classmethod
    def _budgets_name_datasets(cls, v: dict[str, Budget]) -> dict[str, Budget]:
        for name in v:
            DATASETS.get(name)  # a budget for a set not in `datasets` is allowed (and unused)
        return v

    def budget(self, dataset: str) -> dict[str, Any]:
        """steps, width, lr and batch_size of the runs on ``dataset``: its entry in ``budgets``
        over the shared settings."""
        shared = {key: getattr(self, key) for key in Budget.model_fields}
        own = self.budgets.get(dataset)
        return shared if own is None else {**shared, **own.model_dump(exclude_none=True)}


def variant_for(cfg: Modes2dConfig, dataset: str, overrides: dict[str, Any]):
    """The method as a validated variant: MLP GAN, the dataset's budget, the overrides."""
    b = cfg.budget(dataset)
    base = {"dataset": dataset, "family": "gan", "arch": "mlp", "latent_dim": cfg.latent_dim,
            "width": b["width"], "steps": b["steps"], "batch_size": b["batch_size"],
            "optimizer": {"name": "adam", "lr": b["lr"], "betas": [0.5, 0.999]}}  # fmt: skip
    raw = {"variants": {"m": base}}
    for key, value in overrides.items():
        merge = isinstance(value, dict) and isinstance(base.get(key), dict)
        base[key] = {**base[key], **value} if merge else value
    return validate_params(raw).variant("m")


def train_one(variant, train: dict, meta: dict, seed: int, n_samples: int) -> torch.Tensor:
    """Train ``variant`` with the one training driver on CPU; ``n_samples`` samples of the
    family's seeded sample batch, or NaN samples when the run diverged."""
    trainer, batches, ema, _ = build_trainer(variant, train, meta, seed, "cpu")
    try:
        for _ in training_steps(trainer, batches, ema, 0, variant.steps, "modes2d"):
            pass
    except TrainingDiverged:
        return torch.full((n_samples, 2), float("nan"))
    family = FAMILIES.get(variant.family)
    modules = {k: m.eval() for k, m in trainer.modules.items()}
    sampler = family.sampler(modules, variant, meta)
    return sampler.generate(sampler.inputs(seed, n_samples, "cpu"), 1000)


def mixture(cfg: Modes2dConfig, dataset: str, seed: int) -> tuple[dict, dict]:
    """The training split and meta (modes, mode_std) of ``dataset``, drawn with ``seed``."""
    entry = DATASETS.get(dataset)
    options = {**entry.options().model_dump(), "n": cfg.n_train, "n_test": 16}
    train, _, meta = entry.build(options, Path("."), seed)
    return train, meta


def thresholds(cfg: Modes2dConfig, meta: dict) -> dict[str, float | int]:
    """What ``mode_metrics`` counts: a sample is high quality within ``hq_radius`` (3 std, data
    units) of its nearest centre; a mode is captured with ``min_count`` of them (PacGAN's 20 of
    2500)."""
    radius = round(3.0 * meta["mode_std"], 12)  # 0.15, not 0.15000000000000002, in the table
    return {"hq_radius": radius, "min_count": max(1, round(0.008 * cfg.n_samples))}


def run_one(
    cfg: Modes2dConfig, dataset: str, method: str, seed: int, data_seed: int
) -> tuple[dict[str, Any], np.ndarray]:
    """One (dataset, method, seed) run, the pool's unit of work: its table row and samples."""
    train, meta = mixture(cfg, dataset, data_seed)
    centers = torch.tensor(meta["modes"])
    start = time.perf_counter()
    x = train_one(variant_for(cfg, dataset, cfg.methods[method]), train, meta, seed, cfg.n_samples)
    diverged = bool(torch.isnan(x).any())
    if diverged:  # the worst case: nothing captured, all mass on one mode
        scores = {"modes_captured": 0, "high_quality_pct": 0.0, "mode_kl": math.log(len(centers))}
    else:
        min_count = thresholds(cfg, meta)["min_count"]
        scores = mode_metrics(x, centers, meta["mode_std"], min_count=min_count)
    row = {"dataset": dataset, "method": method, "seed": seed, **scores, "diverged": diverged,
           "seconds": time.perf_counter() - start}  # fmt: skip
    return row, x.numpy()


def _one_thread() -> None:
    torch.set_num_threads(1)


def pool_map(jobs: list[tuple], workers: int) -> list[tuple[dict[str, Any], np.ndarray]]:
    """``run_one`` over ``jobs``, in their order: in this process for one worker, else on that
    many spawned processes (fork is unsafe once torch's thread pools exist)."""
    if workers <= 1:
        return [run_one(*job) for job in jobs]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_one_thread) as pool:
        return list(pool.map(run_one, *zip(*jobs, strict=True)))


def run(cfg: Modes2dConfig, seed: int, out_dir: Path) -> pd.DataFrame:
    """Train every method on every dataset for ``cfg.seeds`` seeds; write the summary and figure.
    One intra-op thread per run: these networks are too small to gain from more, and a busy
    machine makes several threads much slower; the cores go to parallel runs instead."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(cfg, seed, out_dir)
    finally:
        torch.set_num_threads(threads)


def _run(cfg: Modes2dConfig, seed: int, out_dir: Path) -> pd.DataFrame:
    jobs = [(cfg, dataset, name, s, seed) for dataset in cfg.datasets for name in cfg.methods
            for s in range(seed, seed + cfg.seeds)]  # fmt: skip
    for dataset in cfg.datasets:  # a bad method is a ConfigError before any run starts
        for overrides in cfg.methods.values():
            variant_for(cfg, dataset, overrides)
    workers = min(cfg.workers or available_cores(), len(jobs))
    results = pool_map(jobs, workers)
    meta = {dataset: mixture(cfg, dataset, seed)[1] for dataset in cfg.datasets}
    rows = [row for row, _ in results]
    centers = {dataset: torch.tensor(m["modes"]) for dataset, m in meta.items()}
    density = {
        (row["dataset"], row["method"]): (torch.from_numpy(x), centers[row["dataset"]])
        for row, x in results
        if row["seed"] == seed
    }
    runs = pd.DataFrame(rows)
    per_seed = lambda col: (col, lambda v: ";".join(f"{x:.4g}" for x in v))  # noqa: E731
    summary = (
        runs.groupby(["dataset", "method"], sort=False)
        .agg(
            modes_mean=("modes_captured", "mean"),
            modes_std=("modes_captured", "std"),
            hq_pct_mean=("high_quality_pct", "mean"),
            hq_pct_std=("high_quality_pct", "std"),
            mode_kl_mean=("mode_kl", "mean"),
            mode_kl_std=("mode_kl", "std"),
            modes_by_seed=per_seed("modes_captured"),
            hq_pct_by_seed=per_seed("high_quality_pct"),
            diverged=("diverged", "sum"),
            seeds=("seed", "count"),
            seconds=("seconds", "sum"),
        )  # fmt: skip
        .reset_index()
    )
    # the budget and the thresholds each dataset ran with, stated beside its scores
    stated = pd.DataFrame([{**cfg.budget(d), **thresholds(cfg, meta[d])} for d in summary.dataset])
    summary = pd.concat([summary.iloc[:, :2], stated, summary.iloc[:, 2:]], axis=1)
    write_text(out_dir / "modes2d.csv", summary.to_csv(index=False))
    _density_figure(density, cfg, out_dir / "modes2d.png")
    return summary


def _density_figure(density: dict, cfg: Modes2dConfig, path: Path) -> None:
    from matplotlib.figure import Figure

    names = list(cfg.methods)
    fig = Figure(figsize=(2.2 * len(names), 2.3 * len(cfg.datasets)), dpi=80)
    axes = fig.subplots(len(cfg.datasets), len(names), squeeze=False)
    for i, dataset in enumerate(cfg.datasets):
        for j, name in enumerate(names):
            ax = axes[i][j]
            x, centers = density[(dataset, name)]
            lim = float(centers.abs().max()) * 1.5
            if not torch.isnan(x).any():
                ax.hist2d(x[:, 0].numpy(), x[:, 1].numpy(), bins=80,
                          range=[[-lim, lim], [-lim, lim]], cmap="viridis")  # fmt: skip
            ax.scatter(centers[:, 0], centers[:, 1], marker="x", c="red", s=8)
            ax.set_title(f"{name}\n{dataset}", fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp)


TOYS.register("modes2d")(Toy(Modes2dConfig, run))
