"""The genlab training step against a hand-written eager PyTorch loop, on CPU or one GPU.

Both loops train the same DCGAN (genlab's ``dcgan`` builder: same G, D, optimizer settings,
batch size, non-saturating loss) in one process:

- **eager**: the same algorithm (the lecture's: D's update on a fresh fake, then G's on new
  noise) written the way PyTorch-GAN's ``implementations/dcgan/dcgan.py`` writes a loop: a
  shuffled CPU ``DataLoader`` whose batches are copied to the device each step, noise drawn with
  numpy and copied over, D's parameters left requiring gradients in G's update, and the two
  losses read with ``.item()`` every step for the log line; torch's default Adam (foreach on
  CUDA). It computes no gradient norms and no mean D outputs: genlab's statistics are part of
  what genlab pays.
- **genlab**: ``genlab.train.loop.training_steps`` on the variant's trainer: data already on the
  device, noise drawn there, statistics (losses, D's outputs, gradient norms) kept on the device
  and read every ``log_every`` = 50 steps, fused Adam on CUDA.

Grid: data ``digits`` (8x8, sklearn) and ``mnist32`` (MNIST-format IDX files written to a
temporary folder, padded to 32x32), batch 64 and 256, precision fp32 and bf16 (autocast), and
optionally ``torch.compile`` of the networks in both loops. Blocks of steps alternate between
the loops; each loop's figure is the median ms per step over its blocks, and the ratio is
genlab / eager (below 1: genlab faster). Targets (issue 15): on an H100/H200 genlab at least
3x faster than eager on the digits DCGAN (ratio <= 0.33); on CPU ratio <= 1.05.

    python benchmarks/gpu.py                       # the whole grid, not compiled
    python benchmarks/gpu.py --data digits --precision fp32        # a CPU in minutes
    python benchmarks/gpu.py --compile none default reduce-overhead  # on a GPU
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.rawfiles (IDX writer)

from genlab.config import validate_params  # noqa: E402
from genlab.data import load_prepared, prepare_dataset  # noqa: E402
from genlab.nets import GAN_ARCHS  # noqa: E402
from genlab.runtime import autocast, compile_modules, resolve_device  # noqa: E402
from genlab.train.loop import build_trainer, training_steps  # noqa: E402

DATA = {"digits": ("digits", {}), "mnist32": ("mnist", {"size": 32})}
LOG_EVERY = 50


def prepared(root: Path, which: str) -> tuple[dict, dict]:
    """The training split and meta of ``which`` (``DATA``), prepared under ``root``."""
    name, options = DATA[which]
    if name == "mnist":
        from tests.rawfiles import write_idx

        write_idx(root / "data" / "raw", "MNIST", n_train=6000, n_test=100)
    prepare_dataset(name, options, root, 0)
    train, _, meta = load_prepared(root, name)
    return train, meta


def variant(which: str, batch: int, precision: str):
    dataset, options = DATA[which]
    raw = {
        "data": {dataset: options},
        "variants": {
            "dcgan": {"dataset": dataset, "family": "gan", "arch": "dcgan", "loss": "nonsaturating",
                      "latent_dim": 32, "width": 32, "batch_size": batch, "precision": precision,
                      "log_every": LOG_EVERY, "checkpoint_every": LOG_EVERY, "steps": 10**6}
        },
    }  # fmt: skip
    return validate_params(raw).variant("dcgan")


class Eager:
    """The hand-written loop (module docstring), one ``run(steps)`` call at a time."""

    def __init__(self, cfg, train: dict, meta: dict, device: torch.device, compile: str) -> None:
        torch.manual_seed(0)
        nets = GAN_ARCHS.build("dcgan", meta, cfg)
        self.G, self.D = nets["G"].to(device), nets["D"].to(device)
        compile_modules((self.G, self.D), compile)
        opt = cfg.optimizer
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=opt.lr, betas=opt.betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=opt.lr, betas=opt.betas)
        data = torch.utils.data.TensorDataset(train["x"])
        self.loader = torch.utils.data.DataLoader(
            data, batch_size=cfg.batch_size, shuffle=True, drop_last=True,
            generator=torch.Generator().manual_seed(0),
        )  # fmt: skip
        self.batches = iter(self.loader)
        self.cfg, self.device = cfg, device
        self.rng = np.random.default_rng(0)

    def batch(self) -> torch.Tensor:
        try:
            (imgs,) = next(self.batches)
        except StopIteration:
            self.batches = iter(self.loader)
            (imgs,) = next(self.batches)
        return imgs.to(self.device)

    def run(self, steps: int) -> None:
        amp = autocast(self.device, self.cfg.precision)
        bs, latent = self.cfg.batch_size, self.cfg.latent_dim
        for _ in range(steps):
            real = self.batch()
            with torch.no_grad(), amp:
                fake = self.G(self.noise(bs, latent))
            self.opt_d.zero_grad()
            with amp:  # -log D(x) - log(1 - D(G(z)))
                d_loss = (F.softplus(-self.D(real).float()).mean()
                          + F.softplus(self.D(fake).float()).mean())  # fmt: skip
            d_loss.backward()
            self.opt_d.step()
            self.opt_g.zero_grad()
            with amp:
                g_loss = F.softplus(-self.D(self.G(self.noise(bs, latent))).float()).mean()
            g_loss.backward()
            self.opt_g.step()
            _log_line = (d_loss.item(), g_loss.item())  # noqa: F841 - the per-step print

    def noise(self, n: int, latent: int) -> torch.Tensor:
        z = torch.from_numpy(self.rng.normal(0, 1, (n, latent)).astype(np.float32))
        return z.to(self.device)


class Genlab:
    """genlab's trainer, driven by ``training_steps`` as ``genlab train`` drives it."""

    def __init__(self, cfg, train: dict, meta: dict, device: torch.device, compile: str) -> None:
        self.trainer, self.batches, _, _ = build_trainer(
            cfg, train, meta, 0, device.type, threads=torch.get_num_threads(), compile=compile
        )
        for module in self.trainer.modules.values():
            module.train()
        self.step = 0

    def run(self, steps: int) -> None:
        loop = training_steps(self.trainer, self.batches, None, self.step, self.step + steps,
                              "benchmark", LOG_EVERY)  # fmt: skip
        for self.step, _ in loop:
            pass


