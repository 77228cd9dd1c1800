"""The SRGAN family (Ledig et al. 2017): single-image super-resolution by the SRResNet generator
(``genlab.nets.srresnet``) trained on a content loss plus ``adversarial_weight`` times a GAN
loss (eq. 3). ``adversarial_weight: 0, content: mse`` is the paper's MSE-trained SRResNet, its
PSNR-oriented baseline; the default (features, 1e-3) is SRGAN with the content loss computed on
a frozen classifier's features (``genlab.families.features``) in place of VGG19's."""

from __future__ import annotations

from typing import Literal

from torch import nn

from genlab.data import DATASETS
from genlab.families.srgan.trainer import SRGANTrainer
from genlab.families.translation import (
    TranslationSampler,
    directions,
    register_translation,
    requires_task,
)
from genlab.nets.srresnet import SR_ARCHS
from genlab.options import Field, Option

DEFAULT_LOSS = "nonsaturating"  # -log D(G(I^LR)), Ledig et al. eq. 6


def sampler(modules: dict[str, nn.Module], cfg, meta: dict) -> TranslationSampler:
    """G on the test split's low-resolution sources."""
    return TranslationSampler({directions(meta)[0]["name"]: modules["G"]}, meta)


_super_resolution = requires_task("super_resolution")


def check(v) -> None:
    """A super-resolution dataset; no key set where it has no effect; a pretraining shorter
    than the run; classes to fit the feature net on."""
    _super_resolution(v)
    if v.adversarial_weight == 0 and v.loss != DEFAULT_LOSS:
        raise ValueError(
            f"loss = {v.loss!r} has no effect with adversarial_weight = 0 (no discriminator); "
            "set adversarial_weight > 0 or leave loss out"
        )
    if v.pretrain_steps and v.adversarial_weight == 0 and v.content == "mse":
        raise ValueError(
            f"pretrain_steps = {v.pretrain_steps} has no effect with adversarial_weight = 0 and "
            "content = 'mse' (every step is already pixel-MSE training); leave it out"
        )
    if v.pretrain_steps >= v.steps:
        raise ValueError(
            f"pretrain_steps = {v.pretrain_steps} leaves none of the {v.steps} steps for the "
            "SRGAN loss; allowed: pretrain_steps < steps (the SRResNet alone is "
            "adversarial_weight: 0, content: mse)"
        )
    if v.content == "features" and "y" not in DATASETS.get(v.dataset).fields:
        raise ValueError(
            f"content = 'features' fits a classifier on the classes of dataset {v.dataset!r}, "
            "which has no field 'y'; use content: mse"
        )


SRGAN = register_translation(
    name="srgan",
    archs=SR_ARCHS,
    default_loss=DEFAULT_LOSS,
    trainer=SRGANTrainer,
    sampler=sampler,
    sections={
        "Super-resolution": "SRResNet and SRGAN (Ledig et al. 2017): residual blocks and "
        "x2 pixel-shuffle upsampling from the low-resolution source. SRResNet minimises the "
        "pixel MSE (the PSNR-oriented baseline); SRGAN adds 1e-3 times a GAN loss against a "
        "strided-convolution discriminator, on a content loss computed on the features of "
        "a classifier trained on the training split (VGG19 is not available offline)."
    },
    captions={
        "translation": "test images, one per row: low-resolution source (enlarged, nearest "
        "neighbour) | G(source) | high-resolution target"
    },
    options={
        # weight of the GAN loss in eq. 3 (1e-3 in the paper; 0 = SRResNet, no D)
        "adversarial_weight": Option(float, Field(1e-3, ge=0)),
        # content loss: pixel MSE (eq. 4) or the frozen feature net's MSE (eq. 5)
        "content": Option(Literal["mse", "features"], "features"),
        # first steps on the pixel MSE alone (SRGAN initialised from SRResNet)
        "pretrain_steps": Option(int, Field(0, ge=0)),
        # epochs of the feature net's classifier, fitted when the content loss first needs it
        "feature_epochs": Option(
            int,
            Field(3, ge=1, le=1000),
            when=lambda v: v.content == "features",
            when_doc="by family srgan with content: features",
        ),
    },
    check=check,
)
