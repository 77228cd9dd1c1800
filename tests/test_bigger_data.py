"""Bigger data sets at 32x32 (issue 15): mnist / fashion_mnist padded to 32x32, cifar10 from its
python-version pickles, and the one-switch profile ``genlab profile bigger`` (tested with DVC
for real in a temporary git + DVC project)."""

from __future__ import annotations

import math
import pickle
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from torch.testing import assert_close

from genlab.config import load_params, validate_params
from genlab.data import DATASETS, DataUnavailableError, load_prepared, prepare_dataset
from genlab.errors import ConfigError
from genlab.profiles import apply_profile, end_marker, start_marker
from tests.conftest import REPO, tiny_params_dict, write_params
from tests.rawfiles import (
    CIFAR_FOLDER,
    IDX_NAMES,
    write_cifar10,
    write_idx,
)

CIFAR_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")


def build(name: str, cfg: dict, raw: Path):
    entry = DATASETS.get(name)
    return entry.build({**entry.options().model_dump(), **cfg}, raw, 0)


# --------------------------------------------------------------------------- mnist at 32x32


@pytest.mark.parametrize("name,subdir", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_idx_at_32_is_the_28x28_image_padded_with_background(tmp_path, name, subdir):
    arrays = write_idx(tmp_path, subdir, n_train=12, n_test=6, seed=3, gz=name == "mnist")
    train, test, meta = build(name, {"size": 32}, tmp_path)
    assert meta["shape"] == [1, 32, 32] and (meta["n_train"], meta["n_test"]) == (12, 6)
    for split, key in ((train, "train"), (test, "test")):
        # independent reference: numpy pads the uint8 images with 0 (black), then scales
        padded = np.pad(arrays[f"{key}_x"], ((0, 0), (2, 2), (2, 2)), constant_values=0)
        expected = torch.from_numpy(padded.astype(np.float64) / 127.5 - 1.0).float()[:, None]
        assert_close(split["x"], expected, rtol=0, atol=1e-6)
        assert torch.equal(split["y"], torch.from_numpy(arrays[f"{key}_y"]).long())
    assert (train["x"][:, :, :2] == -1).all() and (train["x"][:, :, :, -2:] == -1).all()


def test_idx_default_size_keeps_the_28x28_bits(tmp_path):
    arrays = write_idx(tmp_path, "MNIST", n_train=8, n_test=4, seed=1)
    train, _, meta = build("mnist", {}, tmp_path)
    assert meta["shape"] == [1, 28, 28]
    expected = torch.from_numpy(arrays["train_x"]).float()[:, None].div(127.5).sub(1.0)
    assert torch.equal(train["x"], expected)
    assert torch.equal(build("mnist", {"size": 32}, tmp_path)[0]["x"][:, :, 2:30, 2:30], expected)


def test_idx_size_other_than_28_or_32_is_a_config_error():
    raw = tiny_params_dict()
    raw["data"]["mnist"] = {"size": 30}
    with pytest.raises(ConfigError, match=r"data\.mnist\.size"):
        validate_params(raw)


# --------------------------------------------------------------------------- cifar10


def test_cifar10_values_shapes_labels(tmp_path):
    arrays = write_cifar10(tmp_path, n_per_batch=6, n_test=7, seed=2)
    train, test, meta = build("cifar10", {}, tmp_path)
    assert meta == {"name": "cifar10", "kind": "image", "shape": [3, 32, 32], "num_classes": 10,
                    "n_train": 30, "n_test": 7}  # fmt: skip
    assert train["x"].dtype == torch.float32 and train["y"].dtype == torch.int64
    for split, key in ((train, "train"), (test, "test")):
        expected = torch.from_numpy(arrays[f"{key}_x"].astype(np.float64) / 127.5 - 1).float()
        assert_close(split["x"], expected, rtol=0, atol=1e-6)
        assert torch.equal(split["y"], torch.from_numpy(arrays[f"{key}_y"]))
    # by hand: pixel (row 5, col 7) of the green plane is byte 1024 + 5 * 32 + 7 of the row
    with open(tmp_path / CIFAR_FOLDER / "data_batch_2", "rb") as f:
        row = pickle.load(f, encoding="bytes")[b"data"][3]
    assert_close(train["x"][6 + 3, 1, 5, 7].item(), float(row[1024 + 5 * 32 + 7]) / 127.5 - 1.0)


def test_cifar10_files_read_like_torchvision_reads_them(tmp_path, monkeypatch):
    """torchvision's own reader, its md5 check switched off, sees the same images and labels."""
    import torchvision.datasets.cifar as tv_cifar

    write_cifar10(tmp_path, n_per_batch=4, n_test=5, seed=0)
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *a, **k: True)
    train, test, _ = build("cifar10", {}, tmp_path)
    for split, is_train in ((train, True), (test, False)):
        ref = tv_cifar.CIFAR10(str(tmp_path), train=is_train, download=False)
        images = torch.from_numpy(ref.data).permute(0, 3, 1, 2).float() / 127.5 - 1  # NHWC
        assert_close(split["x"], images, rtol=0, atol=1e-6)
        assert split["y"].tolist() == ref.targets
    assert ref.classes[:2] == ["airplane", "automobile"]


