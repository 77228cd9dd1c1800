"""The GAN family: G and D of any registered GAN architecture (label-conditional and InfoGAN
forms of dcgan), trained by the lecture's alternating step on a list of terms."""

from __future__ import annotations

from torch import nn

from genlab.families.base import Family, register
from genlab.families.gan import metrics  # noqa: F401  (registers the GAN-only metrics)
from genlab.families.gan.figures import gan_figures
from genlab.families.gan.nets import build
from genlab.families.gan.trainer import GANTrainer
from genlab.families.latent import ARITHMETIC, CLASSES, LatentSampler
from genlab.nets import GAN_ARCHS
from genlab.objectives import GAN_LOSSES
from genlab.objectives.regularizers import GAN_REGULARIZERS, RegularizerOptions
from genlab.options import Field, Option
from genlab.runtime import OptimizerCfg


def sampler(modules: dict[str, nn.Module], cfg, meta: dict) -> LatentSampler:
    G = modules["G"]
    noise = getattr(G, "noise_dim", None) or getattr(G, "latent_dim", None) or cfg.latent_dim
    kind = "code" if cfg.info_categorical else "class"
    return LatentSampler(G, noise, getattr(G, "num_classes", 0), kind, truncation=cfg.z_truncation)


SECTIONS = {  # report section -> what its figures and columns show
    "Losses and regularisers": "Unconditional GANs on the same DCGAN (or MLP for 2-D points), "
    "differing in loss and regulariser.",
    "Conditional GANs": "The label enters G and D (concatenation, embedding, conditional batch "
    "norm, projection discriminator). `conditional_accuracy`: the evaluator recognises the "
    "requested class; `intra_frechet`: Fréchet distance per class, averaged.",
    "InfoGAN": "Categorical and continuous codes with the mutual-information bound. "
    "`info_matched_accuracy`: the categorical code as a digit classifier after the best one-to-one "
    "matching; traversal_c<j>: continuous code j from -1 to 1 along each row, one row per "
    "categorical value.",
    "Style-based, progressive and self-attention generators": "Mapping network, learned constant "
    "input, AdaIN or weight demodulation, per-layer noise and style mixing; progressive growing "
    "with fade-in; SAGAN self-attention; truncation trick.",
}


MIN_TRUNCATION = 0.1  # below it the redrawing loop needs ~1 / (0.8 t) rounds per entry


def check(v) -> None:
    """``z_truncation`` is 0 (off) or a threshold the redrawing reaches in a few rounds."""
    if 0 < v.z_truncation < MIN_TRUNCATION:
        raise ValueError(
            f"z_truncation = {v.z_truncation}: allowed 0 (off) or a threshold >= "
            f"{MIN_TRUNCATION} (|z| beyond it is redrawn; a smaller one keeps redrawing almost "
            "every entry)"
        )


def section(cfg: dict) -> str:
    if cfg.get("g_condition", "none") != "none" or cfg.get("arch") == "biggan":
        return "Conditional GANs"
    if cfg.get("info_categorical", 0) or cfg.get("info_continuous", 0):
        return "InfoGAN"
    if cfg.get("arch") in ("style", "progressive") or cfg.get("attention", 0):
        return "Style-based, progressive and self-attention generators"
    return "Losses and regularisers"


GAN = register(
    Family(
        name="gan",
        archs=GAN_ARCHS,
        losses=GAN_LOSSES,
        regularizers=GAN_REGULARIZERS,
        default_loss="nonsaturating",
        trainer=GANTrainer,
        nets=build,
        sampler=sampler,
        generator="G",
        figures=gan_figures,
        metrics=("info",),
        sections=SECTIONS,
        section=section,
        check=check,
        captions={
            **CLASSES,
            "truncation": "truncation: psi = 1, 0.8, ..., 0 along each row",
            "mixing": "style mixing: coarse styles from the row, fine styles from the column",
            **ARITHMETIC,
            "traversal_c*": "InfoGAN continuous code {} from -1 to 1",
        },
        options={
            "d_steps": Option(int, Field(1, ge=1)),  # D updates before each G update (the k)
            "optimizer_d": Option(OptimizerCfg | None, None),  # D's; None = ``optimizer``
            "regularizers": Option(dict[str, RegularizerOptions], Field(default_factory=dict)),
            # BigGAN's orthogonal regularisation of G (Brock et al. 2019, sec. 3.1): beta; 0 = off
            "orthogonal": Option(float, Field(0.0, ge=0)),
            # truncation trick at sampling (BigGAN sec. 3.1): |z| > threshold redrawn; 0 = off
            "z_truncation": Option(float, Field(0.0, ge=0)),
        },
    )
)
