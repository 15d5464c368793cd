"""Waits that a Ctrl-C always ends.

Python runs signal handlers on the main thread between bytecodes.  A signal
that the kernel hands to another thread (the I/O thread, say), or that
arrives just before the main thread enters a lock's wait, trips the handler
without waking that wait: an unbounded ``queue.get()`` or
``Future.result()`` then sleeps on with the ``KeyboardInterrupt`` pending,
for ever if nothing else comes.  So every wait here blocks at most
``SIGNAL_POLL`` seconds at a time and goes back to Python in between, where
a pending interrupt is raised.
"""

from __future__ import annotations

import concurrent.futures
import queue
import time
from typing import TypeVar

T = TypeVar("T")

#: The longest a wait blocks before a pending signal gets its chance.
SIGNAL_POLL = 0.25


def result(future: concurrent.futures.Future[T], timeout: float | None = None) -> T:
    """``future.result(timeout)``, interruptible by Ctrl-C."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            return future.result(_step(deadline))
        except concurrent.futures.TimeoutError:
            # The future's own TimeoutError (an RpcTimeout, say) is its result.
            if future.done() or (deadline is not None and time.monotonic() >= deadline):
                raise


def get(items: queue.SimpleQueue[T], timeout: float | None = None) -> T:
    """``items.get(timeout=timeout)``, interruptible by Ctrl-C."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        try:
            return items.get(timeout=_step(deadline))
        except queue.Empty:
            if deadline is not None and time.monotonic() >= deadline:
                raise


def _step(deadline: float | None) -> float:
    if deadline is None:
        return SIGNAL_POLL
    return max(0.0, min(SIGNAL_POLL, deadline - time.monotonic()))
