"""``sample``: draws from a trained variant, a grid from a fixed latent batch, an interpolation,
and the figures of its family (``genlab.figures``).

The latents come from a generator seeded by ``seed``, so the first ``grid`` samples of every
variant with the same latent size share one fixed latent batch. Conditional models get balanced
labels 0, 1, ..., K-1, 0, ... (stored with the samples, so evaluate can score them per class).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch
from torch import Tensor

from genlab.io import atomic_path, torch_save
from genlab.train.checkpoint import load_model
from genlab.train.common import resolve_device


def sample_paths(root: Path, name: str) -> dict[str, Path]:
    out = root / "samples" / name
    return {
        "dir": out,
        "samples": out / "samples.pt",
        "grid": out / "grid.png",
        "interpolation": out / "interpolation.png",
    }


@torch.no_grad()
def generate(net: torch.nn.Module, z: Tensor, batch_size: int, y: Tensor | None = None) -> Tensor:
    """net(z) (or net(z, y) for a conditional net) in chunks, as float on the CPU."""
    if y is None:
        return torch.cat([net(chunk).float().cpu() for chunk in z.split(batch_size)])
    return torch.cat(
        [
            net(a, b).float().cpu()
            for a, b in zip(z.split(batch_size), y.split(batch_size), strict=True)
        ]
    )


def interpolation_latents(z0: Tensor, z1: Tensor, steps: int) -> Tensor:
    """Linear paths z0 -> z1 (rows of ``steps`` points each), as in Radford et al. 2016 fig. 4."""
    t = torch.linspace(0, 1, steps, device=z0.device)[None, :, None]
    return ((1 - t) * z0[:, None] + t * z1[:, None]).flatten(0, 1)


def sample_latents(
    seed: int, n: int, latent_dim: int, device: torch.device | str
) -> tuple[Tensor, torch.Generator]:
    """The fixed latent batch every sample of a variant is scored on, and the generator that
    drew it (which goes on to draw the interpolation end points)."""
    gen = torch.Generator(device).manual_seed(seed)
    return torch.randn(n, latent_dim, generator=gen, device=device), gen


def balanced_labels(n: int, num_classes: int, device: torch.device | str) -> Tensor:
    """0, 1, ..., K-1, 0, 1, ...: every class (or InfoGAN code value) equally often."""
    return torch.arange(n, device=device) % num_classes


def generator_inputs(
    net: torch.nn.Module, seed: int, n: int, latent_dim: int, device: torch.device | str
) -> tuple[Tensor, Tensor | None, torch.Generator]:
    """(z, y or None, generator) of the fixed sample batch: ``noise_dim`` Gaussian entries
    (``latent_dim`` unless the net says otherwise) and, for a conditional net, balanced labels."""
    z, gen = sample_latents(seed, n, noise_dim(net, latent_dim), device)
    k = getattr(net, "num_classes", 0)
    return z, (balanced_labels(n, k, device) if k else None), gen


def noise_dim(net: torch.nn.Module, latent_dim: int | None = None) -> int:
    """Size of the Gaussian noise ``net`` takes: its ``noise_dim`` (InfoGAN: z plus the continuous
    codes; VQ-VAE: one entry per code position), else its or the config's latent_dim."""
    return getattr(net, "noise_dim", None) or getattr(net, "latent_dim", None) or latent_dim


def label_kind(net: torch.nn.Module) -> str | None:
    """What a net's y means: "class" (conditional models), "code" (InfoGAN), None (no y)."""
    if not getattr(net, "num_classes", 0):
        return None
    return "code" if hasattr(net, "codes") else "class"


def sample_variant(params, name: str, root: Path) -> dict[str, Path]:
    cfg = params.sample
    variant = params.variant(name)  # a clear error for an unknown variant
    device = resolve_device(params.device)
    net, ckpt = load_model(root / "models" / name / "model.pt", device)
    meta, latent_dim = ckpt["meta"], ckpt["config"]["latent_dim"]
    z, y, gen = generator_inputs(net, params.seed, cfg.n, latent_dim, device)
    x = generate(net, z, cfg.batch_size, y)
    rows = 8
    ends = torch.randn(2, rows, z.shape[1], generator=gen, device=device)
    path_y = None
    if y is not None:
        path_y = balanced_labels(rows, net.num_classes, device).repeat_interleave(
            cfg.interpolation_steps
        )
    path = generate(
        net,
        interpolation_latents(ends[0], ends[1], cfg.interpolation_steps),
        cfg.batch_size,
        path_y,
    )

    paths = sample_paths(root, name)
    paths["dir"].mkdir(parents=True, exist_ok=True)
    saved = {"x": x, "z": z.cpu()}
    if y is not None:
        saved.update({"y": y.cpu(), "y_kind": label_kind(net)})
    torch_save(saved, paths["samples"])
    figures = [paths["grid"], paths["interpolation"]]
    if meta["kind"] == "image":
        save_grid(x[: cfg.grid], paths["grid"], nrow=math.ceil(math.sqrt(min(cfg.grid, len(x)))))
        save_grid(path, paths["interpolation"], nrow=cfg.interpolation_steps)
        from genlab import figures as family_figures

        figures += family_figures.draw(net, variant, params, root, paths["dir"], z, x, device)
    else:
        scatter(x, meta, paths["grid"], title=f"{name}: {len(x)} samples")
        scatter(
            path,
            meta,
            paths["interpolation"],
            title=f"{name}: latent interpolation",
            paths=(rows, cfg.interpolation_steps),
        )
    _log_to_run(params, root, name, figures)
    return paths


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


def _log_to_run(params, root: Path, name: str, figures: list[Path]) -> None:
    from genlab import tracking

    run_file = root / "models" / name / "run.json"
    run_id = json.loads(run_file.read_text()).get("run_id") if run_file.exists() else None
    run = tracking.reopen(params.tracking, root, run_id)
    for figure in figures:
        run.log_artifact(figure, "samples")
