"""VQ-GAN figures: the latent figures of the noise-fed families (one class per row for a
class-conditional prior) and ``reconstructions.png``: test images and their reconstructions
through the codebook, the autoencoder's sharpness at a glance."""

from __future__ import annotations

from pathlib import Path

import torch

from genlab.drawing import save_grid
from genlab.families.base import FigureContext
from genlab.families.latent import latent_figures

RECONSTRUCTIONS = 16  # test images shown (one row), their reconstructions in the row below

CAPTIONS = {
    "reconstructions": "top: test images; bottom: their reconstructions through the codebook",
}


@torch.no_grad()
def reconstructions(net, x: torch.Tensor, path: Path) -> Path:
    """Row 1: the images x; row 2: decode(encode(x)) of the VQ model ``net``."""
    rec = net.decode_indices(net.encode_indices(x))
    save_grid(torch.cat([x, rec]).float().cpu(), path, nrow=len(x))
    return path


def vqgan_figures(ctx: FigureContext) -> list[Path]:
    from genlab.data import load_prepared

    _, test, _ = load_prepared(ctx.root, ctx.cfg.dataset)
    x = test["x"][:RECONSTRUCTIONS].to(ctx.device)
    written = latent_figures(ctx)
    return [*written, reconstructions(ctx.modules["vae"], x, ctx.out / "reconstructions.png")]
