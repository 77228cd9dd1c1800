"""Raw image sets with their official train/test splits: MNIST-style IDX files read through
torchvision (60k/10k), optionally padded to 32x32, and CIFAR-10's python-version pickles read
here (50k/10k)."""

from __future__ import annotations

import gzip
import pickle
import shutil
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import Field

from genlab.data.base import Split, dataset
from genlab.errors import DataUnavailableError
from genlab.options import Options

IDX_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _unpack_gz(folder: Path) -> None:
    """Decompress `<file>.gz` when only the archive is present (torchvision reads plain IDX)."""
    for fname in IDX_FILES:
        plain, packed = folder / fname, folder / f"{fname}.gz"
        if not plain.exists() and packed.exists():
            tmp = plain.with_name(plain.name + ".part")
            with gzip.open(packed, "rb") as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst)
            tmp.replace(plain)


def _missing_message(name: str, folder: Path) -> str:
    """Explain where torchvision looks for the IDX files and how to download them."""
    return (
        f"dataset {name!r} is not available offline: torchvision expects the IDX files "
        f"{', '.join(IDX_FILES)} (or the same names with .gz) in {folder}/ ; "
        f"put them there, or set `data.{name}.download: true` in params.yaml to download them"
    )


def _load_idx(
    name: str, cls_name: str, cfg: dict[str, Any], raw_dir: Path
) -> tuple[Split, Split, dict[str, Any]]:
    """Read both official splits, scale uint8 pixels to [-1, 1] and apply the optional `limit`."""
    import torchvision.datasets  # imported here: it takes seconds, and params loading needs none

    cls = getattr(torchvision.datasets, cls_name)
    folder = Path(raw_dir) / cls.__name__ / "raw"  # torchvision's `raw_folder`
    download = bool(cfg["download"])
    _unpack_gz(folder)
    if not download and not all((folder / f).is_file() for f in IDX_FILES):
        raise DataUnavailableError(_missing_message(name, folder))
    try:
        sets = [cls(root=str(raw_dir), train=t, download=download) for t in (True, False)]
    except (RuntimeError, OSError) as err:  # torchvision reports failed downloads as these
        raise DataUnavailableError(f"{_missing_message(name, folder)} (error: {err})") from err

    limit = cfg.get("limit")
    size = int(cfg.get("size", 28))
    splits = []
    for ds in sets:
        images, labels = ds.data[:limit], ds.targets[:limit]
        x = images.unsqueeze(1).to(torch.float32).div(127.5).sub(1.0)  # 0..255 -> [-1, 1]
        splits.append({"x": pad_to(x, size), "y": labels.to(torch.int64).clone()})
    train, test = splits
    meta = {
        "name": name,
        "kind": "image",
        "shape": [1, size, size],
        "num_classes": 10,
        "n_train": len(train["y"]),
        "n_test": len(test["y"]),
    }
    return train, test, meta


