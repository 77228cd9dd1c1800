"""dvc.yaml's stage dependencies are complete: every genlab module a stage's code imports (directly
or through other genlab modules, lazy imports included) lies under one of the stage's ``deps``, so
a change of the code that computes an output re-runs the stage (no stale metrics)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.test_layers import genlab_graph

ROOT = Path(__file__).resolve().parents[1]

# stage -> the modules whose code runs it (besides the command line, which only parses params)
STAGE_ROOTS = {
    "prepare": ["genlab.data"],
    "fit-evaluator": ["genlab.evaluate"],
    "train": ["genlab.train"],
    "sample": ["genlab.sample"],
    "evaluate": ["genlab.evaluate"],
    "toy": ["genlab.toys"],
    "sweep": ["genlab.sweeps"],
    "replicate": ["genlab.train", "genlab.sample", "genlab.evaluate"],
    "report": ["genlab.report"],
}


def closure(graph: dict, roots: list[str]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += list(graph.get(module, {}))
    return seen


def source_of(module: str) -> Path:
    path = ROOT / "src" / Path(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def stage_deps(stage: dict) -> list[Path]:
    spec = stage.get("do", stage)
    return [ROOT / d for d in spec.get("deps", []) if isinstance(d, str) and d.startswith("src/")]


@pytest.mark.parametrize("name", sorted(STAGE_ROOTS))
def test_stage_depends_on_every_module_it_runs(name: str) -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    deps = stage_deps(stages[name])
    missing = sorted(
        module
        for module in closure(genlab_graph(), STAGE_ROOTS[name])
        if not any(source_of(module) == d or d in source_of(module).parents for d in deps)
    )
    assert not missing, f"dvc.yaml stage {name!r} lacks deps for: {', '.join(missing)}"


def test_every_stage_is_checked() -> None:
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    assert set(stages) == set(STAGE_ROOTS)


def test_a_missing_dep_is_found() -> None:
    """The check itself can fail: train without nets/ misses the architectures."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    deps = [d for d in stage_deps(stages["train"]) if d.name != "nets"]
    covered = [
        m
        for m in closure(genlab_graph(), ["genlab.train"])
        if any(source_of(m) == d or d in source_of(m).parents for d in deps)
    ]
    assert "genlab.nets.dcgan" not in covered
