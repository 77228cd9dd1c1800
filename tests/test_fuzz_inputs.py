"""Fuzzing the command line with bad input: every case must exit 2 with one paragraph
``genlab: error: ...`` that names the offending key, value or file, print no traceback, never
suggest ``weights_only=False`` and leave every file of the project as it was.

Each case runs ``genlab.cli.main`` in-process in a fresh copy of a tiny project (digits and ring8
prepared, and a trained ``dcgan_ns`` state for the ``--resume`` cases). Work past validation is
replaced by a sentinel (``Accepted``): a case that reaches the training loop, dataset preparation,
a toy's run, a sweep's trials or ``optuna-dashboard`` had its bad input accepted. A handful of
cases also run as real processes (``slow``) to prove that no traceback reaches the terminal.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import math
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

import genlab.data
import genlab.io
import genlab.toys
from genlab.cli import main
from genlab.config import load_params
from genlab.sweeps import workers
from genlab.train import loop
from tests.conftest import tiny_params_dict

INF, NAN = math.inf, math.nan
BOGUS = "zz_bogus"  # an unknown key: every message about it must name it
DELETE = object()  # a value for Case.sets: remove the key
VARIANT_DIR = "models/dcgan_ns"  # where the --resume cases put their state.pt


# ---------------------------------------------------------------- the project
def base_params() -> dict:
    """conftest's tiny params plus the four toys and one valid study ``s1``."""
    raw = tiny_params_dict()
    raw["toys"] = {"dirac": {}, "fgan-gaussian": {}, "modes2d": {}, "parallel-lines": {}}
    raw["sweeps"] = {
        "s1": {
            "base": "dcgan_ns",
            "trials": 2,
            "steps": 4,
            "report_every": 2,
            "pruner": {"name": "none"},
            "seeds": [1, 2],
            "space": {
                "loss": {"choices": ["nonsaturating", "hinge"]},
                "optimizer.lr": {"low": 1e-4, "high": 1e-3, "log": True},
            },
        }
    }
    return raw


def dump(raw: Any) -> str:
    return yaml.safe_dump(raw, sort_keys=False)


def set_path(raw: dict, path: str | tuple[str, ...], value: Any) -> None:
    """``raw[a][b][c] = value`` for path ``"a.b.c"`` (a tuple for keys holding dots)."""
    parts = path.split(".") if isinstance(path, str) else list(path)
    node = raw
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    if value is DELETE:
        node.pop(parts[-1], None)
    else:
        node[parts[-1]] = value


@dataclass
class Case:
    id: str  # "<category>/<what>"
    argv: str  # the command after --params, split on whitespace
    expect: str  # a substring the message must contain (key, value or file)
    sets: tuple[tuple[Any, Any], ...] = ()  # (path, value) edits of base_params()
    text: str | bytes | None = None  # the params file verbatim instead of the edited base
    overrides: tuple[str, ...] = ()  # -S KEY=VALUE
    setup: Callable[[Path, Path], None] | None = None  # (root, cache): extra files
    params: str = "params.yaml"  # --params, relative to the project root
    needs_non_root: bool = False  # permission cases: root reads anything

    @property
    def category(self) -> str:
        return self.id.split("/")[0]

    def argv_for(self, root: Path) -> list[str]:
        extra = [a for o in self.overrides for a in ("-S", o)]
        return ["--params", str(root / self.params), *extra, *self.argv.split()]


CASES: list[Case] = []


def add(case_id: str, argv: str, expect: str, **kw: Any) -> None:
    CASES.append(Case(case_id, argv, expect, **kw))


