"""The base of every component's options (a leaf): strict (an unknown key is an error listing the
allowed ones) and frozen. A component declares its options as a subclass with defaults, in one
place; ``genlab.config`` assembles the params schema from them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.fields import FieldInfo


class Options(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


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


__all__ = ["Declared", "Field", "Option", "Options", "declare", "declared", "option_default"]
