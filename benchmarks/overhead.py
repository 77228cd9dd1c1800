"""Overhead of the genlab training loop against a bare hand-written PyTorch loop.

Same networks (built by the dcgan builder), data (digits), optimizers, batch size and number of
steps, in one process, tracking on (a fresh SQLite store in a temporary project). The genlab
side is the whole ``train_variant`` call: statistics, CSV, checkpoints, MLflow logging, model.pt.
Prints the ratio genlab / bare (target <= 1.10): the runs alternate, and both the ratio of the
best times and the median of the paired ratios are shown, since the machine is shared and noisy.

    python benchmarks/overhead.py [--steps 600] [--repeats 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from genlab.config import load_params
from genlab.data import load_prepared, prepare_dataset
from genlab.nets import GAN_ARCHS
from genlab.runtime import configure_determinism
from genlab.train.loop import train_variant


def project(root: Path, steps: int) -> Path:
    raw = {
        "seed": 0,
        "device": "cpu",
        "tracking": {"enabled": True, "uri": "sqlite:///mlflow.db", "experiment": "bench"},
        "data": {"digits": {}},
        "train": {"steps": steps, "batch_size": 64, "log_every": 50, "checkpoint_every": 500},
        "variants": {"dcgan": {"dataset": "digits", "family": "gan", "arch": "dcgan",
                               "loss": "nonsaturating", "latent_dim": 32, "width": 32}},
    }  # fmt: skip
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def bare_loop(params, root: Path) -> float:
    """What one would write by hand: the lecture algorithm with k = 1, nothing else."""
    cfg = params.variant("dcgan")
    configure_determinism(params.seed)
    train, _, meta = load_prepared(root, "digits")
    nets = GAN_ARCHS.build("dcgan", meta, cfg)
    G, D = nets["G"], nets["D"]
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.optimizer.lr, betas=cfg.optimizer.betas)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.optimizer.lr, betas=cfg.optimizer.betas)
    x, n, bs = train["x"], len(train["x"]), cfg.batch_size
    gen = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    perm, pos = torch.randperm(n, generator=gen), 0
    for _ in range(cfg.steps):
        if pos + bs > n:
            perm, pos = torch.randperm(n, generator=gen), 0
        real = x[perm[pos : pos + bs]]
        pos += bs
        with torch.no_grad():
            fake = G(torch.randn(bs, cfg.latent_dim, generator=gen))
        D.requires_grad_(True)
        loss_d = F.softplus(-D(real)).mean() + F.softplus(D(fake)).mean()
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        D.requires_grad_(False)
        loss_g = F.softplus(-D(G(torch.randn(bs, cfg.latent_dim, generator=gen)))).mean()
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
    return time.perf_counter() - start


def genlab_loop(params, root: Path) -> float:
    start = time.perf_counter()
    train_variant(params, "dcgan", root, progress=False)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        params = load_params(project(root, args.steps))
        prepare_dataset("digits", params.dataset_cfg("digits"), root, params.seed)
        from genlab import tracking

        tracking.init_store(params.tracking, root)
        genlab_loop(load_params(project(root, 20)), root)  # warm-up: imports, store, kernels
        bare, ours = [], []
        for _ in range(args.repeats):
            bare.append(bare_loop(params, root))
            ours.append(genlab_loop(params, root))
    b, g = min(bare), min(ours)
    paired = sorted(o / r for o, r in zip(ours, bare, strict=True))
    print(f"steps: {args.steps}  repeats: {args.repeats}  threads: {torch.get_num_threads()}")
    print(f"bare PyTorch loop: best {b:.2f} s  ({1000 * b / args.steps:.2f} ms/step)")
    print(f"genlab loop:       best {g:.2f} s  ({1000 * g / args.steps:.2f} ms/step)")
    print(
        f"ratio genlab / bare: best-of {g / b:.3f}, median of pairs "
        f"{paired[len(paired) // 2]:.3f}  (target <= 1.10)"
    )


if __name__ == "__main__":
    main()
