"""VQ-VAE-only metrics."""

from __future__ import annotations

import math

import torch

from genlab.metrics.scores import Context, metric, test_batches


@metric("vq", requires=("image",), generic=False)
@torch.no_grad()
def vq_statistics(ctx: Context) -> dict[str, float]:
    """VQ-VAE on the test split: reconstruction MSE per pixel through the codebook, codes in use,
    and the prior's negative log-likelihood of the test code grids in bits per code (given the
    class when the prior is conditional)."""
    vqvae = ctx.model.cpu()
    mse, bits, used, n = 0.0, 0.0, set(), len(ctx.test["x"])
    for x, y in test_batches(ctx, 256, bool(vqvae.num_classes)):
        idx = vqvae.encode_indices(x)
        mse += float((vqvae.decode_indices(idx) - x).pow(2).flatten(1).mean(1).sum())
        bits += float(vqvae.prior_nll(idx, y).sum()) / idx[0].numel() / math.log(2)
        used.update(idx.unique().tolist())
    return {"test_recon_mse": mse / n, "test_prior_bits_per_code": bits / n,
            "codes_used": len(used)}  # fmt: skip
