"""The figures, report section and captions the token-row GANs (text_wgan, gumbel_gan) share:
generated rows beside real test rows in a monospace font (grammar rows marked valid or not),
and rows along latent interpolation paths."""

from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.figure import Figure  # Agg canvas, no pyplot state

from genlab.data import load_prepared
from genlab.data.text import GRAMMARS, vocabulary
from genlab.families.base import FigureContext
from genlab.io import atomic_path

ROWS = 24  # rows of each column of grid.png
PATHS = 4  # interpolation paths
PAD_SHOWN = "\u00b7"  # the pad character drawn as a middle dot

SECTIONS = {
    "Text": "Character-level GANs on fixed-length token rows: 32-character lines of Python's "
    "documentation (`text`) and strings of a small arithmetic grammar (`grammar`). WGAN-GP "
    "feeds the critic G's softmax (Gulrajani et al. 2017); the Gumbel-softmax GAN a "
    "Gumbel-softmax sample of G's logits with an annealed temperature (Kusner & "
    "Hernandez-Lobato 2016). `js_1`..`js_4`: Jensen-Shannon divergence (nats, at most ln 2) "
    "of character n-gram distributions, samples vs test rows; `valid`: share of grammar samples "
    "that parse. The baseline draws every character i.i.d. from the training frequencies."
}
CAPTIONS = {"interpolation": "latent interpolation: each block one path z0 -> z1, one row per "
            "step (the most probable character at each position)"}  # fmt: skip


def shown(rows: list[str], meta: dict) -> list[str]:
    """Rows as drawn: the pad character made visible."""
    pad = meta.get("pad")
    return [r.replace(pad, PAD_SHOWN) for r in rows] if pad else rows


def write_text_figure(
    columns: list[tuple[str, list[str], list[bool | None]]], path: Path, title: str = ""
) -> Path:
    """Columns of monospace rows, each (heading, rows, marks): a mark True draws its row green
    with "+", False red with "x", None black."""
    height = max(len(rows) for _, rows, _ in columns)
    width = max(max(len(r) for r in rows) for _, rows, _ in columns if rows)
    fig = Figure(figsize=(0.12 * (width + 4) * len(columns) + 0.5, 0.22 * (height + 3)))
    fig.suptitle(title, fontsize=9)
    for c, (heading, rows, marks) in enumerate(columns):
        ax = fig.add_axes((c / len(columns), 0.0, 1 / len(columns), 0.92))
        ax.set_axis_off()
        ax.set_xlim(0, 1)
        ax.set_ylim(height + 1, -1)
        ax.text(0.02, -0.5, heading, fontsize=9, fontweight="bold", va="center")
        for i, (row, mark) in enumerate(zip(rows, marks, strict=True)):
            colour = {True: "tab:green", False: "tab:red", None: "black"}[mark]
            prefix = {True: "+ ", False: "x ", None: ""}[mark]
            text = f"{prefix}|{row}|" if row else ""
            ax.text(0.02, i + 0.7, text, fontsize=8, family="monospace",
                    color=colour, va="center")  # fmt: skip
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110)
    return path


def validity(rows: list[str], meta: dict) -> list[bool | None]:
    """Each row's validity under the dataset's grammar (None: no grammar)."""
    check = GRAMMARS.get(meta.get("grammar", ""))
    return [check(r) if check else None for r in rows]


@torch.no_grad()
def text_figures(ctx: FigureContext) -> list[Path]:
    """``grid.png``: the first generated rows beside as many real test rows; for a grammar each
    generated row marked valid (+) or not (x). ``interpolation.png``: rows along latent paths."""
    meta = ctx.sampler.meta
    vocab = vocabulary(meta)
    _, test, _ = load_prepared(ctx.root, ctx.cfg.dataset)
    n = min(ROWS, len(ctx.samples))
    fake = vocab.decode(ctx.samples[:n])
    real = vocab.decode(test["x"][:n])
    marks = validity(fake, meta)
    title = f"{ctx.cfg.family} on {ctx.cfg.dataset}"
    if meta.get("grammar"):
        title += f": {sum(bool(m) for m in marks)} of {n} shown rows valid"
    grid = write_text_figure(
        [("generated", shown(fake, meta), marks), ("test rows", shown(real, meta), [None] * n)],
        ctx.out / "grid.png", title,
    )  # fmt: skip
    steps = ctx.params.sample.interpolation_steps
    tokens = ctx.sampler.interpolation(ctx.inputs, PATHS, steps, ctx.params.sample.batch_size)
    rows, lines, marks = vocab.decode(tokens), [], []
    for p in range(PATHS):  # one block per path, a blank row between blocks
        block = rows[p * steps : (p + 1) * steps]
        lines += shown(block, meta) + [""]
        marks += validity(block, meta) + [None]
    interpolation = write_text_figure(
        [(f"{PATHS} latent paths z0 -> z1, {steps} steps each", lines[:-1], marks[:-1])],
        ctx.out / "interpolation.png", title,
    )  # fmt: skip
    return [grid, interpolation]
