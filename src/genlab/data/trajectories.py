"""``trajectories``: simulated pedestrian scenes for trajectory prediction (the Social GAN task,
Gupta et al. 2018), drawn by a social-force model (Helbing & Molnar 1995).

A scene holds ``agents`` pedestrians. Agent i starts on a circle of radius 3.5-5 m around the
scene centre (start angles stratified, so that no two start on top of each other) and heads for
a goal 10 m from the centre on the far side (the opposite angle turned by up to +-0.5 rad), so
paths cross near the centre. Each agent has a preferred speed v0_i (``speed`` times a factor
uniform in [0.8, 1.2]) and accelerates by (Helbing & Molnar 1995, sec. II):

    dv_i/dt = (v0_i e_i - v_i) / tau + sum_j w(e_i, d_ij) A exp(-|d_ij| / B) d_ij / |d_ij|
              + noise * white noise,         d_ij = p_i - p_j,

with e_i the unit vector to the goal, relaxation time tau = 0.5 s, the repulsion strength A =
``repulsion`` (m/s^2) and range B = 0.5 m (an exponential of the distance: the circular form of
their potential V(b) = V0 exp(-b / sigma)), and the field-of-view weight w = 1 when j lies within
100 degrees of e_i and 0.5 behind (their direction-dependent weight, c = 0.5). Speeds are
capped at 1.3 v0_i, as in their model. The motion is integrated by semi-implicit Euler in
float64 with 4 substeps per frame; ``noise`` is the standard deviation of a seeded Brownian
kick to the velocity, in m/s per sqrt(s). Frames are dt = 0.4 s apart, as in ETH/UCY: 8
observed frames, then the 12 to predict.

Fields (float32, absolute metres in the scene frame, origin at the scene centre, x and y axes
fixed): ``observed`` (N, agents, 8, 2), ``x`` (N, agents, 12, 2) the future positions, and
``future``, equal to ``x``: the per-row source field a model is fed and the metrics read (meta
``source_fields``), kept under its own name because ``x`` is the samples' own field.
Train and test scenes come from independent generators (seeds 2 seed and 2 seed + 1).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from pydantic import Field
from torch import Tensor

from genlab.data.base import Split, dataset
from genlab.options import Options

DT = 0.4  # seconds between frames (ETH/UCY annotation rate)
OBS_LEN, PRED_LEN = 8, 12  # observed and predicted frames (Gupta et al. 2018, sec. 4)
SUBSTEPS = 4  # Euler substeps per frame
TAU = 0.5  # relaxation time of the driving term, s (Helbing & Molnar 1995)
RANGE = 0.5  # B: range of the repulsion, m
VIEW_COS = math.cos(math.radians(100.0))  # field of view: 2 x 100 degrees (Helbing & Molnar)
BEHIND = 0.5  # c: weight of an agent outside the field of view
MAX_SPEED = 1.3  # speed cap, times the preferred speed
START_RADIUS = (3.5, 5.0)  # m
GOAL_RADIUS = 10.0  # m
GOAL_TURN = 0.5  # rad: the goal's angle is the start's + pi + uniform(-GOAL_TURN, GOAL_TURN)
SPEED_SPREAD = 0.2  # preferred speeds uniform in speed * [1 - spread, 1 + spread]


class TrajectoriesCfg(Options):
    n_train: int = Field(2000, ge=10, le=200_000)  # training scenes
    n_test: int = Field(500, ge=10, le=200_000)  # test scenes
    agents: int = Field(4, ge=1, le=32)  # pedestrians per scene
    speed: float = Field(1.3, gt=0, le=5)  # mean preferred speed, m/s (Helbing: 1.34)
    repulsion: float = Field(20.0, ge=0, le=200)  # A: repulsion at distance 0, m/s^2; 0 = none
    noise: float = Field(0.3, ge=0, le=5)  # Brownian velocity kick, m/s per sqrt(s)


def driving_force(pos: Tensor, vel: Tensor, goal: Tensor, v0: Tensor) -> tuple[Tensor, Tensor]:
    """(v0 e - v) / tau and the unit direction e to the goal (Helbing & Molnar 1995, sec. II);
    the desired speed drops to distance / tau within v0 tau of the goal. ``pos``, ``vel``,
    ``goal``: (..., A, 2); ``v0``: (..., A)."""
    to_goal = goal - pos
    dist = to_goal.norm(dim=-1, keepdim=True)
    e = to_goal / dist.clamp_min(1e-9)
    desired = torch.minimum(v0[..., None], dist / TAU)
    return (desired * e - vel) / TAU, e


def repulsion_force(pos: Tensor, e: Tensor, strength: float, range_: float = RANGE) -> Tensor:
    """Sum over j != i of w_ij A exp(-|d_ij| / B) d_ij / |d_ij|, d_ij = p_i - p_j: the other
    agents push i away, at full weight when j lies within 100 degrees of i's desired direction
    ``e`` and at c = 0.5 behind it (Helbing & Molnar 1995, sec. II). ``pos``, ``e``:
    (..., A, 2) -> (..., A, 2)."""
    d = pos[..., :, None, :] - pos[..., None, :, :]  # [i, j] = p_i - p_j
    dist = d.norm(dim=-1)
    a = pos.shape[-2]
    others = ~torch.eye(a, dtype=torch.bool, device=pos.device)
    unit = d / dist.clamp_min(1e-9)[..., None]
    # j is seen by i when the direction from i to j (-unit) is within the view angle of e_i
    seen = (-(unit * e[..., :, None, :]).sum(-1)) >= VIEW_COS
    weight = torch.where(seen, 1.0, BEHIND) * others
    magnitude = strength * torch.exp(-dist / range_) * weight
    return (magnitude[..., None] * unit).sum(-2)


def simulate(
    start: Tensor,  # (N, A, 2) positions at frame 0, m
    goal: Tensor,  # (N, A, 2) goals, m
    v0: Tensor,  # (N, A) preferred speeds, m/s
    frames: int,  # positions recorded, frame 0 included
    repulsion: float,
    noise: float,
    gen: torch.Generator,  # draws the noise
) -> Tensor:
    """Positions (N, A, frames, 2) at dt = 0.4 s of the social-force model, float64; the
    agents start at their preferred speed towards their goals."""
    h = DT / SUBSTEPS
    pos, v0 = start.double(), v0.double()
    goal = goal.double()
    _, e = driving_force(pos, torch.zeros_like(pos), goal, v0)
    vel = v0[..., None] * e
    out = [pos]
    for _ in range(frames - 1):
        for _ in range(SUBSTEPS):
            drive, e = driving_force(pos, vel, goal, v0)
            acc = drive + repulsion_force(pos, e, repulsion)
            kick = torch.randn(pos.shape, generator=gen, dtype=torch.float64)
            vel = vel + h * acc + noise * math.sqrt(h) * kick
            speed = vel.norm(dim=-1, keepdim=True)
            cap = MAX_SPEED * v0[..., None]
            vel = vel * torch.where(speed > cap, cap / speed.clamp_min(1e-12), 1.0)
            pos = pos + h * vel
        out.append(pos)
    return torch.stack(out, dim=-2)


def scenes(n: int, cfg: dict[str, Any], gen: torch.Generator) -> Split:
    """``n`` seeded scenes: starts, goals and speeds as the module says, then ``simulate``."""
    a = cfg["agents"]
    base = torch.rand(n, 1, generator=gen, dtype=torch.float64) * 2 * math.pi
    jitter = (torch.rand(n, a, generator=gen, dtype=torch.float64) - 0.5) * 1.6 * math.pi / a
    angle = base + 2 * math.pi * torch.arange(a, dtype=torch.float64) / a + jitter
    lo, hi = START_RADIUS
    radius = lo + (hi - lo) * torch.rand(n, a, generator=gen, dtype=torch.float64)
    turn = (2 * torch.rand(n, a, generator=gen, dtype=torch.float64) - 1) * GOAL_TURN
    goal_angle = angle + math.pi + turn
    factor = 1 + SPEED_SPREAD * (2 * torch.rand(n, a, generator=gen, dtype=torch.float64) - 1)
    start = radius[..., None] * torch.stack([angle.cos(), angle.sin()], -1)
    goal = GOAL_RADIUS * torch.stack([goal_angle.cos(), goal_angle.sin()], -1)
    paths = simulate(start, goal, cfg["speed"] * factor, OBS_LEN + PRED_LEN, cfg["repulsion"],
                     cfg["noise"], gen).float()  # fmt: skip
    future = paths[:, :, OBS_LEN:].contiguous()
    return {"x": future, "observed": paths[:, :, :OBS_LEN].contiguous(), "future": future.clone()}


@dataset(
    "trajectories",
    options=TrajectoriesCfg,
    fields={"x": {"kind": "trajectory"}, "observed": {"kind": "trajectory"},
            "future": {"kind": "trajectory"}},
)  # fmt: skip
def trajectories(cfg: dict[str, Any], raw_dir: Path, seed: int) -> tuple[Split, Split, dict]:
    train = scenes(cfg["n_train"], cfg, torch.Generator().manual_seed(2 * seed))
    test = scenes(cfg["n_test"], cfg, torch.Generator().manual_seed(2 * seed + 1))
    meta = {
        "name": "trajectories", "kind": "trajectory", "shape": [cfg["agents"], PRED_LEN, 2],
        "n_train": cfg["n_train"], "n_test": cfg["n_test"], "agents": cfg["agents"],
        "obs_len": OBS_LEN, "pred_len": PRED_LEN, "dt": DT,
        "frame": "absolute metres, origin at the scene centre",
        "simulation": {"model": "social force (Helbing & Molnar 1995)", "tau": TAU,
                       "range": RANGE, "substeps": SUBSTEPS, "max_speed": MAX_SPEED,
                       "view_degrees": 100.0, "behind_weight": BEHIND},
        # per-row fields a model is fed (the test split's, at sampling) and the metrics read
        "source_fields": ["observed", "future"],
    }  # fmt: skip
    return train, test, meta


__all__ = [
    "DT", "OBS_LEN", "PRED_LEN", "TrajectoriesCfg", "driving_force", "repulsion_force",
    "scenes", "simulate", "trajectories",
]  # fmt: skip
