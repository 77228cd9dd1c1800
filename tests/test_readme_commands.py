"""The README's experiment commands work as written.

Every ``dvc exp run`` and ``dvc exp show`` line of README.md's code blocks is parsed from the
README and run unchanged in a tiny copy of the project (the variants the commands name, on tiny
sizes, with a committed baseline). Each ``-S`` override must land in its experiment's params (and
nothing else may differ from the baseline), survive validation with the value it sets, and rerun
only its variant's stages and the report; each ``exp show`` form must print the experiments, and
a narrowed form must really be narrow (no dependency-hash columns).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from genlab.config import validate_params
from tests.conftest import REPO, tiny_params_dict, write_params

README = REPO / "README.md"
HASH = re.compile(r"\b[0-9a-f]{32}\b")  # a dependency's md5 in `dvc exp show`
STAGES_OF_A_VARIANT = ("train", "sample", "evaluate")


def readme_commands(prefix: str) -> list[list[str]]:
    """argv of every line of README.md's fenced code blocks that starts with ``prefix``."""
    blocks = re.findall(r"^```[^\n]*\n(.*?)^```", README.read_text(), flags=re.M | re.S)
    lines = [line.strip() for block in blocks for line in block.splitlines()]
    return [shlex.split(line, comments=True) for line in lines if line.startswith(prefix)]


def overrides(argv: list[str]) -> list[tuple[str, str, object]]:
    """(as written, dotted key, value) of each ``-S``/``--set-param`` of a ``dvc exp run``."""
    sets = [v for flag, v in zip(argv[:-1], argv[1:], strict=True) if flag in ("-S", "--set-param")]
    assert sets, f"{shlex.join(argv)}: no -S KEY=VALUE to check"
    out = []
    for written in sets:
        key, _, value = written.partition("=")
        out.append((written, key.lstrip("+~"), yaml.safe_load(value)))
    return out


def lookup(tree: dict, key: str) -> object:
    for part in key.split("."):
        tree = tree[part]
    return tree


def effective(raw: dict, key: str) -> object:
    """The value ``key`` has once params are validated (a variant merged over ``train``)."""
    parts = key.split(".")
    if parts[0] != "variants":
        return lookup(raw, key)
    value = validate_params(raw).variant(parts[1])
    for part in parts[2:]:
        value = getattr(value, part)
    return list(value) if isinstance(value, tuple) else value


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    flat = {}
    for k, v in tree.items():
        if isinstance(v, dict) and v:
            flat |= flatten(v, f"{prefix}{k}.")
        else:
            flat[f"{prefix}{k}"] = v
    return flat


def changed_keys(before: dict, after: dict) -> set[str]:
    a, b = flatten(before), flatten(after)
    return {k for k in a.keys() | b.keys() if a.get(k, "<absent>") != b.get(k, "<absent>")}


def test_readme_overrides_apply_to_the_real_params(tmp_path: Path) -> None:
    """Fast check on the real params.yaml, with DVC's own -S code: each override applies (a plain
    KEY=VALUE on a key the variant only inherits stops with "Key ... is not in struct") and the
    validated variant has the value."""
    from dvc.utils.hydra import apply_overrides

    runs = readme_commands("dvc exp run")
    assert runs, "README.md shows no `dvc exp run` command"
    for argv in runs:
        path = tmp_path / "params.yaml"
        shutil.copy(REPO / "params.yaml", path)
        sets = overrides(argv)
        apply_overrides(path, [written for written, _, _ in sets])
        raw = yaml.safe_load(path.read_text())
        assert changed_keys(yaml.safe_load((REPO / "params.yaml").read_text()), raw) == {
            key for _, key, _ in sets
        }
        for written, key, value in sets:
            assert effective(raw, key) == value, written


# ------------------------------------------------------------------------ the tiny project


