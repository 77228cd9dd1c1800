"""The GAN figures the lecture notes show, drawn by ``genlab sample``:

- ``classes.png``: a conditional G (or InfoGAN's categorical code), one class per row, the same
  noise in every column; ``arithmetic.png`` for an unconditional G (``genlab.families.latent``).
- ``traversal_c<j>.png``: InfoGAN, continuous code j swept over (-1, 1) along each row (one row
  per categorical code value), the other inputs fixed (Chen et al. 2016, fig. 2).
- ``truncation.png``: style-based G, each row one z at psi = 1 ... 0 (Karras et al. 2019, fig. 8).
- ``mixing.png``: style-based G, coarse styles from the row's source, fine from the column's.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from genlab.drawing import save_grid
from genlab.families.base import FigureContext
from genlab.families.latent import arithmetic_figure, generate, latent_figures

STEPS = 9  # points of a traversal


@torch.no_grad()
def gan_figures(ctx: FigureContext) -> list[Path]:
    net, cfg, z = ctx.modules["G"], ctx.cfg, ctx.inputs["z"]
    written = latent_figures(ctx)
    if cfg.info_continuous:
        written += code_traversals(net, z[0], ctx.out)
    if cfg.arch == "style":
        written.append(truncation_grid(net, z[:8], ctx.out / "truncation.png"))
        written.append(mixing_grid(net, z[:6], z[6:12], ctx.out / "mixing.png"))
    return written + arithmetic_figure(ctx)


def code_traversals(net: torch.nn.Module, z0: Tensor, out: Path) -> list[Path]:
    """InfoGAN: one figure per continuous code; row = categorical value, column = code value.
    u in (-1, 1) is set through the noise entry z = Phi^-1((u + 1) / 2)."""
    paths = []
    u = torch.linspace(-0.95, 0.95, STEPS, device=z0.device)
    noise_value = torch.erfinv(u) * 2**0.5
    rows = max(1, net.num_classes)
    for j in range(net.continuous):
        z = z0.repeat(rows * STEPS, 1)
        z[:, net.latent_dim + j] = noise_value.repeat(rows)
        y = None
        if net.num_classes:
            y = torch.arange(rows, device=z0.device).repeat_interleave(STEPS)
        path = out / f"traversal_c{j + 1}.png"
        save_grid(generate(net, z, 1000, y), path, nrow=STEPS)
        paths.append(path)
    return paths


def truncation_grid(net: torch.nn.Module, z: Tensor, path: Path) -> Path:
    """Row i: G(z_i) at psi = 1, 0.8, ..., 0 (psi = 0 is the average style)."""
    psis = [1.0, 0.8, 0.6, 0.4, 0.2, 0.0]
    images = torch.stack([net(z, psi=psi).float().cpu() for psi in psis], 1)
    save_grid(images.flatten(0, 1), path, nrow=len(psis))
    return path


def mixing_grid(net: torch.nn.Module, za: Tensor, zb: Tensor, path: Path) -> Path:
    """Cell (i, j): the first half of the layers styled by za_i, the rest by zb_j; the first row
    and column show the sources themselves (top-left cell blank)."""
    wa, wb = net.mapping(za), net.mapping(zb)
    cut = max(1, net.num_layers // 2)
    blank = torch.full_like(net.synthesis(wb[:1, None].expand(-1, net.num_layers, -1)), 1.0)
    top = [blank] + [net.synthesis(w[None, None].expand(-1, net.num_layers, -1)) for w in wb]
    rows = [torch.cat(top)]
    for a in wa:
        ws = wb[:, None].expand(-1, net.num_layers, -1).clone()
        ws[:, :cut] = a
        source = net.synthesis(a[None, None].expand(-1, net.num_layers, -1))
        rows.append(torch.cat([source, net.synthesis(ws)]))
    save_grid(torch.cat(rows).float().cpu(), path, nrow=len(zb) + 1)
    return path
