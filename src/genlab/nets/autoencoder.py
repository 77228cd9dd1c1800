"""Autoencoder discriminators for EBGAN (Zhao et al. 2017): D(x) = ||Dec(Enc(x)) - x||^2 / dim,
the energy, one value per sample. The last forward's embeddings are kept in ``embedding`` for
the pulling-away term. G is the arch's usual generator.

``dcgan_ae`` normalises its encoder and decoder as ``d_norm`` says (batch, none or layer); with
none or layer the energy of a sample depends on that sample alone, as the regularisers that
refuse batch norm need. ``mlp_ae``'s MLPs have no normalisation, like the ``mlp`` critic, and
it does not read ``d_norm`` (its default, batch, would change every existing mlp_ae run)."""

from __future__ import annotations

from torch import Tensor, nn

from genlab.nets.base import D_NORM, DEPTH, GAN_ARCHS, dcgan_init, per_sample_critic, require_kind
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
@declare(d_norm=D_NORM, check=per_sample_critic)
def build_dcgan_ae(meta: dict, cfg) -> dict[str, nn.Module]:
    """DCGAN generator; D = DCGAN encoder to a ``latent_dim`` code + DCGAN decoder (Tanh), both
    normalised as ``d_norm`` says."""
    require_kind("dcgan_ae", meta, "image")
    channels, size, _ = meta["shape"]
    width = cfg.width or 64
    shape = {"channels": channels, "size": size, "width": width}
    encoder = Discriminator(**shape, dim_out=cfg.latent_dim, norm=cfg.d_norm)
    nets = {
        "G": Generator(latent_dim=cfg.latent_dim, **shape),
        "D": AutoencoderDiscriminator(
            _ConvEncoder(encoder),
            Generator(latent_dim=cfg.latent_dim, **shape, norm=cfg.d_norm),
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