def test_cifar10_limit_keeps_the_first_images(tmp_path):
    arrays = write_cifar10(tmp_path, n_per_batch=4, n_test=6)
    train, test, meta = build("cifar10", {"limit": 5}, tmp_path)
    assert len(train["x"]) == len(test["x"]) == 5 and meta["n_train"] == 5
    assert torch.equal(train["y"], torch.from_numpy(arrays["train_y"][:5]))


def test_cifar10_missing_files_name_the_folder_files_and_download(tmp_path):
    with pytest.raises(DataUnavailableError) as err:
        prepare_dataset("cifar10", {}, tmp_path, seed=0)
    msg = str(err.value)
    assert f"{tmp_path / 'data' / 'raw' / CIFAR_FOLDER}/" in msg
    assert all(f in msg for f in CIFAR_FILES) and "data.cifar10.download: true" in msg
    assert not (tmp_path / "data" / "prepared").exists()
    write_cifar10(tmp_path / "data" / "raw")
    (tmp_path / "data" / "raw" / CIFAR_FOLDER / "test_batch").unlink()
    with pytest.raises(DataUnavailableError, match=r"missing: test_batch\)"):
        prepare_dataset("cifar10", {}, tmp_path, seed=0)


def test_cifar10_failed_download_is_data_unavailable(tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading cifar-10-python.tar.gz")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", offline)
    with pytest.raises(DataUnavailableError, match="download failed: Error downloading"):
        build("cifar10", {"download": True}, tmp_path)


class Evil:
    def __reduce__(self):
        return (shutil.rmtree, ("/nonexistent-genlab-test",))


@pytest.mark.parametrize(
    "content,why",
    [
        (b"\x00garbage", "unreadable"),
        (pickle.dumps({b"data": Evil(), b"labels": [0]}), "refusing to load shutil.rmtree"),
        (pickle.dumps([1, 2]), "holds a list"),
        (pickle.dumps({b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}), r"\(N, 3072\)"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}), "ints 0..9"),
        (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}), "ints 0..9"),
    ],
)
def test_cifar10_corrupt_batch_is_a_clear_error(tmp_path, content, why):
    write_cifar10(tmp_path)
    bad = tmp_path / CIFAR_FOLDER / "data_batch_3"
    bad.write_bytes(content)
    with pytest.raises(DataUnavailableError, match=why) as err:
        build("cifar10", {}, tmp_path)
    assert str(bad) in str(err.value) and "not a CIFAR-10 python-version batch" in str(err.value)


# --------------------------------------------------------------------------- the profile


@pytest.fixture
def repo_copy(tmp_path) -> Path:
    """The repository's params.yaml and profiles/ in a temporary project."""
    shutil.copy(REPO / "params.yaml", tmp_path)
    shutil.copytree(REPO / "profiles", tmp_path / "profiles")
    return tmp_path


NEW_DATA = ("mnist", "fashion_mnist", "cifar10")
NEW_VARIANTS = (
    "dcgan_mnist",
    "dcgan_fashion_mnist",
    "dcgan_cifar10",
    "sngan_cifar10",
    "biggan_cifar10",
)


