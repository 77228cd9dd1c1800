"""VAE figures: "vary z1, vary z2" (``traversal.png``: one latent dimension per row, the
dimensions with the largest KL on the test split, swept from -3 to 3) and image editing
(``editing.png``: encode a test image, change the most informative dimension, decode), plus the
class grid (conditional VAE) or latent arithmetic (``genlab.families.latent``)."""

from __future__ import annotations

from pathlib import Path

import torch

from genlab.drawing import save_grid
from genlab.families.base import FigureContext
from genlab.families.latent import arithmetic_figure, latent_figures

STEPS = 9  # points of a traversal


@torch.no_grad()
def vae_figures(ctx: FigureContext) -> list[Path]:
    written = latent_figures(ctx)
    written += traversal_and_editing(ctx.modules["vae"], ctx.cfg, ctx.root, ctx.out, ctx.device)
    return written + arithmetic_figure(ctx)


def traversal_and_editing(net, cfg, root: Path, out: Path, device) -> list[Path]:
    """Latent traversals and image editing of a VAE, on test images."""
    from genlab.data import load_prepared
    from genlab.objectives.vae import given

    _, test, _ = load_prepared(root, cfg.dataset)
    x, y = test["x"][:512].to(device), test["y"][:512].to(device)
    y = y if net.num_classes else None
    mu, logvar = net.encode(x, **given(y))
    kl = 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).mean(0)  # per dimension, nats
    dims = kl.argsort(descending=True)[:8]
    values = torch.linspace(-3, 3, STEPS, device=device)

    base = mu[:1].repeat(len(dims) * STEPS, 1)  # row r: dimension dims[r] of image 0 swept
    base[torch.arange(len(base)), dims.repeat_interleave(STEPS)] = values.repeat(len(dims))
    traversal = out / "traversal.png"
    y0 = None if y is None else y[:1].expand(len(base))
    save_grid(net(base, y0).float().cpu(), traversal, nrow=STEPS)

    rows = 8  # image editing: original, reconstruction, then dims[0] set to each value
    edited = mu[:rows].repeat_interleave(STEPS, 0)
    edited[:, dims[0]] = values.repeat(rows)
    yr = None if y is None else y[:rows]
    recon = net(mu[:rows], yr)
    ye = None if y is None else yr.repeat_interleave(STEPS)
    cells = torch.cat(
        [x[:rows, None], recon[:, None], net(edited, ye).view(rows, STEPS, *x.shape[1:])], 1
    )
    editing = out / "editing.png"
    save_grid(cells.flatten(0, 1).float().cpu(), editing, nrow=STEPS + 2)
    return [traversal, editing]
