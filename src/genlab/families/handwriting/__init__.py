"""The handwriting family (Alonso et al. 2019; ScrabbleGAN, Fogel et al. 2020): word images of a
given text from a filter-bank generator G(z, text), trained against a patch discriminator D and
a CTC recogniser R that learns from real words only; G's loss is l_adv + alpha * l_R with
alpha balancing the two gradients at the generated image."""

from __future__ import annotations

from genlab.families.base import Family, register, requires_fields
from genlab.families.gan import GAN
from genlab.families.handwriting.figures import CAPTIONS, handwriting_figures, sampler
from genlab.families.handwriting.nets import HANDWRITING_ARCHS
from genlab.families.handwriting.trainer import HANDWRITING_LOSSES, HandwritingTrainer
from genlab.families.words import FIGURE_TEXTS
from genlab.options import Field, Option
from genlab.runtime import OptimizerCfg

# R's optimizer: Adam at 1e-3 (the recogniser's usual rate), independent of G's and D's
RECOGNIZER_OPTIMIZER = OptimizerCfg(name="adam", lr=1e-3, betas=(0.9, 0.999))

HANDWRITING = register(
    Family(
        name="handwriting",
        archs=HANDWRITING_ARCHS,
        losses=HANDWRITING_LOSSES,
        default_loss="hinge",
        trainer=HandwritingTrainer,
        sampler=sampler,
        generator="G",
        figures=handwriting_figures,
        metrics=(),  # the generic "recognition" metric (cer, wer, word_frechet) applies itself
        sections={
            "Handwriting": "ScrabbleGAN-style handwriting (Alonso et al. 2019; Fogel et al. "
            "2020): G writes a word from one learned filter per character, placed side by side "
            "(so the width follows the text) and styled by a noise vector z; a patch "
            "discriminator judges realism and a CTC recogniser R, trained on real words only, "
            "judges legibility, its gradient balanced against D's. The test texts are written "
            "with seeded styles and read by an independent recogniser (the evaluator): `cer`: "
            "character error rate (edit distance / characters asked; random digits score about "
            "0.9), `wer`: share of words not read exactly, `word_frechet`: Fréchet distance of "
            "the evaluator's word features, generated vs test words (lower is better for all)."
        },
        captions=CAPTIONS,
        options={
            "ctc_weight": Option(float, Field(1.0, ge=0)),  # gamma of the gradient balancing
            "figure_texts": FIGURE_TEXTS,  # texts of styles.png and texts.png
            "optimizer_d": GAN.options["optimizer_d"],  # D's; None = ``optimizer``
            "optimizer_r": Option(OptimizerCfg, RECOGNIZER_OPTIMIZER),  # R's
            "recognizer_width": Option(int, Field(8, ge=1, le=512)),  # R's base channels
        },
        check=requires_fields(x="word", text="tokens", lengths="lengths"),
    )
)

__all__ = ["HANDWRITING", "HANDWRITING_ARCHS", "HANDWRITING_LOSSES"]
