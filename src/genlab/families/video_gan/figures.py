"""The video family's figures: clips as frame strips (``grid.png``) and MoCoGAN's decomposition
(``content_motion.png``: one content code under several motions, one motion under several
contents; Tulyakov et al. 2018, fig. 1 and sec. 4.3)."""

from __future__ import annotations

from pathlib import Path

import torch
from matplotlib.figure import Figure
from torch import Tensor

from genlab.families.base import FigureContext
from genlab.io import atomic_path

ROWS = 8  # clips in grid.png
DECOMPOSITION_ROWS = 4  # rows per panel of content_motion.png


def strips(clips: Tensor) -> Tensor:
    """Clips (N, T, C, H, W) in [-1, 1] as one image (H', W', C) in [0, 1]: row n = clip n's
    frames left to right, separated by 1-pixel white lines."""
    from torchvision.utils import make_grid

    frames = clips.flatten(0, 1).float().clamp(-1, 1)
    grid = make_grid(frames, nrow=clips.shape[1], padding=1, pad_value=1.0, normalize=True,
                     value_range=(-1, 1))  # fmt: skip
    return grid.permute(1, 2, 0)


def _draw(panels: list[tuple[str, Tensor]], path: Path) -> Path:
    """One PNG with each (title, clips) panel drawn as frame strips, one above the other."""
    fig = Figure(figsize=(8, 1.9 * len(panels) * max(1, len(panels[0][1]) / 4)),
                 layout="constrained")  # fmt: skip
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, (title, clips) in zip(axes, panels, strict=True):
        image = strips(clips).numpy()
        ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray",
                  vmin=0, vmax=1, interpolation="nearest")  # fmt: skip
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("frame", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return path


def grid_figure(clips: Tensor, path: Path, rows: int = ROWS) -> Path:
    """``grid.png``: the first ``rows`` clips, one per row, frames left to right."""
    return _draw([(f"{min(rows, len(clips))} samples, frames left to right", clips[:rows])], path)


@torch.no_grad()
def decomposition(G, inputs: dict, rows: int) -> tuple[Tensor, Tensor]:
    """(fixed content, fixed motion): the first sample's z_C under the motion (eps, h_0) of
    samples 1..rows, and the first sample's motion under the z_C of samples 1..rows."""
    z_c, eps, h0 = inputs["z_content"][:rows], inputs["eps"][:rows], inputs["h0"][:rows]
    k = len(z_c)
    same_content = G(z_c[:1].expand(k, -1), eps, h0).float().cpu()
    same_motion = G(z_c, eps[:1].expand(k, -1, -1), h0[:1].expand(k, -1)).float().cpu()
    return same_content, same_motion


def video_figures(ctx: FigureContext) -> list[Path]:
    """grid.png and content_motion.png of the sample stage."""
    grid = grid_figure(ctx.samples, ctx.out / "grid.png")
    same_content, same_motion = decomposition(ctx.modules["G"], ctx.inputs, DECOMPOSITION_ROWS)
    path = _draw([("one content code z_C, a different motion per row", same_content),
                  ("one motion (eps, h_0), a different content code per row", same_motion)],
                 ctx.out / "content_motion.png")  # fmt: skip
    return [grid, path]