def pad_to(x: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, 28, 28) images in [-1, 1] -> (N, C, size, size): centred, the border filled with the
    background value -1 (black). 32x32 as LeNet-5 saw MNIST (LeCun et al. 1998, Sec. II.A: the
    28x28 digits inside a 32x32 input field). Padding, not interpolation: every pixel keeps its
    value, strokes stay as sharp as in the data (bilinear resizing 28 -> 32 would blur them and
    invent grey values no image had), and the 28x28 image is recovered exactly by cropping."""
    extra = size - x.shape[-1]
    if extra == 0:
        return x
    lo = extra // 2
    return torch.nn.functional.pad(x, (lo, extra - lo, lo, extra - lo), value=-1.0)


class TorchvisionCfg(Options):
    download: bool = False
    limit: int | None = Field(None, ge=1)
    # 28: the images as stored; 32: zero-padded by 2 pixels each side (background -1; see pad_to),
    # the power-of-two size of the DCGAN-family nets and of CIFAR-10
    size: Literal[28, 32] = 28


IMAGES = {"x": {"kind": "image"}, "y": {"kind": "class"}}


@dataset("mnist", options=TorchvisionCfg, fields=IMAGES)
def mnist(cfg: dict[str, Any], raw_dir: Path, seed: int) -> tuple[Split, Split, dict[str, Any]]:
    """MNIST handwritten digits (LeCun et al. 1998) via torchvision.datasets.MNIST."""
    return _load_idx("mnist", "MNIST", cfg, raw_dir)


@dataset("fashion_mnist", options=TorchvisionCfg, fields=IMAGES)
def fashion_mnist(
    cfg: dict[str, Any], raw_dir: Path, seed: int
) -> tuple[Split, Split, dict[str, Any]]:
    """Fashion-MNIST (Xiao et al. 2017) via torchvision.datasets.FashionMNIST."""
    return _load_idx("fashion_mnist", "FashionMNIST", cfg, raw_dir)


# --- CIFAR-10 ------------------------------------------------------------------------------

CIFAR_FOLDER = "cifar-10-batches-py"  # what the official cifar-10-python.tar.gz unpacks to
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_FILES = (*CIFAR_TRAIN, "test_batch", "batches.meta")

# numpy's pickled-array reconstructors (numpy 1 and 2 names) and the latin-1 codec call with
# which Python 2 pickles carry bytes: all a CIFAR pickle needs; anything else is refused
_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles dicts, lists, numbers, strings and numpy arrays only: a pickle can run any code
    it names, and a data file has no reason to name more."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")


def _cifar_missing_message(folder: Path, missing: list[str]) -> str:
    return (
        f"dataset 'cifar10' is not available offline: the CIFAR-10 python-version files "
        f"{', '.join(CIFAR_FILES)} are expected in {folder}/ (missing: {', '.join(missing)}); "
        "unpack cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html into "
        f"{folder.parent}/, or set `data.cifar10.download: true` in params.yaml to download it"
    )


def _read_cifar_batch(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One CIFAR-10 batch pickle -> (uint8 (N, 3, 32, 32), int64 (N,)); DataUnavailableError
    naming the file and what is wrong when it is not a CIFAR-10 batch."""

    def corrupt(why: str) -> DataUnavailableError:
        return DataUnavailableError(
            f"dataset 'cifar10': {path} is not a CIFAR-10 python-version batch ({why}); replace "
            "it with the file from cifar-10-python.tar.gz, or delete the folder and set "
            "`data.cifar10.download: true`"
        )

    try:
        with open(path, "rb") as f:
            # latin1: how Python 3 reads the Python 2 pickles (numpy's advice; torchvision does so)
            entry = _ArrayUnpickler(f, encoding="latin1").load()
    except Exception as err:  # noqa: BLE001 - any unpickling failure means a damaged file
        raise corrupt(f"unreadable: {type(err).__name__}: {err}") from None
    if not isinstance(entry, dict):
        raise corrupt(f"holds a {type(entry).__name__}, not a dict")
    entry = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}
    data, labels = entry.get("data"), entry.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != 3072:  # fmt: skip
        what = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise corrupt(f"'data' should be a uint8 array of shape (N, 3072), found {what}")
    try:
        y = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    except (TypeError, ValueError) as err:
        raise corrupt(f"'labels' should be a list of N ints 0..9 ({err})") from None
    if y.shape != (len(data),) or (len(y) and not 0 <= int(y.min()) <= int(y.max()) <= 9):
        raise corrupt(f"'labels' should be {len(data)} ints 0..9, found shape {tuple(y.shape)}")
    # each row: 1024 red, 1024 green, then 1024 blue values, each plane row-major
    x = torch.from_numpy(data.copy()).reshape(len(data), 3, 32, 32)
    return x, y


class Cifar10Cfg(Options):
    download: bool = False
    limit: int | None = Field(None, ge=1)


@dataset("cifar10", options=Cifar10Cfg, fields=IMAGES)
def cifar10(cfg: dict[str, Any], raw_dir: Path, seed: int) -> tuple[Split, Split, dict[str, Any]]:
    """CIFAR-10 (Krizhevsky 2009, "Learning multiple layers of features from tiny images", ch. 3):
    32x32 colour images of 10 classes, the official 50k/10k split, scaled to [-1, 1].

    The python-version pickles under ``<raw>/cifar-10-batches-py/`` are read here rather than by
    torchvision.datasets.CIFAR10, which refuses any file whose md5 differs from the official one,
    and so cannot read a subset, a re-packed copy or the tests' tiny files; torchvision is used
    only to download (``download: true``). ``limit`` keeps the first images of each split.
    """
    folder = Path(raw_dir) / CIFAR_FOLDER
    missing = [f for f in CIFAR_FILES if not (folder / f).is_file()]
    if missing and cfg["download"]:
        import torchvision.datasets  # imported here: it takes seconds

        try:
            torchvision.datasets.CIFAR10(root=str(raw_dir), train=True, download=True)
        except (RuntimeError, OSError) as err:  # failed downloads and checksums raise these
            raise DataUnavailableError(
                f"{_cifar_missing_message(folder, missing)} (download failed: {err})"
            ) from err
        missing = [f for f in CIFAR_FILES if not (folder / f).is_file()]
    if missing:
        raise DataUnavailableError(_cifar_missing_message(folder, missing))

    limit = cfg.get("limit")
    parts = [_read_cifar_batch(folder / f) for f in CIFAR_TRAIN]
    raw = {
        "train": (torch.cat([x for x, _ in parts]), torch.cat([y for _, y in parts])),
        "test": _read_cifar_batch(folder / "test_batch"),
    }
    train, test = (
        {"x": x[:limit].to(torch.float32).div(127.5).sub(1.0), "y": y[:limit].clone()}
        for x, y in raw.values()
    )
    meta = {
        "name": "cifar10",
        "kind": "image",
        "shape": [3, 32, 32],
        "num_classes": 10,
        "n_train": len(train["y"]),
        "n_test": len(test["y"]),
    }
    return train, test, meta
