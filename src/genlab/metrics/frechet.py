"""Frechet distance between Gaussians fitted to features (FID; Heusel et al. 2017, eq. 6)."""

from __future__ import annotations

import torch
from torch import Tensor


def _f64(x: Tensor) -> Tensor:
    return torch.as_tensor(x).detach().to(device="cpu", dtype=torch.float64)


def _psd_sqrt(s: Tensor) -> Tensor:
    """Symmetric square root of a PSD matrix via eigh (negative eigenvalues clamped to 0)."""
    w, v = torch.linalg.eigh((s + s.T) / 2)
    return (v * w.clamp_min(0).sqrt()) @ v.T


def trace_sqrt_product(sigma1: Tensor, sigma2: Tensor) -> float:
    """Tr((S1 S2)^{1/2}) = Tr((S1^{1/2} S2 S1^{1/2})^{1/2}); the latter is symmetric PSD."""
    r1 = _psd_sqrt(_f64(sigma1))
    m = r1 @ _f64(sigma2) @ r1
    eig = torch.linalg.eigvalsh((m + m.T) / 2)
    return float(eig.clamp_min(0).sqrt().sum())


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^{1/2}) in float64 (Heusel et al. 2017).

    Rounding can make the result a tiny negative number; it is clamped to 0.
    """
    mu1, mu2, sigma1, sigma2 = _f64(mu1), _f64(mu2), _f64(sigma1), _f64(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"shape mismatch: {mu1.shape}/{mu2.shape}, {sigma1.shape}/{sigma2.shape}")
    mean_term = float(((mu1 - mu2) ** 2).sum())
    trace_term = float(torch.trace(sigma1) + torch.trace(sigma2))
    fd = mean_term + trace_term - 2.0 * trace_sqrt_product(sigma1, sigma2)
    return max(fd, 0.0)


def gaussian_stats(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean (D,) and unbiased covariance (D, D) in float64 of features (N, D), N >= 2."""
    f = _f64(features)
    if f.ndim != 2 or f.shape[0] < 2:
        raise ValueError(f"need features of shape (N>=2, D), got {tuple(f.shape)}")
    return f.mean(dim=0), torch.atleast_2d(torch.cov(f.T, correction=1))


def frechet_from_features(f1: Tensor, f2: Tensor) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (N1, D) and (N2, D)."""
    return frechet_distance(*gaussian_stats(f1), *gaussian_stats(f2))
