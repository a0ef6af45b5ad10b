"""The listeners registered on one pool, sorted by event kind for a cheap hot path.

The pool asks ``if listeners.acquire:`` before it builds an event, so a pool
with no listener pays one attribute read and a falsy test per hand-out.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from .events import AcquireEvent, CloseEvent, ConnectEvent, ReleaseEvent, TimeoutEvent

__all__ = ["Listeners"]

logger = logging.getLogger("aiopool")

_KINDS = ("connect", "acquire", "release", "timeout", "close")


class Listeners:
    """Per-kind tuples of bound listener methods, and the safe way to call them."""

    __slots__ = ("_objects", "_warned", "acquire", "close", "connect", "release", "timeout")

    def __init__(self, objects: Iterable[object] = ()) -> None:
        self._objects: list[object] = []
        # (id(listener), kind) pairs already logged: one log line per listener and kind.
        self._warned: set[tuple[int, str]] = set()
        self.connect: tuple[Callable[[ConnectEvent], Any], ...] = ()
        self.acquire: tuple[Callable[[AcquireEvent], Any], ...] = ()
        self.release: tuple[Callable[[ReleaseEvent], Any], ...] = ()
        self.timeout: tuple[Callable[[TimeoutEvent], Any], ...] = ()
        self.close: tuple[Callable[[CloseEvent], Any], ...] = ()
        for obj in objects:
            self.add(obj)

    def __bool__(self) -> bool:
        return bool(self._objects)

    def __iter__(self) -> Any:
        return iter(tuple(self._objects))

    def add(self, listener: object) -> None:
        """Register ``listener``; it must define at least one ``on_*`` method."""
        if not any(callable(getattr(listener, f"on_{kind}", None)) for kind in _KINDS):
            raise TypeError(
                f"a pool listener needs at least one of the methods "
                f"{', '.join('on_' + k for k in _KINDS)}; {listener!r} has none"
            )
        if any(obj is listener for obj in self._objects):
            return
        self._objects.append(listener)
        self._rebuild()

    def remove(self, listener: object) -> None:
        """Unregister ``listener``; ``ValueError`` if it was not registered."""
        for index, obj in enumerate(self._objects):
            if obj is listener:
                del self._objects[index]
                self._rebuild()
                return
        raise ValueError(f"{listener!r} is not a listener of this pool")

    def _rebuild(self) -> None:
        for kind in _KINDS:
            methods = tuple(
                method
                for method in (getattr(obj, f"on_{kind}", None) for obj in self._objects)
                if callable(method)
            )
            setattr(self, kind, methods)

    def emit(self, methods: tuple[Callable[[Any], Any], ...], event: object) -> None:
        """Call each method with ``event``; log (once per listener and kind) what raises."""
        for method in methods:
            try:
                method(event)
            except Exception:
                owner = getattr(method, "__self__", method)
                key = (id(owner), getattr(method, "__name__", "?"))
                if key in self._warned:
                    continue
                self._warned.add(key)
                logger.exception(
                    "pool %r: listener %r raised in %s; later errors of this listener "
                    "and event kind are not logged",
                    getattr(event, "pool_name", "?"),
                    owner,
                    getattr(method, "__name__", "?"),
                )
