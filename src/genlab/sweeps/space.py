"""A study's settings (``sweeps.<name>`` in params.yaml) and its search space: the schema, the
check that every arm and conditional parameter makes a valid variant, the variant a sampled point
trains, and define-by-run sampling. Pure: no Optuna import (``suggest`` takes any object with
Optuna's ``suggest_*`` methods)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from genlab.config import Strict, VariantCfg, format_errors
from genlab.errors import ConfigError

ARM_KEYS = ("loss", "regularizer")  # the categorical choices whose product forms the arms
FIXED_IN_SWEEPS = ("dataset", "family", "steps", "log_every", "checkpoint_every")
NONE = "none"  # the regulariser choice "no regulariser"


# ---------------------------------------------------------------- schema
class SearchParam(Strict):
    """One dimension of a search space: ``choices`` (categorical) or ``low``..``high``
    (float, or int with ``int: true``; ``log: true`` samples log-uniformly). ``when`` makes it
    conditional: it is sampled only when every named earlier key took one of the listed values."""

    choices: list[Any] | None = None
    low: float | None = None
    high: float | None = None
    log: bool = False
    int: bool = False
    when: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _one_kind(self) -> SearchParam:
        ranged = self.low is not None or self.high is not None
        if (self.choices is None) == (not ranged):
            raise ValueError("give either choices: [...] or low and high")
        if self.choices is not None:
            if not self.choices:
                raise ValueError("choices must not be empty")
            if self.log or self.int:
                raise ValueError("log and int apply to ranges (low, high), not to choices")
        elif self.low is None or self.high is None or not self.low < self.high:
            raise ValueError(f"need low < high; got low = {self.low}, high = {self.high}")
        elif self.log and self.low <= 0:
            raise ValueError(f"log: true needs low > 0; got low = {self.low}")
        return self

    def allowed(self, key: str) -> list[Any]:
        """The values a condition on this parameter may name."""
        if self.choices is None:
            raise ValueError(
                f"a condition can only name a parameter with choices; {key!r} is a range"
            )
        return self.choices


class PrunerCfg(Strict):
    name: Literal["none", "median", "hyperband"] = "median"
    startup_trials: int = Field(3, ge=0)  # median: trials that finish before any is pruned
    warmup_steps: int = Field(0, ge=0)  # median: steps before a trial may be pruned
    reduction_factor: int = Field(3, ge=2)  # hyperband: keep 1/reduction_factor per rung


class SweepCfg(Strict):
    """An Optuna study over a base variant. See README "Sweeps"."""

    base: str  # a variant in ``variants``: everything the space does not set
    space: dict[str, SearchParam]  # keys: loss, regularizer, or a variant key path (optimizer.lr)
    sampler: Literal["random", "tpe"] = "random"  # random: budget-fair; tpe: to find the best
    trials: int | None = Field(None, ge=1)  # trials in total, or ...
    trials_per_arm: int | None = Field(None, ge=1)  # ... exactly this many per arm
    steps: int = Field(500, ge=1)  # generator steps per trial
    report_every: int = Field(100, ge=1)  # the objective is reported (and pruned on) every k steps
    pruner: PrunerCfg = PrunerCfg()
    seeds: list[int] = Field(default_factory=lambda: [1, 2, 3])  # re-measure each arm's best
    objectives: list[Literal["frechet", "kid", "seconds"]] = Field(
        default_factory=lambda: ["frechet"], min_length=1, max_length=2
    )
    storage: str | None = None  # Optuna storage URL; None: sqlite in reports/sweeps/<study>/
    workers: int = Field(1, ge=1)  # processes when `genlab sweep` gets no --workers
    heartbeat: int = Field(10, ge=1)  # seconds between a running trial's heartbeats
    grace: int = Field(60, ge=1)  # a trial silent this long is failed and retried
    max_retry: int = Field(2, ge=0)  # retries of a trial whose worker died
    bootstrap: int = Field(10000, ge=100)  # resamples of the 95% interval over seeds

    @model_validator(mode="after")
    def _consistent(self) -> SweepCfg:
        if not self.space:
            raise ValueError(
                "space is empty; give at least one key to search (loss, regularizer or a variant "
                "key such as optimizer.lr): without one every trial is the same run"
            )
        seen: dict[str, SearchParam] = {}
        for key, dim in self.space.items():
            head = key.split(".")[0]
            if key == "regularizer" or key == "loss":
                if dim.choices is None:
                    raise ValueError(f"space.{key} must list choices")
            elif head in FIXED_IN_SWEEPS:
                raise ValueError(
                    f"space.{key}: {head} is fixed by the study (base variant or sweep steps)"
                )
            elif head not in VariantCfg.model_fields:
                raise ValueError(
                    f"space.{key}: {head!r} is not a variant key; allowed: loss, regularizer, "
                    + ", ".join(sorted(set(VariantCfg.model_fields) - set(FIXED_IN_SWEEPS)))
                )
            for other, values in dim.when.items():
                if other not in seen:
                    raise ValueError(
                        f"space.{key}.when names {other!r}, which is not an earlier key of space"
                    )
                allowed = seen[other].allowed(other)
                for value in values if isinstance(values, list) else [values]:
                    if value not in allowed:
                        raise ValueError(
                            f"space.{key}.when: {other} = {value!r} is not among its choices "
                            f"{allowed}"
                        )
            seen[key] = dim
        if (self.trials is None) == (self.trials_per_arm is None):
            raise ValueError("give exactly one of trials (in total) and trials_per_arm")
        if self.trials_per_arm is not None and not any(k in self.space for k in ARM_KEYS):
            raise ValueError("trials_per_arm needs loss or regularizer in space")
        if self.objectives[0] == "seconds" or len(set(self.objectives)) < len(self.objectives):
            raise ValueError(
                f"objectives = {self.objectives}: the first must be frechet or kid, "
                "optionally followed by seconds"
            )
        if len(self.objectives) > 1 and self.pruner.name != "none":
            raise ValueError(
                "a study with two objectives cannot prune (Optuna prunes single-objective "
                f"studies only); set pruner.name: none or objectives: [{self.objectives[0]}]"
            )
        if self.report_every > self.steps:
            raise ValueError(f"report_every = {self.report_every} exceeds steps = {self.steps}")
        if len(set(self.seeds)) < len(self.seeds):
            raise ValueError(f"seeds = {self.seeds} repeat a seed")
        return self


def study_cfg(params, name: str) -> SweepCfg:
    """Study ``name`` of ``params`` (``params.sweeps`` holds raw settings), validated: its schema,
    its base (a variant of ``params``) and everything ``check_study`` finds. Raises
    ``ConfigError`` naming ``sweeps.<name>.<key>``, the value and what is allowed."""
    if name not in params.sweeps:
        raise ConfigError(
            f"unknown sweep {name!r}; the sweeps in params.yaml are: "
            f"{', '.join(sorted(params.sweeps)) or '(none)'}"
        )
    try:
        sweep = SweepCfg.model_validate(params.sweeps[name])
    except ValidationError as e:
        msg = format_errors(e, f"sweeps.{name}", model=SweepCfg, prefix=("sweeps", name))
        raise ConfigError(msg) from None
    if sweep.base not in params.variants:
        raise ConfigError(
            f"sweeps.{name}.base = {sweep.base!r} is not a variant; the variants are: "
            f"{', '.join(sorted(params.variants)) or '(none)'}"
        )
    errors = check_study(params.variants[sweep.base], sweep, params.seed)
    if errors:
        raise ConfigError(f"sweeps.{name}: " + f"; sweeps.{name}: ".join(errors))
    return sweep


# ---------------------------------------------------------------- search space -> variants
def active(dim, values: dict[str, Any]) -> bool:
    """Whether a conditional parameter is sampled, given the values chosen before it."""
    return all(
        key in values and values[key] in (allowed if isinstance(allowed, list) else [allowed])
        for key, allowed in dim.when.items()
    )


def variant_for(base: VariantCfg, sweep: SweepCfg, values: dict[str, Any]) -> VariantCfg:
    """The base variant with the sampled ``values`` applied and ``steps`` set to the study's.

    ``regularizer`` replaces the base's regularisers by the chosen one (or none); every other key
    is a path into the variant (``optimizer.lr``, ``optimizer.betas.0``,
    ``regularizers.r1.weight``). Sampled ``optimizer_d.*`` keys start from the base's D optimizer
    when it has one, else from G's final optimizer (so a sampled beta1 reaches D too unless the
    base gives D its own optimizer). Raises ``ConfigError`` for a combination that is not valid.
    """
    raw = base.model_dump(mode="json")
    raw["steps"] = sweep.steps
    d_opt_base = raw.get("optimizer_d")
    if "regularizer" in values:
        name = values["regularizer"]
        raw["regularizers"] = {} if name == NONE else {name: raw["regularizers"].get(name, {})}
    d_opt: dict[str, Any] = {}
    for key, value in values.items():
        if key == "regularizer":
            continue
        if key.startswith("optimizer_d."):
            _set_path(d_opt, key.split(".")[1:], value)
        else:
            _set_path(raw, key.split("."), value)
    if d_opt:
        start = d_opt_base if d_opt_base is not None else raw["optimizer"]
        merged = json.loads(json.dumps(start))
        for path, value in _leaves(d_opt):
            _set_path(merged, path, value)
        raw["optimizer_d"] = merged
    try:
        return VariantCfg.model_validate(raw)
    except Exception as e:  # noqa: BLE001 - pydantic errors and registry errors alike
        msg = format_errors(e, "variant") if isinstance(e, ValidationError) else str(e)
        raise ConfigError(msg.replace("\n", ";")) from None


def _set_path(node: Any, path: list[str], value: Any) -> None:
    """``node[path[0]][path[1]]... = value``; a numeric part indexes a list (``betas.0``)."""
    for part in path[:-1]:
        if isinstance(node, list):
            node = node[int(part)]
        else:
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
    if isinstance(node, list):
        node[int(path[-1])] = value
    else:
        node[path[-1]] = value


def _leaves(d: dict, prefix: tuple = ()) -> Iterator[tuple[list[str], Any]]:
    for key, value in d.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, (*prefix, key))
        else:
            yield [*prefix, key], value


def arms(sweep: SweepCfg, base: VariantCfg) -> list[tuple[str, str]]:
    """Every (loss, regulariser) arm of the space; a key the space omits keeps the base's."""
    base_reg = ",".join(base.regularizers) or NONE
    losses = sweep.space["loss"].choices if "loss" in sweep.space else [base.loss]
    regs = sweep.space["regularizer"].choices if "regularizer" in sweep.space else [base_reg]
    return list(itertools.product(losses, regs))


