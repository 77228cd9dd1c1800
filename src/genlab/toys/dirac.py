"""The Dirac-GAN of Mescheder, Geiger & Nowozin (2018), "Which Training Methods for GANs do
actually Converge?" (ICML; arXiv:1801.04406; equation numbers below follow arXiv v4).

Data p_D = delta_0, generator p_theta = delta_theta, linear discriminator D_psi(x) = psi * x
(Definition 2.1). The GAN objective (1), L = E_{p_theta}[f(D_psi(x))] + E_{p_D}[f(-D_psi(x))],
becomes L(theta, psi) = f(psi * theta) + f(0) (Eq. 6) with f(t) = -log(1 + exp(-t)) for the GAN
and f(t) = t for the WGAN. Training follows the gradient vector field (Eq. 2)

    v(theta, psi) = (-dL/dtheta, dL/dpsi)  (GAN: (-psi f'(psi theta), theta f'(psi theta)), Eq. 7)

with simultaneous steps F_h = id + h v (Eq. 3) or alternating steps (generator first, then the
discriminator). Every field here is analytic (instance noise: an exact expectation evaluated by
Gauss-Hermite quadrature), so the toy is deterministic and the seed is unused. The unique
equilibrium is (0, 0) except for WGAN-GP (see ``_wgan_gp``). Near it, local convergence is read
off the eigenvalues of the Jacobian J of v (Lemmas 2.2, 3.2, 3.3) and of the update operators
I + hJ (simultaneous, Lemma 2.4) and (I + h P_psi J)^d (I + h P_theta J) (alternating,
Lemma 2.5; P_theta, P_psi project on one coordinate, d = discriminator steps per generator step).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from pydantic import Field, PositiveFloat, field_validator
from scipy.special import expit

from genlab.io import atomic_path, write_text
from genlab.toys.base import TOYS, Toy, ToyConfig

NAME = "dirac"
METHODS = ("gan", "nsgan", "wgan", "wgan_gp", "instance_noise", "r1")
SCHEMES = ("simultaneous", "alternating")
FP0, FPP0 = 0.5, -0.25  # f'(0) and f''(0) for the GAN's f(t) = -log(1 + exp(-t))

Vec = float | np.ndarray
VectorField = Callable[[Vec, Vec], tuple[Vec, Vec]]


class DiracConfig(ToyConfig):
    """Step size h = ``lr`` for both players, ``steps`` updates from ``start`` = (theta, psi).

    ``d_steps`` discriminator steps follow each generator step in the alternating scheme;
    ``clip`` is the WGAN bound c on |psi|; WGAN-GP adds gp_gamma / 2 * (|psi| - gp_target)^2 to
    the critic loss (Gulrajani et al.'s lambda (|grad D| - 1)^2 is gamma = 2 lambda, target 1;
    target 0 would turn it into a zero-centred penalty);
    ``noise_std`` is the instance-noise sigma, integrated with ``noise_nodes`` Gauss-Hermite
    nodes; ``r1_gammas`` gives one R1 row per gamma; converged means distance to (0, 0) < tol.
    """

    lr: float = Field(0.1, gt=0)
    steps: int = Field(3000, ge=1)
    start: tuple[float, float] = (1.0, 1.0)
    d_steps: int = Field(1, ge=1)
    clip: float = Field(1.0, gt=0)
    gp_gamma: float = Field(1.0, gt=0)
    gp_target: float = Field(1.0, ge=0)
    noise_std: float = Field(1.0, gt=0)
    noise_nodes: int = Field(64, ge=2)
    r1_gammas: tuple[PositiveFloat, ...] = (0.3, 1.0)
    tol: float = Field(1e-3, gt=0)
    methods: tuple[str, ...] = METHODS

    @field_validator("methods")
    @classmethod
    def _known_methods(cls, methods: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(methods) - set(METHODS))
        if unknown:
            raise ValueError(f"unknown methods {unknown}; allowed: {', '.join(METHODS)}")
        return methods


@dataclass(frozen=True)
class Method:
    """A gradient vector field v (Eq. 2), its closed-form Jacobian eigenvalues at the equilibrium
    and where to linearise (off (0, 0) only for WGAN-GP, whose field jumps at psi = 0)."""

    name: str
    field: VectorField
    eig_closed_form: tuple[complex, complex]
    note: str
    clip: float | None = None  # WGAN: project psi onto [-clip, clip] after every step
    jac_point: tuple[float, float] = (0.0, 0.0)


def fprime(t: Vec) -> Vec:
    """f'(t) = 1 / (1 + e^t) for the GAN's f(t) = -log(1 + e^{-t}); f'(0) = 1/2."""
    return expit(-t)


