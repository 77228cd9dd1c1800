"""GAN-CLS training (Reed et al. 2016, Algorithm 1), with the text encoder pre-trained first.

Steps 1 .. ``encoder_steps`` train the text encoder phi and an image encoder theta on the
joint embedding (Reed et al. 2016b, "Learning Deep Representations of Fine-Grained Visual
Descriptions"): the compatibility F(v, t) = theta(v) . phi(t) of every image and text of the
batch, and the symmetric cross-entropy over that matrix (each image should pick its own text
among the batch's and each text its own image; the softmax form of their structured hinge loss,
as CLIP trains it). phi is then frozen, as in Reed et al. 2016. With ``encoder_steps = 0`` phi
is trained jointly with D instead, by D's loss only (G never changes the code it reads).

The remaining steps are Algorithm 1, one D update then one G update:
s_r = D(x, h), s_w = D(x, h_hat) (a mismatching text), s_f = D(G(z, h), h);
D maximises L_D = log s_r + (log(1 - s_w) + log(1 - s_f)) / 2, G maximises log s_f
(the non-saturating form). With ``gan_int`` G also learns from interpolated text embeddings
h_int = beta h_1 + (1 - beta) h_2, beta = 1/2 (GAN-INT, sec. 4.3, eq. 5): D judges them with
the interpolated text, G's loss adds the term; D does not train on them.

The mismatching text h_hat of a row is another row's text that differs from it
(``mismatched_rows``). Reed et al. take any other caption; here half of the rows (seeded) take
one of the same length where the batch has one, so that D cannot tell a wrong text by the
length of the ink alone and must learn to read the digits (without these hard negatives the
default run learns the word lengths long before the digits).

Every step reports the same statistics (one set of CSV columns); ``phase`` is 0 while phi is
pre-trained, 1 in the GAN steps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.families.text2image.nets import T2I_ARCHS
from genlab.families.words import encode_texts
from genlab.registry import Registry
from genlab.runtime import autocast, grad_norm, make_optimizer

T2I_LOSSES: Registry = Registry("loss")
INT_BETA = 0.5  # GAN-INT's interpolation weight (Reed et al. 2016, sec. 4.3)
HARD_SHARE = 0.5  # rows whose mismatching text has their own length (where one exists)


@T2I_LOSSES.register("gan_cls")
class GANCLS:
    """The matching-aware loss of Reed et al. 2016 (Algorithm 1) on D's logits l, with
    log D = -softplus(-l) and log(1 - D) = -softplus(l)."""

    def __init__(self, cfg=None) -> None:
        self.cfg = cfg

    def discriminator(
        self, s_r: Tensor, s_w: Tensor, s_f: Tensor, valid: Tensor | None = None
    ) -> tuple[Tensor, dict[str, float]]:
        """-L_D = -log s_r - (log(1 - s_w) + log(1 - s_f)) / 2, means over the batch; ``valid``
        (bool (N,)) keeps the rows that have a mismatching text (all, unless the batch repeats
        one text), whose mean the s_w term takes (0 when there is none)."""
        wrong = F.softplus(s_w)
        if valid is not None:
            wrong = (wrong * valid).sum() / valid.sum().clamp(min=1)
        else:
            wrong = wrong.mean()
        loss = F.softplus(-s_r).mean() + (wrong + F.softplus(s_f).mean()) / 2
        with torch.no_grad():
            stats = {"d_real": torch.sigmoid(s_r).mean().detach(),
                     "d_wrong": torch.sigmoid(s_w).mean().detach(),
                     "d_fake": torch.sigmoid(s_f).mean().detach()}  # fmt: skip
        return loss, stats

    def generator(self, s_f: Tensor) -> Tensor:
        """-log s_f, the mean over the batch (non-saturating)."""
        return F.softplus(-s_f).mean()


def same_text(tokens: Tensor, lengths: Tensor) -> Tensor:
    """(N, N) bool: rows i and j hold the same text (same length, same tokens within it)."""
    mask = torch.arange(tokens.shape[1], device=tokens.device)[None, :] < lengths[:, None]
    t = tokens * mask
    return (t[:, None, :] == t[None, :, :]).all(-1) & (lengths[:, None] == lengths[None, :])


def mismatched_rows(
    tokens: Tensor, lengths: Tensor, generator: torch.Generator, hard: float = HARD_SHARE
) -> tuple[Tensor, Tensor]:
    """For each row, another row of the batch with a different text: the row a seeded shift k
    in 1..N-1 away, or when that one holds the same text the next one after it that differs.
    A seeded share ``hard`` of the rows takes the first such row of the same length instead
    (where the batch has one): a text that differs in its characters only, which D can tell
    from the image only by reading it, not by the length of the ink.
    Returns (index (N,), valid (N,) bool: False where every row holds the row's text)."""
    n = len(tokens)
    k = int(torch.randint(1, max(n, 2), (1,), generator=generator, device=generator.device))
    pick_hard = torch.rand(n, generator=generator, device=generator.device) < hard
    rows = torch.arange(n, device=tokens.device)
    order = (rows[:, None] + k + rows[None, :]) % n  # candidates in order, per row
    differs = ~same_text(tokens, lengths).gather(1, order)
    same_length = lengths[order] == lengths[:, None]
    hard_ok = differs & same_length
    use_hard = pick_hard.to(tokens.device) & hard_ok.any(1)
    allowed = torch.where(use_hard[:, None], hard_ok, differs)
    first = allowed.float().argmax(1)  # the first allowed candidate (0 when none is)
    return order.gather(1, first[:, None]).squeeze(1), differs.any(1)


def joint_embedding_loss(images: Tensor, texts: Tensor, same: Tensor) -> Tensor:
    """Symmetric cross-entropy over the compatibility matrix S = images @ texts.T (Reed et al.
    2016b; Radford et al. 2021): each row's softmax should put its mass on the texts equal to
    its own (``same``: (N, N) bool, the diagonal at least), each column's on the images of that
    text; the mean of the two directions' mean cross-entropies."""
    scores = images @ texts.T
    target = same.float() / same.float().sum(1, keepdim=True)  # symmetric: same for columns
    rows = -(target * scores.log_softmax(1)).sum(1).mean()
    cols = -(target * scores.log_softmax(0)).sum(0).mean()
    return (rows + cols) / 2


STATS = ("loss_joint", "joint_accuracy", "loss_d", "loss_g", "loss_g_int", "d_real", "d_wrong",
         "d_fake", "grad_norm_d", "grad_norm_g")  # fmt: skip


class TextToImageTrainer:
    """Holds G, D, phi ("text"), theta ("image", while phi is pre-trained), their optimizers
    and the seeded generator of the noise and the mismatching texts."""

    def __init__(self, cfg, meta: dict, device: torch.device, seed: int) -> None:
        if cfg.figure_texts is not None:  # refuse bad figure texts before anything is written
            encode_texts(cfg.figure_texts, meta, "figure_texts")
        nets = T2I_ARCHS.build(cfg.arch, meta, cfg)
        self.nets = {k: m.to(device) for k, m in nets.items()}
        self.G, self.D, self.text = self.nets["G"], self.nets["D"], self.nets["text"]
        self.loss = T2I_LOSSES.build(cfg.loss, cfg)
        self.pretrain = cfg.encoder_steps > 0
        d_params = list(self.D.parameters())
        if not self.pretrain:  # phi learns with D
            d_params += list(self.text.parameters())
        self.opts = {"G": make_optimizer(self.G.parameters(), cfg.optimizer),
                     "D": make_optimizer(d_params, cfg.optimizer)}  # fmt: skip
        if self.pretrain:
            joint = list(self.text.parameters()) + list(self.nets["image"].parameters())
            self.opts["joint"] = make_optimizer(joint, cfg.optimizer)
        self.noise = torch.Generator(device).manual_seed(seed + 1)
        self.cfg, self.device = cfg, device
        self.steps = 0

    @property
    def modules(self) -> dict[str, nn.Module]:
        return self.nets

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self.opts

    def step(self, batches) -> dict[str, float]:
        batch = batches.next()
        self.steps += 1
        stats = dict.fromkeys(STATS, 0.0)
        if self.steps <= self.cfg.encoder_steps:
            stats.update(self.joint_step(batch))
            stats["phase"] = 0
        else:
            self.text.requires_grad_(not self.pretrain)  # frozen once pre-trained
            stats.update(self.gan_step(batch))
            stats["phase"] = 1
        return stats

    def joint_step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """One step of the joint embedding of images and texts (pre-training phi)."""
        tokens, lengths = batch["text"], batch["lengths"]
        with autocast(self.device, self.cfg.precision):
            v, t = self.nets["image"](batch["x"]), self.text(tokens, lengths)
        same = same_text(tokens, lengths)
        loss = joint_embedding_loss(v.float(), t.float(), same)
        opt = self.opts["joint"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():  # the image's best text is its own (or an equal one)
            pick = (v @ t.T).argmax(1)
            accuracy = same[torch.arange(len(pick)), pick].float().mean().detach()
        return {"loss_joint": loss.detach(), "joint_accuracy": accuracy}

    def gan_step(self, batch: dict[str, Tensor]) -> dict[str, float]:
        """Algorithm 1 of Reed et al. 2016: one D step on (s_r, s_w, s_f), one G step."""
        real, tokens, lengths = batch["x"], batch["text"], batch["lengths"]
        amp = autocast(self.device, self.cfg.precision)
        n = len(real)
        wrong, valid = mismatched_rows(tokens, lengths, self.noise)
        z = torch.randn(n, self.G.latent_dim, generator=self.noise, device=self.device)

        self.D.requires_grad_(True)
        with amp:
            h = self.text(tokens, lengths)  # phi learns here only when not pre-trained
            fake = self.G(z, h.detach())  # x_hat, the same for both steps (Algorithm 1)
            s_r, s_w, s_f = self.D(real, h), self.D(real, h[wrong]), self.D(fake.detach(), h)
        loss_d, stats = self.loss.discriminator(s_r.float(), s_w.float(), s_f.float(), valid)
        self.opts["D"].zero_grad(set_to_none=True)
        loss_d.backward()
        stats["grad_norm_d"] = grad_norm(self.D)
        self.opts["D"].step()

        self.D.requires_grad_(False)  # G's step needs gradients through D, not for D
        h = h.detach()
        with amp:
            s_f = self.D(fake, h)
        loss_g = self.loss.generator(s_f.float())
        loss_int = torch.zeros((), device=self.device)
        if self.cfg.gan_int:
            h_int = INT_BETA * h + (1 - INT_BETA) * h[wrong]
            z_int = torch.randn(n, self.G.latent_dim, generator=self.noise, device=self.device)
            with amp:
                s_int = self.D(self.G(z_int, h_int), h_int)
            loss_int = self.loss.generator(s_int.float())
        total = loss_g + loss_int
        self.opts["G"].zero_grad(set_to_none=True)
        total.backward()
        stats["grad_norm_g"] = grad_norm(self.G)
        self.opts["G"].step()
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(),
                "loss_g_int": loss_int.detach(), **stats}  # fmt: skip

    def extra_state(self) -> dict:
        return {"noise": self.noise.get_state(), "steps": self.steps}

    def load_extra_state(self, state: dict) -> None:
        self.noise.set_state(state["noise"])
        self.steps = state["steps"]


__all__ = ["GANCLS", "T2I_LOSSES", "TextToImageTrainer", "joint_embedding_loss",
           "mismatched_rows", "same_text"]  # fmt: skip
