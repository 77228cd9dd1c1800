"""How word images are judged: an independent CTC recogniser (the evaluator kind ``word``) reads
each generated word, and the ``recognition`` metric compares what it reads with the text the
sample was asked for, and a Frechet distance on its features, as handwriting generators are
judged by a recogniser's error rates and a feature distance (Alonso et al. 2019; ScrabbleGAN,
Fogel et al. 2020).

- ``fit``: a ``genlab.nets.recognizer.Recognizer`` of its own size (``EVALUATOR_WIDTH``) and
  seed (``seed + 11``), independent of any family's R, trained with CTC (Graves et al. 2006) on
  the training split only, with random 1-px shifts. It reads the WHOLE image (all W // 2
  frames, the background padding included, where it learns to emit blanks), so strokes beyond
  the asked word count as inserted characters.
- ``recognition``: ``cer`` = sum of Levenshtein distances between the greedy decoding and the
  asked text / sum of asked lengths; ``wer`` = share of words read differently from the asked
  text; ``word_frechet``: Frechet distance of the recogniser's mean per-frame features (over
  each word's own columns) of the samples vs the test words.

Per-row values (edit distances, correctness, features) are computed once on the scored sets; a
bootstrap replicate only indexes them.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from genlab.data.vocab import Vocabulary
from genlab.errors import ConfigError
from genlab.io import torch_save
from genlab.metrics.frechet import frechet_from_features
from genlab.metrics.kinds import EvaluatorKind, evaluator_kind
from genlab.metrics.scores import UNIT, Context, metric
from genlab.nets.recognizer import Recognizer
from genlab.objectives.ctc import ctc_loss, greedy_decode

EVALUATOR_WIDTH = 24  # base channels of the evaluator recogniser (the handwriting R: 8 by default)
SEED_OFFSET = 11  # the evaluator's seed: the project seed + 11 (independent of a family's R)
BATCH = 512  # rows per forward pass when reading a set


def edit_distance(a: Sequence[int], b: Sequence[int]) -> int:
    """Levenshtein distance: the fewest insertions, deletions and substitutions turning ``a``
    into ``b`` (Wagner & Fischer 1974 dynamic programme, one row kept)."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[-1]


def asked_texts(text: Tensor, lengths: Tensor) -> list[list[int]]:
    """The token lists of padded rows ``text`` (N, S) cut to ``lengths`` (N,)."""
    return [row[: int(n)] for row, n in zip(text.tolist(), lengths.tolist(), strict=True)]


def error_rates(decoded: list[list[int]], asked: list[list[int]]) -> tuple[float, float]:
    """(CER, WER): the sum of edit distances over the sum of asked lengths, and the share of
    rows whose decoding differs from the asked text."""
    edits = [edit_distance(d, a) for d, a in zip(decoded, asked, strict=True)]
    chars = sum(len(a) for a in asked)
    wrong = sum(d != a for d, a in zip(decoded, asked, strict=True))
    return sum(edits) / max(chars, 1), wrong / max(len(asked), 1)


@torch.no_grad()
def read_words(net: Recognizer, x: Tensor) -> list[list[int]]:
    """The recogniser's greedy reading of every word image (all frames), eval mode, batched."""
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    out: list[list[int]] = []
    try:
        for chunk in x.split(BATCH):
            log_probs = net(chunk.float().to(device))
            frames = torch.full((len(chunk),), log_probs.shape[0], dtype=torch.int64)
            out.extend(greedy_decode(log_probs.cpu(), frames))
    finally:
        net.train(was_training)
    return out


@torch.no_grad()
def word_features(net: Recognizer, x: Tensor, lengths: Tensor, char_width: int) -> Tensor:
    """(N, feature_dim) float64 on CPU: ``net.features`` over each word's own columns."""
    was_training = net.training
    net.eval()
    device = next(net.parameters()).device
    try:
        parts = [
            net.features(xc.float().to(device), (lc * char_width).to(device)).cpu()
            for xc, lc in zip(x.split(BATCH), lengths.split(BATCH), strict=True)
        ]
    finally:
        net.train(was_training)
    return torch.cat(parts).double()


# ------------------------------------------------------------------ the evaluator kind "word"


def _shift(x: Tensor, gen: torch.Generator, max_shift: int = 1) -> Tensor:
    """Translate each word by up to ``max_shift`` px in each direction, background (-1) filled:
    the last glyph column is background in the data, so no ink leaves the image to the right."""
    n, _, h, w = x.shape
    xp = F.pad(x[:, 0], (max_shift,) * 4, value=-1.0)  # (N, H + 2 s, W + 2 s)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, n), generator=gen).to(x.device)
    rows = (dy[:, None] + torch.arange(h, device=x.device))[:, :, None]
    cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, :]
    return xp[torch.arange(n, device=x.device)[:, None, None], rows, cols][:, None]


