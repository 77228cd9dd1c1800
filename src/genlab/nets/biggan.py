"""A small BigGAN (Brock, Donahue & Simonyan 2019), class-conditional, for 32x32 images and up.

G (BigGAN sec. 3 and appendix B, fig. 15 (a), (b)): a shared class embedding e(y); the
latent z split into one chunk per "slot" (hierarchical latent, sec. 4): the first chunk goes
through a linear layer to the 4 x 4 start map, each later chunk is concatenated with e(y) and
fed, through linear layers, to the gains and biases of the conditional batch norms of one
residual up block: BN(h) * (1 + gamma(c)) + beta(c) with c = [z_k, e(y)]. Then batch norm,
ReLU, a 3x3 convolution and tanh. Spectral norm on every convolution and linear layer of G
(sec. 3, following Zhang et al. 2019), not on the shared embedding (as the reference code).

D: residual down blocks (appendix B, fig. 15 (c)) to an 8 x 8 map, then blocks that keep the
size (the CIFAR-10 D of table 4: down, down, same, same at 32x32), ReLU, global sum pooling
and the projection head logit = psi(phi(x)) + <embed(y), phi(x)> (Miyato & Koyama 2018,
eq. 3); spectral norm on every layer, the embedding too.

Weights are initialised orthogonally (BigGAN sec. 4, "we employ Orthogonal Initialization");
spectral norm is PyTorch's ``torch.nn.utils.parametrizations.spectral_norm``, applied by the
``spectral_norm`` regulariser's own ``setup`` (one power iteration per training forward pass,
its vectors are buffers of the state dict, so a resume is exact). Channels stay ``width``
throughout (BigGAN's CIFAR nets use 4 * ch in every block); ``width = 64`` is small enough for
a CPU. The orthogonal regularisation of G is a training term (``genlab.objectives.orthogonal``,
``orthogonal: 1e-4``) and the truncation trick a sampling option (``z_truncation``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.data.base import DATASETS
from genlab.nets.base import GAN_ARCHS, ArchitectureError, require_kind
from genlab.nets.conditional import dataset_classes
from genlab.objectives.regularizers import SpectralNorm
from genlab.options import Field, Option, declare


def spectral_norm_all(module: nn.Module) -> nn.Module:
    """Every convolution, linear and embedding layer of ``module`` spectrally normalised, by the
    ``spectral_norm`` regulariser's own setup (one implementation of where SN goes)."""
    SpectralNorm().setup(module)
    return module


