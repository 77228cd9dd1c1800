"""The GAN step of the lecture notes: update D ``d_steps`` (k) times, then G once.

Each side's loss is the sum of the variant's terms (``genlab.objectives.terms``): the adversarial
loss, then InfoGAN's mutual-information bound when the variant has codes, then each regulariser.
Conditional GANs feed labels to G and D."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genlab.families.gan.nets import build
from genlab.objectives import GAN_LOSSES
from genlab.objectives.info import MutualInformation
from genlab.objectives.regularizers import GAN_REGULARIZERS
from genlab.objectives.terms import Adversarial, Regularized, Step, Term, total
from genlab.runtime import autocast, grad_norm, make_optimizer


def gan_terms(cfg) -> list[Term]:
    """The variant's terms, in the order their values are summed."""
    from genlab.objectives.orthogonal import OrthogonalRegularization

    terms: list[Term] = [Adversarial(GAN_LOSSES.build(cfg.loss, cfg))]
    if cfg.info_categorical + cfg.info_continuous:
        terms.append(MutualInformation())
    for name, r in cfg.regularizers.items():
        terms.append(Regularized(GAN_REGULARIZERS.build(name, r), r.weight, r.every))
    if cfg.orthogonal > 0:
        terms.append(OrthogonalRegularization(cfg.orthogonal))
    return terms


class GANTrainer:
    """Holds G, D, their optimizers, the terms and the noise generator."""

    def __init__(self, cfg, meta: dict, device: torch.device, seed: int) -> None:
        nets = build(meta, cfg)
        self.G: nn.Module = nets["G"].to(device)
        self.D: nn.Module = nets["D"].to(device)
        self.terms = gan_terms(cfg)
        for term in self.terms:
            term.setup(self.modules)
        self.opt_g = make_optimizer(self.G.parameters(), cfg.optimizer)
        self.opt_d = make_optimizer(self.D.parameters(), cfg.optimizer_d or cfg.optimizer)
        self.noise = torch.Generator(device).manual_seed(seed + 1)
        self.cfg, self.device = cfg, device
        self.d_updates = self.g_updates = 0
        self.noise_dim = getattr(self.G, "noise_dim", cfg.latent_dim)
        self.num_classes = getattr(self.G, "num_classes", 0)  # labels or InfoGAN's code
        self.d_labels = cfg.d_condition != "none" or getattr(self.D, "conditional", False)

    @property
    def modules(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D}

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"G": self.opt_g, "D": self.opt_d}

    def latent(self, n: int, labels: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """G's inputs: Gaussian noise, and for a conditional G (or InfoGAN's categorical code)
        ``labels``, drawn uniformly when not given."""
        z = torch.randn(n, self.noise_dim, generator=self.noise, device=self.device)
        if not self.num_classes:
            return z, None
        if labels is None:
            labels = torch.randint(self.num_classes, (n,), generator=self.noise, device=self.device)
        return z, labels

    def _G(self, z: Tensor, y: Tensor | None) -> Tensor:
        return self.G(z) if y is None else self.G(z, y)

    def _D(self, y: Tensor | None):
        """D as a function of x alone (what the regularisers differentiate): a conditional D
        with the labels bound."""
        return self.D if not self.d_labels else (lambda x: self.D(x, y))

    def step(self, batches) -> dict[str, float]:
        amp = autocast(self.device, self.cfg.precision)
        for net in (self.G, self.D):  # progressive growing follows the generator step count
            if hasattr(net, "set_step"):
                net.set_step(self.g_updates)
        self.D.requires_grad_(True)
        for _ in range(self.cfg.d_steps):
            batch = batches.next()
            real = batch["x"]
            y_real = batch["y"] if self.d_labels else None
            z, y = self.latent(len(real), y_real)  # a conditional D sees fakes of the real labels
            D = self._D(y_real)
            with torch.no_grad(), amp:
                fake = self._G(z, y)
            with amp:
                d_real, d_fake = D(real), D(fake)
            s = Step(self.modules, D, real, fake, z, y, d_real, d_fake, self.noise, amp,
                     self.d_updates, batch)  # fmt: skip
            loss_d, stats = total(self.terms, "discriminator", s)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            stats["grad_norm_d"] = grad_norm(self.D)
            self.opt_d.step()
            for term in self.terms:
                term.after_d_step(self.modules)
            self.d_updates += 1

        self.D.requires_grad_(False)  # G's step needs gradients through D, not for D
        z, y = self.latent(self.cfg.batch_size)
        with amp:
            fake = self._G(z, y)
            d_fake = self._D(y)(fake)
        s = Step(self.modules, self._D(y), None, fake, z, y, None, d_fake, self.noise, amp,
                 self.d_updates)  # fmt: skip
        loss_g, g_stats = total(self.terms, "generator", s)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        stats["grad_norm_g"] = grad_norm(self.G)
        self.opt_g.step()
        self.g_updates += 1
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), **stats, **g_stats}

    def extra_state(self) -> dict:
        return {"noise": self.noise.get_state(), "d_updates": self.d_updates,
                "g_updates": self.g_updates}  # fmt: skip

    def load_extra_state(self, state: dict) -> None:
        self.noise.set_state(state["noise"])
        self.d_updates = state["d_updates"]
        self.g_updates = state.get("g_updates", 0)
