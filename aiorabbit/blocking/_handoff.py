"""Deliveries on their way from the I/O loop to the thread that takes them.

The loop hands a consumer's deliveries over in lists, one per loop turn: a
thread woken per message costs more than the message.  What was handed over
and not yet taken is bounded: past ``HIGH_MESSAGES`` messages or
``HIGH_BYTES`` of bodies the consumer stops the connection reading
(:meth:`aiorabbit.Consumer.set_backlogged`), and the taking thread asks the
loop to read again once half of it is gone.  Without the bound a ``no_ack``
consumer whose thread is slower than the broker would buffer the whole
queue in memory.

Each side writes only its own counters (the loop what it handed over, the
taking thread what it took), so the hot path takes no lock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from ..consumer import Consumer
from ..message import IncomingMessage
from ..robust import RobustConsumer

__all__ = ["Handoff", "HIGH_BYTES", "HIGH_MESSAGES"]

#: Reading stops once this many deliveries wait for the taking thread ...
HIGH_MESSAGES = 2000
#: ... or once their bodies hold this many bytes.
HIGH_BYTES = 32 * 1024 * 1024


class Handoff:
    """One consumer's deliveries, from the loop to one taking thread.

    ``put`` (called on the loop) passes a list of deliveries, or the
    consumer's end (an exception), to the taking side, which calls
    :meth:`taken` for every delivery it hands to the application.  With a
    ``callback`` (``basic_consume``), each delivery goes to ``put`` on its
    own instead, as the event ``(run, message)``: :meth:`run` takes it and
    calls the callback.
    """

    __slots__ = ("_batch", "_full", "_given", "_given_bytes", "_loop", "_put", "_resume_asked",
                 "_taken", "_taken_bytes", "callback", "consumer")

    def __init__(self, put: Callable[[Any], None],
                 callback: Callable[[IncomingMessage], Any] | None = None) -> None:
        self._put = put
        #: What :meth:`run` calls (``basic_consume``'s callback).
        self.callback = callback
        #: The consumer whose reading is held; set on the loop before it starts.
        self.consumer: Consumer | RobustConsumer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None  # known at the first delivery
        self._batch: list[IncomingMessage] = []
        self._given = self._given_bytes = 0  # written on the loop only
        self._taken = self._taken_bytes = 0  # written by the taking thread only
        self._full = False  # reading held (loop only)
        self._resume_asked = False

    # -- the loop's side --------------------------------------------------------

    def deliver(self, msg: IncomingMessage) -> None:
        """The consumer's callback: queue ``msg`` for this loop turn's list."""
        batch = self._batch
        if not batch:
            loop = self._loop
            if loop is None:
                loop = self._loop = asyncio.get_running_loop()
            loop.call_soon(self._flush)
        batch.append(msg)

    def end(self, error: BaseException) -> None:
        """The consumer ended: what it delivered goes first, then ``error``."""
        if self._batch:
            self._flush()
        self._put(error)

    def _flush(self) -> None:
        items = self._batch
        if not items:
            return
        self._batch = []
        self._given += len(items)
        self._given_bytes += sum(msg.body_size for msg in items)
        # Held before the taking thread can see the list, so that the take
        # which drains it finds the hold and asks for reading again.
        if self._over(1) and self.consumer is not None:
            self._full = True
            self.consumer.set_backlogged(True)
        if self.callback is None:
            self._put(items)
            return
        put, run = self._put, self.run
        for msg in items:
            put((run, msg))

    def _over(self, fraction: int) -> bool:
        return (self._given - self._taken >= HIGH_MESSAGES // fraction
                or self._given_bytes - self._taken_bytes >= HIGH_BYTES // fraction)

    def _resume(self) -> None:
        self._resume_asked = False
        if self._full and not self._over(2) and self.consumer is not None:
            self._full = False
            self.consumer.set_backlogged(False)

    # -- the taking thread's side -------------------------------------------------

    def taken(self, msg: IncomingMessage) -> None:
        """``msg`` went to the application: once half the bound is free
        again, the loop reads again."""
        self._taken += 1
        self._taken_bytes += msg.body_size
        if self._full and not self._resume_asked and not self._over(2):
            self._resume_asked = True
            loop = self._loop
            if loop is not None and not loop.is_closed():
                try:
                    loop.call_soon_threadsafe(self._resume)
                except RuntimeError:  # closed meanwhile: nothing left to resume
                    pass

    def run(self, msg: IncomingMessage) -> None:
        """Take ``msg`` and run the callback on it (``basic_consume``'s events)."""
        self.taken(msg)
        assert self.callback is not None
        self.callback(msg)
