"""pix2pix's networks (Isola et al. 2017, sec. 3.2): a U-Net G on the source and a PatchGAN D
on the channel-wise concatenation (source, image), the conditional D of eq. 1.

The source enters both nets as a float image of the target's side: a label map (int64 class per
pixel) one-hot encoded to ``meta["label_classes"]`` channels; a lower-resolution source (super
resolution, photos_sr 8x8 -> 32x32) upsampled bicubically to the target side and clamped to
[-1, 1] (bicubic overshoots), so pix2pix also serves as a super-resolution baseline.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from genlab.data.base import field_kind
from genlab.errors import ArchitectureError
from genlab.families.translation import one_hot_map
from genlab.nets.base import dcgan_init
from genlab.nets.patchgan import PatchGAN, receptive_field
from genlab.nets.unet import UNet
from genlab.registry import Registry

P2P_ARCHS: Registry = Registry("arch")

DEFAULT_WIDTH = 32  # base width when the variant leaves ``width`` unset (the paper: 64)


class SourceInput(nn.Module):
    """Raw source batch -> (B, channels, size, size) float: one-hot label maps, bicubic
    upsampling of a smaller image. No parameters."""

    def __init__(
        self,
        *,
        kind: str,  # the source field's kind: "image" or "labelmap"
        channels: int,  # image channels, or the label map's classes (one-hot channels)
        size: int,  # the target side the source is brought to
    ):
        super().__init__()
        if kind not in ("image", "labelmap"):
            raise ArchitectureError(f"pix2pix source of kind {kind!r}; allowed: image, labelmap")
        self.kind, self.channels, self.size = kind, channels, size

    def forward(self, source: Tensor) -> Tensor:
        if self.kind == "labelmap":
            return one_hot_map(source, self.channels)
        if source.shape[-1] != self.size or source.shape[-2] != self.size:
            up = F.interpolate(source.float(), size=(self.size, self.size), mode="bicubic",
                               align_corners=False)  # fmt: skip
            return up.clamp(-1, 1)
        return source


class Pix2PixGenerator(nn.Module):
    """G(source): the U-Net on the prepared source (``condition``), so callers (the sampler, the
    metrics) feed the dataset's raw source field."""

    def __init__(self, source: SourceInput, unet: UNet):
        super().__init__()
        self.source, self.unet = source, unet

    def condition(self, source: Tensor) -> Tensor:
        """The source as the nets see it (what D's input concatenates with the image)."""
        return self.source(source)

    def translate(self, condition: Tensor) -> Tensor:
        """G on an already prepared source."""
        return self.unet(condition)

    def forward(self, source: Tensor) -> Tensor:
        return self.unet(self.source(source))


def source_input(meta: dict) -> SourceInput:
    """The ``SourceInput`` of a translation dataset's meta.json."""
    size = meta["shape"][-1]
    kind = field_kind(meta, "source")
    source_shape = meta.get("source_shape", meta["shape"])
    c_in = int(meta["label_classes"] if kind == "labelmap" else source_shape[0])
    if source_shape[-1] > size:
        raise ArchitectureError(
            f"pix2pix maps a source of side {source_shape[-1]} to a target of side {size}; "
            "it upsamples a smaller source but does not downsample a larger one"
        )
    return SourceInput(kind=kind, channels=c_in, size=size)


def patch_layers(cfg, size: int) -> int:
    """PatchGAN depth: the variant's ``patch_layers``, or (None) the most stride-2 layers whose
    receptive field is at most half the image side, at least 1 (256 -> 3: the paper's 70x70;
    32 -> 1: 16x16 patches; 8 -> 1)."""
    if cfg.patch_layers is not None:
        return cfg.patch_layers
    layers = 1
    while receptive_field(layers + 1) <= size // 2:
        layers += 1
    return layers


@P2P_ARCHS.register("unet")
def build_unet(meta: dict, cfg) -> dict[str, nn.Module]:
    """G: U-Net on the prepared source; D: PatchGAN on concat(prepared source, image) (only
    when ``adversarial``: the L1-only ablation has no D). DCGAN's N(0, 0.02) initialisation, as
    in the paper's appendix 6.2."""
    channels, size = meta["shape"][0], meta["shape"][-1]
    source = source_input(meta)
    width = cfg.width or DEFAULT_WIDTH
    G = Pix2PixGenerator(
        source,
        UNet(in_channels=source.channels, out_channels=channels, size=size, width=width),
    )
    nets: dict[str, nn.Module] = {"G": G}
    if cfg.adversarial:
        nets["D"] = PatchGAN(
            in_channels=source.channels + channels,
            width=width,
            layers=patch_layers(cfg, size),
            norm="batch",
        )
    for net in nets.values():
        dcgan_init(net)
    return nets


__all__ = ["P2P_ARCHS", "Pix2PixGenerator", "SourceInput", "build_unet", "patch_layers"]
