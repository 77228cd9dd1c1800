"""Training step time with 1 and 2 torch threads, on an idle machine and beside a busy process.

One run measures all four cases for the variants named (default: dcgan_ns and vae of
params.yaml, the project's own settings), each in a fresh process so that the thread pool is
the one asked for. "Busy" is a second process spinning on one core for the whole measurement,
as another job, a browser or a second `genlab` would. Prints ms per step (median over the
repeats) and the ratios the `threads: auto` default rests on: 2 threads / 1 thread, idle and
busy. Absolute times vary with the machine; the ratios are what carries over.

    python benchmarks/threads.py [--variants dcgan_ns vae] [--steps 60] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def spin(stop) -> None:
    """A busy core: pure Python arithmetic until told to stop."""
    x = 0
    while not stop.is_set():
        for _ in range(10_000):
            x += 1


def time_steps(variant: str, threads: int, steps: int, root: str) -> float:
    """Seconds per training step of ``variant`` (after 5 warm-up steps), in this process."""
    import torch

    from genlab.config import load_params
    from genlab.train.loop import build_training, training_steps

    params = load_params(Path(root) / "params.yaml")
    cfg = params.variant(variant)
    trainer, batches, ema, _ = build_training(cfg, params.seed, Path(root), "cpu", threads)
    assert torch.get_num_threads() == threads
    run = training_steps(trainer, batches, ema, 0, steps + 5, variant)
    for _ in range(5):
        next(run)
    start = time.perf_counter()
    for _ in run:
        pass
    return (time.perf_counter() - start) / steps


def measure(variant: str, threads: int, steps: int, root: str, busy: bool) -> float:
    stop = mp.Event()
    spinner = mp.Process(target=spin, args=(stop,), daemon=True) if busy else None
    if spinner is not None:
        spinner.start()
        time.sleep(0.5)
    try:
        out = subprocess.run(
            [sys.executable, __file__, "--child", variant, str(threads), str(steps), root],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    finally:
        if spinner is not None:
            stop.set()
            spinner.join()
    return json.loads(out.stdout.strip().splitlines()[-1])["seconds_per_step"]


def prepare(root: Path, variants: list[str]) -> None:
    """A project with the repository's params.yaml and the datasets the variants need."""
    import yaml

    from genlab.config import load_params
    from genlab.data import prepare_dataset

    raw = yaml.safe_load((ROOT / "params.yaml").read_text())
    raw["tracking"] = {"enabled": False}
    (root / "params.yaml").write_text(yaml.safe_dump(raw))
    params = load_params(root / "params.yaml")
    for name in sorted({params.variant(v).dataset for v in variants}):
        prepare_dataset(name, params.dataset_cfg(name), root, params.seed)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        variant, threads, steps, root = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
        print(json.dumps({"seconds_per_step": time_steps(variant, threads, steps, root)}))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--variants", nargs="+", default=["dcgan_ns", "vae"])
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        prepare(Path(tmp), args.variants)
        print(
            f"{'variant':<10} {'load':<5} {'1 thread ms':>12} {'2 threads ms':>13} {'2t / 1t':>8}"
        )
        for variant in args.variants:
            ms = {}
            for busy in (False, True):
                for threads in (1, 2):
                    times = [measure(variant, threads, args.steps, tmp, busy)
                             for _ in range(args.repeats)]  # fmt: skip
                    ms[busy, threads] = 1000 * statistics.median(times)
                load = "busy" if busy else "idle"
                print(f"{variant:<10} {load:<5} {ms[busy, 1]:>12.1f} {ms[busy, 2]:>13.1f} "
                      f"{ms[busy, 2] / ms[busy, 1]:>8.2f}")  # fmt: skip
            print(f"{variant:<10} busy / idle: 1 thread {ms[True, 1] / ms[False, 1]:.2f}, "
                  f"2 threads {ms[True, 2] / ms[False, 2]:.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
