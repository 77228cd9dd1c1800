"""The pix2pix step (Isola et al. 2017, sec. 3.1 and 3.3): one D update, then one G update, on
the same G(x) of a paired batch (x = the source, y = the target image).

G* = arg min_G max_D L_cGAN(G, D) + lambda L_L1(G) (eq. 4), with
L_cGAN = E[log D(x, y)] + E[log(1 - D(x, G(x)))] (eq. 1, here any translation GAN loss on the
PatchGAN's logit map) and L_L1 = E ||y - G(x)||_1 (eq. 3, a per-pixel mean), lambda =
``l1_weight`` (100 in the paper). D's objective is divided by 2, "which slows down the rate at
which D learns relative to G" (sec. 3.3). The noise z is dropout in G's decoder (sec. 3.1).
``adversarial: false`` is the L1-only ablation of the paper's Figure 4 (no D at all);
``l1_weight: 0`` the cGAN-only one.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genlab.families.pix2pix.nets import P2P_ARCHS
from genlab.families.translation import TRANSLATION_LOSSES
from genlab.objectives.terms import Adversarial, Step, Term, total
from genlab.runtime import autocast, grad_norm, make_optimizer

Stats = dict[str, float]


class HalvedAdversarial(Adversarial):
    """The conditional GAN loss of eq. 1 with D's objective divided by 2 (sec. 3.3); G's
    adversarial part is reported as ``g_adversarial``."""

    def discriminator(self, s: Step) -> tuple[Tensor, Stats]:
        loss, stats = super().discriminator(s)
        return loss / 2, stats

    def generator(self, s: Step) -> tuple[Tensor, Stats]:
        loss, stats = super().generator(s)
        return loss, {**stats, "g_adversarial": loss.detach()}


class L1Reconstruction(Term):
    """``weight`` * mean |y - G(x)| over pixels and channels (eq. 3), on the G update; the
    target y is ``s.batch["x"]``. Its unweighted value is reported as ``l1``."""

    def __init__(self, weight: float) -> None:
        self.weight = weight

    def generator(self, s: Step) -> tuple[Tensor, Stats]:
        l1 = (s.fake.float() - s.batch["x"].float()).abs().mean()
        return self.weight * l1, {"l1": l1.detach()}


def pix2pix_terms(cfg) -> list[Term]:
    """eq. 4's terms in summation order: the cGAN loss (unless the L1-only ablation), then L1
    (kept at weight 0 in the cGAN-only ablation: its value is still reported)."""
    terms: list[Term] = []
    if cfg.adversarial:
        terms.append(HalvedAdversarial(TRANSLATION_LOSSES.build(cfg.loss, cfg)))
    terms.append(L1Reconstruction(cfg.l1_weight))
    return terms


class Pix2PixTrainer:
    """Holds G, D (when ``adversarial``), their Adam optimizers and the terms."""

    def __init__(self, cfg, meta: dict, device: torch.device, seed: int) -> None:
        nets = P2P_ARCHS.build(cfg.arch, meta, cfg)
        self.G: nn.Module = nets["G"].to(device)
        self.D: nn.Module | None = nets["D"].to(device) if "D" in nets else None
        self.terms = pix2pix_terms(cfg)
        for term in self.terms:
            term.setup(self.modules)
        self.opt_g = make_optimizer(self.G.parameters(), cfg.optimizer)
        self.opt_d = None if self.D is None else make_optimizer(self.D.parameters(), cfg.optimizer)
        self.noise = torch.Generator(device).manual_seed(seed + 1)  # Step's; z is dropout
        self.cfg, self.device = cfg, device
        self.updates = 0

    @property
    def modules(self) -> dict[str, nn.Module]:
        return {"G": self.G} if self.D is None else {"G": self.G, "D": self.D}

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"G": self.opt_g} if self.opt_d is None else {"G": self.opt_g, "D": self.opt_d}

    def _D(self, condition: Tensor):
        """D as a function of the image alone, the source bound: D(x, .) on concat(x, .)."""
        return lambda image: self.D(torch.cat([condition, image], dim=1))

    def step(self, batches) -> dict[str, float]:
        batch = batches.next()
        real = batch["x"]
        amp = autocast(self.device, self.cfg.precision)
        condition = self.G.condition(batch["source"])
        with amp:
            fake = self.G.translate(condition)  # dropout drawn from the global RNG: z
        stats: Stats = {}
        D = None
        if self.D is not None:
            D = self._D(condition)
            self.D.requires_grad_(True)
            with amp:
                d_real, d_fake = D(real), D(fake.detach())
            s = Step(self.modules, D, real, fake.detach(), condition, None, d_real, d_fake,
                     self.noise, amp, self.updates, batch)  # fmt: skip
            loss_d, stats = total(self.terms, "discriminator", s)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            stats["loss_d"] = loss_d.detach()
            stats["grad_norm_d"] = grad_norm(self.D)
            self.opt_d.step()
            self.D.requires_grad_(False)  # G's step needs gradients through D, not for D
        with amp:
            d_fake = D(fake) if D is not None else None
        s = Step(self.modules, D, None, fake, condition, None, None, d_fake, self.noise, amp,
                 self.updates, batch)  # fmt: skip
        loss_g, g_stats = total(self.terms, "generator", s)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        g_stats["grad_norm_g"] = grad_norm(self.G)
        self.opt_g.step()
        self.updates += 1
        return {"loss_g": loss_g.detach(), **stats, **g_stats}

    def extra_state(self) -> dict:
        return {"noise": self.noise.get_state(), "updates": self.updates}

    def load_extra_state(self, state: dict) -> None:
        self.noise.set_state(state["noise"])
        self.updates = state["updates"]


__all__ = ["HalvedAdversarial", "L1Reconstruction", "Pix2PixTrainer", "pix2pix_terms"]
