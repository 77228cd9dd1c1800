"""Mode collapse on the 2-D mixtures (VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al. 2018):
every loss and regulariser trains an MLP GAN on ring8 and grid25 over several seeds; each run is
scored by modes captured, high-quality % and the reverse KL of the mode histogram."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from pydantic import Field, field_validator

from genlab.config import validate_params
from genlab.data import DATASETS
from genlab.errors import TrainingDiverged
from genlab.families import FAMILIES
from genlab.io import atomic_path, write_text
from genlab.metrics import mode_metrics
from genlab.toys.base import TOYS, Toy, ToyConfig
from genlab.train import build_trainer, training_steps

# name -> variant keys (on top of the toy's shared settings); every loss and regulariser appears
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


class Modes2dConfig(ToyConfig):
    datasets: list[str] = ["ring8", "grid25"]
    methods: dict[str, dict[str, Any]] = Field(default_factory=lambda: dict(METHODS))
    seeds: int = Field(3, ge=1)
    steps: int = Field(1000, ge=1)  # G updates per run, equal for every method
    batch_size: int = Field(128, ge=2)
    lr: float = Field(1e-3, gt=0)
    width: int = Field(64, ge=1)
    latent_dim: int = Field(2, ge=1)
    n_train: int = Field(20000, ge=16)
    n_samples: int = Field(2500, ge=1)  # PacGAN scores 2500 samples

    @field_validator("datasets")
    @classmethod
    def _two_d_sets(cls, v: list[str]) -> list[str]:
        for name in v:
            DATASETS.get(name)  # raises UnknownNameError listing the registered datasets
        return v


def variant_for(cfg: Modes2dConfig, dataset: str, overrides: dict[str, Any]):
    """The method as a validated variant: MLP GAN, the toy's shared settings, the overrides."""
    base = {"dataset": dataset, "family": "gan", "arch": "mlp", "latent_dim": cfg.latent_dim,
            "width": cfg.width, "steps": cfg.steps, "batch_size": cfg.batch_size,
            "optimizer": {"name": "adam", "lr": cfg.lr, "betas": [0.5, 0.999]}}  # fmt: skip
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


def run(cfg: Modes2dConfig, seed: int, out_dir: Path) -> pd.DataFrame:
    """Train every method on every dataset for ``cfg.seeds`` seeds; write the summary and figure.
    One intra-op thread: these networks are too small to gain from more, and a busy machine
    makes several threads much slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _run(cfg, seed, out_dir)
    finally:
        torch.set_num_threads(threads)


def _run(cfg: Modes2dConfig, seed: int, out_dir: Path) -> pd.DataFrame:
    rows, density = [], {}
    for dataset in cfg.datasets:
        data_cfg = {"n": cfg.n_train, "n_test": 16}
        entry = DATASETS.get(dataset)
        options = {**entry.options().model_dump(), **data_cfg}
        train, _, meta = entry.build(options, Path("."), seed)
        centers = torch.tensor(meta["modes"])
        for name, overrides in cfg.methods.items():
            variant = variant_for(cfg, dataset, overrides)
            for s in range(seed, seed + cfg.seeds):
                start = time.perf_counter()
                x = train_one(variant, train, meta, s, cfg.n_samples)
                diverged = bool(torch.isnan(x).any())
                # a diverged run scores as the worst case: nothing captured, all mass on one mode
                worst = {"modes_captured": 0, "high_quality_pct": 0.0,
                         "mode_kl": math.log(len(centers))}  # fmt: skip
                scores = worst if diverged else mode_metrics(x, centers, meta["mode_std"])
                seconds = time.perf_counter() - start
                rows.append({"dataset": dataset, "method": name, "seed": s, **scores,
                             "diverged": diverged, "seconds": seconds})  # fmt: skip
                if s == seed:
                    density[(dataset, name)] = (x, centers)
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
