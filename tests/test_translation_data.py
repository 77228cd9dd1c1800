"""The image-to-image translation datasets (genlab.data.translation): digits_edges (paired),
digits_fonts (unpaired), photos_sr (super-resolution), digits_layout (label map)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from genlab.config import ConfigError, validate_params
from genlab.data import DATASETS, load_prepared, prepare_dataset
from genlab.data import translation as T
from tests.conftest import tiny_params_dict

NOWHERE = Path("/nonexistent")
SMALL = {  # option overrides that keep each build well under a second or two
    "digits_edges": {},
    "digits_layout": {},
    "digits_fonts": {"n_b": 300},
    "photos_sr": {"train_patches": 12, "test_patches": 6},
}
PAIRED = [{"name": "", "source": "source", "target": "x", "labels": "y", "paired": True}]


def build(name: str, seed: int = 0, **cfg) -> tuple[dict, dict, dict]:
    entry = DATASETS.get(name)
    full = entry.options.model_validate({**SMALL[name], **cfg}).model_dump()
    return entry.build(full, NOWHERE, seed)


@pytest.fixture(scope="module")
def built() -> dict[str, tuple[dict, dict, dict]]:
    return {name: build(name) for name in SMALL}


def digits_reference(size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """sklearn's digits upsampled here, independently of the builder (bicubic, clamped)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.tensor(bunch.data, dtype=torch.float32).view(-1, 1, 8, 8) / 16
    x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
    return x * 2 - 1, torch.tensor(bunch.target)


def match_rows(split: torch.Tensor, images: torch.Tensor) -> list[int]:
    """For each image of ``split``, the index of the bit-identical image of ``images``."""
    index = {row.numpy().tobytes(): i for i, row in enumerate(images.flatten(1))}
    rows = [index.get(row.numpy().tobytes()) for row in split.flatten(1)]
    assert None not in rows, "an image is not an upsampled sklearn digit"
    return rows


def shared_images(a: torch.Tensor, b: torch.Tensor) -> int:
    """How many images of ``a`` also occur, bit-identical, in ``b``."""
    seen = {row.numpy().tobytes() for row in b.flatten(1)}
    return sum(row.numpy().tobytes() in seen for row in a.flatten(1))


# ---------------------------------------------------------------- registry, meta, shapes


def test_registered_tasks_fields_and_meta(built) -> None:
    tasks = {name: DATASETS.get(name).task for name in SMALL}
    assert tasks == {"digits_edges": "paired", "digits_layout": "labelmap",
                     "digits_fonts": "unpaired", "photos_sr": "super_resolution"}  # fmt: skip
    assert DATASETS.get("digits_layout").fields["source"] == {"kind": "labelmap"}
    assert DATASETS.get("digits_fonts").fields["x_b"] == {"kind": "image", "domain": "b"}
    for name, (train, test, meta) in built.items():
        assert meta["name"] == name and meta["kind"] == "image"
        assert meta["translation"]["task"] == tasks[name]
        assert meta["n_train"] == len(train["y"]) and meta["n_test"] == len(test["y"])
        assert list(train["x"].shape[1:]) == meta["shape"]
        if name != "digits_fonts":
            assert meta["translation"]["directions"] == PAIRED
            assert list(train["source"].shape[1:]) == meta["source_shape"]
            assert len(train["source"]) == len(train["x"]) == len(train["y"])
        for split in (train, test):
            for field, t in split.items():
                kind = DATASETS.get(name).fields[field]["kind"]
                if kind == "image":
                    assert t.dtype == torch.float32 and t.is_contiguous()
                    assert t.min() >= -1 and t.max() <= 1
                    assert t.min() < -0.9 and t.max() > 0.9  # the full range is used
                else:
                    assert t.dtype == torch.int64
    assert built["digits_edges"][2]["source_shape"] == [1, 32, 32]
    assert built["digits_layout"][2]["source_shape"] == [32, 32]
    assert built["digits_layout"][2]["label_classes"] == 11
    assert built["photos_sr"][2]["source_shape"] == [3, 8, 8]
    assert built["photos_sr"][2]["scale"] == 4
    assert built["photos_sr"][2]["shape"] == [3, 32, 32]


