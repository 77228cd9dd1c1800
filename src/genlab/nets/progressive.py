"""Progressive growing of GANs (Karras et al. 2018, ProGAN).

G and D start at the side s0 of ``upsampling_plan`` and double it n times. Each new resolution is
first faded in over ``phase_steps`` steps, alpha rising linearly from 0 to 1 (sec. 2, fig. 2b: the
new layers act as a residual branch next to the upsampled / downsampled old path), then trained
for ``phase_steps`` stable steps; the first resolution has a stable phase only. The growth state
comes from ``set_step(k)`` (k = completed G updates, called by the trainer) and lives in a buffer,
so checkpoints and the EMA copy carry it.

The rest of the pipeline only sees full-resolution images: G upsamples its current-resolution
output (nearest neighbour), D average-pools its input down to the current resolution and, during
a fade-in, interpolates it with the upsampled half-resolution image, as the paper does for real
images (sec. 2 and appendix A.1); real and fake images get the same treatment. G uses pixel norm
(sec. 4.2) and He initialisation; equalised learning rate and the minibatch-stddev layer are left
out (the latter couples the samples of a batch, which gradient penalties forbid).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.nets.attention import SelfAttention, attention_position
from genlab.nets.base import ATTENTION, GAN_ARCHS, require_kind, upsampling_plan
from genlab.nets.style import pixel_norm
from genlab.options import Field, Option, declare


def growth_state(step: int, phase_steps: int, n: int) -> tuple[int, float]:
    """(stage, alpha) after ``step`` G updates: stage k works at side s0 * 2**k. Phase 0 is the
    stable s0 phase; phases 2k - 1 and 2k are stage k's fade-in (alpha = fraction done) and
    stable phase; from phase 2n + 1 on the nets stay at stage n with alpha = 1."""
    phase, done = divmod(step, phase_steps)
    if phase >= 2 * n + 1:
        return n, 1.0
    stage = (phase + 1) // 2
    return stage, (done / phase_steps if phase % 2 else 1.0)


class PixelNorm(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return pixel_norm(x)


def he_init(module: nn.Module) -> None:
    """He (Kaiming) normal weights for LeakyReLU 0.2, zero biases (ProGAN sec. 4.1)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.kaiming_normal_(m.weight, a=0.2)
            nn.init.zeros_(m.bias)


def conv_act(ch_in: int, ch_out: int, norm: bool) -> list[nn.Module]:
    layers = [nn.Conv2d(ch_in, ch_out, 3, 1, 1), nn.LeakyReLU(0.2)]
    return layers + [PixelNorm()] if norm else layers


class _Growing(nn.Module):
    """The growth state shared by G and D: a step buffer and the schedule."""

    def __init__(self, n: int, phase_steps: int) -> None:
        super().__init__()
        self.n, self.phase_steps = n, phase_steps
        self.register_buffer("growth_step", torch.zeros((), dtype=torch.long))

    def set_step(self, step: int) -> None:
        """Set the growth state from the number of completed G updates."""
        self.growth_step.fill_(step)

    def _state(self) -> tuple[int, float]:
        return growth_state(int(self.growth_step), self.phase_steps, self.n)

    @property
    def stage(self) -> int:
        return self._state()[0]

    @property
    def alpha(self) -> float:
        """Weight of the newest resolution's layers (1 outside fade-ins)."""
        return self._state()[1]

    @property
    def resolution(self) -> int:
        """The side the network currently works at."""
        return self.start * 2**self.stage


