"""What the image-to-image families share (pix2pix, CycleGAN/DiscoGAN, SRGAN, SPADE): the GAN
losses that apply to a patch map, the rule that a family gets a dataset of the task it solves,
the sampler that translates the test split, and the figures.

A translation dataset's meta.json lists its ``translation.directions``: for a paired set one
direction "" (``source`` -> ``target`` row by row), for an unpaired set "a2b" and "b2a". The
``sample`` stage translates every test source of every direction the model has (at most
``sample.n``); ``evaluate`` scores each direction's outputs against its target domain's test
split (``genlab.evaluate``), the paired ones also row by row against their targets.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.data import DATASETS
from genlab.drawing import save_grid
from genlab.families.base import Family, register
from genlab.objectives import GAN_LOSSES
from genlab.registry import Registry

# The GAN losses whose terms are means over D's outputs, so they apply to a PatchGAN's map
TRANSLATION_LOSSES: Registry = Registry("loss")
for _name in ("nonsaturating", "minimax", "least_squares", "hinge"):
    TRANSLATION_LOSSES.register(_name)(GAN_LOSSES.get(_name))

TASK_TEXT = {
    None: "a generative dataset (no source to translate from)",
    "paired": "a paired translation dataset",
    "unpaired": "an unpaired translation dataset (two domains, no pairs)",
    "super_resolution": "a paired super-resolution dataset",
    "labelmap": "a label map to image dataset",
}
SOURCE_FIELDS = {"unpaired": ("x", "x_b")}  # the fields a task reads; the others: source and x


def requires_task(*tasks: str) -> Callable[[Any], None]:
    """A ``Family.check``: the variant's dataset must be of one of ``tasks`` and declare the
    fields that task reads (refused at params load, naming ``dataset``)."""

    def check(v) -> None:
        entry = DATASETS.get(v.dataset)
        allowed = [n for n in DATASETS.registered() if DATASETS.get(n).task in tasks]
        if entry.task not in tasks:
            raise ValueError(
                f"dataset = {v.dataset!r} is {TASK_TEXT.get(entry.task, entry.task)}; family "
                f"{v.family!r} needs a dataset of task {' or '.join(tasks)}; allowed "
                f"datasets: {', '.join(allowed) or '(none registered)'}"
            )
        missing = [f for f in SOURCE_FIELDS.get(entry.task, ("source", "x"))
                   if f not in entry.fields]  # fmt: skip
        if missing:
            raise ValueError(
                f"dataset = {v.dataset!r} declares no field {', '.join(map(repr, missing))}, "
                f"which a {entry.task} dataset needs for family {v.family!r}; its fields: "
                f"{', '.join(entry.fields)}"
            )

    return check


def directions(meta: dict) -> list[dict[str, Any]]:
    """The dataset's translation directions (``name``, ``source``, ``target``, ``labels``,
    ``paired``, and for unpaired sets ``source_labels``)."""
    try:
        return list(meta["translation"]["directions"])
    except (KeyError, TypeError):
        raise ValueError(
            f"dataset {meta.get('name', '?')!r} is not a translation dataset (its meta.json has "
            "no translation.directions)"
        ) from None


def one_hot_map(labels: Tensor, classes: int) -> Tensor:
    """(N, H, W) int64 class map -> (N, classes, H, W) float one-hot."""
    return F.one_hot(labels.long(), classes).permute(0, 3, 1, 2).float()


class TranslationSampler:
    """Translates the test split: ``directions`` maps a direction name of the dataset to a
    callable (source batch -> output batch), ``cycles`` (unpaired models) a direction to
    source -> reconstruction. ``dropout``: keep the Dropout layers of the directions' modules
    active (pix2pix's noise, Isola et al. sec. 3.1). Every draw (dropout, a callable's own noise
    from the global RNG) is seeded by the sample seed, in a forked RNG."""

    label_kind = None  # no class labels are given to the model

    def __init__(
        self,
        directions: dict[str, Callable[[Tensor], Tensor]],
        meta: dict,
        cycles: dict[str, Callable[[Tensor], Tensor]] | None = None,
        dropout: bool = False,
    ) -> None:
        known = {d["name"]: d for d in globals()["directions"](meta)}
        unknown = sorted(set(directions) - set(known))
        if unknown:
            raise ValueError(f"directions {unknown} are not the dataset's: {sorted(known)}")
        self.directions, self.cycles = directions, cycles or {}
        self.specs = [known[name] for name in directions]
        self.meta, self.dropout = meta, dropout

    def inputs(
        self, seed: int, n: int, device: torch.device | str, data: dict[str, Tensor] | None = None
    ) -> dict[str, Any]:
        """The first ``n`` test sources of each direction (``data``: the test split), and the
        paired targets for the figures."""
        if data is None:
            raise ValueError("a translation model translates the test split: pass data=test")
        sources = {d["name"]: data[d["source"]][:n].to(device) for d in self.specs}
        targets = {d["name"]: data[d["target"]][:n] for d in self.specs if d.get("paired")}
        return {"sources": sources, "targets": targets, "seed": seed, "outputs": {},
                "cycles": {}, "generator": torch.Generator(device).manual_seed(seed)}  # fmt: skip

    @torch.no_grad()
    def generate(self, inputs: dict[str, Any], batch_size: int) -> Tensor:
        """Every direction's outputs (kept in ``inputs``); returns the first direction's."""
        nets = [fn for fn in self.directions.values() if isinstance(fn, nn.Module)]
        dropouts = [m for net in nets for m in net.modules() if isinstance(m, nn.Dropout)]
        dropouts = dropouts if self.dropout else []
        device = next(iter(inputs["sources"].values())).device
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            torch.manual_seed(inputs["seed"])
            for m in dropouts:
                m.train()
            try:
                for name, fn in self.directions.items():
                    src = inputs["sources"][name]
                    inputs["outputs"][name] = _batched(fn, src, batch_size)
                    if name in self.cycles:
                        inputs["cycles"][name] = _batched(self.cycles[name], src, batch_size)
            finally:
                for m in dropouts:
                    m.eval()
        return inputs["outputs"][self.specs[0]["name"]]

    def interpolation(self, inputs, rows: int, steps: int, batch_size: int) -> None:
        return None  # a translation has no latent path to walk

    def saved(self, inputs: dict[str, Any]) -> dict[str, Any]:
        """Every direction's outputs and cycles, and the sources and paired targets they came
        from (so the report can set outputs of several variants side by side)."""
        return {"outputs": inputs["outputs"], "cycles": inputs["cycles"],
                "sources": {k: v.cpu() for k, v in inputs["sources"].items()},
                "targets": inputs["targets"]}  # fmt: skip


def _batched(fn: Callable[[Tensor], Tensor], x: Tensor, batch_size: int) -> Tensor:
    return torch.cat([fn(chunk).float().cpu() for chunk in x.split(batch_size)])


# ---------------------------------------------------------------- figures
PALETTE = torch.tensor(  # label map colours: background black, then 10 distinct hues
    [[0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
     [145, 30, 180], [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212],
     [0, 128, 128], [220, 190, 255], [170, 110, 40], [255, 250, 200], [128, 0, 0]],
    dtype=torch.float32,
) / 127.5 - 1  # fmt: skip


def displayable(x: Tensor, size: int, channels: int) -> Tensor:
    """A source, output or target as (N, channels, size, size) in [-1, 1]: label maps coloured,
    smaller images enlarged (nearest neighbour, so low-res pixels show), grey made RGB."""
    x = x.cpu()
    if x.dtype == torch.long:  # a label map
        x = PALETTE[x.clamp(0, len(PALETTE) - 1) % len(PALETTE)].permute(0, 3, 1, 2)
    x = x.float()
    if x.shape[-1] != size:
        x = F.interpolate(x, size=(size, size), mode="nearest")
    if x.shape[1] != channels:
        x = x.expand(-1, channels, -1, -1) if x.shape[1] == 1 else x[:, :channels]
    return x


def rows_figure(columns: list[Tensor], path: Path, rows: int = 8) -> Path:
    """One example per row, ``columns`` side by side (each (N, ...) image-like)."""
    rows = min(rows, *(len(c) for c in columns))
    size = max(c.shape[-1] for c in columns)
    channels = 3 if any(c.dtype == torch.long or c.shape[1] == 3 for c in columns) else 1
    shown = [displayable(c[:rows], size, channels) for c in columns]
    save_grid(torch.stack(shown, 1).flatten(0, 1), path, nrow=len(columns))
    return path


TRANSLATION_CAPTIONS = {
    "translation": "test examples, one per row: source | output | target",
    "a2b": "A -> B -> A: a test image of domain A | G(a) | F(G(a))",
    "b2a": "B -> A -> B: a test image of domain B | F(b) | G(F(b))",
}


def translation_figures(ctx) -> list[Path]:
    """Paired directions: source | output | target; unpaired: x | translated | cycled back."""
    out, figures = ctx.out, []
    for spec in directions(ctx.sampler.meta):
        name = spec["name"]
        if name not in ctx.inputs["outputs"]:
            continue
        source, output = ctx.inputs["sources"][name], ctx.inputs["outputs"][name]
        if spec.get("paired"):
            columns = [source, output, ctx.inputs["targets"][name]]
            figures.append(rows_figure(columns, out / "translation.png"))
        elif name in ctx.inputs["cycles"]:
            columns = [source, output, ctx.inputs["cycles"][name]]
            figures.append(rows_figure(columns, out / f"{name}.png"))
    return figures


def register_translation(**fields: Any) -> Family:
    """Register a translation family: ``Family(**fields)`` with what they all share unless
    given (the patch-map GAN losses, generator G alone in model.pt, the translation figures,
    captions and metric)."""
    shared = {"losses": TRANSLATION_LOSSES, "generator": "G", "model_modules": ("G",),
              "figures": translation_figures, "captions": TRANSLATION_CAPTIONS,
              "metrics": ("translation",)}  # fmt: skip
    return register(Family(**{**shared, **fields}))
