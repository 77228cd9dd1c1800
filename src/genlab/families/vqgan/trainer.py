"""The VQ-GAN trainer (Esser et al. 2021, "Taming Transformers for High-Resolution Image
Synthesis", sec. 3.1): the VQ-VAE trainer (``genlab.families.vqvae.trainer``) with its
autoencoder loss replaced by VQ-GAN's and a PatchGAN discriminator trained beside it.

Stage 1 (steps 1 .. steps - prior_steps), each step:
- autoencoder update on
  L = L_rec + ||sg[z_e] - e||^2 + beta ||z_e - sg[e]||^2 + lambda * L_GAN,
  L_rec = mean |x - x_rec| + perceptual_weight * perceptual_distance(phi, x_rec, x)
  (the L1 pixel loss of the taming code plus a perceptual term on a frozen feature net phi,
  standing in for LPIPS: ``genlab.families.features``), L_GAN the generator side of the GAN
  loss (hinge: -mean D(x_rec)), lambda = disc_weight * the adaptive weight of eq. 7 at the
  decoder's last convolution (``genlab.objectives.adaptive``);
- then a discriminator update on x and a fresh, detached reconstruction by the updated
  autoencoder (the taming code's second pass), on the variant's GAN loss (default hinge:
  mean max(0, 1 - D(x)) + mean max(0, 1 + D(x_rec)), the taming code's hinge_d_loss without
  its factor 1/2).
For the first ``disc_start`` steps neither D nor the GAN term is used (lambda L_GAN is left out,
D is not run or updated; the taming code multiplies both by disc_factor = 0 instead).
Stage 2 (the last ``prior_steps``): the VQ-VAE's prior stage, unchanged.

Every step reports the same statistics (one set of CSV columns); ``disc_on`` says whether the
GAN part ran in that step (0 before disc_start and in the prior stage, where its columns are 0).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.errors import ArchitectureError, CheckpointError
from genlab.families.features import FeatureNet, perceptual_distance
from genlab.families.translation import TRANSLATION_LOSSES
from genlab.families.vqvae.trainer import VQVAETrainer
from genlab.nets.base import dcgan_init
from genlab.nets.patchgan import PatchGAN
from genlab.nets.vqvae import VQVAE, VQOutput, codebook_loss, commitment_loss, perplexity
from genlab.objectives.adaptive import adaptive_weight
from genlab.runtime import autocast, grad_norm, make_optimizer

DISC_START_FRACTION = 0.5  # disc_start: None = this fraction of the autoencoder steps
FEATURE_SEED_OFFSET = 7  # the perceptual feature net's classifier is seeded with seed + 7


def disc_start_of(cfg) -> int:
    """Autoencoder steps taken before D and the GAN term switch on: ``disc_start``, or (None)
    ``DISC_START_FRACTION`` of the autoencoder steps (steps - prior_steps), rounded down."""
    if cfg.disc_start is not None:
        return cfg.disc_start
    return int(DISC_START_FRACTION * (cfg.steps - cfg.prior_steps))


def check_patch_map(meta: dict, layers: int) -> None:
    """The PatchGAN's map is (side / 2**layers - 2) logits on a side (``layers`` halvings, then
    two 4 x 4 stride-1 convolutions that each take one off), so the shorter image side must be
    at least 3 * 2**layers."""
    side = min(meta["shape"][1:])
    if side < 3 * 2**layers:
        allowed = max(0, (side // 3).bit_length() - 1)
        raise ArchitectureError(
            f"disc_layers = {layers} halves the {side}-pixel image side {layers} times, leaving "
            f"no patch logits; allowed for dataset {meta['name']!r}: disc_layers <= {allowed}"
        )


def last_layer(model: VQVAE) -> Tensor:
    """G_L of eq. 7: the weight of the decoder's last convolution (the image output layer)."""
    return model.decoder.net[-1].weight


