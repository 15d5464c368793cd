"""``wait_for`` that never swallows a cancellation.

On Python 3.10 and 3.11, ``asyncio.wait_for`` returns the inner result when
a cancellation arrives just as the inner call completes (CPython gh-86296):
the caller's ``task.cancel()`` is lost, and a task that was meant to stop
(a recovery loop being closed) runs on.  Python 3.12 rewrote ``wait_for``
on top of ``asyncio.timeout``; 3.11 has ``asyncio.timeout`` already.  On
3.10 the inner call runs as its own task, which an outer cancellation
always reaches.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import TypeVar

__all__ = ["wait_for"]

T = TypeVar("T")


if sys.version_info >= (3, 12):  # pragma: no cover - the CI runs 3.11
    wait_for = asyncio.wait_for

elif sys.version_info >= (3, 11):

    async def wait_for(aw: Awaitable[T], timeout: float | None) -> T:
        """Await ``aw`` for at most ``timeout`` seconds (``None``: no limit);
        raise ``TimeoutError`` after that.  A cancellation of the caller is
        always delivered."""
        if timeout is None:
            return await aw
        async with asyncio.timeout(timeout):
            return await aw

else:  # pragma: no cover - Python 3.10

    async def wait_for(aw: Awaitable[T], timeout: float | None) -> T:
        """Await ``aw`` for at most ``timeout`` seconds (``None``: no limit);
        raise ``TimeoutError`` after that.  A cancellation of the caller is
        always delivered."""
        if timeout is None:
            return await aw
        inner = asyncio.ensure_future(aw)
        expired = False

        def expire() -> None:
            nonlocal expired
            if not inner.done():
                expired = True
                inner.cancel()

        handle = asyncio.get_running_loop().call_later(timeout, expire)
        try:
            # Awaiting a task: cancelling the caller cancels it, and a caller
            # cancelled after it finished still gets its CancelledError.
            return await inner
        except asyncio.CancelledError:
            if expired and inner.cancelled():
                raise asyncio.TimeoutError from None
            raise
        finally:
            handle.cancel()
