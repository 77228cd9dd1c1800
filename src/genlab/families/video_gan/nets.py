"""MoCoGAN's networks (Tulyakov et al. 2018, sec. 3), small: the motion RNN R_M (a GRU cell),
the image generator G_I (a DCGAN generator shared across frames), the image discriminator D_I
(a DCGAN discriminator on single frames) and the video discriminator D_V (3-D convolutions on
clips, as the paper's D_V); optionally the Gaussian noise the authors' code adds inside both
discriminators (``video_d_noise``)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from genlab.errors import ArchitectureError
from genlab.nets.base import dcgan_init
from genlab.nets.dcgan import up_block
from genlab.registry import Registry
from genlab.shapes import upsampling_plan

DEFAULT_WIDTH = 16
VIDEO_ARCHS: Registry = Registry("arch")


class MoCoGANGenerator(nn.Module):
    """(z_C, eps, h_0) -> clip. The content code z_C (N, content_dim) is fixed for the clip; the
    motion codes z_M^(1..T) are the hidden states of a GRU cell R_M driven by i.i.d. Gaussian
    noise eps^(t) (N, T, motion_dim) from the initial state h_0 (N, motion_dim), Gaussian too
    as in the authors' code (sec. 3.1); frame t is G_I([z_C, z_M^(t)]), G_I shared by all frames
    (sec. 3.2, fig. 2)."""

    def __init__(
        self,
        *,
        content_dim: int,  # z_C's dimension (the variant's latent_dim)
        motion_dim: int,  # z_M's and eps's dimension (video_motion_dim)
        frames: int,  # the clip length T the sampler generates
        channels: int,
        size: int,
        width: int,
    ) -> None:
        super().__init__()
        self.content_dim, self.motion_dim, self.frames = content_dim, motion_dim, frames
        self.rnn = nn.GRUCell(motion_dim, motion_dim)
        self.image = FrameGenerator(
            latent_dim=content_dim + motion_dim, channels=channels, size=size, width=width
        )

    def motion(self, eps: Tensor, h0: Tensor) -> Tensor:
        """z_M^(t) = R_M(eps^(t), z_M^(t-1)), z_M^(0) = h_0: (N, T, motion_dim)."""
        h, out = h0, []
        for t in range(eps.shape[1]):
            h = self.rnn(eps[:, t], h)
            out.append(h)
        return torch.stack(out, dim=1)

    def codes(self, z_content: Tensor, eps: Tensor, h0: Tensor) -> Tensor:
        """G_I's input of every frame, [z_C, z_M^(t)]: (N, T, content_dim + motion_dim)."""
        z_motion = self.motion(eps, h0)
        z_c = z_content[:, None].expand(-1, z_motion.shape[1], -1)
        return torch.cat([z_c, z_motion], dim=-1)

    def decode(self, codes: Tensor) -> Tensor:
        """G_I on each code of ``codes`` (N, L, content_dim + motion_dim): (N, L, C, H, W)."""
        return self.image(codes.flatten(0, 1)).unflatten(0, codes.shape[:2])

    def forward(self, z_content: Tensor, eps: Tensor, h0: Tensor) -> Tensor:
        """Clips (N, T, C, H, W) in [-1, 1], T = eps.shape[1]."""
        return self.decode(self.codes(z_content, eps, h0))