def _pair(center: float, disc: float) -> tuple[complex, complex]:
    """center +- sqrt(disc), complex when disc < 0."""
    root = complex(math.sqrt(disc), 0.0) if disc >= 0 else complex(0.0, math.sqrt(-disc))
    return center + root, center - root


def _gan(theta: Vec, psi: Vec) -> tuple[Vec, Vec]:
    """Eq. 7: v = (-psi f'(psi theta), theta f'(psi theta))."""
    s = fprime(psi * theta)
    return -psi * s, theta * s


def _nsgan(theta: Vec, psi: Vec) -> tuple[Vec, Vec]:
    """Non-saturating generator: theta ascends f(-psi theta), so v1 = -psi f'(-psi theta)."""
    return -psi * fprime(-psi * theta), theta * fprime(psi * theta)


def _wgan(theta: Vec, psi: Vec) -> tuple[Vec, Vec]:
    """f(t) = t: v = (-psi, theta), a pure rotation; the clip of psi is applied by the step."""
    return -psi, theta


def _wgan_gp(gamma: float, target: float) -> VectorField:
    """dL/dpsi of psi theta - gamma/2 (|psi| - g0)^2 (grad_x D = psi everywhere).

    sign(psi) makes v discontinuous at psi = 0: v2 -> theta +- gamma g0 as psi -> 0+-. (0, 0) is
    stationary only with sign(0) = 0, and there the critic sits at a local *minimum* of its
    objective; at theta = 0 its best response is psi = +-g0, where the generator's gradient is
    -+g0 != 0, so no Nash equilibrium exists for g0 > 0. For psi > 0 (psi < 0) the field is
    affine with Jacobian [[0, -1], [1, -gamma]] and a stable focus at (-gamma g0, 0) (resp.
    (+gamma g0, 0)), outside its own half-plane: trajectories hop between the half-planes.
    """

    def field(theta: Vec, psi: Vec) -> tuple[Vec, Vec]:
        return -psi, theta - gamma * (np.abs(psi) - target) * np.sign(psi)

    return field


def _r1(gamma: float) -> VectorField:
    """R1 = gamma/2 E_{p_D}|grad_x D|^2 = gamma/2 psi^2 (Sec. 3.3; R2 is the same here):
    v = (-psi f'(psi theta), theta f'(psi theta) - gamma psi)."""

    def field(theta: Vec, psi: Vec) -> tuple[Vec, Vec]:
        s = fprime(psi * theta)
        return -psi * s, theta * s - gamma * psi

    return field


def _instance_noise(sigma: float, nodes: int) -> VectorField:
    """Instance noise (Sec. 3.2): both samples get N(0, sigma^2) noise, so with eps, eps' ~ N(0, 1)

        L = E f(psi (theta + sigma eps)) + E f(-psi sigma eps')
        v1 = -psi E f'(psi (theta + sigma eps))
        v2 = E (theta + sigma eps) f'(psi (theta + sigma eps)) - E sigma eps' f'(-psi sigma eps'),

    the expectations by Gauss-Hermite quadrature (analytic integrand: exponentially accurate).
    At (0, 0), J = [[0, -f'(0)], [f'(0), 2 sigma^2 f''(0)]] (Lemma 3.2).
    """
    z, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / w.sum()

    def field(theta: Vec, psi: Vec) -> tuple[Vec, Vec]:
        ps = np.asarray(psi, dtype=float)[..., None]
        fake = np.asarray(theta, dtype=float)[..., None] + sigma * z
        real = sigma * z
        v1 = -(ps * fprime(ps * fake)) @ w
        v2 = (fake * fprime(ps * fake) - real * fprime(-ps * real)) @ w
        return v1, v2

    return field


NOTES = {
    "gan": "isolated equilibrium; eigenvalues +-f'(0)i on the imaginary axis (Lemma 2.2): simGD "
    "spirals out (Lemma 2.4), altGD circles (Lemma 2.5)",
    "nsgan": "same Jacobian as gan at (0, 0), so the linearisation decides nothing; any "
    "convergence comes from higher-order terms",
    "wgan": "f(t) = t, psi clipped to [-c, c]; (0, 0) is interior, J = [[0, -1], [1, 0]], "
    "eigenvalues +-i; G's gradient -psi vanishes only at psi = 0 (Sec. 3.1)",
    "wgan_gp": "v jumps at psi = 0 (sign psi): J undefined at (0, 0), which is no Nash "
    "equilibrium for g0 > 0; eigenvalues of the one-sided J (psi != 0), whose stable foci "
    "(-+gamma g0, 0) lie outside their half-planes (Sec. 3.1)",
    "instance_noise": "eigenvalues f''(0) sigma^2 +- sqrt(f''(0)^2 sigma^4 - f'(0)^2) "
    "(Lemma 3.2); expectations by Gauss-Hermite quadrature",
    "r1": "R1 = gamma/2 psi^2; eigenvalues -gamma/2 +- sqrt(gamma^2/4 - f'(0)^2) (Lemma 3.3)",
}


