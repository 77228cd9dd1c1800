"""Label-conditional DCGANs (Mirza & Osindero 2014) and InfoGAN (Chen et al. 2016).

A conditional generator is called ``G(z, y)`` with int64 labels ``y``; it exposes ``noise_dim``
(the size of the Gaussian noise it takes) and ``num_classes`` (how many values ``y`` takes), so
the trainer and ``sample`` can draw its inputs without knowing which kind it is.

How the label enters (``g_condition`` / ``d_condition``):

- ``concat``: the lecture's "appending label vector to noise": G gets ``[z, onehot(y)]``; D gets
  ``onehot(y)`` as constant extra input channels.
- ``embed``: a learned label embedding instead of the one-hot vector (G: appended to z; D: one
  extra input channel, a learned H x W map per class).
- ``cbn`` (G only): conditional batch norm, per-class scale and shift in every batch norm of G
  (de Vries et al. 2017; the lecture's gamma_j^y, beta_j^y).
- ``projection`` (D only): logit = psi(phi(x)) + <embed(y), phi(x)> (Miyato & Koyama 2018, eq. 3).

InfoGAN: G gets ``[z, onehot(c), u]`` with a categorical code c (``num_classes`` values, passed
as ``y``) and continuous codes u ~ U(-1, 1), obtained from the last ``info_continuous`` entries
of the Gaussian noise as u = 2 Phi(z) - 1 (exactly uniform, so the sampler stays Gaussian). D's
trunk is shared by the real/fake head and the Q head, which outputs a categorical posterior over
c and a factored Gaussian (mean, log std) over u.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genlab.nets.base import ArchitectureError, dcgan_init
from genlab.nets.dcgan import Discriminator, Generator


def dataset_classes(meta: dict, what: str) -> int:
    """The dataset's number of classes; an ArchitectureError if it has no labels."""
    k = int(meta.get("num_classes") or 0)
    if k < 2:
        raise ArchitectureError(
            f"{what} needs a labelled dataset (num_classes >= 2); dataset {meta['name']!r} has "
            f"num_classes = {meta.get('num_classes')!r}"
        )
    return k


class ConditionalBatchNorm2d(nn.Module):
    """Batch norm whose scale gamma^y and shift beta^y are looked up per class label."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(channels, affine=False)
        self.gamma = nn.Embedding(num_classes, channels)
        self.beta = nn.Embedding(num_classes, channels)
        nn.init.normal_(self.gamma.weight, 1.0, 0.02)
        nn.init.zeros_(self.beta.weight)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        h = self.bn(x)
        return self.gamma(y)[:, :, None, None] * h + self.beta(y)[:, :, None, None]


class LabelGenerator(nn.Module):
    """DCGAN generator conditioned on y by concatenation, embedding or conditional batch norm."""

    def __init__(self, *, latent_dim: int, num_classes: int, mode: str, **dcgan) -> None:
        super().__init__()
        self.noise_dim, self.latent_dim, self.num_classes, self.mode = (
            latent_dim, latent_dim, num_classes, mode
        )  # fmt: skip
        extra = {"concat": num_classes, "embed": num_classes, "cbn": 0}[mode]
        self.inner = Generator(latent_dim=latent_dim + extra, **dcgan)
        if mode == "embed":
            self.embed = nn.Embedding(num_classes, num_classes)
        if mode == "cbn":
            layers = self.inner.net
            for i, m in enumerate(layers):
                if isinstance(m, nn.BatchNorm2d):
                    layers[i] = ConditionalBatchNorm2d(m.num_features, num_classes)

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        if self.mode == "concat":
            z = torch.cat([z, F.one_hot(y, self.num_classes).to(z.dtype)], 1)
        elif self.mode == "embed":
            z = torch.cat([z, self.embed(y).to(z.dtype)], 1)
        h = z[:, :, None, None]
        for layer in self.inner.net:
            h = layer(h, y) if isinstance(layer, ConditionalBatchNorm2d) else layer(h)
        return h


class LabelDiscriminator(nn.Module):
    """DCGAN discriminator conditioned on y: label channels (concat, embed) or projection.
    ``norm``: the DCGAN trunk's ``feature_norm`` (batch, none or layer; ``d_norm``)."""

    conditional = True  # the trainer passes labels to D(x, y)

    def __init__(self, *, channels: int, size: int, width: int, num_classes: int, mode: str,
                 norm: str | bool, attention: int = 0, features: int = 64) -> None:  # fmt: skip
        super().__init__()
        self.num_classes, self.mode, self.size = num_classes, mode, size
        if mode == "projection":
            self.inner = Discriminator(
                channels=channels, size=size, width=width, dim_out=features, norm=norm,
                attention=attention,
            )  # fmt: skip
            self.psi = nn.Linear(features, 1)
            self.embed = nn.Embedding(num_classes, features)
            nn.init.normal_(self.embed.weight, 0.0, 0.02)
        else:
            extra = num_classes if mode == "concat" else 1
            self.inner = Discriminator(channels=channels + extra, size=size, width=width,
                                       norm=norm, attention=attention)  # fmt: skip
            if mode == "embed":
                self.embed = nn.Embedding(num_classes, size * size)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        if self.mode == "projection":
            h = F.leaky_relu(self.inner.net(x).flatten(1), 0.2)
            return self.psi(h).squeeze(1) + (self.embed(y) * h).sum(1)
        if self.mode == "concat":
            maps = F.one_hot(y, self.num_classes).to(x.dtype)[:, :, None, None]
            maps = maps.expand(-1, -1, *x.shape[2:])
        else:
            maps = self.embed(y).to(x.dtype).view(-1, 1, self.size, self.size)
        return self.inner(torch.cat([x, maps], 1))


