"""VAE objectives: the evidence lower bound with a beta weight (Kingma & Welling 2014;
Higgins et al. 2017 for beta) and the importance-weighted bound (Burda et al. 2016)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genlab.registry import Registry

VAE_LOSSES: Registry = Registry("loss")


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) per sample, closed form summed over dimensions:
    -1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2) (Kingma & Welling 2014, appendix B)."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).flatten(1).sum(1)


def given(y: Tensor | None) -> dict[str, Tensor]:
    """The label keyword of a conditional VAE's encode/decode (nothing for a plain VAE)."""
    return {} if y is None else {"y": y}


@VAE_LOSSES.register("elbo")
class ELBO:
    """Negative ELBO per sample, averaged over the batch: -E_q[log p(x|z)] + beta * KL(q || p).

    The model supplies ``encode(x) -> (mu, logvar)``, ``decode(z)`` and
    ``log_likelihood(x, decoded) -> per-sample nats``; z is drawn by reparameterisation.
    """

    def __init__(self, beta: float = 1.0) -> None:
        self.beta = beta

    def __call__(
        self,
        model: torch.nn.Module,
        x: Tensor,
        generator: torch.Generator | None = None,
        y: Tensor | None = None,  # labels of a conditional VAE: the bound of log p(x | y)
    ) -> tuple[Tensor, dict[str, float]]:
        mu, logvar = model.encode(x, **given(y))
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + eps * (0.5 * logvar).exp()
        recon = -model.log_likelihood(x, model.decode(z, **given(y)))
        kl = gaussian_kl(mu.float(), logvar.float())
        loss = (recon + self.beta * kl).mean()
        stats = {
            "recon": recon.mean().detach(),
            "kl": kl.mean().detach(),
            "elbo": -(recon + kl).mean().detach(),
        }
        return loss, stats


def diagonal_gaussian_log_density(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last dimension."""
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mu).pow(2) / logvar.exp()).sum(-1)


@torch.no_grad()
def iwae_bound(
    model: torch.nn.Module,  # encode(x) -> (mu, logvar), decode(z), log_likelihood(x, decoded)
    x: Tensor,  # a batch of data
    k: int,  # importance samples per example
    generator: torch.Generator | None = None,
    y: Tensor | None = None,  # labels of a conditional VAE: then the bound is on log p(x | y)
) -> Tensor:
    """The importance-weighted bound per example (Burda et al. 2016, eq. 8):
    log (1/k) sum_i p(x, z_i) / q(z_i | x), z_i ~ q(z | x). k = 1 is the ELBO's one-sample
    estimate; its expectation grows with k towards log p(x) (their theorem 1), so -bound with a
    large k estimates the test negative log-likelihood."""
    mu, logvar = (t.float() for t in model.encode(x, **given(y)))
    eps = torch.randn((k, *mu.shape), generator=generator, device=mu.device)
    z = mu + eps * (0.5 * logvar).exp()  # (k, batch, latent)
    log_q = diagonal_gaussian_log_density(z, mu, logvar)
    log_prior = diagonal_gaussian_log_density(z, torch.zeros_like(z), torch.zeros_like(z))
    labels = None if y is None else y.unsqueeze(0).expand(k, -1).flatten(0, 1)
    decoded = model.decode(z.flatten(0, 1), **given(labels))
    repeated = x.unsqueeze(0).expand(k, *x.shape).flatten(0, 1)
    log_lik = model.log_likelihood(repeated, decoded).float().view(k, -1)
    return torch.logsumexp(log_lik + log_prior - log_q, dim=0) - math.log(k)
