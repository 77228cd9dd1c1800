"""What the families that draw words (handwriting, text to image) share: the figure texts a
variant asks for and their check against the dataset's vocabulary and maximum length."""

from __future__ import annotations

from torch import Tensor

from genlab.data.vocab import Vocabulary
from genlab.options import Field, Option

# the texts the figures draw ("the same text in several styles, several texts in one style");
# None: the family's defaults, cut to the dataset's max_length
FIGURE_TEXTS = Option(list[str] | None, Field(None, min_length=1, max_length=16))


def word_vocabulary(meta: dict) -> Vocabulary:
    """The dataset's CTC vocabulary (meta ``vocabulary``; token 0 is the blank)."""
    return Vocabulary(meta["vocabulary"], blank=True)


def encode_texts(texts: list[str], meta: dict, what: str = "figure_texts") -> tuple[Tensor, Tensor]:
    """(tokens (N, max_length), lengths (N,)) of ``texts``; a text with a character outside the
    vocabulary or longer than the dataset's ``max_length`` raises ``ConfigError`` (exit 2)
    naming ``what`` and what is allowed."""
    return word_vocabulary(meta).encode(texts, int(meta["max_length"]), what)


__all__ = ["FIGURE_TEXTS", "encode_texts", "word_vocabulary"]
