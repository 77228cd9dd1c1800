"""Name -> builder registries: every name in params.yaml is resolved once, here."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from genlab.errors import UnknownNameError

__all__ = ["Registry", "UnknownNameError"]

T = TypeVar("T", bound=Callable[..., Any])


class Registry(Generic[T]):
    """Maps a name (as written in params.yaml) to a builder.

    >>> LOSSES = Registry("loss")
    >>> @LOSSES.register("minimax")
    ... def build(): ...
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(fn: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._items[name] = fn
            return fn

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; allowed: {', '.join(self.names())}"
            ) from None

    def build(self, name: str, *args: Any, **kwargs: Any) -> Any:
        return self.get(name)(*args, **kwargs)

    def names(self) -> list[str]:
        return sorted(self._items)

    def registered(self) -> list[str]:
        """The names in the order they were registered."""
        return list(self._items)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests that register a component of their own clean up with it)."""
        del self._items[name]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