def test_profile_adds_the_datasets_evaluators_and_variants(repo_copy):
    params_path = repo_copy / "params.yaml"
    before = params_path.read_text()
    old = load_params(params_path)
    assert not set(NEW_DATA) & set(old.data.model_dump(exclude_none=True))
    assert "bigger" in apply_profile(params_path, "bigger")
    params = load_params(params_path)
    assert set(NEW_DATA) <= set(params.data.model_dump(exclude_none=True))
    assert params.dataset_cfg("mnist")["size"] == params.dataset_cfg("fashion_mnist")["size"] == 32
    assert params.evaluator.fit("cifar10")["epochs"] == 20
    for name in NEW_VARIANTS:
        v = params.variant(name)
        assert v.family == "gan" and v.arch in ("dcgan", "biggan") and v.dataset in NEW_DATA
    assert params.variant("sngan_cifar10").loss == "hinge"
    big = params.variant("biggan_cifar10")
    assert (big.arch, big.loss, big.orthogonal, big.z_truncation) == ("biggan", "hinge", 1e-4, 1.0)
    # everything else unchanged: the old params are the new ones minus the added entries
    assert old.variants.keys() <= params.variants.keys()
    assert old.model_dump()["train"] == params.model_dump()["train"]
    after = params_path.read_text()
    assert after.count(start_marker("bigger")) == 3 == after.count(end_marker("bigger"))
    kept = [line for line in after.splitlines(keepends=True) if line in before]
    assert "".join(kept).startswith(before[:200])


def test_profile_is_idempotent_and_off_restores_the_file_byte_for_byte(repo_copy):
    params_path = repo_copy / "params.yaml"
    before = params_path.read_bytes()
    apply_profile(params_path, "bigger")
    once = params_path.read_bytes()
    assert "unchanged" in apply_profile(params_path, "bigger")
    assert params_path.read_bytes() == once
    assert "removed" in apply_profile(params_path, "bigger", off=True)
    assert params_path.read_bytes() == before
    assert "unchanged" in apply_profile(params_path, "bigger", off=True)


def test_profile_adds_missing_sections_with_their_headers(tmp_path):
    raw = tiny_params_dict()  # no evaluator.datasets
    params_path = write_params(tmp_path, raw)
    shutil.copytree(REPO / "profiles", tmp_path / "profiles")
    apply_profile(params_path, "bigger")
    merged = yaml.safe_load(params_path.read_text())
    assert merged["evaluator"]["datasets"]["mnist"] == {"epochs": 5, "batch_size": 256}
    assert merged["evaluator"]["epochs"] == 2 and merged["data"]["mnist"] == {"size": 32}
    apply_profile(params_path, "bigger", off=True)
    assert yaml.safe_load(params_path.read_text()) == raw


@pytest.mark.parametrize(
    "profile,why",
    [
        ("train:\n  steps: 5\n", r"sets train; a profile may add entries to data, "
                                 r"evaluator.datasets, variants only"),
        ("variants:\n  x: {dataset: nowhere, family: gan, arch: dcgan}\n", "nowhere"),
        ("data:\n  digits: {test_fraction: 0.5}\n", "already has data.digits"),
        ("data:\n  mnist: {size: 30}\n", r"data\.mnist\.size"),
        ("data: {mnist: {}}\n", "flow style"),
        ("# nothing\n", "adds nothing"),
    ],
)  # fmt: skip
def test_bad_profile_is_a_config_error_and_writes_nothing(repo_copy, profile, why):
    params_path = repo_copy / "params.yaml"
    before = params_path.read_bytes()
    (repo_copy / "profiles" / "bad.yaml").write_text(profile)
    with pytest.raises(ConfigError, match=why):
        apply_profile(params_path, "bad")
    assert params_path.read_bytes() == before


def test_unknown_profile_lists_the_available_ones(repo_copy):
    with pytest.raises(ConfigError, match=r"nope\.yaml does not exist; profiles in .*: bigger"):
        apply_profile(repo_copy / "params.yaml", "nope")


