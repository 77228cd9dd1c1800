"""The import graph of src/genlab is layered and acyclic.

Every ``.py`` file under src/genlab is parsed with ``ast`` (nothing is imported), and every
import of a genlab module is an edge: ``import genlab.x``, ``from genlab.x import y``,
``from genlab import x``, relative imports, and imports inside functions (a lazy import is a
dependency all the same). The checks:

1. every module belongs to a layer of ``LAYERS`` (by its top-level name under genlab);
2. a module imports only modules of its own layer or of lower layers;
3. every imported genlab module exists (a stale import would hide an edge);
4. no import cycle at all, even inside one layer. A package's ``__init__`` importing its own
   submodules is an ordinary edge, and so is a submodule importing its package
   (``from genlab.data import X`` inside genlab/data/faces.py is an edge to genlab.data):
   together they make a cycle.
"""

from __future__ import annotations

import ast
from collections import defaultdict, deque
from collections.abc import Iterable
from functools import cache
from pathlib import Path

import pytest

# A module's layer is that of its top-level name under genlab (genlab.families.gan.trainer ->
# "families"); "genlab" is the package's own __init__. A module may import its own layer and the
# layers below it, never a layer above. Read from the bottom up:
#   0  leaves: errors, registries, io and output paths, image-shape arithmetic, the options base;
#      no genlab imports
#      beyond layer 0 (the package __init__ is here: it must stay light)
#   1  components: datasets, networks, objectives, metrics, tracking, runtime (device, RNG,
#      optimizers, precision), drawing
#   2  families: a family (gan, vae, vqvae) wires components into a trainable model
#   3  config: assembles the params schema from the components and families
#   4  train: the one driver, running any family from its config
#   5  stages built on a trained model or on the driver: sample, evaluate, toys, sweeps
#   6  report: reads what the stages wrote
#   7  entry points: the command line
LAYERS: dict[int, set[str]] = {
    0: {"genlab", "errors", "registry", "io", "paths", "shapes", "options"},
    1: {"data", "nets", "objectives", "metrics", "tracking", "runtime", "drawing"},
    2: {"families"},
    3: {"config"},
    4: {"train"},
    5: {"sample", "evaluate", "toys", "sweeps", "profiles"},
    6: {"report", "report_stats"},
    7: {"cli", "__main__"},
}

PACKAGE = "genlab"
SRC = Path(__file__).resolve().parents[1] / "src"

TYPE_ONLY = " (TYPE_CHECKING)"  # marks the line of an import made only for type checkers
Edges = dict[str, dict[str, list[str]]]  # importer -> imported -> lines ("12", "30 (TYPE_...)")


# --------------------------------------------------------------------------- the import graph


def module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def discover(src: Path, package: str) -> dict[str, Path]:
    """Every module of the package, by dotted name."""
    return {module_name(p, src): p for p in sorted((src / package).rglob("*.py"))}


def _ours(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def imports_of(
    module: str, path: Path, modules: dict[str, Path], package: str
) -> dict[str, list[str]]:
    """The package modules that ``module`` imports, anywhere in the file, with line numbers.

    An import under ``if TYPE_CHECKING:`` counts too (it is a dependency of the code, if not of
    the running program); its line carries the TYPE_ONLY mark. An imported module that does not
    exist stays in the result under its own name (it has no file, so no edges of its own);
    ``test_imported_modules_exist`` reports it."""
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    type_only = {
        id(sub)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and _is_type_checking(node.test)
        for stmt in node.body
        for sub in ast.walk(stmt)
    }
    found: dict[str, set[int]] = defaultdict(set)
    marked: set[int] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names if _ours(alias.name, package)]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: anchored at this module's package
                anchor = module.split(".")
                if not is_package:
                    anchor.pop()
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if not _ours(base, package):
                continue
            for alias in node.names:  # `from genlab import tracking`: a submodule or a name
                sub = f"{base}.{alias.name}"
                targets.append(sub if sub in modules else base)
        for target in targets:
            if target != module:
                found[target].add(node.lineno)
                if id(node) in type_only:
                    marked.add(node.lineno)
    return {
        target: [f"{n}{TYPE_ONLY if n in marked else ''}" for n in sorted(lines)]
        for target, lines in found.items()
    }


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def import_graph(src: Path, package: str) -> Edges:
    modules = discover(src, package)
    return {m: imports_of(m, p, modules, package) for m, p in modules.items()}


# --------------------------------------------------------------------------------- the checks