class ProgressiveGenerator(_Growing):
    """z (B, latent_dim) -> image (B, C, size, size) in [-1, 1], generated at the current
    resolution and upsampled (nearest). During a fade-in the output is (1 - alpha) *
    upsampled(previous toRGB) + alpha * new toRGB (ProGAN fig. 2b), after tanh."""

    def __init__(
        self,
        *,
        latent_dim: int,
        channels: int,
        size: int,
        width: int,  # channels at full resolution; width * 2**n at the start side
        phase_steps: int,  # steps of each fade-in and each stable phase
        attention: int = 0,  # SAGAN self-attention after the block at this side (0 = none)
    ):
        start, n = upsampling_plan("progressive", size)
        super().__init__(n, phase_steps)
        self.latent_dim, self.start = latent_dim, start
        at = attention_position(attention, [start * 2**k for k in range(n + 1)])
        ch = width * 2**n
        blocks = [
            nn.Sequential(
                nn.ConvTranspose2d(latent_dim, ch, start), nn.LeakyReLU(0.2), PixelNorm(),
                *conv_act(ch, ch, norm=True),
            )
        ]  # fmt: skip
        to_rgb = [nn.Conv2d(ch, channels, 1)]
        for _ in range(n):
            blocks.append(nn.Sequential(
                nn.Upsample(scale_factor=2, mode="nearest"),
                *conv_act(ch, ch // 2, norm=True), *conv_act(ch // 2, ch // 2, norm=True),
            ))  # fmt: skip
            ch //= 2
            to_rgb.append(nn.Conv2d(ch, channels, 1))
        if at is not None:
            blocks[at].append(SelfAttention(to_rgb[at].in_channels))
        self.blocks, self.to_rgb = nn.ModuleList(blocks), nn.ModuleList(to_rgb)
        he_init(self)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        stage, alpha = self._state()
        x = pixel_norm(z)[:, :, None, None]  # z on the hypersphere (ProGAN appendix A.1)
        for block in self.blocks[:stage]:
            x = block(x)
        new = torch.tanh(self.to_rgb[stage](self.blocks[stage](x)))
        if alpha < 1:
            old = torch.tanh(self.to_rgb[stage - 1](x))
            new = torch.lerp(F.interpolate(old, scale_factor=2, mode="nearest"), new, alpha)
        if stage < self.n:
            new = F.interpolate(new, scale_factor=2 ** (self.n - stage), mode="nearest")
        return new


class ProgressiveDiscriminator(_Growing):
    """Full-resolution image -> one logit per sample, scored at the current resolution. No batch
    norm (per-sample outputs, as gradient penalties need)."""

    def __init__(
        self,
        *,
        channels: int,
        size: int,
        width: int,  # channels at full resolution; width * 2**n at the start side
        phase_steps: int,  # steps of each fade-in and each stable phase
        attention: int = 0,  # SAGAN self-attention after the layers at this side (0 = none)
    ):
        start, n = upsampling_plan("progressive", size)
        super().__init__(n, phase_steps)
        self.start = start
        at = attention_position(attention, [start * 2**k for k in range(n + 1)])
        chs = [width * 2 ** (n - k) for k in range(n + 1)]  # channels at side start * 2**k
        self.from_rgb = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, c, 1), nn.LeakyReLU(0.2)) for c in chs
        )
        blocks = [nn.Sequential(*conv_act(chs[0], chs[0], norm=False))]
        for k in range(1, n + 1):
            blocks.append(nn.Sequential(*conv_act(chs[k], chs[k], norm=False),
                                        *conv_act(chs[k], chs[k - 1], norm=False)))  # fmt: skip
        if at is not None:
            blocks[at].append(SelfAttention(chs[at - 1] if at else chs[0]))
        for k in range(1, n + 1):
            blocks[k].append(nn.AvgPool2d(2))
        blocks[0].append(nn.Conv2d(chs[0], 1, start))
        self.blocks = nn.ModuleList(blocks)
        he_init(self)

    def blend_input(self, x: Tensor) -> Tensor:
        """The full-resolution input at the current resolution: average-pooled, and during a
        fade-in alpha * x + (1 - alpha) * upsampled(half-resolution x) (ProGAN sec. 2)."""
        stage, alpha = self._state()
        if stage < self.n:
            x = F.avg_pool2d(x, 2 ** (self.n - stage))
        if alpha < 1:
            half = F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest")
            x = torch.lerp(half, x, alpha)
        return x

    def forward(self, x: Tensor) -> Tensor:
        stage, alpha = self._state()
        x = self.blend_input(x)
        h = self.blocks[stage](self.from_rgb[stage](x))
        if alpha < 1:
            h = torch.lerp(self.from_rgb[stage - 1](F.avg_pool2d(x, 2)), h, alpha)
        for block in reversed(self.blocks[:stage]):
            h = block(h)
        return h.flatten(1).squeeze(1)


@GAN_ARCHS.register("progressive")
@declare(attention=ATTENTION, phase_steps=Option(int, Field(500, ge=1)))  # steps of each phase
def build_progressive(meta: dict, cfg) -> dict[str, nn.Module]:
    """ProGAN G and D growing from s0 x s0 to the dataset's side."""
    require_kind("progressive", meta, "image")
    channels, size, _ = meta["shape"]
    width = cfg.width or 64
    common = {"channels": channels, "size": size, "width": width, "attention": cfg.attention}
    return {
        "G": ProgressiveGenerator(latent_dim=cfg.latent_dim, phase_steps=cfg.phase_steps, **common),
        "D": ProgressiveDiscriminator(phase_steps=cfg.phase_steps, **common),
    }
