"""Convolutional VAE (Kingma & Welling 2014): Gaussian encoder, Bernoulli or Gaussian decoder.

The encoder mirrors the DCGAN discriminator and ends in 2 * latent_dim channels (mu, log
sigma^2); the decoder is the DCGAN generator without the output activation. The conditional VAE
(Sohn et al. 2015) gives both the label: one-hot maps as extra encoder channels, the one-hot vector
appended to z; it is then called ``encode(x, y)``, ``decode(z, y)``, ``vae(z, y)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.nets.base import VAE_ARCHS, require_kind
from genlab.nets.conditional import dataset_classes
from genlab.nets.dcgan import Discriminator, Generator


class ConvVAE(nn.Module):
    """Images in [-1, 1]. Bernoulli decoder: targets (x + 1) / 2, outputs logits. Gaussian
    decoder: mean in data space and one learned log sigma shared by all pixels."""

    def __init__(self, *, latent_dim: int, channels: int, size: int, width: int, likelihood: str,
                 num_classes: int = 0):  # fmt: skip
        super().__init__()
        self.latent_dim = self.noise_dim = latent_dim
        self.likelihood = likelihood
        self.num_classes = num_classes  # > 0: conditional on a label y
        self.encoder = Discriminator(
            channels=channels + num_classes, size=size, width=width, dim_out=2 * latent_dim
        )
        self.decoder = Generator(
            latent_dim=latent_dim + num_classes, channels=channels, size=size, width=width, out=None
        )
        self.log_sigma = nn.Parameter(torch.zeros(()), requires_grad=likelihood == "gaussian")

    def _onehot(self, y: Tensor | None, like: Tensor) -> Tensor:
        if y is None:
            raise ValueError("this conditional VAE needs the labels y")
        return F.one_hot(y, self.num_classes).to(like.dtype)

    def encode(self, x: Tensor, y: Tensor | None = None) -> tuple[Tensor, Tensor]:
        if self.num_classes:
            maps = self._onehot(y, x)[:, :, None, None].expand(-1, -1, *x.shape[2:])
            x = torch.cat([x, maps], 1)
        h = self.encoder.net(x).flatten(1)
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if self.num_classes:
            z = torch.cat([z, self._onehot(y, z)], 1)
        return self.decoder(z)

    def log_likelihood(self, x: Tensor, decoded: Tensor) -> Tensor:
        """log p(x | z) in nats per sample, summed over pixels."""
        decoded = decoded.float()
        if self.likelihood == "bernoulli":
            target = (x.float() + 1) / 2
            ll = -F.binary_cross_entropy_with_logits(decoded, target, reduction="none")
        else:
            sigma2 = (2 * self.log_sigma).exp()
            ll = -0.5 * ((x - decoded) ** 2 / sigma2 + 2 * self.log_sigma + math.log(2 * math.pi))
        return ll.flatten(1).sum(1)

    def mean(self, decoded: Tensor) -> Tensor:
        """The decoder's mean image, in [-1, 1] for the Bernoulli decoder."""
        return torch.sigmoid(decoded) * 2 - 1 if self.likelihood == "bernoulli" else decoded

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        """Generate: decode z from the prior (given y if conditional) to the mean image."""
        return self.mean(self.decode(z, y))


@VAE_ARCHS.register("conv_vae")
def build_conv_vae(meta: dict, cfg) -> dict[str, nn.Module]:
    require_kind("conv_vae", meta, "image")
    channels, size, _ = meta["shape"]
    return {
        "vae": ConvVAE(
            latent_dim=cfg.latent_dim,
            channels=channels,
            size=size,
            width=cfg.width or 32,
            likelihood=cfg.likelihood,
            num_classes=dataset_classes(meta, "conditional: true") if cfg.conditional else 0,
        )
    }
