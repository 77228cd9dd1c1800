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
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    Field,
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
from genlab.objectives.fgan import DIVERGENCES
from genlab.options import Options
from genlab.registry import Registry

__all__ = ["ConfigError", "Params", "VariantCfg", "load_params", "validate_params"]


Strict = Options  # every params section is strict and frozen


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
class OptimizerCfg(Strict):
    name: Literal["adam", "rmsprop", "sgd"] = "adam"
    lr: float = Field(2e-4, gt=0)
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = Field(0.0, ge=0)

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= b < 1 for b in v):
            raise ValueError("each beta must lie in [0, 1)")
        return v


class RegularizerCfg(Strict):
    weight: float = Field(1.0, ge=0)  # multiplies the penalty (gamma for r1/r2, lambda for GP)
    every: int = Field(1, ge=1)  # lazy regularisation interval (StyleGAN2)
    clip: float = Field(0.01, gt=0)  # weight_clip: parameters clamped to [-clip, clip]
    one_sided: bool = False  # gradient_penalty: penalise only gradient norms above 1


class VariantCfg(Strict):
    """One trained variant. Keys not given here come from the shared ``train`` section."""

    dataset: str
    family: str  # a registered family (genlab.families)
    arch: str
    loss: str | None = Field(None, validate_default=True)  # None: the family default
    latent_dim: int = Field(64, ge=1)
    width: int | None = Field(None, ge=1)  # architecture's base width; None = the arch default
    depth: int = Field(3, ge=1)  # hidden layers of MLPs
    d_norm: Literal["batch", "none"] = "batch"  # dcgan D's normalisation (none for WGAN-GP)
    beta: float = Field(1.0, ge=0)  # elbo: weight of the KL term
    divergence: str = "gan"  # fgan: the f-divergence (Nowozin et al. 2016, table 1)
    ls_targets: tuple[float, float, float] = (0.0, 1.0, 1.0)  # least_squares: a, b, c
    margin: float = Field(1.0, gt=0)  # energy: EBGAN margin m
    pull_away: float = Field(0.0, ge=0)  # energy: weight of the pulling-away term
    likelihood: Literal["bernoulli", "gaussian"] = "bernoulli"
    # conditioning on the class label (Mirza & Osindero 2014): how the label enters G and D
    g_condition: Literal["none", "concat", "embed", "cbn"] = "none"
    d_condition: Literal["none", "concat", "embed", "projection"] = "none"
    conditional: bool = False  # vae: conditional VAE; vqvae: the prior is conditioned on y
    info_categorical: int = Field(0, ge=0)  # InfoGAN: classes of the categorical code (0 = none)
    info_continuous: int = Field(0, ge=0)  # InfoGAN: continuous codes
    info_weight: float = Field(1.0, ge=0)  # InfoGAN: lambda of the categorical code's MI bound
    info_weight_continuous: float = Field(0.1, ge=0)  # InfoGAN: lambda of the continuous codes'
    attention: int = Field(0, ge=0)  # SAGAN self-attention at this image side (0 = none)
    style_mode: Literal["adain", "demod"] = "demod"  # style: AdaIN (StyleGAN) or StyleGAN2
    mapping_depth: int = Field(4, ge=1)  # style: layers of the mapping MLP z -> w
    style_mixing: float = Field(0.9, ge=0, le=1)  # style: probability of mixing two styles
    truncation: float = Field(1.0, ge=0, le=1)  # style: psi of w = w_avg + psi (w - w_avg)
    phase_steps: int = Field(500, ge=1)  # progressive: steps of each fade-in and stable phase
    codebook_size: int = Field(64, ge=2)  # vqvae: codes K
    commitment: float = Field(0.25, ge=0)  # vqvae: beta of the commitment loss
    restart_every: int = Field(100, ge=0)  # vqvae: restart dead codes every k steps (0 = off)
    prior_steps: int = Field(1000, ge=1)  # vqvae: the last prior_steps train the prior
    regularizers: dict[str, RegularizerCfg] = Field(default_factory=dict)
    d_steps: int = Field(1, ge=1)  # D updates before each G update (the lecture's k)
    steps: int = Field(3000, ge=1)
    batch_size: int = Field(128, ge=1)
    log_every: int = Field(50, ge=1)
    checkpoint_every: int = Field(500, ge=1)
    optimizer: OptimizerCfg = OptimizerCfg()
    optimizer_d: OptimizerCfg | None = None  # D's optimizer; None = same as ``optimizer``
    ema: float = Field(0.0, ge=0, lt=1)  # EMA decay of G's weights; 0 = off
    precision: Literal["fp32", "bf16"] = "fp32"

    @field_validator("dataset")
    @classmethod
    def _dataset_known(cls, v: str) -> str:
        return _check_name(DATASETS, v)

    @field_validator("family")
    @classmethod
    def _family_known(cls, v: str) -> str:
        return _check_name(FAMILIES, v)

    @field_validator("divergence")
    @classmethod
    def _divergence_known(cls, v: str) -> str:
        return _check_name(DIVERGENCES, v)

    @field_validator("arch", "loss", "regularizers")
    @classmethod
    def _names_fit_family(cls, v: Any, info: ValidationInfo) -> Any:
        """arch, loss and regularisers are looked up in the registries of the variant's family."""
        if "family" not in info.data:  # the family itself is invalid and reported already
            return v
        family = FAMILIES.get(info.data["family"])
        if info.field_name == "arch":
            return _check_name(family.archs, v)
        if info.field_name == "loss":
            return _check_name(family.losses, family.default_loss if v is None else v)
        for name, reg in v.items():
            _check_name(family.regularizers, name)
            reads = REGULARIZER_KEYS.get(name, {"weight", "every"})
            unused = sorted(
                key for key in reg.model_fields_set - reads
                if getattr(reg, key) != RegularizerCfg.model_fields[key].default
            )  # fmt: skip
            if unused:
                raise ValueError(
                    f"regularizer {name!r} does not use {', '.join(unused)}; "
                    f"it reads {', '.join(sorted(reads)) or 'nothing'}"
                )
        return v

    @model_validator(mode="after")
    def _no_key_that_does_nothing(self) -> VariantCfg:
        """A key set away from its default where it has no effect is an error, not a no-op."""
        for key, (applies, where) in RELEVANT.items():
            default = VariantCfg.model_fields[key].get_default(call_default_factory=True)
            if getattr(self, key) != default and not applies(self):
                raise ValueError(
                    f"{key} = {getattr(self, key)!r} has no effect here; it is read {where}"
                )
        if self.loss == "energy" and not self.arch.endswith("_ae"):
            raise ValueError(
                f"loss 'energy' needs an autoencoder discriminator; arch = {self.arch!r}, "
                "allowed: dcgan_ae, mlp_ae"
            )
        if (
            "gradient_penalty" in self.regularizers
            and self.arch in ("dcgan", "style")
            and self.d_norm != "none"
        ):
            raise ValueError(
                "gradient_penalty on a batch-normalised critic: the per-sample gradient then "
                "depends on the batch (Gulrajani et al. 2017, sec. 4); set d_norm: none"
            )
        if (self.g_condition == "none") != (self.d_condition == "none"):
            raise ValueError(
                f"g_condition = {self.g_condition!r} and d_condition = {self.d_condition!r}: "
                "a conditional GAN conditions both G and D on the label (or neither)"
            )
        if self.g_condition != "none" and self.info_categorical + self.info_continuous:
            raise ValueError("InfoGAN codes (info_*) and label conditioning do not combine here")
        if self.family == "vqvae" and self.prior_steps >= self.steps:
            raise ValueError(
                f"prior_steps = {self.prior_steps} must be below steps = {self.steps}: the first "
                "steps - prior_steps steps train the VQ-VAE, the rest its prior"
            )
        if self.ls_targets[0] == self.ls_targets[1]:
            raise ValueError("ls_targets: a (fake) and b (real) must differ or D learns nothing")
        return self


