"""The MoCoGAN step (Tulyakov et al. 2018, sec. 3.2, eq. 2): one batch of real clips and one of
generated clips; D_I judges random single frames of each clip (``video_image_frames``, one as
in the paper), D_V a random window of
``video_d_frames`` consecutive frames of each (the paper's sub-clips of T frames); D_I and D_V
take one step on the sum of their two losses, then G (R_M and G_I) one step on the sum of its
two. The motion codes of all frames are computed, and G_I decodes only the frames the
discriminators judge (as the authors' code samples its image and video batches). With the
non-saturating loss (the default, as in the authors' code) G minimises
-log D_I(frame) - log D_V(clip) instead of eq. 2's log(1 - D)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genlab.errors import ConfigError
from genlab.families.video_gan.nets import (
    VIDEO_ARCHS,
    ImageDiscriminator,
    MoCoGANGenerator,
    VideoDiscriminator,
)
from genlab.objectives.gan import Minimax, NonSaturating
from genlab.registry import Registry
from genlab.runtime import autocast, grad_norm, make_optimizer

VIDEO_LOSSES: Registry = Registry("loss")
VIDEO_LOSSES.register("nonsaturating")(NonSaturating)  # the paper's implementation
VIDEO_LOSSES.register("minimax")(Minimax)  # eq. 2 as written


def discriminator_loss(
    loss, d_image: tuple[Tensor, Tensor], d_video: tuple[Tensor, Tensor]
) -> tuple[Tensor, dict[str, float]]:
    """D's side of eq. 2: ``loss.discriminator`` on D_I's (real, fake) frame logits plus on
    D_V's (real, fake) clip logits."""
    loss_i, stats_i = loss.discriminator(*d_image)
    loss_v, stats_v = loss.discriminator(*d_video)
    stats = {"loss_d_image": loss_i.detach(), "loss_d_video": loss_v.detach()}
    stats.update({f"{k}_image": v for k, v in stats_i.items()})
    stats.update({f"{k}_video": v for k, v in stats_v.items()})
    return loss_i + loss_v, stats


def generator_loss(loss, d_image: Tensor, d_video: Tensor) -> tuple[Tensor, dict[str, float]]:
    """G's side: ``loss.generator`` on D_I's fake frame logits plus on D_V's fake clip logits."""
    loss_i, _ = loss.generator(d_image)
    loss_v, _ = loss.generator(d_video)
    return loss_i + loss_v, {"loss_g_image": loss_i.detach(), "loss_g_video": loss_v.detach()}


def frame_times(n: int, frames: int, k: int, gen: torch.Generator) -> Tensor:
    """``k`` distinct frame indices per clip, each uniform over the ``frames`` of a clip:
    (n, k)."""
    return torch.rand(n, frames, generator=gen, device=gen.device).argsort(dim=1)[:, :k]


def window_times(n: int, frames: int, length: int, gen: torch.Generator) -> Tensor:
    """The indices of ``length`` consecutive frames of each clip from a uniform start:
    (n, length)."""
    start = torch.randint(frames - length + 1, (n,), generator=gen, device=gen.device)
    return start[:, None] + torch.arange(length, device=gen.device)


def pick(clips: Tensor, times: Tensor) -> Tensor:
    """Frames ``times`` ((N,) or (N, L)) of each clip of ``clips`` (N, T, ...): (N, ...) or
    (N, L, ...)."""
    rows = torch.arange(len(clips), device=clips.device)
    times = times.to(clips.device)
    return clips[rows, times] if times.dim() == 1 else clips[rows[:, None], times]


def d_frames(cfg, frames: int) -> int:
    """The clip length D_V sees: ``video_d_frames`` (None: the whole clip), at most ``frames``."""
    length = cfg.video_d_frames or frames
    if length > frames:
        raise ConfigError(
            f"video_d_frames = {cfg.video_d_frames} exceeds the dataset's {frames} frames per "
            f"clip; allowed: 1 to {frames}, or null for the whole clip"
        )
    return length


def image_frames(cfg, frames: int) -> int:
    """Frames of each clip D_I judges (``video_image_frames``), at most ``frames``."""
    if cfg.video_image_frames > frames:
        raise ConfigError(
            f"video_image_frames = {cfg.video_image_frames} exceeds the dataset's {frames} "
            f"frames per clip; allowed: 1 to {frames}"
        )
    return cfg.video_image_frames


