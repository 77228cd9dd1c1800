"""How token rows are judged: character n-gram statistics against the test rows (Gulrajani et
al. 2017, sec. 5: Jensen-Shannon divergence of the n-gram distributions, n = 1..4), the share
of grammar samples that parse, and the evaluator kind "tokens": no network, the real-vs-real
floor, and the unigram baseline (characters drawn i.i.d. from the training frequencies) scored
exactly like a model.

Divergences are in nats (natural log), so every ``js_n`` lies in [0, ln 2]. The n-grams of a
row are its windows of n consecutive tokens (none across rows; a grammar row's padding is a
character like any other). Each row's n-gram ids are computed once (``Context.per_row``); a
bootstrap replicate concatenates its rows' ids and counts them (``torch.bincount``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from genlab.data.text import GRAMMARS, vocabulary
from genlab.metrics.kinds import EvaluatorKind, evaluator_kind
from genlab.metrics.scores import Context, metric

NGRAM_MAX = 4  # n = 1..4, as Gulrajani et al. 2017
LN2 = math.log(2)
UNIT = (0.0, 1.0)


def ngram_ids(tokens: Tensor, n: int) -> Tensor:
    """(N, L - n + 1) int64: one id per n-gram of each row, equal ids for equal n-grams (dense
    ids 0 .. distinct - 1; built from the (n-1)-gram ids, so they never overflow)."""
    tokens = tokens.to(torch.int64)
    width = int(tokens.max()) + 1 if tokens.numel() else 1
    ids = torch.unique(tokens, return_inverse=True)[1]
    for k in range(1, n):  # (k)-gram at i, then the token at i + k
        ids = torch.unique(ids[:, :-1] * width + tokens[:, k:], return_inverse=True)[1]
    return ids


def js_divergence(p_counts: Tensor, q_counts: Tensor) -> float:
    """Jensen-Shannon divergence (nats) of the distributions proportional to two count vectors
    over the same bins: 1/2 KL(P || M) + 1/2 KL(Q || M), M = (P + Q) / 2; in [0, ln 2]."""
    p = p_counts.double() / p_counts.sum()
    q = q_counts.double() / q_counts.sum()
    m = 0.5 * (p + q)

    def kl(a: Tensor) -> Tensor:
        seen = a > 0
        return (a[seen] * (a[seen] / m[seen]).log()).sum()

    return float(0.5 * kl(p) + 0.5 * kl(q))


def _x_is_tokens(meta: dict) -> bool:
    """The metrics apply to datasets whose x is token rows (``tokens`` fields elsewhere, e.g.
    the text of a word image, are another matter)."""
    return meta.get("fields", {}).get("x", {}).get("kind", meta.get("kind")) == "tokens"


def _ngram_rows(ctx: Context) -> dict[str, Tensor]:
    """Per row of the samples and of the test set: the ids of its n-grams, n = 1..4, numbered
    jointly (equal n-grams of the two sets share an id)."""
    samples, test = ctx.samples.to(torch.int64), ctx.test["x"].to(torch.int64)
    both = torch.cat([samples, test])
    out = {}
    for n in range(1, min(NGRAM_MAX, both.shape[1]) + 1):
        ids = ngram_ids(both, n)
        out[f"samples.ngram{n}"], out[f"test.ngram{n}"] = ids[: len(samples)], ids[len(samples) :]
    return out


NGRAM_KEYS = [f"js_{n}" for n in range(1, NGRAM_MAX + 1)]


@metric(
    "ngram",
    requires=("tokens",),
    ranges={k: (0.0, LN2) for k in NGRAM_KEYS},
    descriptions={
        f"js_{n}": f"Jensen-Shannon divergence (nats, at most ln 2) between the character "
        f"{n}-gram distributions of the samples and of the test rows (lower is better)"
        for n in range(1, NGRAM_MAX + 1)
    },
    headline={"js_4": True},
)
def _ngram(ctx: Context) -> dict[str, float]:
    """js_1 .. js_4: Jensen-Shannon divergence of the n-gram distributions, samples vs the test
    rows (Gulrajani et al. 2017, sec. 5); nothing for a dataset whose x is not token rows.

    The plug-in estimate is biased upwards at these sizes (most 4-grams are rare: the
    real-vs-real floor shows by how much), and a bootstrap resample, which repeats rows, is
    biased further; the basic interval corrects for that, so it can lie below the estimate."""
    if not _x_is_tokens(ctx.meta):
        return {}
    rows = ctx.per_row("ngram", _ngram_rows)
    out = {}
    for n in range(1, NGRAM_MAX + 1):
        if f"samples.ngram{n}" not in rows:
            continue
        s, t = rows[f"samples.ngram{n}"].flatten(), rows[f"test.ngram{n}"].flatten()
        bins = int(max(s.max(), t.max())) + 1
        out[f"js_{n}"] = js_divergence(torch.bincount(s, minlength=bins),
                                       torch.bincount(t, minlength=bins))  # fmt: skip
    return out


def _grammar_rows(ctx: Context) -> dict[str, Tensor]:
    """Per sample: 1 if the row parses (meta ``grammar``), and an id shared by equal rows."""
    check = GRAMMARS[ctx.meta["grammar"]]
    rows = vocabulary(ctx.meta).decode(ctx.samples)
    valid = torch.tensor([float(check(r)) for r in rows], dtype=torch.float64)
    same = torch.unique(ctx.samples, dim=0, return_inverse=True)[1]
    return {"samples.valid": valid, "samples.row_id": same}


@metric(
    "grammar",
    requires=("tokens",),
    settings=("distinct_valid",),
    ranges={"valid": UNIT},
    descriptions={
        "valid": "share of the samples that are sentences of the dataset's grammar, padding "
        "only at the end (higher is better)",
        "distinct_valid": "number of distinct valid samples among the scored ones (higher is "
        "better; no interval: a bootstrap resample repeats rows, so its distinct count is "
        "biased low)",
    },
    headline={"valid": False},
)
def _grammar(ctx: Context) -> dict[str, float]:
    """The share of samples that parse (``genlab.data.text.is_valid``, exact), and how many
    distinct valid strings they hold; nothing for a dataset without a grammar."""
    if not _x_is_tokens(ctx.meta) or not ctx.meta.get("grammar"):
        return {}
    rows = ctx.per_row("grammar", _grammar_rows)
    valid = rows["samples.valid"]
    distinct = len(torch.unique(rows["samples.row_id"][valid > 0]))
    return {"valid": float(valid.mean()), "distinct_valid": distinct}


# ---------------------------------------------------------------------------- evaluator kind
def unigram_rows(train: Tensor, n: int, vocab_size: int, seed: int) -> Tensor:
    """``n`` rows as long as the training rows, every token drawn i.i.d. from the training
    split's token frequencies (all positions pooled), seeded."""
    counts = torch.bincount(train.flatten(), minlength=vocab_size).double()
    gen = torch.Generator().manual_seed(seed)
    draws = torch.multinomial(counts / counts.sum(), n * train.shape[1], replacement=True,
                              generator=gen)  # fmt: skip
    return draws.view(n, train.shape[1]).to(torch.int64)


def unigram_baseline(
    train: dict, test: dict, meta: dict, sample_n: int, seed: int
) -> tuple[str, dict[str, Tensor]]:
    """The "unigram" model: ``sample.n`` rows of i.i.d. characters with the training unigram
    frequencies; its n-gram divergences are what a model must beat beyond n = 1."""
    vocab_size = len(meta["vocabulary"])
    return "unigram", {"x": unigram_rows(train["x"], sample_n, vocab_size, seed)}


TOKENS = evaluator_kind("tokens", EvaluatorKind(floor=True, baseline=unigram_baseline))

__all__ = [
    "NGRAM_MAX",
    "TOKENS",
    "js_divergence",
    "ngram_ids",
    "unigram_baseline",
    "unigram_rows",
]
