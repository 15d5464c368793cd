"""Small helpers for futures that nobody may be awaiting."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["fail", "finish", "retrieve"]


def fail(waiter: asyncio.Future[Any] | None, exc: BaseException) -> None:
    """Fail ``waiter`` if it is pending, marking the error retrieved (nobody
    may be awaiting it)."""
    if waiter is not None and not waiter.done():
        waiter.set_exception(exc)
        waiter.exception()


def finish(waiter: asyncio.Future[Any] | None) -> None:
    """Resolve ``waiter`` with ``None`` if it is pending."""
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


def retrieve(fut: asyncio.Future[Any]) -> None:
    """Mark a finished future's error retrieved (a done callback)."""
    if not fut.cancelled():
        fut.exception()
