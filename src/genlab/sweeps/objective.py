"""One trial and one retrain: train a variant in memory for the study's ``steps`` and score it
with the same seeded latent batch and metric functions as ``sample`` + ``evaluate``
(``GeneratorScorer``), every ``report_every`` steps for the pruner; each is an MLflow child run of
the study's parent run."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import genlab
from genlab.config import VariantCfg
from genlab.errors import ConfigError, TrainingDiverged
from genlab.sweeps.context import Context
from genlab.sweeps.space import arm_label, suggest, variant_for
from genlab.sweeps.storage import RETRAIN_PREFIX, trial_arm

METRIC_KEY = {"frechet": "frechet", "kid": "kid"}


class TrialFailed(RuntimeError):
    """A trial that cannot finish (diverged, invalid combination): failed, and the sweep goes on."""


def fit_and_score(
    params,  # validated Params (device, sample settings)
    cfg: VariantCfg,  # the trial's variant
    root: Path,  # project root
    seed: int,  # seeds training and the scored latent batch, as `seed:` would in the pipeline
    scorer,  # GeneratorScorer of the variant's dataset
    report_every: int,  # score every k steps (and at the last step)
    on_report: Callable[[int, dict[str, float], float], None] | None = None,  # (step, scores, s)
    label: str = "trial",  # names the run in a divergence message
) -> dict[str, Any]:
    """Train ``cfg`` from scratch in memory; returns the final scores and training seconds
    (scoring excluded). Raises TrainingDiverged on NaN; ``on_report`` may raise to stop."""
    from genlab.train.loop import build_training, model_modules, training_steps

    trainer, batches, ema, _ = build_training(
        cfg, seed, root, params.device, params.threads, params.compile
    )
    seconds, t0, scores = 0.0, time.perf_counter(), {}
    for module in trainer.modules.values():
        module.train()
    steps = training_steps(trainer, batches, ema, 0, cfg.steps, label, report_every)
    for step, _stats in steps:
        if step % report_every == 0 or step == cfg.steps:
            seconds += time.perf_counter() - t0
            # what model.pt would hold now: the generator's EMA weights when EMA is on
            scores = scorer(model_modules(trainer, ema, cfg.family), cfg, seed)
            if on_report is not None:
                on_report(step, scores, seconds)
            t0 = time.perf_counter()
    return {"scores": scores, "seconds": seconds}


class Objective:
    """Optuna's objective: sample, build the variant, train, report, score; an MLflow child run."""

    def __init__(self, ctx: Context, parent_run: str | None) -> None:
        from genlab.evaluate import GeneratorScorer

        self.ctx, self.parent_run = ctx, parent_run
        sweep = ctx.sweep
        names = [m for m in sweep.objectives if m != "seconds"]
        self.scorer = GeneratorScorer(ctx.params, ctx.base.dataset, ctx.root, names)

    def __call__(self, trial) -> float | tuple[float, float]:
        import optuna

        from genlab import tracking

        ctx, sweep = self.ctx, self.ctx.sweep
        key = METRIC_KEY[sweep.objectives[0]]
        values = suggest(trial, sweep)
        arm = trial_arm(trial, ctx)
        trial.set_user_attr("arm", arm_label(arm))
        try:
            cfg = variant_for(ctx.base, sweep, values)
        except ConfigError as e:
            trial.set_user_attr("fail_reason", f"invalid combination: {e}")
            raise TrialFailed(str(e)) from None
        trial.set_user_attr("config", cfg.model_dump(mode="json"))
        run = tracking.Run.start(
            ctx.params.tracking, ctx.root, name=f"{ctx.name} #{trial.number}",
            params={"trial": trial.number, "seed": ctx.params.seed, **values,
                    **variant_params(cfg)},
            tags=run_tags(ctx, self.parent_run, trial.number, arm, "trial"),
        )  # fmt: skip
        trial.set_user_attr("mlflow_run", run.run_id)

        def report(step: int, scores: dict[str, float], seconds: float) -> None:
            value = scores[key]
            run.log_metrics([{"step": step, key: value, "train_seconds": seconds}])
            trial.set_user_attr("steps_done", step)
            if not math.isfinite(value):
                raise TrainingDiverged(f"{key} = {value} at step {step}")
            if len(sweep.objectives) == 1:
                trial.report(value, step)
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at step {step}: {key} = {value:.4g}")

        try:
            out = fit_and_score(
                ctx.params, cfg, ctx.root, ctx.params.seed, self.scorer, sweep.report_every,
                report, label=f"{ctx.name} trial {trial.number}",
            )  # fmt: skip
        except optuna.TrialPruned:
            run.set_tags({"optuna.state": "PRUNED"})
            run.end("FINISHED")
            raise
        except TrainingDiverged as e:
            trial.set_user_attr("fail_reason", str(e))
            run.set_tags({"optuna.state": "FAIL", "failure": str(e)[:5000]})
            run.end("FAILED")
            raise TrialFailed(str(e)) from None
        except KeyboardInterrupt:  # re-queued by the next `genlab sweep` (see requeue_interrupted)
            trial.set_user_attr("interrupted", True)
            run.set_tags({"optuna.state": "FAIL", "failure": "interrupted"})
            run.end("KILLED")
            raise
        except Exception as e:  # a bug, not a property of the trial: the sweep stops
            trial.set_user_attr("fail_reason", f"{type(e).__name__}: {e}")
            run.set_tags({"optuna.state": "FAIL", "failure": f"{type(e).__name__}: {e}"[:5000]})
            run.end("FAILED")
            raise
        trial.set_user_attr("seconds", out["seconds"])
        run.log_metrics([final_row(cfg.steps, out["scores"])])
        run.set_tags({"optuna.state": "COMPLETE"})
        run.end("FINISHED")
        value = out["scores"][key]
        return (value, out["seconds"]) if len(sweep.objectives) == 2 else value


