"""Named, lazily imported implementations: the one way methods, policies, backends, executors and source parsers
are looked up by the name a profile or command line gives (in the style of lm-eval's registries).

An entry is a class or function, or a ``"module:attr"`` string imported on first use, so that a stage can name
an implementation that lives in a later one (``llm`` names ``equal.scale.executor:RayExtractor``) without importing
it. An unknown name is an error listing the known ones; :meth:`Registry.build` turns a ``TypeError`` from bad
parameters into an error naming the entry.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

from equal.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Name → implementation (or ``"module:attr"``, imported on first use) for one kind of thing."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = {}

    def register(self, name: str, entry: T | str | None = None) -> Any:
        """Add ``entry`` under ``name``; without ``entry``, a decorator that registers what it decorates."""
        if entry is None:

            def decorate(obj: T) -> T:
                self.register(name, obj)
                return obj

            return decorate
        if name in self._entries and self._entries[name] is not entry:
            raise ConfigError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def get(self, name: str) -> T:
        """The implementation registered as ``name`` (imported now if it was given as ``"module:attr"``)."""
        if name not in self._entries:
            raise ConfigError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._entries))}")
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attr = entry.partition(":")
            entry = getattr(importlib.import_module(module), attr)
            self._entries[name] = entry
        return entry

    def build(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """Call (construct) the implementation ``name`` with the given parameters; bad parameters are an error
        naming it."""
        factory: Callable[..., Any] = self.get(name)  # type: ignore[assignment]
        try:
            return factory(*args, **kwargs)
        except TypeError as exc:
            raise ConfigError(f"bad parameters for the {self.kind} {name!r}: {exc}") from exc

    def names(self) -> list[str]:
        """The registered names, in registration order."""
        return list(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)