def dvc(root: Path, *args: str) -> str:
    out = subprocess.run([str(REPO / ".venv" / "bin" / "dvc"), *args], cwd=root,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


@pytest.mark.slow
def test_dvc_sees_the_profile_stages_only_after_the_switch(repo_copy):
    shutil.copy(REPO / "dvc.yaml", repo_copy)
    subprocess.run(["git", "init", "-q"], cwd=repo_copy, check=True)
    dvc(repo_copy, "init", "-q")
    before = dvc(repo_copy, "stage", "list", "--name-only").split()
    assert "train@dcgan_ns" in before and not [s for s in before if "cifar10" in s]
    apply_profile(repo_copy / "params.yaml", "bigger")
    after = set(dvc(repo_copy, "stage", "list", "--name-only").split())
    expected = {f"{s}@{d}" for s in ("prepare", "fit-evaluator") for d in NEW_DATA}
    expected |= {f"{s}@{v}" for s in ("train", "sample", "evaluate") for v in NEW_VARIANTS}
    assert expected <= after and set(before) <= after
    assert after - set(before) == expected
    apply_profile(repo_copy / "params.yaml", "bigger", off=True)
    assert dvc(repo_copy, "stage", "list", "--name-only").split() == before


# --------------------------------------------------------------------------- end to end


def e2e_params(dataset: str) -> dict:
    """Tiny settings: 1 evaluator epoch, a width-8 DCGAN for 3 steps on 32x32 images."""
    raw = tiny_params_dict()
    raw["data"] = {dataset: {"size": 32} if dataset == "mnist" else {}}
    raw["evaluator"] = {"epochs": 1, "batch_size": 32, "lr": 0.001}
    raw["train"].update(steps=3, log_every=1, checkpoint_every=3)
    raw["variants"] = {"gan": {"dataset": dataset, "family": "gan", "arch": "dcgan",
                               "loss": "hinge", "latent_dim": 16, "width": 8, "d_norm": "none",
                               "regularizers": {"spectral_norm": {}}}}  # fmt: skip
    raw["sample"] = {"n": 64, "grid": 16, "interpolation_steps": 4, "batch_size": 64}
    raw["evaluate"] = {"metrics": ["kid", "coverage"], "n": 64, "bootstrap": 10,
                       "kid_subsets": 5, "kid_subset_size": 32}  # fmt: skip
    return raw


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["mnist", "cifar10"])
def test_end_to_end_at_32x32(tmp_path, dataset):
    from genlab.evaluate import evaluate_variant, fit_evaluator_stage
    from genlab.sample import sample_variant
    from genlab.train.loop import train_variant

    raw_dir = tmp_path / "data" / "raw"
    if dataset == "mnist":
        write_idx(raw_dir, "MNIST", n_train=96, n_test=64, seed=0)
    else:
        write_cifar10(raw_dir, n_per_batch=20, n_test=64, seed=0)
    params = load_params(write_params(tmp_path, e2e_params(dataset)))
    prepare_dataset(dataset, params.dataset_cfg(dataset), tmp_path, params.seed)
    _, test, meta = load_prepared(tmp_path, dataset)
    channels = 1 if dataset == "mnist" else 3
    assert meta["shape"] == [channels, 32, 32] and test["x"].shape == (64, channels, 32, 32)
    fit_evaluator_stage(params, dataset, tmp_path)
    assert train_variant(params, "gan", tmp_path)["steps"] == 3
    paths = sample_variant(params, "gan", tmp_path)
    saved = torch.load(paths["samples"], weights_only=True)
    assert saved["x"].shape[1:] == (channels, 32, 32)
    metrics = evaluate_variant(params, "gan", tmp_path)
    for key in ("kid", "kid_ci_low", "kid_ci_high", "classes_covered", "class_kl"):
        assert math.isfinite(metrics[key]), (key, metrics)
    assert (paths["dir"] / "grid.png").is_file()


def test_rawfiles_idx_names_are_the_loader_names():
    from genlab.data.torchvision_sets import IDX_FILES

    assert tuple(IDX_NAMES.values()) == IDX_FILES


def test_the_command_line_switches_the_profile_and_refuses_an_unknown_one(repo_copy, capsys):
    from genlab.cli import main

    params_path = repo_copy / "params.yaml"
    before = params_path.read_bytes()
    assert main(["--params", str(params_path), "profile", "bigger"]) in (0, None)
    assert "added profile 'bigger'" in capsys.readouterr().out
    assert "biggan_cifar10" in load_params(params_path).variants
    assert main(["--params", str(params_path), "profile", "nope"]) == 2
    err = capsys.readouterr()
    assert "bigger" in err.out + err.err and "nope" in err.out + err.err
    assert main(["--params", str(params_path), "profile", "bigger", "--off"]) in (0, None)
    assert params_path.read_bytes() == before
