"""The `faces` dataset (scikit-image's bundled LFW subset) and an end-to-end run on it."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from genlab.cli import main
from genlab.config import ConfigError
from genlab.data import DATASETS, DataUnavailableError, prepare_dataset
from genlab.data.faces import FacesCfg
from tests.conftest import write_params

DEFAULTS = FacesCfg().model_dump()  # test_fraction 0.2, size 32, flip true


def build(seed: int = 0, **cfg) -> tuple[dict, dict, dict]:
    return DATASETS.get("faces").build({**DEFAULTS, **cfg}, Path("/nonexistent"), seed)


def all_images(size: int) -> torch.Tensor:
    """The 200 source images resized independently of the builder, in [-1, 1]."""
    from skimage.data import lfw_subset

    x = torch.from_numpy(lfw_subset().astype(np.float32)).unsqueeze(1)
    x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False,
                      antialias=size < 25)  # fmt: skip
    return x * 2 - 1


def source_index(split: torch.Tensor, images: torch.Tensor) -> list[int]:
    """For each image of `split`, the index of the identical source image."""
    dist = torch.cdist(
        split.flatten(1), images.flatten(1), compute_mode="donot_use_mm_for_euclid_dist"
    )
    best = dist.min(dim=1)  # distinct source images are >= 0.2 apart
    assert best.values.max() < 1e-5, "an image is not a resized source image"
    return best.indices.tolist()


def test_faces_shapes_ranges_labels_and_meta() -> None:
    train, test, meta = build(flip=False)
    assert meta == {"name": "faces", "kind": "image", "shape": [1, 32, 32], "num_classes": 2,
                    "classes": ["non-face", "face"], "n_train": 160, "n_test": 40}  # fmt: skip
    for split, n in ((train, 160), (test, 40)):
        assert split["x"].shape == (n, 1, 32, 32) and split["x"].dtype == torch.float32
        assert split["y"].shape == (n,) and split["y"].dtype == torch.int64
        assert split["x"].min() >= -1.0 and split["x"].max() <= 1.0
        assert split["x"].min() < -0.9 and split["x"].max() > 0.9  # the full range is used
        assert split["y"].sum() == n // 2  # stratified: half faces
    # every image is a resized source image; label 1 exactly for the first 100 (the faces);
    # train and test partition the 200 source images
    images = all_images(32)
    idx_tr, idx_te = source_index(train["x"], images), source_index(test["x"], images)
    assert sorted(idx_tr + idx_te) == list(range(200))
    for split, idx in ((train, idx_tr), (test, idx_te)):
        assert split["y"].tolist() == [int(i < 100) for i in idx]


def test_flip_doubles_only_train_with_exact_mirrors() -> None:
    plain_tr, plain_te, _ = build(flip=False)
    train, test, meta = build(flip=True)
    assert meta["n_train"] == 320 and meta["n_test"] == 40
    torch.testing.assert_close(train["x"][:160], plain_tr["x"], rtol=0, atol=0)
    torch.testing.assert_close(train["x"][160:], plain_tr["x"].flip(-1), rtol=0, atol=0)
    assert torch.equal(train["y"], torch.cat([plain_tr["y"], plain_tr["y"]]))
    assert train["y"].sum() == 160
    assert torch.equal(test["x"], plain_te["x"]) and torch.equal(test["y"], plain_te["y"])
    assert not torch.equal(train["x"][160:], train["x"][:160])  # faces are not symmetric


def test_seed_determinism() -> None:
    a_tr, a_te, _ = build(seed=3)
    b_tr, b_te, _ = build(seed=3)
    c_tr, c_te, _ = build(seed=4)
    for a, b in ((a_tr, b_tr), (a_te, b_te)):
        assert torch.equal(a["x"], b["x"]) and torch.equal(a["y"], b["y"])
    assert not torch.equal(a_te["x"], c_te["x"])
    images = all_images(32)
    assert set(source_index(a_te["x"], images)) != set(source_index(c_te["x"], images))


def test_other_size_and_test_fraction() -> None:
    train, test, meta = build(size=16, test_fraction=0.5, flip=False)  # shrinking: antialiased
    assert meta["shape"] == [1, 16, 16] and meta["n_train"] == 100 and meta["n_test"] == 100
    images = all_images(16)
    idx = source_index(torch.cat([train["x"], test["x"]]), images)
    assert sorted(idx) == list(range(200))


@pytest.mark.parametrize("size", [9, 30, 36])
def test_bad_size_fails_at_prepare_naming_the_allowed_sides(tmp_path: Path, size: int) -> None:
    with pytest.raises(ConfigError, match=rf"data.faces.size = {size}: .*allowed: 8, 10, 12, 14"):
        prepare_dataset("faces", {**DEFAULTS, "size": size}, tmp_path, seed=0)
    assert not (tmp_path / "data").exists()


def test_bad_size_from_the_cli_exits_2_and_writes_nothing(tmp_path: Path, capsys) -> None:
    write_params(tmp_path, {"device": "cpu", "tracking": {"enabled": False},
                            "data": {"faces": {"size": 30}}})  # fmt: skip
    code = main(["--params", str(tmp_path / "params.yaml"), "prepare", "faces"])
    err = capsys.readouterr().err
    assert code == 2 and "data.faces.size = 30" in err and "32, 40, 48" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_missing_scikit_image_is_a_clear_error(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "skimage.data", None)  # makes the import fail
    with pytest.raises(DataUnavailableError, match="needs scikit-image"):
        build()


def faces_params() -> dict:
    """Tiny settings: 2 evaluator epochs, a width-8 dcgan trained for 5 steps."""
    return {
        "seed": 0,
        "device": "cpu",
        "tracking": {"enabled": False},
        "data": {"faces": {"test_fraction": 0.5, "size": 32, "flip": True}},
        "evaluator": {"epochs": 2, "batch_size": 64, "lr": 0.001},
        "train": {"steps": 5, "batch_size": 16, "log_every": 1, "checkpoint_every": 5},
        "variants": {
            "faces_dcgan": {"dataset": "faces", "family": "gan", "arch": "dcgan",
                            "loss": "nonsaturating", "latent_dim": 16, "width": 8},
        },
        "sample": {"n": 100, "grid": 16, "interpolation_steps": 4, "batch_size": 100},
        "evaluate": {"metrics": ["frechet", "kid", "prdc", "coverage"], "n": 100,
                     "bootstrap": 10, "kid_subsets": 5, "kid_subset_size": 40},
    }  # fmt: skip


@pytest.mark.slow
def test_faces_end_to_end_through_the_cli(tmp_path: Path, capsys) -> None:
    params = write_params(tmp_path, faces_params())
    for argv in (["prepare", "faces"], ["fit-evaluator", "faces"], ["train", "faces_dcgan"],
                 ["sample", "faces_dcgan"], ["evaluate", "faces_dcgan"]):  # fmt: skip
        assert main(["--params", str(params), *argv]) == 0, (argv, capsys.readouterr().err)

    meta = json.loads((tmp_path / "data/prepared/faces/meta.json").read_text())
    assert meta["shape"] == [1, 32, 32] and meta["n_train"] == 200 and meta["n_test"] == 100
    evaluator = json.loads((tmp_path / "metrics/evaluator/faces.json").read_text())
    assert 0.0 <= evaluator["test_accuracy"] <= 1.0
    # the floor scores as many training images as the model's samples: evaluate.n = 100
    assert math.isfinite(evaluator["floor"]["frechet"]) and evaluator["floor"]["n_samples"] == 100
    metrics = json.loads((tmp_path / "metrics/faces_dcgan.json").read_text())
    assert metrics["n_samples"] == 100 and metrics["n_reference"] == 100
    for key in ("frechet", "kid", "precision", "recall", "frechet_ci_low", "kid_ci_high"):
        assert math.isfinite(metrics[key]), (key, metrics)
    assert metrics["frechet"] > 0
    for f in ("samples.pt", "grid.png", "interpolation.png"):
        assert (tmp_path / "samples/faces_dcgan" / f).is_file()
