"""``sample``: draws from a trained variant, a grid from a fixed latent batch, an interpolation.

The latents come from a generator seeded by ``seed``, so the first ``grid`` samples of every
variant with the same latent size share one fixed latent batch.
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
def generate(net: torch.nn.Module, z: Tensor, batch_size: int) -> Tensor:
    return torch.cat([net(chunk).float().cpu() for chunk in z.split(batch_size)])


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


def sample_variant(params, name: str, root: Path) -> dict[str, Path]:
    cfg = params.sample
    params.variant(name)  # a clear error for an unknown variant
    device = resolve_device(params.device)
    net, ckpt = load_model(root / "models" / name / "model.pt", device)
    meta, latent_dim = ckpt["meta"], ckpt["config"]["latent_dim"]
    z, gen = sample_latents(params.seed, cfg.n, latent_dim, device)
    x = generate(net, z, cfg.batch_size)
    rows = 8
    ends = torch.randn(2, rows, latent_dim, generator=gen, device=device)
    path = generate(
        net, interpolation_latents(ends[0], ends[1], cfg.interpolation_steps), cfg.batch_size
    )

    paths = sample_paths(root, name)
    paths["dir"].mkdir(parents=True, exist_ok=True)
    torch_save({"x": x, "z": z.cpu()}, paths["samples"])
    if meta["kind"] == "image":
        save_grid(x[: cfg.grid], paths["grid"], nrow=math.ceil(math.sqrt(min(cfg.grid, len(x)))))
        save_grid(path, paths["interpolation"], nrow=cfg.interpolation_steps)
    else:
        scatter(x, meta, paths["grid"], title=f"{name}: {len(x)} samples")
        scatter(
            path,
            meta,
            paths["interpolation"],
            title=f"{name}: latent interpolation",
            paths=(rows, cfg.interpolation_steps),
        )
    _log_to_run(params, root, name, paths)
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


def _log_to_run(params, root: Path, name: str, paths: dict[str, Path]) -> None:
    from genlab import tracking

    run_file = root / "models" / name / "run.json"
    run_id = json.loads(run_file.read_text()).get("run_id") if run_file.exists() else None
    run = tracking.reopen(params.tracking, root, run_id)
    run.log_artifact(paths["grid"], "samples")
    run.log_artifact(paths["interpolation"], "samples")