def test_prepare_writes_meta_with_task_fields_and_config(tmp_path: Path) -> None:
    folder = prepare_dataset("photos_sr", SMALL["photos_sr"], tmp_path, seed=5)
    train, test, meta = load_prepared(tmp_path, "photos_sr")
    assert json.loads((folder / "meta.json").read_text()) == meta
    assert meta["fields"]["source"] == {"kind": "image"} and meta["seed"] == 5
    assert meta["config"]["scale"] == 4 and meta["config"]["train_patches"] == 12
    assert meta["translation"]["directions"] == PAIRED
    again, _, _ = build("photos_sr", seed=5)
    assert all(torch.equal(train[k], again[k]) for k in again)


# ---------------------------------------------------------------- determinism and splits


@pytest.mark.parametrize("name", list(SMALL))
def test_same_seed_same_tensors_other_seed_other_split(name: str, built) -> None:
    a = built[name]
    b, c = build(name, 0), build(name, 1)
    for split in (0, 1):
        assert a[split].keys() == b[split].keys()
        assert all(torch.equal(a[split][k], b[split][k]) for k in a[split])
        assert not torch.equal(a[split]["x"], c[split]["x"])
    assert a[2] == b[2]


@pytest.mark.parametrize("name", ["digits_edges", "digits_layout", "digits_fonts"])
def test_digit_splits_partition_sklearn_digits_with_their_labels(name: str, built) -> None:
    train, test, meta = built[name]
    ref_x, ref_y = digits_reference()
    rows_tr, rows_te = match_rows(train["x"], ref_x), match_rows(test["x"], ref_x)
    assert sorted(rows_tr + rows_te) == list(range(1797))  # a partition: disjoint, complete
    assert torch.equal(train["y"], ref_y[rows_tr]) and torch.equal(test["y"], ref_y[rows_te])
    assert (meta["n_train"], meta["n_test"]) == (1437, 360)
    assert torch.bincount(test["y"], minlength=10).min() >= 35  # stratified: ~36 per class
    assert shared_images(train["x"], test["x"]) == 0  # no image in both splits


# ---------------------------------------------------------------- digits_edges


def test_edge_map_of_a_square_lies_on_its_outline() -> None:
    img = -torch.ones(1, 1, 20, 20)
    img[..., 6:14, 6:14] = 1.0
    edges = T.edge_map(img, sigma=1.0, low=0.1, high=0.2)[0, 0] > 0
    inside = torch.zeros(20, 20, dtype=torch.bool)
    inside[6:14, 6:14] = True
    # an outline pixel: one whose 3x3 neighbourhood holds both inside and outside pixels
    near = F.max_pool2d(inside[None].float(), 3, 1, 1)[0] - (
        -F.max_pool2d(-inside[None].float(), 3, 1, 1)[0]
    )
    assert edges.any() and bool((near[edges] == 1).all())
    for side in (edges[6:14, 4:8], edges[6:14, 12:16], edges[4:8, 6:14], edges[12:16, 6:14]):
        assert side.any()  # all four sides are found


def test_edges_are_canny_of_the_target(built) -> None:
    from skimage.feature import canny

    train, test, meta = built["digits_edges"]
    assert meta["edges"] == {"method": "skimage.feature.canny", "sigma": 1.0,
                             "low_threshold": 0.1, "high_threshold": 0.2}  # fmt: skip
    for split in (train, test):
        assert set(split["source"].unique().tolist()) == {-1.0, 1.0}
        for i in (0, 7, len(split["y"]) - 1):
            img = ((split["x"][i, 0].double() + 1) / 2).numpy()
            want = canny(img, sigma=1.0, low_threshold=0.1, high_threshold=0.2)
            assert np.array_equal(split["source"][i, 0].numpy() > 0, want)
    wider = T.edge_map(train["x"][:8], sigma=2.0, low=0.1, high=0.2)
    assert not torch.equal(wider, train["source"][:8])  # sigma is used


# ---------------------------------------------------------------- digits_layout


def test_layout_map_by_hand() -> None:
    x = torch.tensor([[[[-1.0, 0.2], [0.0, 1.0]]], [[[0.5, -0.5], [1.0, 0.01]]]])
    y = torch.tensor([3, 0])
    want = torch.tensor([[[0, 4], [0, 4]], [[1, 0], [1, 1]]])  # x > 2 * 0.5 - 1 = 0
    assert torch.equal(T.layout_map(x, y, 0.5), want)
    want = torch.tensor([[[0, 0], [0, 4]], [[1, 0], [1, 0]]])  # x > 2 * 0.7 - 1 = 0.4
    assert torch.equal(T.layout_map(x, y, 0.7), want)


