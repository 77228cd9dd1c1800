"""Bad text inputs at the command line: exit 2, one message naming what is allowed, nothing
written (a figure text outside the vocabulary or too long, a bad dataset option). The figure
texts are part of the variant (model.pt keeps them), so ``train`` is where they are refused."""

from __future__ import annotations

import pytest

from genlab.cli import main
from tests.conftest import tiny_params_dict, write_params

WORDS = {"n_train": 40, "n_test": 20, "min_length": 1, "max_length": 6}


def run(capsys, root, *argv):
    code = main(["--params", str(root / "params.yaml"), *argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.fixture
def words_project(tmp_path, capsys):
    raw = tiny_params_dict()
    raw["data"] = {"digit_strings": WORDS}
    raw["variants"] = {
        "hw": {"dataset": "digit_strings", "family": "handwriting", "arch": "scrabble",
               "latent_dim": 4, "width": 8, "recognizer_width": 4, "steps": 2},
        "t2i": {"dataset": "digit_strings", "family": "text2image", "arch": "dcgan",
                "latent_dim": 4, "width": 4, "steps": 2, "encoder_steps": 1},
    }  # fmt: skip
    raw["evaluate"]["metrics"] = ["recognition"]
    write_params(tmp_path, raw)
    assert run(capsys, tmp_path, "prepare", "digit_strings")[0] == 0
    return tmp_path


@pytest.mark.parametrize("variant", ["hw", "t2i"])
@pytest.mark.parametrize(
    ("texts", "message"),
    [('["12a"]', r"outside the vocabulary ('a'); allowed: '0123456789'"),
     ('["1234567"]', "has 7 characters; allowed: at most 6")],
)  # fmt: skip
def test_a_bad_figure_text_stops_train_with_exit_2_and_writes_nothing(
    words_project, capsys, variant, texts, message
):
    root = words_project
    code, out = run(capsys, root, "-S", f"variants.{variant}.figure_texts={texts}", "train",
                    variant)  # fmt: skip
    assert code == 2, out
    assert "genlab: error:" in out and message in out and "Traceback" not in out
    assert not (root / "models" / variant).exists()


def test_bad_word_options_are_refused_at_params_load(tmp_path, capsys):
    raw = tiny_params_dict()
    raw["data"] = {"digit_strings": {**WORDS, "min_length": 7}}
    write_params(tmp_path, raw)
    code, out = run(capsys, tmp_path, "prepare", "digit_strings")
    assert code == 2 and "min_length = 7 exceeds max_length = 6" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]
