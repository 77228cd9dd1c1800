"""The VAE step: one gradient step on the negative ELBO of a mini-batch."""

from __future__ import annotations

import torch
from torch import nn

from genlab.data.stream import BatchStream
from genlab.nets import VAE_ARCHS
from genlab.objectives import VAE_LOSSES
from genlab.runtime import autocast, grad_norm, make_optimizer


class VAETrainer:
    def __init__(self, cfg, meta: dict, device: torch.device, seed: int) -> None:
        self.vae: nn.Module = VAE_ARCHS.build(cfg.arch, meta, cfg)["vae"].to(device)
        self.loss = VAE_LOSSES.build(cfg.loss, beta=cfg.beta)
        self.opt = make_optimizer(self.vae.parameters(), cfg.optimizer)
        self.noise = torch.Generator(device).manual_seed(seed + 1)
        self.cfg, self.device = cfg, device

    @property
    def modules(self) -> dict[str, nn.Module]:
        return {"vae": self.vae}

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"vae": self.opt}

    def step(self, batches: BatchStream) -> dict[str, float]:
        batch = batches.next()
        y = batch["y"] if self.cfg.conditional else None  # a conditional VAE sees the label
        with autocast(self.device, self.cfg.precision):
            loss, stats = self.loss(self.vae, batch["x"], generator=self.noise, y=y)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        stats["grad_norm"] = grad_norm(self.vae)
        self.opt.step()
        return {"loss": loss.detach(), **stats}

    def extra_state(self) -> dict:
        return {"noise": self.noise.get_state()}

    def load_extra_state(self, state: dict) -> None:
        self.noise.set_state(state["noise"])