class MoCoGANTrainer:
    """Holds G (R_M + G_I), D_I, D_V, their optimizers (D_I and D_V share one: ``optimizer_d``,
    else ``optimizer``), the loss and the noise generator."""

    def __init__(self, cfg, meta: dict, device: torch.device, seed: int) -> None:
        nets = VIDEO_ARCHS.build(cfg.arch, meta, cfg)
        self.G: MoCoGANGenerator = nets["G"].to(device)
        self.D_I: ImageDiscriminator = nets["D_I"].to(device)
        self.D_V: VideoDiscriminator = nets["D_V"].to(device)
        self.D = nn.ModuleList([self.D_I, self.D_V])  # both discriminators, one optimizer
        self.loss = VIDEO_LOSSES.build(cfg.loss, cfg)
        self.frames = int(meta["shape"][0])
        self.window = d_frames(cfg, self.frames)
        self.image_frames = image_frames(cfg, self.frames)
        self.opt_g = make_optimizer(self.G.parameters(), cfg.optimizer)
        self.opt_d = make_optimizer(self.D.parameters(), cfg.optimizer_d or cfg.optimizer)
        self.noise = torch.Generator(device).manual_seed(seed + 1)
        self.cfg, self.device = cfg, device
        self.steps = 0

    @property
    def modules(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D_I": self.D_I, "D_V": self.D_V}

    @property
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"G": self.opt_g, "D": self.opt_d}

    def latent(self, n: int) -> tuple[Tensor, Tensor, Tensor]:
        """z_C (n, content), eps (n, T, motion), h_0 (n, motion), all N(0, I)."""
        return latent(self.G, n, self.frames, self.noise, self.device)

    def step(self, batches) -> dict[str, float]:
        real = batches.next()["x"]
        n, amp = len(real), autocast(self.device, self.cfg.precision)
        k = self.image_frames
        t_real, t_fake = (frame_times(n, self.frames, k, self.noise) for _ in range(2))
        w_real, w_fake = (window_times(n, self.frames, self.window, self.noise) for _ in range(2))
        with amp:  # decode only the frames D_I and D_V judge, as the authors' code does
            codes = self.G.codes(*self.latent(n))
            fake = self.G.decode(pick(codes, torch.cat([t_fake, w_fake], dim=1)))
        frame_fake, clip_fake = fake[:, :k].flatten(0, 1), fake[:, k:]
        frame_real, clip_real = pick(real, t_real).flatten(0, 1), pick(real, w_real)

        self.D.requires_grad_(True)
        with amp:
            d_image = self.D_I(frame_real), self.D_I(frame_fake.detach())
            d_video = self.D_V(clip_real), self.D_V(clip_fake.detach())
        loss_d, stats = discriminator_loss(
            self.loss, tuple(d.float() for d in d_image), tuple(d.float() for d in d_video)
        )
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        stats["grad_norm_d"] = grad_norm(self.D)
        self.opt_d.step()

        self.D.requires_grad_(False)  # G's step needs gradients through D, not for D
        with amp:
            g_image, g_video = self.D_I(frame_fake), self.D_V(clip_fake)
        loss_g, g_stats = generator_loss(self.loss, g_image.float(), g_video.float())
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        stats["grad_norm_g"] = grad_norm(self.G)
        self.opt_g.step()
        self.steps += 1
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(), **stats, **g_stats}

    def extra_state(self) -> dict:
        return {"noise": self.noise.get_state(), "steps": self.steps}

    def load_extra_state(self, state: dict) -> None:
        self.noise.set_state(state["noise"])
        self.steps = state["steps"]


def latent(
    G: MoCoGANGenerator, n: int, frames: int, gen: torch.Generator, device
) -> tuple[Tensor, Tensor, Tensor]:
    """G's inputs for ``n`` clips of ``frames`` frames, drawn from ``gen`` in a fixed order:
    z_C (n, content_dim), h_0 (n, motion_dim), eps (n, frames, motion_dim)."""
    z_c = torch.randn(n, G.content_dim, generator=gen, device=device)
    h0 = torch.randn(n, G.motion_dim, generator=gen, device=device)
    eps = torch.randn(n, frames, G.motion_dim, generator=gen, device=device)
    return z_c, eps, h0
