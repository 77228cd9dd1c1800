"""The handwriting GAN step (Alonso et al. 2019, sec. 3; ScrabbleGAN, Fogel et al. 2020, sec. 3).

Three networks, each with its own optimizer, take one step per training step:
1. R, the recogniser, learns to read REAL words with CTC (Graves et al. 2006), never fakes;
2. D takes the adversarial step on real words and G's words for the same texts;
3. G minimises l_adv + alpha * l_R, l_R = CTC(text, R(G(z, text))), with the gradient balancing
   of Alonso et al. (sec. 3) and ScrabbleGAN (sec. 3, "gradient balancing"): at the image,
   alpha = gamma * std(d l_adv / d x) / std(d l_R / d x), so that R's gradient never swamps D's
   (gamma = ``ctc_weight``).
A word of L characters spans char_width * L pixels, so R reads it over
``R.frames(char_width * lengths)`` frames: the CTC loss never sees the padding."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genlab.families.handwriting.nets import (
    HANDWRITING_ARCHS,
    ScrabbleGenerator,
    WordDiscriminator,
)
from genlab.families.words import encode_texts
from genlab.nets.recognizer import Recognizer
from genlab.objectives import GAN_LOSSES
from genlab.objectives.ctc import ctc_loss
from genlab.registry import Registry
from genlab.runtime import autocast, grad_norm, make_optimizer

# the GAN losses whose terms are means over D's outputs (ScrabbleGAN: hinge), so they apply to
# the word discriminator's patch logits
HANDWRITING_LOSSES: Registry = Registry("loss")
for _name in ("hinge", "nonsaturating", "minimax", "least_squares"):
    HANDWRITING_LOSSES.register(_name)(GAN_LOSSES.get(_name))

DEFAULT_TEXTS = ["2026", "314159", "42", "7", "100"]  # figure texts when the variant gives none


def figure_texts(cfg, meta: dict) -> list[str]:
    """The variant's ``figure_texts``, checked against the dataset's vocabulary and max_length
    (``ConfigError``); by default ``DEFAULT_TEXTS`` cut to max_length."""
    if cfg.figure_texts is None:
        texts = [t[: int(meta["max_length"])] for t in DEFAULT_TEXTS]
        return list(dict.fromkeys(texts))
    encode_texts(cfg.figure_texts, meta, "figure_texts")
    return list(cfg.figure_texts)


def ctc_term(
    R: Recognizer,  # the recogniser
    images: Tensor,  # (N, 1, H, W) word images
    text: Tensor,  # (N, S) int64 tokens, 0-padded
    lengths: Tensor,  # (N,) characters per word
    char_width: int,  # pixels per character
    reduction: str = "mean",  # as torch's CTC loss: "mean" divides each row by its length
    what: str = "handwriting recogniser",
) -> Tensor:
    """CTC(text, R(images)) with each row read over its own frames, R.frames(char_width * L)."""
    frames = R.frames(char_width * lengths)
    return ctc_loss(R(images), text, frames, lengths, reduction=reduction, what=what)


def read_fakes(
    R: Recognizer, fake: Tensor, text: Tensor, lengths: Tensor, char_width: int
) -> Tensor:
    """l_R = CTC(text, R(G(z, text))) with R in eval mode: the generated words neither set R's
    batch-norm statistics nor update its running ones (R learns from real words only). cuDNN is
    off here because its LSTM backward refuses eval mode (the gradient must reach the image)."""
    was_training = R.training
    R.eval()
    try:
        with torch.backends.cudnn.flags(enabled=False):
            return ctc_term(R, fake, text, lengths, char_width)
    finally:
        R.train(was_training)


def balance_weight(
    grad_adv: Tensor,  # d l_adv / d x_fake
    grad_ctc: Tensor,  # d l_R / d x_fake
    ctc_weight: float,  # gamma
) -> tuple[float, dict[str, float]]:
    """alpha = gamma * std(grad_adv) / std(grad_ctc) (population standard deviations over every
    pixel of the batch; Alonso et al. 2019, sec. 3), detached. Where either deviation is 0 (one
    term has no gradient at all) the ratio is taken as 1: alpha = gamma."""
    s_adv = grad_adv.float().std(correction=0).item()
    s_ctc = grad_ctc.float().std(correction=0).item()
    ratio = s_adv / s_ctc if s_adv > 0 and s_ctc > 0 else 1.0
    return ctc_weight * ratio, {"grad_std_adversarial": s_adv, "grad_std_ctc": s_ctc}


class HandwritingTrainer:
    """Holds G, D, R, their optimizers (``optimizer``, ``optimizer_d``, ``optimizer_r``), the
    adversarial loss and the style-noise generator."""

    def __init__(self, cfg, meta: dict, device: torch.device, seed: int) -> None:
        self.texts = figure_texts(cfg, meta)  # refused before anything is trained or written
        nets = HANDWRITING_ARCHS.build(cfg.arch, meta, cfg)
        self.G: ScrabbleGenerator = nets["G"].to(device)
        self.D: WordDiscriminator = nets["D"].to(device)
        self.R: Recognizer = nets["R"].to(device)
        self.loss = HANDWRITING_LOSSES.build(cfg.loss, cfg)
        self.opt_g = make_optimizer(self.G.parameters(), cfg.optimizer)
        self.opt_d = make_optimizer(self.D.parameters(), cfg.optimizer_d or cfg.optimizer)
        self.opt_r = make_optimizer(self.R.parameters(), cfg.optimizer_r)
        self.noise = torch.Generator(device).manual_seed(seed + 1)
        self.char_width = int(meta["char_width"])
        self.cfg, self.device = cfg, device
        self.steps = 0

    @property
    def modules(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D, "R": self.R}

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"G": self.opt_g, "D": self.opt_d, "R": self.opt_r}

    def step(self, batches) -> dict[str, float]:
        batch = batches.next()
        real, text, lengths = batch["x"], batch["text"], batch["lengths"]
        stats = self.recognizer_step(real, text, lengths)
        stats |= self.discriminator_step(real, self.latent(len(real)), text, lengths)
        stats |= self.generator_step(self.latent(len(real)), text, lengths)
        self.steps += 1
        return stats

    def latent(self, n: int) -> Tensor:
        return torch.randn(n, self.G.latent_dim, generator=self.noise, device=self.device)

    def recognizer_step(self, real: Tensor, text: Tensor, lengths: Tensor) -> dict[str, float]:
        """R learns to read the real words (CTC), the only data it ever learns from."""
        self.R.requires_grad_(True)
        loss_r = ctc_term(self.R, real, text, lengths, self.char_width)
        self.opt_r.zero_grad(set_to_none=True)
        loss_r.backward()
        stats = {"loss_r": loss_r.detach(), "grad_norm_r": grad_norm(self.R)}
        self.opt_r.step()
        return stats

    def discriminator_step(
        self, real: Tensor, z: Tensor, text: Tensor, lengths: Tensor
    ) -> dict[str, float]:
        """D on real words and G's words of the same texts (the adversarial loss)."""
        amp = autocast(self.device, self.cfg.precision)
        self.D.requires_grad_(True)
        with torch.no_grad(), amp:
            fake = self.G(z, text, lengths)
        with amp:
            d_real, d_fake = self.D(real), self.D(fake)
        loss_d, stats = self.loss.discriminator(d_real.float(), d_fake.float())
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        stats["grad_norm_d"] = grad_norm(self.D)
        self.opt_d.step()
        return {"loss_d": loss_d.detach(), **stats}

    def generator_step(self, z: Tensor, text: Tensor, lengths: Tensor) -> dict[str, float]:
        """G on l_adv + alpha * l_R: both gradients are taken at the generated image, balanced,
        summed and sent back through G alone (D and R are frozen: neither learns from it)."""
        amp = autocast(self.device, self.cfg.precision)
        self.D.requires_grad_(False)
        self.R.requires_grad_(False)
        with amp:
            fake = self.G(z, text, lengths)
            d_fake = self.D(fake)
        loss_adv, stats = self.loss.generator(d_fake.float())
        loss_ctc = read_fakes(self.R, fake.float(), text, lengths, self.char_width)
        (grad_adv,) = torch.autograd.grad(loss_adv, fake)
        (grad_ctc,) = torch.autograd.grad(loss_ctc, fake)
        alpha, balance = balance_weight(grad_adv, grad_ctc, self.cfg.ctc_weight)
        self.opt_g.zero_grad(set_to_none=True)
        fake.backward(grad_adv + alpha * grad_ctc)  # = d(l_adv + alpha l_R)/d theta_G
        stats["grad_norm_g"] = grad_norm(self.G)
        self.opt_g.step()
        self.R.requires_grad_(True)
        loss_g = loss_adv.item() + alpha * loss_ctc.item()
        return {"loss_g": loss_g, "loss_g_adversarial": loss_adv.detach(),
                "ctc_fake": loss_ctc.detach(), "alpha": alpha, **balance, **stats}  # fmt: skip

    def extra_state(self) -> dict:
        return {"noise": self.noise.get_state(), "steps": self.steps}

    def load_extra_state(self, state: dict) -> None:
        self.noise.set_state(state["noise"])
        self.steps = state["steps"]
