"""``sample``: draws from a trained variant through its family's sampler: the fixed, seeded
sample batch (scored by ``evaluate``), a grid of its first samples, an interpolation, and the
family's figures. Images are drawn as grids, 2-D points as scatters over the data's modes."""

from __future__ import annotations

import json
import math
from pathlib import Path

from genlab.data import field_kind, load_prepared
from genlab.drawing import save_grid, scatter
from genlab.families import FAMILIES, FigureContext
from genlab.io import torch_save
from genlab.paths import Paths
from genlab.runtime import deterministic_kernels, resolve_device
from genlab.train.checkpoint import load_modules

ROWS = 8  # interpolation paths


def sample_variant(params, name: str, root: Path) -> dict[str, Path]:
    cfg = params.sample
    params.variant(name)  # a clear error for an unknown variant
    paths = Paths(root)
    device = resolve_device(params.device)
    deterministic_kernels()
    modules, variant, ckpt = load_modules(paths.model(name), device)
    family, meta = FAMILIES.get(variant.family), ckpt["meta"]
    sampler = family.sampler(modules, variant, meta)
    # a translation model translates the test split, a model of a dataset with per-row inputs
    # (meta source_fields: texts, observed paths) answers the test rows'; the others draw their
    # inputs themselves
    fed = "translation" in meta or bool(meta.get("source_fields"))
    data = load_prepared(root, variant.dataset)[1] if fed else None
    inputs = sampler.inputs(params.seed, cfg.n, device, data)
    x = sampler.generate(inputs, cfg.batch_size)
    path = sampler.interpolation(inputs, ROWS, cfg.interpolation_steps, cfg.batch_size)

    out = paths.samples_dir(name)
    out.mkdir(parents=True, exist_ok=True)
    torch_save({"x": x, **sampler.saved(inputs)}, paths.samples(name))
    grid, interpolation = out / "grid.png", out / "interpolation.png"
    figures = [grid, interpolation]
    kind = field_kind(meta)
    ctx = FigureContext(modules, variant, params, root, out, inputs, x, sampler, device)
    if kind == "image":
        save_grid(x[: cfg.grid], grid, nrow=math.ceil(math.sqrt(min(cfg.grid, len(x)))))
        if path is not None:
            save_grid(path, interpolation, nrow=cfg.interpolation_steps)
        figures += family.figures(ctx)
    elif kind == "points":
        scatter(x, meta, grid, title=f"{name}: {len(x)} samples")
        if path is not None:
            scatter(path, meta, interpolation, title=f"{name}: latent interpolation",
                    paths=(ROWS, cfg.interpolation_steps))  # fmt: skip
    else:  # words, token rows, trajectories, clips: the family draws them (grid.png among them)
        figures += family.figures(ctx)
    _log_to_run(params, root, name, [f for f in figures if f.exists()])
    return {"dir": out, "samples": paths.samples(name), "grid": grid,
            "interpolation": interpolation}  # fmt: skip


def _log_to_run(params, root: Path, name: str, figures: list[Path]) -> None:
    from genlab import tracking

    run_file = Paths(root).run(name)
    run_id = json.loads(run_file.read_text()).get("run_id") if run_file.exists() else None
    run = tracking.reopen(params.tracking, root, run_id)
    for figure in figures:
        run.log_artifact(figure, "samples")
