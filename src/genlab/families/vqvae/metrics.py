"""VQ-VAE-only metrics."""

from __future__ import annotations

import math

import torch

from genlab.metrics.scores import Context, metric, test_batches


@torch.no_grad()
def _vq_per_example(ctx: Context) -> dict[str, torch.Tensor]:
    vqvae = ctx.model.cpu()
    mse, bits, codes = [], [], []
    for x, y in test_batches(ctx, 256, bool(vqvae.num_classes)):
        idx = vqvae.encode_indices(x)
        mse.append((vqvae.decode_indices(idx) - x).pow(2).flatten(1).mean(1).double())
        bits.append(vqvae.prior_nll(idx, y).double() / idx[0].numel() / math.log(2))
        codes.append(idx.flatten(1))
    return {
        "test.mse": torch.cat(mse),
        "test.bits": torch.cat(bits),
        "test.codes": torch.cat(codes),
    }


@metric("vq", requires=("image",), generic=False)
def vq_statistics(ctx: Context) -> dict[str, float]:
    """VQ-VAE on the test split: reconstruction MSE per pixel through the codebook, codes in use,
    and the prior's negative log-likelihood of the test code grids in bits per code (given the
    class when the prior is conditional)."""
    v = ctx.per_row("vq", _vq_per_example)
    return {"test_recon_mse": float(v["test.mse"].mean()), "test_prior_bits_per_code":
            float(v["test.bits"].mean()), "codes_used": len(v["test.codes"].unique())}  # fmt: skip
