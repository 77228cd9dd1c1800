"""What a model family declares (DESIGN rule 1: no module outside a family's folder branches on
its name). A family is one folder under ``genlab/families`` that registers a ``Family`` in
``FAMILIES``; a test or a user package can register one too.

The contract, in the order the pipeline uses it:
- ``archs``, ``losses``, ``regularizers``, ``default_loss``: the names a variant may choose
  (validated at params load);
- ``trainer(cfg, meta, device, seed)``: the object the one training driver steps (``Trainer``);
- ``model_modules``: which of the trainer's modules ``model.pt`` holds; ``generator`` is the one
  an EMA averages; ``build(meta, cfg)`` (``nets``, else the arch's builder) rebuilds them from
  ``model.pt``'s config and meta;
- ``sampler(modules, cfg, meta)``: how ``sample`` (and a sweep's scorer) feeds the model;
- ``figures(...)``: the family's figures for ``sample``;
- ``metrics``: the family-only metrics that apply to it (generic metrics choose themselves by
  the dataset's field kinds);
- ``sections`` and ``section(cfg)``: where the report lists a variant, and what that section
  shows;
- ``options``: the variant keys the family itself reads (its archs and losses declare theirs
  with ``genlab.options.declare``), and ``check``: a rule between keys.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from genlab.data.base import DATASETS
from genlab.options import Option
from genlab.registry import Registry

CONDITIONAL = Option(bool, False)  # conditioned on the class label (several families read it)


class Trainer(Protocol):
    """What the driver needs of a family's trainer."""

    modules: dict[str, nn.Module]  # every network, by the key state.pt stores it under
    optimizers: dict[str, torch.optim.Optimizer]

    def step(self, batches: Any) -> dict[str, float]: ...  # one training step -> statistics

    def extra_state(self) -> dict: ...  # RNG and counters for an exact resume

    def load_extra_state(self, state: dict) -> None: ...


class Sampler(Protocol):
    """How a trained model is fed. ``inputs`` draws the fixed, seeded sample batch (a dict of
    tensors, plus "generator": the torch.Generator that drew them; ``data``: the test split, given
    for a translation dataset, whose test sources are the inputs); ``generate`` maps inputs to
    samples on the CPU; ``interpolation`` returns the samples along ``rows`` paths of ``steps``
    points (or None); ``saved`` what ``samples.pt`` keeps beside the samples."""

    def inputs(
        self, seed: int, n: int, device: torch.device | str, data: dict | None = None
    ) -> dict[str, Any]: ...

    def generate(self, inputs: dict[str, Any], batch_size: int) -> Tensor: ...

    def interpolation(
        self, inputs: dict[str, Any], rows: int, steps: int, batch_size: int
    ) -> Tensor | None: ...

    def saved(self, inputs: dict[str, Any]) -> dict[str, Any]: ...


@dataclass(frozen=True)
class FigureContext:
    """What a family's figures may use: the sample stage's settings and its inputs."""

    modules: dict[str, nn.Module]  # the model.pt modules, eval mode, on ``device``
    cfg: Any  # the variant (VariantCfg)
    params: Any  # Params (sample settings, seed)
    root: Path  # project root: prepared data and the evaluator are read from here
    out: Path  # samples/<variant>/
    inputs: dict[str, Any]  # the sampler's inputs of the fixed batch
    samples: Tensor  # what they generated
    sampler: Any  # the Sampler
    device: torch.device


@dataclass(frozen=True)
class Family:
    name: str
    archs: Registry
    losses: Registry
    default_loss: str
    trainer: Callable[..., Trainer]  # (cfg, meta, device, seed) -> Trainer
    sampler: Callable[[dict[str, nn.Module], Any, dict], Sampler]  # (modules, cfg, meta)
    generator: str  # the module an EMA averages (and the one ``sample`` feeds)
    regularizers: Registry = field(default_factory=lambda: Registry("regularizer"))
    nets: Callable[[dict, Any], dict[str, nn.Module]] | None = None  # None: archs.build(cfg.arch)
    model_modules: tuple[str, ...] = ()  # what model.pt holds; () = (generator,)
    figures: Callable[[FigureContext], list[Path]] = lambda ctx: []
    metrics: tuple[str, ...] = ()  # family-only metrics (see genlab.metrics.scores)
    sections: dict[str, str] = field(default_factory=dict)  # report section -> what it shows
    section: Callable[[dict], str] | None = None  # variant config (dict) -> its section
    # samples/<variant>/<stem>.png -> caption, in the order the report shows them; a stem ending
    # in "*" matches a prefix and "{}" in its caption is replaced by the rest of the name
    captions: dict[str, str] = field(default_factory=dict)
    options: dict[str, Option] = field(default_factory=dict)  # the variant keys it reads
    check: Callable[[Any], None] | None = None  # whole-variant rule (raises ValueError)

    def build(self, meta: dict, cfg: Any) -> dict[str, nn.Module]:
        """Every network of a variant, by key: ``nets(meta, cfg)``, or the arch's builder."""
        if self.nets is not None:
            return self.nets(meta, cfg)
        return self.archs.build(cfg.arch, meta, cfg)

    @property
    def saved_modules(self) -> tuple[str, ...]:
        return self.model_modules or (self.generator,)

    def caption(self, stem: str) -> tuple[int, str] | None:
        """(position, caption) of a figure this family draws, or None."""
        for i, (key, text) in enumerate(self.captions.items()):
            if key.endswith("*") and stem.startswith(key[:-1]):
                return i, text.format(stem.removeprefix(key[:-1]))
            if key == stem:
                return i, text
        return None

    def section_of(self, cfg: dict) -> str:
        if self.section is not None:
            return self.section(cfg)
        return next(iter(self.sections), self.name)


FAMILIES: Registry[Family] = Registry("family")


def requires_fields(**kinds: str) -> Callable[[Any], None]:
    """A ``Family.check``: the variant's dataset must declare each field with its kind
    (``requires_fields(x="word", text="tokens")``); refused at params load naming ``dataset``
    and the datasets that would do."""

    def fits(name: str) -> bool:
        fields = DATASETS.get(name).fields
        return all(fields.get(f, {}).get("kind") == k for f, k in kinds.items())

    def check(v) -> None:
        if not fits(v.dataset):
            allowed = [n for n in DATASETS.registered() if fits(n)]
            need = ", ".join(f"{f} ({k})" for f, k in kinds.items())
            raise ValueError(
                f"dataset = {v.dataset!r} lacks the fields family {v.family!r} reads: {need}; "
                f"allowed datasets: {', '.join(allowed) or '(none registered)'}"
            )

    return check


def register(family: Family) -> Family:
    """Add ``family`` to ``FAMILIES`` under its name; returns it."""
    FAMILIES.register(family.name)(family)
    return family
