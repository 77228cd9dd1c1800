"""Mode metrics for 2-D mixtures (VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al. 2018)."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def mode_metrics(
    samples: Tensor, centers: Tensor, std: float, *, min_count: int | None = None
) -> dict:
    """Modes captured, % high-quality samples and reverse KL to uniform over modes.

    A sample is high quality if within 3 * std of its nearest centre; a mode is captured if it
    gets >= min_count of them (default max(1, round(0.008 * N)), PacGAN's 20 of 2500).
    mode_kl = KL(p_modes || uniform) = sum_i p_i log(p_i M) over the high-quality histogram; with
    no high-quality samples it is log(M), the value for all mass on one mode (the maximum).
    """
    x = torch.as_tensor(samples).detach().cpu().double()
    c = torch.as_tensor(centers).detach().cpu().double()
    n, m = x.shape[0], c.shape[0]
    if min_count is None:
        min_count = max(1, round(0.008 * n))
    dist, nearest = torch.cdist(x, c).min(dim=1)
    hq = dist <= 3.0 * std
    counts = torch.bincount(nearest[hq], minlength=m).double()
    total = counts.sum()
    if total > 0:
        p = counts[counts > 0] / total
        mode_kl = float((p * (p * m).log()).sum())
    else:
        mode_kl = math.log(m)
    return {
        "modes_captured": int((counts >= min_count).sum()),
        "high_quality_pct": 100.0 * float(hq.double().mean()) if n else 0.0,
        "mode_kl": mode_kl,
    }