def build_methods(cfg: DiracConfig) -> list[Method]:
    """The configured methods in order; ``r1`` expands to one Method per gamma."""
    gp, sigma = cfg.gp_gamma, cfg.noise_std
    catalogue = {
        "gan": [Method("gan", _gan, _pair(0.0, -(FP0**2)), NOTES["gan"])],
        "nsgan": [Method("nsgan", _nsgan, _pair(0.0, -(FP0**2)), NOTES["nsgan"])],
        "wgan": [Method("wgan", _wgan, _pair(0.0, -1.0), NOTES["wgan"], clip=cfg.clip)],
        "wgan_gp": [
            Method(
                "wgan_gp",
                _wgan_gp(gp, cfg.gp_target),
                _pair(-gp / 2, gp**2 / 4 - 1.0),
                NOTES["wgan_gp"],
                jac_point=(0.0, 1e-3),  # just above the jump; v is affine for psi > 0
            )
        ],
        "instance_noise": [
            Method(
                "instance_noise",
                _instance_noise(sigma, cfg.noise_nodes),
                _pair(FPP0 * sigma**2, FPP0**2 * sigma**4 - FP0**2),
                NOTES["instance_noise"],
            )
        ],
        "r1": [
            Method(f"r1_gamma={g:g}", _r1(g), _pair(-g / 2, g**2 / 4 - FP0**2), NOTES["r1"])
            for g in cfg.r1_gammas
        ],
    }
    return [m for name in cfg.methods for m in catalogue[name]]


def _project(psi: float, clip: float | None) -> float:
    return psi if clip is None else min(max(psi, -clip), clip)


def simulate(
    method: Method, start: tuple[float, float], lr: float, steps: int, scheme: str, d_steps: int = 1
) -> np.ndarray:
    """(steps + 1, 2) array of (theta, psi): simultaneous F_h = id + h v (Eq. 3), or alternating
    F_h = F_{2,h}^d o F_{1,h} (one generator step, then d discriminator steps)."""
    theta, psi = float(start[0]), _project(float(start[1]), method.clip)
    path = np.empty((steps + 1, 2))
    path[0] = theta, psi
    for k in range(1, steps + 1):
        if scheme == "simultaneous":
            v1, v2 = method.field(theta, psi)
            theta, psi = theta + lr * float(v1), _project(psi + lr * float(v2), method.clip)
        elif scheme == "alternating":
            theta += lr * float(method.field(theta, psi)[0])
            for _ in range(d_steps):
                psi = _project(psi + lr * float(method.field(theta, psi)[1]), method.clip)
        else:
            raise ValueError(f"unknown scheme {scheme!r}; allowed: {', '.join(SCHEMES)}")
        path[k] = theta, psi
    return path


def numeric_jacobian(
    field: VectorField, point: tuple[float, float], eps: float = 1e-6
) -> np.ndarray:
    """J[i, j] = dv_i / dx_j at ``point`` (x = (theta, psi)) by central differences."""
    jac = np.empty((2, 2))
    for j in range(2):
        step = np.eye(2)[j] * eps
        plus = np.array(field(*(np.asarray(point) + step)), dtype=float)
        minus = np.array(field(*(np.asarray(point) - step)), dtype=float)
        jac[:, j] = (plus - minus) / (2 * eps)
    return jac


def update_jacobian(jac: np.ndarray, lr: float, scheme: str, d_steps: int = 1) -> np.ndarray:
    """Jacobian of one update at the equilibrium: I + hJ, or (I + h P_psi J)^d (I + h P_theta J)."""
    eye = np.eye(2)
    if scheme == "simultaneous":
        return eye + lr * jac
    gen = eye + lr * np.diag([1.0, 0.0]) @ jac
    disc = eye + lr * np.diag([0.0, 1.0]) @ jac
    return np.linalg.matrix_power(disc, d_steps) @ gen