# which keys each regulariser reads (the others must stay at their defaults)
REGULARIZER_KEYS = {
    "weight_clip": {"clip"},
    "spectral_norm": set(),
    "gradient_penalty": {"weight", "every", "one_sided"},
}

# variant key -> (does it apply to this variant?, where it is read)
RELEVANT = {
    "margin": (lambda v: v.loss == "energy", "by loss: energy"),
    "pull_away": (lambda v: v.loss == "energy", "by loss: energy"),
    "divergence": (lambda v: v.loss == "fgan", "by loss: fgan"),
    "ls_targets": (lambda v: v.loss == "least_squares", "by loss: least_squares"),
    "beta": (lambda v: v.family == "vae", "by family: vae"),
    "likelihood": (lambda v: v.family == "vae", "by family: vae"),
    "d_steps": (lambda v: v.family == "gan", "by family: gan"),
    "optimizer_d": (lambda v: v.family == "gan", "by family: gan"),
    "regularizers": (lambda v: v.family == "gan", "by family: gan"),
    "d_norm": (lambda v: v.arch in ("dcgan", "style"), "by arch: dcgan, style"),
    "g_condition": (lambda v: v.arch == "dcgan", "by arch: dcgan"),
    "d_condition": (lambda v: v.arch == "dcgan", "by arch: dcgan"),
    "conditional": (lambda v: v.family in ("vae", "vqvae"), "by family: vae, vqvae"),
    "info_categorical": (lambda v: v.arch == "dcgan", "by arch: dcgan"),
    "info_continuous": (lambda v: v.arch == "dcgan", "by arch: dcgan"),
    "info_weight": (lambda v: v.info_categorical > 0, "when info_categorical > 0"),
    "info_weight_continuous": (lambda v: v.info_continuous > 0, "when info_continuous > 0"),
    "attention": (
        lambda v: v.arch in ("dcgan", "style", "progressive"),
        "by arch: dcgan, style, progressive",
    ),
    "style_mode": (lambda v: v.arch == "style", "by arch: style"),
    "mapping_depth": (lambda v: v.arch == "style", "by arch: style"),
    "style_mixing": (lambda v: v.arch == "style", "by arch: style"),
    "truncation": (lambda v: v.arch == "style", "by arch: style"),
    "phase_steps": (lambda v: v.arch == "progressive", "by arch: progressive"),
    "codebook_size": (lambda v: v.family == "vqvae", "by family: vqvae"),
    "commitment": (lambda v: v.family == "vqvae", "by family: vqvae"),
    "restart_every": (lambda v: v.family == "vqvae", "by family: vqvae"),
    "prior_steps": (lambda v: v.family == "vqvae", "by family: vqvae"),
    "depth": (lambda v: v.arch in ("mlp", "mlp_ae"), "by arch: mlp, mlp_ae"),
}


