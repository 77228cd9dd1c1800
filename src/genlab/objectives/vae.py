"""VAE objectives: the evidence lower bound with a beta weight (Kingma & Welling 2014;
Higgins et al. 2017 for beta)."""

from __future__ import annotations

import torch
from torch import Tensor

from genlab.registry import Registry

VAE_LOSSES: Registry = Registry("loss")


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) per sample, closed form summed over dimensions:
    -1/2 sum_j (1 + log sigma_j^2 - mu_j^2 - sigma_j^2) (Kingma & Welling 2014, appendix B)."""
    return -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).flatten(1).sum(1)


@VAE_LOSSES.register("elbo")
class ELBO:
    """Negative ELBO per sample, averaged over the batch: -E_q[log p(x|z)] + beta * KL(q || p).

    The model supplies ``encode(x) -> (mu, logvar)``, ``decode(z)`` and
    ``log_likelihood(x, decoded) -> per-sample nats``; z is drawn by reparameterisation.
    """

    def __init__(self, beta: float = 1.0) -> None:
        self.beta = beta

    def __call__(
        self, model: torch.nn.Module, x: Tensor, generator: torch.Generator | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        mu, logvar = model.encode(x)
        eps = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)
        z = mu + eps * (0.5 * logvar).exp()
        recon = -model.log_likelihood(x, model.decode(z))
        kl = gaussian_kl(mu.float(), logvar.float())
        loss = (recon + self.beta * kl).mean()
        stats = {
            "recon": recon.mean().item(),
            "kl": kl.mean().item(),
            "elbo": -(recon + kl).mean().item(),
        }
        return loss, stats
