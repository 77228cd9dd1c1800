"""The text-to-image figures ``genlab sample`` draws (word images: ``sample`` draws no grid
itself):

- ``grid.png``: the first generated words of the scored batch, each titled with its asked text;
- ``interpolation.png``: G(z, phi(t)) along a line from z_0 to z_1 for a fixed text per row
  (style changes, the text should stay; Reed et al. 2016, fig. 8 interpolates text instead);
- ``styles.png``: each figure text (rows) with several z (columns);
- ``texts.png``: every figure text with one z (Reed et al. 2016, fig. 6: style kept, content
  changes).
"""

from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.figure import Figure
from torch import Tensor

from genlab.families.base import FigureContext
from genlab.families.words import encode_texts, word_vocabulary
from genlab.io import atomic_path

DEFAULT_TEXTS = ["2026", "314159", "42", "7", "100"]
GRID = 48  # words in grid.png at most
COLUMNS = 4  # words per row of grid.png and texts.png
STYLES = 6  # z per text in styles.png

CAPTIONS = {
    "grid": "generated words, each titled with the text it was asked for (test texts)",
    "interpolation": "one test text per row, z interpolated from z_0 to z_1 along the row",
    "styles": "each figure text (rows) with several noise vectors z (columns)",
    "texts": "every figure text with one noise vector z (the style kept, the text changed)",
}


def figure_texts(cfg, meta: dict) -> list[str]:
    """The variant's ``figure_texts``, or the defaults cut to the dataset's max_length."""
    if cfg.figure_texts is not None:
        return list(cfg.figure_texts)
    cut = [t[: int(meta["max_length"])] for t in DEFAULT_TEXTS]
    return list(dict.fromkeys(cut))


def word_figure(
    images: Tensor,  # (N, 1, H, W) in [-1, 1], ink = 1
    titles: list[str],  # one per image ("" for none)
    path: Path,
    columns: int,
) -> Path:
    """Word images in a grid of ``columns``, ink dark on white, each with its title."""
    n = len(images)
    rows = max(1, -(-n // columns))
    h, w = images.shape[-2:]
    fig = Figure(figsize=(columns * (0.32 * w / h + 0.3), rows * 0.62 + 0.2), layout="constrained")
    fig.get_layout_engine().set(wspace=0.12)  # a gap between neighbouring words
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax in axes:
        ax.set_axis_off()
    for ax, image, title in zip(axes, images.float().cpu(), titles, strict=False):
        ax.imshow(image[0].numpy(), cmap="gray_r", vmin=-1, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=8, pad=2, loc="left")
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


@torch.no_grad()
def text2image_figures(ctx: FigureContext) -> list[Path]:
    sampler, meta, out = ctx.sampler, ctx.sampler.meta, ctx.out
    vocab = word_vocabulary(meta)
    asked = vocab.decode(ctx.inputs["text"].cpu(), ctx.inputs["lengths"].cpu())
    n = min(GRID, ctx.params.sample.grid, len(ctx.samples))
    written = [word_figure(ctx.samples[:n], asked[:n], out / "grid.png", COLUMNS)]
    path = ctx.inputs.get("interpolation")
    if path is not None:
        steps = len(path["x"]) // len(path["texts"])
        titles = [t if j == 0 else "" for t in path["texts"] for j in range(steps)]
        written.append(word_figure(path["x"], titles, out / "interpolation.png", steps))

    texts = figure_texts(ctx.cfg, meta)
    tokens, lengths = encode_texts(texts, meta, f"variants.{out.name}.figure_texts")
    gen = torch.Generator(ctx.device).manual_seed(ctx.params.seed + 1)
    z = torch.randn(STYLES, sampler.latent_dim, generator=gen, device=ctx.device)
    tokens, lengths = tokens.to(ctx.device), lengths.to(ctx.device)
    styles = sampler.render(z.repeat(len(texts), 1), tokens.repeat_interleave(STYLES, 0),
                            lengths.repeat_interleave(STYLES, 0))  # fmt: skip
    titles = [t if j == 0 else "" for t in texts for j in range(STYLES)]
    written.append(word_figure(styles, titles, out / "styles.png", STYLES))
    one = sampler.render(z[:1].repeat(len(texts), 1), tokens, lengths)
    written.append(word_figure(one, texts, out / "texts.png", min(COLUMNS, len(texts))))
    return written


__all__ = ["CAPTIONS", "DEFAULT_TEXTS", "figure_texts", "text2image_figures", "word_figure"]
