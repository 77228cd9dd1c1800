"""Typed params schema (pydantic) and ``load_params``.

Every knob lives in params.yaml. Validation happens once, here: unknown keys, wrong types,
out-of-range values and unknown names (dataset, family, arch, loss, metric, optimizer) stop the
command with one message naming the key, the value and what is allowed. Each variant is the
shared ``train`` section deep-merged with the variant's own keys. Optuna studies (``sweeps``) are
kept as raw settings here and validated by ``genlab.sweeps.study_cfg`` when a study is run.
"""

from __future__ import annotations

import copy
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from genlab.data import DATASETS
from genlab.errors import ConfigError
from genlab.families import FAMILIES
from genlab.metrics import METRICS
from genlab.options import Declared, Option, Options, declared
from genlab.registry import Registry
from genlab.runtime import OptimizerCfg

__all__ = ["ConfigError", "Params", "VariantCfg", "load_params", "validate_params"]


Strict = Options  # every params section is strict and frozen

# bounds that keep a typo from allocating the machine's memory away (latent_dim: 1e15)
MAX_WIDTH = 4096  # latent_dim, width
MAX_BATCH = 65536
MAX_SAMPLES = 10**6
MAX_STEPS = 10**9
MAX_SEED = 2**31 - 1  # numpy seeds are 32-bit; seed + k must stay valid
MAX_THREADS = 1024


def _check_name(registry: Registry, name: str) -> str:
    registry.get(name)  # raises UnknownNameError listing the allowed names
    return name


# ---------------------------------------------------------------- data
def data_model() -> type[BaseModel]:
    """``data``: one optional entry per registered dataset, typed by the dataset's own options
    (``dvc.yaml`` loops over the keys given)."""
    names = tuple(DATASETS.registered())
    if _DATA_MODEL.get("names") != names:
        fields = {n: (DATASETS.get(n).options | None, None) for n in names}
        _DATA_MODEL.update(names=names, model=create_model("DataCfg", __base__=Strict, **fields))
    return _DATA_MODEL["model"]


_DATA_MODEL: dict[str, Any] = {}


# ---------------------------------------------------------------- training
@dataclass(frozen=True)
class Owner:
    """A component that reads a variant key: a family, or an arch or loss of a family."""

    kind: str  # "family", "arch" or "loss"
    name: str
    family: str

    def chosen(self, v: Any) -> bool:
        if self.kind == "family":
            return v.family == self.name
        return v.family == self.family and getattr(v, self.kind) == self.name


def _components() -> list[tuple[Owner, Declared]]:
    """Every registered family, and every arch and loss of each, with what it declares."""
    out = []
    for name in FAMILIES.registered():
        family = FAMILIES.get(name)
        out.append((Owner("family", name, name), Declared(family.options, family.check)))
        for kind, registry in (("arch", family.archs), ("loss", family.losses)):
            for item in registry.registered():
                out.append((Owner(kind, item, name), declared(registry.get(item))))
    return out


def _options() -> dict[str, tuple[Option, list[Owner]]]:
    """Variant key -> (its declaration, the components that read it). Components that share a
    key share its declaration (genlab.nets.base.ATTENTION, ...)."""
    keys: dict[str, tuple[Option, list[Owner]]] = {}
    for owner, decl in COMPONENTS:
        for key, option in decl.options.items():
            known, owners = keys.setdefault(key, (option, []))
            if known is not option and known != option:
                raise TypeError(f"variant key {key!r} is declared differently by {owner}")
            owners.append(owner)
    return keys


def _where(option: Option, owners: list[Owner]) -> str:
    if option.when_doc:
        return option.when_doc
    kinds = sorted({o.kind for o in owners})
    return "; ".join(
        f"by {kind}: {', '.join(sorted({o.name for o in owners if o.kind == kind}))}"
        for kind in kinds
    )


