"""Token-row datasets of the text GANs: ``text`` (32-character lines of English) and ``grammar``
(strings of a small context-free grammar whose validity is checked exactly).

``text``: windows of Python's own documentation (``pydoc_data.topics``, standard library, so
offline; its wording follows the Python version that prepares it, recorded in meta). Each
blank-line separated paragraph, without its lines that hold no letter or digit (heading
underlines, table rules), is lowercased, typographic quotes and dashes are mapped to ASCII
and whitespace is collapsed to single spaces; every window of ``length`` characters that starts
at a word and is made only of the vocabulary (``TEXT_CHARS``: a-z, 0-9, space and
``. , ; : ' " ( ) - ! ?``, 49 characters) is kept, so code examples (``_ = [ ] { } * >``) drop
out. Windows of one paragraph overlap (they start at consecutive words), as random crops of the
same sentences (Gulrajani et al. 2017, sec. 5 model 32-character sequences); paragraphs
(deduplicated) are split into train and test by a seeded permutation, and a test window that
also occurs in the training paragraphs' text (topics repeat sentences) is dropped, so no row is
in both splits. Token i is ``TEXT_CHARS[i]``.

``grammar``: arithmetic expressions over x, y, z (Kusner & Hernandez-Lobato 2016, sec. 4 use a
grammar of this kind)::

    S -> S '+' T | S '-' T | S '*' T | S '/' T | T
    T -> '(' S ')' | 'x' | 'y' | 'z'

drawn by a seeded, depth-limited random derivation, at most ``max_length`` characters, padded on
the right with the pad character " " (a character of the vocabulary like any other: the GANs
generate fixed-length rows). Strings are deduplicated before the split, so train and test hold
distinct strings and none is in both. ``is_valid`` parses a row exactly (recursive descent).
"""

from __future__ import annotations

import bisect
import random
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from pydantic import Field, model_validator

from genlab.data.base import Split, dataset
from genlab.data.vocab import Vocabulary
from genlab.errors import ConfigError
from genlab.options import Options

TEXT_CHARS = " abcdefghijklmnopqrstuvwxyz0123456789.,;:'\"()-!?"
TEXT = Vocabulary(TEXT_CHARS, pad=" ")  # rows are never padded (all full windows)
# typographic characters of the docs mapped to the ASCII ones of the vocabulary
_ASCII = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"',
                        "\u2014": "-", "\u2013": "-"})  # fmt: skip
_WORD_START = re.compile(r"(?<!\S)\S")
_ALNUM = re.compile(r"[A-Za-z0-9]")

PAD = " "
GRAMMAR_CHARS = " xyz+-*/()"  # the pad " " is token 0
GRAMMAR = Vocabulary(GRAMMAR_CHARS, pad=PAD)
VARIABLES = "xyz"
OPERATORS = "+-*/"


# ---------------------------------------------------------------------------- text
def paragraphs(topics: dict[str, str]) -> list[str]:
    """Each topic's blank-line separated paragraphs (topics in sorted order), without the lines
    that hold no letter or digit (heading underlines, table rules), lowercased, ASCII quotes and
    dashes, whitespace collapsed; deduplicated, first occurrence kept."""
    out: dict[str, None] = {}
    for key in sorted(topics):
        for block in re.split(r"\n[ \t]*\n", topics[key]):
            lines = [line for line in block.splitlines() if _ALNUM.search(line)]  # no rules
            text = " ".join(" ".join(lines).translate(_ASCII).split()).lower()
            if text:
                out.setdefault(text, None)
    return list(out)


def windows(text: str, length: int, chars: str = TEXT_CHARS) -> list[str]:
    """Every ``length``-character window of ``text`` that starts at a word and holds only
    ``chars``."""
    allowed = set(chars)
    bad = [i for i, c in enumerate(text) if c not in allowed]
    out = []
    for m in _WORD_START.finditer(text):
        start = m.start()
        if start + length > len(text):
            break
        j = bisect.bisect_left(bad, start)  # first disallowed character at or after start
        if j == len(bad) or bad[j] >= start + length:
            out.append(text[start : start + length])
    return out


class TextCfg(Options):
    n_train: int = Field(8000, ge=10, le=200_000)  # training rows (drawn from the train pool)
    n_test: int = Field(2000, ge=10, le=200_000)  # test rows (drawn from the test pool)
    length: int = Field(32, ge=4, le=128)  # characters per row (Gulrajani et al.: 32)
    test_fraction: float = Field(0.2, gt=0, lt=1)  # paragraphs whose windows are test rows


