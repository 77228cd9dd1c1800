"""The SPADE step (Park et al. 2019, sec. 4): one batch of (label map, image) pairs, one noise
draw; D takes a hinge step on real and generated pairs, then G one step on the adversarial loss
plus lambda times pix2pixHD's feature-matching loss (Wang et al. 2018, eq. 4), which SPADE keeps:
sum over D's intermediate layers i of the mean |D_i(m, x) - D_i(m, G(z, m))|.

Not implemented: the VGG perceptual loss (no pretrained VGG offline) and the image encoder of
the multi-modal variant (z is Gaussian noise)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genlab.families.translation import TRANSLATION_LOSSES
from genlab.nets.spade import SPADE_ARCHS, SPADEDiscriminator, SPADEGenerator
from genlab.runtime import autocast, grad_norm, make_optimizer


def feature_matching(real: list[Tensor], fake: list[Tensor]) -> Tensor:
    """pix2pixHD eq. 4: sum over layers of the mean absolute difference, the real features held
    fixed (G's gradient only)."""
    return sum(((f - r.detach()).abs().mean() for r, f in zip(real, fake, strict=True)),
               torch.zeros((), device=fake[0].device))  # fmt: skip


class SPADETrainer:
    """Holds G, D, their optimizers (D's: ``optimizer_d``, the paper's two time-scale rates),
    the loss and the noise generator."""

    def __init__(self, cfg, meta: dict, device: torch.device, seed: int) -> None:
        nets = SPADE_ARCHS.build(cfg.arch, meta, cfg)
        self.G: SPADEGenerator = nets["G"].to(device)
        self.D: SPADEDiscriminator = nets["D"].to(device)
        self.loss = TRANSLATION_LOSSES.build(cfg.loss, cfg)
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

    def step(self, batches) -> dict[str, float]:
        batch = batches.next()
        labels, real = batch["source"], batch["x"]
        amp = autocast(self.device, self.cfg.precision)
        z = torch.randn(len(real), self.G.latent_dim, generator=self.noise, device=self.device)
        with amp:
            fake = self.G(z, labels)

        self.D.requires_grad_(True)
        with amp:
            d_real, d_fake = self.D(labels, real), self.D(labels, fake.detach())
        loss_d, stats = self.loss.discriminator(d_real.float(), d_fake.float())
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        stats["grad_norm_d"] = grad_norm(self.D)
        self.opt_d.step()

        self.D.requires_grad_(False)  # G's step needs gradients through D, not for D
        weight = self.cfg.spade_feature_matching
        with amp:
            feats_fake, d_fake = self.D.features(labels, fake)
            if weight > 0:
                with torch.no_grad():
                    feats_real, _ = self.D.features(labels, real)
        loss_adv, g_stats = self.loss.generator(d_fake.float())
        fm = torch.zeros((), device=self.device)
        if weight > 0:
            fm = feature_matching(feats_real, feats_fake)
        loss_g = loss_adv + weight * fm.float()
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        stats["grad_norm_g"] = grad_norm(self.G)
        self.opt_g.step()
        self.steps += 1
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(),
                "loss_g_adversarial": loss_adv.detach(), "feature_matching": fm.detach(),
                **stats, **g_stats}  # fmt: skip

    def extra_state(self) -> dict:
        return {"noise": self.noise.get_state(), "steps": self.steps}

    def load_extra_state(self, state: dict) -> None:
        self.noise.set_state(state["noise"])
        self.steps = state["steps"]
