"""CTC (genlab.objectives.ctc) against sums over alignments by hand, the recogniser
(genlab.nets.recognizer), the edit distance and error rates, the ``recognition`` metric on a
fake reader and its bootstrap views, and the word evaluator kind (fit, save, load)."""

from __future__ import annotations

import itertools
import json
import math
from functools import cache

import pytest
import torch
from torch import Tensor, nn
from torch.testing import assert_close

from genlab.errors import ConfigError
from genlab.metrics import recognition as R
from genlab.metrics.frechet import frechet_from_features
from genlab.metrics.kinds import EVALUATOR_KINDS, load_any
from genlab.metrics.scores import Context, score
from genlab.nets.recognizer import Recognizer
from genlab.objectives.ctc import ctc_loss, frames_needed, greedy_decode
from tests.conftest import tiny_params_dict, write_params

META = {"vocabulary": "0123456789", "char_width": 8, "max_length": 6}


def log_probs_of(p: list[list[float]]) -> Tensor:
    """(T, 1, C) log-probabilities of one row from per-frame probabilities (T, C)."""
    return torch.tensor(p, dtype=torch.float64).log()[:, None, :]


def ctc(p: list[list[float]], target: list[int], reduction: str = "sum") -> Tensor:
    lp = log_probs_of(p)
    return ctc_loss(lp, torch.tensor([target]), torch.tensor([lp.shape[0]]),
                    torch.tensor([len(target)]), reduction=reduction)  # fmt: skip


def collapse(path: tuple[int, ...]) -> list[int]:
    """A CTC path's labelling: repeats merged, then blanks (0) removed (Graves et al. 2006)."""
    out, prev = [], None
    for k in path:
        if k != prev and k != 0:
            out.append(k)
        prev = k
    return out


# ------------------------------------------------------------------ CTC by hand


def test_ctc_two_frames_target_a_by_hand():
    # vocab {blank, a}; paths for "a" in 2 frames: aa, a-, -a
    p = [[0.3, 0.7], [0.6, 0.4]]
    by_hand = 0.7 * 0.4 + 0.7 * 0.6 + 0.3 * 0.4
    assert_close(ctc(p, [1]), torch.tensor(-math.log(by_hand), dtype=torch.float32))


def test_ctc_repeated_target_needs_the_blank_path():
    # "aa" in 3 frames: the only path is a - a
    p = [[0.2, 0.8], [0.9, 0.1], [0.4, 0.6]]
    assert_close(ctc(p, [1, 1]), torch.tensor(-math.log(0.8 * 0.9 * 0.6), dtype=torch.float32))
    # "a" in 3 frames: aaa, aa-, a--, -aa, -a-, --a (a-a reads "aa")
    a = [row[1] for row in p]
    b = [row[0] for row in p]
    paths = (a[0] * a[1] * a[2] + a[0] * a[1] * b[2] + a[0] * b[1] * b[2] + b[0] * a[1] * a[2]
             + b[0] * a[1] * b[2] + b[0] * b[1] * a[2])  # fmt: skip
    assert_close(ctc(p, [1]), torch.tensor(-math.log(paths), dtype=torch.float32))
    # torch's "mean" divides each row's loss by its target length
    assert_close(ctc(p, [1, 1], "mean"), ctc(p, [1, 1]) / 2)


def test_ctc_equals_brute_force_sum_over_paths():
    gen = torch.Generator().manual_seed(0)
    probs = torch.softmax(torch.randn(4, 3, generator=gen, dtype=torch.float64), -1)
    for target in ([1], [2, 1], [1, 1], [2, 2, 1], [1, 2, 1]):
        total = sum(
            math.prod(float(probs[t, k]) for t, k in enumerate(path))
            for path in itertools.product(range(3), repeat=4)
            if collapse(path) == target
        )
        assert_close(ctc(probs.tolist(), target), torch.tensor(-math.log(total)).float())


