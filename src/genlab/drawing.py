"""Pictures from tensors and tables: image grids, 2-D scatters and training curves. Library code
below the stages (families draw their figures with these; the driver logs the curves)."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import torch
from matplotlib.figure import Figure  # Agg canvas, no pyplot state: safe headless and threaded
from torch import Tensor

from genlab.io import atomic_path


def save_grid(x: Tensor, path: Path, nrow: int) -> None:
    """Images in [-1, 1] to one PNG, enlarged (nearest neighbour) so tiny images stay visible."""
    from torchvision.utils import save_image

    scale = max(1, 32 // x.shape[-1])
    if scale > 1:
        x = torch.nn.functional.interpolate(x, scale_factor=scale, mode="nearest")
    with atomic_path(path, suffix=".png") as tmp:
        save_image(x, tmp, nrow=nrow, normalize=True, value_range=(-1, 1), pad_value=1.0)


def scatter(x: Tensor, meta: dict, path: Path, title: str, paths: tuple[int, int] | None = None):
    """2-D samples over the data's mode centres; with ``paths`` each interpolation as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    if paths is None:
        ax.scatter(x[:, 0], x[:, 1], s=2, alpha=0.4, label="samples")
    else:
        for line in x.reshape(*paths, 2):
            ax.plot(line[:, 0], line[:, 1], "-o", ms=2, lw=1)
    modes = torch.tensor(meta.get("modes", []))
    if len(modes):
        ax.scatter(modes[:, 0], modes[:, 1], marker="x", c="red", s=40, label="modes")
    ax.set_title(title)
    ax.set_aspect("equal")
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, bbox_inches="tight")
    plt.close(fig)


def training_curves_figure(csv_path: Path, png_path: Path, title: str = "") -> Path:
    """Plot every statistic column of a training CSV against step (raw + rolling mean) as a PNG."""
    df = pd.read_csv(csv_path)
    x = df["step"] if "step" in df else pd.Series(range(len(df)))
    stats = df.drop(columns=["step", "seconds"], errors="ignore").select_dtypes("number")
    window = max(1, len(df) // 50)
    ncols = max(1, min(3, stats.shape[1]))
    nrows = max(1, math.ceil(stats.shape[1] / ncols))
    fig = Figure(figsize=(3.2 * ncols, 2.4 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    marker = "o" if len(df) == 1 else None
    for ax, name in zip(axes, stats.columns, strict=False):
        ax.plot(x, stats[name], lw=0.6, alpha=0.35, color="C0", marker=marker)
        ax.plot(x, stats[name].rolling(window, min_periods=1).mean(), lw=1.2, color="C0")
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[stats.shape[1] :]:
        ax.set_axis_off()
    if stats.empty:
        axes[0].text(0.5, 0.5, "no statistics logged", ha="center", va="center")
    if title:
        fig.suptitle(title, fontsize=10)
    with atomic_path(Path(png_path)) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(png_path)
