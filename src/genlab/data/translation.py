"""Offline datasets for image-to-image translation (no download: scikit-learn's digits,
matplotlib's fonts, scikit-image's photos).

- ``digits_edges`` (paired, pix2pix, Isola et al. 2017): Canny edge map -> digit.
- ``digits_fonts`` (unpaired, CycleGAN, Zhu et al. 2017): handwritten digits <-> digits rendered
  from TrueType fonts, two independently drawn domains.
- ``photos_sr`` (super-resolution, SRGAN, Ledig et al. 2017): a box-downsampled colour patch ->
  the patch.
- ``digits_layout`` (label map -> image, SPADE, Park et al. 2019): per-pixel class map -> digit.

Images are float32 in [-1, 1], ink / bright = 1; splits are seeded by ``seed``; same seed, same
tensors.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, ValidationInfo, field_validator, model_validator

from genlab.data.base import Split, dataset
from genlab.errors import DataUnavailableError
from genlab.options import Options

Meta = dict[str, Any]

# the paired direction of a paired / super-resolution / label-map set
PAIRED = [{"name": "", "source": "source", "target": "x", "labels": "y", "paired": True}]
UNPAIRED = [
    {"name": "a2b", "source": "x", "source_labels": "y", "target": "x_b", "labels": "y_b",
     "paired": False},
    {"name": "b2a", "source": "x_b", "source_labels": "y_b", "target": "x", "labels": "y",
     "paired": False},
]  # fmt: skip

# ---------------------------------------------------------------- handwritten digits


def upsampled_digits(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """sklearn's 1797 8x8 digits (0..16) as [0, 1] images upsampled to ``size`` x ``size`` with
    bicubic interpolation (align_corners=False), clamped to [0, 1] and mapped to [-1, 1]:
    (1797, 1, size, size) float32 and the int64 classes."""
    from sklearn.datasets import load_digits  # imported here: sklearn takes seconds to import

    bunch = load_digits()
    x = torch.from_numpy(bunch.data.astype(np.float32) / 16.0).reshape(-1, 1, 8, 8)
    x = F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False)
    x = x.clamp(0.0, 1.0).mul(2.0).sub(1.0).contiguous()
    return x, torch.from_numpy(bunch.target.astype(np.int64))


def stratified_split(y: torch.Tensor, test_fraction: float, seed: int) -> tuple[Any, Any]:
    """Train and test indices of a split stratified by ``y`` (sklearn's train_test_split,
    random_state=seed; the order it returns, as the ``digits`` dataset)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    tr, te = train_test_split(idx, test_size=test_fraction, stratify=y.numpy(), random_state=seed)
    return torch.from_numpy(tr), torch.from_numpy(te)


class DigitsCfg(Options):
    test_fraction: float = Field(0.2, gt=0, lt=1)  # stratified test share
    size: int = Field(32, ge=8, le=128)  # side the 8x8 digits are upsampled to


def digits_meta(name: str, size: int, n_train: int, n_test: int, **more: Any) -> Meta:
    return {"name": name, "kind": "image", "shape": [1, size, size], "num_classes": 10,
            "n_train": n_train, "n_test": n_test, **more}  # fmt: skip


# ---------------------------------------------------------------- digits_edges (paired)


class EdgesCfg(DigitsCfg):
    sigma: float = Field(1.0, gt=0, le=4)  # Gaussian width of Canny's smoothing, in pixels
    low_threshold: float = Field(0.1, gt=0)  # Canny hysteresis thresholds on the gradient
    high_threshold: float = Field(0.2, gt=0)  # magnitude of the [0, 1] image

    @model_validator(mode="after")
    def _ordered(self) -> EdgesCfg:
        if self.low_threshold > self.high_threshold:
            raise ValueError(
                f"low_threshold = {self.low_threshold} exceeds high_threshold = "
                f"{self.high_threshold}; allowed: low_threshold <= high_threshold"
            )
        return self


def edge_map(x: torch.Tensor, sigma: float, low: float, high: float) -> torch.Tensor:
    """Canny edges (skimage.feature.canny; Canny 1986) of each image of ``x`` ((N, 1, H, W) in
    [-1, 1]), computed on the float64 image (x + 1) / 2 in [0, 1], as an image: edge 1,
    background -1."""
    from skimage.feature import canny  # imported here: scikit-image is slow to import

    img = (x.double() + 1.0) / 2.0
    edges = np.stack([canny(im[0].numpy(), sigma=sigma, low_threshold=low, high_threshold=high)
                      for im in img])  # fmt: skip
    return torch.from_numpy(edges).unsqueeze(1).float().mul(2.0).sub(1.0)