def show(value: Any) -> str:
    """A value as it appears in a case id (2**70, not 22 digits)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**32:
        return f"2**{int(math.log2(abs(value)))}"
    return repr(value) if not isinstance(value, float) else str(value)


def key_of(path: str | tuple[str, ...]) -> str:
    """The key a message about ``path`` must name: the dotted path, without the leading
    ``train.`` (the shared defaults are reported on the variants they merge into)."""
    parts = path.split(".") if isinstance(path, str) else list(path)
    return ".".join(parts[1:] if parts[0] == "train" and len(parts) > 1 else parts)


def command_for(path: str) -> str:
    """A command whose validation reads the section ``path`` lives in."""
    head, _, rest = path.partition(".")
    if head == "toys":
        return f"toy {rest.split('.')[0]}"
    if head == "sweeps":
        return f"sweep {rest.split('.')[0]}"
    if head == "data":
        return "prepare"
    if head == "sample":
        return "sample vae"
    if head == "evaluate":
        return "evaluate vae"
    if path.startswith("variants.dcgan_ns") or "regularizers" in path:
        return "train dcgan_ns"
    if path.startswith("variants.ring_gan"):
        return "train ring_gan"
    return "train vae"


# ---------------------------------------------------------------- unknown keys at every level
for where, leaf in [
    ("", BOGUS),
    ("train", BOGUS),
    ("train.optimizer", BOGUS),
    ("variants.vae", BOGUS),
    ("variants.ring_gan", BOGUS),  # another variant than the one trained: params are invalid
    ("variants.vae.optimizer", BOGUS),
    ("variants.dcgan_ns.optimizer_d", BOGUS),
    ("variants.dcgan_ns.regularizers.r1", BOGUS),
    ("variants.dcgan_ns.regularizers.gradient_penalty", BOGUS),
    ("data.digits", BOGUS),
    ("data.ring8", BOGUS),
    ("data", "zz_dataset"),  # a data section of no registered dataset
    ("sample", BOGUS),
    ("evaluate", BOGUS),
    ("evaluator", BOGUS),
    ("tracking", BOGUS),
    ("toys.dirac", BOGUS),
    ("toys.fgan-gaussian", BOGUS),
    ("toys.modes2d", BOGUS),
    ("toys.parallel-lines", BOGUS),
    ("sweeps.s1", BOGUS),
    ("sweeps.s1.pruner", BOGUS),
]:
    path = f"{where}.{leaf}" if where else leaf
    value = {} if leaf == "zz_dataset" else 1
    add(f"unknown-key/{path}", command_for(path), leaf, sets=((path, value),))
add(
    "unknown-key/sweeps.s1.space.loss.zz_bogus",
    "sweep s1",
    BOGUS,
    sets=((("sweeps", "s1", "space", "loss", BOGUS), 1),),
)
add(
    "unknown-key/sweeps.s1.space.optimizer.lr.zz_bogus",
    "sweep s1",
    BOGUS,
    sets=((("sweeps", "s1", "space", "optimizer.lr", BOGUS), 1),),
)
add(
    "unknown-key/sweeps.s1.space.zz_knob",  # a space key that is no variant key
    "sweep s1",
    "zz_knob",
    sets=((("sweeps", "s1", "space", "zz_knob"), {"choices": [1, 2]}),),
)
add(
    "unknown-key/dashboard-sweeps.s1.zz_bogus",
    "dashboard s1",
    BOGUS,
    sets=((("sweeps", "s1", BOGUS), 1),),
)


# ---------------------------------------------------------------- duplicate YAML keys
def _variants_text(*lines: str) -> str:
    raw = base_params()
    del raw["variants"]
    return dump(raw) + "variants:\n" + "".join(f"  {line}\n" for line in lines)


VAE = "vae: {dataset: digits, family: vae, arch: conv_vae, latent_dim: 4, width: 8}"
DCGAN = (
    "dcgan_ns: {dataset: digits, family: gan, arch: dcgan, loss: nonsaturating, latent_dim: 8, "
    "width: 8}"
)
RING = "ring_gan: {dataset: ring8, family: gan, arch: mlp, loss: minimax, latent_dim: 2, width: 16}"
add("duplicate-key/top-level-seed", "train vae", "seed", text=dump(base_params()) + "seed: 1\n")
add(
    "duplicate-key/top-level-section",
    "train vae",
    "train",
    text=dump(base_params()) + "train: {steps: 5}\n",
)
add(
    "duplicate-key/in-variant-flow",
    "train vae",
    "latent_dim",
    text=_variants_text(VAE[:-1] + ", latent_dim: 6}", DCGAN, RING),
)
add(
    "duplicate-key/in-variant-block",
    "train vae",
    "dataset",
    text=_variants_text(
        "vae:",
        "  dataset: digits",
        "  family: vae",
        "  arch: conv_vae",
        "  latent_dim: 4",
        "  dataset: ring8",
        DCGAN,
        RING,
    ),
)
add(
    "duplicate-key/in-variant-optimizer",
    "train vae",
    "lr",
    text=_variants_text(VAE[:-1] + ", optimizer: {lr: 0.001, lr: 0.01}}", DCGAN, RING),
)
add(
    "duplicate-key/repeated-variant-name",
    "train vae",
    "vae",
    text=_variants_text(VAE, DCGAN, RING, VAE.replace("latent_dim: 4", "latent_dim: 6")),
)
add(
    "duplicate-key/in-data",
    "prepare",
    "digits",
    text=dump(base_params()).replace("data:\n", "data:\n  digits: {test_fraction: 0.5}\n", 1),
)
add(
    "duplicate-key/in-toys",
    "toy dirac",
    "dirac",
    text=dump(base_params()).replace("toys:\n", "toys:\n  dirac: {lr: 0.5}\n", 1),
)
add(
    "duplicate-key/in-sweep-space",
    "sweep s1",
    "loss",
    text=dump(base_params()).replace(
        "    space:\n", "    space:\n      loss: {choices: [minimax]}\n", 1
    ),
)


# ---------------------------------------------------------------- wrong types
for path, value in [
    ("train.steps", "many"),  # string for int
    ("variants.vae.latent_dim", "four"),
    ("seed", "zero"),
    ("train", [1, 2]),  # list for dict
    ("variants", ["vae"]),
    ("variants.vae", "conv"),  # string for dict
    ("variants.vae.optimizer", ["adam"]),
    ("variants.dcgan_ns.regularizers", ["r1"]),
    ("tracking", [True]),
    ("sample", [1]),
    ("data.digits", [0.2]),
    ("train.steps", True),  # bool for int
    ("train.batch_size", False),
    ("seed", True),
    ("variants.vae.latent_dim", True),
    ("evaluator.epochs", True),
    ("variants.vae.optimizer.lr", True),  # bool for float
    ("tracking.enabled", "maybe"),  # string for bool
    ("train.steps", 1.5),  # fractional int
    ("variants.vae.latent_dim", 4.5),
    ("train.optimizer.betas", 0.5),  # scalar for a pair
    ("train.optimizer.betas", [0.5]),  # a pair of one
    ("variants.dcgan_ns.ls_targets", "0,1,1"),
    ("seed", None),  # null where a value is required
    ("train.steps", None),
    ("variants.vae.dataset", None),
    ("variants.vae.family", None),
    ("variants.vae", None),
    ("tracking", None),
    ("sample", None),
    ("evaluate.metrics", None),
    ("variants", None),
    ("train", None),
]:
    add(f"wrong-type/{path}={show(value)}", command_for(path), key_of(path), sets=((path, value),))
for path, value in [
    ("toys.dirac", [1, 2]),
    ("toys.dirac.steps", True),
    ("toys.dirac.start", "origin"),
    ("sweeps.s1", None),
    ("sweeps.s1.trials", True),
    ("sweeps.s1.seeds", "1,2"),
    ("sweeps.s1.space", ["loss"]),
    (("sweeps", "s1", "space", "loss", "choices"), "hinge"),
    (("sweeps", "s1", "space", "optimizer.lr", "log"), "sometimes"),
]:
    shown = ".".join(path) if isinstance(path, tuple) else path
    add(
        f"wrong-type/{shown}={show(value)}", command_for(shown), key_of(path), sets=((path, value),)
    )


# ---------------------------------------------------------------- out-of-range numbers
for path, value, *expect in [
    ("train.steps", -3),
    ("train.steps", 0),
    ("variants.vae.optimizer.lr", 0),
    ("variants.vae.optimizer.lr", -1e-3),
    ("seed", -1),
    ("seed", 2**32),  # numpy seeds stop at 2**32 - 1
    ("seed", 2**70),
    ("variants.vae.latent_dim", 0),
    ("variants.vae.latent_dim", 1e15),
    ("variants.dcgan_ns.width", 0),
    ("variants.dcgan_ns.width", 1e9),
    ("train.batch_size", 0),
    ("variants.ring_gan.batch_size", 1000, "batch_size"),  # ring8 has 512 training examples
    ("variants.ring_gan.batch_size", 10**6),
    ("variants.ring_gan.batch_size", 2**70),
    ("train.ema", 1.0),
    ("train.ema", -0.1),
    ("train.log_every", 0),
    ("train.checkpoint_every", -1),
    ("train.optimizer.betas", [1.0, 0.9]),
    ("variants.dcgan_ns.d_steps", 0),
    ("variants.dcgan_ns.attention", -1),
    ("variants.dcgan_ns.regularizers.r1.every", 0),
    ("variants.dcgan_ns.regularizers.r1.weight", -1),
    ("evaluator.lr", 0),
    ("sample.interpolation_steps", 1),
    ("sample.n", -1),
    ("evaluate.kid_subset_size", 1),
    ("data.digits.test_fraction", 1.5),
    ("data.ring8.n", -5),
    ("toys.dirac.steps", 0),
    ("sweeps.s1.trials", 0),
    ("sweeps.s1.workers", 0),
    ("sweeps.s1.report_every", 100, "report_every"),  # a rule between keys: no single path
]:
    add(
        f"out-of-range/{path}={show(value)}",
        command_for(path),
        expect[0] if expect else key_of(path),
        sets=((path, value),),
    )


# ---------------------------------------------------------------- non-finite numbers
for path in [
    "variants.vae.optimizer.lr",
    "train.optimizer.lr",
    "variants.dcgan_ns.regularizers.r1.weight",
    "variants.vae.beta",
    "train.ema",
    "variants.dcgan_ns.optimizer.weight_decay",
    "evaluator.lr",
    "data.ring8.std",
    "toys.dirac.lr",
]:
    for value in (INF, -INF, NAN):
        add(f"non-finite/{path}={value}", command_for(path), key_of(path), sets=((path, value),))
for value in (INF, NAN):
    add(
        f"non-finite/train.optimizer.betas=[{value}, 0.9]",
        "train vae",
        "optimizer.betas",
        sets=(("train.optimizer.betas", [value, 0.9]),),
    )
    add(
        f"non-finite/toys.fgan-gaussian.weights=[{value}, 0.5]",
        "toy fgan-gaussian",
        "toys.fgan-gaussian.weights",
        sets=(("toys.fgan-gaussian.weights", [value, 0.5]),),
    )
    high = ("sweeps", "s1", "space", "optimizer.lr", "high")
    add(
        f"non-finite/sweeps.s1.space.optimizer.lr.high={value}",
        "sweep s1",
        key_of(high),
        sets=((high, value),),
    )
low = ("sweeps", "s1", "space", "optimizer.lr", "low")
add("non-finite/sweeps.s1.space.optimizer.lr.low=nan", "sweep s1", key_of(low), sets=((low, NAN),))


# ---------------------------------------------------------------- unknown names
for path, value, command, expect in [
    ("variants.dcgan_ns.loss", "zz_loss", "train dcgan_ns", "zz_loss"),
    ("variants.dcgan_ns.arch", "zz_arch", "train dcgan_ns", "zz_arch"),
    ("variants.vae.family", "zz_family", "train vae", "zz_family"),
    ("variants.vae.dataset", "zz_dataset", "train vae", "zz_dataset"),
    ("variants.dcgan_ns.regularizers", {"zz_reg": {}}, "train dcgan_ns", "zz_reg"),
    ("variants.dcgan_ns.optimizer.name", "zz_opt", "train dcgan_ns", "zz_opt"),
    ("variants.dcgan_ns.optimizer_d", {"name": "zz_opt"}, "train dcgan_ns", "zz_opt"),
    ("device", "zz_device", "train vae", "zz_device"),
    ("evaluate.metrics", ["frechet", "zz_metric"], "evaluate vae", "zz_metric"),
    ("evaluate.metrics", ["zz_metric"], "train vae", "zz_metric"),
    ("variants.dcgan_ns.g_condition", "zz_cond", "train dcgan_ns", "zz_cond"),
    ("variants.dcgan_ns.d_condition", "zz_cond", "train dcgan_ns", "zz_cond"),
    ("variants.dcgan_ns.d_norm", "zz_norm", "train dcgan_ns", "zz_norm"),
    ("variants.vae.likelihood", "zz_likelihood", "train vae", "zz_likelihood"),
    ("train.precision", "fp16", "train vae", "fp16"),
    ("sweeps.s1.sampler", "grid", "sweep s1", "grid"),
    ("sweeps.s1.pruner.name", "zz_pruner", "sweep s1", "zz_pruner"),
    ("sweeps.s1.base", "zz_variant", "sweep s1", "zz_variant"),
    ("sweeps.s1.objectives", ["fid"], "sweep s1", "fid"),
    (("sweeps", "s1", "space", "loss", "choices"), ["hinge", "zz_loss"], "sweep s1", "zz_loss"),
    ("toys.fgan-gaussian.divergences", ["kl", "zz_div"], "toy fgan-gaussian", "zz_div"),
    ("toys.modes2d.datasets", ["zz_dataset"], "toy modes2d", "zz_dataset"),
    ("toys.zz_toy", {}, "toy dirac", "zz_toy"),  # a toys entry of no registered toy
]:
    shown = ".".join(path) if isinstance(path, tuple) else path
    add(f"unknown-name/{shown}={value!r}", command, expect, sets=((path, value),))
add(
    "unknown-name/divergence",
    "train dcgan_ns",
    "zz_div",
    sets=(("variants.dcgan_ns.loss", "fgan"), ("variants.dcgan_ns.divergence", "zz_div")),
)
add(
    "unknown-name/style_mode",
    "train dcgan_ns",
    "zz_style",
    sets=(("variants.dcgan_ns.arch", "style"), ("variants.dcgan_ns.style_mode", "zz_style")),
)
add(
    "unknown-name/sweep-regularizer-choice",
    "sweep s1",
    "zz_reg",
    sets=((("sweeps", "s1", "space", "regularizer"), {"choices": ["none", "zz_reg"]}),),
)
add("unknown-name/train-variant", "train zz_variant", "zz_variant")
add("unknown-name/sample-variant", "sample zz_variant", "zz_variant")
add("unknown-name/evaluate-variant", "evaluate zz_variant", "zz_variant")
add("unknown-name/prepare-dataset", "prepare zz_dataset", "zz_dataset")
add("unknown-name/toy", "toy zz_toy", "zz_toy")
add("unknown-name/sweep-study", "sweep zz_study", "zz_study")
add("unknown-name/dashboard-study", "dashboard zz_study", "zz_study")


# ---------------------------------------------------------------- malformed YAML files
BASE_TEXT = dump(base_params())
add("malformed-yaml/syntax-error", "train vae", "params.yaml", text="seed: [1,\ntrain: {\n")
add(
    "malformed-yaml/invalid-utf8",
    "train vae",
    "params.yaml",
    text=BASE_TEXT.encode() + b"# \xff\xfe\x80 not utf-8\n",
)
add(
    "malformed-yaml/invalid-utf8-in-value",
    "train vae",
    "params.yaml",
    text=b"seed: 0\ndevice: \xc3\x28\n",
)
add("malformed-yaml/empty-file", "train vae", "vae", text="")
add("malformed-yaml/comments-only", "train vae", "vae", text="# nothing here\n")
add("malformed-yaml/top-level-list", "train vae", "params.yaml", text="- seed\n- 0\n")
add("malformed-yaml/top-level-scalar", "train vae", "params.yaml", text="42\n")
add("malformed-yaml/top-level-string", "train vae", "params.yaml", text="just some words\n")
add(
    "malformed-yaml/tab-indent",
    "train vae",
    "params.yaml",
    text=BASE_TEXT.replace("\n  steps:", "\n\tsteps:", 1),
)
add(
    "malformed-yaml/tab-after-colon",
    "train vae",
    "params.yaml",
    text=BASE_TEXT.replace("seed: 0", "seed:\t0", 1),
)
add("malformed-yaml/two-documents", "train vae", "params.yaml", text=BASE_TEXT + "---\nseed: 1\n")
add(
    "malformed-yaml/python-tag",
    "train vae",
    "params.yaml",
    text=BASE_TEXT + "extra: !!python/object/apply:os.system [echo hi]\n",
)


# ---------------------------------------------------------------- malformed -S overrides
for name, override, expect in [
    ("unterminated-list", "train.steps=[1,", "train.steps"),
    ("empty-key", "=1", "=1"),
    ("no-equals", "train.steps", "train.steps"),
    ("empty-path-part", "a..b=1", "a..b"),
    ("leading-dot", ".seed=1", ".seed"),
    ("unknown-train-key", "train.foo=1", "foo"),
    ("unknown-variant", "variants.nope.steps=1", "nope"),
    ("unknown-top-key", "zz_bogus=1", "zz_bogus"),
    ("python-tag", "seed=!!python/object/apply:os.system [echo]", "seed"),
    ("descend-into-number", "variants.vae.optimizer.lr.x=1", "optimizer.lr"),
    ("variant-as-list", "variants.vae=[1, 2]", "variants.vae"),
    ("string-for-dict", "train.optimizer=adam", "optimizer"),
    ("negative-steps", "train.steps=-3", "steps"),
    ("unknown-loss", "variants.dcgan_ns.loss=zz_loss", "zz_loss"),
]:
    command = "train dcgan_ns" if "dcgan" in override else "train vae"
    add(f"bad-override/{name}", command, expect, overrides=(override,))


# ---------------------------------------------------------------- params files of the wrong kind
def _params_is_directory(root: Path, cache: Path) -> None:
    (root / "params.yaml").unlink()
    (root / "params.yaml").mkdir()


def _params_unreadable(root: Path, cache: Path) -> None:
    (root / "params.yaml").chmod(0)


def _params_dangling_link(root: Path, cache: Path) -> None:
    (root / "params.yaml").unlink()
    (root / "params.yaml").symlink_to(root / "gone.yaml")


add("params-file/missing", "train vae", "nope.yaml", params="nope.yaml")
add("params-file/in-missing-dir", "train vae", "missing_dir", params="missing_dir/params.yaml")
add("params-file/directory", "train vae", "params.yaml", setup=_params_is_directory)
add("params-file/dangling-symlink", "train vae", "params.yaml", setup=_params_dangling_link)
add(
    "params-file/no-read-permission",
    "train vae",
    "params.yaml",
    setup=_params_unreadable,
    needs_non_root=True,
)


# ---------------------------------------------------------------- sweeps and the dashboard
add(
    "sweep/empty-space-per-arm",
    "sweep s1",
    "space",
    sets=(("sweeps.s1.space", {}), ("sweeps.s1.trials", DELETE), ("sweeps.s1.trials_per_arm", 2)),
)
add("sweep/empty-space-trials", "sweep s1", "space", sets=(("sweeps.s1.space", {}),))
add("sweep/empty-space-dashboard", "dashboard s1", "space", sets=(("sweeps.s1.space", {}),))
add("sweep/no-sweeps-section", "sweep s1", "s1", sets=(("sweeps", DELETE),))
add("sweep/dashboard-before-any-sweep", "dashboard s1", "s1")


# ---------------------------------------------------------------- --resume with a bad state.pt
def _state(root: Path) -> Path:
    return root / VARIANT_DIR / "state.pt"


def _write_state(data: bytes) -> Callable[[Path, Path], None]:
    def setup(root: Path, cache: Path) -> None:
        _state(root).parent.mkdir(parents=True, exist_ok=True)
        _state(root).write_bytes(data)

    return setup


def _real_state(cache: Path) -> dict:
    """The trained state, without the checksum genlab seals its torch files with."""
    state = torch.load(_state(cache), map_location="cpu", weights_only=True)
    state.pop(getattr(genlab.io, "CHECKSUM", "sha256"), None)
    return state


def _save_state(edit: Callable[[dict], Any], sealed: bool = False) -> Callable[[Path, Path], None]:
    """edit(the real state) as state.pt: by torch.save (a foreign or hand-edited file), or
    ``sealed`` by genlab's own writer (a file genlab wrote, but not for these settings or
    this code)."""

    def setup(root: Path, cache: Path) -> None:
        _state(root).parent.mkdir(parents=True, exist_ok=True)
        obj = edit(_real_state(cache))
        if sealed:
            genlab.io.torch_save(obj, _state(root))
        else:
            torch.save(obj, _state(root))

    return setup


def _truncated(root: Path, cache: Path) -> None:
    data = _state(cache).read_bytes()
    _write_state(data[: len(data) // 2])(root, cache)


def _state_directory(root: Path, cache: Path) -> None:
    _state(root).mkdir(parents=True)


def _state_unreadable(root: Path, cache: Path) -> None:
    _write_state(_state(cache).read_bytes())(root, cache)
    _state(root).chmod(0)


def _model_as_state(root: Path, cache: Path) -> None:
    _write_state((cache / VARIANT_DIR / "model.pt").read_bytes())(root, cache)


def _wrong_shape(state: dict) -> dict:
    net = next(iter(state["nets"].values()))
    key = next(k for k, v in net.items() if v.ndim > 1)
    net[key] = torch.zeros(3)
    return state


def _drop_net(state: dict) -> dict:
    del state["nets"][next(iter(state["nets"]))]
    return state


def _other_settings(state: dict) -> dict:
    state["config"]["latent_dim"] = 5
    return state


RANDOM_BYTES = bytes((i * 7919 + 13) % 256 for i in range(4096))
for name, setup in [
    ("empty", _write_state(b"")),
    ("truncated", _truncated),
    ("random-bytes", _write_state(RANDOM_BYTES)),
    ("zip-magic-then-garbage", _write_state(b"PK\x03\x04" + RANDOM_BYTES)),
    ("text-file", _write_state(b"step: 4\n")),
    ("a-directory", _state_directory),
    ("no-read-permission", _state_unreadable),
    ("plain-tensor", _save_state(lambda s: torch.zeros(3))),
    ("a-list", _save_state(lambda s: [s])),
    ("missing-keys", _save_state(lambda s: {"step": 1})),
    ("missing-a-network", _save_state(_drop_net)),
    ("wrong-shaped-weights", _save_state(_wrong_shape)),
    ("foreign-pickled-object", _save_state(lambda s: {**s, "x": argparse.Namespace(a=1)})),
    ("model.pt-copied-over", _model_as_state),
    ("other-settings", _save_state(_other_settings)),
    ("sealed-missing-keys", _save_state(lambda s: {"step": 1}, sealed=True)),
    ("sealed-missing-a-network", _save_state(_drop_net, sealed=True)),
    ("sealed-wrong-shaped-weights", _save_state(_wrong_shape, sealed=True)),
    ("sealed-other-settings", _save_state(_other_settings, sealed=True)),
    ("sealed-config-not-a-mapping", _save_state(lambda s: {**s, "config": "x"}, sealed=True)),
    ("sealed-step-not-a-number", _save_state(lambda s: {**s, "step": "four"}, sealed=True)),
    (
        "sealed-rng-missing",
        _save_state(lambda s: {k: v for k, v in s.items() if k != "rng"}, sealed=True),
    ),
]:
    add(
        f"resume/state-{name}",
        "train dcgan_ns --resume",
        "state.pt",
        setup=setup,
        needs_non_root=name == "no-read-permission",
    )
add("resume/state-missing", "train dcgan_ns --resume", "state.pt")


def _genuine_state_of_another_variant(root: Path, cache: Path) -> None:
    (root / "models/ring_gan").mkdir(parents=True)
    shutil.copyfile(_state(cache), root / "models/ring_gan/state.pt")


add(
    "resume/genuine-state-of-another-variant",
    "train ring_gan --resume",
    "state.pt",
    setup=_genuine_state_of_another_variant,
)
add(
    "resume/genuine-state-changed-settings",
    "train dcgan_ns --resume",
    "latent_dim",
    setup=lambda root, cache: _write_state(_state(cache).read_bytes())(root, cache),
    overrides=("variants.dcgan_ns.latent_dim=6",),
)
add(
    "resume/state-ahead-of-steps",  # the genuine state, at step 4
    "train dcgan_ns --resume",
    "steps",
    setup=lambda root, cache: _write_state(_state(cache).read_bytes())(root, cache),
    overrides=("train.steps=2",),
)

BY_ID = {c.id: c for c in CASES}
assert len(BY_ID) == len(CASES), "case ids must be unique"


# ---------------------------------------------------------------- the harness
class Accepted(Exception):
    """Raised in place of the real work: genlab accepted its input and went on."""


def _stop(what: str) -> Callable[..., Any]:
    def stop(*args: Any, **kwargs: Any) -> Any:
        raise Accepted(what)

    return stop


def guard(monkeypatch: pytest.MonkeyPatch) -> None:
    """Replace the work behind every command by ``Accepted``; validation still runs in full."""
    monkeypatch.setattr(loop, "training_steps", _stop("the training loop started"))
    monkeypatch.setattr(genlab.data, "prepare_dataset", _stop("prepare_dataset was called"))
    monkeypatch.setattr(workers, "_check_inputs", _stop("the sweep's settings were accepted"))
    monkeypatch.setattr(os, "execv", _stop("optuna-dashboard was launched"))
    registry = genlab.toys.TOYS
    get = registry.get

    def stopped_toy(name: str) -> Any:  # the toy's settings and name check run; its run stops
        return dataclasses.replace(get(name), run=_stop("the toy's settings were accepted"))

    monkeypatch.setattr(registry, "get", stopped_toy)


@contextlib.contextmanager
def memory_cap(extra: int = 8 << 30):
    """Cap the address space at its current size + ``extra`` so that a network of 1e15 units
    fails to allocate at once instead of exhausting the machine."""
    try:
        import resource

        status = Path("/proc/self/status").read_text()
        size = int(re.search(r"VmSize:\s+(\d+) kB", status).group(1)) * 1024
    except (ImportError, OSError, AttributeError):
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = size + extra if hard == resource.RLIM_INFINITY else min(size + extra, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def snapshot(root: Path) -> dict[str, Any]:
    """Every path under ``root`` (but __pycache__) -> its kind and content hash."""
    out: dict[str, Any] = {}
    for path in sorted(root.rglob("*")):
        if "__pycache__" in path.parts:
            continue
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            out[rel] = ("link", os.readlink(path))
        elif path.is_dir():
            out[rel] = ("dir",)
        else:
            try:
                out[rel] = ("file", hashlib.sha256(path.read_bytes()).hexdigest())
            except OSError:
                st = path.stat()
                out[rel] = ("unreadable file", st.st_size, st.st_mtime_ns, st.st_mode)
    return out


def changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    added = sorted(set(after) - set(before))
    removed = sorted(set(before) - set(after))
    changed = sorted(k for k in set(before) & set(after) if before[k] != after[k])
    return [
        f"{what}: {', '.join(paths[:6])}{' ...' if len(paths) > 6 else ''}"
        for what, paths in (("added", added), ("removed", removed), ("changed", changed))
        if paths
    ]


def message_problems(code: Any, out: str, err: str, expect: str) -> list[str]:
    """Why the outcome is not 'exit 2 with one paragraph naming ``expect``' (empty: it is)."""
    problems = []
    if code != 2:
        problems.append(f"exit code {code!r}, expected 2")
    text = err.strip("\n")
    first = text.splitlines()[0] if text else ""
    if not text:
        problems.append("nothing on stderr")
    elif not first.startswith("genlab: error:"):
        problems.append(f"stderr does not start with 'genlab: error:': {first[:200]!r}")
    if any(not line.strip() for line in text.splitlines()):
        problems.append("stderr is more than one paragraph (a blank line inside)")
    if "Traceback" in out + err:
        problems.append("a traceback reached the terminal")
    if "weights_only=False" in out + err:
        problems.append("the message suggests weights_only=False")
    if text and expect not in err:
        problems.append(f"the message does not mention {expect!r}: {first[:200]!r}")
    return problems


@pytest.fixture(scope="session")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny project with digits and ring8 prepared and dcgan_ns trained (its state.pt and
    model.pt), copied into every case's project."""
    from genlab.data import prepare_dataset

    root = tmp_path_factory.mktemp("fuzz-cache")
    (root / "params.yaml").write_text(dump(base_params()))
    params = load_params(root / "params.yaml")
    for name in ("digits", "ring8"):
        prepare_dataset(name, params.dataset_cfg(name), root, params.seed)
    loop.train_variant(params, "dcgan_ns", root, progress=False)
    return root


