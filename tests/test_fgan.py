"""f-GAN (Nowozin et al. 2016): conjugates, activations, variational bound, loss and toy."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import scipy.special
import torch
from scipy.integrate import quad
from scipy.optimize import minimize_scalar
from scipy.stats import norm
from torch.testing import assert_close

from genlab.objectives import DIVERGENCES, GAN_LOSSES
from genlab.objectives.fgan import lambertw
from genlab.registry import UnknownNameError
from genlab.toys import TOYS
from genlab.toys.fgan_gaussian import FGanGaussianConfig, f_divergence

D64 = torch.float64

# Points inside dom f* where the supremum over u > 0 is attained at a moderate u. Pearson's
# f* = t^2/4 + t (Table 2) is the conjugate of (u - 1)^2 on all of R; restricted to u >= 0 the
# supremum differs for t < -2, so only t > -2 is compared.
T_POINTS = {
    "kl": [-3.0, -1.0, 0.0, 1.0, 2.5],
    "reverse_kl": [-5.0, -2.0, -1.0, -0.3, -0.1],
    "pearson": [-1.9, -1.0, 0.0, 1.0, 3.0],
    "neyman": [-3.0, -1.0, 0.0, 0.5, 0.9],
    "squared_hellinger": [-3.0, -1.0, 0.0, 0.5, 0.8],
    "jeffrey": [-3.0, -1.0, 0.0, 1.0, 3.0],
    "jensen_shannon": [-3.0, -1.0, 0.0, 0.4, 0.6],
    "gan": [-3.0, -1.0, -0.5, -0.2, -0.1],
    "total_variation": [-0.5, -0.25, 0.0, 0.3, 0.5],
}


def f_numpy(name: str, u: np.ndarray | float) -> np.ndarray:
    return DIVERGENCES.get(name).f(torch.as_tensor(u, dtype=D64)).numpy()


def numerical_conjugate(name: str, t: float) -> float:
    """sup_{u > 0} (u t - f(u)): a fine grid in log u, refined by bounded Brent."""
    s = np.linspace(-20, 20, 400_001)  # contains s = 0, i.e. u = 1 (TV's kink)
    values = np.exp(s) * t - f_numpy(name, np.exp(s))
    best = s[np.argmax(values)]
    res = minimize_scalar(
        lambda x: -(math.exp(x) * t - float(f_numpy(name, math.exp(x)))),
        bounds=(best - 1e-3, best + 1e-3),
        method="bounded",
        options={"xatol": 1e-12},
    )
    return max(float(values.max()), -float(res.fun))


def test_every_table_row_is_registered():
    assert set(DIVERGENCES) == set(T_POINTS)


@pytest.mark.parametrize("name", sorted(T_POINTS))
def test_conjugate_is_the_supremum(name):
    div = DIVERGENCES.get(name)
    t = torch.tensor(T_POINTS[name], dtype=D64)
    assert div.domain.contains(t).all()
    expected = torch.tensor([numerical_conjugate(name, float(ti)) for ti in t], dtype=D64)
    assert_close(div.f_star(t), expected, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("name", sorted(T_POINTS))
def test_activation_maps_into_the_domain_and_composes_stably(name):
    div = DIVERGENCES.get(name)
    v = torch.linspace(-20, 20, 4001, dtype=D64)
    assert div.domain.contains(div.activation(v)).all()  # strict at open ends
    moderate = torch.linspace(-8, 8, 161, dtype=D64)
    assert_close(
        div.conjugate_of_activation(moderate),
        div.f_star(div.activation(moderate)),
        rtol=1e-9,
        atol=1e-9,
    )


def test_f_vanishes_at_one_except_gan():
    """f(1) = 0 makes D_f(P||P) = 0; the paper's GAN row has f(1) = -log 4 (2 D_JS - log 4)."""
    one = torch.tensor(1.0, dtype=D64)
    for name in DIVERGENCES:
        expected = -math.log(4.0) if name == "gan" else 0.0
        assert_close(DIVERGENCES.get(name).f(one), torch.tensor(expected, dtype=D64))