def test_layout_strokes_are_the_thresholded_target_with_its_class(built) -> None:
    for split in built["digits_layout"][:2]:
        source, x, y = split["source"], split["x"], split["y"]
        assert source.shape == (len(y), 32, 32) and source.dtype == torch.int64
        stroke = (x[:, 0] + 1) / 2 > 0.5
        assert torch.equal(source > 0, stroke)
        assert torch.equal(source[stroke], (y[:, None, None] + 1).expand_as(source)[stroke])
        assert source.min() == 0 and source.max() == 10
        assert torch.equal(source.flatten(1).max(1).values, y + 1)  # every digit has ink


# ---------------------------------------------------------------- digits_fonts


def test_font_domain_sizes_fonts_and_classes(built) -> None:
    train, test, meta = built["digits_fonts"]
    assert (meta["n_train_b"], meta["n_test_b"]) == (240, 60)  # n_b = 300, test_fraction 0.2
    assert len(train["x_b"]) == 240 and len(test["y_b"]) == 60
    assert meta["n_train_b"] != meta["n_train"]  # the domains differ in size
    assert len(meta["fonts"]) >= 10 and all("/" not in f for f in meta["fonts"])
    assert {"DejaVuSans.ttf", "STIXGeneral.ttf", "cmr10.ttf"} <= set(meta["fonts"])
    assert meta["evaluator_fields"] == [["x", "y"], ["x_b", "y_b"]]
    names = [d["name"] for d in meta["translation"]["directions"]]
    assert names == ["a2b", "b2a"]
    assert not any(d["paired"] for d in meta["translation"]["directions"])
    for split in (train, test):
        for y in (split["y"], split["y_b"]):
            assert set(y.tolist()) == set(range(10))
        assert split["x_b"].shape[1:] == split["x"].shape[1:] == (1, 32, 32)
    assert shared_images(train["x_b"], test["x_b"]) == 0
    # B looks like A: light ink on black, a comparable share of ink
    ink_a, ink_b = (train[k].gt(0).float().mean().item() for k in ("x", "x_b"))
    assert 0.4 < ink_b / ink_a < 2.5
    assert train["x_b"][:, :, 0, :].mean() < -0.9  # the top border is background


def test_fonts_without_digits_are_skipped() -> None:
    for name in ("DejaVuSansDisplay.ttf", "LastResortHE-Regular.ttf", "STIXNonUni.ttf"):
        if (T.font_dir() / name).is_file():
            assert T.render_digits(T.font_dir() / name) is None, name
    glyphs = T.render_digits(T.font_dir() / "DejaVuSans.ttf")
    assert glyphs is not None and len(glyphs) == 10


def test_stroke_width_and_dilation_of_a_bar_by_hand() -> None:
    bar = np.zeros((64, 64), np.float32)
    bar[10:54, 20:30] = 1.0  # a bar 10 px wide
    sdf, width = T.signed_distance(bar)
    assert width == 10.0
    assert sdf[32, 19] == 0.5 and sdf[32, 20] == -0.5 and sdf[32, 16] == 3.5
    for offset, drawn in ((0.0, 10.0), (1.0, 12.0), (2.5, 15.0), (-2.0, 6.0), (0.25, 10.5)):
        ink = T.stroke_ink(torch.from_numpy(sdf), torch.tensor(offset))
        torch.testing.assert_close(ink[32].sum(), torch.tensor(drawn))  # w + 2 * offset


def test_font_digits_without_augmentation_are_glyphs_at_the_asked_width() -> None:
    cfg = {**T.FontsCfg(n_b=100, rotation=0, zoom=0, shift=0, stroke_min=0.1,
                        stroke_max=0.1).model_dump()}  # fmt: skip
    b, fonts = T.render_domain_b(cfg, torch.Generator().manual_seed(0))
    names, sdf, widths = T.font_glyphs(4 * 32)
    assert names == fonts
    font, y = b["font_b"], b["y_b"]
    # identity warp (grid_sample at pixel centres): the field offset to width 0.1 * 128 px
    offset = (12.8 - widths[font, y]) / 2
    ink = T.stroke_ink(sdf[font, y].unsqueeze(1), offset.view(-1, 1, 1, 1))
    torch.testing.assert_close(b["x_b"], F.avg_pool2d(ink, 4) * 2 - 1, atol=1e-5, rtol=0)


# ---------------------------------------------------------------- photos_sr


