"""Tests for genlab.data: builders, determinism, atomic prepare/load, offline IDX reading."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision

import genlab
from genlab.data import DATASETS, DataUnavailableError, load_prepared, prepare_dataset
from genlab.registry import UnknownNameError
from tests.rawfiles import IDX_NAMES, idx_images, idx_labels


def build(name: str, cfg: dict, seed: int, raw: Path = Path("/nonexistent")):
    entry = DATASETS.get(name)
    return entry.build({**entry.options().model_dump(), **cfg}, raw, seed)


# --- registry -----------------------------------------------------------------------------


def test_registry_lists_all_and_rejects_unknown() -> None:
    assert DATASETS.names() == [
        "cifar10", "digit_strings", "digits", "digits_edges", "digits_fonts", "digits_layout",
        "faces", "fashion_mnist", "grammar", "grid25", "mnist", "moving_digits", "photos_sr",
        "ring8", "text", "trajectories",
    ]  # fmt: skip
    with pytest.raises(
        UnknownNameError, match="nope.*cifar10, digit_strings, digits, digits_edges, digits_fo"
    ):
        DATASETS.get("nope")


# --- digits -------------------------------------------------------------------------------


def test_digits_shapes_range_labels_stratified() -> None:
    train, test, meta = build("digits", {"test_fraction": 0.2}, seed=0)
    assert train["x"].shape == (1437, 1, 8, 8) and test["x"].shape == (360, 1, 8, 8)
    assert train["x"].dtype == torch.float32 and train["y"].dtype == torch.int64
    x = torch.cat([train["x"], test["x"]])
    assert x.min() == -1.0 and x.max() == 1.0
    y = torch.cat([train["y"], test["y"]])
    counts = torch.bincount(y, minlength=10)
    assert counts.sum() == 1797 and (counts > 170).all()
    # stratified: each class's test count is within 1 of its exact share
    test_counts = torch.bincount(test["y"], minlength=10).double()
    assert (test_counts - counts.double() * 360 / 1797).abs().max() <= 1.0
    assert meta == {
        "name": "digits",
        "kind": "image",
        "shape": [1, 8, 8],
        "num_classes": 10,
        "n_train": 1437,
        "n_test": 360,
    }


def test_digits_seed_determinism() -> None:
    a, b, c = (build("digits", {}, seed=s) for s in (3, 3, 4))
    for split in (0, 1):
        for k in ("x", "y"):
            assert torch.equal(a[split][k], b[split][k])
    assert not torch.equal(a[1]["x"], c[1]["x"])


# --- 2-D mixtures -------------------------------------------------------------------------


def expected_modes(name: str) -> list[list[float]]:
    if name == "ring8":
        return [[2.0 * math.cos(2 * math.pi * k / 8), 2.0 * math.sin(2 * math.pi * k / 8)]
                for k in range(8)]  # fmt: skip
    return [[a, b] for a in (-4.0, -2.0, 0.0, 2.0, 4.0) for b in (-4.0, -2.0, 0.0, 2.0, 4.0)]


@pytest.mark.parametrize("name,std", [("ring8", 0.02), ("grid25", 0.05)])
def test_mixture_modes_and_moments(name: str, std: float) -> None:
    train, test, meta = build(name, {}, seed=0)
    modes = expected_modes(name)
    assert meta["modes"] == modes and meta["mode_std"] == std
    assert meta["num_classes"] == len(modes) and meta["kind"] == "points"
    assert train["x"].shape == (20000, 2) and test["x"].shape == (5000, 2)
    assert train["x"].dtype == torch.float32 and train["y"].dtype == torch.int64
    x, y = train["x"].double(), train["y"]
    counts = torch.bincount(y, minlength=len(modes))
    p = 1 / len(modes)
    assert (counts - 20000 * p).abs().max() <= 5 * math.sqrt(20000 * p * (1 - p))
    for k, centre in enumerate(modes):
        pts = x[y == k]
        n_k = len(pts)
        mean_err = (pts.mean(0) - torch.tensor(centre, dtype=torch.float64)).abs()
        assert (mean_err <= 5 * std / math.sqrt(n_k)).all()
        assert ((pts.std(0) - std).abs() <= 5 * std / math.sqrt(2 * n_k)).all()


def test_ring8_respects_radius_and_std() -> None:
    _, _, meta = build("ring8", {"radius": 3.0, "std": 0.1, "n": 10, "n_test": 4}, seed=0)
    assert meta["modes"][2] == [3.0 * math.cos(math.pi / 2), 3.0]
    assert meta["mode_std"] == 0.1 and meta["n_train"] == 10 and meta["n_test"] == 4


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_mixture_determinism(name: str) -> None:
    cfg = {"n": 500, "n_test": 100}
    a, b, c = (build(name, cfg, seed=s) for s in (7, 7, 8))
    for split in (0, 1):
        assert torch.equal(a[split]["x"], b[split]["x"])
        assert torch.equal(a[split]["y"], b[split]["y"])
    assert not torch.equal(a[0]["x"], c[0]["x"])
    assert not torch.equal(a[0]["x"][:100], a[1]["x"])  # test is a fresh draw, not a copy


# --- prepare / load -----------------------------------------------------------------------


def test_prepare_and_load_round_trip(tmp_path: Path) -> None:
    cfg = {"n": 300, "n_test": 50, "std": 0.02}
    folder = prepare_dataset("ring8", cfg, tmp_path, seed=5)
    assert folder == tmp_path / "data" / "prepared" / "ring8"
    assert sorted(p.name for p in folder.iterdir()) == ["meta.json", "test.pt", "train.pt"]
    assert [p.name for p in folder.parent.iterdir()] == ["ring8"]  # no temp leftovers
    train, test, meta = load_prepared(tmp_path, "ring8")
    ref_train, ref_test, ref_meta = build("ring8", cfg, seed=5)
    assert torch.equal(train["x"], ref_train["x"]) and torch.equal(test["y"], ref_test["y"])
    full = {**cfg, "radius": 2.0}  # the options' defaults filled in
    fields = {"x": {"kind": "points"}, "y": {"kind": "class"}}  # the batch schema
    assert meta == {**ref_meta, "fields": fields, "seed": 5, "config": full,
                    "genlab_version": genlab.__version__}  # fmt: skip


def test_prepare_twice_replaces(tmp_path: Path) -> None:
    prepare_dataset("grid25", {"n": 10, "n_test": 5}, tmp_path, seed=0)
    prepare_dataset("grid25", {"n": 20, "n_test": 5}, tmp_path, seed=0)
    train, _, meta = load_prepared(tmp_path, "grid25")
    assert len(train["x"]) == 20 and meta["n_train"] == 20
    assert [p.name for p in (tmp_path / "data" / "prepared").iterdir()] == ["grid25"]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_failing_builder_leaves_existing_folder(tmp_path: Path) -> None:
    folder = prepare_dataset("ring8", {"n": 30, "n_test": 10}, tmp_path, seed=1)
    before = snapshot(folder)
    with pytest.raises(RuntimeError):
        prepare_dataset("ring8", {"n": -1}, tmp_path, seed=2)  # torch.randint rejects n < 0
    assert snapshot(folder) == before
    assert [p.name for p in folder.parent.iterdir()] == ["ring8"]


def test_failing_write_leaves_existing_folder(tmp_path: Path, monkeypatch) -> None:
    folder = prepare_dataset("ring8", {"n": 30, "n_test": 10}, tmp_path, seed=1)
    before = snapshot(folder)
    real_save, calls = torch.save, []

    def flaky_save(obj, f) -> None:  # first file written, second fails: disk full
        calls.append(f)
        if len(calls) == 2:
            raise OSError("disk full")
        real_save(obj, f)

    monkeypatch.setattr(torch, "save", flaky_save)
    with pytest.raises(OSError, match="disk full"):
        prepare_dataset("ring8", {"n": 99, "n_test": 10}, tmp_path, seed=2)
    assert snapshot(folder) == before
    assert [p.name for p in folder.parent.iterdir()] == ["ring8"]


def test_load_missing_names_path_and_command(tmp_path: Path) -> None:
    with pytest.raises(DataUnavailableError, match="genlab prepare digits") as err:
        load_prepared(tmp_path, "digits")
    assert str(tmp_path / "data" / "prepared" / "digits") in str(err.value)


# --- MNIST-style IDX files ----------------------------------------------------------------


def fake_split(n: int, offset: int) -> tuple[np.ndarray, np.ndarray]:
    """Image i has pixel j = (offset + 3 i + j) mod 256, so every value 0..255 occurs."""
    i, j = np.arange(n)[:, None], np.arange(784)[None, :]
    images = ((offset + 3 * i + j) % 256).reshape(n, 28, 28)
    return images, (np.arange(n) + offset) % 10


def write_idx(folder: Path, gz: bool = False) -> dict[str, np.ndarray]:
    arrays = dict(zip(["train_x", "train_y"], fake_split(20, 0), strict=True))
    arrays.update(zip(["test_x", "test_y"], fake_split(10, 100), strict=True))
    folder.mkdir(parents=True)
    for key, fname in IDX_NAMES.items():
        data = idx_images(arrays[key]) if key.endswith("x") else idx_labels(arrays[key])
        if gz:
            (folder / f"{fname}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / fname).write_bytes(data)
    return arrays


@pytest.mark.parametrize(
    "name,subdir,gz", [("mnist", "MNIST", False), ("fashion_mnist", "FashionMNIST", True)]
)
def test_idx_prepare_load(tmp_path: Path, name: str, subdir: str, gz: bool) -> None:
    arrays = write_idx(tmp_path / "data" / "raw" / subdir / "raw", gz=gz)
    prepare_dataset(name, {"download": False}, tmp_path, seed=0)
    train, test, meta = load_prepared(tmp_path, name)
    assert train["x"].shape == (20, 1, 28, 28) and test["x"].shape == (10, 1, 28, 28)
    assert train["x"].dtype == torch.float32 and train["y"].dtype == torch.int64
    for split, key in ((train, "train"), (test, "test")):
        expected = torch.from_numpy(arrays[f"{key}_x"]).float()[:, None] / 127.5 - 1.0
        assert torch.allclose(split["x"], expected, atol=1e-6)
        assert torch.equal(split["y"], torch.from_numpy(arrays[f"{key}_y"]).long())
    assert train["x"].min() == -1.0 and train["x"].max() == 1.0
    assert meta["kind"] == "image" and meta["shape"] == [1, 28, 28] and meta["n_test"] == 10


def test_idx_limit(tmp_path: Path) -> None:
    arrays = write_idx(tmp_path / "raw" / "MNIST" / "raw")
    train, test, meta = build("mnist", {"limit": 4}, seed=0, raw=tmp_path / "raw")
    assert len(train["x"]) == 4 and len(test["y"]) == 4 and meta["n_train"] == 4
    assert torch.equal(train["y"], torch.from_numpy(arrays["train_y"][:4]).long())


@pytest.mark.parametrize("name,subdir", [("mnist", "MNIST"), ("fashion_mnist", "FashionMNIST")])
def test_idx_absent_offline(tmp_path: Path, name: str, subdir: str) -> None:
    with pytest.raises(DataUnavailableError) as err:
        prepare_dataset(name, {"download": False}, tmp_path, seed=0)
    msg = str(err.value)
    assert f"{tmp_path / 'data' / 'raw' / subdir / 'raw'}/" in msg
    assert all(fname in msg for fname in IDX_NAMES.values())
    assert f"data.{name}.download: true" in msg and name in msg
    assert not (tmp_path / "data" / "prepared").exists()


def test_idx_failed_download_is_data_unavailable(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", [f"file://{tmp_path}/no-mirror/"])
    with pytest.raises(DataUnavailableError, match="Error downloading"):
        prepare_dataset("mnist", {"download": True}, tmp_path, seed=0)


def test_meta_is_json(tmp_path: Path) -> None:
    folder = prepare_dataset("digits", {"test_fraction": 0.5}, tmp_path, seed=0)
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["n_test"] == 899 and meta["config"] == {"test_fraction": 0.5}