def layer_name(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def layer_of(module: str, layers: dict[int, set[str]]) -> int | None:
    name = layer_name(module)
    return next((n for n, names in layers.items() if name in names), None)


def _where(path_of: dict[str, Path], src: Path, module: str, lines: Iterable[str]) -> str:
    return f"{path_of[module].relative_to(src).as_posix()}:{','.join(lines)}"


def unlayered(graph: Edges, layers: dict[int, set[str]]) -> list[str]:
    missing: dict[str, list[str]] = defaultdict(list)
    for module in graph:
        if layer_of(module, layers) is None:
            missing[layer_name(module)].append(module)
    return [f"{name!r} ({', '.join(sorted(mods))})" for name, mods in sorted(missing.items())]


def missing_modules(graph: Edges, src: Path, package: str = PACKAGE) -> list[str]:
    path_of = discover(src, package)
    return [
        f"{module} imports {target}, which does not exist  [{_where(path_of, src, module, lines)}]"
        for module, targets in sorted(graph.items())
        for target, lines in sorted(targets.items())
        if target not in graph
    ]


def upward_imports(
    graph: Edges, layers: dict[int, set[str]], src: Path, package: str = PACKAGE
) -> list[str]:
    path_of = discover(src, package)
    bad = []
    for module, targets in sorted(graph.items()):
        mine = layer_of(module, layers)
        for target, lines in sorted(targets.items()):
            theirs = layer_of(target, layers)
            if mine is not None and theirs is not None and theirs > mine:
                bad.append(
                    f"{module} (layer {mine}) imports {target} (layer {theirs})"
                    f"  [{_where(path_of, src, module, lines)}]"
                )
    return bad


def strongly_connected(graph: Edges) -> list[list[str]]:
    """Tarjan's algorithm, iterative; components of two or more modules, sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, {}))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, {})))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return sorted(components)


def _shortest_path(graph: Edges, start: str, goal: str, within: set[str]) -> list[str]:
    previous: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == goal:
            break
        for nxt in sorted(graph.get(node, {})):
            if nxt in within and nxt not in previous:
                previous[nxt] = node
                queue.append(nxt)
    path: list[str] = []
    node: str | None = goal
    while node is not None:
        path.append(node)
        node = previous[node]
    return path[::-1]


def import_cycles(graph: Edges) -> list[str]:
    """One line per cycle: for every strongly connected component, shortest cycles until each
    import edge inside the component lies on a reported cycle (so every edge to cut is shown)."""
    lines = []
    for component in strongly_connected(graph):
        members = set(component)
        uncovered = {(a, b) for a in component for b in graph[a] if b in members}
        cycles: list[list[str]] = []
        for a, b in sorted(uncovered):
            if (a, b) not in uncovered:
                continue
            cycle = [a, *_shortest_path(graph, b, a, members)]  # a -> b -> ... -> a
            uncovered -= set(zip(cycle, cycle[1:], strict=False))
            cycles.append(cycle)
        lines.append(f"{len(component)} modules: {', '.join(component)}")
        lines += ["    " + _arrows(graph, cycle) for cycle in cycles]
    return lines


def _arrows(graph: Edges, cycle: list[str]) -> str:
    """a -> b -> a, marking an edge made only of TYPE_CHECKING imports."""
    text = cycle[0]
    for a, b in zip(cycle, cycle[1:], strict=False):
        type_only = all(line.endswith(TYPE_ONLY) for line in graph[a][b])
        text += f" -> {b}{TYPE_ONLY if type_only else ''}"
    return text


# ---------------------------------------------------------------------------------- the tests


@cache
def genlab_graph() -> Edges:
    return import_graph(SRC, PACKAGE)


def test_every_module_has_a_layer() -> None:
    missing = unlayered(genlab_graph(), LAYERS)
    if missing:
        pytest.fail(
            "top-level names not in any layer; add them to LAYERS in tests/test_layers.py:\n  "
            + "\n  ".join(missing),
            pytrace=False,
        )


def test_imported_modules_exist() -> None:
    missing = missing_modules(genlab_graph(), SRC)
    if missing:
        pytest.fail(
            "imports of genlab modules that do not exist:\n  " + "\n  ".join(missing), pytrace=False
        )


def test_imports_go_down_or_sideways_only() -> None:
    bad = upward_imports(genlab_graph(), LAYERS, SRC)
    if bad:
        pytest.fail(
            f"{len(bad)} imports of a higher layer (see LAYERS in tests/test_layers.py):\n  "
            + "\n  ".join(bad),
            pytrace=False,
        )


def test_no_import_cycles() -> None:
    cycles = import_cycles(genlab_graph())
    if cycles:
        pytest.fail(
            "import cycles (every edge on a cycle is shown):\n  " + "\n  ".join(cycles),
            pytrace=False,
        )


def test_checker_catches_an_upward_import_and_a_cycle(tmp_path: Path) -> None:
    pkg = tmp_path / "genlab"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("from genlab import errors\n")  # __init__ -> its submodule
    (pkg / "errors.py").write_text("def f():\n    from genlab import data\n")  # lazy, upward
    (pkg / "data.py").write_text(  # relative; -> __init__ for type checkers only; a stale import
        "from typing import TYPE_CHECKING\nfrom . import errors\n"
        "if TYPE_CHECKING:\n    import genlab\nfrom .gone import x\n"
    )

    graph = import_graph(tmp_path, "genlab")

    assert graph == {
        "genlab": {"genlab.errors": ["1"]},
        "genlab.data": {
            "genlab.errors": ["2"],
            "genlab": ["4 (TYPE_CHECKING)"],
            "genlab.gone": ["5"],
        },
        "genlab.errors": {"genlab.data": ["2"]},
    }
    assert missing_modules(graph, tmp_path) == [
        "genlab.data imports genlab.gone, which does not exist  [genlab/data.py:5]"
    ]
    layers = {0: {"genlab", "errors"}, 1: {"data"}}
    assert unlayered(graph, layers) == []
    assert unlayered(graph, {0: {"genlab"}, 1: {"data"}}) == ["'errors' (genlab.errors)"]
    assert upward_imports(graph, layers, tmp_path) == [
        "genlab.errors (layer 0) imports genlab.data (layer 1)  [genlab/errors.py:2]"
    ]
    assert strongly_connected(graph) == [["genlab", "genlab.data", "genlab.errors"]]
    assert import_cycles(graph) == [
        "3 modules: genlab, genlab.data, genlab.errors",
        "    genlab -> genlab.errors -> genlab.data -> genlab (TYPE_CHECKING)",
        "    genlab.data -> genlab.errors -> genlab.data",
    ]
