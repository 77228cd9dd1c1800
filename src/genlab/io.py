"""Atomic file writes: every output is written to a temporary sibling and renamed into place,
so a crash or a bad input never leaves a half-written or damaged file.

Torch files (``torch_save``/``torch_load``) are a dict sealed with the SHA-256 of its content
(key ``sha256``), checked on load, and byte-identical for identical content: ``torch.save`` to a
path stores the file's name inside the zip, so it is serialised in memory and then written.
Loading never unpickles code (``weights_only=True``); any unreadable, foreign or altered file is
a ``CheckpointError`` naming it.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import pickle
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from genlab.errors import CheckpointError

CHECKSUM = "sha256"  # the key of the content digest in every torch file genlab writes


@contextmanager
def atomic_path(path: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """Yield a temporary path beside ``path`` that replaces it only if the block succeeds.
    ``suffix`` keeps the extension for writers that infer the format from it (".png")."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        tmp.chmod(0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def replace_dir(new: Path, target: Path) -> None:
    """Rename folder ``new`` to ``target``; an existing ``target`` is moved aside and deleted
    only once ``new`` is in place (restored if the rename fails). Processes replacing the same
    folder at once each land a complete copy, the last one wins."""
    for _ in range(100):
        if not target.exists():
            try:
                os.replace(new, target)
                return
            except OSError as e:  # another process put its copy there first
                if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                continue
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        try:
            os.replace(target, old / target.name)
        except FileNotFoundError:  # another process moved it aside first
            shutil.rmtree(old, ignore_errors=True)
            continue
        try:
            os.replace(new, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.replace(old / target.name, target)
            shutil.rmtree(old, ignore_errors=True)
            raise
        shutil.rmtree(old, ignore_errors=True)
        return
    raise OSError(f"could not replace {target}: other processes kept replacing it")


def write_text(path: Path, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def write_json(path: Path, obj: dict[str, Any]) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def torch_save(obj: dict[str, Any], path: Path) -> Path:
    """Write ``obj`` (tensors and plain data) sealed with its checksum, atomically; the same
    content always gives the same bytes."""
    import torch

    buffer = io.BytesIO()
    torch.save({**obj, CHECKSUM: content_digest(obj)}, buffer)
    with atomic_path(path) as tmp:
        tmp.write_bytes(buffer.getvalue())
    return path


def torch_load(path: Path, what: str) -> dict[str, Any]:
    """The dict ``torch_save`` wrote to ``path``, its checksum verified (and removed).
    ``what`` names the file in messages ("training state", "model")."""
    import torch

    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{what} {path} is a directory, not a file written by genlab")
    if not path.is_file():
        raise CheckpointError(f"{what} {path} does not exist; the stage that writes it runs first")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "GLOBAL" not in str(e):  # not a pickle of tensors and plain data at all
            raise CheckpointError(
                f"{what} {path} cannot be read (not a torch file); delete it and rerun the stage "
                "that writes it"
            ) from None
        # a file holding code or foreign objects: refused, and it is not to be trusted either
        raise CheckpointError(
            f"{what} {path} was refused: it holds objects other than tensors and plain data, so "
            "genlab did not write it; delete it and rerun the stage that writes it"
        ) from None
    except Exception as e:  # noqa: BLE001 - torch raises many kinds on a damaged file
        reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise CheckpointError(
            f"{what} {path} cannot be read (truncated or not a torch file: {reason}); delete it "
            "and rerun the stage that writes it"
        ) from None
    if not isinstance(obj, dict) or CHECKSUM not in obj:
        raise CheckpointError(
            f"{what} {path} has no {CHECKSUM} checksum: it was not written by this genlab (or by "
            "an older one); rerun the stage that writes it"
        )
    stored = obj.pop(CHECKSUM)
    try:
        actual = content_digest(obj)
    except TypeError as e:
        raise CheckpointError(f"{what} {path} holds unexpected content ({e})") from None
    if stored != actual:
        raise CheckpointError(
            f"{what} {path} is corrupted: its content does not match the checksum it was written "
            "with (changed on disk after it was written); delete it and rerun the stage that "
            "writes it"
        )
    return obj


def content_digest(obj: Any) -> str:
    """SHA-256 of nested dicts, lists and tuples of tensors and plain values (in order)."""
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()


def _feed(h, obj: Any) -> None:
    import torch

    if isinstance(obj, torch.Tensor):
        t = obj.detach().cpu().contiguous().reshape(-1)
        h.update(f"T{t.dtype}{tuple(obj.shape)}".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    elif isinstance(obj, dict):
        h.update(f"d{len(obj)}".encode())
        for key, value in obj.items():
            _feed(h, key)
            _feed(h, value)
    elif isinstance(obj, (list, tuple)):
        h.update(f"{'l' if isinstance(obj, list) else 't'}{len(obj)}".encode())
        for value in obj:
            _feed(h, value)
    elif obj is None:
        h.update(b"n;")
    elif isinstance(obj, bool):
        h.update(f"b{obj};".encode())
    elif isinstance(obj, int):
        h.update(f"i{int(obj)};".encode())
    elif isinstance(obj, float):
        h.update(f"f{float(obj)!r};".encode())
    elif isinstance(obj, str):
        h.update(f"s{len(obj)}:{obj}".encode())
    elif isinstance(obj, bytes):
        h.update(b"y%d:" % len(obj) + obj)
    else:
        raise TypeError(f"cannot checksum a {type(obj).__name__}")
