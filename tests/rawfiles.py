"""Tiny raw data files in the official on-disk formats, for tests that must not download.

- IDX (LeCun et al. 1998, http://yann.lecun.com/exdb/mnist/): what torchvision's MNIST /
  FashionMNIST read from ``<raw>/<MNIST|FashionMNIST>/raw/``.
- CIFAR-10 "python version" (Krizhevsky 2009, https://www.cs.toronto.edu/~kriz/cifar.html):
  ``<raw>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}``, pickled dicts with
  b"data" (N, 3072) uint8 rows (1024 red, 1024 green, 1024 blue values, each plane row-major)
  and b"labels" (a list of N ints 0..9).

The images are learnable (a blob whose position and colour follow the label), so an evaluator
fitted on them has something to separate.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np

IDX_NAMES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR_TEST = "test_batch"
CIFAR_META = "batches.meta"
CIFAR_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip


def idx_images(images: np.ndarray) -> bytes:
    """IDX3 ubyte: magic 0x00000803, big-endian N, rows, cols, then uint8 pixels."""
    n, rows, cols = images.shape
    return struct.pack(">IIII", 0x00000803, n, rows, cols) + images.astype(np.uint8).tobytes()


def idx_labels(labels: np.ndarray) -> bytes:
    """IDX1 ubyte: magic 0x00000801, big-endian N, then uint8 labels."""
    return struct.pack(">II", 0x00000801, len(labels)) + labels.astype(np.uint8).tobytes()


def blob_images(labels: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """(N, size, size) uint8 images of one Gaussian blob; the label (0..9) picks the blob's
    centre on a 2 x 5 grid, jittered by up to 2 pixels."""
    n = len(labels)
    cy = size * (0.3 + 0.4 * (labels // 5)) + rng.uniform(-2, 2, n)
    cx = size * (0.15 + 0.175 * (labels % 5)) + rng.uniform(-2, 2, n)
    r = np.arange(size, dtype=np.float64)
    d2 = (r[None, :, None] - cy[:, None, None]) ** 2 + (r[None, None, :] - cx[:, None, None]) ** 2
    return np.round(255.0 * np.exp(-d2 / (2 * (size / 11) ** 2))).astype(np.uint8)


def _labels(n: int, rng: np.random.Generator) -> np.ndarray:
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    return labels.astype(np.uint8)


def write_idx(
    raw_dir: Path,
    subdir: str,  # torchvision's class name: "MNIST" or "FashionMNIST"
    n_train: int = 64,
    n_test: int = 32,
    seed: int = 0,
    gz: bool = False,  # write <name>.gz archives instead of the plain files
) -> dict[str, np.ndarray]:
    """The four IDX files torchvision reads, in ``raw_dir/<subdir>/raw/``; returns the arrays
    written: train_x, train_y, test_x, test_y (uint8, images (N, 28, 28))."""
    folder = Path(raw_dir) / subdir / "raw"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays: dict[str, np.ndarray] = {}
    for split, n in (("train", n_train), ("test", n_test)):
        labels = _labels(n, rng)
        arrays[f"{split}_x"], arrays[f"{split}_y"] = blob_images(labels, 28, rng), labels
    for key, fname in IDX_NAMES.items():
        data = idx_images(arrays[key]) if key.endswith("x") else idx_labels(arrays[key])
        if gz:
            (folder / f"{fname}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / fname).write_bytes(data)
    return arrays


def cifar_images(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(N, 3, 32, 32) uint8: a blob (position from the label) tinted by the label's colour,
    plus a little noise, so that the three planes differ."""
    blob = blob_images(labels, 32, rng).astype(np.float64) / 255.0
    tint = np.stack([(labels % 3) / 2, (labels % 4) / 3, (labels % 5) / 4], axis=1)  # (N, 3)
    images = 255.0 * (0.15 + 0.7 * blob[:, None] * (0.3 + 0.7 * tint[:, :, None, None]))
    images += rng.uniform(0.0, 30.0, images.shape)
    return np.clip(np.round(images), 0, 255).astype(np.uint8)


class Py2Pickler(pickle._Pickler):
    """Protocol 2 with ``bytes`` written as Python 2 ``str`` (the BINSTRING opcodes), as in the
    official files: loaded with encoding="latin1" (torchvision, genlab) their keys are str,
    with encoding="bytes" they are bytes; numpy arrays' raw data travel the same way."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_py2_str(self, obj: bytes) -> None:
        if len(obj) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(obj)]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def _pickle(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        Py2Pickler(f, protocol=2).dump(obj)  # the official files are Python 2 pickles


def write_cifar10(
    raw_dir: Path,
    n_per_batch: int = 20,  # images in each of data_batch_1..5 (the official files: 10000)
    n_test: int = 20,  # images in test_batch (official: 10000)
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """CIFAR-10's python-version files in ``raw_dir/cifar-10-batches-py/``; returns the arrays
    written: train_x (5 n_per_batch, 3, 32, 32) uint8 in batch order, train_y, test_x, test_y
    (int64 labels)."""
    folder = Path(raw_dir) / CIFAR_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for i, fname in enumerate((*CIFAR_TRAIN, CIFAR_TEST)):
        n = n_test if fname == CIFAR_TEST else n_per_batch
        labels = _labels(n, rng)
        images = cifar_images(labels, rng)
        _pickle(folder / fname, {
            b"batch_label": f"{'testing' if fname == CIFAR_TEST else 'training'} batch {i + 1}"
                            .encode(),
            b"labels": [int(v) for v in labels],
            b"data": images.reshape(n, 3072),  # row-major R, G, B planes
            b"filenames": [f"img_{i}_{j}.png".encode() for j in range(n)],
        })  # fmt: skip
        xs.append(images)
        ys.append(labels.astype(np.int64))
    _pickle(folder / CIFAR_META, {
        b"num_cases_per_batch": n_per_batch,
        b"label_names": [c.encode() for c in CIFAR_CLASSES],
        b"num_vis": 3072,
    })  # fmt: skip
    return {
        "train_x": np.concatenate(xs[:5]),
        "train_y": np.concatenate(ys[:5]),
        "test_x": xs[5],
        "test_y": ys[5],
    }
