"""Objectives against their formulas, computed independently in float64."""

from __future__ import annotations

import math

import torch
from torch.testing import assert_close

from genlab.objectives import ELBO, GAN_LOSSES, gaussian_kl
from genlab.objectives.regularizers import GAN_REGULARIZERS

LOGITS_REAL = torch.tensor([2.0, -1.0, 0.5, 30.0])
LOGITS_FAKE = torch.tensor([-3.0, 0.0, 1.5, -40.0])


def probs(logits):
    return 1 / (1 + torch.exp(-logits.double()))


def test_discriminator_loss_is_minus_the_value_function():
    d_x, d_gz = probs(LOGITS_REAL), probs(LOGITS_FAKE)
    expected = -(torch.log(d_x).mean() + torch.log(1 - d_gz).mean())
    for name in ("minimax", "nonsaturating"):
        loss, stats = GAN_LOSSES.build(name).discriminator(LOGITS_REAL, LOGITS_FAKE)
        assert_close(loss.double(), expected, rtol=1e-6, atol=1e-6)
        assert_close(stats["d_real"], d_x.mean().item(), rtol=1e-6, atol=1e-7)
        assert_close(stats["d_fake"], d_gz.mean().item(), rtol=1e-6, atol=1e-7)


def test_generator_losses():
    d_gz = probs(LOGITS_FAKE)
    minimax, _ = GAN_LOSSES.build("minimax").generator(LOGITS_FAKE)
    assert_close(minimax.double(), torch.log(1 - d_gz).mean(), rtol=1e-6, atol=1e-6)
    ns, _ = GAN_LOSSES.build("nonsaturating").generator(LOGITS_FAKE)
    assert_close(ns.double(), -torch.log(d_gz).mean(), rtol=1e-6, atol=1e-6)


def test_minimax_saturates_where_nonsaturating_does_not():
    """When D confidently rejects fakes (D(G(z)) -> 0) the minimax gradient vanishes
    (d/dl log(1 - sigmoid(l)) = -sigmoid(l)); the non-saturating one tends to -1."""
    logit = torch.tensor([-10.0], requires_grad=True)
    (g_mm,) = torch.autograd.grad(GAN_LOSSES.build("minimax").generator(logit)[0], logit)
    (g_ns,) = torch.autograd.grad(GAN_LOSSES.build("nonsaturating").generator(logit)[0], logit)
    assert_close(g_mm, -torch.sigmoid(torch.tensor([-10.0])))
    assert abs(g_mm.item()) < 1e-4
    assert_close(g_ns, torch.sigmoid(torch.tensor([-10.0])) - 1)


def test_losses_are_finite_for_saturated_logits():
    for name in GAN_LOSSES:
        loss = GAN_LOSSES.build(name)
        d, _ = loss.discriminator(torch.tensor([1e4, -1e4]), torch.tensor([1e4, -1e4]))
        g, _ = loss.generator(torch.tensor([1e4, -1e4]))
        assert torch.isfinite(d) and torch.isfinite(g)


def test_gaussian_kl_matches_monte_carlo():
    gen = torch.Generator().manual_seed(0)
    mu = torch.tensor([[0.5, -1.0, 0.0]], dtype=torch.float64)
    logvar = torch.tensor([[0.0, -1.0, 0.7]], dtype=torch.float64)
    std = (0.5 * logvar).exp()
    z = mu + std * torch.randn(400_000, 3, generator=gen, dtype=torch.float64)
    log_q = torch.distributions.Normal(mu, std).log_prob(z).sum(1)
    log_p = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1)
    mc = (log_q - log_p).mean()
    assert_close(gaussian_kl(mu, logvar)[0], mc, rtol=0.01, atol=0.005)
    exact = 0.5 * (std**2 + mu**2 - 1 - logvar).sum()
    assert_close(gaussian_kl(mu, logvar)[0], exact)
    assert gaussian_kl(torch.zeros(2, 4), torch.zeros(2, 4)).abs().max() == 0


class LinearGaussianVAE(torch.nn.Module):
    """q(z|x) = N(x, 1) elementwise, p(x|z) = N(z, 1): a case with a known log-likelihood."""

    def encode(self, x):
        return x, torch.zeros_like(x)

    def decode(self, z):
        return z

    def log_likelihood(self, x, decoded):
        return torch.distributions.Normal(decoded, 1.0).log_prob(x).sum(1)


def test_elbo_matches_its_expectation():
    """E_q[log p(x|z)] = -d/2 log(2 pi) - d/2 (since x - z ~ N(0, 1)); KL = sum x^2 / 2."""
    x = torch.tensor([[0.3, -1.2]], dtype=torch.float64).repeat(200_000, 1)
    gen = torch.Generator().manual_seed(1)
    for beta in (1.0, 4.0):
        loss, stats = ELBO(beta)(LinearGaussianVAE(), x, generator=gen)
        recon = math.log(2 * math.pi) + 1.0
        kl = 0.5 * (0.3**2 + 1.2**2)
        assert_close(stats["kl"], kl, rtol=1e-6, atol=1e-6)  # KL is computed in float32
        assert_close(stats["recon"], recon, rtol=5e-3, atol=5e-3)
        assert_close(loss.item(), recon + beta * kl, rtol=5e-3, atol=5e-3)
        assert_close(stats["elbo"], -(recon + kl), rtol=5e-3, atol=5e-3)


def test_r1_is_half_the_squared_gradient_norm():
    """For D(x) = x^T A x, grad D = (A + A^T) x; R1 = 1/2 E ||(A + A^T) x||^2."""
    gen = torch.Generator().manual_seed(0)
    A = torch.randn(3, 3, generator=gen, dtype=torch.float64)

    class Quadratic(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.A = torch.nn.Parameter(A.clone())

        def forward(self, x):
            return torch.einsum("bi,ij,bj->b", x, self.A, x)

    D = Quadratic()
    x = torch.randn(5, 3, generator=gen, dtype=torch.float64)
    penalty, _ = GAN_REGULARIZERS.build("r1")(D, x, None)
    expected = 0.5 * ((A + A.T) @ x.T).pow(2).sum(0).mean()
    assert_close(penalty, expected)
    # the penalty is differentiable w.r.t. D's parameters (double backward)
    (grad,) = torch.autograd.grad(penalty, D.A)
    A_ = A.clone().requires_grad_(True)
    (ref,) = torch.autograd.grad(0.5 * ((A_ + A_.T) @ x.T).pow(2).sum(0).mean(), A_)
    assert_close(grad, ref)
    # and zero for a constant discriminator
    flat = torch.nn.Linear(3, 1).double()
    torch.nn.init.zeros_(flat.weight)
    assert GAN_REGULARIZERS.build("r1")(lambda v: flat(v).squeeze(1), x, None)[0] == 0
