"""Learning parallel lines: Arjovsky, Chintala & Bottou 2017, "Wasserstein GAN", Example 1.

Real data P0 is the law of (0, Z) and the model Ptheta the law of (theta, Z), Z ~ U[0, 1]:
two parallel vertical segments at horizontal distance |theta|. Example 1 gives in closed form

    W(P0, Ptheta)  = |theta|                                 (EM distance, Eq. 1)
    JS(P0, Ptheta) = log 2 if theta != 0, else 0
    KL(P0||Ptheta) = KL(Ptheta||P0) = +inf if theta != 0, else 0
    delta(P0, Ptheta) = 1 if theta != 0, else 0              (total variation)

so only the EM distance is continuous in theta and gives a usable gradient (their Figure 1).

For each theta we also *estimate* W and JS from fresh samples with a trained network:

* a WGAN critic f maximising E_P0[f(x)] - E_Ptheta[f(x)] over (approximately) 1-Lipschitz f:
  the Kantorovich-Rubinstein dual (Eq. 2), trained as in Eq. 3. The Lipschitz constraint is
  the two-sided gradient penalty of Gulrajani et al. 2017 (WGAN-GP, their Eq. 3, lambda = 10).
  Being soft, it lets f = -a * x1 trade slope for penalty, a = 1 + |theta| / (2 lambda), so
  the estimate is |theta| + theta^2 / (2 lambda): +0.05 at |theta| = 1. Optionally also a
  weight-clipped critic (WGAN Algorithm 1) which, as their Section 3 says, only gives K * W
  for an unknown K set by the clip value and the architecture (K ~ 0.003 for c = 0.01 here).
* a GAN discriminator D trained with binary cross-entropy, i.e. maximising
  V(D) = E_P0[log D(x)] + E_Ptheta[log(1 - D(x))]. Since max_D V = -log 4 + 2 JS
  (Goodfellow et al. 2014, Theorem 1), JS ~= log 2 + V(D) / 2, the lower bound of JS that
  WGAN's Section 4.1 plots (their Figure 4). It saturates at log 2 for every theta != 0.

and the gradient of each estimate w.r.t. theta, by autograd through the samples (theta, z)
with the trained network held fixed (WGAN Theorem 3: grad W = -E_z[grad_theta f(theta, z)]).
The critic's tends to sign(theta) (at theta = 0, W is not differentiable and it is an
arbitrary value in [-1, 1]); the saturated discriminator's is ~0, which is the point.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from pydantic import Field, field_validator
from torch import nn
from torch.nn.functional import softplus

from genlab.io import atomic_path
from genlab.toys.base import TOYS, Toy, ToyConfig

NAME = "parallel-lines"
LOG2 = math.log(2.0)


class ParallelLinesConfig(ToyConfig):
    """Theta grid and the (small, CPU) training budget of each critic / discriminator."""

    thetas: tuple[float, ...] = tuple(i / 10 for i in range(-10, 11))  # includes 0 exactly
    n_samples: int = Field(8192, gt=0, description="fresh samples per distribution to evaluate")
    critic_steps: int = Field(400, gt=0, description="Adam steps per network and theta")
    hidden: int = Field(64, gt=0, description="width of the two hidden layers")
    lr: float = Field(2e-3, gt=0)
    gp_weight: float = Field(10.0, ge=0, description="WGAN-GP lambda")
    batch_size: int = Field(256, gt=0)
    clip: float | None = Field(None, gt=0, description="also train a weight-clipped critic")

    @field_validator("thetas")
    @classmethod
    def _non_empty(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if not v:
            raise ValueError("thetas must not be empty")
        return v


def exact(theta: float) -> dict[str, float]:
    """Closed-form distances of Example 1 (W1, JS, KL either way, total variation)."""
    apart = theta != 0.0
    return {
        "w1_exact": abs(theta),
        "js_exact": LOG2 if apart else 0.0,
        "kl_exact": math.inf if apart else 0.0,
        "tv_exact": 1.0 if apart else 0.0,
    }


def _samples(theta: float | torch.Tensor, n: int, gen: torch.Generator) -> torch.Tensor:
    """n points of Ptheta = law of (theta, Z), Z ~ U[0, 1]; differentiable in a tensor theta."""
    z = torch.rand(n, generator=gen)
    return torch.stack([torch.as_tensor(theta).expand(n), z], dim=1)


def _mlp(hidden: int, gen: torch.Generator) -> nn.Sequential:
    """2 -> hidden -> hidden -> 1 LeakyReLU MLP, initialised from ``gen`` (PyTorch's ranges).

    Leaky, because a plain-ReLU critic can die under the gradient penalty: a constant f has
    penalty lambda but zero parameter gradient, so training stalls at an estimate of 0.
    """
    act = nn.LeakyReLU(0.2)
    net = nn.Sequential(
        nn.Linear(2, hidden), act, nn.Linear(hidden, hidden), act, nn.Linear(hidden, 1)
    )
    with torch.no_grad():
        for layer in net[::2]:
            bound = 1.0 / math.sqrt(layer.in_features)
            layer.weight.uniform_(-bound, bound, generator=gen)
            layer.bias.uniform_(-bound, bound, generator=gen)
        net[-1].weight.zero_()  # f starts constant: no seed starts with the wrong slope
    return net


def _gradient_penalty(
    f: nn.Module, real: torch.Tensor, fake: torch.Tensor, gen: torch.Generator
) -> torch.Tensor:
    """Gulrajani et al. 2017, Eq. 3: E[(||grad f(x_hat)|| - 1)^2] on random interpolates."""
    eps = torch.rand(real.shape[0], 1, generator=gen)
    x_hat = (eps * real + (1 - eps) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(f(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.norm(dim=1) - 1) ** 2).mean()


def _train(cfg: ParallelLinesConfig, theta: float, kind: str, seed: int) -> nn.Module:
    """Fit a critic ("gp" or "clip") or a BCE discriminator ("gan") to P0 vs Ptheta.

    Every step draws fresh batches, so the network cannot memorise a finite sample.
    """
    gen = torch.Generator().manual_seed(seed)
    net = _mlp(cfg.hidden, gen)
    if kind == "clip":  # WGAN Algorithm 1 uses RMSProp (no momentum) with clipping
        opt: torch.optim.Optimizer = torch.optim.RMSprop(net.parameters(), lr=cfg.lr)
    else:
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.5, 0.9))
    bce = nn.BCEWithLogitsLoss()
    for _ in range(cfg.critic_steps):
        real = _samples(0.0, cfg.batch_size, gen)
        fake = _samples(theta, cfg.batch_size, gen)
        out_real, out_fake = net(real), net(fake)
        if kind == "gan":  # minimising BCE == maximising V(D), D = sigmoid(net)
            loss = bce(out_real, torch.ones_like(out_real))
            loss = loss + bce(out_fake, torch.zeros_like(out_fake))
        else:  # maximise E_P0 f - E_Ptheta f (WGAN Eq. 3)
            loss = out_fake.mean() - out_real.mean()
            if kind == "gp":
                loss = loss + cfg.gp_weight * _gradient_penalty(net, real, fake, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if kind == "clip":
            with torch.no_grad():
                for p in net.parameters():
                    p.clamp_(-cfg.clip, cfg.clip)
    return net.requires_grad_(False)


def _estimate(
    cfg: ParallelLinesConfig, net: nn.Module, theta: float, kind: str, seed: int
) -> tuple[float, float]:
    """(estimate, d estimate / d theta) on fresh samples, by autograd through (theta, z)."""
    gen = torch.Generator().manual_seed(seed + 1)  # a different stream from training
    th = torch.tensor(theta, requires_grad=True)
    out_real = net(_samples(0.0, cfg.n_samples, gen))
    out_fake = net(_samples(th, cfg.n_samples, gen))
    if kind == "gan":  # log 2 + V(D)/2 with log D = -softplus(-a), log(1 - D) = -softplus(a)
        value = LOG2 - 0.5 * (softplus(-out_real).mean() + softplus(out_fake).mean())
    else:
        value = out_real.mean() - out_fake.mean()
    (grad,) = torch.autograd.grad(value, th)
    return value.item(), grad.item()


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch single-threaded: these nets are tiny and intra-op threads only contend (the
    default settings took ~10x longer with 2 threads on a busy 2-core machine). Restores the
    previous thread count."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def run(cfg: ParallelLinesConfig, seed: int, out_dir: Path) -> pd.DataFrame:
    """One row per theta: exact distances, trained estimates and their theta-gradients.

    Each theta reuses the same seed (common random numbers), so the curves are smooth in theta
    and a row depends only on (theta, cfg, seed). Writes ``<out_dir>/parallel-lines.{csv,png}``.
    """
    kinds = {"w1_critic": "gp", "js_discriminator": "gan"}
    if cfg.clip is not None:
        kinds["w1_critic_clip"] = "clip"
    rows = []
    with _one_thread():
        for theta in cfg.thetas:
            row: dict[str, float] = {"theta": float(theta), **exact(float(theta))}
            for column, kind in kinds.items():
                net = _train(cfg, float(theta), kind, seed)
                row[column], row[f"{column}_grad"] = _estimate(cfg, net, float(theta), kind, seed)
            rows.append(row)
    df = pd.DataFrame(rows)
    out_dir = Path(out_dir)
    with atomic_path(out_dir / f"{NAME}.csv", suffix=".csv") as tmp:
        df.to_csv(tmp, index=False)
    _plot(df, out_dir / f"{NAME}.png")
    return df


def _plot(df: pd.DataFrame, png: Path) -> None:
    """WGAN Figure 1 with estimates: W1 vs theta (left), JS vs theta (right)."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax_w, ax_js = fig.subplots(1, 2, sharex=True)
    theta = df["theta"]
    ax_w.plot(theta, df["w1_exact"], "k-", label=r"exact $W_1 = |\theta|$")
    ax_w.plot(theta, df["w1_critic"], "o", label="WGAN-GP critic")
    ax_w.set(title=r"Earth-Mover $W(P_0, P_\theta)$", xlabel=r"$\theta$")
    if "w1_critic_clip" in df:  # K * W with an unknown K: its own axis
        ax_k = ax_w.twinx()
        ax_k.plot(theta, df["w1_critic_clip"], "s", color="C2", ms=4)
        ax_k.set_ylabel("weight-clipped critic (K W, own scale)", color="C2")
    lo, hi = theta.min(), theta.max()
    ax_js.hlines([LOG2, LOG2], [lo, 0.0], [0.0, hi], colors="k", label="exact JS")
    ax_js.plot([0.0], [LOG2], "ko", mfc="white")  # the jump at theta = 0
    ax_js.plot([0.0], [0.0], "ko")
    ax_js.plot(theta, df["js_discriminator"], "o", color="C3", label="GAN discriminator")
    ax_js.set(title=r"Jensen-Shannon $JS(P_0, P_\theta)$", xlabel=r"$\theta$", ylim=(-0.05, 0.8))
    ax_js.text(
        0.5, 0.35, r"$KL(P_0\|P_\theta) = KL(P_\theta\|P_0) = +\infty$ for $\theta \neq 0$",
        transform=ax_js.transAxes, ha="center",
    )  # fmt: skip
    for ax in (ax_w, ax_js):
        ax.legend(loc="lower left", fontsize=8)
        ax.grid(alpha=0.3)
    with atomic_path(png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=120)


TOYS.register(NAME)(Toy(ParallelLinesConfig, run))