def test_lambertw_matches_scipy_with_its_derivative():
    x = torch.logspace(-30, 30, 601, dtype=D64, requires_grad=True)
    w = lambertw(x)
    assert_close(w.detach(), torch.from_numpy(scipy.special.lambertw(x.detach().numpy()).real))
    (grad,) = torch.autograd.grad(w.sum(), x)
    assert_close(grad, (w / (x * (1 + w))).detach())  # W'(x) = W / (x (1 + W))
    x32 = torch.tensor([1e-20, 0.5, 1.0, math.e, 1e20])
    assert_close(lambertw(x32), torch.from_numpy(scipy.special.lambertw(x32.numpy()).real).float())


# ------------------------------------------------------------------ the variational bound

DELTA = 0.7  # P = N(0, 1), Q = N(DELTA, 1): every moment of p/q is finite under P and Q
PHI = norm.cdf(DELTA / 2)
CLOSED_FORM = {
    "kl": DELTA**2 / 2,
    "reverse_kl": DELTA**2 / 2,
    "pearson": math.expm1(DELTA**2),
    "neyman": math.expm1(DELTA**2),
    "squared_hellinger": 2 * (1 - math.exp(-(DELTA**2) / 8)),
    "jeffrey": DELTA**2,
    "total_variation": 2 * PHI - 1,
}


def quadrature_divergence(name: str) -> float:
    def integrand(x: float) -> float:
        u = math.exp(-0.5 * x**2 + 0.5 * (x - DELTA) ** 2)  # p / q
        return norm.pdf(x, loc=DELTA) * float(f_numpy(name, u))

    return quad(integrand, -30, 30, limit=200, epsabs=1e-12, epsrel=1e-12)[0]


def optimal_t(name: str, x: torch.Tensor) -> torch.Tensor:
    """T*(x) = f'(p(x) / q(x)) (eq. 5), f' by autograd."""
    log_ratio = -0.5 * x**2 + 0.5 * (x - DELTA) ** 2
    u = log_ratio.exp().requires_grad_(True)
    (t,) = torch.autograd.grad(DIVERGENCES.get(name).f(u).sum(), u)
    return t


@pytest.mark.parametrize("name", sorted(T_POINTS))
def test_bound_at_the_optimal_t_is_the_divergence(name):
    exact = quadrature_divergence(name)
    if name in CLOSED_FORM:
        assert exact == pytest.approx(CLOSED_FORM[name], rel=1e-8)
    gen = torch.Generator().manual_seed(0)
    n = 200_000
    x_p = torch.randn(n, generator=gen, dtype=D64)
    x_q = DELTA + torch.randn(n, generator=gen, dtype=D64)
    f_star = DIVERGENCES.get(name).f_star
    on_p, on_q = optimal_t(name, x_p), f_star(optimal_t(name, x_q))
    estimate = (on_p.mean() - on_q.mean()).item()
    stderr = math.sqrt((on_p.var().item() + on_q.var().item()) / n)
    assert abs(estimate - exact) < 5 * stderr + 1e-12, (estimate, exact, stderr)


def test_kl_bound_for_unequal_variances():
    """KL(N(0,1) || N(0.5, 1.2^2)) in closed form, estimated with T* = 1 + log(p/q)."""
    m, s = 0.5, 1.2
    exact = math.log(s) + (1 + m**2) / (2 * s**2) - 0.5
    gen = torch.Generator().manual_seed(1)
    n = 200_000
    x_p = torch.randn(n, generator=gen, dtype=D64)
    x_q = m + s * torch.randn(n, generator=gen, dtype=D64)

    def t_star(x):
        return 1 + (-0.5 * x**2) - (-0.5 * ((x - m) / s) ** 2 - math.log(s))

    on_p, on_q = t_star(x_p), DIVERGENCES.get("kl").f_star(t_star(x_q))
    estimate = (on_p.mean() - on_q.mean()).item()
    stderr = math.sqrt((on_p.var().item() + on_q.var().item()) / n)
    assert abs(estimate - exact) < 5 * stderr