@dataset(
    "digits_edges",
    options=EdgesCfg,
    fields={"source": {"kind": "image"}, "x": {"kind": "image"}, "y": {"kind": "class"}},
    task="paired",
)
def digits_edges(cfg: dict[str, Any], raw_dir: Path, seed: int) -> tuple[Split, Split, Meta]:
    """Edges -> digit (pix2pix's edges2shoes in miniature): the target ``x`` is an upsampled
    sklearn digit, the source its Canny edge map (``edge_map``); stratified split."""
    x, y = upsampled_digits(cfg["size"])
    source = edge_map(x, cfg["sigma"], cfg["low_threshold"], cfg["high_threshold"])
    tr, te = stratified_split(y, cfg["test_fraction"], seed)
    train = {"source": source[tr], "x": x[tr], "y": y[tr]}
    test = {"source": source[te], "x": x[te], "y": y[te]}
    size = cfg["size"]
    meta = digits_meta(
        "digits_edges", size, len(tr), len(te),
        source_shape=[1, size, size],
        edges={"method": "skimage.feature.canny", "sigma": cfg["sigma"],
               "low_threshold": cfg["low_threshold"], "high_threshold": cfg["high_threshold"]},
        translation={"task": "paired", "directions": PAIRED},
    )  # fmt: skip
    return train, test, meta


# ---------------------------------------------------------------- digits_layout (label map)


class LayoutCfg(DigitsCfg):
    threshold: float = Field(0.5, gt=0, lt=1)  # stroke: upsampled intensity in [0, 1] above this


def layout_map(x: torch.Tensor, y: torch.Tensor, threshold: float) -> torch.Tensor:
    """Per-pixel class map (N, H, W) int64 of digits ``x`` ((N, 1, H, W) in [-1, 1]) of classes
    ``y``: c + 1 where the intensity (x + 1) / 2 exceeds ``threshold`` (tested as
    x > 2 * threshold - 1), 0 (background) elsewhere."""
    stroke = x[:, 0] > 2.0 * threshold - 1.0
    return torch.where(stroke, (y + 1).view(-1, 1, 1), 0).long()


@dataset(
    "digits_layout",
    options=LayoutCfg,
    fields={"source": {"kind": "labelmap"}, "x": {"kind": "image"}, "y": {"kind": "class"}},
    task="labelmap",
)
def digits_layout(cfg: dict[str, Any], raw_dir: Path, seed: int) -> tuple[Split, Split, Meta]:
    """Label map -> digit (SPADE's semantic image synthesis in miniature): the source is the
    digit's stroke mask painted with its class (``layout_map``; 11 map classes with the
    background), the target the digit; stratified split."""
    x, y = upsampled_digits(cfg["size"])
    source = layout_map(x, y, cfg["threshold"])
    tr, te = stratified_split(y, cfg["test_fraction"], seed)
    train = {"source": source[tr], "x": x[tr], "y": y[tr]}
    test = {"source": source[te], "x": x[te], "y": y[te]}
    size = cfg["size"]
    meta = digits_meta(
        "digits_layout", size, len(tr), len(te),
        source_shape=[size, size],
        label_classes=11,
        translation={"task": "labelmap", "directions": PAIRED},
    )  # fmt: skip
    return train, test, meta


# ---------------------------------------------------------------- digits_fonts (unpaired)

# matplotlib's bundled fonts with Latin digits (the DejaVu "Display" cuts, STIX NonUni / size
# variants and cmex10 / cmsy10 / cmmi10 lack them or map digits to symbols / old-style figures)
FONTS = (
    "DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf",
    "DejaVuSans-BoldOblique.ttf", "DejaVuSansMono.ttf", "DejaVuSansMono-Bold.ttf",
    "DejaVuSansMono-Oblique.ttf", "DejaVuSansMono-BoldOblique.ttf", "DejaVuSerif.ttf",
    "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf",
    "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf", "STIXGeneralBolIta.ttf",
    "cmr10.ttf", "cmb10.ttf", "cmti10.ttf", "cmss10.ttf", "cmtt10.ttf",
)  # fmt: skip
RENDER_PX = 160  # font size (pixels per em) of the one high-resolution rendering per glyph
OVERSAMPLE = 4  # glyphs are placed, warped and stroked on a canvas of OVERSAMPLE * size
GLYPH_BOX = 0.8  # the glyph's ink box fills this share of the canvas height (and at most width)


