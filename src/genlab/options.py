"""The base of every component's options (a leaf): strict (an unknown key is an error listing the
allowed ones) and frozen. A component declares its options as a subclass with defaults, in one
place; ``genlab.config`` assembles the params schema from them."""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.fields import FieldInfo


class Options(BaseModel):
    """Unknown keys, ``inf``/``nan`` and ``true``/``false`` given for a number are errors (pydantic
    would otherwise read ``steps: true`` as 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_bool_numbers(cls, raw: Any) -> Any:
        return reject_bool_numbers(cls, raw)


def reject_bool_numbers(model: type[BaseModel], raw: Any) -> Any:
    """``raw`` with a boolean given for a numeric field turned into its YAML spelling, so the
    field's own validation rejects it with the key and the value (``steps = 'true'``)."""
    if not isinstance(raw, dict):
        return raw
    numeric = {k for k, f in model.model_fields.items() if _numeric_only(f.annotation)}
    if not any(isinstance(raw.get(k), bool) for k in numeric):
        return raw
    return {k: str(v).lower() if k in numeric and isinstance(v, bool) else v
            for k, v in raw.items()}  # fmt: skip


def _numeric_only(tp: Any) -> bool:
    """A field that takes a number and not a boolean (``int``, ``float | None``,
    ``Literal["auto"] | int``)."""
    leaves = _leaves(tp)
    return any(t in (int, float) for t in leaves) and not any(t in (bool, Any) for t in leaves)


def _leaves(tp: Any) -> list[Any]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return [leaf for a in typing.get_args(tp) for leaf in _leaves(a)]
    if origin is typing.Annotated:
        return _leaves(typing.get_args(tp)[0])
    if origin is typing.Literal:
        return [type(a) for a in typing.get_args(tp)]
    return [tp]


@dataclass(frozen=True)
class Option:
    """One variant key a component reads: its type and its default (a value, or a pydantic
    ``Field`` with the bounds). ``when`` narrows where it applies beyond its owner being chosen
    (``when_doc`` says it in the error); ``names``: a registry the value must name."""

    type: Any
    default: Any
    when: Callable[[Any], bool] | None = None
    when_doc: str = ""
    names: Any = None

    def default_value(self) -> Any:
        if isinstance(self.default, FieldInfo):
            return self.default.get_default(call_default_factory=True)
        return self.default


@dataclass(frozen=True)
class Declared:
    """What a component declares: its options, and a ``check(variant)`` of the variant as a
    whole that raises ValueError with a clear message (a rule between keys)."""

    options: dict[str, Option] = field(default_factory=dict)
    check: Callable[[Any], None] | None = None


def declare(*, check: Callable[[Any], None] | None = None, **options: Option):
    """Attach options (and a whole-variant check) to a registered builder function or class."""

    def decorator(component):
        component.declared = Declared(options, check)
        return component

    return decorator


def declared(component: Any) -> Declared:
    """A component's declaration (nothing declared: no options, no check)."""
    return getattr(component, "declared", None) or Declared()


def option_default(component: Any, key: str) -> Any:
    """The declared default of ``key`` (for a component built without a variant, as in tests)."""
    return (
        declared(type(component) if not isinstance(component, type) else component)
        .options[key]
        .default_value()
    )


__all__ = ["Declared", "Field", "Option", "Options", "declare", "declared", "option_default",
           "reject_bool_numbers"]  # fmt: skip