class VQGANTrainer(VQVAETrainer):
    """Modules: ``vae`` (the VQVAE with its prior: what model.pt keeps), ``D`` (the PatchGAN)
    and, when ``perceptual_weight`` > 0, ``features`` (the frozen feature net, fitted on the
    first step from the training split)."""

    def __init__(self, cfg, meta: dict, device: torch.device, seed: int) -> None:
        # the VQ-VAE's own eq. 3 loss ("vq") is replaced below; cfg.loss names the GAN loss
        super().__init__(cfg.model_copy(update={"loss": "vq"}), meta, device, seed)
        self.cfg = cfg
        channels = meta["shape"][0]
        check_patch_map(meta, cfg.disc_layers)
        self.D = PatchGAN(
            in_channels=channels,  # D sees images only (unconditional, as in the taming code)
            width=cfg.disc_width,  # the taming code's ndf
            layers=cfg.disc_layers,  # receptive field 9 * 2**layers - 2 pixels
            norm="batch",  # the taming code's default (use_actnorm=False)
        ).to(device)
        dcgan_init(self.D)  # N(0, 0.02) convolutions, N(1, 0.02) batch-norm scales (taming)
        self.opt_d = make_optimizer(self.D.parameters(), cfg.optimizer_d or cfg.optimizer)
        self.gan = TRANSLATION_LOSSES.build(cfg.loss, cfg)
        self.features: FeatureNet | None = None
        if cfg.perceptual_weight > 0:
            self.features = FeatureNet(channels, meta["num_classes"]).to(device)
        self.seed = seed
        self.disc_start = disc_start_of(cfg)
        self.d_updates = 0
        self.loss = self.autoencoder_loss  # what the VQ-VAE trainer's two stages call

    @property
    def modules(self) -> dict[str, nn.Module]:
        modules = {"vae": self.model, "D": self.D}
        if self.features is not None:
            modules["features"] = self.features
        return modules

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {**super().optimizers, "D": self.opt_d}

    @property
    def disc_on(self) -> bool:
        """Whether the current step (``step_count``, already counted) uses D and L_GAN."""
        return self.disc_start < self.step_count <= self.vq_steps

    def _features_fitted(self) -> bool:
        """The ``fitted`` buffer (restored with the state) read once, not at every step: on a
        GPU each read would wait for the device."""
        if not getattr(self, "_fitted", False):
            self._fitted = bool(self.features.fitted)
        return self._fitted

    # ------------------------------------------------------------ steps
    def step(self, batches) -> dict[str, float]:
        if self.features is not None and not self._features_fitted():
            split = batches.split
            self.features.fit_(split["x"], split["y"], self.seed + FEATURE_SEED_OFFSET,
                               self.cfg.perceptual_epochs)  # fmt: skip
        return super().step(batches)

    def autoencoder_step(self, x: Tensor, y: Tensor | None) -> dict[str, float]:
        """The VQ-VAE trainer's stage-1 step on ``autoencoder_loss``, then D's update."""
        stats = super().autoencoder_step(x, y)
        return stats | self.discriminator_step(x)

    def prior_step(self, x: Tensor, y: Tensor | None) -> dict[str, float]:
        return super().prior_step(x, y) | self.discriminator_stats()

    # ------------------------------------------------------------ losses
    def reconstruction_loss(self, x: Tensor, x_rec: Tensor) -> tuple[Tensor, dict[str, float]]:
        """L_rec = mean |x - x_rec| + perceptual_weight * perceptual_distance(phi, x_rec, x). In the
        prior stage (autoencoder frozen) the perceptual term is skipped and reported as 0: the
        feature net would double the cost of a prior step for a statistic."""
        l1 = (x_rec.float() - x.float()).abs().mean()
        perceptual = torch.zeros((), device=x.device)
        if self.features is not None and self.step_count <= self.vq_steps:
            perceptual = perceptual_distance(self.features, x_rec, x)
        rec = l1 + self.cfg.perceptual_weight * perceptual
        return rec, {"l1": l1.detach(), "perceptual": perceptual.detach()}

    def autoencoder_loss(self, model: VQVAE, x: Tensor) -> tuple[Tensor, dict, VQOutput]:
        """L_rec + codebook + beta * commitment (+ lambda * L_GAN once D is on), with the
        statistics; the VQ-VAE trainer's ``loss`` interface (model, x) -> (loss, stats, out)."""
        out = model.autoencode(x)
        rec, stats = self.reconstruction_loss(x, out.x_rec)
        codebook = codebook_loss(out.z_e, out.z_q)
        commitment = commitment_loss(out.z_e, out.z_q)
        loss = rec + codebook + self.cfg.commitment * commitment
        g_loss = weight = torch.zeros((), device=x.device)
        if self.disc_on:
            self.D.requires_grad_(False)  # gradients flow through D into x_rec, not into D
            g_loss, _ = self.gan.generator(self.D(out.x_rec).float())
            weight = self.cfg.disc_weight * adaptive_weight(rec, g_loss, last_layer(model))
            loss = loss + weight * g_loss
        stats |= {
            "recon": F.mse_loss(out.x_rec.float(), x.float()).detach(),  # the VQ-VAE's recon
            "codebook": codebook.detach(),
            "commitment": commitment.detach(),
            "perplexity": perplexity(out.indices, model.codebook_size).detach(),
            "g_loss": g_loss.detach(),
            "d_weight": weight.detach(),
        }
        return loss, stats, out

    def discriminator_step(self, x: Tensor) -> dict[str, float]:
        """One update of D on the GAN loss of x against a fresh reconstruction by the updated
        autoencoder (detached); nothing before ``disc_start``."""
        if not self.disc_on:
            return self.discriminator_stats()
        amp = autocast(self.device, self.cfg.precision)
        with torch.no_grad(), amp:
            x_rec = self.model.autoencode(x).x_rec
        self.D.requires_grad_(True)
        with amp:
            d_real, d_fake = self.D(x), self.D(x_rec)
        loss_d, stats = self.gan.discriminator(d_real.float(), d_fake.float())
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        norm = grad_norm(self.D)
        self.opt_d.step()
        self.d_updates += 1
        return self.discriminator_stats(loss_d.detach(), stats, norm)

    @staticmethod
    def discriminator_stats(
        loss_d: float | None = None, stats: dict | None = None, norm: float = 0.0
    ) -> dict[str, float]:
        """D's columns: zeros and ``disc_on`` = 0 for a step without D."""
        stats = stats or {}
        return {
            "loss_d": loss_d if loss_d is not None else 0.0,
            "d_real": stats.get("d_real", 0.0),
            "d_fake": stats.get("d_fake", 0.0),
            "grad_norm_d": norm,
            "disc_on": int(loss_d is not None),
        }

    # ------------------------------------------------------------ resume
    def extra_state(self) -> dict:
        return {**super().extra_state(), "disc_start": self.disc_start,
                "d_updates": self.d_updates}  # fmt: skip

    def load_extra_state(self, state: dict) -> None:
        """The VQ-VAE trainer's resume, which also refuses a change of disc_start (e.g. by
        its default moving with steps) across steps already taken."""
        if state["disc_start"] != self.disc_start and state["step"] > min(
            state["disc_start"], self.disc_start
        ):
            raise CheckpointError(
                f"cannot resume: the checkpoint at step {state['step']} switched D on after "
                f"{state['disc_start']} steps, these params after {self.disc_start}; set "
                f"disc_start: {state['disc_start']} to continue, or train without --resume."
            )
        super().load_extra_state(state)
        self.d_updates = state["d_updates"]
