"""Class coverage of generated samples, judged by a classifier (cf. Santurkar et al. 2018)."""

from __future__ import annotations

import torch
from torch import Tensor

EPS = 1e-6
"""Replaces empty bins of the real histogram (only where p_samples > 0) so the KL stays finite."""


def class_coverage(pred_labels: Tensor, real_labels: Tensor, num_classes: int) -> dict:
    """Distinct predicted classes and KL(p_samples || p_real) of class histograms, in nats.

    Bins with p_samples = 0 contribute 0; real bins that are empty are set to EPS (no
    renormalisation), so a sample class never seen in the real data costs p * log(p / 1e-6).
    """
    pred = torch.as_tensor(pred_labels).detach().cpu().long().flatten()
    real = torch.as_tensor(real_labels).detach().cpu().long().flatten()
    p = torch.bincount(pred, minlength=num_classes).double()
    q = torch.bincount(real, minlength=num_classes).double()
    if p.numel() > num_classes or q.numel() > num_classes:
        raise ValueError(f"labels must lie in [0, {num_classes})")
    p, q = p / p.sum(), q / q.sum()
    q = torch.where(q > 0, q, torch.full_like(q, EPS))
    mask = p > 0
    kl = (p[mask] * (p[mask] / q[mask]).log()).sum()
    return {"classes_covered": int(mask.sum()), "class_kl": float(kl)}