@pytest.mark.parametrize("name", ["kl", "jensen_shannon"])
def test_any_other_t_gives_a_lower_bound(name):
    """F(T) = int p T - q f*(T) by quadrature: maximal (= D_f) at T*, lower elsewhere."""
    x = torch.linspace(-30, 30, 60_001, dtype=D64)
    p = torch.from_numpy(norm.pdf(x.numpy()))
    q = torch.from_numpy(norm.pdf(x.numpy(), loc=DELTA))
    div = DIVERGENCES.get(name)
    t_star = optimal_t(name, x)

    def bound(t):
        return torch.trapezoid(p * t - q * div.f_star(t), x).item()

    exact = quadrature_divergence(name)
    assert bound(t_star) == pytest.approx(exact, abs=1e-9)
    wiggle = 0.1 * (1 + torch.sin(x))  # >= 0: T* - wiggle stays inside dom f*
    others = [t_star - 0.2, 0.9 * t_star, t_star - wiggle, torch.zeros_like(x)]
    if name == "kl":
        others.append(t_star + 0.2)
    for t in others:
        assert bound(t) < exact - 1e-4


# ------------------------------------------------------------------ the loss

V_REAL = torch.tensor([0.5, -1.0, 2.0, 0.0], dtype=D64)
V_FAKE = torch.tensor([0.0, 1.0, -2.0, 0.3], dtype=D64)


def test_discriminator_loss_is_minus_the_bound_on_hand_picked_logits():
    kl = GAN_LOSSES.build("fgan", SimpleNamespace(divergence="kl"))
    loss, stats = kl.discriminator(V_REAL, V_FAKE)
    # g = v, f*(t) = exp(t - 1): F = (0.5 - 1 + 2 + 0) / 4 - (e^-1 + e^0 + e^-3 + e^-0.7) / 4
    expected = 1.5 / 4 - (math.exp(-1) + 1 + math.exp(-3) + math.exp(-0.7)) / 4
    assert_close(loss, torch.tensor(-expected, dtype=D64))
    assert stats["divergence_estimate"] == pytest.approx(expected)
    g_loss, _ = kl.generator(V_FAKE)
    assert_close(g_loss, -V_FAKE.mean())

    rkl = GAN_LOSSES.build("fgan", SimpleNamespace(divergence="reverse_kl"))
    loss, _ = rkl.discriminator(V_REAL, V_FAKE)
    # g = -exp(-v), f*(g(v)) = -1 - log(exp(-v)) = v - 1
    expected = -torch.exp(-V_REAL).mean() - (V_FAKE - 1).mean()
    assert_close(loss, -expected)
    g_loss, _ = rkl.generator(V_FAKE)
    assert_close(g_loss, torch.exp(-V_FAKE).mean())


def test_gan_divergence_is_the_gan_value_function():
    """With f = GAN's row, -F is the minimax discriminator loss and the default divergence."""
    loss, _ = GAN_LOSSES.build("fgan").discriminator(V_REAL, V_FAKE)
    d_x, d_gz = torch.sigmoid(V_REAL), torch.sigmoid(V_FAKE)
    assert_close(loss, -(torch.log(d_x).mean() + torch.log(1 - d_gz).mean()))
    g_loss, _ = GAN_LOSSES.build("fgan").generator(V_FAKE)
    assert_close(g_loss, -torch.log(d_gz).mean())  # the non-saturating generator


@pytest.mark.parametrize("name", sorted(T_POINTS))
def test_loss_is_finite_for_extreme_logits(name):
    loss = GAN_LOSSES.build("fgan", SimpleNamespace(divergence=name))
    v_real = torch.tensor([-50.0, 0.0, 50.0], requires_grad=True)
    v_fake = torch.tensor([50.0, 0.0, -50.0], requires_grad=True)
    d_loss, stats = loss.discriminator(v_real, v_fake)
    g_loss, _ = loss.generator(v_fake)
    grads = torch.autograd.grad(d_loss + g_loss, [v_real, v_fake])
    assert torch.isfinite(d_loss) and torch.isfinite(g_loss)
    assert all(torch.isfinite(g).all() for g in grads)
    assert math.isfinite(stats["divergence_estimate"])


