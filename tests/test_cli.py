"""The command line: exit 2 with one clear message on bad input, and nothing written or damaged."""

from __future__ import annotations

import hashlib

import pytest
import yaml

from genlab.cli import main
from tests.conftest import tiny_params_dict, write_params


def run(capsys, root, *argv):
    code = main(["--params", str(root / "params.yaml"), *argv])
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_bad_params_exit_2_and_write_nothing(tmp_path, capsys):
    raw = tiny_params_dict()
    raw["variants"]["dcgan_ns"]["loss"] = "wgan"
    write_params(tmp_path, raw)
    code, out = run(capsys, tmp_path, "prepare")
    assert code == 2
    assert "genlab: error:" in out
    assert "unknown loss 'wgan'; allowed: energy, fgan, hinge, least_squares, minimax" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_unknown_variant_and_bad_override(tiny_project, capsys):
    root, _ = tiny_project
    code, out = run(capsys, root, "train", "gan9")
    assert code == 2 and "unknown variant 'gan9'" in out and "dcgan_ns, ring_gan, vae" in out
    code, out = run(capsys, root, "-S", "train.steps=-3", "train", "vae")
    assert code == 2 and "steps = -3" in out and "greater than or equal to 1" in out
    assert not (root / "models").exists()


def test_a_failing_command_leaves_earlier_outputs_intact(tiny_project, capsys):
    root, _ = tiny_project
    assert run(capsys, root, "train", "ring_gan")[0] == 0
    model = root / "models/ring_gan/model.pt"
    before = digest(model)
    code, out = run(capsys, root, "-S", "variants.ring_gan.arch=dcgan", "train", "ring_gan")
    assert code == 2 and "arch 'dcgan' needs a dataset of kind 'image'" in out
    code, out = run(capsys, root, "-S", "variants.ring_gan.batch_size=50000", "train", "ring_gan")
    assert code == 2 and "batch_size = 50000 exceeds the 512 training examples" in out
    assert digest(model) == before


def test_missing_upstream_outputs_say_which_stage_to_run(tiny_project, capsys):
    root, _ = tiny_project
    code, out = run(capsys, root, "sample", "vae")
    assert code == 2 and "run `genlab train` first" in out
    code, out = run(capsys, root, "fit-evaluator", "grid25")
    assert code == 2 and "genlab prepare grid25" in out


def test_mnist_offline_and_absent_says_where_the_files_go(tmp_path, capsys):
    raw = tiny_params_dict()
    raw["data"] = {"mnist": {"download": False}}
    write_params(tmp_path, raw)
    code, out = run(capsys, tmp_path, "prepare", "mnist")
    assert code == 2
    assert str(tmp_path / "data/raw/MNIST/raw") in out and "train-images-idx3-ubyte" in out
    assert "data.mnist.download: true" in out
    assert not (tmp_path / "data/prepared/mnist").exists()


def test_prepare_all_datasets_in_params(tmp_path, capsys):
    write_params(tmp_path, tiny_params_dict())
    code, out = run(capsys, tmp_path, "prepare")
    assert code == 0
    for name in ("digits", "ring8"):
        meta = yaml.safe_load((tmp_path / f"data/prepared/{name}/meta.json").read_text())
        assert meta["name"] == name


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["toys"])
    assert e.value.code == 2


def test_prepare_without_a_data_section_prepares_nothing(tmp_path, capsys):
    (tmp_path / "params.yaml").write_text("seed: 0\ntracking: {enabled: false}\n")
    code, out = run(capsys, tmp_path, "prepare")
    assert code == 0, out
    assert not (tmp_path / "data").exists()
