"""Checks and copies of what callers pass in: the one place each rule lives."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any

from .codec import Buffer
from .exceptions import InvalidArgument

__all__ = ["copy_arguments", "is_async_callable", "owned_body"]


def copy_arguments(arguments: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A private copy of an ``arguments`` table (``None`` when empty), so a
    caller changing its dict later changes neither the wire nor what
    recovery declares again."""
    if arguments is None:
        return None
    if not isinstance(arguments, Mapping):
        raise InvalidArgument(f"arguments must be a mapping, not {type(arguments).__name__}")
    return dict(arguments) if arguments else None


def is_async_callable(func: Callable[..., Any]) -> bool:
    """True if calling ``func`` gives a coroutine to await: an ``async def``
    function or method, a ``functools.partial`` of one, or an object whose
    ``__call__`` is ``async def``."""
    while isinstance(func, functools.partial):
        func = func.func
    if inspect.iscoroutinefunction(func):
        return True
    return inspect.iscoroutinefunction(type(func).__call__)


def owned_body(body: object) -> Buffer:
    """``body`` as a buffer that nothing the caller does later can change:
    a view of immutable ``bytes`` as it is, anything else copied.  Bad
    bodies fail here, at the call, never later in the batched write where
    they would take other messages' frames with them."""
    try:
        view = memoryview(body)  # type: ignore[arg-type]
    except TypeError:
        raise InvalidArgument(f"body must be bytes-like, not {type(body).__name__}") from None
    except ValueError as exc:  # a released memoryview
        raise InvalidArgument(f"body cannot be read: {exc}") from None
    if not view.c_contiguous:
        raise InvalidArgument("body must be a contiguous buffer (copy a strided view with bytes() first)")
    if type(view.obj) is bytes:
        # Our own view: it stays valid if the caller releases theirs.
        return view if view.format == "B" and view.ndim == 1 else view.cast("B")
    return view.tobytes()