def test_frames_needed_counts_repeats_inside_the_text_only():
    targets = torch.tensor([[1, 1, 2, 0], [3, 3, 3, 0], [1, 2, 3, 4], [2, 2, 2, 2], [5, 0, 0, 0]])
    lengths = torch.tensor([3, 3, 4, 2, 1])
    assert frames_needed(targets, lengths).tolist() == [4, 5, 4, 3, 1]


def test_too_few_frames_refused_with_the_numbers():
    p = [[0.5, 0.5], [0.5, 0.5]]
    with pytest.raises(ConfigError, match=r"2 characters with 1 repeated.*at least 3 CTC frames"
                                          r".*gives 2"):  # fmt: skip
        ctc(p, [1, 1])
    ctc(p, [1])  # 1 frame suffices for "a"


def test_too_narrow_word_through_the_recognizer():
    net = Recognizer(11, 8, width=4)
    x = torch.zeros(1, 1, 8, 8)  # one character's width: 4 frames
    frames = net.frames(torch.tensor([8]))
    assert frames.tolist() == [4]
    with pytest.raises(ConfigError, match="5 characters.*at least 5 CTC frames.*gives 4"):
        ctc_loss(net(x), torch.tensor([[1, 2, 3, 4, 5]]), frames, torch.tensor([5]))
    loss = ctc_loss(net(x), torch.tensor([[1, 2, 3, 4]]), frames, torch.tensor([4]))
    assert torch.isfinite(loss)


def test_greedy_decode_by_hand():
    best = [[1, 1, 0, 1, 2, 2, 0], [0, 3, 3, 3, 0, 0, 4]]  # arg-max labels per frame
    lp = torch.nn.functional.one_hot(torch.tensor(best), 5).float().transpose(0, 1).log_softmax(-1)
    assert greedy_decode(lp, torch.tensor([7, 7])) == [[1, 1, 2], [3, 4]]
    assert greedy_decode(lp, torch.tensor([4, 5])) == [[1, 1], [3]]  # cut to the row's frames


# ------------------------------------------------------------------ the recogniser