def test_unknown_divergence_is_rejected():
    with pytest.raises(UnknownNameError, match="unknown divergence 'chi'; allowed: .*pearson"):
        GAN_LOSSES.build("fgan", SimpleNamespace(divergence="chi"))


# ------------------------------------------------------------------ the toy

TINY = FGanGaussianConfig(steps=40, batch_size=64, hidden=16, eval_samples=512)
NAMES = list(TINY.divergences)


@pytest.fixture(scope="module")
def tiny_table(tmp_path_factory):
    out = tmp_path_factory.mktemp("fgan")
    return TOYS.get("fgan-gaussian").run(TINY, 0, out), out


def test_toy_writes_the_train_by_test_table(tiny_table):
    df, out = tiny_table
    assert list(df.columns) == [
        "train", "kind", "mu", "sigma", *NAMES, "fgan_bound", "own_is_column_min"
    ]  # fmt: skip
    assert list(df.train) == NAMES + [f"ideal {n}" for n in NAMES]
    assert list(df.kind) == ["fgan"] * 5 + ["ideal"] * 5
    assert (df[NAMES].to_numpy() > 0).all() and (df.sigma > 0).all()
    pd.testing.assert_frame_equal(pd.read_csv(out / "fgan-gaussian.csv"), df)
    assert (out / "fgan-gaussian.png").read_bytes()[:4] == b"\x89PNG"


def test_toy_is_seeded(tiny_table, tmp_path):
    df, _ = tiny_table
    again = TOYS.get("fgan-gaussian").run(TINY, 0, tmp_path)
    pd.testing.assert_frame_equal(df, again, check_exact=True)
    other = TOYS.get("fgan-gaussian").run(TINY.model_copy(update={"steps": 2}), 1, tmp_path)
    assert not np.array_equal(other.mu[:5], df.mu[:5])


def test_each_ideal_fit_minimises_its_own_divergence(tiny_table):
    df, _ = tiny_table
    ideal = df[df.kind == "ideal"]
    for name in NAMES:
        own = ideal.loc[ideal.train == f"ideal {name}", name].item()
        assert own <= ideal[name].min() + 1e-9
    assert ideal.own_is_column_min.all()


def test_ideal_kl_fit_is_moment_matching(tiny_table):
    """argmin_Q KL(P||Q) over Gaussians matches P's mean and variance."""
    df, _ = tiny_table
    w, m, s = TINY.mixture()
    mean = w @ m
    row = df[df.train == "ideal kl"].iloc[0]
    assert row.mu == pytest.approx(mean, abs=1e-5)
    assert row.sigma == pytest.approx(math.sqrt(w @ (s**2 + m**2) - mean**2), abs=1e-5)


def test_quadrature_against_closed_forms():
    one = FGanGaussianConfig(weights=(1.0,), means=(0.0,), stds=(1.0,))
    m, s = 0.5, 1.2
    kl = math.log(s) + (1 + m**2) / (2 * s**2) - 0.5
    assert f_divergence(DIVERGENCES.get("kl"), one, m, s) == pytest.approx(kl, rel=1e-10)
    # Pearson int (p - q)^2 / q = int p^2 / q - 1 diverges once 2 sigma^2 <= 1
    assert f_divergence(DIVERGENCES.get("pearson"), one, 0.0, 0.6) == math.inf
    tv = 2 * norm.cdf(DELTA / 2) - 1  # |p - q| has a kink: the trapezoid rule is O(h^2) there
    assert f_divergence(DIVERGENCES.get("total_variation"), one, DELTA, 1.0) == pytest.approx(
        tv, rel=1e-3
    )