def run_tags(
    ctx: Context, parent_run: str | None, number: int, arm: tuple[str, str], kind: str
) -> dict[str, str]:
    """MLflow tags of a trial's (or a retrain's) child run."""
    tags = {
        "sweep": ctx.name, "optuna.study": ctx.study_name, "kind": kind,
        "optuna.trial": str(number), "arm": arm_label(arm), "dataset": ctx.base.dataset,
        "family": ctx.base.family, "genlab.version": genlab.__version__,
    }  # fmt: skip
    if parent_run is not None:
        tags["mlflow.parentRunId"] = parent_run
    return tags


def variant_params(cfg: VariantCfg) -> dict[str, Any]:
    """The variant a trial or retrain trains, as MLflow params under ``variant.``."""
    return {f"variant.{k}": v for k, v in cfg.model_dump(mode="json").items()}


def final_row(step: int, scores: dict[str, float]) -> dict[str, float]:
    return {"step": step, **{f"final.{k}": v for k, v in scores.items()}}


# ---------------------------------------------------------------- retraining over seeds
def retrain(ctx: Context, number: int, seed: int, parent_run: str | None) -> None:
    """Retrain trial ``number``'s configuration with ``seed``; the score goes to the study."""
    from genlab import tracking
    from genlab.evaluate import GeneratorScorer

    study = ctx.open()
    trial = study.trials[number]
    cfg = VariantCfg.model_validate(trial.user_attrs["config"])
    key = METRIC_KEY[ctx.sweep.objectives[0]]
    scorer = GeneratorScorer(ctx.params, cfg.dataset, ctx.root, [ctx.sweep.objectives[0]])
    arm = trial_arm(trial, ctx)
    run = tracking.Run.start(
        ctx.params.tracking, ctx.root, name=f"{ctx.name} #{number} seed {seed}",
        params={"trial": number, "seed": seed,
                **variant_params(cfg)},
        tags={**run_tags(ctx, parent_run, number, arm, "retrain"), "seed": str(seed)},
    )  # fmt: skip
    status, reason = "FINISHED", ""
    try:
        out = fit_and_score(
            ctx.params, cfg, ctx.root, seed, scorer, cfg.steps,
            label=f"{ctx.name} trial {number} seed {seed}",
        )  # fmt: skip
        value = out["scores"][key]
        run.log_metrics([final_row(cfg.steps, out["scores"])])
        if not math.isfinite(value):
            status, reason = "FAILED", f"{key} = {value}"
    except TrainingDiverged as e:
        value, out, status, reason = math.nan, {"seconds": math.nan}, "FAILED", str(e)
    except BaseException as e:
        run.set_tags({"failure": f"{type(e).__name__}: {e}"[:5000]})
        run.end("KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
        raise
    if reason:
        run.set_tags({"failure": reason[:5000]})
    run.end(status)
    study.set_user_attr(
        f"{RETRAIN_PREFIX}{number}:{seed}",
        {"value": value if math.isfinite(value) else None, "seconds": out["seconds"],
         "failure": reason},
    )  # fmt: skip
    print(f"  retrain trial {number} [{arm_label(arm)}] seed {seed}: {key} {value:.4g}", flush=True)
