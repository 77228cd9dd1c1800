"""VAE-only metrics: the test ELBO and the importance-sampled test NLL."""

from __future__ import annotations

import torch

from genlab.metrics.scores import Context, metric, test_batches
from genlab.objectives.vae import gaussian_kl, given, iwae_bound


@metric("elbo", requires=(), generic=False)
@torch.no_grad()
def test_elbo(ctx: Context) -> dict[str, float]:
    """Test-split ELBO in nats per example (one reparameterised sample, seeded)."""
    gen = torch.Generator().manual_seed(ctx.params.seed)
    vae, total = ctx.model.cpu(), 0.0
    for x, y in test_batches(ctx, 500, bool(vae.num_classes)):
        mu, logvar = vae.encode(x, **given(y))
        z = mu + torch.randn(mu.shape, generator=gen) * (0.5 * logvar).exp()
        decoded = vae.decode(z, **given(y))
        total += float((vae.log_likelihood(x, decoded) - gaussian_kl(mu, logvar)).sum())
    return {"test_elbo_nats": total / len(ctx.test["x"])}


@metric("iwae", requires=(), generic=False)
@torch.no_grad()
def test_nll(ctx: Context) -> dict[str, float]:
    """Test negative log-likelihood in nats per example, importance-sampled with k =
    ``evaluate.iwae_samples`` (minus the IWAE bound of Burda et al. 2016; an upper bound on the
    true NLL that tightens with k)."""
    k = ctx.params.evaluate.iwae_samples
    gen = torch.Generator().manual_seed(ctx.params.seed)
    vae = ctx.model.cpu()
    batches = test_batches(ctx, 64, bool(vae.num_classes))
    bound = torch.cat([iwae_bound(vae, x, k, gen, y) for x, y in batches])
    return {"test_nll_nats": -float(bound.mean()), "iwae_samples": k}