class VariantBase(Strict):
    """One trained variant: the keys every family reads. The keys its family, arch and loss read
    are added from their declarations (``VariantCfg``). Keys not given here come from the shared
    ``train`` section."""

    dataset: str
    family: str  # a registered family (genlab.families)
    arch: str
    loss: str | None = Field(None, validate_default=True)  # None: the family default
    latent_dim: int = Field(64, ge=1, le=MAX_WIDTH)
    width: int | None = Field(
        None, ge=1, le=MAX_WIDTH
    )  # architecture's base width; None = the arch default
    steps: int = Field(3000, ge=1, le=MAX_STEPS)
    batch_size: int = Field(128, ge=1, le=MAX_BATCH)
    log_every: int = Field(50, ge=1)
    checkpoint_every: int = Field(500, ge=1)
    optimizer: OptimizerCfg = OptimizerCfg()
    ema: float = Field(0.0, ge=0, lt=1)  # EMA decay of the generator's weights; 0 = off
    precision: Literal["fp32", "bf16"] = "fp32"

    @field_validator("dataset")
    @classmethod
    def _dataset_known(cls, v: str) -> str:
        return _check_name(DATASETS, v)

    @field_validator("family")
    @classmethod
    def _family_known(cls, v: str) -> str:
        return _check_name(FAMILIES, v)

    @field_validator("arch", "loss")
    @classmethod
    def _names_fit_family(cls, v: Any, info: ValidationInfo) -> Any:
        """arch and loss are looked up in the registries of the variant's family."""
        if "family" not in info.data:  # the family itself is invalid and reported already
            return v
        family = FAMILIES.get(info.data["family"])
        if info.field_name == "arch":
            return _check_name(family.archs, v)
        return _check_name(family.losses, family.default_loss if v is None else v)

    @model_validator(mode="after")
    def _declared_rules(self) -> VariantBase:
        """No key set away from its default where it has no effect, then each chosen
        component's rule."""
        for key, (option, owners) in OPTIONS.items():
            value = getattr(self, key)
            applies = any(o.chosen(self) for o in owners) and (
                option.when is None or option.when(self)
            )
            if value != option.default_value() and not applies:
                raise ValueError(
                    f"{key} = {value!r} has no effect here; it is read {_where(option, owners)}"
                )
        for owner, decl in _components():  # live: a family registered later checks too
            if decl.check is not None and owner.chosen(self):
                decl.check(self)
        return self


def _regularizers_of_family(cls, v: dict, info: ValidationInfo) -> dict:
    """Regularisers of the variant's family, each given only the keys it reads."""
    if "family" not in info.data:  # the family itself is invalid and reported already
        return v
    registry = FAMILIES.get(info.data["family"]).regularizers
    for name, reg in v.items():
        reads = registry.get(name).reads  # raises UnknownNameError listing the allowed names
        unused = sorted(
            key for key in reg.model_fields_set - reads
            if getattr(reg, key) != type(reg).model_fields[key].default
        )  # fmt: skip
        if unused:
            raise ValueError(
                f"regularizer {name!r} does not use {', '.join(unused)}; "
                f"it reads {', '.join(sorted(reads)) or 'nothing'}"
            )
    return v


def _validators() -> dict[str, Any]:
    """Field validators of the declared keys: names from a registry, the regularisers."""
    out: dict[str, Any] = {}
    for key, (option, _) in OPTIONS.items():
        if option.names is not None:
            registry = option.names
            out[f"_{key}_known"] = field_validator(key)(
                lambda cls, v, registry=registry: _check_name(registry, v)
            )
    if "regularizers" in OPTIONS:
        out["_regularizers_fit"] = field_validator("regularizers")(_regularizers_of_family)
    return out


COMPONENTS = _components()  # every family, arch and loss with its declaration
OPTIONS = _options()
VariantCfg = create_model(
    "VariantCfg",
    __base__=VariantBase,
    __module__=__name__,
    __validators__=_validators(),
    **{key: (option.type, option.default) for key, (option, _) in OPTIONS.items()},
)


class SampleCfg(Strict):
    n: int = Field(2000, ge=1, le=MAX_SAMPLES)
    grid: int = Field(64, ge=1, le=1024)
    interpolation_steps: int = Field(10, ge=2)
    batch_size: int = Field(500, ge=1, le=MAX_BATCH)
    # latent arithmetic figure: mean z of class a - class b + class c (classes by the evaluator)
    arithmetic: tuple[int, int, int] | None = (7, 1, 4)


