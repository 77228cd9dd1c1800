"""The trajectory GAN family: Social GAN, small (Gupta et al. 2018): an LSTM encoder of each
agent's observed motion, a pooling module over the other agents, an LSTM decoder from (context,
noise) to the future, an LSTM discriminator per agent, and the variety loss (best of k)."""

from __future__ import annotations

from typing import Literal

from genlab.families.base import Family, register, requires_fields
from genlab.families.gan import GAN
from genlab.families.trajectory_gan.figures import CAPTIONS, trajectory_figures
from genlab.families.trajectory_gan.nets import TRAJECTORY_ARCHS
from genlab.families.trajectory_gan.sampler import TrajectorySampler, sampler
from genlab.families.trajectory_gan.trainer import (
    TRAJECTORY_LOSSES,
    TrajectoryGANTrainer,
    variety_loss,
)
from genlab.options import Field, Option

OPTIONS = {
    "d_steps": GAN.options["d_steps"],  # D updates before each G update
    "optimizer_d": GAN.options["optimizer_d"],  # D's; None = ``optimizer``
    # k of the variety loss: futures drawn per scene in each G step (sgan: 20)
    "variety_k": Option(int, Field(8, ge=1, le=100)),
    "variety_weight": Option(float, Field(1.0, ge=0)),  # its weight beside the adversarial loss
    # the best of k per agent (the paper) or per scene (sgan's code)
    "variety_min": Option(Literal["agent", "scene"], "agent"),
    "eval_k": Option(int, Field(20, ge=1, le=1000)),  # futures per test scene at sampling
}

TRAJECTORY_GAN = register(
    Family(
        name="trajectory_gan",
        archs=TRAJECTORY_ARCHS,
        losses=TRAJECTORY_LOSSES,
        default_loss="nonsaturating",
        trainer=TrajectoryGANTrainer,
        sampler=sampler,
        generator="G",
        figures=trajectory_figures,
        sections={
            "Trajectories": "Social GAN (Gupta et al. 2018) on simulated pedestrians (a "
            "social-force model): 8 observed steps of every agent in a scene, 12 predicted, k "
            "futures per scene. `min_ade` / `min_fde`: per agent the best of k by average / "
            "final displacement, in metres; the constant-velocity baseline is the reference."
        },
        captions=CAPTIONS,
        options=OPTIONS,
        check=requires_fields(x="trajectory", observed="trajectory", future="trajectory"),
    )
)

__all__ = ["TRAJECTORY_GAN", "TrajectoryGANTrainer", "TrajectorySampler", "variety_loss"]