def timed(loop, steps: int, device: torch.device) -> float:
    """Milliseconds per step of ``loop.run(steps)``, the device drained before and after."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    loop.run(steps)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 1000 * (time.perf_counter() - start) / steps


def measure(which: str, batch: int, precision: str, compile: str, args, root: Path) -> dict:
    train, meta = prepared(root, which)
    cfg = variant(which, batch, precision)
    device = resolve_device(args.device)
    loops = {"eager": Eager(cfg, train, meta, device, compile),
             "genlab": Genlab(cfg, train, meta, device, compile)}  # fmt: skip
    for loop in loops.values():  # warm-up: kernels, compilation, allocator, CUDA graphs
        timed(loop, args.warmup, device)
    times: dict[str, list[float]] = {k: [] for k in loops}
    for _ in range(args.blocks):
        for name, loop in loops.items():
            times[name].append(timed(loop, args.steps, device))
    eager, ours = (statistics.median(times[k]) for k in ("eager", "genlab"))
    return {"eager": eager, "genlab": ours, "ratio": ours / eager}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--data", nargs="+", default=list(DATA), choices=list(DATA))
    ap.add_argument("--batch", nargs="+", type=int, default=[64, 256])
    ap.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    ap.add_argument("--compile", nargs="+", default=["none"],
                    choices=["none", "default", "reduce-overhead", "max-autotune"])  # fmt: skip
    ap.add_argument("--steps", type=int, default=100, help="steps per timed block")
    ap.add_argument("--blocks", type=int, default=5, help="timed blocks per loop (alternating)")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (both loops)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"device: {name}  torch {torch.__version__}  threads {args.threads}  "
          f"{args.blocks} blocks x {args.steps} steps per loop")  # fmt: skip
    print(f"{'data':8} {'batch':>5} {'prec':5} {'compile':15} {'eager ms':>9} {'genlab ms':>9} "
          f"{'genlab/eager':>12}")  # fmt: skip
    for which in args.data:
        for batch in args.batch:
            for precision in args.precision:
                for compile in args.compile:
                    with tempfile.TemporaryDirectory() as tmp:
                        r = measure(which, batch, precision, compile, args, Path(tmp))
                    print(f"{which:8} {batch:5d} {precision:5} {compile:15} {r['eager']:9.2f} "
                          f"{r['genlab']:9.2f} {r['ratio']:12.3f}", flush=True)  # fmt: skip
    target = "<= 0.33 on the digits DCGAN" if device.type == "cuda" else "<= 1.05"
    print(f"target: genlab/eager {target}")


if __name__ == "__main__":
    main()
