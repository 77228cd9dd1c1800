"""The networks of the two unpaired families, by arch name: G (A -> B), F (B -> A) and the
discriminators D_A (domain A) and D_B (domain B). A builder reads the image shape of each domain
from the dataset's meta.json and the variant keys it declares."""

from __future__ import annotations

from torch import nn

from genlab.errors import ArchitectureError
from genlab.nets.base import dcgan_init
from genlab.nets.patchgan import PatchGAN
from genlab.nets.srresnet import RESIDUAL_BLOCKS
from genlab.nets.translators import DiscoDiscriminator, EncoderDecoderGenerator, ResnetGenerator
from genlab.options import Field, Option, declare
from genlab.registry import Registry

CYCLEGAN_ARCHS: Registry = Registry("arch")
DISCOGAN_ARCHS: Registry = Registry("arch")

DEFAULT_WIDTH = 16  # ``width: null``: base width of G and D (the papers' 64, sized for 32 x 32)


def domain_shapes(meta: dict) -> tuple[list[int], list[int]]:
    """[C, H, W] of domain A (field ``x``: meta "shape") and of domain B (field ``x_b``:
    meta "shape_b" when the dataset writes it, else the same as A)."""
    shape_a = list(meta["shape"])
    return shape_a, list(meta.get("shape_b", shape_a))


def _init(nets: dict[str, nn.Module]) -> dict[str, nn.Module]:
    """Weights N(0, 0.02), as both papers' code initialises them (batch-norm scales N(1, 0.02))."""
    for net in nets.values():
        dcgan_init(net)
    return nets


@CYCLEGAN_ARCHS.register("resnet")
@declare(
    residual_blocks=RESIDUAL_BLOCKS,  # R4k blocks of each generator (SRGAN's key: default 4)
    cycle_patch_layers=Option(int, Field(1, ge=1)),  # stride-2 layers of the PatchGANs
)
def resnet(meta: dict, cfg) -> dict[str, nn.Module]:
    """CycleGAN (Zhu et al. 2017, appendix 7.2): ResNet generators, PatchGAN discriminators with
    instance norm. ``cycle_patch_layers`` = 3 is the paper's 70 x 70 PatchGAN for 256 x 256
    images; the default 1 sees 16 x 16 patches of a 32 x 32 image (2: 34 x 34, the whole image),
    which translated digits_fonts as well as 2 and faster."""
    (ca, *_), (cb, *_) = domain_shapes(meta)
    width = cfg.width or DEFAULT_WIDTH
    nets = {
        "G": ResnetGenerator(in_channels=ca, out_channels=cb, width=width,
                             residual_blocks=cfg.residual_blocks),
        "F": ResnetGenerator(in_channels=cb, out_channels=ca, width=width,
                             residual_blocks=cfg.residual_blocks),
        "D_A": PatchGAN(in_channels=ca, width=width, layers=cfg.cycle_patch_layers,
                        norm="instance"),
        "D_B": PatchGAN(in_channels=cb, width=width, layers=cfg.cycle_patch_layers,
                        norm="instance"),
    }  # fmt: skip
    if ca != cb and cfg.identity_weight > 0:
        raise ArchitectureError(
            f"identity_weight = {cfg.identity_weight} needs domains with the same channels "
            f"(G(b) is compared to b); here A has {ca} and B {cb}; set identity_weight: 0"
        )
    return _init(nets)


@DISCOGAN_ARCHS.register("encoder_decoder")
def encoder_decoder(meta: dict, cfg) -> dict[str, nn.Module]:
    """DiscoGAN (Kim et al. 2017, sec. 4): encoder-decoder generators and convolutional
    discriminators with batch norm, down to a 4 x 4 map."""
    (ca, size, _), (cb, *_) = domain_shapes(meta)
    width = cfg.width or DEFAULT_WIDTH
    nets = {
        "G": EncoderDecoderGenerator(in_channels=ca, out_channels=cb, size=size, width=width),
        "F": EncoderDecoderGenerator(in_channels=cb, out_channels=ca, size=size, width=width),
        "D_A": DiscoDiscriminator(channels=ca, size=size, width=width),
        "D_B": DiscoDiscriminator(channels=cb, size=size, width=width),
    }
    return _init(nets)