def orthogonal_init(module: nn.Module) -> None:
    """Orthogonal weights (Saxe et al. 2014) for convolutions, linear and embedding layers, zero
    biases; batch norm keeps PyTorch's (1, 0)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear, nn.Embedding)):
            nn.init.orthogonal_(m.weight)
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)


def block_count(size: int) -> int:
    """Up blocks of G from 4 x 4 to ``size`` (a power of two >= 8): 32 -> 3."""
    n = int(math.log2(size)) - 2 if size >= 8 else 0
    if n < 1 or 4 * 2**n != size:
        raise ArchitectureError(
            f"arch 'biggan' needs an image side 4 * 2**n (8, 16, 32, 64, ...); got {size}"
        )
    return n


class ClassConditionalBatchNorm2d(nn.Module):
    """BN(h) * (1 + gamma(c)) + beta(c): batch norm without its own affine, gain and bias
    linear (bias-free) in the conditioning vector c = [z chunk, shared embedding]
    (BigGAN appendix B: "class-conditional BatchNorm ... gains and biases ... linear
    projections of the shared embedding and the latent chunk")."""

    def __init__(self, channels: int, cond_dim: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gain = nn.Linear(cond_dim, channels, bias=False)
        self.bias = nn.Linear(cond_dim, channels, bias=False)

    def forward(self, h: Tensor, c: Tensor) -> Tensor:
        gain = 1 + self.gain(c)[:, :, None, None]
        return self.bn(h) * gain + self.bias(c)[:, :, None, None]


class GBlock(nn.Module):
    """Residual up block (BigGAN fig. 15 (b)): CBN, ReLU, 2x nearest upsampling, 3x3 conv, CBN,
    ReLU, 3x3 conv; the skip path upsamples and applies a 1x1 conv."""

    def __init__(self, ch_in: int, ch_out: int, cond_dim: int) -> None:
        super().__init__()
        self.bn1 = ClassConditionalBatchNorm2d(ch_in, cond_dim)
        self.conv1 = nn.Conv2d(ch_in, ch_out, 3, 1, 1)
        self.bn2 = ClassConditionalBatchNorm2d(ch_out, cond_dim)
        self.conv2 = nn.Conv2d(ch_out, ch_out, 3, 1, 1)
        self.skip = nn.Conv2d(ch_in, ch_out, 1)

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        h = F.interpolate(F.relu(self.bn1(x, c)), scale_factor=2, mode="nearest")
        h = self.conv2(F.relu(self.bn2(self.conv1(h), c)))
        return h + self.skip(F.interpolate(x, scale_factor=2, mode="nearest"))


class BigGANGenerator(nn.Module):
    """G(z, y): z (B, latent_dim) split into ``blocks + 1`` chunks (``torch.tensor_split``:
    sizes differ by at most one), y int64 class labels -> image (B, C, size, size) in [-1, 1]."""

    def __init__(
        self,
        *,
        latent_dim: int,  # size of z, split over the start map and the blocks
        num_classes: int,  # values y takes
        channels: int,  # image channels
        size: int,  # image side, 4 * 2**blocks
        width: int = 64,  # channels of every block
        shared_dim: int = 128,  # size of the shared class embedding e(y)
    ) -> None:
        super().__init__()
        blocks = block_count(size)
        if latent_dim < blocks + 1:
            raise ArchitectureError(
                f"arch 'biggan': latent_dim = {latent_dim} is split into one chunk per block "
                f"plus one; allowed: >= {blocks + 1}"
            )
        self.noise_dim = self.latent_dim = latent_dim
        self.num_classes, self.width, self.slots = num_classes, width, blocks + 1
        chunks = [len(c) for c in torch.arange(latent_dim).tensor_split(self.slots)]
        self.shared = nn.Embedding(num_classes, shared_dim)
        self.linear = nn.Linear(chunks[0], 4 * 4 * width)
        self.blocks = nn.ModuleList(
            GBlock(width, width, chunks[k + 1] + shared_dim) for k in range(blocks)
        )
        self.out_bn = nn.BatchNorm2d(width)
        self.out_conv = nn.Conv2d(width, channels, 3, 1, 1)

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        first, *rest = z.tensor_split(self.slots, dim=1)
        e = self.shared(y).to(z.dtype)
        h = self.linear(first).view(len(z), self.width, 4, 4)
        for block, chunk in zip(self.blocks, rest, strict=True):
            h = block(h, torch.cat([chunk, e], 1))
        return torch.tanh(self.out_conv(F.relu(self.out_bn(h))))


class DBlock(nn.Module):
    """Residual down block (BigGAN fig. 15 (c)): (ReLU), 3x3 conv, ReLU, 3x3 conv, 2x2 average
    pooling when ``down``; the skip path is a 1x1 conv (where the channels change or the size
    halves) and the pooling, pooled first in the input block that has no pre-activation."""

    def __init__(self, ch_in: int, ch_out: int, *, down: bool, preactivation: bool) -> None:
        super().__init__()
        self.down, self.preactivation = down, preactivation
        self.conv1 = nn.Conv2d(ch_in, ch_out, 3, 1, 1)
        self.conv2 = nn.Conv2d(ch_out, ch_out, 3, 1, 1)
        self.skip = nn.Conv2d(ch_in, ch_out, 1) if (ch_in != ch_out or down) else None

    def _pool(self, h: Tensor) -> Tensor:
        return F.avg_pool2d(h, 2) if self.down else h

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(x) if self.preactivation else x
        h = self._pool(self.conv2(F.relu(self.conv1(h))))
        if self.skip is None:
            return h + x
        if self.preactivation:
            return h + self._pool(self.skip(x))
        return h + self.skip(self._pool(x))


class BigGANDiscriminator(nn.Module):
    """D(x, y): residual blocks down to 8 x 8, two more at that size, ReLU, sum pooling, and the
    projection head psi(phi) + <embed(y), phi> (Miyato & Koyama 2018, eq. 3)."""

    conditional = True  # the trainer passes labels to D(x, y)

    def __init__(self, *, num_classes: int, channels: int, size: int, width: int = 64) -> None:
        super().__init__()
        down = block_count(size) - 1  # 32 -> 8: two halvings
        kinds = [True] * down + [False] * 2
        self.num_classes = num_classes
        self.blocks = nn.Sequential(
            *(DBlock(channels if k == 0 else width, width, down=d, preactivation=k > 0)
              for k, d in enumerate(kinds))
        )  # fmt: skip
        self.psi = nn.Linear(width, 1)
        self.embed = nn.Embedding(num_classes, width)

    def features(self, x: Tensor) -> Tensor:
        """phi(x): ReLU and global sum pooling of the last block's map."""
        return F.relu(self.blocks(x)).sum(dim=(2, 3))

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        phi = self.features(x)
        return self.psi(phi).squeeze(1) + (self.embed(y) * phi).sum(1)


def _labelled_images(name: str) -> bool:
    fields = DATASETS.get(name).fields
    return (fields.get("x", {}).get("kind"), fields.get("y", {}).get("kind")) == ("image", "class")


def _biggan_rules(v) -> None:
    """Refused at params load: a dataset without images and class labels, spectral norm asked
    for twice."""
    if not _labelled_images(v.dataset):
        allowed = [n for n in DATASETS.registered() if _labelled_images(n)]
        raise ValueError(
            f"arch = 'biggan' is a class-conditional image GAN, and dataset = {v.dataset!r} "
            "lacks images (field x of kind 'image') with class labels (field y of kind "
            f"'class'); allowed datasets: {', '.join(allowed)}"
        )
    if "spectral_norm" in v.regularizers:
        raise ValueError(
            "arch = 'biggan' with regularizer 'spectral_norm': BigGAN's G and D are spectrally "
            "normalised already; remove regularizers.spectral_norm"
        )


@GAN_ARCHS.register("biggan")
@declare(
    # size of BigGAN's shared class embedding e(y), fed with each z chunk to the CBN gains
    biggan_shared_dim=Option(int, Field(128, ge=1, le=4096)),
    check=_biggan_rules,
)
def build_biggan(meta: dict, cfg) -> dict[str, nn.Module]:
    """G and D of a small BigGAN for the dataset's (C, H, W) and its classes; orthogonal
    initialisation (global RNG), then spectral norm on G (not its shared embedding) and D."""
    require_kind("biggan", meta, "image")
    k = dataset_classes(meta, "arch = 'biggan'")
    channels, size, _ = meta["shape"]
    width = cfg.width or 64
    G = BigGANGenerator(latent_dim=cfg.latent_dim, num_classes=k, channels=channels, size=size,
                        width=width, shared_dim=cfg.biggan_shared_dim)  # fmt: skip
    D = BigGANDiscriminator(num_classes=k, channels=channels, size=size, width=width)
    for net in (G, D):
        orthogonal_init(net)
    for name, child in G.named_children():
        if name != "shared":
            spectral_norm_all(child)
    spectral_norm_all(D)
    return {"G": G, "D": D}
