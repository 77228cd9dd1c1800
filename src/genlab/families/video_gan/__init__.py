"""The video_gan family: MoCoGAN (Tulyakov et al. 2018), small. A clip's content code z_C is
drawn once, its motion codes come from a recurrent net driven by per-frame noise, an image
generator shared across frames decodes [z_C, z_M^(t)]; an image discriminator judges single
frames and a video discriminator (3-D convolutions) clips (``nets``, ``trainer``)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from genlab.families.base import Family, register, requires_fields
from genlab.families.gan import GAN
from genlab.families.video_gan.figures import video_figures
from genlab.families.video_gan.nets import VIDEO_ARCHS
from genlab.families.video_gan.trainer import VIDEO_LOSSES, MoCoGANTrainer, latent
from genlab.options import Field, Option


class ClipSampler:
    """Unconditional clips: z_C, h_0 and eps seeded by the sample seed; at most the dataset's
    ``n_train`` clips (no more than ``evaluate`` scores, which keeps samples.pt small)."""

    def __init__(self, G: nn.Module, meta: dict) -> None:
        self.G, self.most = G, int(meta.get("n_train", 10**9))

    def inputs(
        self, seed: int, n: int, device: torch.device | str, data: dict | None = None
    ) -> dict[str, Any]:
        gen = torch.Generator(device).manual_seed(seed)
        z_c, eps, h0 = latent(self.G, min(n, self.most), self.G.frames, gen, device)
        return {"z_content": z_c, "eps": eps, "h0": h0, "generator": gen}

    @torch.no_grad()
    def generate(self, inputs: dict[str, Any], batch_size: int) -> Tensor:
        """Clips (N, T, C, H, W) float32 on the CPU, ``batch_size`` frames per chunk."""
        step = max(1, batch_size // self.G.frames)
        parts = zip(*(inputs[k].split(step) for k in ("z_content", "eps", "h0")), strict=True)
        return torch.cat([self.G(*p).float().cpu() for p in parts])

    def interpolation(self, inputs: dict[str, Any], rows: int, steps: int, batch_size: int):
        return None  # content_motion.png shows the latent structure instead

    def saved(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {k: inputs[k].cpu() for k in ("z_content", "eps", "h0")}


def sampler(modules: dict[str, nn.Module], cfg, meta: dict) -> ClipSampler:
    return ClipSampler(modules["G"], meta)


VIDEO_GAN = register(
    Family(
        name="video_gan",
        archs=VIDEO_ARCHS,
        losses=VIDEO_LOSSES,
        default_loss="nonsaturating",
        trainer=MoCoGANTrainer,
        sampler=sampler,
        generator="G",
        figures=video_figures,
        sections={
            "Video": "MoCoGAN (Tulyakov et al. 2018): a content code fixed per clip and motion "
            "codes from a GRU driven by per-frame noise, decoded frame by frame by one image "
            "generator; an image discriminator on single frames and a 3-D convolutional video "
            "discriminator on clips. `frame_frechet`: Fréchet distance of the evaluator's "
            "features of every frame; `class_consistency`: share of clips whose digit the "
            "evaluator reads the same in every frame."
        },
        captions={
            "content_motion": "MoCoGAN's decomposition: top, one content code under four "
            "motions; bottom, one motion under four content codes (frames left to right)",
        },
        options={
            "optimizer_d": GAN.options["optimizer_d"],  # D_I's and D_V's; None = ``optimizer``
            # dimension of the motion codes z_M and of the GRU's noise eps (10 in the paper)
            "video_motion_dim": Option(int, Field(10, ge=1, le=4096)),
            # first-layer channels of D_I and D_V; None = ``width`` (G's)
            "video_d_width": Option(int | None, Field(None, ge=1, le=4096)),
            # std of the Gaussian noise added before every layer of D_I and D_V (authors' code)
            "video_d_noise": Option(float, Field(0.0, ge=0, le=10)),
            # distinct random frames of each clip D_I judges (the paper: one, its image batch
            # drawn from as many clips as the video batch)
            "video_image_frames": Option(int, Field(1, ge=1, le=4096)),
            # frames of the sub-clips D_V judges (the paper's T); None = the whole clip
            "video_d_frames": Option(int | None, Field(None, ge=1, le=4096)),
        },
        check=requires_fields(x="video"),
    )
)

__all__ = ["VIDEO_ARCHS", "VIDEO_GAN", "VIDEO_LOSSES", "ClipSampler", "sampler"]
