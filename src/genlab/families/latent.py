"""Sampling and figures shared by the families whose model maps Gaussian noise (and optionally a
class label or a categorical code) to data: GANs, VAEs, the VQ-VAE with its prior.

The latents come from a generator seeded by ``seed``, so the first ``grid`` samples of every
variant with the same latent size share one fixed latent batch. Conditional models get balanced
labels 0, 1, ..., K-1, 0, ... (stored with the samples, so evaluate can score them per class).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from genlab.drawing import save_grid

COLUMNS = 10  # samples per row of the class-by-row grid
CLASSES = {"classes": "one class per row, same noise per column"}
ARITHMETIC = {
    "arithmetic": "vector arithmetic: rows a, b, c (3 samples + mean latent); "
    "row 4: a - b + c and 3 noisy neighbours"
}


@torch.no_grad()
def generate(net: nn.Module, z: Tensor, batch_size: int, y: Tensor | None = None) -> Tensor:
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


def truncated_normal_(z: Tensor, threshold: float, gen: torch.Generator) -> Tensor:
    """The truncation trick (Brock et al. 2019, sec. 3.1): every entry of ``z`` with
    |z| > ``threshold`` is redrawn from N(0, 1) with ``gen`` until it falls inside, in place.
    The entries are then standard normals truncated to [-threshold, threshold]. Each round draws
    exactly as many values as entries are still outside, in row-major order, so the result
    depends only on the generator's state (same seed, same bits)."""
    outside = z.abs() > threshold
    while bool(outside.any()):
        redraw = torch.randn(int(outside.sum()), generator=gen, device=z.device, dtype=z.dtype)
        z.masked_scatter_(outside, redraw)
        outside = z.abs() > threshold
    return z


def balanced_labels(n: int, num_classes: int, device: torch.device | str) -> Tensor:
    """0, 1, ..., K-1, 0, 1, ...: every class (or InfoGAN code value) equally often."""
    return torch.arange(n, device=device) % num_classes


class LatentSampler:
    """Feeds ``net(z)`` or ``net(z, y)``: ``noise_dim`` Gaussian entries and, when
    ``num_classes`` > 0, balanced labels whose meaning is ``label_kind`` ("class" for a
    conditional model, "code" for InfoGAN's categorical code). ``truncation`` > 0: the latents
    (the fixed batch and the interpolation end points) are truncated normals, entries beyond
    the threshold redrawn by the same seeded generator (``truncated_normal_``); 0 (the default)
    draws exactly the bits it drew before the option existed."""

    def __init__(
        self,
        net: nn.Module,
        noise_dim: int,
        num_classes: int = 0,
        label_kind: str = "class",
        truncation: float = 0.0,  # BigGAN's truncation threshold on |z|; 0 = off
    ):
        self.net, self.noise_dim, self.num_classes = net, noise_dim, num_classes
        self.label_kind = label_kind if num_classes else None
        self.truncation = truncation

    def _truncate(self, z: Tensor, gen: torch.Generator) -> Tensor:
        return truncated_normal_(z, self.truncation, gen) if self.truncation > 0 else z

    def inputs(
        self, seed: int, n: int, device: torch.device | str, data: dict | None = None
    ) -> dict[str, Any]:
        """``n`` seeded latents (and balanced labels); ``data`` is not read."""
        z, gen = sample_latents(seed, n, self.noise_dim, device)
        z = self._truncate(z, gen)
        y = balanced_labels(n, self.num_classes, device) if self.num_classes else None
        return {"z": z, "y": y, "generator": gen}

    def generate(self, inputs: dict[str, Any], batch_size: int) -> Tensor:
        return generate(self.net, inputs["z"], batch_size, inputs.get("y"))

    def interpolation(
        self, inputs: dict[str, Any], rows: int, steps: int, batch_size: int
    ) -> Tensor:
        z, gen = inputs["z"], inputs["generator"]
        ends = self._truncate(torch.randn(2, rows, z.shape[1], generator=gen, device=z.device), gen)
        path_y = None
        if self.num_classes:
            path_y = balanced_labels(rows, self.num_classes, z.device).repeat_interleave(steps)
        return generate(self.net, interpolation_latents(ends[0], ends[1], steps), batch_size,
                        path_y)  # fmt: skip

    def saved(self, inputs: dict[str, Any]) -> dict[str, Any]:
        saved = {"z": inputs["z"].cpu()}
        if inputs.get("y") is not None:
            saved.update({"y": inputs["y"].cpu(), "y_kind": self.label_kind})
        return saved


def sampler_of(key: str):
    """The sampler of a family whose module ``key`` declares ``noise_dim`` and ``num_classes``
    (labels meaning classes): the VAEs and the VQ-VAE."""

    def sampler(modules: dict[str, nn.Module], cfg, meta: dict) -> LatentSampler:
        net = modules[key]
        return LatentSampler(net, net.noise_dim, net.num_classes, "class")

    return sampler


def class_grid(net: nn.Module, num_classes: int, z: Tensor, path: Path) -> Path:
    """Row c: G(z_j, c) for the same z_1..z_n in every row."""
    y = torch.arange(num_classes, device=z.device).repeat_interleave(len(z))
    save_grid(generate(net, z.repeat(num_classes, 1), 1000, y), path, nrow=len(z))
    return path


def arithmetic(net, params, cfg, root: Path, z: Tensor, x: Tensor, path: Path) -> Path | None:
    """Latent vector arithmetic (Radford et al. 2016, fig. 7) on the latents z of the fixed
    sample batch x = G(z), grouped by the evaluator's class predictions: rows 1-3 show the three
    most confident samples of ``sample.arithmetic`` classes a, b, c and, last, G of their mean
    latent; row 4 shows G(mean_a - mean_b + mean_c) and three draws with N(0, 0.25^2) noise added
    to that latent. None when the dataset has no evaluator or a class has < 3 samples."""
    from genlab.metrics import load_evaluator
    from genlab.paths import Paths

    classes = params.sample.arithmetic
    evaluator_file = Paths(root).evaluator(cfg.dataset)
    if not classes or not evaluator_file.exists():
        return None
    evaluator, _ = load_evaluator(evaluator_file)
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


def latent_figures(ctx) -> list[Path]:
    """The figures every noise(+label) family draws: one class per row for a labelled model,
    latent arithmetic for an unlabelled one."""
    sampler, z = ctx.sampler, ctx.inputs["z"]
    if sampler.label_kind is not None:
        return [class_grid(sampler.net, sampler.num_classes, z[:COLUMNS], ctx.out / "classes.png")]
    return []


def arithmetic_figure(ctx) -> list[Path]:
    if ctx.sampler.label_kind is not None:
        return []
    figure = arithmetic(ctx.sampler.net, ctx.params, ctx.cfg, ctx.root, ctx.inputs["z"],
                        ctx.samples, ctx.out / "arithmetic.png")  # fmt: skip
    return [figure] if figure else []