class SampleCfg(Strict):
    n: int = Field(2000, ge=1)
    grid: int = Field(64, ge=1)
    interpolation_steps: int = Field(10, ge=2)
    batch_size: int = Field(500, ge=1)
    # latent arithmetic figure: mean z of class a - class b + class c (classes by the evaluator)
    arithmetic: tuple[int, int, int] | None = (7, 1, 4)


class EvaluateCfg(Strict):
    metrics: list[str] = Field(
        default_factory=lambda: [
            "frechet",
            "kid",
            "coverage",
            "conditional",
            "info",
            "elbo",
            "iwae",
            "vq",
        ]
    )
    kid_subsets: int = Field(50, ge=1)
    kid_subset_size: int = Field(1000, ge=2)
    iwae_samples: int = Field(128, ge=1)  # importance samples k of the test NLL (VAEs)

    @field_validator("metrics")
    @classmethod
    def _metrics_known(cls, v: list[str]) -> list[str]:
        return [_check_name(METRICS, m) for m in v]


class EvaluatorCfg(Strict):
    epochs: int = Field(30, ge=1)
    batch_size: int = Field(128, ge=1)
    lr: float = Field(1e-3, gt=0)


class TrackingCfg(Strict):
    enabled: bool = True
    uri: str = "sqlite:///mlflow.db"
    experiment: str = "genlab"


class Params(Strict):
    seed: int = Field(0, ge=0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
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

    @model_validator(mode="before")
    @classmethod
    def _merge_train_defaults(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and isinstance(raw.get("variants"), dict):
            shared = raw.get("train") or {}
            if isinstance(shared, dict):
                raw = dict(raw)
                raw["variants"] = {
                    name: merge_variant(shared, v) if isinstance(v, dict) else v
                    for name, v in raw["variants"].items()
                }
        return raw

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
    """``override`` on top of ``base``; nested dicts merge key by key."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_overrides(overrides: list[str]) -> dict:
    """``["variants.vae.beta=4", "seed=1"]`` -> nested dict; values are parsed as YAML."""
    out: dict = {}
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key.path=value")
        node = out
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return out


def load_params(path: str | Path = "params.yaml", overrides: list[str] | None = None) -> Params:
    """Read, merge overrides into, and validate params; raise ConfigError on any bad input."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise ConfigError(f"params file {str(path)!r} does not exist") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"params file {str(path)!r} is not valid YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"params file {str(path)!r} must hold a mapping at the top level")
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