def _draw(pool: list[str], n: int, gen: torch.Generator, split: str) -> list[str]:
    """``n`` windows of ``split``'s pool, drawn without replacement."""
    if n > len(pool):
        raise ConfigError(
            f"data.text.n_{split} = {n}, but the {split} paragraphs give {len(pool)} windows; "
            f"allowed: n_{split} <= {len(pool)} (or another test_fraction or length)"
        )
    return [pool[i] for i in torch.randperm(len(pool), generator=gen)[:n].tolist()]


def split_paragraphs(
    n: int, test_fraction: float, gen: torch.Generator
) -> tuple[list[int], list[int]]:
    """(train, test) paragraph indices, sorted: a seeded permutation's first
    round(test_fraction * n) (at least one) are the test paragraphs."""
    order = torch.randperm(n, generator=gen).tolist()
    n_test = max(1, round(test_fraction * n))
    return sorted(order[n_test:]), sorted(order[:n_test])


@dataset("text", options=TextCfg, fields={"x": {"kind": "tokens"}})
def text_lines(cfg: dict[str, Any], raw_dir: Path, seed: int) -> tuple[Split, Split, dict]:
    from pydoc_data.topics import topics

    paras = paragraphs(topics)
    gen = torch.Generator().manual_seed(seed)
    train_paras, test_paras = split_paragraphs(len(paras), cfg["test_fraction"], gen)
    length = cfg["length"]
    pools = {name: [w for i in ids for w in windows(paras[i], length)]
             for name, ids in (("train", train_paras), ("test", test_paras))}  # fmt: skip
    # paragraphs of different topics share sentences: no test row may occur in training text
    train_text = "\n".join(paras[i] for i in train_paras)
    kept = [w for w in pools["test"] if w not in train_text]
    shared, pools["test"] = len(pools["test"]) - len(kept), kept
    rows = {"train": _draw(pools["train"], cfg["n_train"], gen, "train"),
            "test": _draw(pools["test"], cfg["n_test"], gen, "test")}  # fmt: skip
    train, test = ({"x": TEXT.encode(rows[s], length, f"text {s} rows")[0]}
                   for s in ("train", "test"))  # fmt: skip
    meta = {
        "name": "text", "kind": "tokens", "shape": [length], "length": length,
        "vocabulary": TEXT_CHARS, "pad": None, "n_train": cfg["n_train"], "n_test": cfg["n_test"],
        "source": "pydoc_data.topics (Python standard library)",
        "python_version": ".".join(map(str, sys.version_info[:3])), "lowercase": True,
        "paragraphs": {"train": len(train_paras), "test": len(test_paras)},
        "pool": {"train": len(pools["train"]), "test": len(pools["test"]),
                 "test_dropped_as_in_train": shared},
    }  # fmt: skip
    return train, test, meta


# ---------------------------------------------------------------------------- grammar
class _Parser:
    """Recursive descent for S -> T (op T)*, T -> '(' S ')' | var: the grammar's left recursion
    S -> S op T written as a loop, which accepts exactly the same strings."""

    def __init__(self, text: str) -> None:
        self.text, self.pos = text, 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expression(self) -> bool:
        if not self.term():
            return False
        while self.peek() and self.peek() in OPERATORS:
            self.pos += 1
            if not self.term():
                return False
        return True

    def term(self) -> bool:
        c = self.peek()
        if c and c in VARIABLES:
            self.pos += 1
            return True
        if c == "(":
            self.pos += 1
            if not self.expression() or self.peek() != ")":
                return False
            self.pos += 1
            return True
        return False


def parses(expression: str) -> bool:
    """Whether ``expression`` (no padding) is a sentence of the grammar, S."""
    parser = _Parser(expression)
    return parser.expression() and parser.pos == len(expression)


def is_valid(row: str, pad: str = PAD) -> bool:
    """A padded row is valid when it is a sentence of the grammar followed only by padding
    (padding anywhere else, or an empty row, is invalid)."""
    return parses(row.rstrip(pad))


def derive(rng: random.Random, max_depth: int, p_operator: float, p_paren: float) -> str:
    """One random derivation from S: S -> S op T with probability ``p_operator`` (else T), T ->
    (S) with probability ``p_paren`` (else a variable), operators and variables uniform; at
    ``max_depth`` nested parentheses a T is a variable."""

    def s(depth: int) -> str:
        out = t(depth)
        while rng.random() < p_operator:  # S -> S op T, unrolled: T (op T)*
            out += rng.choice(OPERATORS) + t(depth)
        return out

    def t(depth: int) -> str:
        if depth < max_depth and rng.random() < p_paren:
            return "(" + s(depth + 1) + ")"
        return rng.choice(VARIABLES)

    return s(0)


MAX_MEAN_FACTOR = 20  # derivations this many times longer than a row on average are refused


