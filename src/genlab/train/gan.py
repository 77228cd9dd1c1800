"""The GAN step of the lecture notes: update D ``d_steps`` (k) times, then G once.

Conditional GANs feed labels to G and D; InfoGAN adds the weighted mutual-information bound
(``D.info_loss``) to D's loss (training Q on its shared trunk) and to G's loss (Chen et al. 2016,
eq. 5)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genlab.nets import build_gan
from genlab.objectives import GAN_LOSSES
from genlab.objectives.regularizers import GAN_REGULARIZERS
from genlab.train.common import BatchStream, autocast, grad_norm, make_optimizer


class GANTrainer:
    """Holds G, D, their optimizers, the loss, the regularisers and the noise generator."""

    def __init__(self, cfg, meta: dict, device: torch.device, seed: int) -> None:
        nets = build_gan(meta, cfg)
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
        self.d_updates = self.g_updates = 0
        self.noise_dim = getattr(self.G, "noise_dim", cfg.latent_dim)
        self.num_classes = getattr(self.G, "num_classes", 0)  # labels or InfoGAN's code
        self.d_labels = getattr(self.D, "conditional", False)  # D(x, y)
        self.info = hasattr(self.D, "info_loss")

    @property
    def modules(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D}

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"G": self.opt_g, "D": self.opt_d}

    @property
    def generator(self) -> nn.Module:
        return self.G

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

    def step(self, batches: BatchStream) -> dict[str, float]:
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
            loss_d, stats = self.loss.discriminator(d_real.float(), d_fake.float())
            if self.info:  # Q (sharing D's trunk) maximises the bound on the fakes' codes
                with amp:
                    info, info_stats = self.D.info_loss(fake, y, self.G.codes(z))
                loss_d = loss_d + info
                stats.update(info_stats)
            for reg, weight, every in self.regularizers:
                if reg.has_penalty and self.d_updates % every == 0:
                    with amp:
                        penalty, reg_stats = reg.penalty(D, real, fake, self.noise)
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
        z, y = self.latent(self.cfg.batch_size)
        with amp:
            fake = self._G(z, y)
            d_fake = self._D(y)(fake)
        loss_g, g_stats = self.loss.generator(d_fake.float())
        if self.info:  # G maximises the same bound: its codes must stay readable from G(z, c)
            with amp:
                info, _ = self.D.info_loss(fake, y, self.G.codes(z))
            loss_g = loss_g + info
            g_stats["loss_info"] = info.item()
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        stats["grad_norm_g"] = grad_norm(self.G)
        self.opt_g.step()
        self.g_updates += 1
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item(), **stats, **g_stats}

    def extra_state(self) -> dict:
        return {"noise": self.noise.get_state(), "d_updates": self.d_updates,
                "g_updates": self.g_updates}  # fmt: skip

    def load_extra_state(self, state: dict) -> None:
        self.noise.set_state(state["noise"])
        self.d_updates = state["d_updates"]
        self.g_updates = state.get("g_updates", 0)
