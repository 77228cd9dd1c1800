"""The token-row datasets (``genlab.data.text``): the grammar's exact parser on hand-made strings,
every generated string valid, distinct and split disjointly; the text windows, their vocabulary
and their paragraph-disjoint split; determinism; bad options refused with ConfigError."""

from __future__ import annotations

import random

import pytest
import torch

from genlab.config import validate_params
from genlab.data import DATASETS
from genlab.data.text import (
    GRAMMAR,
    GRAMMAR_CHARS,
    TEXT,
    TEXT_CHARS,
    GrammarCfg,
    TextCfg,
    derive,
    grammar,
    grammar_strings,
    is_valid,
    paragraphs,
    parses,
    split_paragraphs,
    text_lines,
    windows,
)
from genlab.errors import ConfigError


# ---------------------------------------------------------------------------- the grammar
@pytest.mark.parametrize(
    "text",
    ["x", "y", "z", "(x)", "((z))", "x+y", "x-y*z/x", "(x+y)*z", "x*(y-(z/x))", "((x)+(y))"],
)
def test_sentences_of_the_grammar_parse(text):
    assert parses(text)


@pytest.mark.parametrize(
    "text",
    ["", "xy", "x+", "+x", "()", "(x", "x)", "(x+y))", "x++y", "x+-y", "(+x)", "x (", "a",
     "x y", "x*()", ")x(", "-x"],
)  # fmt: skip
def test_non_sentences_do_not_parse(text):
    assert not parses(text)


def test_a_padded_row_is_valid_only_with_padding_at_its_end():
    assert is_valid("x+y     ") and is_valid("(z)")
    assert not is_valid("        ")  # empty
    assert not is_valid(" x+y    ")  # padding before the sentence
    assert not is_valid("x+ y    ")  # padding inside it
    assert not is_valid("x+y  x  ")


def test_derive_respects_the_depth_limit_and_yields_sentences():
    rng = random.Random(0)
    for _ in range(300):
        text = derive(rng, max_depth=2, p_operator=0.6, p_paren=0.5)
        assert parses(text)
        depth = max_depth = 0
        for c in text:
            depth += {"(": 1, ")": -1}.get(c, 0)
            max_depth = max(max_depth, depth)
        assert max_depth <= 2
    assert all(derive(rng, 0, 0.5, 0.9).count("(") == 0 for _ in range(50))


def _grammar(**cfg):
    return grammar(GrammarCfg(**cfg).model_dump(), None, 0)


def test_every_generated_row_is_valid_distinct_padded_and_the_splits_are_disjoint():
    train, test, meta = _grammar(n_train=300, n_test=100)
    assert train["x"].shape == (300, 12) and test["x"].shape == (100, 12)
    assert train["x"].dtype == torch.int64
    assert meta["vocabulary"] == GRAMMAR_CHARS and meta["pad"] == " " and meta["length"] == 12
    rows = GRAMMAR.decode(train["x"]) + GRAMMAR.decode(test["x"])
    assert all(is_valid(r) for r in rows)
    assert len(set(rows)) == 400  # deduplicated, so no string in both splits
    assert all(r == r.rstrip(" ") + " " * (12 - len(r.rstrip(" "))) for r in rows)
    assert GRAMMAR_CHARS.index(" ") == 0  # the pad is token 0
    lengths = [len(r.rstrip()) for r in rows]
    assert min(lengths) >= 1 and max(lengths) <= 12 and len(set(lengths)) > 2


def test_grammar_is_deterministic_per_seed():
    cfg = GrammarCfg(n_train=50, n_test=20).model_dump()
    a, b = grammar(cfg, None, 0), grammar(cfg, None, 0)
    assert torch.equal(a[0]["x"], b[0]["x"]) and torch.equal(a[1]["x"], b[1]["x"])
    assert not torch.equal(a[0]["x"], grammar(cfg, None, 1)[0]["x"])
    assert grammar_strings(cfg, 3) == grammar_strings(cfg, 3)


def test_too_few_distinct_strings_is_a_config_error():
    # strings of at most 3 characters: 3 variables, 3 parenthesised, 36 "a op b": 42 in all
    with pytest.raises(ConfigError, match="max_length = 3.*n_train \\+ n_test = 60"):
        _grammar(n_train=50, n_test=10, max_length=3)


# ---------------------------------------------------------------------------- text
def test_paragraphs_drop_rules_map_quotes_lowercase_and_deduplicate():
    topics = {
        "b": "The \u201cif\u201d  Statement\n******************\n\nIt\u2019s   run.\n",
        "a": "It\u2019s run.\n\n+----+\n| Ok |\n+----+",
    }
    assert paragraphs(topics) == ["it's run.", "| ok |", 'the "if" statement']


