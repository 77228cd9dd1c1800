"""Dirac-GAN (Mescheder, Geiger & Nowozin 2018): analytic vector fields against torch.autograd,
Jacobian eigenvalues against Lemmas 2.2 / 3.2 / 3.3, and the qualitative dynamics."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from torch.nn.functional import softplus

from genlab.toys import TOYS
from genlab.toys.dirac import (
    SCHEMES,
    DiracConfig,
    Method,
    build_methods,
    numeric_jacobian,
    run,
    simulate,
    update_jacobian,
)

GAMMA, TARGET, SIGMA = 0.7, 0.4, 0.8
CFG = DiracConfig(gp_gamma=GAMMA, gp_target=TARGET, noise_std=SIGMA, r1_gammas=(0.3, 1.0))
METHODS = {m.name: m for m in build_methods(CFG)}
NODES, WEIGHTS = (torch.from_numpy(a) for a in np.polynomial.hermite_e.hermegauss(64))
WEIGHTS = WEIGHTS / WEIGHTS.sum()  # E g(eps) ~ sum_i w_i g(z_i) for eps ~ N(0, 1)


def f(t):
    """The GAN's f(t) = -log(1 + exp(-t)) (softplus: stable, and fast unlike logsigmoid here)."""
    return -softplus(-t)


def grad_sq(psi, x):
    """|d D_psi / dx|^2 at x for D_psi(x) = psi * x, by autograd (create_graph for d/dpsi)."""
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(psi * x, x, create_graph=True)
    return g**2


def losses(name, theta, psi):
    """(generator loss G minimises, objective D maximises) for Eq. 1 on the Dirac-GAN."""
    zero = torch.zeros((), dtype=torch.float64)
    gan = f(psi * theta) + f(-psi * zero)
    if name == "gan":
        return gan, gan
    if name == "nsgan":
        return -f(-psi * theta), gan
    if name == "wgan":
        return psi * theta, psi * theta
    if name == "wgan_gp":
        penalty = GAMMA / 2 * (grad_sq(psi, theta).sqrt() - TARGET) ** 2
        return psi * theta, psi * theta - penalty
    if name.startswith("r1_gamma="):
        gamma = float(name.split("=")[1])
        return gan, gan - gamma / 2 * grad_sq(psi, zero)  # R1: on real data x = 0
    if name == "instance_noise":
        z = SIGMA * NODES
        noisy = (WEIGHTS * (f(psi * (theta + z)) + f(-psi * z))).sum()
        return noisy, noisy
    raise KeyError(name)


def autograd_field(name, theta, psi):
    th = torch.tensor(theta, dtype=torch.float64, requires_grad=True)
    ps = torch.tensor(psi, dtype=torch.float64, requires_grad=True)
    gen, disc = losses(name, th, ps)
    (g_theta,) = torch.autograd.grad(gen, th, retain_graph=True)
    (d_psi,) = torch.autograd.grad(disc, ps)
    return -g_theta.item(), d_psi.item()  # v = (-dL_G/dtheta, dL_D/dpsi), Eq. 2


@pytest.mark.parametrize("name", sorted(METHODS))
def test_analytic_field_equals_autograd(name):
    points = np.random.default_rng(0).uniform(-2.5, 2.5, size=(20, 2))
    for theta, psi in points:
        v = METHODS[name].field(theta, psi)
        assert tuple(map(float, v)) == pytest.approx(
            autograd_field(name, theta, psi), rel=1e-9, abs=1e-12
        )


def test_instance_noise_quadrature_matches_monte_carlo():
    gen = torch.Generator().manual_seed(0)
    eps, eps_real = SIGMA * torch.randn(2, 400_000, generator=gen, dtype=torch.float64)
    theta, psi = 0.7, -1.3
    fake = theta + eps
    mc = (
        (-psi * torch.sigmoid(-psi * fake)).mean().item(),
        (fake * torch.sigmoid(-psi * fake) - eps_real * torch.sigmoid(psi * eps_real))
        .mean()
        .item(),
    )
    quad = tuple(map(float, METHODS["instance_noise"].field(theta, psi)))
    assert quad == pytest.approx(mc, abs=5e-3)


def eigs(m: Method) -> list[complex]:
    return sorted(np.linalg.eigvals(numeric_jacobian(m.field, m.jac_point)), key=lambda e: e.imag)