def expected_length(max_depth: int, p_operator: float, p_paren: float) -> float:
    """Mean characters of ``derive``'s strings: S is 1 / (1 - p_operator) T's on average joined
    by operators; T at depth d < max_depth is "(" S ")" with probability p_paren, else 1."""
    m = 1.0 / (1.0 - p_operator)
    t = 1.0  # a T at max_depth
    for _ in range(max_depth):
        s = m * t + (m - 1.0)
        t = p_paren * (2.0 + s) + (1.0 - p_paren)
    return m * t + (m - 1.0)


class GrammarCfg(Options):
    n_train: int = Field(8000, ge=10, le=100_000)  # distinct training strings
    n_test: int = Field(2000, ge=10, le=100_000)  # distinct test strings, none in training
    max_length: int = Field(12, ge=3, le=64)  # characters per padded row
    max_depth: int = Field(3, ge=0, le=16)  # nested parentheses
    p_operator: float = Field(0.6, ge=0, lt=1)  # S -> S op T (else S -> T)
    p_paren: float = Field(0.2, ge=0, lt=1)  # T -> (S) (else T -> variable)

    @model_validator(mode="after")
    def _drawable(self) -> GrammarCfg:
        """Refuse probabilities whose derivations are far longer than ``max_length`` on average:
        drawing would redraw (almost) forever instead of failing."""
        mean = expected_length(self.max_depth, self.p_operator, self.p_paren)
        if mean > MAX_MEAN_FACTOR * self.max_length:
            raise ValueError(
                f"p_operator = {self.p_operator}, p_paren = {self.p_paren} and max_depth = "
                f"{self.max_depth} give derivations of {mean:.3g} characters on average, against "
                f"max_length = {self.max_length}; allowed: settings whose mean is at most "
                f"{MAX_MEAN_FACTOR} x max_length (lower p_operator, p_paren or max_depth)"
            )
        return self


def grammar_strings(cfg: dict[str, Any], seed: int) -> list[str]:
    """``n_train + n_test`` distinct strings of at most ``max_length`` characters, in the order
    drawn (longer derivations are redrawn)."""
    rng, want = random.Random(seed), cfg["n_train"] + cfg["n_test"]
    found: dict[str, None] = {}
    for _ in range(200 * want):
        text = derive(rng, cfg["max_depth"], cfg["p_operator"], cfg["p_paren"])
        if len(text) <= cfg["max_length"]:
            found.setdefault(text, None)
            if len(found) == want:
                return list(found)
    raise ConfigError(
        f"data.grammar: {200 * want} derivations gave only {len(found)} distinct strings of at "
        f"most max_length = {cfg['max_length']} characters, and n_train + n_test = {want} are "
        "needed; allowed: a larger max_length or p_operator, or fewer rows"
    )


@dataset("grammar", options=GrammarCfg, fields={"x": {"kind": "tokens"}})
def grammar(cfg: dict[str, Any], raw_dir: Path, seed: int) -> tuple[Split, Split, dict]:
    strings = grammar_strings(cfg, seed)
    order = torch.randperm(len(strings), generator=torch.Generator().manual_seed(seed)).tolist()
    picked = [strings[i] for i in order]
    length = cfg["max_length"]
    train = {"x": GRAMMAR.encode(picked[: cfg["n_train"]], length, "grammar rows")[0]}
    test = {"x": GRAMMAR.encode(picked[cfg["n_train"] :], length, "grammar rows")[0]}
    meta = {
        "name": "grammar", "kind": "tokens", "shape": [length], "length": length,
        "vocabulary": GRAMMAR_CHARS, "pad": PAD, "grammar": "arithmetic",
        "productions": "S -> S '+' T | S '-' T | S '*' T | S '/' T | T; "
                       "T -> '(' S ')' | 'x' | 'y' | 'z'",
        "n_train": cfg["n_train"], "n_test": cfg["n_test"], "deduplicated": True,
    }  # fmt: skip
    return train, test, meta


# grammar name (meta "grammar") -> the exact check of one padded row
GRAMMARS: dict[str, Callable[[str], bool]] = {"arithmetic": is_valid}


def vocabulary(meta: dict) -> Vocabulary:
    """The token rows' vocabulary of a ``text`` or ``grammar`` meta (token i = character i)."""
    return Vocabulary(meta["vocabulary"], pad=meta.get("pad"))


__all__ = [
    "GRAMMAR",
    "GRAMMARS",
    "GRAMMAR_CHARS",
    "TEXT",
    "TEXT_CHARS",
    "derive",
    "grammar",
    "grammar_strings",
    "is_valid",
    "paragraphs",
    "parses",
    "split_paragraphs",
    "text_lines",
    "vocabulary",
    "windows",
]
