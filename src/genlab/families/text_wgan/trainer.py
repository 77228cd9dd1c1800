"""The token-row GAN step of the lecture notes: update the critic ``d_steps`` (k) times, then G
once, on one-hot real rows against G's relaxed rows (N, L, V).

The relaxation is the family's: WGAN-GP feeds G's softmax as it is (Gulrajani et al. 2017,
sec. 5), the Gumbel-softmax GAN a Gumbel-softmax sample of G's logits (Kusner & Hernandez-Lobato
2016); each side's loss is the sum of the variant's terms (``genlab.objectives.terms``): the
adversarial loss, then each regulariser (the gradient penalty on interpolates of one-hot and
relaxed rows, Gulrajani et al. 2017, eq. 3)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genlab.nets.sequence import SEQUENCE_ARCHS, one_hot
from genlab.objectives.gan import Wasserstein
from genlab.objectives.regularizers import GradientPenalty, WeightClip
from genlab.objectives.terms import Adversarial, Regularized, Step, Term, total
from genlab.registry import Registry
from genlab.runtime import autocast, grad_norm, make_optimizer


def sequence_terms(cfg, losses: Registry, regularizers: Registry) -> list[Term]:
    """The adversarial loss of ``losses``, then each of the variant's ``regularizers``."""
    terms: list[Term] = [Adversarial(losses.build(cfg.loss, cfg))]
    for name, r in cfg.regularizers.items():
        terms.append(Regularized(regularizers.build(name, r), r.weight, r.every))
    return terms


class SequenceGANTrainer:
    """Holds G, the critic D, their optimizers (D's: ``optimizer_d``, else ``optimizer``), the
    terms and the noise generator (seeded ``seed + 1``: z, interpolation weights, Gumbel noise).
    Subclasses say how G's rows are relaxed (``relaxed``)."""

    losses: Registry
    regularizers: Registry

    def __init__(self, cfg, meta: dict, device: torch.device, seed: int) -> None:
        nets = SEQUENCE_ARCHS.build(cfg.arch, meta, cfg)
        self.G: nn.Module = nets["G"].to(device)
        self.D: nn.Module = nets["D"].to(device)
        self.vocab_size = len(meta["vocabulary"])
        self.terms = sequence_terms(cfg, self.losses, self.regularizers)
        for term in self.terms:
            term.setup(self.modules)
        self.opt_g = make_optimizer(self.G.parameters(), cfg.optimizer)
        self.opt_d = make_optimizer(self.D.parameters(), cfg.optimizer_d or cfg.optimizer)
        self.noise = torch.Generator(device).manual_seed(seed + 1)
        self.cfg, self.device = cfg, device
        self.d_updates = self.g_updates = 0

    @property
    def modules(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D}

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"G": self.opt_g, "D": self.opt_d}

    def relaxed(self, z: Tensor) -> tuple[Tensor, dict[str, float]]:
        """G's rows as the critic sees them, (N, L, V), and statistics of them."""
        raise NotImplementedError

    def latent(self, n: int) -> Tensor:
        return torch.randn(n, self.G.latent_dim, generator=self.noise, device=self.device)

    def step(self, batches) -> dict[str, float]:
        amp = autocast(self.device, self.cfg.precision)
        self.D.requires_grad_(True)
        for _ in range(self.cfg.d_steps):
            batch = batches.next()
            real = one_hot(batch["x"], self.vocab_size)
            z = self.latent(len(real))
            with torch.no_grad(), amp:
                fake, _ = self.relaxed(z)
            with amp:  # one critic pass over both (the critic has no batch statistics)
                d_real, d_fake = self.D(torch.cat([real, fake.float()])).split(len(real))
            s = Step(self.modules, self.D, real, fake.float(), z, None, d_real, d_fake,
                     self.noise, amp, self.d_updates, batch)  # fmt: skip
            loss_d, stats = total(self.terms, "discriminator", s)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            stats["grad_norm_d"] = grad_norm(self.D)
            self.opt_d.step()
            for term in self.terms:
                term.after_d_step(self.modules)
            self.d_updates += 1

        self.D.requires_grad_(False)  # G's step needs gradients through D, not for D
        z = self.latent(self.cfg.batch_size)
        with amp:
            fake, fake_stats = self.relaxed(z)
            d_fake = self.D(fake)
        s = Step(self.modules, self.D, None, fake, z, None, None, d_fake, self.noise, amp,
                 self.d_updates)  # fmt: skip
        loss_g, g_stats = total(self.terms, "generator", s)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        stats["grad_norm_g"] = grad_norm(self.G)
        self.opt_g.step()
        self.g_updates += 1
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), **stats, **g_stats,
                **fake_stats}  # fmt: skip

    def extra_state(self) -> dict:
        return {"noise": self.noise.get_state(), "d_updates": self.d_updates,
                "g_updates": self.g_updates}  # fmt: skip

    def load_extra_state(self, state: dict) -> None:
        self.noise.set_state(state["noise"])
        self.d_updates, self.g_updates = state["d_updates"], state["g_updates"]


def confidence(probabilities: Tensor) -> float:
    """Mean over positions of the largest probability (1: G's rows are one-hot)."""
    return probabilities.detach().float().amax(-1).mean().detach()


# text_wgan's names: the Wasserstein loss, and the critic's Lipschitz constraints
TEXT_WGAN_LOSSES: Registry = Registry("loss")
TEXT_WGAN_LOSSES.register("wasserstein")(Wasserstein)
TEXT_WGAN_REGULARIZERS: Registry = Registry("regularizer")
TEXT_WGAN_REGULARIZERS.register("gradient_penalty")(GradientPenalty)
TEXT_WGAN_REGULARIZERS.register("weight_clip")(WeightClip)


class TextWGANTrainer(SequenceGANTrainer):
    """WGAN-GP on characters (Gulrajani et al. 2017, sec. 5): the critic sees G's softmax, never
    a sample of it."""

    losses = TEXT_WGAN_LOSSES
    regularizers = TEXT_WGAN_REGULARIZERS

    def relaxed(self, z: Tensor) -> tuple[Tensor, dict[str, float]]:
        probabilities = self.G(z)
        return probabilities, {"fake_confidence": confidence(probabilities)}