def test_jacobian_eigenvalues_match_closed_forms():
    quarter = complex(1 / 4)
    expected = {
        "gan": [-0.5j, 0.5j],  # +-f'(0) i, Lemma 2.2
        "nsgan": [-0.5j, 0.5j],
        "wgan": [-1j, 1j],
        "wgan_gp": [-GAMMA / 2 - np.sqrt(complex(GAMMA**2 / 4 - 1)), -GAMMA / 2 + np.sqrt(
            complex(GAMMA**2 / 4 - 1))],  # one-sided (psi > 0) Jacobian
        "instance_noise": [-(SIGMA**2) / 4 - np.sqrt(complex(SIGMA**4 / 16 - quarter)),
                           -(SIGMA**2) / 4 + np.sqrt(complex(SIGMA**4 / 16 - quarter))],
        "r1_gamma=0.3": [-0.15 - 1j * math.sqrt(0.25 - 0.0225), -0.15 + 1j * math.sqrt(0.2275)],
        "r1_gamma=1": [-0.5, -0.5],  # -gamma/2 +- sqrt(gamma^2/4 - 1/4): a double root
    }  # fmt: skip
    for name, want in expected.items():
        got = eigs(METHODS[name])
        assert got == pytest.approx(want, abs=1e-4), name
        closed = sorted(METHODS[name].eig_closed_form, key=lambda e: e.imag)
        assert closed == pytest.approx(want, abs=1e-12), name


def test_jacobian_matches_autograd_jacobian_at_equilibrium():
    origin = torch.zeros(2, dtype=torch.float64)
    for name in ("gan", "nsgan", "instance_noise", "r1_gamma=0.3"):

        def field(x, name=name):
            gen, disc = losses(name, x[0], x[1])
            (g_theta,) = torch.autograd.grad(gen, x, create_graph=True)
            (d_psi,) = torch.autograd.grad(disc, x, create_graph=True)
            return torch.stack([-g_theta[0], d_psi[1]])

        want = torch.autograd.functional.jacobian(field, origin, create_graph=True)
        got = numeric_jacobian(METHODS[name].field, (0.0, 0.0))
        assert got == pytest.approx(want.detach().numpy(), abs=1e-8), name


def test_update_operator_spectra_lemmas_2_4_and_2_5():
    jac = numeric_jacobian(METHODS["gan"].field, (0.0, 0.0))
    h = 0.1
    sim = np.abs(np.linalg.eigvals(update_jacobian(jac, h, "simultaneous")))
    alt = np.abs(np.linalg.eigvals(update_jacobian(jac, h, "alternating")))
    assert sim == pytest.approx([math.sqrt(1 + h**2 / 4)] * 2)  # |1 +- h f'(0) i| > 1
    assert alt == pytest.approx([1.0, 1.0])  # on the unit circle


def distances(name: str, scheme: str, steps: int = CFG.steps) -> np.ndarray:
    path = simulate(METHODS[name], CFG.start, CFG.lr, steps, scheme)
    return np.hypot(path[:, 0], path[:, 1])


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("name", ["r1_gamma=1", "r1_gamma=0.3", "instance_noise"])
def test_regularised_training_converges(name, scheme):
    assert distances(name, scheme)[-1] < 1e-3


def test_unregularised_gan_does_not_converge():
    start = math.sqrt(2)
    sim = distances("gan", "simultaneous")
    assert sim[-1] > 2 * start and np.all(np.diff(sim) > 0)  # r^2 grows by h^2 |v|^2 per step
    alt = distances("gan", "alternating")
    assert alt[-1000:].min() > 0.95 * start  # stays on a near-closed orbit
    wgan = distances("wgan", "alternating")
    assert wgan[-1000:].min() > 0.5


def test_run_writes_deterministic_outputs(tmp_path):
    assert TOYS.get("dirac").config is DiracConfig
    cfg = DiracConfig(steps=200)
    df = run(cfg, 0, tmp_path / "a")
    run(cfg, 0, tmp_path / "b")
    names = [m.name for m in build_methods(cfg)]
    assert list(df["method"]) == [n for n in names for _ in SCHEMES]
    assert list(df["scheme"]) == list(SCHEMES) * len(names)
    assert len(df) == 2 * 7
    csv_a = (tmp_path / "a" / "dirac.csv").read_bytes()
    assert csv_a == (tmp_path / "b" / "dirac.csv").read_bytes()
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a" / "dirac.csv"), df)
    png_a = (tmp_path / "a" / "dirac.png").read_bytes()
    assert (
        png_a[:8] == b"\x89PNG\r\n\x1a\n" and png_a == (tmp_path / "b" / "dirac.png").read_bytes()
    )
    assert df["final_distance"].to_numpy() == pytest.approx(np.hypot(df.final_theta, df.final_psi))


def test_config_rejects_unknown_method():
    with pytest.raises(ValueError, match="unknown methods"):
        DiracConfig(methods=("gan", "lsgan"))
