"""The VQ-VAE trainer, two stages in one run (DALL-E's recipe, Ramesh et al. 2021):
steps 1 .. steps - prior_steps train the autoencoder on eq. 3 of van den Oord et al. 2017, with
dead codes restarted on encoder outputs every ``restart_every`` steps; the last ``prior_steps``
freeze it and train the causal prior on the batch's codes (cross-entropy, in nats per code).

Both stages report the same statistics (the stats CSV has one set of columns): ``loss`` is the
stage's objective, ``phase`` says which stage a row belongs to.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from genlab.data.stream import BatchStream
from genlab.errors import CheckpointError
from genlab.nets.vqvae import VQ_ARCHS, VQ_LOSSES, VQVAE, code_cross_entropy
from genlab.runtime import autocast, grad_norm, make_optimizer, sum_over_processes, take_rank0


@torch.no_grad()
def restart_dead_codes(
    codebook: nn.Embedding,  # K x D codes, re-initialised in place
    usage: Tensor,  # (K,) how often each code was chosen since the last check
    z_e: Tensor,  # (B, D, H', W') encoder outputs of the current batch
    generator: torch.Generator,  # the trainer's seeded generator
) -> int:
    """Move every unused code onto a randomly chosen encoder output (distinct outputs while
    there are enough); returns how many codes moved."""
    dead = (usage == 0).nonzero().flatten()
    if len(dead) == 0:
        return 0
    flat = z_e.detach().permute(0, 2, 3, 1).reshape(-1, codebook.embedding_dim)
    device = flat.device
    if len(dead) <= len(flat):
        pick = torch.randperm(len(flat), generator=generator, device=device)[: len(dead)]
    else:
        pick = torch.randint(len(flat), (len(dead),), generator=generator, device=device)
    codebook.weight[dead] = flat[pick].to(codebook.weight.dtype)
    return len(dead)


class VQVAETrainer:
    def __init__(self, cfg, meta: dict, device: torch.device, seed: int) -> None:
        self.model: VQVAE = VQ_ARCHS.build(cfg.arch, meta, cfg)["vae"].to(device)
        self.loss = VQ_LOSSES.build(cfg.loss, commitment=cfg.commitment)
        self.opt = make_optimizer(self.model.autoencoder_parameters(), cfg.optimizer)
        self.opt_prior = make_optimizer(self.model.prior.parameters(), cfg.optimizer)
        self.noise = torch.Generator(device).manual_seed(seed + 1)
        self.usage = torch.zeros(cfg.codebook_size, dtype=torch.long, device=device)
        self.vq_steps = cfg.steps - cfg.prior_steps  # stage 1 length
        self.step_count = 0
        self.cfg, self.device = cfg, device

    @property
    def modules(self) -> dict[str, nn.Module]:
        return {"vae": self.model}

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"vae": self.opt, "prior": self.opt_prior}

    def step(self, batches: BatchStream) -> dict[str, float]:
        batch = batches.next()
        self.step_count += 1
        if self.step_count <= self.vq_steps:
            return self.autoencoder_step(batch["x"], batch.get("y"))
        return self.prior_step(batch["x"], batch.get("y"))

    def autoencoder_step(self, x: Tensor, y: Tensor | None) -> dict[str, float]:
        """Stage 1: one step on eq. 3; every ``restart_every`` steps the unused codes restart."""
        with autocast(self.device, self.cfg.precision):
            loss, stats, out = self.loss(self.model, x)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        stats["grad_norm"] = grad_norm(self.model)
        self.opt.step()
        self.usage += torch.bincount(out.indices.flatten(), minlength=len(self.usage))
        restarted = 0
        every = self.cfg.restart_every
        if every and self.step_count % every == 0:
            # data-parallel: every process's code counts, and rank 0's restarted codes kept
            usage = sum_over_processes(self.usage)
            restarted = restart_dead_codes(self.model.codebook, usage, out.z_e, self.noise)
            take_rank0(self.model.codebook.weight.data)
            self.usage.zero_()
        with torch.no_grad(), autocast(self.device, self.cfg.precision):
            prior = self.prior_loss(out.indices, y)  # the prior's baseline, for the curves
        return self._stats(1, loss.detach(), stats, restarted, prior.detach())

    def prior_step(self, x: Tensor, y: Tensor | None) -> dict[str, float]:
        """Stage 2: the autoencoder frozen, one step on the prior's cross-entropy of the codes."""
        with torch.no_grad(), autocast(self.device, self.cfg.precision):
            _, stats, out = self.loss(self.model, x)
        with autocast(self.device, self.cfg.precision):
            loss = self.prior_loss(out.indices, y)
        self.opt_prior.zero_grad(set_to_none=True)
        loss.backward()
        stats["grad_norm"] = grad_norm(self.model.prior)
        self.opt_prior.step()
        return self._stats(2, loss.detach(), stats, 0, loss.detach())

    def prior_loss(self, indices: Tensor, y: Tensor | None) -> Tensor:
        """-log p(c_i | c_<i, y), mean over positions and samples, in nats."""
        logits = self.model.prior_logits(indices, y)
        return code_cross_entropy(logits.float(), indices.flatten(1))

    @staticmethod
    def _stats(phase: int, loss: Tensor, stats: dict, restarted: int, prior: Tensor) -> dict:
        return {
            "loss": loss,
            **stats,
            "dead_codes_restarted": restarted,
            "prior_bits_per_code": prior.double() / math.log(2),  # as Python divides
            "phase": phase,
        }

    def extra_state(self) -> dict:
        return {
            "noise": self.noise.get_state(),
            "usage": self.usage,
            "step": self.step_count,
            "vq_steps": self.vq_steps,
        }

    def load_extra_state(self, state: dict) -> None:
        """Resume; refuses a change of steps that would move the stage boundary across steps
        already taken (e.g. a step trained as prior step would become an autoencoder step)."""
        if state["vq_steps"] != self.vq_steps and state["step"] > min(
            state["vq_steps"], self.vq_steps
        ):
            raise CheckpointError(
                f"cannot resume: the checkpoint at step {state['step']} trained the VQ-VAE for "
                f"{state['vq_steps']} steps (steps - prior_steps), these params for "
                f"{self.vq_steps}; the stage boundary can only move beyond the steps already "
                "taken. Keep steps - prior_steps, or train without --resume."
            )
        self.noise.set_state(state["noise"])
        self.usage.copy_(state["usage"])
        self.step_count = state["step"]