def make_project(case: Case, cache: Path, tmp_path: Path) -> Path:
    if case.needs_non_root and hasattr(os, "geteuid") and os.geteuid() == 0:
        pytest.skip("root reads files without read permission")
    root = tmp_path / "project"
    shutil.copytree(cache / "data", root / "data")
    if case.text is not None:
        data = case.text.encode() if isinstance(case.text, str) else case.text
        (root / "params.yaml").write_bytes(data)
    else:
        raw = base_params()
        for path, value in case.sets:
            set_path(raw, path, value)
        (root / "params.yaml").write_text(dump(raw))
    if case.setup is not None:
        case.setup(root, cache)
    return root


# ---------------------------------------------------------------- the tests
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_exits_2_with_one_paragraph(case, cache, tmp_path, monkeypatch, capfd):
    root = make_project(case, cache, tmp_path)
    before = snapshot(root)
    guard(monkeypatch)
    monkeypatch.chdir(root)
    capfd.readouterr()
    code: Any = None
    raised = None
    try:
        with memory_cap():
            code = main(case.argv_for(root))
    except Accepted as e:
        raised = f"bad input accepted: {e}"
    except SystemExit as e:  # argparse
        code = e.code
    except Exception as e:  # noqa: BLE001 - an uncaught exception is the finding
        first = (str(e).strip().splitlines() or [""])[0]
        raised = f"uncaught {type(e).__module__}.{type(e).__name__}: {first[:300]}"
    out, err = capfd.readouterr()
    problems = [raised] if raised else message_problems(code, out, err, case.expect)
    if raised and "weights_only=False" in out + err:
        problems.append("the message suggests weights_only=False")
    problems += [f"the project changed ({c})" for c in changes(before, snapshot(root))]
    assert not problems, f"{case.id}: " + "; ".join(problems)


