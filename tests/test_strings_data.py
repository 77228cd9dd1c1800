"""The ``digit_strings`` dataset (genlab.data.strings): word images composed of real sklearn digit
glyphs, their CTC tokens and lengths, the glyph split between train and test words, seeding and
option checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from genlab.config import ConfigError, validate_params
from genlab.data import DATASETS
from genlab.data.strings import DIGITS
from tests.conftest import tiny_params_dict

NOWHERE = Path("/nonexistent")
SMALL = {"n_train": 300, "n_test": 100}


def build(seed: int = 0, **cfg) -> tuple[dict, dict, dict]:
    entry = DATASETS.get("digit_strings")
    full = entry.options.model_validate({**SMALL, **cfg}).model_dump()
    return entry.build(full, NOWHERE, seed)


@pytest.fixture(scope="module")
def built() -> tuple[dict, dict, dict]:
    return build()


@pytest.fixture(scope="module")
def glyph_index() -> tuple[dict[bytes, int], np.ndarray]:
    """sklearn's digits mapped to [-1, 1] here, independently of the builder: bitmap -> index
    (the 1797 bitmaps are distinct), and their classes."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = (bunch.data.astype(np.float32) / 16.0 * 2.0 - 1.0).reshape(-1, 8, 8)
    assert len({im.tobytes() for im in images}) == len(images)
    return {im.tobytes(): i for i, im in enumerate(images)}, bunch.target


def glyphs_used(split: dict, glyph_index) -> set[int]:
    """The sklearn index of every character block of every word, after checking that the block
    is that glyph bit for bit, of the class its token names, and that the padding is background
    with blank tokens."""
    index, classes = glyph_index
    used = set()
    for x, text, n in zip(split["x"], split["text"], split["lengths"], strict=True):
        n = int(n)
        for j in range(n):
            block = x[0, :, 8 * j : 8 * (j + 1)].numpy()
            i = index.get(block.tobytes())
            assert i is not None, "a character block is not a sklearn digit"
            assert int(text[j]) == classes[i] + 1  # digit d is token d + 1
            used.add(i)
        assert torch.all(x[0, :, 8 * n :] == -1.0)
        assert torch.all(text[n:] == 0)
    return used


def test_shapes_dtypes_lengths_and_meta(built):
    train, test, meta = built
    for split, n in ((train, 300), (test, 100)):
        assert split["x"].shape == (n, 1, 8, 48) and split["x"].dtype == torch.float32
        assert split["text"].shape == (n, 6) and split["text"].dtype == torch.int64
        assert split["lengths"].shape == (n,) and split["lengths"].dtype == torch.int64
        assert split["lengths"].min() >= 1 and split["lengths"].max() <= 6
        assert split["x"].min() >= -1.0 and split["x"].max() <= 1.0
        assert split["text"].min() >= 0 and split["text"].max() <= 10
    # every length occurs (uniform in 1..6 over 300 words)
    assert set(train["lengths"].tolist()) == set(range(1, 7))
    assert meta["vocabulary"] == "0123456789" and meta["blank"] == 0
    assert meta["max_length"] == 6 and meta["char_width"] == 8 and meta["shape"] == [1, 8, 48]
    assert meta["source_fields"] == ["text", "lengths"]
    assert DIGITS.decode(train["text"][:1], train["lengths"][:1])[0] == "".join(
        str(int(t) - 1) for t in train["text"][0, : int(train["lengths"][0])]
    )


def test_tokens_match_glyphs_and_glyph_split_is_disjoint(built, glyph_index):
    train, test, _ = built
    used_train, used_test = glyphs_used(train, glyph_index), glyphs_used(test, glyph_index)
    assert used_train.isdisjoint(used_test)
    # the test words draw from the held-out fifth of the glyphs only
    assert len(used_test) <= 0.2 * 1797 + 10 < len(used_train)


def test_same_seed_same_bits_new_seed_new_split(built, glyph_index):
    again = build(seed=0)
    for a, b in zip(built[:2], again[:2], strict=True):
        for k in ("x", "text", "lengths"):
            assert torch.equal(a[k], b[k])
    other = build(seed=1)
    assert not torch.equal(other[0]["text"], built[0]["text"])
    # a new seed splits the glyphs differently: some glyph of seed 0's test words trains now
    assert glyphs_used(other[0], glyph_index) & glyphs_used(built[1], glyph_index)


def test_length_options(glyph_index):
    train, test, meta = build(min_length=3, max_length=4)
    assert train["x"].shape[-1] == 32 and meta["shape"] == [1, 8, 32]
    assert set(train["lengths"].tolist()) == {3, 4}
    glyphs_used(train, glyph_index)


@pytest.mark.parametrize(
    "options, words",
    [
        ({"min_length": 5, "max_length": 3}, ["min_length = 5", "max_length = 3"]),
        ({"n_train": 5}, ["n_train"]),
        ({"max_length": 0}, ["max_length"]),
        ({"glyph_test_fraction": 1.0}, ["glyph_test_fraction"]),
    ],
)
def test_bad_options_refused_at_params_load(options, words):
    raw = tiny_params_dict()
    raw["data"] = {**raw["data"], "digit_strings": options}
    with pytest.raises(ConfigError) as e:
        validate_params(raw)
    for word in ["digit_strings", *words]:
        assert word in str(e.value)