@pytest.mark.parametrize("recurrent", [True, False])
def test_recognizer_shapes_frames_and_features(recurrent):
    torch.manual_seed(0)
    net = Recognizer(11, 8, width=4, recurrent=recurrent, feature_dim=6).eval()
    assert net.kwargs == {"vocab_size": 11, "height": 8, "width": 4, "recurrent": recurrent,
                          "feature_dim": 6}  # fmt: skip
    for w in (48, 47, 2):
        x = torch.randn(3, 1, 8, w)
        lp = net(x)
        assert lp.shape == (w // 2, 3, 11)
        assert_close(lp.exp().sum(-1), torch.ones(w // 2, 3))
    assert net.frames(torch.tensor([8, 9, 16, 48])).tolist() == [4, 4, 8, 24]
    x = torch.randn(3, 1, 8, 48)
    per_frame = net.frame_features(x)
    feats = net.features(x, torch.tensor([8, 24, 48]))
    expected = torch.stack([per_frame[0, :4].mean(0), per_frame[1, :12].mean(0),
                            per_frame[2].mean(0)])  # fmt: skip
    assert_close(feats, expected)
    assert_close(net.features(x), per_frame.mean(1))
    with pytest.raises(ValueError, match="allowed"):
        net(torch.zeros(1, 1, 7, 48))


def test_shift_augmentation_translates_with_background():
    x = torch.arange(2 * 4 * 6, dtype=torch.float32).view(2, 1, 4, 6)
    gen = torch.Generator().manual_seed(3)
    dy, dx = torch.randint(0, 3, (2, 2), generator=torch.Generator().manual_seed(3)) - 1
    out = R._shift(x, gen)
    for i in range(2):
        for r in range(4):
            for c in range(6):
                rr, cc = r + int(dy[i]), c + int(dx[i])
                inside = 0 <= rr < 4 and 0 <= cc < 6
                assert out[i, 0, r, c] == (x[i, 0, rr, cc] if inside else -1.0)


# ------------------------------------------------------------------ edit distance, error rates


@cache
def levenshtein_recursive(a: tuple, b: tuple) -> int:
    """The textbook recursion, independent of the one-row dynamic programme."""
    if not a or not b:
        return len(a) + len(b)
    return min(levenshtein_recursive(a[1:], b) + 1, levenshtein_recursive(a, b[1:]) + 1,
               levenshtein_recursive(a[1:], b[1:]) + (a[0] != b[0]))  # fmt: skip


def test_edit_distance_by_hand():
    word = lambda s: [ord(c) for c in s]  # noqa: E731
    assert R.edit_distance(word("kitten"), word("sitting")) == 3
    assert R.edit_distance(word("flaw"), word("lawn")) == 2
    assert R.edit_distance([], [1, 2]) == 2 and R.edit_distance([1], []) == 1
    assert R.edit_distance([1, 2, 3], [1, 2, 3]) == 0
    assert R.edit_distance([1, 2, 3], [3, 2, 1]) == 2
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        a = torch.randint(1, 4, (int(torch.randint(0, 6, (1,), generator=gen)),), generator=gen)
        b = torch.randint(1, 4, (int(torch.randint(0, 6, (1,), generator=gen)),), generator=gen)
        assert R.edit_distance(a.tolist(), b.tolist()) == levenshtein_recursive(
            tuple(a.tolist()), tuple(b.tolist())
        )


def test_error_rates_by_hand():
    decoded = [[1, 2], [3], [], [4, 4, 4]]
    asked = [[1, 2], [4], [5, 6], [4, 4]]
    cer, wer = R.error_rates(decoded, asked)
    assert cer == pytest.approx((0 + 1 + 2 + 1) / 7)
    assert wer == pytest.approx(3 / 4)
    text = torch.tensor([[1, 2, 0], [4, 0, 0]])
    assert R.asked_texts(text, torch.tensor([2, 1])) == [[1, 2], [4]]


# ------------------------------------------------------------------ the metric on a fake reader


class FakeReader(nn.Module):
    """Reads the token written in row 0 of each frame's first column (blank 0 elsewhere);
    its 'features' are (width in px, the image's value at row 1, column 0) and every call is
    counted."""

    def __init__(self) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.zeros(()))
        self.calls = 0
        self.widths: list[Tensor] = []

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        tokens = x[:, 0, 0, ::2].round().long()  # (N, T)
        scores = torch.nn.functional.one_hot(tokens, 11).float() * 20
        return scores.log_softmax(-1).transpose(0, 1)

    def features(self, x: Tensor, widths_px: Tensor) -> Tensor:
        self.calls += 1
        self.widths.append(widths_px)
        return torch.stack([widths_px.float(), x[:, 0, 1, 0]], 1)


def word_image(tokens: list[int], extra: float) -> Tensor:
    """A (1, 8, 48) image the fake reader reads as ``tokens`` (one per 2 frames, blanks between)."""
    x = torch.zeros(1, 8, 48)
    for j, t in enumerate(tokens):
        x[0, 0, 4 * j] = t
    x[0, 1, 0] = extra
    return x


def fake_context(n: int = 12, seed: int = 0) -> tuple[Context, list[list[int]], list[list[int]]]:
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, 7, (n,), generator=gen)
    text = torch.zeros(n, 6, dtype=torch.int64)
    asked, decoded, images = [], [], []
    for i in range(n):
        row = torch.randint(1, 11, (int(lengths[i]),), generator=gen).tolist()
        text[i, : len(row)] = torch.tensor(row)
        read = list(row)
        if i % 3 == 1:
            read[0] = read[0] % 10 + 1  # one substitution
        if i % 4 == 2:
            read = read[:-1]  # one deletion
        asked.append(row)
        decoded.append(read)
        images.append(word_image(read, float(torch.randn((), generator=gen))))
    test_lengths = torch.tensor([1, 2, 3, 4, 5, 6] * 2)
    test = {"x": torch.randn(12, 1, 8, 48, generator=gen), "text": torch.zeros(12, 6).long(),
            "lengths": test_lengths}  # fmt: skip
    ctx = Context(torch.stack(images), test, META, FakeReader(), None,
                  source={"text": text, "lengths": lengths})  # fmt: skip
    return ctx, decoded, asked


def test_recognition_metric_on_a_fake_reader():
    ctx, decoded, asked = fake_context()
    assert R.read_words(ctx.evaluator, ctx.samples) == decoded
    ctx.evaluator.calls = 0
    out = R._recognition(ctx)
    edits = [R.edit_distance(d, a) for d, a in zip(decoded, asked, strict=True)]
    assert out["cer"] == pytest.approx(sum(edits) / sum(len(a) for a in asked))
    assert out["wer"] == pytest.approx(sum(d != a for d, a in zip(decoded, asked, strict=True))
                                       / len(asked))  # fmt: skip
    assert 0 < out["cer"] < 1 and 0 < out["wer"] < 1
    # features over each word's own columns: lengths * char_width
    assert_close(ctx.evaluator.widths[0], ctx.source["lengths"] * 8)
    assert_close(ctx.evaluator.widths[1], ctx.test["lengths"] * 8)
    fake = torch.stack([ctx.source["lengths"] * 8.0, ctx.samples[:, 0, 1, 0]], 1)
    real = torch.stack([ctx.test["lengths"] * 8.0, ctx.test["x"][:, 0, 1, 0]], 1)
    assert out["word_frechet"] == pytest.approx(frechet_from_features(fake, real))
    assert ctx.evaluator.calls == 3  # samples read once, features of samples and test once


def test_recognition_metric_bootstrap_views_index_the_rows():
    ctx, decoded, asked = fake_context()
    R._recognition(ctx)
    calls = ctx.evaluator.calls
    sample_ids = torch.tensor([0, 0, 1, 2, 5, 5, 7, 9, 10, 11, 3, 3])
    test_ids = torch.tensor([1, 1, 2, 3, 4, 5, 6, 7, 8, 8, 9, 0])
    view = ctx.resample(sample_ids, test_ids)
    out = R._recognition(view)
    assert ctx.evaluator.calls == calls  # nothing recomputed
    edits = [R.edit_distance(decoded[i], asked[i]) for i in sample_ids.tolist()]
    chars = [len(asked[i]) for i in sample_ids.tolist()]
    wrong = [decoded[i] != asked[i] for i in sample_ids.tolist()]
    assert out["cer"] == pytest.approx(sum(edits) / sum(chars))
    assert out["wer"] == pytest.approx(sum(wrong) / len(wrong))
    fake = torch.stack([ctx.source["lengths"] * 8.0, ctx.samples[:, 0, 1, 0]], 1)[sample_ids]
    real = torch.stack([ctx.test["lengths"] * 8.0, ctx.test["x"][:, 0, 1, 0]], 1)[test_ids]
    assert out["word_frechet"] == pytest.approx(frechet_from_features(fake, real))
    # through the scorer: an interval per key, within its range
    meta = {**META, "fields": {"x": {"kind": "word"}, "text": {"kind": "tokens"},
                               "lengths": {"kind": "lengths"}}}  # fmt: skip
    ctx2, _, _ = fake_context()
    ctx2.meta = meta
    values = score(ctx2, ["recognition"], replicates=30, seed=0)
    for k in ("cer", "wer", "word_frechet"):
        assert values[f"{k}_ci_low"] <= values[k] <= values[f"{k}_ci_high"]
    assert 0 <= values["wer_ci_low"] and values["wer_ci_high"] <= 1


def test_recognition_metric_needs_reader_and_texts():
    ctx, _, _ = fake_context()
    ctx.evaluator = None
    assert R._recognition(ctx) == {}
    ctx, _, _ = fake_context()
    ctx.source = None
    assert R._recognition(ctx) == {}


def test_word_frechet_left_out_when_features_outnumber_rows():
    ctx, _, _ = fake_context(n=2)
    assert set(R._recognition(ctx)) == {"cer", "wer"}


# ------------------------------------------------------------------ the word evaluator kind


@pytest.fixture(scope="module")
def tiny_words() -> tuple[dict, dict, dict]:
    from genlab.data import DATASETS

    entry = DATASETS.get("digit_strings")
    cfg = entry.options.model_validate({"n_train": 64, "n_test": 16, "max_length": 3})
    return entry.build(cfg.model_dump(), None, 0)


def test_word_evaluator_fit_is_deterministic_and_saves(tiny_words, tmp_path):
    train, test, meta = tiny_words
    settings = {"seed": 0, "device": "cpu", "epochs": 1, "batch_size": 32, "lr": 1e-3,
                "downsample": 1}  # fmt: skip
    kind = EVALUATOR_KINDS.get("word")
    net, stats = kind.fit(train, test, meta, settings)
    again, _ = kind.fit(train, test, meta, settings)
    for (k, a), b in zip(net.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert net.kwargs["width"] == R.EVALUATOR_WIDTH and not net.training
    for key in ("test_cer", "test_wer", "train_cer", "train_wer", "test_accuracy"):
        assert 0 <= stats[key] <= (1 if "wer" in key or key == "test_accuracy" else 10)
    assert stats["test_accuracy"] == pytest.approx(1 - stats["test_wer"])
    assert stats["epochs"] == 1
    cer, wer = R.error_rates(R.read_words(net, test["x"]),
                             R.asked_texts(test["text"], test["lengths"]))  # fmt: skip
    assert (cer, wer) == (stats["test_cer"], stats["test_wer"])
    path = tmp_path / "word.pt"
    kind.save(net, path, {"dataset": "digit_strings", "test_accuracy": stats["test_accuracy"]},
              meta)  # fmt: skip
    loaded = load_any(path)
    assert isinstance(loaded, Recognizer) and not loaded.training
    assert_close(loaded(test["x"]), net(test["x"]))
    with pytest.raises(ConfigError, match="downsample = 2.*allowed: 1"):
        kind.fit(train, test, {**meta, "name": "digit_strings"}, {**settings, "downsample": 2})


@pytest.mark.slow
def test_fit_evaluator_stage_on_tiny_digit_strings(tmp_path):
    from genlab.config import load_params
    from genlab.data import prepare_dataset
    from genlab.evaluate import fit_evaluator_stage

    raw = tiny_params_dict()
    raw["data"] = {"digit_strings": {"n_train": 200, "n_test": 100}}
    raw["evaluator"] = {"epochs": 1, "batch_size": 32, "lr": 0.003}
    raw["evaluate"] = {**raw["evaluate"], "metrics": ["recognition"], "n": 100}
    raw["variants"] = {}
    params = load_params(write_params(tmp_path, raw))
    prepare_dataset("digit_strings", params.dataset_cfg("digit_strings"), tmp_path, params.seed)
    out = fit_evaluator_stage(params, "digit_strings", tmp_path)
    saved = json.loads((tmp_path / "metrics" / "evaluator" / "digit_strings.json").read_text())
    assert saved["test_accuracy"] == pytest.approx(1 - saved["test_wer"])
    assert saved["epochs"] == 1 and saved["seconds"] > 0
    floor = saved["floor"]
    assert floor["n_samples"] == 100 and floor["n_reference"] == 100
    for k in ("cer", "wer", "word_frechet"):  # basic intervals: ordered, not always around k
        assert 0 <= floor[f"{k}_ci_low"] <= floor[f"{k}_ci_high"] and floor[k] >= 0
    # the floor reads training words with their own texts (one epoch: barely trained)
    assert 0 <= floor["cer"] <= 2 and 0 <= floor["wer"] <= 1 and out["floor"] == floor
    assert isinstance(load_any(tmp_path / "models" / "evaluator" / "digit_strings.pt"), Recognizer)