class FontsCfg(DigitsCfg):
    n_b: int = Field(2000, ge=100, le=100_000)  # font-rendered digits (domain B), train + test
    rotation: float = Field(10.0, ge=0, le=45)  # B: rotation uniform in +-rotation degrees
    zoom: float = Field(0.1, ge=0, le=0.5)  # B: scale uniform in [1 - zoom, 1 + zoom]
    shift: float = Field(0.08, ge=0, le=0.5)  # B: shift uniform in +-shift * side, per axis
    stroke_min: float = Field(0.08, gt=0, le=0.5)  # B: stroke width uniform in
    stroke_max: float = Field(0.16, gt=0, le=0.5)  # [stroke_min, stroke_max] * side

    @model_validator(mode="after")
    def _ordered(self) -> FontsCfg:
        if self.stroke_min > self.stroke_max:
            raise ValueError(
                f"stroke_min = {self.stroke_min} exceeds stroke_max = {self.stroke_max}; "
                f"allowed: stroke_min <= stroke_max"
            )
        return self


def font_dir() -> Path:
    """matplotlib's bundled TrueType fonts: mpl-data/fonts/ttf."""
    import matplotlib

    return Path(matplotlib.get_data_path()) / "fonts" / "ttf"


def render_digits(path: Path) -> list[np.ndarray] | None:
    """The ten digits of the TrueType font ``path`` rendered by FreeType (matplotlib's
    FT2Font, antialiased, unhinted) at RENDER_PX, each an (h, w) uint8 ink bitmap; None when the
    font lacks a digit glyph or draws two digits alike (a fallback box)."""
    from matplotlib.ft2font import FT2Font, LoadFlags

    font = FT2Font(str(path))
    if any(font.get_char_index(ord(str(d))) == 0 for d in range(10)):
        return None
    glyphs = []
    for d in range(10):
        font.clear()
        font.set_size(RENDER_PX, 72)  # 72 dpi: points = pixels
        font.set_text(str(d), 0.0, flags=LoadFlags.NO_HINTING)
        font.draw_glyphs_to_bitmap(antialiased=True)
        glyphs.append(np.array(font.get_image(), dtype=np.uint8))
    if any(not g.any() for g in glyphs) or len({g.tobytes() for g in glyphs}) < 10:
        return None
    return glyphs


