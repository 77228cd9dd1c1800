"""The pix2pix family (Isola et al. 2017, "Image-to-Image Translation with Conditional
Adversarial Networks"): a U-Net G with dropout as its noise, a conditional PatchGAN D on
(source, image) pairs, and the cGAN + lambda L1 objective (eq. 4), for paired translation,
super resolution and label map -> image datasets."""

from __future__ import annotations

from torch import nn

from genlab.families.pix2pix.nets import P2P_ARCHS
from genlab.families.pix2pix.trainer import Pix2PixTrainer
from genlab.families.translation import (
    TRANSLATION_CAPTIONS,
    TranslationSampler,
    register_translation,
    requires_task,
)
from genlab.options import Field, Option

TASKS = ("paired", "super_resolution", "labelmap")
_task_check = requires_task(*TASKS)


def _check(v) -> None:
    """The dataset pairs sources with targets, and the objective has something to train."""
    _task_check(v)
    if not v.adversarial and v.l1_weight == 0:
        raise ValueError(
            "adversarial = false with l1_weight = 0 leaves nothing to train: keep adversarial: "
            "true (the cGAN-only ablation) or set l1_weight > 0 (the L1-only ablation)"
        )


def sampler(modules: dict[str, nn.Module], cfg, meta: dict) -> TranslationSampler:
    """G translates each test source; its dropout stays on at test time (sec. 3.1: the noise)."""
    return TranslationSampler({"": modules["G"]}, meta, dropout=True)


PIX2PIX = register_translation(
    name="pix2pix",
    archs=P2P_ARCHS,
    default_loss="nonsaturating",
    trainer=Pix2PixTrainer,
    sampler=sampler,
    captions={"translation": TRANSLATION_CAPTIONS["translation"]},
    sections={
        "Image-to-image translation": "pix2pix (Isola et al. 2017): a U-Net generator "
        "(skip connections; dropout, kept on at test time, is its only noise) against a "
        "conditional PatchGAN on (source, image) pairs, trained on the cGAN loss plus 100 x "
        "L1 (eq. 4); the L1-only (no discriminator) and cGAN-only (no L1) ablations of the "
        "paper's Figure 4. Columns: PSNR, SSIM and L1 against the paired test targets; "
        "`class_preservation`: the evaluator finds the source's class in the output."
    },
    options={
        "l1_weight": Option(float, Field(100.0, ge=0)),  # lambda of eq. 4 (0: cGAN only)
        "adversarial": Option(bool, True),  # false: the L1-only ablation (no D)
        # PatchGAN stride-2 layers (receptive field 9 * 2**n - 2: 1 -> 16, 2 -> 34,
        # 3 -> 70); None: the most with a field of at most half the image side
        "patch_layers": Option(
            int | None,
            Field(None, ge=1),
            when=lambda v: v.adversarial,
            when_doc="when adversarial is true",
        ),
    },
    check=_check,
)

__all__ = ["PIX2PIX", "P2P_ARCHS", "Pix2PixTrainer"]
