"""The unpaired translation step shared by CycleGAN and DiscoGAN: one batch of each domain,
then G and F take one step on the sum of the variant's terms (D_A and D_B held fixed), then
D_A and D_B one step on the real images and the generated ones, drawn through the image pools
(Zhu et al. 2017, sec. 4; the order of the CycleGAN code). The two families differ only in their
networks, their list of terms and the pool size (``Recipe``)."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from genlab.families.translation import TRANSLATION_LOSSES
from genlab.objectives.terms import Term, total
from genlab.objectives.translation import ImagePool, TwoDomains
from genlab.registry import Registry
from genlab.runtime import autocast, grad_norm, make_optimizer

NETS = ("G", "F", "D_A", "D_B")


@dataclass(frozen=True)
class Recipe:
    """What a family of this trainer chooses."""

    archs: Registry  # arch name -> builder(meta, cfg) of G, F, D_A, D_B
    terms: Callable[[Any], list[Term]]  # variant -> its terms, summed in order
    pool_size: Callable[[Any], int]  # variant -> images each history pool keeps (0: none)


class UnpairedTrainer:
    """Holds G, F, D_A, D_B, one optimizer for G and F together and one for the two
    discriminators (as both papers' code does), the terms and the two image pools."""

    def __init__(self, cfg, meta: dict, device: torch.device, seed: int, *, recipe: Recipe):
        built = recipe.archs.build(cfg.arch, meta, cfg)
        self.nets: dict[str, nn.Module] = {k: built[k].to(device) for k in NETS}
        self.terms = recipe.terms(cfg)
        for term in self.terms:
            term.setup(self.nets)
        self.opt_g = make_optimizer(self._parameters("G", "F"), cfg.optimizer)
        self.opt_d = make_optimizer(self._parameters("D_A", "D_B"), cfg.optimizer)
        size = recipe.pool_size(cfg)
        self.pools = {"a": ImagePool(size, seed + 1), "b": ImagePool(size, seed + 2)}
        self.cfg, self.device = cfg, device
        self.steps = 0

    def _parameters(self, *keys: str):
        return list(itertools.chain.from_iterable(self.nets[k].parameters() for k in keys))

    @property
    def modules(self) -> dict[str, nn.Module]:
        return dict(self.nets)

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"G": self.opt_g, "D": self.opt_d}

    def _discriminators(self, on: bool) -> None:
        for key in ("D_A", "D_B"):
            self.nets[key].requires_grad_(on)

    def step(self, batches) -> dict[str, float]:
        batch = batches.next()
        a, b = batch["x"], batch["x_b"]  # independent draws of the two domains
        amp = autocast(self.device, self.cfg.precision)
        G, F = self.nets["G"], self.nets["F"]

        self._discriminators(False)  # G's step needs gradients through D, not for D
        with amp:
            fake_b, fake_a = G(a), F(b)
        loss_g, stats = total(self.terms, "generator", TwoDomains(self.nets, a, b, fake_b,
                                                                  fake_a, amp))  # fmt: skip
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        stats["grad_norm_g"], stats["grad_norm_f"] = grad_norm(G), grad_norm(F)
        self.opt_g.step()

        self._discriminators(True)
        history = TwoDomains(self.nets, a, b, self.pools["b"](fake_b), self.pools["a"](fake_a),
                             amp)  # fmt: skip
        loss_d, d_stats = total(self.terms, "discriminator", history)
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        d_stats["grad_norm_d_a"] = grad_norm(self.nets["D_A"])
        d_stats["grad_norm_d_b"] = grad_norm(self.nets["D_B"])
        self.opt_d.step()
        self.steps += 1
        return {"loss_g": loss_g.detach(), "loss_d": loss_d.detach(), **stats, **d_stats}

    def extra_state(self) -> dict:
        """The pools' images and generators (what D sees next depends on them) and the count."""
        return {"pools": {k: p.state_dict() for k, p in self.pools.items()}, "steps": self.steps}

    def load_extra_state(self, state: dict) -> None:
        for key, pool in self.pools.items():
            pool.load_state_dict(state["pools"][key], self.device)
        self.steps = state["steps"]


def trainer_of(recipe: Recipe) -> Callable[..., UnpairedTrainer]:
    """``Family.trainer``: (cfg, meta, device, seed) -> an ``UnpairedTrainer`` of ``recipe``."""

    def build(cfg, meta: dict, device: torch.device, seed: int) -> UnpairedTrainer:
        return UnpairedTrainer(cfg, meta, device, seed, recipe=recipe)

    return build


def adversarial_loss(cfg):
    """The variant's GAN loss object (``TRANSLATION_LOSSES``)."""
    return TRANSLATION_LOSSES.build(cfg.loss, cfg)