class FrameGenerator(nn.Module):
    """G_I: z (N, latent_dim) -> frame (N, C, H, W) in [-1, 1]. DCGAN's generator (Radford et al.
    2016, fig. 1): project to start x start, transposed convolutions with batch norm and ReLU
    doubling the side and halving the channels (from width * 2**(n-1) down to width); the last
    doubling is a sub-pixel convolution (Shi et al. 2016: a 3 x 3 convolution to C * 4 channels,
    rearranged to 2 x 2 pixels) followed by Tanh. It decodes every frame of every clip, so it
    has no full-size hidden layer, and the sub-pixel step is about twice as fast on a CPU as a
    transposed convolution to one channel."""

    def __init__(self, *, latent_dim: int, channels: int, size: int, width: int) -> None:
        super().__init__()
        start, n = upsampling_plan("mocogan", size)
        ch = width * 2 ** (n - 1)
        layers = up_block(latent_dim, ch, kernel_size=start, stride=1, padding=0)
        for _ in range(n - 1):
            layers += up_block(ch, ch // 2, kernel_size=4, stride=2, padding=1)
            ch //= 2
        layers += [nn.Conv2d(ch, channels * 4, 3, 1, 1), nn.PixelShuffle(2), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.latent_dim = latent_dim

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z[:, :, None, None])


class Noise(nn.Module):
    """Adds Gaussian noise of standard deviation ``sigma`` to its input in training mode: the
    authors' code puts it before every layer of both discriminators (``--noise_sigma``), which
    keeps them from separating real and generated data perfectly early on (instance noise;
    Sonderby et al. 2017, sec. 5). Drawn from the global RNG, which the driver seeds and
    checkpoints."""

    def __init__(self, sigma: float) -> None:
        super().__init__()
        self.sigma = sigma

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.sigma == 0:
            return x
        return x + self.sigma * torch.randn_like(x)


def _block(conv: nn.Module, ch_out: int, norm: type[nn.Module] | None, sigma: float):
    """Noise, the strided convolution, its batch norm (none on the input layer), LeakyReLU."""
    return [Noise(sigma), conv, *([norm(ch_out)] if norm else []), nn.LeakyReLU(0.2)]


class ImageDiscriminator(nn.Module):
    """D_I: one logit per frame (N, C, H, W) -> (N,). DCGAN's discriminator (Radford et al.
    2016): stride-2 4 x 4 convolutions doubling the channels from ``width`` down to a start x
    start map, batch norm but on the input layer, LeakyReLU 0.2, a start x start convolution to
    the logit; ``Noise(sigma)`` before every convolution."""

    def __init__(self, *, channels: int, size: int, width: int, sigma: float = 0.0) -> None:
        super().__init__()
        start, n = upsampling_plan("mocogan", size)
        ch, layers = width, []
        for k in range(n):
            ch_in = channels if k == 0 else ch // 2
            norm = nn.BatchNorm2d if k else None
            layers += _block(nn.Conv2d(ch_in, ch, 4, 2, 1, bias=not norm), ch, norm, sigma)
            ch *= 2
        layers += [Noise(sigma), nn.Conv2d(ch // 2, 1, start)]
        self.net = nn.Sequential(*layers)

    def forward(self, frames: Tensor) -> Tensor:
        if frames.dim() != 4:
            raise ValueError(f"D_I takes frames (N, C, H, W), got {tuple(frames.shape)}")
        return self.net(frames).flatten()


class VideoDiscriminator(nn.Module):
    """D_V: one logit per clip (N, T, C, H, W) -> (N,): 3 x 4 x 4 convolutions of stride 2 in
    time and space (T -> ceil(T / 2)) doubling the channels from ``width`` down to a start x
    start map, batch norm but on the input layer, LeakyReLU 0.2, a 1 x start x start
    convolution to one logit per remaining time step, averaged over time (any clip length);
    ``Noise(sigma)`` before every convolution."""

    def __init__(self, *, channels: int, size: int, width: int, sigma: float = 0.0) -> None:
        super().__init__()
        start, n = upsampling_plan("mocogan", size)
        ch, layers = width, []
        for k in range(n):
            ch_in = channels if k == 0 else ch // 2
            norm = nn.BatchNorm3d if k else None
            conv = nn.Conv3d(ch_in, ch, (3, 4, 4), stride=2, padding=1, bias=not norm)
            layers += _block(conv, ch, norm, sigma)
            ch *= 2
        layers += [Noise(sigma), nn.Conv3d(ch // 2, 1, (1, start, start))]
        self.net = nn.Sequential(*layers)

    def forward(self, clips: Tensor) -> Tensor:
        if clips.dim() != 5:
            raise ValueError(f"D_V takes clips (N, T, C, H, W), got {tuple(clips.shape)}")
        return self.net(clips.transpose(1, 2)).flatten(1).mean(1)


def init_weights(module: nn.Module) -> None:
    """DCGAN initialisation (``dcgan_init``), extended to the 3-D layers."""
    dcgan_init(module)
    for m in module.modules():
        if isinstance(m, nn.Conv3d):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm3d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


@VIDEO_ARCHS.register("mocogan")
def build(meta: dict, cfg) -> dict[str, nn.Module]:
    """G (R_M + G_I), D_I and D_V for a dataset of clips (meta ``shape`` [T, C, H, W])."""
    if len(meta.get("shape", [])) != 4:
        raise ArchitectureError(
            f"arch 'mocogan' needs clips (meta shape [frames, channels, height, width]); "
            f"dataset {meta.get('name', '?')!r} has shape {meta.get('shape')}"
        )
    frames, channels, size, _ = meta["shape"]
    width = cfg.width or DEFAULT_WIDTH
    d_width, sigma = cfg.video_d_width or width, cfg.video_d_noise
    nets = {
        "G": MoCoGANGenerator(content_dim=cfg.latent_dim, motion_dim=cfg.video_motion_dim,
                              frames=frames, channels=channels, size=size, width=width),
        "D_I": ImageDiscriminator(channels=channels, size=size, width=d_width, sigma=sigma),
        "D_V": VideoDiscriminator(channels=channels, size=size, width=d_width, sigma=sigma),
    }  # fmt: skip
    for net in nets.values():
        init_weights(net)
    return nets