def fit_recognizer(
    train: dict[str, Tensor],  # x (N, 1, H, W), text (N, S), lengths (N,)
    test: dict[str, Tensor],
    meta: dict,
    settings: dict,  # seed, device, epochs, batch_size, lr (downsample must be 1)
) -> tuple[Recognizer, dict[str, Any]]:
    """Train the evaluator's recogniser with CTC over all frames on the training split (Adam,
    one-cycle learning rate, random 1-px shifts); seeded and deterministic on CPU. Stats: test
    and train CER/WER, ``test_accuracy`` = 1 - test WER (word accuracy), epochs, seconds."""
    if settings.get("downsample", 1) != 1:
        raise ConfigError(
            f"evaluator.datasets.{meta.get('name', '?')}.downsample = {settings['downsample']}: "
            "the word evaluator reads the images at full resolution (8 px per character); "
            "allowed: 1"
        )
    start, cpu_start = time.perf_counter(), time.process_time()
    device, seed = settings["device"], int(settings["seed"]) + SEED_OFFSET
    epochs, batch_size, lr = settings["epochs"], settings["batch_size"], settings["lr"]
    x, text, lengths = (train[k].to(device) for k in ("x", "text", "lengths"))
    x = x.float()
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):  # the CPU generator only: it builds the net
        torch.default_generator.manual_seed(seed)
        vocab = Vocabulary(meta["vocabulary"], blank=True)
        net = Recognizer(vocab.size, x.shape[2], width=EVALUATOR_WIDTH)
    net = net.to(device).train()
    frames = net.frames(torch.tensor(x.shape[3]))
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    steps = max(1, epochs * -(-len(x) // batch_size))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=gen).to(device)
        for i in range(0, len(x), batch_size):
            idx = perm[i : i + batch_size]
            log_probs = net(_shift(x[idx], gen))
            loss = ctc_loss(
                log_probs, text[idx], frames.expand(len(idx)).to(device), lengths[idx],
                what="the word evaluator's recogniser",
            )  # fmt: skip
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    net = net.cpu().eval()
    test_cer, test_wer = _rates(net, test)
    train_cer, train_wer = _rates(net, train)
    stats = {"test_cer": test_cer, "test_wer": test_wer, "test_accuracy": 1.0 - test_wer,
             "train_cer": train_cer, "train_wer": train_wer, "epochs": epochs,
             "seconds": time.perf_counter() - start,
             "cpu_seconds": time.process_time() - cpu_start}  # fmt: skip
    return net, stats


def _rates(net: Recognizer, split: dict[str, Tensor]) -> tuple[float, float]:
    return error_rates(read_words(net, split["x"]), asked_texts(split["text"], split["lengths"]))


def save_recognizer(net: Recognizer, path: Path, info: dict, meta: dict) -> None:
    """Write the evaluator: kind, constructor kwargs, CPU state dict and what it records."""
    state = {k: v.detach().cpu() for k, v in net.state_dict().items()}
    torch_save({"kind": "word", "kwargs": net.kwargs, "state_dict": state, "meta": info}, path)


def load_recognizer(ckpt: dict) -> Recognizer:
    """The saved evaluator's recogniser (CPU, eval mode)."""
    net = Recognizer(**ckpt["kwargs"])
    net.load_state_dict(ckpt["state_dict"])
    return net.eval()


WORD = evaluator_kind(
    "word",
    EvaluatorKind(
        fit=fit_recognizer, save=save_recognizer, load=load_recognizer, holdout_floor=True
    ),
)


# ------------------------------------------------------------------ the metric


def _recognition_rows(ctx: Context) -> dict[str, Tensor]:
    """Per sample: the edit distance of its reading from its asked text, the asked length,
    whether it was read exactly, its features; per test word: its features."""
    net, char_width = ctx.evaluator, int(ctx.meta["char_width"])
    text, lengths = ctx.source["text"], ctx.source["lengths"]
    asked = asked_texts(text, lengths)
    decoded = read_words(net, ctx.samples)
    edits = [edit_distance(d, a) for d, a in zip(decoded, asked, strict=True)]
    correct = [float(d == a) for d, a in zip(decoded, asked, strict=True)]
    return {
        "samples.edits": torch.tensor(edits, dtype=torch.float64),
        "samples.chars": lengths.double(),
        "samples.correct": torch.tensor(correct, dtype=torch.float64),
        "samples.features": word_features(net, ctx.samples, lengths, char_width),
        "test.features": word_features(net, ctx.test["x"], ctx.test["lengths"], char_width),
    }


DESCRIPTIONS = {
    "cer": "character error rate: edit distance between what the word evaluator's recogniser "
    "reads in each sample and the text it was asked for, over the asked characters "
    "(lower is better)",
    "wer": "word error rate: share of samples the recogniser does not read exactly as the asked "
    "text (lower is better)",
    "word_frechet": "Frechet distance of the recogniser's mean per-frame features of the samples "
    "vs the test words (lower is better)",
}


RANGES = {"cer": (0.0, math.inf), "wer": UNIT, "word_frechet": (0.0, math.inf)}
HEADLINE = {"cer": True, "wer": True, "word_frechet": True}  # all: lower is better


@metric("recognition", requires=("word", "tokens", "lengths"), ranges=RANGES,
        descriptions=DESCRIPTIONS, headline=HEADLINE)  # fmt: skip
def _recognition(ctx: Context) -> dict[str, float]:
    """CER, WER and the word Frechet distance of the samples (``Context.source``: the text
    each was asked for); nothing without a recogniser or without the asked texts. The Frechet
    distance is omitted when a set has no more rows than the features have dimensions."""
    if ctx.evaluator is None or not ctx.source or "text" not in ctx.source:
        return {}
    rows = ctx.per_row("recognition", _recognition_rows)
    out = {
        "cer": float(rows["samples.edits"].sum() / rows["samples.chars"].sum().clamp_min(1)),
        "wer": float(1.0 - rows["samples.correct"].mean()),
    }
    fake, real = rows["samples.features"], rows["test.features"]
    dim = fake.shape[1]
    if len(fake) > dim and len(real) > dim:
        out["word_frechet"] = frechet_from_features(fake, real)
    return out


__all__ = [
    "asked_texts",
    "edit_distance",
    "error_rates",
    "fit_recognizer",
    "load_recognizer",
    "read_words",
    "save_recognizer",
    "word_features",
]
