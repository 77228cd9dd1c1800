"""Figures of the codebook families (VQ-VAE, VQ-GAN): the latent figures of the noise-fed
families (one class per row for a class-conditional prior) and ``reconstructions.png``: test
images and their reconstructions through the codebook, the autoencoder's sharpness at a glance.
The reconstructions are kept in ``reconstructions.pt`` too, so the report can set those of
several variants of one dataset side by side (VQ-GAN's beside the VQ-VAE's)."""

from __future__ import annotations

from pathlib import Path

import torch

from genlab.drawing import save_grid
from genlab.families.base import FigureContext
from genlab.families.latent import latent_figures
from genlab.io import torch_save

RECONSTRUCTIONS = 16  # test images shown (one row), their reconstructions in the row below

CAPTIONS = {
    "reconstructions": "top: test images; bottom: their reconstructions through the codebook",
}


@torch.no_grad()
def reconstructions(net, x: torch.Tensor, path: Path) -> Path:
    """Row 1: the images x; row 2: decode(encode(x)) of the VQ model ``net``; both tensors in
    ``path`` with the suffix .pt."""
    rec = net.decode_indices(net.encode_indices(x)).float().cpu()
    save_grid(torch.cat([x.float().cpu(), rec]), path, nrow=len(x))
    torch_save({"x": x.float().cpu(), "reconstructions": rec}, path.with_suffix(".pt"))
    return path


def vq_figures(ctx: FigureContext) -> list[Path]:
    from genlab.data import load_prepared

    _, test, _ = load_prepared(ctx.root, ctx.cfg.dataset)
    x = test["x"][:RECONSTRUCTIONS].to(ctx.device)
    written = latent_figures(ctx)
    return [*written, reconstructions(ctx.modules["vae"], x, ctx.out / "reconstructions.png")]
