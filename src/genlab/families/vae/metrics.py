"""VAE-only metrics: the test ELBO and the importance-sampled test NLL."""

from __future__ import annotations

import torch

from genlab.metrics.scores import Context, metric, test_batches
from genlab.objectives.vae import gaussian_kl, given, iwae_bound


@torch.no_grad()
def _elbo_per_example(ctx: Context) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(ctx.params.seed)
    vae, values = ctx.model.cpu(), []
    for x, y in test_batches(ctx, 500, bool(vae.num_classes)):
        mu, logvar = vae.encode(x, **given(y))
        z = mu + torch.randn(mu.shape, generator=gen) * (0.5 * logvar).exp()
        decoded = vae.decode(z, **given(y))
        values.append((vae.log_likelihood(x, decoded) - gaussian_kl(mu, logvar)).double())
    return {"test.elbo": torch.cat(values)}


@metric("elbo", requires=(), generic=False)
def test_elbo(ctx: Context) -> dict[str, float]:
    """Test-split ELBO in nats per example (one reparameterised sample, seeded)."""
    return {"test_elbo_nats": float(ctx.per_row("elbo", _elbo_per_example)["test.elbo"].mean())}


@torch.no_grad()
def _iwae_per_example(ctx: Context) -> dict[str, torch.Tensor]:
    k = ctx.params.evaluate.iwae_samples
    gen = torch.Generator().manual_seed(ctx.params.seed)
    vae = ctx.model.cpu()
    batches = test_batches(ctx, 64, bool(vae.num_classes))
    return {"test.bound": torch.cat([iwae_bound(vae, x, k, gen, y) for x, y in batches]).double()}


@metric("iwae", requires=(), generic=False, settings=("iwae_samples",))
def test_nll(ctx: Context) -> dict[str, float]:
    """Test negative log-likelihood in nats per example, importance-sampled with k =
    ``evaluate.iwae_samples`` (minus the IWAE bound of Burda et al. 2016; an upper bound on the
    true NLL that tightens with k)."""
    bound = ctx.per_row("iwae", _iwae_per_example)["test.bound"]
    return {"test_nll_nats": -float(bound.mean()), "iwae_samples": ctx.params.evaluate.iwae_samples}