class InfoGenerator(nn.Module):
    """G(z, c): the categorical code c is ``y``; the continuous codes are the last
    ``continuous`` noise entries mapped to U(-1, 1)."""

    def __init__(self, *, latent_dim: int, categorical: int, continuous: int, **dcgan) -> None:
        super().__init__()
        self.latent_dim, self.categorical, self.continuous = latent_dim, categorical, continuous
        self.noise_dim = latent_dim + continuous
        self.num_classes = categorical  # 0: no categorical code, G is called G(z)
        self.inner = Generator(latent_dim=latent_dim + categorical + continuous, **dcgan)

    def codes(self, z: Tensor) -> Tensor:
        """The continuous codes u = 2 Phi(z_tail) - 1 in (-1, 1)."""
        return torch.erf(z[:, self.latent_dim :] / math.sqrt(2))

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        parts = [z[:, : self.latent_dim]]
        if self.categorical:
            if y is None:
                raise ValueError("this InfoGAN generator needs its categorical code y")
            parts.append(F.one_hot(y, self.categorical).to(z.dtype))
        if self.continuous:
            parts.append(self.codes(z))
        return self.inner(torch.cat(parts, 1))


class InfoDiscriminator(nn.Module):
    """D and Q share the DCGAN trunk; D(x) is the real/fake logit, ``info_loss`` the negative
    variational bound -E[log Q(c | G(z, c))] (Chen et al. 2016, eq. 4; H(c) is constant), with
    weight lambda for the categorical code and lambda_cont for the continuous ones (the paper
    sets the continuous codes' lambda smaller, e.g. 0.1, so their term does not dominate)."""

    def __init__(self, *, channels: int, size: int, width: int, norm: str | bool, categorical: int,
                 continuous: int, weight: float = 1.0, weight_continuous: float = 0.1,
                 attention: int = 0, features: int = 64) -> None:  # fmt: skip
        super().__init__()
        self.categorical, self.continuous = categorical, continuous
        self.weight, self.weight_continuous = weight, weight_continuous
        self.trunk = Discriminator(channels=channels, size=size, width=width, dim_out=features,
                                   norm=norm, attention=attention)  # fmt: skip
        self.head = nn.Linear(features, 1)
        self.q = nn.Sequential(
            nn.Linear(features, features),
            nn.LeakyReLU(0.2),
            nn.Linear(features, categorical + 2 * continuous),
        )

    def features(self, x: Tensor) -> Tensor:
        return F.leaky_relu(self.trunk.net(x).flatten(1), 0.2)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x)).squeeze(1)

    def info_loss(
        self, x: Tensor, c: Tensor | None, u: Tensor | None
    ) -> tuple[Tensor, dict[str, float]]:
        """lambda (-log Q(c | x)) + lambda_cont (-log Q(u | x)) per sample, averaged: the
        cross-entropy of the categorical code and the Gaussian negative log density of the
        continuous codes (summed over codes)."""
        out = self.q(self.features(x)).float()
        loss, stats = out.new_zeros(()), {}
        if self.categorical:
            logits = out[:, : self.categorical]
            ce = F.cross_entropy(logits, c)
            loss = loss + self.weight * ce
            stats["info_cat_ce"] = ce.detach()
            stats["info_cat_acc"] = (logits.argmax(1) == c).float().mean()
        if self.continuous:
            mean, log_std = out[:, self.categorical :].chunk(2, dim=1)
            log_std = log_std.clamp(-5, 2)
            nll = 0.5 * ((u - mean) / log_std.exp()) ** 2 + log_std + 0.5 * math.log(2 * math.pi)
            loss = loss + self.weight_continuous * nll.sum(1).mean()
            stats["info_cont_nll"] = nll.sum(1).mean().detach()
        return loss, stats


def build(meta: dict, cfg) -> dict[str, nn.Module] | None:
    """The conditional or InfoGAN pair of a dcgan variant, or None for a plain DCGAN."""
    info = cfg.info_categorical + cfg.info_continuous > 0
    if cfg.g_condition == "none" and not info:
        return None
    channels, size, _ = meta["shape"]
    width = cfg.width or 64
    norm = cfg.d_norm
    common = {"channels": channels, "size": size, "width": width, "attention": cfg.attention}
    if info:
        nets = {
            "G": InfoGenerator(latent_dim=cfg.latent_dim, categorical=cfg.info_categorical,
                               continuous=cfg.info_continuous, **common),
            "D": InfoDiscriminator(norm=norm, categorical=cfg.info_categorical,
                                   continuous=cfg.info_continuous, weight=cfg.info_weight,
                                   weight_continuous=cfg.info_weight_continuous, **common),
        }  # fmt: skip
    else:
        k = dataset_classes(meta, f"g_condition = {cfg.g_condition!r}")
        nets = {
            "G": LabelGenerator(latent_dim=cfg.latent_dim, num_classes=k, mode=cfg.g_condition,
                                **common),
            "D": LabelDiscriminator(num_classes=k, mode=cfg.d_condition, norm=norm, **common),
        }  # fmt: skip
    for net in nets.values():
        dcgan_init(net)
    return nets
