"""The figures the lecture notes show for each model family, drawn by ``genlab sample``.

- ``classes.png``: a conditional model (or InfoGAN's categorical code), one class per row, the
  same noise in every column.
- ``traversal_c<j>.png``: InfoGAN, continuous code j swept over (-1, 1) along each row (one row
  per categorical code value), the other inputs fixed (Chen et al. 2016, fig. 2).
- ``traversal.png`` and ``editing.png``: VAEs, "vary z1, vary z2" (one latent dimension per row,
  the dimensions with the largest KL on the test split) and image editing (encode a test image,
  change the most informative dimension, decode).
- ``truncation.png``: style-based G, each row one z at psi = 1 ... 0 (Karras et al. 2019, fig. 8).
- ``mixing.png``: style-based G, coarse styles from the row's source, fine from the column's.
- ``arithmetic.png``: latent vector arithmetic (Radford et al. 2016, fig. 7) on an unconditional
  model: rows 1-3 show the three most confident samples of ``sample.arithmetic`` classes a, b, c
  (by the evaluator) and, last, G of their mean latent; row 4 shows G(mean_a - mean_b + mean_c)
  and three draws with N(0, 0.25^2) noise added to that latent.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from genlab.sample import balanced_labels, generate, label_kind, noise_dim, save_grid

COLUMNS = 10  # samples per row of the class-by-row grid
STEPS = 9  # points of a traversal


@torch.no_grad()
def draw(
    net: torch.nn.Module,  # the generating network of model.pt (eval mode)
    cfg,  # its VariantCfg
    params,  # Params (sample settings, seed)
    root: Path,  # project root: data/prepared and models/evaluator are read from here
    out: Path,  # samples/<variant>/
    z: Tensor,  # the fixed sample latents
    x: Tensor,  # the samples generated from them
    device: torch.device,
) -> list[Path]:
    """Every figure that applies to ``net``; returns the files written."""
    written: list[Path] = []
    kind = label_kind(net)
    if kind is not None:
        written.append(class_grid(net, z[:COLUMNS], out / "classes.png"))
    if hasattr(net, "codes") and getattr(net, "continuous", 0):
        written += code_traversals(net, z[0], out)
    if cfg.family == "vae":
        written += vae_figures(net, params, cfg, root, out, device)
    if hasattr(net, "mapping") and hasattr(net, "synthesis"):
        written.append(truncation_grid(net, z[:8], out / "truncation.png"))
        written.append(mixing_grid(net, z[:6], z[6:12], out / "mixing.png"))
    if kind is None and cfg.family in ("gan", "vae"):
        figure = arithmetic(net, params, cfg, root, z, x, out / "arithmetic.png")
        written += [figure] if figure else []
    return written


def class_grid(net: torch.nn.Module, z: Tensor, path: Path) -> Path:
    """Row c: G(z_j, c) for the same z_1..z_n in every row."""
    k = net.num_classes
    y = torch.arange(k, device=z.device).repeat_interleave(len(z))
    save_grid(generate(net, z.repeat(k, 1), 1000, y), path, nrow=len(z))
    return path


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


def vae_figures(net, params, cfg, root: Path, out: Path, device) -> list[Path]:
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


def arithmetic(net, params, cfg, root: Path, z: Tensor, x: Tensor, path: Path) -> Path | None:
    """Vector arithmetic on the latents z of the fixed sample batch x = G(z), grouped by the
    evaluator's class predictions; None when the dataset has no evaluator or a class has < 3
    samples."""
    from genlab.evaluate import evaluator_path
    from genlab.metrics import load_evaluator

    classes = params.sample.arithmetic
    if not classes or not evaluator_path(root, cfg.dataset).exists():
        return None
    evaluator, _ = load_evaluator(evaluator_path(root, cfg.dataset))
    probs = torch.softmax(evaluator(x), 1)
    if max(classes) >= probs.shape[1]:
        return None
    exemplars, means = [], []
    for c in classes:
        top = probs[:, c].topk(3).indices
        if (probs[top].argmax(1) != c).any():
            return None
        exemplars.append(x[top])
        means.append(z[top].mean(0))
    result = means[0] - means[1] + means[2]
    gen = torch.Generator(z.device).manual_seed(params.seed)
    jitter = 0.25 * torch.randn(3, z.shape[1], generator=gen, device=z.device)
    out = generate(net, torch.cat([torch.stack(means), result[None], result + jitter]), 100)
    rows = [torch.cat([exemplars[i], out[i : i + 1]]) for i in range(3)] + [out[3:]]
    save_grid(torch.cat(rows), path, nrow=4)
    return path


__all__ = ["draw", "balanced_labels", "noise_dim"]