class EvaluateCfg(Strict):
    metrics: list[str] = Field(
        default_factory=lambda: [
            "frechet",
            "kid",
            "prdc",
            "coverage",
            "conditional",
            "info",
            "elbo",
            "iwae",
            "vq",
            "translation",
        ]
    )
    # samples scored per model, and real training images scored for the floor: the same n for
    # both; a dataset whose training split is smaller scores n_train of each (metrics: n_samples)
    n: int = Field(1000, ge=2, le=MAX_SAMPLES)
    bootstrap: int = Field(200, ge=0, le=100_000)  # replicates of every interval; 0: none
    confidence: float = Field(0.95, gt=0, lt=1)  # level of the bootstrap intervals
    # KID on the whole sets, or the mean over kid_subsets subsets of this size (it must fit)
    kid_subset_size: Literal["all"] | int = "all"
    kid_subsets: int = Field(50, ge=1, le=100_000)
    pr_k: int = Field(3, ge=1, le=1000)  # k of precision/recall (Kynkaanniemi et al. 2019)
    dc_k: int = Field(5, ge=1, le=1000)  # k of density/coverage (Naeem et al. 2020)
    iwae_samples: int = Field(128, ge=1, le=100_000)  # importance samples k of the test NLL (VAEs)

    @field_validator("metrics")
    @classmethod
    def _metrics_known(cls, v: list[str]) -> list[str]:
        return [_check_name(METRICS, m) for m in v]

    @field_validator("kid_subset_size")
    @classmethod
    def _subset_size(cls, v: Any) -> Any:
        if v != "all" and not 2 <= v <= MAX_SAMPLES:
            raise ValueError(f"must be 'all' or an integer from 2 to {MAX_SAMPLES}")
        return v


class EvaluatorFit(Strict):
    """How one dataset's evaluator is fitted, where it differs from the shared settings."""

    epochs: int | None = Field(None, ge=1, le=100_000)
    batch_size: int | None = Field(None, ge=1, le=MAX_BATCH)
    lr: float | None = Field(None, gt=0)
    # average-pool the images by this factor before the CNN (32x32 digits upsampled from 8x8
    # carry no more than 16x16 detail, at a quarter of the cost)
    downsample: int = Field(1, ge=1, le=16)


class EvaluatorCfg(Strict):
    epochs: int = Field(30, ge=1, le=100_000)
    batch_size: int = Field(128, ge=1, le=MAX_BATCH)
    lr: float = Field(1e-3, gt=0)
    datasets: dict[str, EvaluatorFit] = Field(default_factory=dict)  # per-dataset settings

    @field_validator("datasets")
    @classmethod
    def _datasets_known(cls, v: dict[str, EvaluatorFit]) -> dict[str, EvaluatorFit]:
        for name in v:
            _check_name(DATASETS, name)
        return v

    def fit(self, dataset: str) -> dict[str, Any]:
        """epochs, batch_size, lr and downsample of ``dataset``'s evaluator."""
        own = self.datasets.get(dataset, EvaluatorFit())
        shared = {"epochs": self.epochs, "batch_size": self.batch_size, "lr": self.lr}
        return {**shared, **{k: v for k, v in own.model_dump().items() if v is not None}}


class TrackingCfg(Strict):
    enabled: bool = True
    uri: str = "sqlite:///mlflow.db"
    experiment: str = "genlab"


class SeedsCfg(Strict):
    """Variants trained again on more seeds (stage ``replicate``): the report gives their mean
    and interval over seeds beside each run's bootstrap interval."""

    variants: list[str] = Field(default_factory=list)
    seeds: list[int] = Field(default_factory=list)  # besides the project seed

    @field_validator("seeds")
    @classmethod
    def _distinct(cls, v: list[int]) -> list[int]:
        for seed in v:
            if not 0 <= seed <= MAX_SEED:
                raise ValueError(f"seed {seed} is out of range; allowed: 0 to {MAX_SEED}")
        if len(set(v)) != len(v):
            raise ValueError(f"{v} repeats a seed; allowed: distinct seeds")
        return v


def replica_name(variant: str, seed: int) -> str:
    """The name a variant trained on another seed goes by (models/<name>/, metrics/<name>.json)."""
    return f"{variant}-seed{seed}"


