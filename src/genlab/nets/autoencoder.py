"""Autoencoder discriminators for EBGAN (Zhao et al. 2017): D(x) = ||Dec(Enc(x)) - x||^2 / dim,
the energy, one value per sample. The last forward's embeddings are kept in ``embedding`` for
the pulling-away term. G is the arch's usual generator."""

from __future__ import annotations

from torch import Tensor, nn

from genlab.nets.base import DEPTH, GAN_ARCHS, dcgan_init, require_kind
from genlab.nets.dcgan import Discriminator, Generator
from genlab.nets.mlp import mlp
from genlab.options import declare


class AutoencoderDiscriminator(nn.Module):
    def __init__(self, encoder: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.embedding: Tensor | None = None

    def forward(self, x: Tensor) -> Tensor:
        self.embedding = self.encoder(x)
        return (self.decoder(self.embedding) - x).pow(2).flatten(1).mean(1)


class _ConvEncoder(nn.Module):
    def __init__(self, trunk: Discriminator) -> None:
        super().__init__()
        self.net = trunk.net

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).flatten(1)


@GAN_ARCHS.register("dcgan_ae")
def build_dcgan_ae(meta: dict, cfg) -> dict[str, nn.Module]:
    """DCGAN generator; D = DCGAN encoder to a ``latent_dim`` code + DCGAN decoder (Tanh)."""
    require_kind("dcgan_ae", meta, "image")
    channels, size, _ = meta["shape"]
    width = cfg.width or 64
    encoder = Discriminator(channels=channels, size=size, width=width, dim_out=cfg.latent_dim)
    nets = {
        "G": Generator(latent_dim=cfg.latent_dim, channels=channels, size=size, width=width),
        "D": AutoencoderDiscriminator(
            _ConvEncoder(encoder),
            Generator(latent_dim=cfg.latent_dim, channels=channels, size=size, width=width),
        ),
    }
    for net in nets.values():
        dcgan_init(net)
    return nets


@GAN_ARCHS.register("mlp_ae")
@declare(depth=DEPTH)
def build_mlp_ae(meta: dict, cfg) -> dict[str, nn.Module]:
    """MLP generator; D = MLP encoder to a ``latent_dim`` code + MLP decoder, for 2-D points."""
    require_kind("mlp_ae", meta, "points")
    width, dim = cfg.width or 128, meta["shape"][0]
    return {
        "G": mlp(cfg.latent_dim, dim, width, cfg.depth, nn.ReLU),
        "D": AutoencoderDiscriminator(
            mlp(dim, cfg.latent_dim, width, cfg.depth, nn.ReLU),
            mlp(cfg.latent_dim, dim, width, cfg.depth, nn.ReLU),
        ),
    }
