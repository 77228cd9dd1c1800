"""The SRGAN step (Ledig et al. 2017, sec. 2.2): one batch of (low-resolution source,
high-resolution target) pairs; D takes a step on real targets against G's outputs, then G one
step on the perceptual loss of eq. 3,

    l^SR = l^SR_X + adversarial_weight * l^SR_Gen,

with the content loss l^SR_X the pixel MSE (eq. 4) or the feature MSE of eq. 5 (a frozen
classifier's features, ``genlab.families.features``, in place of VGG19), and l^SR_Gen the
variant's GAN loss on D(G(source)) (``nonsaturating``: -log D(G(I^LR)), eq. 6).

The first ``pretrain_steps`` steps train G alone on the pixel MSE, as the paper initialises SRGAN
from a trained SRResNet. ``adversarial_weight: 0`` is the SRResNet itself: D is then neither built
into the trainer nor ever called.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.families.features import FeatureNet, feature_loss
from genlab.families.translation import TRANSLATION_LOSSES
from genlab.nets.srresnet import SR_ARCHS
from genlab.runtime import autocast, grad_norm, make_optimizer

FEATURE_BLOCK = 3  # the classifier block whose output is phi (genlab.families.features)
FEATURE_SEED_OFFSET = 7  # its seed is the run's + 7, so it is not the evaluate stage's evaluator
D_STATS = ("d_real", "d_fake")  # what every TRANSLATION_LOSSES discriminator reports


def generator_loss(
    content: Tensor,  # l^SR_X, a scalar
    d_fake: Tensor | None,  # D's logits on G's outputs (None: no adversarial term)
    loss,  # the GAN loss (``.generator(d_fake) -> (value, stats)``)
    weight: float,  # adversarial_weight (1e-3 in the paper)
) -> tuple[Tensor, dict[str, float]]:
    """Ledig et al. eq. 3: content + weight * adversarial, and both terms for the curves."""
    if d_fake is None:
        return content, {"loss_content": content.detach()}
    adversarial, stats = loss.generator(d_fake.float())
    total = content + weight * adversarial
    stats = {"loss_content": content.detach(), "loss_adversarial": adversarial.detach(), **stats}
    return total, stats


def psnr(mse: float) -> float:
    """Peak signal-to-noise ratio in dB of images in [-1, 1] (peak-to-peak range 2)."""
    return 10 * math.log10(4 / mse) if mse > 0 else float("inf")


class SRGANTrainer:
    """Holds G (and D when ``adversarial_weight`` > 0), their optimizers, the GAN loss and, for
    ``content: features``, the frozen feature net (a module, so state.pt holds it)."""

    def __init__(self, cfg, meta: dict, device: torch.device, seed: int) -> None:
        nets = SR_ARCHS.build(cfg.arch, meta, cfg)
        self.G: nn.Module = nets["G"].to(device)
        self.opt_g = make_optimizer(self.G.parameters(), cfg.optimizer)
        self.D: nn.Module | None = None
        self.opt_d = None
        if cfg.adversarial_weight > 0:
            self.D = nets["D"].to(device)
            self.opt_d = make_optimizer(self.D.parameters(), cfg.optimizer)
        self.loss = TRANSLATION_LOSSES.build(cfg.loss, cfg)
        self.features: FeatureNet | None = None
        if cfg.content == "features":
            classes = meta.get("num_classes") or 0
            if classes < 2:
                raise ValueError(
                    f"content = 'features' fits a classifier on the classes of dataset "
                    f"{meta.get('name')!r}, which has {classes}; use content: mse"
                )
            channels = meta["shape"][0]
            self.features = FeatureNet(channels, classes, FEATURE_BLOCK).to(device)
        self.feature_seed = seed + FEATURE_SEED_OFFSET
        self.cfg, self.device = cfg, device
        self.steps = 0

    @property
    def modules(self) -> dict[str, nn.Module]:
        nets = {"G": self.G}
        if self.D is not None:
            nets["D"] = self.D
        if self.features is not None:
            nets["features"] = self.features
        return nets

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"G": self.opt_g} | ({"D": self.opt_d} if self.opt_d is not None else {})

    def fit_features(self, batches) -> None:
        """Fit the feature net on the training split the first time the content loss needs it
        (in float32, outside any autocast; a resumed run has it fitted in state.pt)."""
        if self.features is not None and not self.features.fitted:
            x, y = batches.split["x"], batches.split["y"]
            self.features.fit_(x, y, self.feature_seed, self.cfg.feature_epochs)

    def content(self, fake: Tensor, real: Tensor) -> Tensor:
        """l^SR_X: pixel MSE (eq. 4) or the feature MSE (eq. 5)."""
        if self.features is None:
            return F.mse_loss(fake.float(), real.float())
        return feature_loss(self.features, fake, real)

    def step(self, batches) -> dict[str, float]:
        batch = batches.next()
        low, high = batch["source"], batch["x"]
        self.steps += 1
        pretraining = self.steps <= self.cfg.pretrain_steps
        amp = autocast(self.device, self.cfg.precision)
        with amp:
            fake = self.G(low)
        stats: dict[str, float] = {}
        d_fake = None
        if self.D is not None:
            stats = {"loss_d": 0.0, **dict.fromkeys(D_STATS, math.nan), "grad_norm_d": math.nan}
            if not pretraining:
                stats.update(self.discriminator_step(high, fake.detach(), amp))
                self.D.requires_grad_(False)  # G's step needs gradients through D, not for D
                with amp:
                    d_fake = self.D(fake)

        mse = F.mse_loss(fake.float(), high.float())
        if pretraining:
            loss_g, g_stats = mse, {"loss_content": mse.detach()}
            if self.D is not None:
                g_stats["loss_adversarial"] = 0.0
        else:
            self.fit_features(batches)
            with amp:
                content = self.content(fake, high)
            weight = self.cfg.adversarial_weight
            loss_g, g_stats = generator_loss(content, d_fake, self.loss, weight)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        grad_g = grad_norm(self.G)
        self.opt_g.step()
        return {"loss": loss_g.detach(), **g_stats, **stats, "mse": mse.detach(),
                "psnr": psnr(mse.item()), "grad_norm_g": grad_g,
                "phase": 1 if pretraining else 2}  # fmt: skip

    def discriminator_step(self, real: Tensor, fake: Tensor, amp) -> dict[str, float]:
        """One D update on real targets and (detached) G outputs."""
        self.D.requires_grad_(True)
        with amp:
            d_real, d_fake = self.D(real), self.D(fake)
        loss_d, stats = self.loss.discriminator(d_real.float(), d_fake.float())
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        stats["grad_norm_d"] = grad_norm(self.D)
        self.opt_d.step()
        return {"loss_d": loss_d.detach(), **stats}

    def extra_state(self) -> dict:
        return {"steps": self.steps}

    def load_extra_state(self, state: dict) -> None:
        self.steps = state["steps"]
