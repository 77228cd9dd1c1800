"""Metrics of image-to-image translation (pix2pix, CycleGAN, SRGAN, SPADE), listed by those
families: row by row against the paired target (PSNR and SSIM from scikit-image, L1), the
evaluator's class of each output against its source's class, and the cycle reconstruction
error. The distribution metrics (Frechet distance, KID, precision/recall) are the generic ones,
on the outputs against the target domain's test split (``genlab.evaluate``).

The per-row values are computed once on the scored outputs; a bootstrap view resamples them
with the outputs (``Context.source`` rows follow the samples).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from genlab.metrics.scores import UNIT, Context, metric

DATA_RANGE = 2.0  # images live in [-1, 1]


def bicubic(x: torch.Tensor, size: int) -> torch.Tensor:
    """Bicubic upsampling to ``size`` (align_corners False), clamped to [-1, 1]: the
    super-resolution baseline scored like a model."""
    up = F.interpolate(x.float(), size=(size, size), mode="bicubic", align_corners=False)
    return up.clamp(-1, 1)


def psnr(output: torch.Tensor, target: torch.Tensor) -> float:
    """Peak signal-to-noise ratio in dB of one image against its target, over all channels and
    pixels of [-1, 1] images (data range 2), without border crop (skimage)."""
    from skimage.metrics import peak_signal_noise_ratio

    t, o = target.double().numpy(), output.double().clamp(-1, 1).numpy()
    return float(peak_signal_noise_ratio(t, o, data_range=DATA_RANGE))


def ssim(output: torch.Tensor, target: torch.Tensor) -> float:
    """Structural similarity (Wang et al. 2004; skimage's 7 x 7 uniform window) of one (C, H, W)
    image against its target, averaged over channels."""
    from skimage.metrics import structural_similarity

    t = np.moveaxis(target.double().numpy(), 0, -1)
    o = np.moveaxis(output.double().clamp(-1, 1).numpy(), 0, -1)
    return float(structural_similarity(t, o, data_range=DATA_RANGE, channel_axis=-1))


def _paired_rows(ctx: Context) -> dict[str, torch.Tensor]:
    """PSNR, SSIM and mean absolute error of every output against its own target."""
    outputs, targets = ctx.samples, ctx.source["target"]
    values = [(psnr(o, t), ssim(o, t), float((o.clamp(-1, 1) - t).abs().mean()))
              for o, t in zip(outputs, targets, strict=True)]  # fmt: skip
    psnrs, ssims, l1s = (torch.tensor(v, dtype=torch.float64) for v in zip(*values, strict=True))
    return {"samples.psnr": psnrs, "samples.ssim": ssims, "samples.l1": l1s}


RANGES = {"ssim": (-1.0, 1.0), "class_preservation": UNIT, "l1": (0.0, DATA_RANGE)}


@metric("translation", requires=("image",), generic=False, ranges=RANGES)
def _translation(ctx: Context) -> dict[str, float]:
    """Paired outputs: mean PSNR (dB), SSIM and L1 against their targets. Outputs whose source
    has a class: ``class_preservation``, the share the evaluator assigns to that class (for an
    unpaired model the source's domain class, never shown to it). Unpaired models: ``cycle_l1``,
    mean |F(G(a)) - a|."""
    source = ctx.source or {}
    out: dict[str, float] = {}
    if "target" in source:
        rows = ctx.per_row("translation", _paired_rows)
        out.update({k: float(rows[f"samples.{k}"].mean()) for k in ("psnr", "ssim", "l1")})
    if "labels" in source and ctx.evaluator is not None:
        out["class_preservation"] = float((ctx.predictions() == source["labels"]).double().mean())
    if "cycle_l1" in source:
        out["cycle_l1"] = float(source["cycle_l1"].double().mean())
    return out
