"""Objectives against their formulas, computed independently in float64."""

from __future__ import annotations

import math

import torch
from torch.testing import assert_close

from genlab.config import validate_params
from genlab.objectives import ELBO, GAN_LOSSES, gaussian_kl
from genlab.objectives.regularizers import GAN_REGULARIZERS
from genlab.objectives.vae import iwae_bound
from tests.conftest import tiny_params_dict

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
        assert_close(float(stats["d_real"]), d_x.mean().item(), rtol=1e-6, atol=1e-7)
        assert_close(float(stats["d_fake"]), d_gz.mean().item(), rtol=1e-6, atol=1e-7)


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
        assert_close(float(stats["kl"]), kl, rtol=1e-6, atol=1e-6)  # KL is computed in float32
        assert_close(float(stats["recon"]), recon, rtol=5e-3, atol=5e-3)
        assert_close(loss.item(), recon + beta * kl, rtol=5e-3, atol=5e-3)
        assert_close(float(stats["elbo"]), -(recon + kl), rtol=5e-3, atol=5e-3)


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
    penalty, _ = GAN_REGULARIZERS.build("r1").penalty(D, x, None)
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
    assert GAN_REGULARIZERS.build("r1").penalty(lambda v: flat(v).squeeze(1), x, None)[0] == 0


def test_wasserstein_hinge_and_least_squares_losses():
    r, f = LOGITS_REAL.double(), LOGITS_FAKE.double()
    w = GAN_LOSSES.build("wasserstein")
    loss_d, stats = w.discriminator(r, f)
    assert_close(loss_d, f.mean() - r.mean())
    assert_close(float(stats["wasserstein_estimate"]), (r.mean() - f.mean()).item())
    assert_close(w.generator(f)[0], -f.mean())

    h = GAN_LOSSES.build("hinge")
    expected = torch.clamp(1 - r, min=0).mean() + torch.clamp(1 + f, min=0).mean()
    assert_close(h.discriminator(r, f)[0], expected)
    assert_close(h.generator(f)[0], -f.mean())

    class Cfg:
        ls_targets = (-1.0, 1.0, 0.0)

    ls = GAN_LOSSES.build("least_squares", Cfg())
    assert_close(
        ls.discriminator(r, f)[0], 0.5 * ((r - 1) ** 2).mean() + 0.5 * ((f + 1) ** 2).mean()
    )
    assert_close(ls.generator(f)[0], 0.5 * (f**2).mean())
    default = GAN_LOSSES.build("least_squares")
    assert_close(default.generator(f)[0], 0.5 * ((f - 1) ** 2).mean())


def test_energy_loss_and_pulling_away_term():
    from genlab.objectives.gan import pulling_away

    class Cfg:
        margin, pull_away = 2.0, 0.5

    e = GAN_LOSSES.build("energy", Cfg())
    real, fake = torch.tensor([0.5, 1.0]), torch.tensor([0.5, 3.0])
    assert_close(e.discriminator(real, fake)[0], torch.tensor(0.75 + (1.5 + 0.0) / 2))
    s = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
    cos = [[1, 2**-0.5, 0], [2**-0.5, 1, 2**-0.5], [0, 2**-0.5, 1]]
    expected = sum(cos[i][j] ** 2 for i in range(3) for j in range(3) if i != j) / 6
    assert_close(pulling_away(s), torch.tensor(expected))


def per_sample_grad_norms(D, x):
    """Reference: one autograd call per sample."""
    norms = []
    for xi in x:
        xi = xi.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(D(xi[None]).sum(), xi)
        norms.append(g.norm())
    return torch.stack(norms)


def test_gradient_penalty_two_and_one_sided_against_reference():
    torch.manual_seed(0)
    D = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    D2 = lambda x: D(x).squeeze(1)  # noqa: E731
    gen = torch.Generator().manual_seed(3)
    real = torch.randn(6, 3, generator=gen, dtype=torch.float64)
    fake = torch.randn(6, 3, generator=gen, dtype=torch.float64) + 2

    class Cfg:
        one_sided = False

    gp, _ = GAN_REGULARIZERS.build("gradient_penalty", Cfg()).penalty(
        D2, real, fake, torch.Generator().manual_seed(7)
    )
    alpha = torch.rand(6, 1, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    norms = per_sample_grad_norms(D2, alpha * real + (1 - alpha) * fake)
    assert_close(gp, ((norms - 1) ** 2).mean())
    Cfg.one_sided = True
    gp1, _ = GAN_REGULARIZERS.build("gradient_penalty", Cfg()).penalty(
        D2, real, fake, torch.Generator().manual_seed(7)
    )
    assert_close(gp1, (torch.clamp(norms - 1, min=0) ** 2).mean())
    # a linear critic with ||w|| = 0.5: two-sided penalty (0.5 - 1)^2, one-sided exactly zero
    lin = torch.nn.Linear(3, 1, bias=False).double()
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.3, 0.4, 0.0]]))
    f = lambda x: lin(x).squeeze(1)  # noqa: E731
    assert GAN_REGULARIZERS.build("gradient_penalty", Cfg()).penalty(f, real, fake)[0] == 0
    Cfg.one_sided = False
    assert_close(GAN_REGULARIZERS.build("gradient_penalty", Cfg()).penalty(f, real, fake)[0],
                 torch.tensor(0.25, dtype=torch.float64))  # fmt: skip
    # r2 penalises the gradient at the fakes
    r2, _ = GAN_REGULARIZERS.build("r2").penalty(D2, real, fake)
    assert_close(r2, 0.5 * (per_sample_grad_norms(D2, fake) ** 2).mean())


