"""Params profiles: ``genlab profile NAME`` adds a partial params file's entries to params.yaml.

A profile (``profiles/<NAME>.yaml``) holds new entries for the named collections of params.yaml
only: datasets (``data``), their evaluator settings (``evaluator.datasets``) and ``variants``.
Applying it copies each collection's entries, comments included, as one block between marker
comments at the end of that collection in params.yaml; nothing else in the file changes (no
re-formatting, the user's comments stay). dvc.yaml's ``foreach: ${data}`` / ``${variants}`` then
make stages of them, so ``dvc repro`` or ``dvc exp run`` trains them. The merged params are
validated before anything is written; applying twice changes nothing; ``--off`` removes the
blocks, restoring the file byte for byte.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from genlab.config import parse_yaml, read_params_file, validate_params
from genlab.errors import ConfigError
from genlab.io import write_text

# the params collections a profile may add entries to, as key paths
SECTIONS: tuple[tuple[str, ...], ...] = (("data",), ("evaluator", "datasets"), ("variants",))
INDENT = 2  # of the section headers a profile adds where params.yaml lacks them


def start_marker(name: str) -> str:
    return f"# >>> profile {name} (`genlab profile {name} --off` removes this block) >>>"


def end_marker(name: str) -> str:
    return f"# <<< profile {name} <<<"


def profile_file(params_path: Path, name: str) -> Path:
    """``NAME`` -> ``<project>/profiles/NAME.yaml``; a path (with / or .yaml) is taken as is."""
    if "/" in name or name.endswith((".yaml", ".yml")):
        return Path(name)
    return Path(params_path).resolve().parent / "profiles" / f"{name}.yaml"


def apply_profile(params_path: Path, name: str, off: bool = False) -> str:
    """Add (``off``: remove) profile ``name``'s entries to the params file; returns what was
    done in one line. ConfigError, with nothing written, for a missing or malformed profile, an
    entry params.yaml already has, or merged params that do not validate."""
    params_path = Path(params_path)
    read_params_file(params_path)  # readable, YAML, a mapping: else a ConfigError naming it
    text = params_path.read_text(encoding="utf-8")
    path = profile_file(params_path, name)
    label = path.stem
    base = strip_blocks(text, label, params_path)
    if off:
        new, done = base, f"removed profile {label!r} from {params_path}"
    else:
        entries = profile_entries(path)
        _check_new(parse_yaml(base) or {}, entries, path, params_path)
        new = insert_blocks(base, entries, label, params_path)
        done = f"added profile {label!r} ({_summary(entries)}) to {params_path}"
    validate_params(parse_yaml(new) or {}, source=f"{params_path} with profile {label!r}")
    if new == text:
        return f"{params_path} unchanged (profile {label!r} was already {'off' if off else 'on'})"
    write_text(params_path, new)
    return done


# --------------------------------------------------------------------------- the profile file


def profile_entries(path: Path) -> dict[tuple[str, ...], tuple[list[str], dict[str, Any]]]:
    """section path -> (its entries' lines, de-indented, comments included; the entries parsed)
    for each section the profile fills."""
    available = sorted(p.stem for p in path.parent.glob("*.yaml")) if path.parent.is_dir() else []
    if not path.is_file():
        raise ConfigError(
            f"profile {path.stem!r}: {path} does not exist; profiles in {path.parent}/: "
            f"{', '.join(available) or '(none)'}"
        )
    text = path.read_text(encoding="utf-8")
    raw = read_params_file(path)  # a YAML mapping, duplicate keys rejected
    allowed = ", ".join(".".join(s) for s in SECTIONS)
    stray = _paths_outside(raw, SECTIONS)
    if stray:
        raise ConfigError(
            f"profile {str(path)!r} sets {', '.join(stray)}; a profile may add entries to "
            f"{allowed} only (change shared settings in params.yaml itself)"
        )
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    lines = text.splitlines()
    out = {}
    for section in SECTIONS:
        found = _find(root, section)
        if found is None:
            continue
        key, node = found
        where = f"profile {str(path)!r}: {'.'.join(section)}"
        if not isinstance(node, yaml.MappingNode) or not node.value:
            raise ConfigError(f"{where} must be a mapping of named entries")
        if node.flow_style:
            raise ConfigError(f"{where} is written in flow style ({{...}}); write it as a block")
        column = node.value[0][0].start_mark.column
        body = lines[key.start_mark.line + 1 : _last_line(node) + 1]
        out[section] = ([_dedent(line, column) for line in body], _get(raw, section))
    if not out:
        raise ConfigError(f"profile {str(path)!r} adds nothing; give entries under {allowed}")
    return out


def _paths_outside(raw: dict, sections: tuple[tuple[str, ...], ...], at=()) -> list[str]:
    """Key paths of ``raw`` that are neither a section nor on the way to one."""
    stray = []
    for key, value in raw.items():
        path = (*at, key)
        if path in sections:
            continue
        if any(s[: len(path)] == path for s in sections) and isinstance(value, dict):
            stray += _paths_outside(value, sections, path)
        else:
            stray.append(".".join(map(str, path)))
    return stray


def _check_new(params: dict, entries: dict, path: Path, params_path: Path) -> None:
    """Every entry the profile adds is new to params.yaml (a profile never changes what a user
    wrote: two definitions of one name would leave the reader guessing)."""
    clash = [
        ".".join((*section, name))
        for section, (_, values) in entries.items()
        for name in values
        if name in (_get(params, section) or {})
    ]
    if clash:
        raise ConfigError(
            f"{params_path} already has {', '.join(clash)}, which profile {str(path)!r} adds; "
            "remove them from one of the two files"
        )


def _summary(entries: dict) -> str:
    return "; ".join(f"{'.'.join(s)}: {', '.join(v)}" for s, (_, v) in entries.items())


# --------------------------------------------------------------------------- params.yaml text


def strip_blocks(text: str, name: str, params_path: Path) -> str:
    """``text`` without profile ``name``'s marked blocks."""
    out, inside = [], False
    for line in text.splitlines(keepends=True):
        mark = line.strip()
        if mark == start_marker(name):
            inside = True
        elif mark == end_marker(name) and inside:
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ConfigError(
            f"{params_path}: a block of profile {name!r} opens ({start_marker(name)}) but never "
            f"closes ({end_marker(name)}); repair or delete it by hand"
        )
    return "".join(out)


def insert_blocks(text: str, entries: dict, name: str, params_path: Path) -> str:
    """Each section's entries, between markers, after the last line of that section in ``text``;
    sections params.yaml lacks are added with their headers under the nearest existing parent."""
    if text and not text.endswith("\n"):
        text += "\n"
    lines = text.splitlines(keepends=True)
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    inserts = []  # (after line index, block lines)
    for section, (body, _) in entries.items():
        node, depth = root, 0
        while depth < len(section):  # the deepest existing mapping on the section's path
            found = _find(node, section[depth : depth + 1])
            if found is None:
                break
            node, depth = found[1], depth + 1
        where = ".".join(section[:depth]) or "the top level"
        if node is None:  # an empty params file
            after, column = len(lines) - 1, 0
        elif not isinstance(node, yaml.MappingNode) or (node.flow_style and node.value):
            raise ConfigError(
                f"{params_path}: {where} is not a block mapping, so profile {name!r} cannot add "
                f"to it; write it as one entry per line"
            )
        elif node.flow_style or not node.value:  # `datasets: {}`: cannot append to that line
            raise ConfigError(
                f"{params_path}: {where} is an empty mapping written as {{}}; delete it, and "
                f"profile {name!r} adds it"
            )
        else:
            after = _last_line(node)
            column = node.value[0][0].start_mark.column if node is not root else 0
        block, indent = [], column
        for key in section[depth:]:  # headers params.yaml lacks
            block.append(" " * indent + f"{key}:")
            indent += INDENT
        block += [" " * indent + line if line.strip() else "" for line in body]
        marked = [" " * column + start_marker(name), *block, " " * column + end_marker(name)]
        inserts.append((after, [line + "\n" for line in marked]))
    for after, block in sorted(inserts, key=lambda item: -item[0]):
        lines[after + 1 : after + 1] = block
    return "".join(lines)


# --------------------------------------------------------------------------- YAML nodes


def _find(node: Any, path: tuple[str, ...]) -> tuple[Any, Any] | None:
    """(key node, value node) at ``path`` under a mapping node, or None."""
    key = None
    for part in path:
        if not isinstance(node, yaml.MappingNode):
            return None
        match = [
            (k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part
        ]
        if not match:
            return None
        key, node = match[-1]
    return key, node


def _last_line(node: Any) -> int:
    """0-based index of the last line holding ``node``'s content (not the comments after it)."""
    if isinstance(node, yaml.MappingNode) and not node.flow_style and node.value:
        return _last_line(node.value[-1][1])
    if isinstance(node, yaml.SequenceNode) and not node.flow_style and node.value:
        return _last_line(node.value[-1])
    end = node.end_mark
    return end.line if end.column > 0 else end.line - 1


def _dedent(line: str, column: int) -> str:
    head = len(line) - len(line.lstrip(" "))
    return line[min(head, column) :].rstrip()


def _get(raw: dict, path: tuple[str, ...]) -> Any:
    for part in path:
        raw = raw.get(part) if isinstance(raw, dict) else None
    return raw
