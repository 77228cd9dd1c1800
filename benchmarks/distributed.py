"""Data-parallel step time: ``genlab train V --nproc 2`` against one process, on the same global
batch, through the real command line in a scratch project.

For each data set and batch size it trains a DCGAN (non-saturating loss) three ways, in
alternating order: one process with one thread, one process with two threads, and two processes
(gloo) with one thread each, and prints the steady-state milliseconds per step (read from the
statistics CSV's ``seconds`` column, after ``--warmup`` steps, so start-up is not counted) and
the ratio to one process. On a 2-core machine the two processes share the cores with nothing
else; run nothing heavy beside it.

Data: ``digits`` (8x8, sklearn) and ``mnist32`` (32x32 MNIST-format IDX files written to a
scratch folder, standing for the real MNIST). Usage::

    python benchmarks/distributed.py [--steps 120] [--warmup 20] [--data digits mnist32]
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.rawfiles (IDX writer)

DATA = {"digits": ("digits", {}), "mnist32": ("mnist", {"size": 32})}
WAYS = [("1 proc x 1 thread", 1, 1), ("1 proc x 2 threads", 1, 2), ("2 procs x 1 thread", 2, 1)]


def project(root: Path, which: str, batch: int, steps: int, threads: int) -> None:
    dataset, options = DATA[which]
    raw = {
        "seed": 0, "device": "cpu", "threads": threads, "compile": "none",
        "tracking": {"enabled": False, "uri": "sqlite:///mlflow.db", "experiment": "bench"},
        "data": {dataset: options},
        "train": {"steps": steps, "batch_size": batch, "log_every": steps,
                  "checkpoint_every": steps,
                  "optimizer": {"name": "adam", "lr": 0.0002, "betas": [0.5, 0.999]}},
        "variants": {"dcgan": {"dataset": dataset, "family": "gan", "arch": "dcgan",
                               "loss": "nonsaturating", "latent_dim": 32, "width": 32}},
    }  # fmt: skip
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def genlab(root: Path, *args: str, threads: int) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MLFLOW_DISABLE_TELEMETRY": "true"}
    out = subprocess.run([sys.executable, "-m", "genlab.cli", *args], cwd=root, env=env,
                         capture_output=True, text=True)  # fmt: skip
    if out.returncode:
        raise SystemExit(f"genlab {' '.join(args)} failed:\n{out.stderr}")


def ms_per_step(root: Path, warmup: int) -> float:
    with (root / "plots" / "train" / "dcgan.csv").open() as f:
        rows = list(csv.DictReader(f))
    first, last = rows[warmup - 1], rows[-1]
    steps = int(last["step"]) - int(first["step"])
    return 1000 * (float(last["seconds"]) - float(first["seconds"])) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--data", nargs="+", default=["digits", "mnist32"], choices=list(DATA))
    p.add_argument("--batch", nargs="+", type=int, default=[64, 256])
    p.add_argument("--repeats", type=int, default=2, help="rounds over the three ways")
    args = p.parse_args()
    print("| data | batch | way | ms/step | vs 1 proc x 1 thread |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for which in args.data:
            root = Path(tmp) / which
            root.mkdir()
            if which == "mnist32":
                from tests.rawfiles import write_idx

                write_idx(root / "data" / "raw", "MNIST", n_train=6000, n_test=100)
            project(root, which, args.batch[0], args.steps, 1)
            genlab(root, "prepare", DATA[which][0], threads=1)
            for batch in args.batch:
                times: dict[str, list[float]] = {w: [] for w, _, _ in WAYS}
                for r in range(args.repeats):
                    order = WAYS if r % 2 == 0 else WAYS[::-1]
                    for way, nproc, threads in order:
                        project(root, which, batch, args.steps, threads)
                        genlab(root, "train", "dcgan", "--nproc", str(nproc), threads=threads)
                        times[way].append(ms_per_step(root, args.warmup))
                base = min(times[WAYS[0][0]])
                for way, _, _ in WAYS:
                    best = min(times[way])
                    print(f"| {which} | {batch} | {way} | {best:.1f} | {best / base:.2f} |",
                          flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