class Params(Strict):
    seed: int = Field(0, ge=0, le=MAX_SEED)
    # torch intra-op threads on CPU: auto = genlab.runtime.resolve_threads (one thread for the
    # lecture's small models); results are bit-identical for a given thread count
    threads: Literal["auto"] | int = "auto"
    device: Literal["auto", "cpu", "cuda"] = "auto"
    # torch.compile of every trained network (genlab.runtime.compile_modules): none, or a
    # torch.compile mode; reduce-overhead adds CUDA graphs. Compiled kernels round differently,
    # so the bits differ from the uncompiled run's (still the same on every rerun)
    compile: Literal["none", "default", "reduce-overhead", "max-autotune"] = "none"
    tracking: TrackingCfg = TrackingCfg()
    data: Any = None  # validated by data_model() (the registered datasets' options)
    train: dict[str, Any] = Field(default_factory=dict)
    variants: dict[str, VariantCfg] = Field(default_factory=dict)
    sample: SampleCfg = SampleCfg()
    evaluate: EvaluateCfg = EvaluateCfg()
    evaluator: EvaluatorCfg = EvaluatorCfg()
    # name -> the toy's settings, validated by genlab.toys.toy_cfg when the toy runs
    toys: dict[str, dict[str, Any] | None] = Field(default_factory=dict)
    # study name -> its raw settings, validated by genlab.sweeps.study_cfg when a study runs
    sweeps: dict[str, dict[str, Any]] = Field(default_factory=dict)
    seeds: SeedsCfg = SeedsCfg()
    _replica: tuple[str, int] | None = PrivateAttr(default=None)  # set by ``replica``

    @model_validator(mode="after")
    def _seeds_known(self) -> Params:
        unknown = [v for v in self.seeds.variants if v not in self.variants]
        if unknown:
            raise ValueError(
                f"seeds.variants names {', '.join(map(repr, unknown))}, which are not variants; "
                f"allowed: {', '.join(sorted(self.variants)) or '(none)'}"
            )
        if self.seed in self.seeds.seeds:
            raise ValueError(
                f"seeds.seeds holds the project seed {self.seed}; list only the other seeds"
            )
        return self

    def replica(self, name: str, seed: int) -> tuple[Params, str]:
        """Params under which variant ``name`` trains, samples and is scored on ``seed``, and
        the replica's name (``replica_name``)."""
        cfg = self.variant(name)
        rname = replica_name(name, seed)
        if not 0 <= seed <= MAX_SEED:
            raise ConfigError(f"--seed {seed} is out of range; allowed: 0 to {MAX_SEED}")
        variants = {**self.variants, rname: cfg}
        params = self.model_copy(update={"seed": seed, "variants": variants})
        params._replica = (name, seed)
        return params, rname

    def run_tags(self, name: str) -> dict[str, str]:
        """The DVC stage that trains variant ``name`` and, for a replica, what it replicates."""
        if self._replica is None:
            return {"dvc.stage": f"train@{name}"}
        variant, seed = self._replica
        return {"dvc.stage": f"replicate@{variant}-{seed}", "replica_of": variant}

    @model_validator(mode="before")
    @classmethod
    def _merge_train_defaults(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and isinstance(raw.get("variants"), dict):
            shared = raw.get("train") or {}
            if isinstance(shared, dict):
                # an unknown train key is reported once (as train.<key>), not once per variant
                shared = {k: v for k, v in shared.items() if k in VariantCfg.model_fields}
                raw = dict(raw)
                raw["variants"] = {
                    name: merge_variant(shared, v) if isinstance(v, dict) else v
                    for name, v in raw["variants"].items()
                }
        return raw

    @field_validator("threads", mode="before")
    @classmethod
    def _threads_allowed(cls, v: Any) -> Any:
        if v == "auto" or (type(v) is int and 1 <= v <= MAX_THREADS):
            return v
        raise ValueError(f"allowed: auto or an integer from 1 to {MAX_THREADS}")

    @field_validator("train")
    @classmethod
    def _train_keys_known(cls, v: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(v) - set(VariantCfg.model_fields))
        if unknown:
            raise ValueError(
                f"unknown key(s) {', '.join(unknown)}; allowed: "
                f"{', '.join(sorted(VariantCfg.model_fields))}"
            )
        return v

    @field_validator("data", mode="before")
    @classmethod
    def _data_entries(cls, v: Any) -> Any:
        return data_model().model_validate(v if v is not None else {})

    def dataset_cfg(self, name: str) -> dict[str, Any]:
        """The validated config of dataset ``name`` with defaults filled in."""
        if name not in DATASETS:
            raise ConfigError(f"unknown dataset {name!r}; allowed: {', '.join(DATASETS.names())}")
        cfg = getattr(self.data, name, None) or DATASETS.get(name).options()
        return cfg.model_dump()

    def variant(self, name: str) -> VariantCfg:
        try:
            return self.variants[name]
        except KeyError:
            raise ConfigError(
                f"unknown variant {name!r}; the variants in params.yaml are: "
                f"{', '.join(sorted(self.variants)) or '(none)'}"
            ) from None


def merge_variant(shared: dict, variant: dict) -> dict:
    """The shared ``train`` defaults under a variant; a variant's ``regularizers`` replace the
    shared ones instead of adding to them (so a variant can drop one)."""
    merged = deep_merge(shared, variant)
    if "regularizers" in variant:
        merged["regularizers"] = copy.deepcopy(variant["regularizers"])
    return merged


def deep_merge(base: dict, override: dict) -> dict:
    """``override`` on top of ``base``; nested dicts merge key by key, an empty one (``{}``)
    replaces."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and value and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, but a key given twice in one mapping is an error instead of the last
    one silently winning (a repeated variant name would drop the first variant)."""

    def construct_mapping(self, node, deep=False):
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, typing.Hashable) and key in seen:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"found the key {key!r} a second time (first on line "
                    f"{seen[key].line + 1}); each key may appear once", key_node.start_mark,
                )  # fmt: skip
            seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str) -> Any:
    """YAML text -> Python objects (safe types only; duplicate keys rejected)."""
    return yaml.load(text, Loader=UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


def parse_overrides(overrides: list[str]) -> dict:
    """``["variants.vae.beta=4", "seed=1"]`` -> nested dict; values are parsed as YAML."""
    out: dict = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise ConfigError(
                f"override {item!r} is not of the form key.path=value (e.g. -S seed=1, "
                "-S variants.vae.beta=4)"
            )
        try:
            parsed = parse_yaml(value)
        except yaml.YAMLError as e:
            problem = " ".join(str(e).split())
            raise ConfigError(
                f"override {item!r}: the value is not valid YAML ({problem})"
            ) from None
        node = out
        *parents, leaf = parts
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(
                    f"override {item!r} sets a key below a value set by another override"
                )
        node[leaf] = parsed
    return out


def read_params_file(path: Path) -> dict:
    """The mapping in a params file; ConfigError naming the file for anything unreadable."""
    what = f"params file {str(path)!r}"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{what} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"{what} is a directory; give a YAML file (--params FILE)") from None
    except UnicodeDecodeError as e:
        raise ConfigError(f"{what} is not UTF-8 text (byte {e.start}); save it as UTF-8") from None
    except OSError as e:
        raise ConfigError(f"{what} cannot be read: {e.strerror}") from None
    try:
        raw = parse_yaml(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{what} is not valid YAML: {' '.join(str(e).split())}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{what} must hold a mapping at the top level (found {type(raw).__name__})"
        )
    return raw