def test_box_downsampling_by_hand() -> None:
    x = torch.arange(16.0).view(1, 1, 4, 4)
    want = torch.tensor([[[[2.5, 4.5], [10.5, 12.5]]]])  # means of the 2x2 blocks
    torch.testing.assert_close(T.downsample(x, 2), want)


def test_sr_source_is_the_box_downsampled_target(built) -> None:
    for split in built["photos_sr"][:2]:
        x, source = split["x"], split["source"]
        blocks = x.view(len(x), 3, 8, 4, 8, 4).mean(dim=(3, 5))
        torch.testing.assert_close(source, blocks, atol=1e-6, rtol=0)
    train, test, meta = built["photos_sr"]
    assert meta["classes"] == list(T.PHOTOS) and len(T.PHOTOS) >= 5
    assert torch.bincount(train["y"]).tolist() == [12] * len(T.PHOTOS)
    assert torch.bincount(test["y"]).tolist() == [6] * len(T.PHOTOS)


def locate(patch: torch.Tensor, photo: torch.Tensor) -> tuple[int, int]:
    """Top-left (row, col) of the bit-identical copy of ``patch`` ([-1, 1]) in ``photo``
    ([0, 1]) mapped to [-1, 1]: candidates match the patch's first four pixels of its first
    row, the whole patch is then compared."""
    img = photo * 2 - 1
    size = patch.shape[-1]
    h, w = img.shape[1] - size + 1, img.shape[2] - size + 1
    hit = torch.ones(h, w, dtype=torch.bool)
    for k in range(4):
        hit &= (img[:, :h, k : k + w] == patch[:, 0, k, None, None]).all(0)
    found = [(r, c) for r, c in hit.nonzero().tolist()
             if torch.equal(img[:, r : r + size, c : c + size], patch)]  # fmt: skip
    assert len(found) == 1, f"patch found {len(found)} times"
    return found[0]


def test_sr_test_patches_come_from_the_held_out_strip(built) -> None:
    train, test, _ = built["photos_sr"]
    cfg = T.PhotosCfg().model_dump()
    for label in (0, 2, 5):
        photo = T.load_photo(T.PHOTOS[label], cfg["photo_side"])
        (lo, cut), (start, stop) = T.regions(photo.shape[-1], cfg["test_strip"])
        assert lo == 0 and start == cut and stop == photo.shape[-1]
        assert stop - cut == int(photo.shape[-1] * 0.25)
        for i in (test["y"] == label).nonzero()[:3, 0]:
            assert locate(test["x"][i], photo)[1] >= cut  # wholly right of the cut
        for i in (train["y"] == label).nonzero()[:3, 0]:
            assert locate(train["x"][i], photo)[1] + 32 <= cut  # wholly left of it
    assert shared_images(train["x"], test["x"]) == 0


def test_bad_scale_is_refused_at_params_load() -> None:
    raw = tiny_params_dict()
    raw["data"]["photos_sr"] = {"scale": 3}
    with pytest.raises(ConfigError) as err:
        validate_params(raw)
    msg = str(err.value)
    assert "data.photos_sr.scale = 3" in msg and "allowed: 2, 4, 8" in msg
    raw["data"]["photos_sr"] = {"size": 48, "scale": 16}  # leaves 3 px
    with pytest.raises(ConfigError, match=r"data\.photos_sr\.scale = 16.*allowed: 2, 3, 4, 6, 8"):
        validate_params(raw)
    raw["data"]["photos_sr"] = {"size": 16, "scale": 4}
    assert validate_params(raw).dataset_cfg("photos_sr")["scale"] == 4
    raw["data"]["photos_sr"] = {"photo_side": 64, "test_strip": 0.1}
    with pytest.raises(ConfigError, match="test_strip"):
        validate_params(raw)


def test_other_bad_options_name_the_key() -> None:
    raw = tiny_params_dict()
    raw["data"]["digits_fonts"] = {"stroke_min": 0.3}
    with pytest.raises(ConfigError, match="stroke_min = 0.3 exceeds stroke_max"):
        validate_params(raw)
    raw["data"] = {"digits_edges": {"low_threshold": 0.5, "high_threshold": 0.2}}
    with pytest.raises(ConfigError, match="low_threshold"):
        validate_params(raw)
    raw["data"] = {"digits_layout": {"threshold": 1.0}}
    with pytest.raises(ConfigError, match="data.digits_layout.threshold"):
        validate_params(raw)