def place_glyph(bitmap: np.ndarray, canvas: int) -> np.ndarray:
    """The glyph's ink box resized (antialiased bilinear, aspect kept) to GLYPH_BOX * canvas high
    (and at most as wide), centred on a canvas x canvas [0, 1] float image."""
    ink = bitmap.astype(np.float32) / 255.0
    rows, cols = np.nonzero(ink > 0.5)
    ink = ink[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
    h, w = ink.shape
    k = GLYPH_BOX * canvas / max(h, w * 1.0)
    nh, nw = max(1, round(h * k)), max(1, round(w * k))
    small = F.interpolate(torch.from_numpy(ink)[None, None], size=(nh, nw), mode="bilinear",
                          align_corners=False, antialias=True)[0, 0].clamp(0, 1)  # fmt: skip
    out = np.zeros((canvas, canvas), dtype=np.float32)
    top, left = (canvas - nh) // 2, (canvas - nw) // 2
    out[top : top + nh, left : left + nw] = small.numpy()
    return out


def signed_distance(ink: np.ndarray) -> tuple[np.ndarray, float]:
    """Signed distance (pixels) of each pixel centre to the ink's outline, the outline taken half
    a pixel outside the ink pixels (ink = intensity > 0.5): +0.5 next to the ink outside, -0.5
    next to the background inside; and the stroke width: twice the median distance (pixel
    centres) to the background along the ink's skeleton (exact for a bar of even width)."""
    from scipy.ndimage import distance_transform_edt
    from skimage.morphology import skeletonize

    mask = ink > 0.5
    inside = distance_transform_edt(mask)
    sdf = np.where(mask, 0.5 - inside, distance_transform_edt(~mask) - 0.5)
    width = 2.0 * float(np.median(inside[skeletonize(mask)]))
    return sdf.astype(np.float32), width


def stroke_ink(sdf: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """Ink in [0, 1] of the shape {sdf < offset}: the outline moved out by ``offset`` pixels
    (dilation; erosion when negative), with a 1-pixel linear ramp: a stroke of width w is drawn
    w + 2 * offset wide (the sum of ink across it)."""
    return (0.5 + offset - sdf).clamp(0.0, 1.0)


def font_glyphs(canvas: int) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Font names used, signed distance fields (F, 10, canvas, canvas) and stroke widths
    (F, 10) of every (font, digit) of FONTS found under matplotlib's mpl-data/fonts/ttf."""
    names, fields, widths = [], [], []
    for name in FONTS:
        path = font_dir() / name
        glyphs = render_digits(path) if path.is_file() else None
        if glyphs is None:
            continue
        sdfs = [signed_distance(place_glyph(g, canvas)) for g in glyphs]
        names.append(name)
        fields.append(np.stack([s for s, _ in sdfs]))
        widths.append([w for _, w in sdfs])
    if len(names) < 3:
        raise DataUnavailableError(
            f"dataset 'digits_fonts' found only {len(names)} usable fonts with digits under "
            f"{font_dir()} (expected several of {', '.join(FONTS)}); reinstall matplotlib"
        )
    return names, torch.from_numpy(np.stack(fields)), torch.tensor(widths, dtype=torch.float32)


def render_domain_b(cfg: dict[str, Any], gen: torch.Generator) -> tuple[Split, list[str]]:
    """``n_b`` font digits (classes balanced, in random order): per example a uniformly drawn
    font, a random affine (rotation, zoom, shift of FontsCfg) applied to the glyph's signed
    distance field, then the stroke set to a random width by thresholding it at an offset
    (dilation / erosion), rendered with a 1-px soft edge on the OVERSAMPLE x canvas and
    box-downsampled to ``size``. Returns {"x_b", "y_b", "font_b" (index into the font names)}
    and the font names."""
    size, n = cfg["size"], cfg["n_b"]
    canvas = OVERSAMPLE * size
    names, sdf, widths = font_glyphs(canvas)

    y = torch.arange(n) % 10
    y = y[torch.randperm(n, generator=gen)]
    font = torch.randint(len(names), (n,), generator=gen)

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=gen, dtype=torch.float64)

    angle = uniform(-cfg["rotation"], cfg["rotation"]) * math.pi / 180
    scale = uniform(1 - cfg["zoom"], 1 + cfg["zoom"])
    shift = uniform(-cfg["shift"], cfg["shift"]), uniform(-cfg["shift"], cfg["shift"])
    stroke = uniform(cfg["stroke_min"], cfg["stroke_max"]) * canvas  # wanted width, canvas px

    # output point p (normalised coords) samples the glyph at R(-angle) (p - shift) / scale
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    tx, ty = shift[0] * 2, shift[1] * 2  # a shift of `side` is 2 in normalised coords
    theta = torch.stack([
        torch.stack([cos, sin, -(cos * tx + sin * ty)], 1),
        torch.stack([-sin, cos, -(-sin * tx + cos * ty)], 1),
    ], 1).float()  # fmt: skip
    # the warp scales distances by `scale`: offset the field so the drawn width is `stroke`
    offset = ((stroke / scale - widths[font, y].double()) / 2).float()

    out = []
    for i in range(0, n, 256):  # chunks keep the canvas-sized fields small
        j = slice(i, i + 256)
        field = sdf[font[j], y[j]].unsqueeze(1)
        grid = F.affine_grid(theta[j], [len(field), 1, canvas, canvas], align_corners=False)
        warped = F.grid_sample(field, grid, mode="bilinear", padding_mode="border",
                               align_corners=False)  # fmt: skip
        ink = stroke_ink(warped, offset[j].view(-1, 1, 1, 1))
        out.append(F.avg_pool2d(ink, OVERSAMPLE))
    x = torch.cat(out).mul(2.0).sub(1.0).clamp(-1.0, 1.0).contiguous()
    return {"x_b": x, "y_b": y.long(), "font_b": font}, names


@dataset(
    "digits_fonts",
    options=FontsCfg,
    fields={
        "x": {"kind": "image", "domain": "a"},
        "y": {"kind": "class", "domain": "a"},
        "x_b": {"kind": "image", "domain": "b"},
        "y_b": {"kind": "class", "domain": "b"},
    },
    task="unpaired",
)
def digits_fonts(cfg: dict[str, Any], raw_dir: Path, seed: int) -> tuple[Split, Split, Meta]:
    """Handwriting <-> type (CycleGAN's unpaired setting in miniature): domain A the upsampled
    sklearn digits (stratified split seeded by ``seed``), domain B ``n_b`` digits rendered from
    matplotlib's fonts with random affine and stroke width (``render_domain_b``, drawn with a
    generator seeded ``seed + 1``; its own stratified split). No example of A is paired with one
    of B."""
    x, y = upsampled_digits(cfg["size"])
    tr, te = stratified_split(y, cfg["test_fraction"], seed)
    b, fonts = render_domain_b(cfg, torch.Generator().manual_seed(seed + 1))
    tr_b, te_b = stratified_split(b["y_b"], cfg["test_fraction"], seed)
    train = {"x": x[tr], "y": y[tr], "x_b": b["x_b"][tr_b], "y_b": b["y_b"][tr_b]}
    test = {"x": x[te], "y": y[te], "x_b": b["x_b"][te_b], "y_b": b["y_b"][te_b]}
    size = cfg["size"]
    meta = digits_meta(
        "digits_fonts", size, len(tr), len(te),
        source_shape=[1, size, size],
        n_train_b=len(tr_b),
        n_test_b=len(te_b),
        fonts=fonts,
        evaluator_fields=[["x", "y"], ["x_b", "y_b"]],
        translation={"task": "unpaired", "directions": UNPAIRED},
    )  # fmt: skip
    return train, test, meta


# ---------------------------------------------------------------- photos_sr (super-resolution)

# skimage.data colour photos bundled with scikit-image itself (no pooch download)
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field")


def allowed_scales(size: int) -> list[int]:
    """Downsampling factors >= 2 that divide ``size`` and leave a source of >= 4 pixels."""
    return [s for s in range(2, size + 1) if size % s == 0 and size // s >= 4]


class PhotosCfg(Options):
    size: int = Field(32, ge=8, le=128)  # side of the high-resolution target patches
    scale: int = Field(4, ge=2)  # downsampling factor: the source is size / scale wide
    photo_side: int = Field(256, ge=32, le=2048)  # photos resized to this shorter side first
    test_strip: float = Field(0.25, gt=0, lt=1)  # right share of each photo kept for test
    train_patches: int = Field(256, ge=1, le=100_000)  # patches per photo, train
    test_patches: int = Field(64, ge=1, le=100_000)  # patches per photo, test
    min_std: float = Field(0.03, ge=0, lt=0.5)  # skip flat patches: pixel std ([0, 1]) below

    @field_validator("scale")
    @classmethod
    def _divides_size(cls, scale: int, info: ValidationInfo) -> int:
        size = info.data.get("size")
        if size is not None and scale not in allowed_scales(size):
            raise ValueError(
                f"scale {scale} must divide size {size} and leave a source of >= 4 px; "
                f"allowed: {', '.join(map(str, allowed_scales(size))) or '(none)'}"
            )
        return scale

    @model_validator(mode="after")
    def _regions_fit(self) -> PhotosCfg:
        test_w = math.floor(self.photo_side * self.test_strip)
        if min(test_w, self.photo_side - test_w) < self.size:
            raise ValueError(
                f"photo_side = {self.photo_side} with test_strip = {self.test_strip} leaves a "
                f"train or test region narrower than size = {self.size}; allowed: "
                f"photo_side * min(test_strip, 1 - test_strip) >= size"
            )
        return self


def load_photo(name: str, side: int) -> torch.Tensor:
    """skimage.data.<name>() as a (3, H, W) [0, 1] float32 image whose shorter side is resized to
    ``side`` (antialiased bilinear)."""
    import skimage.data

    try:
        img = np.asarray(getattr(skimage.data, name)())
    except (ImportError, OSError, ValueError) as err:
        raise DataUnavailableError(
            f"dataset 'photos_sr' needs skimage.data.{name}(), bundled with scikit-image "
            f"(`pip install 'scikit-image>=0.22'`); loading failed: {err}"
        ) from err
    x = torch.from_numpy(img[..., :3].astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    h, w = x.shape[-2:]
    k = side / min(h, w)
    size = (max(side, round(h * k)), max(side, round(w * k)))
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=k < 1)
    return x[0].clamp(0.0, 1.0).contiguous()


def regions(width: int, test_strip: float) -> tuple[tuple[int, int], tuple[int, int]]:
    """Column ranges [start, stop) of the train region (left) and the held-out test strip (the
    right floor(width * test_strip) columns) of a photo ``width`` wide."""
    cut = width - math.floor(width * test_strip)
    return (0, cut), (cut, width)


def patch_positions(
    photo: torch.Tensor,
    cols: tuple[int, int],
    n: int,
    size: int,
    min_std: float,
    gen: torch.Generator,
) -> torch.Tensor:
    """(n, 2) top-left (row, col) of ``size`` patches lying wholly in columns [cols) of
    ``photo``, uniformly drawn (seeded), keeping in draw order those whose pixel std >= min_std."""
    h, w = photo.shape[-2], cols[1] - cols[0]
    kept: list[torch.Tensor] = []
    found = 0
    for _ in range(64):
        rows = torch.randint(h - size + 1, (4 * n,), generator=gen)
        pos = torch.stack([rows, torch.randint(w - size + 1, (4 * n,), generator=gen) + cols[0]], 1)
        std = torch.stack([crop(photo, p, size).std() for p in pos])
        pos = pos[std >= min_std][: n - found]
        kept.append(pos)
        found += len(pos)
        if found == n:
            return torch.cat(kept)
    raise DataUnavailableError(
        f"dataset 'photos_sr': too few patches with pixel std >= min_std = {min_std} in columns "
        f"{cols[0]}..{cols[1] - 1}; lower data.photos_sr.min_std"
    )


def crop(photo: torch.Tensor, pos: torch.Tensor, size: int) -> torch.Tensor:
    r, c = int(pos[0]), int(pos[1])
    return photo[:, r : r + size, c : c + size]


def downsample(x: torch.Tensor, scale: int) -> torch.Tensor:
    """The low-resolution source: the mean of each scale x scale block (box / area filter,
    antialiased; linear, so the same on [0, 1] and on [-1, 1] images)."""
    return F.avg_pool2d(x, scale)


@dataset(
    "photos_sr",
    options=PhotosCfg,
    fields={"source": {"kind": "image"}, "x": {"kind": "image"}, "y": {"kind": "class"}},
    task="super_resolution",
)
def photos_sr(cfg: dict[str, Any], raw_dir: Path, seed: int) -> tuple[Split, Split, Meta]:
    """Super-resolution (SRGAN's x4 task in miniature): ``size`` x ``size`` colour patches of
    scikit-image's bundled photos (PHOTOS, each resized to ``photo_side``), the source the patch
    box-downsampled by ``scale`` (``downsample``), ``y`` the photo. Train patches lie in the left
    part of each photo, test patches in the held-out right strip (``regions``): no test pixel is
    seen in training. Positions drawn with a generator seeded ``seed``."""
    size = cfg["size"]
    gen = torch.Generator().manual_seed(seed)
    parts: dict[str, list[torch.Tensor]] = {"train": [], "test": []}
    labels: dict[str, list[torch.Tensor]] = {"train": [], "test": []}
    for label, name in enumerate(PHOTOS):
        photo = load_photo(name, cfg["photo_side"])
        train_cols, test_cols = regions(photo.shape[-1], cfg["test_strip"])
        for split, cols, n in (("train", train_cols, cfg["train_patches"]),
                               ("test", test_cols, cfg["test_patches"])):  # fmt: skip
            pos = patch_positions(photo, cols, n, size, cfg["min_std"], gen)
            parts[split].append(torch.stack([crop(photo, p, size) for p in pos]))
            labels[split].append(torch.full((n,), label, dtype=torch.int64))

    def to_split(split: str) -> Split:
        x = torch.cat(parts[split]).mul(2.0).sub(1.0).clamp(-1.0, 1.0).contiguous()
        return {"source": downsample(x, cfg["scale"]), "x": x, "y": torch.cat(labels[split])}

    train, test = to_split("train"), to_split("test")
    low = size // cfg["scale"]
    meta = {
        "name": "photos_sr",
        "kind": "image",
        "shape": [3, size, size],
        "num_classes": len(PHOTOS),
        "classes": list(PHOTOS),
        "n_train": len(train["y"]),
        "n_test": len(test["y"]),
        "source_shape": [3, low, low],
        "scale": cfg["scale"],
        "downsampling": "box: mean of each scale x scale block",
        "test_region": f"the right {cfg['test_strip']} of each photo's width",
        "translation": {"task": "super_resolution", "directions": PAIRED},
    }
    return train, test, meta
