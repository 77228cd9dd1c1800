"""Fitting one Gaussian to a Gaussian mixture: Nowozin, Cseke & Tomioka 2016 ("f-GAN"), sec. 4.1.

The true distribution P is a two-component 1-D Gaussian mixture and the model is the misspecified
Q_theta = N(mu, sigma^2), sampled as G_theta(z) = mu + sigma z, z ~ N(0, 1) (we learn mu and
log sigma). For each training divergence the variational function T = g_f(V) has the paper's
V: an MLP with two hidden layers of 64 tanh units. Training is the paper's single-step gradient
method (Algorithm 1): every iteration draws one minibatch from P and one from Q, takes ONE
backward pass of F(omega, theta) = E_P[g_f(V(x))] - E_Q[f*(g_f(V(x)))] (eq. 6), and moves V's
parameters omega up and theta = (mu, log sigma) down that same gradient (Adam here).

Every fitted Q is then scored by every test divergence D_f(P||Q) = int q f(p/q) dx, computed
"exactly" by a fine float64 trapezoid rule (``f_divergence``); this is the lecture's / paper's
train x test table of sec. 4.1. Beside each f-GAN fit we list the ideal fit
of the same family, argmin over (mu, log sigma) of the quadrature divergence
(scipy.optimize.minimize, Nelder-Mead from several starts). Model misspecification makes the
choice of divergence matter: mass-covering KL / Pearson fits are broad, reverse KL narrower.
``fgan_bound`` (f-GAN rows) is the final F on fresh samples, a lower estimate of the row's own
divergence; a large gap to the exact value means V never reached g_f^-1(T*). For Jeffrey
(g_f(v) = v) T* = log u + 1 - 1/u falls off like -q/p in Q's tails, which a tanh network
cannot follow, so the learned Q is broader than the ideal one.

The mixture: the paper's exact mixture parameters are not restated here (we could not retrieve
them), so the default is our choice, the clearly bimodal P = 0.5 N(0, 1) + 0.5 N(3, 0.5^2),
whose ideal-fit divergences have the same magnitudes as the paper's table. Divergences use the
paper's generators f (``genlab.objectives.fgan``), so the ``jensen_shannon`` column is
int q f(p/q) = 2 * D_JS (see that module) and ``pearson`` is int (p - q)^2 / q.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from pydantic import Field, field_validator, model_validator
from scipy.optimize import minimize
from scipy.special import logsumexp
from torch import nn

from genlab.io import atomic_path
from genlab.objectives.fgan import DIVERGENCES, Divergence
from genlab.toys.base import TOYS, Toy, ToyConfig

NAME = "fgan-gaussian"
LOG_RATIO_CLIP = 700.0  # |log p - log q| beyond this is clipped so p/q stays finite in float64
INFEASIBLE = 1e10  # stands in for an infinite divergence inside the ideal-fit optimiser


class FGanGaussianConfig(ToyConfig):
    """Training divergences (also the test columns), Algorithm 1's budget and the mixture P."""

    divergences: tuple[str, ...] = ("kl", "reverse_kl", "jensen_shannon", "jeffrey", "pearson")
    steps: int = Field(3000, gt=0, description="single-step gradient iterations per divergence")
    batch_size: int = Field(1024, gt=0, description="samples from P and from Q per step (paper)")
    lr: float = Field(2e-3, gt=0, description="Adam step size for V and for (mu, log sigma)")
    hidden: int = Field(64, gt=0, description="width of V's two tanh hidden layers (paper: 64)")
    weights: tuple[float, ...] = (0.5, 0.5)
    means: tuple[float, ...] = (0.0, 3.0)
    stds: tuple[float, ...] = (1.0, 0.5)
    init_mu: float = 0.0
    init_sigma: float = Field(1.0, gt=0)
    eval_samples: int = Field(65536, gt=0, description="fresh samples for the final bound F")

    @field_validator("divergences")
    @classmethod
    def _known(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if not v:
            raise ValueError("divergences must not be empty")
        for name in v:
            DIVERGENCES.get(name)  # raises UnknownNameError listing the valid names
        return v

    @model_validator(mode="after")
    def _mixture(self) -> FGanGaussianConfig:
        if not len(self.weights) == len(self.means) == len(self.stds) > 0:
            raise ValueError("weights, means and stds must have the same non-zero length")
        if min(self.weights) <= 0 or min(self.stds) <= 0:
            raise ValueError("mixture weights and stds must be positive")
        return self

    def mixture(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(normalised weights, means, stds) of P as float64 arrays."""
        w = np.asarray(self.weights, dtype=np.float64)
        return w / w.sum(), np.asarray(self.means, np.float64), np.asarray(self.stds, np.float64)


# --------------------------------------------------------------------------- exact divergences


def _log_normal(x: np.ndarray, mu: float, sigma: float) -> np.ndarray:
    return -0.5 * ((x - mu) / sigma) ** 2 - math.log(sigma) - 0.5 * math.log(2 * math.pi)


def log_mixture(cfg: FGanGaussianConfig, x: np.ndarray) -> np.ndarray:
    """log p(x) of the mixture P, by log-sum-exp over the components."""
    w, m, s = cfg.mixture()
    return logsumexp(
        [math.log(wi) + _log_normal(x, mi, si) for wi, mi, si in zip(w, m, s, strict=True)], 0
    )


def f_divergence(div: Divergence, cfg: FGanGaussianConfig, mu: float, sigma: float) -> float:
    """D_f(P||Q) = int q f(p/q) dx for Q = N(mu, sigma^2), float64 trapezoid rule (eq. 2).

    The grid spans 30 standard deviations (of the widest component or Q) beyond every mean, with
    spacing min(std) / 16: the trapezoid rule is spectrally accurate for these smooth, decaying
    integrands (total variation's kink at p = q costs O(spacing^2), about 1e-4 relative).
    Where p > q the integrand is evaluated as p * f(u) / u, so an underflowing q never meets an
    overflowing f(u). Returns inf if the integrand has not decayed at the ends
    (the integral diverges, e.g. Pearson when 2 sigma^2 <= a component's variance).
    """
    _, m, s = cfg.mixture()
    reach = 30 * max(s.max(), sigma)
    lo, hi = min(m.min(), mu) - reach, max(m.max(), mu) + reach
    n = int(math.ceil((hi - lo) / (min(s.min(), sigma) / 16))) + 1
    x = np.linspace(lo, hi, n)
    log_p, log_q = log_mixture(cfg, x), _log_normal(x, mu, sigma)
    u = torch.from_numpy(np.exp(np.clip(log_p - log_q, -LOG_RATIO_CLIP, LOG_RATIO_CLIP)))
    f_u = div.f(u).numpy()
    with np.errstate(over="ignore", invalid="ignore", under="ignore"):
        integrand = np.where(log_p > log_q, np.exp(log_p) * (f_u / u.numpy()), np.exp(log_q) * f_u)
    integrand = np.where(np.maximum(log_p, log_q) < -745.0, 0.0, integrand)  # both underflow
    if not np.isfinite(integrand).all() or max(abs(integrand[0]), abs(integrand[-1])) > 1e-12:
        return math.inf
    return float(np.trapezoid(integrand, x))


def ideal_fit(div: Divergence, cfg: FGanGaussianConfig) -> tuple[float, float]:
    """argmin over (mu, log sigma) of the quadrature D_f(P||N(mu, sigma^2)).

    Nelder-Mead from the moment-matched Gaussian and from every mixture component; the best
    optimum is returned as (mu, sigma).
    """
    w, m, s = cfg.mixture()
    mean = float(w @ m)
    std = math.sqrt(float(w @ (s**2 + m**2)) - mean**2)
    starts = [(mean, std), *zip(m.tolist(), s.tolist(), strict=True)]

    def objective(theta: np.ndarray) -> float:
        return min(f_divergence(div, cfg, float(theta[0]), math.exp(theta[1])), INFEASIBLE)

    best = None
    for mu0, sigma0 in starts:
        res = minimize(
            objective,
            np.array([mu0, math.log(sigma0)]),
            method="Nelder-Mead",
            options={"xatol": 1e-8, "fatol": 1e-12, "maxiter": 2000},
        )
        if best is None or res.fun < best.fun:
            best = res
    return float(best.x[0]), math.exp(float(best.x[1]))


# --------------------------------------------------------------------------- f-GAN training


def _sample_mixture(cfg: FGanGaussianConfig, n: int, gen: torch.Generator) -> torch.Tensor:
    w, m, s = (torch.as_tensor(a, dtype=torch.float32) for a in cfg.mixture())
    k = torch.multinomial(w, n, replacement=True, generator=gen)
    return (m[k] + s[k] * torch.randn(n, generator=gen)).unsqueeze(1)


def _variational_net(hidden: int, gen: torch.Generator) -> nn.Sequential:
    """V: 1 -> hidden -> hidden -> 1 with tanh (paper sec. 4.1), PyTorch's default init ranges
    drawn from ``gen`` so that the run is reproducible."""
    net = nn.Sequential(
        nn.Linear(1, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(), nn.Linear(hidden, 1)
    )
    with torch.no_grad():
        for layer in net[::2]:
            bound = 1.0 / math.sqrt(layer.in_features)
            layer.weight.uniform_(-bound, bound, generator=gen)
            layer.bias.uniform_(-bound, bound, generator=gen)
    return net


def train_fgan(cfg: FGanGaussianConfig, name: str, seed: int) -> tuple[float, float, float]:
    """Algorithm 1 (single-step gradient) for divergence ``name``: returns (mu, sigma, F), F the
    final bound of eq. 6 on ``eval_samples`` fresh samples (a lower estimate of D_f(P||Q))."""
    div = DIVERGENCES.get(name)
    gen = torch.Generator().manual_seed(seed)
    net = _variational_net(cfg.hidden, gen)
    mu = nn.Parameter(torch.tensor(cfg.init_mu))
    log_sigma = nn.Parameter(torch.tensor(math.log(cfg.init_sigma)))
    opt_v = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    opt_q = torch.optim.Adam([mu, log_sigma], lr=cfg.lr)
    for _ in range(cfg.steps):
        x_p = _sample_mixture(cfg, cfg.batch_size, gen)
        x_q = mu + log_sigma.exp() * torch.randn(cfg.batch_size, 1, generator=gen)
        bound = div.bound(net(x_p), net(x_q))
        opt_v.zero_grad(set_to_none=True)
        opt_q.zero_grad(set_to_none=True)
        (-bound).backward()  # one backward: grads of -F for V (ascent on F) ...
        for p in (mu, log_sigma):
            p.grad.neg_()  # ... and of +F for theta (descent on F), same minibatch
        opt_v.step()
        opt_q.step()
    with torch.no_grad():
        x_p = _sample_mixture(cfg, cfg.eval_samples, gen)
        x_q = mu + log_sigma.exp() * torch.randn(cfg.eval_samples, 1, generator=gen)
        final = div.bound(net(x_p), net(x_q)).item()
    return mu.item(), log_sigma.exp().item(), final


# --------------------------------------------------------------------------- the table


def _own_is_column_min(df: pd.DataFrame) -> list[bool]:
    """Per row: is its training divergence's value the smallest of that column among the rows
    of the same kind (f-GAN rows against f-GAN rows, ideal against ideal)?"""
    own = []
    for _, row in df.iterrows():
        column = df.loc[df["kind"] == row["kind"], row["train"]]
        own.append(bool(row[row["train"]] <= column.min()))
    return own


def run(cfg: FGanGaussianConfig, seed: int, out_dir: Path) -> pd.DataFrame:
    """Train x test table of exact divergences for the f-GAN fits and the ideal fits.

    Rows: one per training divergence (kind "fgan", with ``fgan_bound`` = final F) and one per
    "ideal <div>" (kind "ideal"); columns: train, kind, mu, sigma, one per test divergence,
    fgan_bound and own_is_column_min. Every f-GAN run uses ``seed`` (common random numbers).
    Writes ``<out_dir>/fgan-gaussian.{csv,png}``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is fastest and thread-count independent
    try:
        df = _table(cfg, seed)
    finally:
        torch.set_num_threads(threads)
    out_dir = Path(out_dir)
    with atomic_path(out_dir / f"{NAME}.csv", suffix=".csv") as tmp:
        df.to_csv(tmp, index=False)
    _plot(cfg, df, out_dir / f"{NAME}.png")
    return df


def _table(cfg: FGanGaussianConfig, seed: int) -> pd.DataFrame:
    names = list(cfg.divergences)
    rows = []
    for name in names:
        mu, sigma, bound = train_fgan(cfg, name, seed)
        rows.append({"train": name, "kind": "fgan", "mu": mu, "sigma": sigma, "fgan_bound": bound})
    for name in names:
        mu, sigma = ideal_fit(DIVERGENCES.get(name), cfg)
        rows.append({"train": name, "kind": "ideal", "mu": mu, "sigma": sigma})
    for row in rows:
        for test in names:
            row[test] = f_divergence(DIVERGENCES.get(test), cfg, row["mu"], row["sigma"])
    df = pd.DataFrame(rows, columns=["train", "kind", "mu", "sigma", *names, "fgan_bound"])
    df["own_is_column_min"] = _own_is_column_min(df)
    df.loc[df["kind"] == "ideal", "train"] = "ideal " + df["train"]
    return df


def _plot(cfg: FGanGaussianConfig, df: pd.DataFrame, png: Path) -> None:
    """The mixture density P and every fitted Gaussian: f-GAN solid, ideal fit dashed."""
    _, m, s = cfg.mixture()
    x = np.linspace(m.min() - 4 * s.max(), m.max() + 4 * s.max(), 800)
    fig = Figure(figsize=(8, 4.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.fill_between(x, np.exp(log_mixture(cfg, x)), color="0.85", label="P (mixture)")
    fgan = df[df["kind"] == "fgan"].reset_index(drop=True)
    ideal = df[df["kind"] == "ideal"].reset_index(drop=True)
    for i, row in fgan.iterrows():
        q = np.exp(_log_normal(x, row["mu"], row["sigma"]))
        ax.plot(x, q, color=f"C{i}", label=f"f-GAN {row['train']}")
    for i, row in ideal.iterrows():
        q = np.exp(_log_normal(x, row["mu"], row["sigma"]))
        ax.plot(x, q, "--", color=f"C{i}", lw=1, label=row["train"])
    ax.set(title="Gaussian fits to a mixture (f-GAN sec. 4.1)", xlabel="x", ylabel="density")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    with atomic_path(png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120)


TOYS.register(NAME)(Toy(FGanGaussianConfig, run))
