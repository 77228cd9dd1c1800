"""The Social GAN step (Gupta et al. 2018, sec. 3.3 and 3.5): D ``d_steps`` times on real futures
against one generated future per scene, then G once on the adversarial loss of one generated
future plus ``variety_weight`` times the variety loss over ``variety_k`` of them.

Variety loss (their sec. 3.5): draw k futures per scene and penalise only the best,
L = min_k ||Y - Y^(k)||^2, where ||.||^2 is the squared L2 distance averaged over the predicted
steps (sgan's code sums squared displacement errors). ``variety_min`` chooses what "best" is
taken over: each agent alone (``agent``, the paper's per pedestrian) or the scene as a whole
(``scene``, sgan's code: the k-th joint future with the least error summed over the agents).
Pulling only the best lets the k samples spread over the plausible futures instead of
collapsing onto their mean.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genlab.families.trajectory_gan.nets import TRAJECTORY_ARCHS
from genlab.objectives import GAN_LOSSES
from genlab.registry import Registry
from genlab.runtime import autocast, grad_norm, make_optimizer

TRAJECTORY_LOSSES: Registry = Registry("loss")
for _name in ("nonsaturating", "minimax", "least_squares", "hinge"):
    TRAJECTORY_LOSSES.register(_name)(GAN_LOSSES.get(_name))


def variety_loss(pred: Tensor, future: Tensor, over: str = "agent") -> Tensor:
    """min over the k predictions of the mean squared L2 error over the steps (Gupta et al.
    2018, sec. 3.5), averaged over agents and scenes. ``pred`` (B, k, A, T, 2), ``future`` (B, A, T,
    2); ``over``: "agent" (the best of k per agent) or "scene" (the best joint prediction by the
    scene's error summed over agents)."""
    err = (pred - future[:, None]).pow(2).sum(-1).mean(-1)  # (B, k, A)
    if over == "agent":
        return err.amin(1).mean()
    return err.sum(-1).amin(1).mean() / err.shape[-1]


class TrajectoryGANTrainer:
    """Holds G, D, their optimizers, the loss and the noise generator."""

    def __init__(self, cfg, meta: dict, device: torch.device, seed: int) -> None:
        nets = TRAJECTORY_ARCHS.build(cfg.arch, meta, cfg)
        self.G: nn.Module = nets["G"].to(device)
        self.D: nn.Module = nets["D"].to(device)
        self.loss = TRAJECTORY_LOSSES.build(cfg.loss, cfg)
        self.opt_g = make_optimizer(self.G.parameters(), cfg.optimizer)
        self.opt_d = make_optimizer(self.D.parameters(), cfg.optimizer_d or cfg.optimizer)
        self.noise = torch.Generator(device).manual_seed(seed + 1)
        self.cfg, self.device = cfg, device
        self.steps = 0

    @property
    def modules(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D}

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"G": self.opt_g, "D": self.opt_d}

    def _z(self, observed: Tensor, k: int) -> Tensor:
        s, a = observed.shape[:2]
        return torch.randn(s, k, a, self.G.noise_dim, generator=self.noise, device=self.device)

    def step(self, batches) -> dict[str, float]:
        cfg, amp = self.cfg, autocast(self.device, self.cfg.precision)
        self.D.requires_grad_(True)
        for _ in range(cfg.d_steps):
            batch = batches.next()
            observed, future = batch["observed"], batch["x"]
            with torch.no_grad(), amp:
                fake = self.G(observed, self._z(observed, 1))[:, 0]
            with amp:  # real and fake futures through D in one batch
                d_real, d_fake = self.D(observed.repeat(2, 1, 1, 1),
                                        torch.cat([future, fake])).chunk(2)  # fmt: skip
            loss_d, stats = self.loss.discriminator(d_real.float(), d_fake.float())
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            stats["grad_norm_d"] = grad_norm(self.D)
            self.opt_d.step()

        self.D.requires_grad_(False)  # G's step needs gradients through D, not for D
        batch = batches.next()
        observed, future = batch["observed"], batch["x"]
        with amp:
            fake = self.G(observed, self._z(observed, cfg.variety_k))  # (B, k, A, T, 2)
            d_fake = self.D(observed, fake[:, 0])
        loss_adv, g_stats = self.loss.generator(d_fake.float())
        variety = variety_loss(fake.float(), future, cfg.variety_min)
        loss_g = loss_adv + cfg.variety_weight * variety
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        stats["grad_norm_g"] = grad_norm(self.G)
        self.opt_g.step()
        self.steps += 1
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(),
                "loss_g_adversarial": loss_adv.detach(), "loss_variety": variety.detach(),
                **stats, **g_stats}  # fmt: skip

    def extra_state(self) -> dict:
        return {"noise": self.noise.get_state(), "steps": self.steps}

    def load_extra_state(self, state: dict) -> None:
        self.noise.set_state(state["noise"])
        self.steps = state["steps"]


__all__ = ["TRAJECTORY_LOSSES", "TrajectoryGANTrainer", "variety_loss"]