def arm_label(arm: tuple[str, str]) -> str:
    return f"{arm[0]} x {arm[1]}"


def default_values(sweep: SweepCfg, fixed: dict[str, Any]) -> dict[str, Any]:
    """One point of the space: ``fixed`` arm values, else the first choice or the lower bound."""
    values: dict[str, Any] = {}
    for key, dim in sweep.space.items():
        if not active(dim, values):
            continue
        if key in fixed:
            values[key] = fixed[key]
        elif dim.choices is not None:
            values[key] = dim.choices[0]
        else:
            values[key] = int(dim.low) if dim.int else dim.low
    return values


def check_study(base: VariantCfg, sweep: SweepCfg, seed: int) -> list[str]:
    """Everything wrong with a study that its schema alone cannot see: every arm, and every
    conditional parameter at a point where it is active, must make a valid variant; a
    ``regularizers.X.*`` key must be tied to the arm it belongs to; seeds are re-measurements."""
    errors = []
    for arm in arms(sweep, base):
        fixed = {k: v for k, v in zip(ARM_KEYS, arm, strict=True) if k in sweep.space}
        try:
            variant_for(base, sweep, default_values(sweep, fixed))
        except ConfigError as e:
            errors.append(f"the arm {arm_label(arm)} is not a valid variant: {e}")
    for key, dim in sweep.space.items():
        fixed = {k: v[0] if isinstance(v, list) else v for k, v in dim.when.items()}
        fixed[key] = dim.choices[-1] if dim.choices is not None else dim.high
        try:
            variant_for(base, sweep, default_values(sweep, fixed))
        except ConfigError as e:
            errors.append(f"space.{key} makes an invalid variant where it applies: {e}")
        head, _, rest = key.partition(".")
        if head == "regularizers" and "regularizer" in sweep.space:
            name = rest.split(".")[0]
            tied = dim.when.get("regularizer")
            if tied is None or (name in sweep.space["regularizer"].choices and tied != name
                                and tied != [name]):  # fmt: skip
                errors.append(
                    f"space.{key} needs when: {{regularizer: {name}}} (or another regularizer "
                    f"value when {name} is not a choice); unconditioned it would add {name} to "
                    "every arm"
                )
    if seed in sweep.seeds:
        errors.append(
            f"seeds = {sweep.seeds} contains the project seed {seed}, which the search trials "
            "use: their scores were selected as the best, not re-measured; use other seeds"
        )
    if any(s < 0 for s in sweep.seeds):
        errors.append(f"seeds = {sweep.seeds}: seeds must be >= 0")
    if sweep.grace <= 2 * sweep.heartbeat:
        errors.append(
            f"grace = {sweep.grace} must exceed 2 x heartbeat = {2 * sweep.heartbeat}, or live "
            "trials are taken for dead ones"
        )
    return errors


# ---------------------------------------------------------------- sampling
def suggest(trial, sweep: SweepCfg) -> dict[str, Any]:
    """Define-by-run sampling of the space, in its order, skipping inactive conditionals."""
    values: dict[str, Any] = {}
    for key, dim in sweep.space.items():
        if not active(dim, values):
            continue
        if dim.choices is not None:
            values[key] = trial.suggest_categorical(key, dim.choices)
        elif dim.int:
            values[key] = trial.suggest_int(key, int(dim.low), int(dim.high), log=dim.log)
        else:
            values[key] = trial.suggest_float(key, dim.low, dim.high, log=dim.log)
    return values
