"""Compute saved by pruning, and what it costs in the best score found.

The same study (same space, seeded random sampler, same trials) runs three times in one process
on digits: without pruning, with the median pruner and with Hyperband, each reporting the
Frechet distance every ``report_every`` steps. The random sampler does not look at results, so
the three runs try the same configurations in the same order; the pruned runs just stop some of
them early. Prints, per pruner, the generator steps and training seconds spent, their ratio to
the unpruned run, and the best score found and its difference from the unpruned run's best.

    python benchmarks/pruning.py [--trials 16] [--steps 300] [--report-every 50]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import yaml

from genlab.config import load_params
from genlab.data import prepare_dataset
from genlab.evaluate import fit_evaluator_stage
from genlab.sweeps import run_sweep


def project(root: Path, args, pruner: dict) -> Path:
    raw = {
        "seed": 0, "device": "cpu",
        "tracking": {"enabled": False},
        "data": {"digits": {}},
        "evaluator": {"epochs": 30},
        "train": {"batch_size": 64,
                  "optimizer": {"name": "adam", "lr": 2e-4, "betas": [0.5, 0.999]}},
        "variants": {"base": {"dataset": "digits", "family": "gan", "arch": "dcgan",
                              "loss": "nonsaturating", "latent_dim": 32, "width": 32,
                              "d_norm": "none"}},
        "sweeps": {"bench": {
            "base": "base", "trials": args.trials, "steps": args.steps,
            "report_every": args.report_every, "pruner": pruner, "seeds": [],
            "space": {
                "loss": {"choices": ["nonsaturating", "least_squares", "hinge"]},
                "optimizer.lr": {"low": 2e-5, "high": 5e-3, "log": True},
                "optimizer_d.lr": {"low": 2e-5, "high": 5e-3, "log": True},
                "optimizer.betas.0": {"choices": [0.0, 0.5, 0.9]},
            },
        }},
    }  # fmt: skip
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--report-every", type=int, default=50)
    args = parser.parse_args()
    pruners = {
        "none": {"name": "none"},
        "median": {"name": "median", "startup_trials": 4, "warmup_steps": args.report_every},
        "hyperband": {"name": "hyperband", "reduction_factor": 3},
    }
    with tempfile.TemporaryDirectory() as tmp:
        shared = Path(tmp) / "shared"
        shared.mkdir()
        params = load_params(project(shared, args, pruners["none"]))
        prepare_dataset("digits", params.dataset_cfg("digits"), shared, params.seed)
        fit_evaluator_stage(params, "digits", shared)
        rows = {}
        for name, pruner in pruners.items():
            root = Path(tmp) / name
            root.mkdir()
            for sub in ("data", "models"):
                (root / sub).symlink_to(shared / sub)
            params = load_params(project(root, args, pruner))
            t0 = time.perf_counter()
            out = run_sweep(params, "bench", root, workers=1)
            wall = time.perf_counter() - t0
            import pandas as pd

            trials = pd.read_csv(out["trials"])
            rows[name] = {
                "complete": int((trials["state"] == "COMPLETE").sum()),
                "pruned": int((trials["state"] == "PRUNED").sum()),
                "steps": int(trials["steps_done"].fillna(0).sum()),
                "seconds": wall,
                "best": float(out["best_value"]),
            }
    base = rows["none"]
    print(f"\n{args.trials} trials x {args.steps} steps, Frechet reported every "
          f"{args.report_every} steps")  # fmt: skip
    print(f"{'pruner':<10} {'complete':>8} {'pruned':>6} {'G steps':>8} {'steps ratio':>11} "
          f"{'seconds':>8} {'time ratio':>10} {'best':>8} {'best - none':>11}")  # fmt: skip
    for name, r in rows.items():
        print(f"{name:<10} {r['complete']:>8} {r['pruned']:>6} {r['steps']:>8} "
              f"{r['steps'] / base['steps']:>11.3f} {r['seconds']:>8.1f} "
              f"{r['seconds'] / base['seconds']:>10.3f} {r['best']:>8.3f} "
              f"{r['best'] - base['best']:>+11.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
