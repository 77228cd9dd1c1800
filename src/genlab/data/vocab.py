"""Character vocabularies: strings <-> int64 token tensors, with a clear error (exit 2) for a
character the vocabulary lacks or a string longer than the maximum.

With ``blank=True`` (CTC, Graves et al. 2006) token 0 is the blank and also pads a row, and
character ``vocab[i]`` is token ``i + 1``; without it character ``vocab[i]`` is token ``i`` and
rows are padded with the vocabulary's ``pad`` character (the text GANs generate fixed-length
rows in which padding is a character like any other)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from genlab.errors import ConfigError


@dataclass(frozen=True)
class Vocabulary:
    chars: str  # the characters, in token order
    blank: bool = False  # token 0 is the CTC blank (and the padding)
    pad: str | None = None  # without a blank: the character rows are padded with

    def __post_init__(self) -> None:
        if len(set(self.chars)) != len(self.chars):
            raise ValueError(f"vocabulary {self.chars!r} repeats a character")
        if self.pad is not None and self.pad not in self.chars:
            raise ValueError(f"pad {self.pad!r} is not in the vocabulary {self.chars!r}")

    @property
    def size(self) -> int:
        """Number of token values (the blank included)."""
        return len(self.chars) + int(self.blank)

    @property
    def pad_token(self) -> int:
        if self.blank:
            return 0
        if self.pad is None:
            raise ValueError("this vocabulary has neither a blank nor a pad character")
        return self.chars.index(self.pad)

    def check(self, texts: Iterable[str], max_length: int, what: str = "text") -> None:
        """Raise ``ConfigError`` naming the first text with a character outside the vocabulary
        or longer than ``max_length`` (``what`` names the params key or input it came from)."""
        allowed = set(self.chars)
        for text in texts:
            bad = sorted({c for c in text if c not in allowed})
            if bad:
                raise ConfigError(
                    f"{what}: {text!r} has characters outside the vocabulary "
                    f"({', '.join(repr(c) for c in bad)}); allowed: {self.describe()}"
                )
            if len(text) > max_length:
                raise ConfigError(
                    f"{what}: {text!r} has {len(text)} characters; allowed: at most "
                    f"{max_length} (the dataset's max_length)"
                )
            if not text:
                raise ConfigError(f"{what}: an empty text; allowed: 1 to {max_length} characters")

    def describe(self) -> str:
        chars = self.chars
        return repr(chars) if len(chars) <= 40 else f"{len(chars)} characters: {chars!r}"

    def encode(
        self, texts: Sequence[str], max_length: int, what: str = "text"
    ) -> tuple[Tensor, Tensor]:
        """(tokens (N, max_length) int64 padded with ``pad_token``, lengths (N,) int64)."""
        self.check(texts, max_length, what)
        offset = int(self.blank)
        index = {c: i + offset for i, c in enumerate(self.chars)}
        tokens = torch.full((len(texts), max_length), self.pad_token, dtype=torch.int64)
        for row, text in enumerate(texts):
            if text:
                tokens[row, : len(text)] = torch.tensor([index[c] for c in text])
        return tokens, torch.tensor([len(t) for t in texts], dtype=torch.int64)

    def decode(self, tokens: Tensor, lengths: Tensor | None = None) -> list[str]:
        """Strings of token rows (the first ``lengths[i]`` tokens; with a blank, every non-blank
        token when no lengths are given)."""
        offset = int(self.blank)
        out = []
        for row, values in enumerate(tokens.tolist()):
            if lengths is not None:
                values = values[: int(lengths[row])]
            elif self.blank:
                values = [v for v in values if v != 0]
            out.append("".join(self.chars[v - offset] for v in values if v >= offset))
        return out


__all__ = ["Vocabulary"]