def test_weight_clip_bounds_every_parameter():
    class Cfg:
        clip = 0.05

    D = torch.nn.Linear(4, 3)
    torch.nn.init.normal_(D.weight, std=1.0)
    GAN_REGULARIZERS.build("weight_clip", Cfg()).after_step(D)
    c = torch.tensor(0.05, dtype=torch.float32).item()  # 0.05 as a float32
    assert max(p.abs().max().item() for p in D.parameters()) <= c
    assert D.weight.abs().max().item() == c  # large weights sit on the boundary


def test_spectral_norm_divides_by_the_largest_singular_value():
    torch.manual_seed(0)
    D = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.LeakyReLU(0.2), torch.nn.Linear(7, 1))
    GAN_REGULARIZERS.build("spectral_norm").setup(D)
    for _ in range(100):  # power iteration runs once per training-mode forward
        D(torch.randn(4, 5))
    layer = D[0]
    original = layer.parametrizations.weight.original
    sigma = torch.linalg.svdvals(original)[0]
    assert_close(layer.weight, original / sigma, rtol=1e-4, atol=1e-5)
    assert_close(torch.linalg.svdvals(layer.weight)[0], torch.tensor(1.0), rtol=1e-4, atol=1e-5)


class LinearGaussian(torch.nn.Module):
    """p(z) = N(0, I), p(x | z) = N(z, I), so p(x) = N(0, 2I) and the posterior is
    N(x / 2, I / 2); the encoder returns ``q_mu_scale * x`` and ``q_logvar``."""

    def __init__(self, q_mu_scale: float, q_logvar: float) -> None:
        super().__init__()
        self.q_mu_scale, self.q_logvar = q_mu_scale, q_logvar

    def encode(self, x):
        return self.q_mu_scale * x, torch.full_like(x, self.q_logvar)

    def decode(self, z):
        return z

    def log_likelihood(self, x, decoded):
        return (-0.5 * (math.log(2 * math.pi) + (x - decoded) ** 2)).sum(-1)


def log_px(x):
    return (-0.5 * (math.log(2 * math.pi * 2) + x**2 / 2)).sum(-1)


def test_iwae_with_the_exact_posterior_is_log_px_for_every_k():
    x = torch.randn(20, 3, generator=torch.Generator().manual_seed(0))
    model = LinearGaussian(0.5, math.log(0.5))
    for k in (1, 7, 100):
        assert_close(iwae_bound(model, x, k, torch.Generator().manual_seed(k)), log_px(x))


def test_iwae_is_the_elbo_at_k1_and_tightens_towards_log_px_with_k():
    x = torch.randn(8, 2, generator=torch.Generator().manual_seed(1))
    m, logvar = 0.1, 0.0  # a poor q: N(0.1 x, I)
    model = LinearGaussian(m, logvar)
    # closed-form ELBO: E_q log N(x; z, I) - KL(q || N(0, I)), per dimension summed
    s2 = math.exp(logvar)
    elbo = (-0.5 * (math.log(2 * math.pi) + (x - m * x) ** 2 + s2)
            - 0.5 * (s2 + (m * x) ** 2 - 1 - logvar)).sum(-1)  # fmt: skip
    means = {}
    for k, repeats in ((1, 20000), (4, 5000), (64, 500), (4096, 10)):
        rows = x.repeat(repeats, 1)  # independent draws for every copy of every example
        bound = iwae_bound(model, rows, k, torch.Generator().manual_seed(k))
        means[k] = bound.view(repeats, len(x)).mean(0)
    # per-draw std of log w is below 3 here: 20000 draws put the mean within 0.1 (5 sigma)
    assert_close(means[1], elbo, atol=0.1, rtol=0)
    assert (means[4] > means[1]).all() and (means[64] > means[4]).all()
    assert (means[4] < log_px(x)).all()  # a lower bound ...
    assert_close(means[4096], log_px(x), atol=0.02, rtol=0)  # ... that reaches log p(x)


def test_iwae_on_the_conv_vae_at_k1_is_its_elbo():
    from genlab.nets import VAE_ARCHS

    meta = {"shape": [1, 8, 8], "kind": "image", "num_classes": 10}
    cfg = validate_params(tiny_params_dict()).variant("vae")
    vae = VAE_ARCHS.build("conv_vae", meta, cfg)["vae"].eval()
    x = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1
    one = torch.stack([iwae_bound(vae, x, 1, torch.Generator().manual_seed(r)) for r in range(50)])
    many = iwae_bound(vae, x, 256, torch.Generator().manual_seed(0))
    with torch.no_grad():
        mu, logvar = vae.encode(x)
        recon = torch.stack([vae.log_likelihood(x, vae.decode(
            mu + torch.randn(mu.shape, generator=torch.Generator().manual_seed(r))
            * (0.5 * logvar).exp())) for r in range(50)]).mean(0)  # fmt: skip
    elbo = recon - gaussian_kl(mu, logvar)
    assert_close(one.mean(0), elbo, atol=0.5, rtol=0.02)  # same estimator, other draws
    assert many.shape == (16,) and torch.isfinite(many).all()


def test_evaluate_reports_the_importance_sampled_test_nll_of_a_vae(tiny_project):
    from genlab.evaluate import evaluate_variant, fit_evaluator_stage
    from genlab.sample import sample_variant
    from genlab.train.loop import train_variant

    root, params = tiny_project
    fit_evaluator_stage(params, "digits", root)
    train_variant(params, "vae", root)
    sample_variant(params, "vae", root)
    metrics = evaluate_variant(params, "vae", root)
    assert metrics["iwae_samples"] == 16
    # -NLL estimate (IWAE, k = 16) lies above the one-sample ELBO estimate on the test split
    assert -metrics["test_nll_nats"] > metrics["test_elbo_nats"]
