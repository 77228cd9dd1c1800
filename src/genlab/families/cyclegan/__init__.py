"""Two unpaired translation families on one trainer (``trainer.UnpairedTrainer``), differing in
networks and terms:

- ``cyclegan`` (Zhu et al. 2017): ResNet generators, instance-norm PatchGANs, least-squares GAN,
  lambda = ``cycle_weight`` (10) times the L1 cycle loss, ``identity_weight`` * lambda times the
  L1 identity loss (the paper's 0.5 lambda: ``identity_weight`` is a fraction of lambda, as the
  official code's ``lambda_identity``), D trained on a history of 50 generated images with its
  objective halved. ``least_squares`` here is Mao et al.'s form with 1/2 on both sides
  (``genlab.objectives.gan.LeastSquares``): D's objective is then exactly the paper's halved
  one, G's adversarial term half the paper's E[(D(G(a)) - 1)^2], so against the cycle term it
  weighs as the paper's lambda = 20 would.
- ``discogan`` (Kim et al. 2017): encoder-decoder generators and batch-norm discriminators, the
  standard (non-saturating) GAN loss, ``reconstruction_weight`` (1, the paper's equal weights)
  times the MSE reconstruction loss of the official code, no identity term, no history.
  Not kept from the official code: its feature-matching term, its GAN-weight curriculum
  (0.01 for the first 10k iterations) and its schedule of one D update per three iterations.

Neither model sees a label. EMA (``ema`` > 0) averages G (A -> B) only; ``model.pt`` keeps G
and F, F as trained.
"""

from __future__ import annotations

from torch import nn

from genlab.families.cyclegan.nets import CYCLEGAN_ARCHS, DISCOGAN_ARCHS
from genlab.families.cyclegan.trainer import Recipe, adversarial_loss, trainer_of
from genlab.families.translation import (
    TRANSLATION_CAPTIONS,
    TranslationSampler,
    register_translation,
    requires_task,
)
from genlab.objectives.terms import Term
from genlab.objectives.translation import CycleConsistency, Identity, TwoAdversarial, l1, mse
from genlab.options import Field, Option


def cyclegan_terms(cfg) -> list[Term]:
    """Zhu et al. 2017, eq. 3 plus the identity loss of sec. 5.2."""
    lam = cfg.cycle_weight
    return [
        TwoAdversarial(adversarial_loss(cfg), d_scale=0.5),
        CycleConsistency(lam, l1),
        Identity(cfg.identity_weight * lam, l1),
    ]


def discogan_terms(cfg) -> list[Term]:
    """Kim et al. 2017: L_G = L_GAN_B + L_CONST_A + L_GAN_A + L_CONST_B, L_D = L_D_A + L_D_B
    (each D's real and fake terms weighted 1/2, as in the official code)."""
    return [
        TwoAdversarial(adversarial_loss(cfg), d_scale=0.5),
        CycleConsistency(cfg.reconstruction_weight, mse, name="reconstruction"),
    ]


def sampler(modules: dict[str, nn.Module], cfg, meta: dict) -> TranslationSampler:
    """Both directions of the test split, and each one's cycle back."""
    G, F = modules["G"], modules["F"]
    return TranslationSampler(
        {"a2b": G, "b2a": F}, meta, cycles={"a2b": lambda a: F(G(a)), "b2a": lambda b: G(F(b))}
    )


SECTION = {
    "Unpaired translation": "Handwritten digits (domain A) to font-rendered digits (domain B) "
    "and back, learnt from the two sets without pairs or labels. CycleGAN (Zhu et al. 2017) "
    "trains two generators G: A -> B and F: B -> A against two PatchGAN discriminators with the "
    "least-squares loss, an L1 cycle-consistency loss ||F(G(a)) - a|| + ||G(F(b)) - b|| "
    "(lambda = 10), an identity loss (0.5 lambda) and a history of 50 generated images for D; "
    "DiscoGAN (Kim et al. 2017) uses encoder-decoder generators, the standard GAN loss and an "
    "MSE reconstruction loss. Figures: a test image | its translation | the translation mapped "
    "back; `translation` metrics: the evaluator's class of G(a) against the label of a (class "
    "preservation) and the cycle error."
}
CAPTIONS = {k: TRANSLATION_CAPTIONS[k] for k in ("a2b", "b2a")}

CYCLEGAN = register_translation(
    name="cyclegan",
    archs=CYCLEGAN_ARCHS,
    default_loss="least_squares",
    trainer=trainer_of(Recipe(CYCLEGAN_ARCHS, cyclegan_terms, lambda cfg: cfg.image_pool)),
    sampler=sampler,
    model_modules=("G", "F"),
    sections=SECTION,
    captions=CAPTIONS,
    options={
        "cycle_weight": Option(float, Field(10.0, ge=0)),  # lambda of the L1 cycle loss
        # the identity loss's weight as a fraction of lambda (the paper's 0.5 lambda)
        "identity_weight": Option(float, Field(0.5, ge=0)),
        "image_pool": Option(int, Field(50, ge=0)),  # generated images D's history keeps
    },
    check=requires_task("unpaired"),
)

DISCOGAN = register_translation(
    name="discogan",
    archs=DISCOGAN_ARCHS,
    default_loss="nonsaturating",
    trainer=trainer_of(Recipe(DISCOGAN_ARCHS, discogan_terms, lambda cfg: 0)),
    sampler=sampler,
    model_modules=("G", "F"),
    sections=SECTION,
    captions=CAPTIONS,
    options={
        # weight of the MSE reconstruction loss against the GAN loss (the paper's 1)
        "reconstruction_weight": Option(float, Field(1.0, ge=0)),
    },
    check=requires_task("unpaired"),
)
