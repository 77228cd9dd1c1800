"""The text-to-image family: GAN-CLS (Reed et al. 2016, "Generative Adversarial Text to Image
Synthesis") drawing word images of ``digit_strings`` from their text.

A text encoder phi (pre-trained on a joint embedding of images and texts, then frozen) maps the
asked text to a code; G(z, phi(t)) draws the word with no layout given; the matching-aware D
judges (image, text) pairs, learning from real images with mismatching texts too. The
independent recogniser of ``fit-evaluator`` reads the generated words (generic metric
``recognition``: cer, wer, word_frechet)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from genlab.families.base import Family, register, requires_fields
from genlab.families.latent import interpolation_latents
from genlab.families.text2image.figures import CAPTIONS, text2image_figures
from genlab.families.text2image.nets import T2I_ARCHS, build
from genlab.families.text2image.trainer import T2I_LOSSES, TextToImageTrainer
from genlab.families.words import FIGURE_TEXTS, word_vocabulary
from genlab.options import Field, Option


class TextSampler:
    """G(z, phi(t)) for the test split's texts: the first min(n, n_test) rows (``data``: the
    test split), z drawn from a generator seeded by the sample seed."""

    label_kind = None

    def __init__(self, G: nn.Module, text: nn.Module, meta: dict) -> None:
        self.G, self.text, self.meta = G, text, meta
        self.latent_dim = G.latent_dim

    def inputs(
        self, seed: int, n: int, device: torch.device | str, data: dict | None = None
    ) -> dict[str, Any]:
        if data is None:
            raise ValueError("a text-to-image model draws the test split's texts: pass data=test")
        m = min(n, len(data["text"]))
        gen = torch.Generator(device).manual_seed(seed)
        z = torch.randn(m, self.latent_dim, generator=gen, device=device)
        return {"z": z, "text": data["text"][:m].to(device),
                "lengths": data["lengths"][:m].to(device), "generator": gen}  # fmt: skip

    @torch.no_grad()
    def render(self, z: Tensor, tokens: Tensor, lengths: Tensor, batch_size: int = 500) -> Tensor:
        """G(z, phi(tokens, lengths)) in chunks, as float on the CPU."""
        out = []
        for a, b, c in zip(z.split(batch_size), tokens.split(batch_size),
                           lengths.split(batch_size), strict=True):  # fmt: skip
            out.append(self.G(a, self.text(b, c)).float().cpu())
        return torch.cat(out) if out else torch.zeros(0, *self.meta["shape"])

    def generate(self, inputs: dict[str, Any], batch_size: int) -> Tensor:
        return self.render(inputs["z"], inputs["text"], inputs["lengths"], batch_size)

    def interpolation(
        self, inputs: dict[str, Any], rows: int, steps: int, batch_size: int
    ) -> Tensor | None:
        """Row i: the i-th test text, z from z_0 to z_1 (both drawn after the sample batch);
        kept in ``inputs["interpolation"]`` for the figure."""
        rows = min(rows, len(inputs["text"]))
        if rows == 0:
            return None
        z, gen = inputs["z"], inputs["generator"]
        ends = torch.randn(2, rows, self.latent_dim, generator=gen, device=z.device)
        tokens = inputs["text"][:rows].repeat_interleave(steps, 0)
        lengths = inputs["lengths"][:rows].repeat_interleave(steps, 0)
        x = self.render(interpolation_latents(ends[0], ends[1], steps), tokens, lengths,
                        batch_size)  # fmt: skip
        texts = word_vocabulary(self.meta).decode(inputs["text"][:rows].cpu(),
                                                  inputs["lengths"][:rows].cpu())  # fmt: skip
        inputs["interpolation"] = {"x": x, "texts": texts}
        return x

    def saved(self, inputs: dict[str, Any]) -> dict[str, Any]:
        return {
            "z": inputs["z"].cpu(),
            "source": {"text": inputs["text"].cpu(), "lengths": inputs["lengths"].cpu()},
        }


def sampler(modules: dict[str, nn.Module], cfg, meta: dict) -> TextSampler:
    return TextSampler(modules["G"], modules["text"], meta)


_needs_words = requires_fields(x="word", text="tokens", lengths="lengths")


def check(v) -> None:
    """The dataset has word images with texts; phi's pre-training leaves GAN steps."""
    _needs_words(v)
    if v.encoder_steps >= v.steps:
        raise ValueError(
            f"encoder_steps = {v.encoder_steps} must be below steps = {v.steps}: the first "
            "encoder_steps steps pre-train the text encoder, the rest train the GAN"
        )


TEXT2IMAGE = register(
    Family(
        name="text2image",
        archs=T2I_ARCHS,
        losses=T2I_LOSSES,
        default_loss="gan_cls",
        trainer=TextToImageTrainer,
        nets=build,
        sampler=sampler,
        generator="G",
        model_modules=("G", "text"),
        figures=text2image_figures,
        metrics=(),
        captions=CAPTIONS,
        options={
            "figure_texts": FIGURE_TEXTS,
            # steps pre-training phi on the joint embedding, then frozen; 0: phi learns with D
            "encoder_steps": Option(int, Field(300, ge=0)),
            "text_dim": Option(int, Field(32, ge=1, le=1024)),  # phi(t) and its compressed code
            "gan_int": Option(bool, False),  # GAN-INT: G also on interpolated text embeddings
        },
        check=check,
        sections={
            "Text to image": "GAN-CLS (Reed et al. 2016): a text encoder (pre-trained on a "
            "joint embedding of word images and texts, then frozen) codes the asked digits; "
            "G(z, code) draws the word with no layout given; a matching-aware D also learns "
            "from real words paired with mismatching texts. `cer` / `wer`: character / word "
            "error rate of an independent CTC recogniser reading the generated words against "
            "the asked texts; `word_frechet`: Frechet distance of its features to test words."
        },
    )
)

__all__ = ["TEXT2IMAGE", "TextSampler", "sampler"]