def sh(root: Path, argv: list[str]) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("COLUMNS", None)  # `dvc exp show` tables as wide as they are, whatever the terminal
    out = subprocess.run(argv, cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, f"`{shlex.join(argv)}` failed:\n{out.stdout}{out.stderr}"
    return out.stdout + out.stderr


def _lookup(params: dict, ref: str) -> list:
    """The params list a ``${a.b}`` reference names."""
    value = params
    for part in re.fullmatch(r"\$\{([\w.]+)\}", ref).group(1).split("."):
        value = value[part]
    return value or []


def stage_commands(root: Path) -> list[list[str]]:
    """genlab argv of every stage of dvc.yaml, in file order (a stage's inputs come first)."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((root / "params.yaml").read_text())
    argvs = []
    for stage in stages.values():
        if "foreach" in stage:
            section = re.fullmatch(r"\$\{(\w+)\}", stage["foreach"]).group(1)
            cmds = [stage["do"]["cmd"].replace("${key}", k) for k in params[section] or {}]
        elif "matrix" in stage:  # ${a.b} lists from params, one command per combination
            axes = {k: _lookup(params, v) for k, v in stage["matrix"].items()}
            cmds = []
            for combo in itertools.product(*axes.values()):
                cmd = stage["cmd"]
                for k, v in zip(axes, combo, strict=True):
                    cmd = cmd.replace("${item." + k + "}", str(v))
                cmds.append(cmd)
        else:
            cmds = [stage["cmd"]]
        for cmd in (part for c in cmds for part in c.split("&&")):
            argv = shlex.split(cmd)
            assert argv[0] == "genlab" and "${" not in cmd, cmd
            argvs.append(["--params", str(root / "params.yaml"), *argv[1:]])
    return argvs


# every stage in one process: one torch import instead of one per stage; not in pytest's own
# process, whose torch settings (threads, determinism) other tests rely on
RUN_STAGES = """
import json, sys
from genlab.cli import main
for argv in json.loads(sys.argv[1]):
    if main(argv):
        sys.exit(f"genlab {' '.join(argv)} failed")
"""


def tiny_project(root: Path, variants: set[str]) -> Path:
    """A git + DVC repo with the real dvc.yaml, src/ and .gitignore, tiny params holding only
    ``variants`` (no toys, no sweeps), and a committed baseline whose outputs are in the cache."""
    raw = tiny_params_dict()
    missing = variants - raw["variants"].keys()
    assert not missing, f"README names variants {missing} that tiny_params_dict() lacks"
    raw.setdefault("threads", "auto")
    raw["variants"] = {v: raw["variants"][v] for v in sorted(variants)}
    raw["data"] = {d: raw["data"][d] for d in {v["dataset"] for v in raw["variants"].values()}}
    raw["toys"], raw["sweeps"] = {}, {}
    root.mkdir()
    write_params(root, raw)
    for name in ("dvc.yaml", ".gitignore"):
        shutil.copy(REPO / name, root)
    shutil.copytree(REPO / "src", root / "src",
                    ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))  # fmt: skip
    for folder in ("toys", "sweeps"):  # the report reads them; here no stage writes them
        (root / "reports" / folder).mkdir(parents=True)
        (root / "reports" / folder / ".gitkeep").touch()
    sh(root, ["git", "init", "-q"])
    sh(root, ["git", "config", "user.name", "genlab tests"])
    sh(root, ["git", "config", "user.email", "tests@genlab.invalid"])
    sh(root, ["dvc", "init", "-q"])
    shutil.copytree(REPO / ".dvc" / "plots", root / ".dvc" / "plots")
    sh(root, [sys.executable, "-c", RUN_STAGES, json.dumps(stage_commands(root))])
    sh(root, ["dvc", "commit", "-f", "-q"])  # what `dvc repro` would record: lock, cache
    sh(root, ["git", "add", "-A"])
    sh(root, ["git", "add", "-f", "reports/toys/.gitkeep", "reports/sweeps/.gitkeep"])
    sh(root, ["git", "commit", "-q", "-m", "baseline"])
    return root


def experiment_params(root: Path, name: str) -> dict:
    """params.yaml as experiment ``name`` committed it (under refs/exps/)."""
    refs = sh(root, ["git", "for-each-ref", "--format=%(refname)", "refs/exps"]).split()
    ref = [r for r in refs if r.endswith(f"/{name}")]
    assert len(ref) == 1, (name, refs)
    return yaml.safe_load(sh(root, ["git", "show", f"{ref[0]}:params.yaml"]))


@pytest.mark.slow
def test_readme_experiment_commands_run_as_written(tmp_path: Path) -> None:
    runs, shows = readme_commands("dvc exp run"), readme_commands("dvc exp show")
    assert runs and shows, "README.md shows no `dvc exp run` or no `dvc exp show` command"
    named = {key.split(".")[1] for argv in runs for _, key, _ in overrides(argv)
             if key.startswith("variants.")}  # fmt: skip
    root = tiny_project(tmp_path / "project", named)
    baseline = yaml.safe_load((root / "params.yaml").read_text())

    experiments = []
    for argv in runs:
        log = sh(root, argv)
        found = re.search(r"Ran experiment\(s\): (\S+)", log)
        assert found, log
        experiments.append(found.group(1))
        sets = overrides(argv)
        params = experiment_params(root, found.group(1))
        # the override and nothing else (an experiment starts from the workspace as it is)
        assert changed_keys(baseline, params) == {key for _, key, _ in sets}, shlex.join(argv)
        for written, key, value in sets:
            assert lookup(params, key) == value and effective(params, key) == value, written
        if all(key.startswith("variants.") for _, key, _ in sets):
            touched = {key.split(".")[1] for _, key, _ in sets}
            want = {f"{s}@{v}" for s in STAGES_OF_A_VARIANT for v in touched} | {"report"}
            assert set(re.findall(r"Running stage '([^']+)'", log)) == want, log

    for argv in shows:
        shown = sh(root, argv)
        assert all(name in shown for name in experiments), shown
        if argv == ["dvc", "exp", "show"]:
            continue
        # a narrowed form: a few columns, none of them a dependency's hash
        if "--md" in argv:
            assert shown.lstrip().startswith("| Experiment"), shown
            header = [c.strip() for c in shown.strip().splitlines()[0].strip("|").split("|")]
        else:
            header = next(csv.reader(io.StringIO(sh(root, [*argv, "--csv"]))))
        assert "Experiment" in header and len(header) <= 20, header
        assert not HASH.search(shown), f"dependency hashes in {header}"
        if "--only-changed" in argv:
            for argv_run in runs:
                for _, key, _ in overrides(argv_run):
                    assert any(col.endswith(key) for col in header), (key, header)
