"""The handwriting sampler and figures, drawn by ``genlab sample``:

- ``grid.png``: the first generated words, each titled with the text it was asked for;
- ``styles.png``: the figure texts (columns) each in several styles (rows: one z per row);
- ``texts.png``: every figure text in one style (the same z);
- ``interpolation.png``: style interpolation between two z (columns) for fixed test texts
  (rows), the text held fixed (ScrabbleGAN, Fogel et al. 2020, fig. 5).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from matplotlib.figure import Figure
from torch import Tensor, nn

from genlab.families.base import FigureContext
from genlab.families.handwriting.trainer import figure_texts
from genlab.families.latent import interpolation_latents
from genlab.families.words import encode_texts, word_vocabulary
from genlab.io import atomic_path

GRID = 32  # at most this many words in grid.png
STYLES = 8  # rows of styles.png
COLUMNS = 4  # words per row of grid.png


class WordSampler:
    """Feeds G(z, text, lengths): the first ``n`` test texts (the dataset's ``source_fields``),
    each with its own style z drawn from a generator seeded by the sample seed."""

    label_kind = None  # no class labels

    def __init__(self, G: nn.Module, meta: dict) -> None:
        self.G, self.meta = G, meta

    def inputs(
        self, seed: int, n: int, device: torch.device | str, data: dict | None = None
    ) -> dict[str, Any]:
        """The first min(n, n_test) rows of ``data`` (the test split): their text and lengths,
        and one seeded z per row."""
        if data is None:
            raise ValueError("a handwriting model writes the test texts: pass data=test")
        m = min(n, len(data["text"]))
        gen = torch.Generator(device).manual_seed(seed)
        z = torch.randn(m, self.G.latent_dim, generator=gen, device=device)
        return {"z": z, "text": data["text"][:m].to(device),
                "lengths": data["lengths"][:m].to(device), "seed": seed,
                "generator": gen}  # fmt: skip

    @torch.no_grad()
    def write(self, z: Tensor, text: Tensor, lengths: Tensor, batch_size: int) -> Tensor:
        """G in chunks, as float on the CPU."""
        chunks = zip(z.split(batch_size), text.split(batch_size), lengths.split(batch_size),
                     strict=True)  # fmt: skip
        return torch.cat([self.G(*chunk).float().cpu() for chunk in chunks])

    def generate(self, inputs: dict[str, Any], batch_size: int) -> Tensor:
        return self.write(inputs["z"], inputs["text"], inputs["lengths"], batch_size)

    def interpolation(
        self, inputs: dict[str, Any], rows: int, steps: int, batch_size: int
    ) -> Tensor | None:
        """Row i: the i-th test text written along the line between two styles (end points from
        a generator seeded by the sample seed + 1, so the figure is the same on every call)."""
        z = inputs["z"]
        rows = min(rows, len(z))
        if rows == 0:
            return None
        gen = torch.Generator(z.device).manual_seed(inputs["seed"] + 1)
        ends = torch.randn(2, rows, z.shape[1], generator=gen, device=z.device)
        path = interpolation_latents(ends[0], ends[1], steps)
        text = inputs["text"][:rows].repeat_interleave(steps, 0)
        lengths = inputs["lengths"][:rows].repeat_interleave(steps, 0)
        return self.write(path, text, lengths, batch_size)

    def saved(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {"z": inputs["z"].cpu(), "source": {"text": inputs["text"].cpu(),
                                                   "lengths": inputs["lengths"].cpu()}}  # fmt: skip


def sampler(modules: dict[str, nn.Module], cfg, meta: dict) -> WordSampler:
    return WordSampler(modules["G"], meta)


def word_figure(
    images: Tensor,  # (rows * cols, 1, H, W) in [-1, 1]
    titles: list[str],  # one per image ("" for none)
    cols: int,
    path: Path,
    row_labels: list[str] | None = None,
) -> Path:
    """Word images in a grid, ink dark on white, each with its title (matplotlib, Agg)."""
    rows = math.ceil(len(images) / cols)
    h, w = images.shape[-2:]
    fig = Figure(figsize=(cols * 0.3 * w / h + 0.6, rows * 0.62 + 0.2), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.set_xticks([])
        ax.set_yticks([])
        if i >= len(images):
            ax.set_axis_off()
            continue
        ax.imshow(images[i, 0].numpy(), cmap="gray_r", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(titles[i], fontsize=8, pad=2)
        if row_labels is not None and i % cols == 0:
            ax.set_ylabel(row_labels[i // cols], fontsize=7, rotation=0, ha="right", va="center")
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


@torch.no_grad()
def handwriting_figures(ctx: FigureContext) -> list[Path]:
    s: WordSampler = ctx.sampler
    meta, inputs, device = s.meta, ctx.inputs, ctx.device
    vocab = word_vocabulary(meta)
    batch = ctx.params.sample.batch_size
    n = min(len(ctx.samples), GRID, ctx.params.sample.grid)
    asked = vocab.decode(inputs["text"][:n].cpu(), inputs["lengths"][:n].cpu())
    paths = [word_figure(ctx.samples[:n], asked, COLUMNS, ctx.out / "grid.png")]

    texts = figure_texts(ctx.cfg, meta)
    tokens, lengths = encode_texts(texts, meta, "figure_texts")
    tokens, lengths = tokens.to(device), lengths.to(device)
    gen = torch.Generator(device).manual_seed(ctx.params.seed + 2)
    z = torch.randn(STYLES, s.G.latent_dim, generator=gen, device=device)
    k = len(texts)
    styles = s.write(z.repeat_interleave(k, 0), tokens.repeat(STYLES, 1),
                     lengths.repeat(STYLES), batch)  # fmt: skip
    titles = texts + [""] * (len(styles) - k)
    labels = [f"z{i + 1}" for i in range(STYLES)]
    paths.append(word_figure(styles, titles, k, ctx.out / "styles.png", labels))

    one = s.write(z[:1].expand(k, -1), tokens, lengths, batch)
    paths.append(word_figure(one, texts, 1, ctx.out / "texts.png"))

    steps = ctx.params.sample.interpolation_steps
    path = s.interpolation(inputs, 4, steps, batch)
    if path is not None:
        rows = len(path) // steps
        row_texts = vocab.decode(inputs["text"][:rows].cpu(), inputs["lengths"][:rows].cpu())
        titles = [f"t = {j / (steps - 1):.2f}" if i == 0 else ""
                  for i in range(rows) for j in range(steps)]  # fmt: skip
        paths.append(word_figure(path, titles, steps, ctx.out / "interpolation.png", row_texts))
    return paths


CAPTIONS = {
    "styles": "the figure texts (columns), each written in 8 styles (rows: one z per row)",
    "texts": "every figure text in one style (the same z)",
}

__all__ = ["CAPTIONS", "WordSampler", "handwriting_figures", "sampler", "word_figure"]