def test_windows_start_at_words_and_hold_only_the_vocabulary():
    text = "ab cd_ef gh ij"
    assert windows(text, 5) == ["ab cd", "gh ij"]  # "cd_ef", "ef gh" hold "_"
    assert windows(text, 2) == ["ab", "cd", "gh", "ij"]
    assert windows("short", 6) == []


def test_split_paragraphs_is_a_seeded_partition():
    train, test = split_paragraphs(10, 0.3, torch.Generator().manual_seed(0))
    assert len(test) == 3 and sorted(train + test) == list(range(10))
    again = split_paragraphs(10, 0.3, torch.Generator().manual_seed(0))
    assert again == (train, test)


@pytest.fixture(scope="module")
def text_data():
    cfg = TextCfg(n_train=400, n_test=100).model_dump()
    return cfg, text_lines(cfg, None, 0)


def test_text_rows_are_32_characters_of_the_vocabulary(text_data):
    _, (train, test, meta) = text_data
    assert train["x"].shape == (400, 32) and test["x"].shape == (100, 32)
    assert train["x"].dtype == torch.int64
    assert int(train["x"].min()) >= 0 and int(train["x"].max()) < len(TEXT_CHARS)
    assert meta["vocabulary"] == TEXT_CHARS and 40 <= len(TEXT_CHARS) <= 70
    assert meta["kind"] == "tokens" and meta["shape"] == [32] and meta["length"] == 32
    rows = TEXT.decode(train["x"])
    assert all(len(r) == 32 and r[0] != " " for r in rows)
    assert sum(r.count(" ") for r in rows) > 3 * len(rows)  # words, not code


def test_text_splits_come_from_disjoint_paragraphs(text_data):
    from pydoc_data.topics import topics

    cfg, (train, test, meta) = text_data
    paras = paragraphs(topics)
    train_ids, test_ids = split_paragraphs(len(paras), cfg["test_fraction"],
                                           torch.Generator().manual_seed(0))  # fmt: skip
    assert meta["paragraphs"] == {"train": len(train_ids), "test": len(test_ids)}
    train_text = "\n".join(paras[i] for i in train_ids)
    test_text = "\n".join(paras[i] for i in test_ids)
    for row in TEXT.decode(test["x"]):
        assert row in test_text and row not in train_text
    for row in TEXT.decode(train["x"][:50]):
        assert row in train_text


def test_text_is_deterministic_per_seed(text_data):
    cfg, (train, test, _) = text_data
    again = text_lines(cfg, None, 0)
    assert torch.equal(train["x"], again[0]["x"]) and torch.equal(test["x"], again[1]["x"])
    assert not torch.equal(train["x"], text_lines(cfg, None, 1)[0]["x"])


def test_asking_for_more_text_rows_than_the_pool_holds_is_a_config_error():
    cfg = TextCfg(n_train=190_000).model_dump()
    with pytest.raises(ConfigError, match="data.text.n_train = 190000.*allowed: n_train <="):
        text_lines(cfg, None, 0)


def test_characters_outside_the_vocabulary_are_a_config_error():
    with pytest.raises(ConfigError, match="outside the vocabulary.*'H'"):
        TEXT.encode(["Hello"], 32, "figure text")
    with pytest.raises(ConfigError, match="'a'"):
        GRAMMAR.encode(["x+a"], 12, "grammar row")


def test_both_datasets_are_registered_with_token_rows_and_their_options_validate():
    for name in ("text", "grammar"):
        assert DATASETS.get(name).fields == {"x": {"kind": "tokens"}}
    params = validate_params({"data": {"text": {"n_train": 100}, "grammar": {"max_length": 8}}})
    assert params.dataset_cfg("grammar")["max_length"] == 8
    with pytest.raises(ConfigError, match="length"):
        validate_params({"data": {"text": {"length": 2}}})


def test_expected_derivation_length_matches_the_draws_and_explosive_settings_are_refused():
    import random

    from genlab.config import validate_params
    from genlab.data.text import derive, expected_length
    from genlab.errors import ConfigError

    for args in [(3, 0.6, 0.2), (2, 0.5, 0.5)]:
        rng = random.Random(0)
        mean = sum(len(derive(rng, *args)) for _ in range(20000)) / 20000
        assert abs(mean - expected_length(*args)) < 0.02 * expected_length(*args)
    assert expected_length(0, 0.5, 0.9) == 3.0  # two variables and an operator on average
    with pytest.raises(ConfigError, match="characters on average.*lower p_operator"):
        validate_params({"data": {"grammar": {"p_operator": 0.9, "p_paren": 0.9, "max_depth": 16}}})
