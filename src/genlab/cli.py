"""``genlab <stage> ...``: parses arguments, loads params, calls one library function.

Exit codes: 0 success; 2 bad input (params, names, missing files), with one paragraph naming what
was wrong and what is allowed; 1 a run that failed (a diverging loss, out of memory, a full or
read-only disk), with one paragraph and the state it left.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="genlab", description=__doc__.splitlines()[0])
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    p.add_argument(
        "-S", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a params key, e.g. -S variants.vae.beta=4 (repeatable)",
    )  # fmt: skip
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("prepare", help="build data/prepared/<dataset>").add_argument(
        "dataset", nargs="?", help="one dataset (default: every key of params `data`)"
    )
    sub.add_parser("fit-evaluator", help="train the metric network of a dataset").add_argument(
        "dataset"
    )
    train = sub.add_parser("train", help="train one variant")
    train.add_argument("variant")
    train.add_argument("--resume", action="store_true", help="continue from models/<v>/state.pt")
    train.add_argument(
        "--nproc", type=int, default=None, metavar="N",
        help="data-parallel: N processes on this machine (torchrun; gloo on CPU, NCCL on CUDA)",
    )  # fmt: skip
    sample = sub.add_parser("sample", help="draw samples and figures")
    sample.add_argument("variant")
    evaluate = sub.add_parser("evaluate", help="score a variant's samples")
    evaluate.add_argument("variant")
    for p_ in (train, sample, evaluate):
        p_.add_argument(
            "--seed", type=int, default=None, help="the variant on another seed (<variant>-seedN)"
        )
    sub.add_parser("toy", help="a paper reproduction -> reports/toys/").add_argument("name")
    sweep = sub.add_parser("sweep", help="run or resume an Optuna study -> reports/sweeps/<study>/")
    sweep.add_argument("study")
    sweep.add_argument(
        "--workers", type=int, default=None,
        help="worker processes sharing the study (default: sweeps.<study>.workers)",
    )  # fmt: skip
    dash = sub.add_parser("dashboard", help="optuna-dashboard on 127.0.0.1 for a study")
    dash.add_argument("study")
    dash.add_argument("--port", type=int, default=8080)
    sub.add_parser("report", help="write reports/")
    profile = sub.add_parser(
        "profile", help="add a params profile's datasets and variants to params.yaml"
    )
    profile.add_argument("name", help="profiles/<NAME>.yaml (or a path to a profile file)")
    profile.add_argument("--off", action="store_true", help="remove the profile's entries again")
    ui = sub.add_parser("ui", help="mlflow ui on 127.0.0.1 against the project's store")
    ui.add_argument("--port", type=int, default=5000)
    return p


def run(args: argparse.Namespace) -> None:
    from genlab.config import load_params

    params_path = Path(args.params)
    root = params_path.resolve().parent
    if args.command == "profile":  # edits the params file: before it is loaded
        from genlab.profiles import apply_profile

        print(apply_profile(params_path, args.name, off=args.off))
        return
    params = load_params(params_path, args.overrides)
    from genlab.runtime import use_threads

    use_threads(params.threads)  # training refines "auto" by the model's size
    from genlab.toys import check_toys

    check_toys(params)

    if args.command == "prepare":
        from genlab import tracking
        from genlab.data import prepare_dataset

        given = params.data.model_dump(exclude_none=True) if params.data is not None else {}
        names = [args.dataset] if args.dataset else list(given)
        tracking.check_store(params.tracking, root)  # a bad tracking.uri stops before any write
        for name in names:
            cfg = params.dataset_cfg(name)
            print(f"prepared {prepare_dataset(name, cfg, root, params.seed)}")
        tracking.init_store(params.tracking, root)  # once, before any parallel stage
    elif args.command == "fit-evaluator":
        from genlab.evaluate import fit_evaluator_stage

        out = fit_evaluator_stage(params, args.dataset, root)
        scored = [f"{k} {out[k]}" for k in ("floor", "baseline") if k in out]
        accuracy = out["test_accuracy"]
        print(f"evaluator {args.dataset}: test accuracy {accuracy}, {', '.join(scored)}")
    if args.command == "train" and args.nproc is not None:
        _data_parallel(args, params)
        return
    if getattr(args, "seed", None) is not None:
        params, args.variant = params.replica(args.variant, args.seed)
    if args.command == "train":
        from genlab.train import distributed
        from genlab.train.loop import train_variant

        out = train_variant(params, args.variant, root, resume=args.resume)
        distributed.stop()  # under torchrun: leave the process group
        if distributed.current().main:  # under torchrun the other ranks say nothing
            print(f"trained {args.variant}: {out['steps']} steps in {out['seconds']:.1f} s")
    elif args.command == "sample":
        from genlab.sample import sample_variant

        print(f"sampled {args.variant}: {sample_variant(params, args.variant, root)['dir']}")
    elif args.command == "evaluate":
        from genlab.evaluate import evaluate_variant

        print(f"evaluated {args.variant}: {evaluate_variant(params, args.variant, root)}")
    elif args.command == "toy":
        from genlab.paths import Paths
        from genlab.toys import TOYS, toy_cfg

        table = TOYS.get(args.name).run(toy_cfg(params, args.name), params.seed, Paths(root).toys)
        print(table.to_string(max_rows=40))
    elif args.command == "sweep":
        from genlab.sweeps import run_sweep

        out = run_sweep(
            params, args.study, root, workers=args.workers,
            source=(str(params_path), list(args.overrides)),
        )  # fmt: skip
        print(f"sweep {args.study}: {out['counts']}; tables in {out['dir']}")
        print(out["table_frame"].to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    elif args.command == "dashboard":
        from genlab.sweeps import dashboard_command

        cmd = dashboard_command(params, args.study, root, args.port)
        exe = Path(sys.executable).with_name("optuna-dashboard")
        os.execv(str(exe), [str(exe), *cmd[1:]])
    elif args.command == "report":
        from genlab.report import write_report

        variants = {k: v.model_dump(mode="json") for k, v in params.variants.items()}
        out = write_report(
            root, variants, list(params.sweeps), seeds=params.seeds.model_dump(),
            seed=params.seed, level=params.evaluate.confidence,
            replicates=params.evaluate.bootstrap,
        )  # fmt: skip
        print(f"report: {out['readme']}")
    elif args.command == "ui":
        from genlab import tracking

        cmd = tracking.ui_command(params.tracking, root, args.port)
        exe = Path(sys.executable).with_name("mlflow")
        os.execv(str(exe), [str(exe), *cmd[1:]])


class Exit(Exception):
    """Leave ``main`` with this exit code (the processes' own messages are already printed)."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _data_parallel(args: argparse.Namespace, params) -> None:
    """``genlab train V --nproc N``: checks what it can before starting, then runs ``genlab
    train V`` in N processes through torchrun (``genlab.train.distributed``)."""
    from genlab import tracking
    from genlab.errors import ConfigError
    from genlab.train import distributed

    if args.nproc < 1:
        raise ConfigError(f"--nproc = {args.nproc}; allowed: an integer >= 1")
    if distributed.current().active:
        raise ConfigError("--nproc inside a torchrun process; run either torchrun or --nproc")
    name = args.variant
    if args.seed is not None:
        params, name = params.replica(args.variant, args.seed)
    distributed.check_batch(params.variant(name).batch_size, args.nproc)  # unknown: ConfigError
    _check_devices(params.device, args.nproc)
    tracking.check_store(params.tracking, Path(args.params).resolve().parent)  # before N starts
    argv = ["--params", args.params]
    for override in args.overrides:
        argv += ["-S", override]
    argv += ["train", args.variant] + (["--resume"] if args.resume else [])
    argv += ["--seed", str(args.seed)] if args.seed is not None else []
    if args.nproc == 1:
        from genlab.train.loop import train_variant

        out = train_variant(params, name, Path(args.params).resolve().parent, resume=args.resume)
        print(f"trained {name}: {out['steps']} steps in {out['seconds']:.1f} s")
        return
    code = distributed.launch(args.nproc, argv)
    if code:
        raise Exit(code)
    print(f"trained {name} on {args.nproc} processes")


def _check_devices(device: str, nproc: int) -> None:
    """One GPU per process on CUDA."""
    from genlab.errors import ConfigError
    from genlab.runtime import resolve_device

    if resolve_device(device).type != "cuda":
        return
    import torch

    if nproc > torch.cuda.device_count():
        raise ConfigError(
            f"--nproc = {nproc} on device cuda but this machine has {torch.cuda.device_count()} "
            "GPU(s); allowed: one process per GPU (or device: cpu)"
        )


def usage_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean bad input (exit 2), not a failed computation."""
    from genlab.errors import USAGE_ERRORS

    return USAGE_ERRORS


def _out_of_memory(e: BaseException) -> bool:
    import torch

    return isinstance(e, MemoryError | torch.OutOfMemoryError) or (
        isinstance(e, RuntimeError) and "can't allocate memory" in str(e)
    )


def _first_line(e: BaseException) -> str:
    return (str(e).splitlines() or [type(e).__name__])[0][:200]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except KeyboardInterrupt:
        print("genlab: interrupted", file=sys.stderr)
        return 130
    except Exit as e:
        return e.code
    except Exception as e:  # noqa: BLE001 - sorted into bad input (2) and failures (1) below
        from genlab.errors import SweepFailed, TrainingDiverged
        from genlab.train.distributed import RankStopped

        if isinstance(e, TrainingDiverged | RankStopped):
            print(f"genlab: training failed: {e}", file=sys.stderr)
            return 1
        if isinstance(e, SweepFailed):
            print(f"genlab: sweep failed: {e}", file=sys.stderr)
            return 1
        if isinstance(e, usage_errors()):
            print(f"genlab: error: {e}", file=sys.stderr)
            return 2
        if _out_of_memory(e):
            print(
                f"genlab: failed: out of memory ({_first_line(e)}); lower batch_size, width, "
                "latent_dim or sample.n",
                file=sys.stderr,
            )
            return 1
        if isinstance(e, OSError):  # a read-only folder, a full disk, ...
            print(f"genlab: failed: {e}", file=sys.stderr)
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