def format_pair(eigs: tuple[complex, complex] | np.ndarray) -> str:
    """A real 2x2 matrix's eigenvalues as 'c ± d' (real pair) or 'c ± di' (conjugate pair)."""
    a, b = (complex(e) for e in eigs)
    center, half = (a + b) / 2, (a - b) / 2
    unit = "i" if abs(half.imag) > abs(half.real) else ""
    return f"{center.real + 0.0:.4f} ± {max(abs(half.imag), abs(half.real)):.4f}{unit}"


def _sorted(eigs: tuple[complex, complex] | np.ndarray) -> np.ndarray:
    return np.array(sorted((complex(e) for e in eigs), key=lambda e: (e.imag, e.real)))


def run(cfg: DiracConfig, seed: int, out_dir: Path) -> pd.DataFrame:
    """One row per method x scheme -> out_dir/dirac.csv, trajectories -> out_dir/dirac.png.

    ``seed`` is unused: every vector field is exact, so the result is deterministic.
    """
    del seed
    rows, paths = [], {}
    methods = build_methods(cfg)
    for m in methods:
        jac = numeric_jacobian(m.field, m.jac_point)
        eig = np.linalg.eigvals(jac)
        for scheme in SCHEMES:
            path = simulate(m, cfg.start, cfg.lr, cfg.steps, scheme, cfg.d_steps)
            paths[m.name, scheme] = path
            theta, psi = path[-1]
            dist = math.hypot(theta, psi)
            radius = np.abs(np.linalg.eigvals(update_jacobian(jac, cfg.lr, scheme, cfg.d_steps)))
            rows.append({
                "method": m.name,
                "scheme": scheme,
                "final_theta": theta,
                "final_psi": psi,
                "final_distance": dist,
                "converged": bool(dist < cfg.tol),
                "eig_numeric": format_pair(eig),
                "eig_closed_form": format_pair(m.eig_closed_form),
                "eig_abs_error": float(np.abs(_sorted(eig) - _sorted(m.eig_closed_form)).max()),
                "eig_max_real": float(eig.real.max()),
                "update_spectral_radius": float(radius.max()),
                "note": m.note,
            })  # fmt: skip
    df = pd.DataFrame(rows)
    out_dir = Path(out_dir)
    write_text(out_dir / f"{NAME}.csv", df.to_csv(index=False))
    _plot(methods, paths, cfg, out_dir / f"{NAME}.png")
    return df


def _plot(methods: list[Method], paths: dict, cfg: DiracConfig, png: Path) -> None:
    """One (theta, psi) panel per method: normalised v in grey, both trajectories, the start."""
    ncols = min(4, len(methods))
    nrows = math.ceil(len(methods) / ncols)
    fig = Figure(figsize=(3.3 * ncols, 3.3 * nrows))
    fig.subplots_adjust(left=0.06, right=0.98, bottom=0.08, top=0.9, wspace=0.35, hspace=0.4)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, m in zip(axes, methods, strict=False):
        sim, alt = paths[m.name, "simultaneous"], paths[m.name, "alternating"]
        reach = np.nanmax(np.abs(np.concatenate([sim, alt])))
        lim = float(np.clip(1.1 * reach, 1.5, 4.0))
        grid = np.linspace(-lim, lim, 17)
        th, ps = np.meshgrid(grid, grid)
        v1, v2 = (np.asarray(v, dtype=float) for v in m.field(th, ps))
        norm = np.hypot(v1, v2) + 1e-12
        ax.quiver(th, ps, v1 / norm, v2 / norm, color="0.7", scale=24, width=0.005)
        ax.plot(sim[:, 0], sim[:, 1], lw=0.9, color="C0", label="simultaneous")
        ax.plot(alt[:, 0], alt[:, 1], lw=0.9, color="C1", label="alternating")
        ax.plot(*sim[0], "k*", ms=10, label="start")
        ax.plot(0.0, 0.0, "r+", ms=10, mew=2, label="(0, 0)")
        if m.clip is not None:
            ax.axhline(m.clip, color="0.4", ls="--", lw=0.8)
            ax.axhline(-m.clip, color="0.4", ls="--", lw=0.8)
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", title=m.name)
        ax.set_xlabel(r"$\theta$ (generator)")
        ax.set_ylabel(r"$\psi$ (discriminator)")
    for ax in axes[len(methods) :]:
        ax.set_axis_off()
    axes[0].legend(loc="lower left", fontsize=7)
    fig.suptitle(f"Dirac-GAN, h = {cfg.lr:g}, {cfg.steps} steps (Mescheder et al. 2018)")
    with atomic_path(png, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)


TOYS.register(NAME)(Toy(DiracConfig, run))
