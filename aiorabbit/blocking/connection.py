"""Blocking connections: the async connection on an I/O thread of its own."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..channel import Channel
from ..connection import Connection
from ..connection import connect as connect_async
from ..robust import RobustChannel, RobustConnection
from ..robust import connect_robust as connect_robust_async
from ._io import IOThread
from .channel import BlockingChannel

__all__ = ["BlockingConnection", "connect", "connect_robust"]

log = logging.getLogger("aiorabbit.blocking")

#: How long ``close()`` lets queued operations drain before closing anyway
#: (they wait only while the broker blocks publishers or the socket is full).
CLOSE_DRAIN_TIMEOUT = 10.0


def connect(url: str | None = None, **options: Any) -> BlockingConnection:
    """Open a connection (the arguments of :func:`aiorabbit.connect`)."""
    return _open(connect_async, url, options)


def connect_robust(url: str | list[str] | None = None, **options: Any) -> BlockingConnection:
    """Open a recovering connection (the arguments of
    :func:`aiorabbit.connect_robust`)."""
    return _open(connect_robust_async, url, options)


def _open(opener: Callable[..., Awaitable[Connection | RobustConnection]], url: Any,
          options: dict[str, Any]) -> BlockingConnection:
    io = IOThread()
    try:
        conn = io.run(opener, url, **options)
    except BaseException:
        io.stop()
        raise
    return BlockingConnection(io, conn)


class BlockingConnection:
    """A connection driven from blocking code; use :func:`connect`.

    Any thread may use it and its channels at once.  Consumers' callbacks
    and :meth:`add_callback_threadsafe` callbacks run on the thread that
    calls ``start_consuming()`` or :meth:`process_data_events`."""

    def __init__(self, io: IOThread, conn: Connection | RobustConnection) -> None:
        self._io = io
        self._conn = conn
        self._close_lock = threading.Lock()

    @property
    def connection(self) -> Connection | RobustConnection:
        """The async connection underneath (use it on the I/O loop only)."""
        return self._conn

    @property
    def loop(self) -> Any:
        """The I/O thread's event loop (for ``asyncio.run_coroutine_threadsafe``)."""
        return self._io.loop

    @property
    def is_open(self) -> bool:
        """True while the connection is usable."""
        return self._conn.is_open

    @property
    def is_closed(self) -> bool:
        """True once closed."""
        return self._conn.is_closed or self._io.loop.is_closed()

    def channel(self, *, publisher_confirms: bool = False) -> BlockingChannel:
        """Open a channel; with ``publisher_confirms`` each publish returns
        once the broker confirmed it."""
        opening: Callable[..., Awaitable[Channel | RobustChannel]] = self._conn.channel
        return BlockingChannel(self._io, self._io.run(opening, publisher_confirms=publisher_confirms))

    # -- the consuming thread's events ----------------------------------------------

    def add_callback_threadsafe(self, callback: Callable[[], Any]) -> None:
        """Have ``callback()`` run on the thread that processes this
        connection's events (``start_consuming`` or
        :meth:`process_data_events`), like pika's method of that name."""
        self._io.events.put(callback)

    def process_data_events(self, time_limit: float | None = 0) -> None:
        """Run the consumers' callbacks (and callbacks added with
        :meth:`add_callback_threadsafe`) that are due, here: with
        ``time_limit=0`` those already waiting, with a number of seconds
        until then, with ``None`` until at least one ran.  I/O does not
        need it: it never stops on its own thread."""
        if time_limit is None:
            self._io.process_one(None)
            time_limit = 0
        deadline = time.monotonic() + time_limit
        while True:
            left = deadline - time.monotonic()
            if not self._io.process_one(left if left > 0 else 0, block=left > 0):
                return

    def sleep(self, duration: float) -> None:
        """Sleep for ``duration`` seconds while running due callbacks."""
        self.process_data_events(duration)

    # -- closing ---------------------------------------------------------------------

    def close(self) -> None:
        """Write what is queued (waiting at most ``CLOSE_DRAIN_TIMEOUT``),
        close the connection and join its I/O thread (idempotent)."""
        with self._close_lock:
            if self._io.loop.is_closed():
                return
            try:
                if not self._io.flush(CLOSE_DRAIN_TIMEOUT):
                    log.warning("closing with operations still queued after %.0f s", CLOSE_DRAIN_TIMEOUT)
                self._io.direct(self._conn.close())
            finally:
                self._io.stop()

    def __enter__(self) -> BlockingConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<aiorabbit.blocking.BlockingConnection {self._conn!r}>"
