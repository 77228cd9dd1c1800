"""The terms of unpaired translation (CycleGAN, Zhu et al. 2017; DiscoGAN, Kim et al. 2017) and
the history of generated images D is trained on (Shrivastava et al. 2017).

Two generators, G: A -> B and F: B -> A, and two discriminators, D_A (real a vs F(b)) and D_B
(real b vs G(a)). Every term sees one ``TwoDomains`` record and returns ``(value or None,
stats)`` per side, already weighted; the side's loss is their sum
(``genlab.objectives.terms.total``). Distances are means over every element, as the papers'
code computes them (``nn.L1Loss``, ``nn.MSELoss``), so ||x||_1 below reads "mean |x|".
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from genlab.objectives.terms import Stats, Term

Distance = Callable[[Tensor, Tensor], Tensor]


def l1(x: Tensor, target: Tensor) -> Tensor:
    """mean |x - target| (CycleGAN's ||.||_1, eq. 2)."""
    return (x - target).abs().mean()


def mse(x: Tensor, target: Tensor) -> Tensor:
    """mean (x - target)^2 (the distance d of DiscoGAN's official code, ``nn.MSELoss``)."""
    return (x - target).pow(2).mean()


@dataclass
class TwoDomains:
    """One update's view for the terms. In G's update ``fake_b`` = G(a) and ``fake_a`` = F(b)
    carry gradients; in D's update they are detached and drawn through the image pools."""

    nets: dict[str, nn.Module]  # "G" (A -> B), "F" (B -> A), "D_A", "D_B"
    a: Tensor  # real batch of domain A
    b: Tensor  # real batch of domain B
    fake_b: Tensor  # G(a)
    fake_a: Tensor  # F(b)
    amp: contextlib.AbstractContextManager = field(default_factory=contextlib.nullcontext)


class TwoAdversarial(Term):
    """The GAN loss (``genlab.objectives.gan``, means over D's outputs, so a PatchGAN map works)
    in both directions, on logits in float32 (Zhu et al. 2017, eq. 1, once per direction):
    G minimises loss_G(D_B(G(a))) + loss_G(D_A(F(b))); D minimises
    ``d_scale`` * [loss_D(D_B(b), D_B(G(a))) + loss_D(D_A(a), D_A(F(b)))].
    CycleGAN halves D's objective (d_scale = 1/2, sec. 4: "we divide the objective by 2 while
    optimizing D"); DiscoGAN's code weights D's real and fake terms 1/2 too. Adam is invariant
    to a constant scale of a loss (up to its epsilon), so the halving does not slow D down."""

    def __init__(self, loss, d_scale: float = 0.5) -> None:
        self.loss, self.d_scale = loss, d_scale

    def generator(self, s: TwoDomains) -> tuple[Tensor, Stats]:
        with s.amp:
            d_b, d_a = s.nets["D_B"](s.fake_b), s.nets["D_A"](s.fake_a)
        loss_b, _ = self.loss.generator(d_b.float())
        loss_a, _ = self.loss.generator(d_a.float())
        return loss_b + loss_a, {
            "adversarial_g_b": loss_b.detach(),
            "adversarial_g_a": loss_a.detach(),
        }

    def discriminator(self, s: TwoDomains) -> tuple[Tensor, Stats]:
        stats: Stats = {}
        total = None
        for domain, real, fake in (("b", s.b, s.fake_b), ("a", s.a, s.fake_a)):
            D = s.nets[f"D_{domain.upper()}"]
            with s.amp:
                d_real, d_fake = D(real), D(fake)
            loss, d_stats = self.loss.discriminator(d_real.float(), d_fake.float())
            stats.update({f"{k}_{domain}": v for k, v in d_stats.items()})
            stats[f"adversarial_d_{domain}"] = loss.detach()
            total = loss if total is None else total + loss
        return self.d_scale * total, stats


class CycleConsistency(Term):
    """``weight`` * [d(F(G(a)), a) + d(G(F(b)), b)]: CycleGAN's L_cyc with d = ||.||_1 and
    weight lambda = 10 (Zhu et al. 2017, eq. 2 and sec. 4); DiscoGAN's L_CONST_A + L_CONST_B with
    d = MSE (Kim et al. 2017, sec. 3: d(G_BA(G_AB(x_A)), x_A), "a distance function such as MSE,
    cosine distance or hinge loss"; the official code uses ``nn.MSELoss``) and weight 1, the
    paper's L_G = L_GAN_B + L_CONST_A + L_GAN_A + L_CONST_B."""

    def __init__(self, weight: float, distance: Distance = l1, name: str = "cycle") -> None:
        self.weight, self.distance, self.name = weight, distance, name

    def generator(self, s: TwoDomains) -> tuple[Tensor, Stats]:
        with s.amp:
            rec_a, rec_b = s.nets["F"](s.fake_b), s.nets["G"](s.fake_a)
        err_a = self.distance(rec_a.float(), s.a.float())
        err_b = self.distance(rec_b.float(), s.b.float())
        stats = {f"{self.name}_a": err_a.detach(), f"{self.name}_b": err_b.detach()}
        return self.weight * (err_a + err_b), stats


class Identity(Term):
    """``weight`` * [||G(b) - b||_1 + ||F(a) - a||_1]: the identity mapping loss of Taigman et al.
    2017, which CycleGAN adds with weight 0.5 lambda (Zhu et al. 2017, sec. 5.2 and appendix
    7.1; the official code's ``lambda_identity`` = 0.5 times lambda_A, lambda_B). It asks each
    generator to leave an image of its own target domain unchanged (both domains must have the
    same channels)."""

    def __init__(self, weight: float, distance: Distance = l1) -> None:
        self.weight, self.distance = weight, distance

    def generator(self, s: TwoDomains) -> tuple[Tensor, Stats]:
        with s.amp:
            same_b, same_a = s.nets["G"](s.b), s.nets["F"](s.a)
        err_b = self.distance(same_b.float(), s.b.float())
        err_a = self.distance(same_a.float(), s.a.float())
        stats = {"identity_b": err_b.detach(), "identity_a": err_a.detach()}
        return self.weight * (err_b + err_a), stats


class ImagePool:
    """A history of ``size`` generated images (Shrivastava et al. 2017, sec. 2.3, as CycleGAN
    uses it, Zhu et al. 2017, sec. 4): D sees, for each new image, the image itself while the
    history is filling; once it is full, with probability 1/2 a stored image chosen uniformly
    (which the new image replaces), else the new image. ``size`` = 0 returns the batch as given.
    The draws come from the pool's own seeded ``torch.Generator`` (CPU), and ``state_dict`` holds
    the stored images and that generator, so a resumed run draws what it would have drawn."""

    def __init__(
        self,
        size: int = 50,  # images kept (the paper's 50); 0: no history
        seed: int = 0,  # seeds the pool's generator
    ) -> None:
        self.size = size
        self.images: list[Tensor] = []
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.images)

    @torch.no_grad()
    def __call__(self, images: Tensor) -> Tensor:
        """The batch D is trained on, one image per image of ``images`` (detached)."""
        images = images.detach()
        if self.size == 0:
            return images
        out = []
        for image in images:
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=self.generator) < 0.5:
                i = int(torch.randint(self.size, (), generator=self.generator))
                out.append(self.images[i])
                self.images[i] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict:
        stored = torch.stack(self.images).cpu() if self.images else torch.empty(0)
        return {"images": stored, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict, device: torch.device | str = "cpu") -> None:
        if len(state["images"]) > self.size:
            raise ValueError(
                f"the saved image pool holds {len(state['images'])} images; this one keeps "
                f"{self.size}"
            )
        self.images = [image.to(device) for image in state["images"]]
        self.generator.set_state(state["generator"])


__all__ = [
    "CycleConsistency",
    "Identity",
    "ImagePool",
    "TwoAdversarial",
    "TwoDomains",
    "l1",
    "mse",
]
