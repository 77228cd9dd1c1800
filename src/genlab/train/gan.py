"""The GAN step of the lecture notes: update D ``d_steps`` (k) times, then G once."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genlab.nets import GAN_ARCHS
from genlab.objectives import GAN_LOSSES
from genlab.objectives.regularizers import GAN_REGULARIZERS
from genlab.train.common import BatchStream, autocast, grad_norm, make_optimizer


class GANTrainer:
    """Holds G, D, their optimizers, the loss, the regularisers and the noise generator."""

    def __init__(self, cfg, meta: dict, device: torch.device, seed: int) -> None:
        nets = GAN_ARCHS.build(cfg.arch, meta, cfg)
        self.G: nn.Module = nets["G"].to(device)
        self.D: nn.Module = nets["D"].to(device)
        self.loss = GAN_LOSSES.build(cfg.loss, cfg)
        self.loss.setup(self.G, self.D)
        self.regularizers = [
            (GAN_REGULARIZERS.build(name, r), r.weight, r.every)
            for name, r in cfg.regularizers.items()
        ]
        for reg, _, _ in self.regularizers:
            reg.setup(self.D)
        self.opt_g = make_optimizer(self.G.parameters(), cfg.optimizer)
        self.opt_d = make_optimizer(self.D.parameters(), cfg.optimizer_d or cfg.optimizer)
        self.noise = torch.Generator(device).manual_seed(seed + 1)
        self.cfg, self.device = cfg, device
        self.d_updates = 0

    @property
    def modules(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D}

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"G": self.opt_g, "D": self.opt_d}

    @property
    def generator(self) -> nn.Module:
        return self.G

    def latent(self, n: int) -> Tensor:
        return torch.randn(n, self.cfg.latent_dim, generator=self.noise, device=self.device)

    def step(self, batches: BatchStream) -> dict[str, float]:
        amp = autocast(self.device, self.cfg.precision)
        self.D.requires_grad_(True)
        for _ in range(self.cfg.d_steps):
            real = batches.next()["x"]
            with torch.no_grad(), amp:
                fake = self.G(self.latent(len(real)))
            with amp:
                d_real, d_fake = self.D(real), self.D(fake)
            loss_d, stats = self.loss.discriminator(d_real.float(), d_fake.float())
            for reg, weight, every in self.regularizers:
                if reg.has_penalty and self.d_updates % every == 0:
                    with amp:
                        penalty, reg_stats = reg.penalty(self.D, real, fake, self.noise)
                    loss_d = loss_d + weight * every * penalty
                    stats.update(reg_stats)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            stats["grad_norm_d"] = grad_norm(self.D)
            self.opt_d.step()
            for reg, _, _ in self.regularizers:
                reg.after_step(self.D)
            self.d_updates += 1

        self.D.requires_grad_(False)  # G's step needs gradients through D, not for D
        with amp:
            d_fake = self.D(self.G(self.latent(self.cfg.batch_size)))
        loss_g, g_stats = self.loss.generator(d_fake.float())
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        stats["grad_norm_g"] = grad_norm(self.G)
        self.opt_g.step()
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item(), **stats, **g_stats}

    def extra_state(self) -> dict:
        return {"noise": self.noise.get_state(), "d_updates": self.d_updates}

    def load_extra_state(self, state: dict) -> None:
        self.noise.set_state(state["noise"])
        self.d_updates = state["d_updates"]