def load_params(path: str | Path = "params.yaml", overrides: list[str] | None = None) -> Params:
    """Read, merge overrides into, and validate params; raise ConfigError on any bad input."""
    path = Path(path)
    raw = read_params_file(path)
    raw = deep_merge(raw, parse_overrides(overrides or []))
    return validate_params(raw, source=str(path))


def validate_params(raw: dict, source: str = "params") -> Params:
    try:
        return Params.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(format_errors(e, source)) from None


def format_errors(
    error: ValidationError,
    source: str,
    model: type[BaseModel] | None = None,
    prefix: tuple[str, ...] = (),
) -> str:
    """One line per error: the params key, the value and what is allowed. ``model``: the schema
    that was validated (default Params); ``prefix``: the params keys above it, for a part of params
    validated on its own (``("sweeps", name)`` with ``SweepCfg``)."""
    lines = [f"{source}: invalid params"]
    for err in error.errors():
        key = ".".join(str(p) for p in (*prefix, *err["loc"]))
        value = err.get("input")
        if err["type"] == "extra_forbidden":
            allowed = _allowed_keys(err["loc"][:-1], model or Params)
            msg = f"unknown key; allowed keys: {', '.join(allowed)}" if allowed else "unknown key"
        else:
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "literal_error":
                msg = msg.replace("Input should be", "allowed:")
        shown = repr(value) if not isinstance(value, dict) else "{...}"
        lines.append(f"  {key or '(top level)'} = {shown}: {msg}")
    return "\n".join(lines)


def _allowed_keys(loc: tuple, model: Any) -> list[str]:
    """Field names of the model found by following ``loc`` through the schema from ``model``."""
    for part in loc:
        if isinstance(model, type) and issubclass(model, BaseModel):
            if part not in model.model_fields:
                return []
            model = (
                data_model()
                if (model, part) == (Params, "data")
                else (model.model_fields[part].annotation)
            )
        elif typing.get_origin(model) is dict:
            model = typing.get_args(model)[1]
        else:
            return []
        model = _unwrap_optional(model)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return sorted(model.model_fields)
    return []


def _unwrap_optional(tp: Any) -> Any:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return args[0] if len(args) == 1 else tp
    return tp
