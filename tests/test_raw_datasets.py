"""mnist and fashion_mnist end to end from tiny IDX files in torchvision's on-disk layout under
data/raw (no download): prepare -> fit-evaluator -> train -> sample -> evaluate."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from genlab.cli import main
from tests.conftest import write_params
from tests.rawfiles import IDX_NAMES, idx_images, idx_labels

DATASETS = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST"}  # name -> torchvision folder


def blobs(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """n 28x28 uint8 images of one Gaussian blob; the label (0..9) picks the blob's centre on a
    2 x 5 grid, jittered by up to 2 pixels, so an evaluator has something to learn."""
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    cy = 8.0 + 12.0 * (labels // 5) + rng.uniform(-2, 2, n)
    cx = 4.0 + 5.0 * (labels % 5) + rng.uniform(-2, 2, n)
    r = np.arange(28, dtype=np.float64)
    d2 = (r[None, :, None] - cy[:, None, None]) ** 2 + (r[None, None, :] - cx[:, None, None]) ** 2
    images = 255.0 * np.exp(-d2 / (2 * 2.5**2))
    return np.round(images).astype(np.uint8), labels.astype(np.uint8)


def write_raw(root: Path, name: str, n_train: int = 64, n_test: int = 32) -> None:
    """The four IDX files torchvision.datasets.<MNIST|FashionMNIST> reads, in data/raw/."""
    folder = root / "data" / "raw" / DATASETS[name] / "raw"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(len(name))
    arrays = dict(zip(["train_x", "train_y"], blobs(n_train, rng), strict=True))
    arrays.update(zip(["test_x", "test_y"], blobs(n_test, rng), strict=True))
    for key, fname in IDX_NAMES.items():
        data = idx_images(arrays[key]) if key.endswith("x") else idx_labels(arrays[key])
        (folder / fname).write_bytes(data)


def raw_params(name: str, limit: int | None) -> dict:
    """Tiny settings: 1 evaluator epoch, a width-8 dcgan trained for 3 steps."""
    return {
        "seed": 0,
        "device": "cpu",
        "tracking": {"enabled": False},
        "data": {name: {"download": False, "limit": limit}},
        "evaluator": {"epochs": 1, "batch_size": 32, "lr": 0.001},
        "train": {"steps": 3, "batch_size": 16, "log_every": 1, "checkpoint_every": 3},
        "variants": {
            "gan": {"dataset": name, "family": "gan", "arch": "dcgan", "loss": "nonsaturating",
                    "latent_dim": 16, "width": 8},
        },
        "sample": {"n": 64, "grid": 16, "interpolation_steps": 4, "batch_size": 64},
        "evaluate": {"metrics": ["kid", "coverage"], "n": 64, "bootstrap": 10,
                     "kid_subsets": 5, "kid_subset_size": 32},
    }  # fmt: skip


def genlab(root: Path, *argv: str) -> int:
    return main(["--params", str(root / "params.yaml"), *argv])


@pytest.mark.slow
@pytest.mark.parametrize("name,limit", [("mnist", None), ("fashion_mnist", 48)])
def test_end_to_end_from_raw_idx_files(tmp_path: Path, capsys, name: str, limit: int | None):
    write_raw(tmp_path, name)
    write_params(tmp_path, raw_params(name, limit))
    for argv in (["prepare", name], ["fit-evaluator", name], ["train", "gan"], ["sample", "gan"],
                 ["evaluate", "gan"]):  # fmt: skip
        assert genlab(tmp_path, *argv) == 0, (argv, capsys.readouterr().err)

    meta = json.loads((tmp_path / f"data/prepared/{name}/meta.json").read_text())
    assert meta["shape"] == [1, 28, 28] and meta["num_classes"] == 10
    assert (meta["n_train"], meta["n_test"]) == ((64, 32) if limit is None else (48, 32))
    evaluator = json.loads((tmp_path / f"metrics/evaluator/{name}.json").read_text())
    assert 0.0 <= evaluator["test_accuracy"] <= 1.0
    assert all(math.isfinite(v) for v in evaluator["floor"].values()), evaluator
    metrics = json.loads((tmp_path / "metrics/gan.json").read_text())
    # as many samples as the training split holds (the floor's n), against the 32 test images
    assert (metrics["n_samples"], metrics["n_reference"]) == (meta["n_train"], 32)
    assert evaluator["floor"]["n_samples"] == meta["n_train"]
    for key in ("kid", "kid_ci_low", "kid_ci_high", "classes_covered", "class_kl"):
        assert math.isfinite(metrics[key]), (key, metrics)
    assert (tmp_path / "models/gan/model.pt").is_file()
    assert (tmp_path / "samples/gan/grid.png").is_file()


@pytest.mark.parametrize("name", list(DATASETS))
def test_missing_raw_data_exits_2_with_where_to_put_it(tmp_path: Path, capsys, name: str):
    write_params(tmp_path, raw_params(name, None))
    code = genlab(tmp_path, "prepare", name)
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("genlab: error: dataset")
    assert f"{tmp_path / 'data' / 'raw' / DATASETS[name] / 'raw'}/" in err
    assert all(fname in err for fname in IDX_NAMES.values())
    assert f"data.{name}.download: true" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]  # nothing written
    code = genlab(tmp_path, "fit-evaluator", name)
    assert code == 2 and f"genlab prepare {name}" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]