@pytest.mark.parametrize(
    "argv",
    [
        "train vae",
        "train dcgan_ns",
        "train ring_gan",
        "prepare",
        "toy dirac",
        "toy fgan-gaussian",
        "sweep s1",
    ],
)
def test_the_unchanged_tiny_project_is_accepted(argv, cache, tmp_path, monkeypatch):
    """Control: without a fault every command gets past validation, so a case above fails
    because of its fault alone (``dashboard s1`` is refused: no sweep has run)."""
    root = make_project(Case("control/base", argv, ""), cache, tmp_path)
    guard(monkeypatch)
    monkeypatch.chdir(root)
    with pytest.raises(Accepted):
        main(["--params", str(root / "params.yaml"), *argv.split()])


SUBPROCESS_CASES = [
    ("unknown-key/variants.vae.zz_bogus", "module"),
    ("resume/state-text-file", "module"),
    ("malformed-yaml/invalid-utf8", "module"),
    ("bad-override/unterminated-list", "module"),
    ("params-file/directory", "module"),
    ("resume/state-random-bytes", "module"),
    ("out-of-range/seed=2**70", "module"),
    ("unknown-name/toy", "entry-point"),
]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("case_id", "launcher"), SUBPROCESS_CASES, ids=[f"{c}[{how}]" for c, how in SUBPROCESS_CASES]
)
def test_no_traceback_reaches_the_terminal(case_id, launcher, cache, tmp_path):
    case = BY_ID[case_id]
    root = make_project(case, cache, tmp_path)
    before = snapshot(root)
    if launcher == "module":
        exe = [sys.executable, "-m", "genlab.cli"]
    else:
        exe = [str(Path(sys.executable).with_name("genlab"))]
    env = {
        **os.environ,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DVC_NO_ANALYTICS": "1",
        "OMP_NUM_THREADS": "1",
    }
    proc = subprocess.run(
        [*exe, *case.argv_for(root)], cwd=root, env=env, capture_output=True, timeout=300
    )
    out = proc.stdout.decode(errors="replace")
    err = proc.stderr.decode(errors="replace")
    problems = message_problems(proc.returncode, out, err, case.expect)
    problems += [f"the project changed ({c})" for c in changes(before, snapshot(root))]
    assert not problems, f"{case.id}: " + "; ".join(problems) + f"\nstderr:\n{err[-3000:]}"
