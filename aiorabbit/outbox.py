"""The write side of a connection: one outbox below every channel.

Channels queue frames here; they go out together, in one write per
event-loop turn (or at once past ``FLUSH_AT`` bytes).  The outbox also
decides when publishers must wait: while the transport's buffer is full,
while the broker blocks publishing (``connection.blocked``) and once the
connection is closing.  It knows nothing of channels or of the handshake:
the connection feeds it the transport's signals and is told, through the
callable it gave, when a write fails.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Callable

from ._futures import fail, finish
from ._gather import gather_fd, write_gathered
from .codec import Buffer, Method
from .codec.frames import encode_method_frame

__all__ = ["Outbox", "FLUSH_AT", "WRITE_HIGH", "ZERO_COPY_MIN"]

log = logging.getLogger("aiorabbit.connection")

#: Flush at once past this many queued bytes instead of waiting for the end
#: of the loop turn, so a publisher that never yields cannot buffer without
#: bound.
FLUSH_AT = 256 * 1024
#: Writes holding a body this large are gathered without copying it (see
#: ``_gather``); smaller ones are cheaper to join.
ZERO_COPY_MIN = 64 * 1024
#: Publishers wait once the transport holds this much unsent (it resumes
#: them at a quarter of it): enough to keep the socket busy while they wake
#: up, small enough that a slow broker cannot make us buffer without bound.
WRITE_HIGH = 1024 * 1024
#: Publishers woken together when the transport drains: each writes, in
#: the order they came, until the buffer is full again; the others go back
#: to the head of the queue.  One at a time would cost two loop turns per
#: publisher while many wait.
WAKE_BATCH = 32


class Outbox:
    """Frames on their way to the socket, and the publishers waiting for room.

    ``hold`` is the one flag a publisher reads on its fast path: true while
    it must call :meth:`wait_writable` first.
    """

    __slots__ = (
        "_before_flush",
        "_flush_scheduled",
        "_gather_fd",
        "_large",
        "_loop",
        "_on_write_error",
        "_parts",
        "_requeue_at",
        "_size",
        "_transport",
        "_unblocked",
        "_woken",
        "blocked_reason",
        "error",
        "hold",
        "paused",
        "sent",
        "waiters",
    )

    def __init__(self, loop: asyncio.AbstractEventLoop, on_write_error: Callable[[Exception], None]) -> None:
        self._loop = loop
        self._on_write_error = on_write_error
        self._transport: asyncio.Transport | None = None
        self._gather_fd = -1
        self._parts: list[Buffer] = []
        self._size = 0
        self._large = False
        self._flush_scheduled = False
        # Run first when the queue is written: channels add their coalesced
        # acks (aiorabbit/acks.py).
        self._before_flush: list[Callable[[], None]] = []
        self._unblocked: asyncio.Future[None] | None = None
        #: Publishers must wait (see :meth:`wait_writable`).
        self.hold = False
        #: The transport's buffer is full (``pause_writing``).
        self.paused = False
        #: Why the broker blocks publishing, or ``None``.
        self.blocked_reason: str | None = None
        #: Set once publishing is refused for good (closing, closed).
        self.error: BaseException | None = None
        #: Something was written since the heartbeat last looked.
        self.sent = False
        #: Publishers waiting for room, woken ``WAKE_BATCH`` at a time, in
        #: the order they came: while any waits (or one woken has not
        #: written yet), a newcomer queues behind them instead of overtaking.
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._woken = 0  # publishers woken that have not written yet
        self._requeue_at = 0  # where the next woken one that finds no room goes back

    def attach(self, transport: asyncio.Transport) -> None:
        """Start writing to ``transport``."""
        self._transport = transport
        transport.set_write_buffer_limits(high=WRITE_HIGH)
        self._gather_fd = gather_fd(transport)

    @property
    def transport(self) -> asyncio.Transport | None:
        """The transport written to (``None`` before the socket connects)."""
        return self._transport

    # -- queueing ------------------------------------------------------------

    def send(self, parts: list[Buffer], size: int) -> None:
        """Queue frames (``size``: about their length); they go out with
        everything else this loop turn."""
        self._parts.extend(parts)
        self._size += size
        if size > ZERO_COPY_MIN:
            self._large = True
        if self._size >= FLUSH_AT:
            self.flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def send_one(self, frame: bytes) -> None:
        """Queue one small frame."""
        self._parts.append(frame)
        self._size += len(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def send_method(self, channel: int, method: Method) -> None:
        """Queue a method frame."""
        self.send_one(encode_method_frame(channel, method))

    def before_flush(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` first when what is queued is written (this turn),
        so that it can queue frames of its own."""
        self._before_flush.append(hook)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self.flush)

    def _run_before_flush(self) -> None:
        hooks, self._before_flush = self._before_flush, []
        for hook in hooks:
            hook()

    def write_now(self, frame: bytes) -> None:
        """Write at once, after anything queued (control frames)."""
        if self._before_flush:
            self._run_before_flush()
        self._parts.append(frame)
        self.flush()

    def flush(self) -> None:
        """Write everything queued, in one call."""
        if self._before_flush:
            self._run_before_flush()  # while _flush_scheduled holds: their frames go in this write
        self._flush_scheduled = False
        out = self._parts
        if not out:
            return
        self._parts = []
        self._size = 0
        large, self._large = self._large, False
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        self.sent = True
        try:
            if len(out) == 1:
                transport.write(out[0])
            elif large:
                if self._gather_fd >= 0:
                    write_gathered(transport, self._gather_fd, out)
                else:  # uvloop, TLS, Python 3.12+: they gather without a copy
                    transport.writelines(out)
            else:
                # Small frames, joined here: the stdlib transport joins them
                # too, and uvloop's writelines costs more per part than a copy.
                transport.write(b"".join(out))
        except Exception as exc:
            # Bodies are checked when published, so this is not one bad
            # message: part of the batch may be on the wire and the stream
            # is beyond repair.  The connection fails every pending call.
            log.exception("writing to the socket failed")
            self._on_write_error(exc)

    def write_heartbeat(self, frame: bytes) -> None:
        """Write a heartbeat frame unless something was written since the
        last call (which counts as life)."""
        if not self.sent and self._transport is not None:
            self._transport.write(frame)
        self.sent = False

    # -- back-pressure -------------------------------------------------------

    def pause(self) -> None:
        """The transport's buffer is full (``pause_writing``)."""
        self.paused = True
        self.hold = True

    def resume(self) -> None:
        """The transport drained (``resume_writing``)."""
        self.paused = False
        self._update_hold()
        self._wake_next()

    def block(self, reason: str | None) -> None:
        """The broker blocked (a reason) or unblocked (``None``) publishing."""
        self.blocked_reason = reason
        self._update_hold()
        if reason is None:
            finish(self._unblocked)

    def refuse(self, error: BaseException) -> None:
        """Publishing is over (the connection closes): waiting publishers
        fail with ``error``, and later ones at once."""
        if self.error is None:
            self.error = error
        self.hold = True
        while self.waiters:
            fail(self.waiters.popleft(), self.error)
        fail(self._unblocked, self.error)

    def discard(self) -> None:
        """Drop what is queued and not written (the connection is gone)."""
        self._parts.clear()
        self._large = False

    def _update_hold(self) -> None:
        self.hold = (self.paused or self.blocked_reason is not None or self.error is not None
                     or self._woken > 0 or bool(self.waiters))

    async def wait_unblocked(self) -> None:
        """Return once the broker does not block publishing."""
        while self.blocked_reason is not None:
            if self.error is not None:
                raise self.error
            if self._unblocked is None or self._unblocked.done():
                self._unblocked = self._loop.create_future()
            await self._unblocked

    async def wait_writable(self) -> None:
        """Wait while the transport's buffer is full, publishers that came
        first still wait, or the broker blocks us; raise :attr:`error` once
        publishing is refused."""
        my_turn = False
        while True:
            if self.error is not None:
                raise self.error
            if self.blocked_reason is not None:
                await self.wait_unblocked()
                continue
            if not self.paused and (my_turn or not (self.waiters or self._woken)):
                return
            waiter = self._loop.create_future()
            if my_turn:
                # Full again before we wrote: back to the head, behind the
                # ones woken with us that went back before us.
                self.waiters.insert(self._requeue_at, waiter)
                self._requeue_at += 1
            else:
                self.waiters.append(waiter)
            self.hold = True
            if not self.paused and not self._woken:
                self._loop.call_soon(self._wake_next)  # nobody else would start the turns
            try:
                await waiter
            finally:
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    # Our turn: we write in this step (or were cancelled);
                    # the next ones' come after the last of this batch.
                    my_turn = True
                    self._woken -= 1
                    self._update_hold()
                    if not self._woken:
                        self._loop.call_soon(self._wake_next)
                elif not waiter.done():
                    waiter.cancel()  # skipped by _wake_next

    def _wake_next(self) -> None:
        """Hand the turn to the next ``WAKE_BATCH`` waiting publishers while
        the transport takes more.  They run in the order they came; the last
        of them passes the turn on, so a resume wakes publishers only about
        as far as the buffer has room, not all of them (a wake-up per waiter
        per resume).  A batch at a time: one that finds the buffer full
        again goes back to the head, in order with the others of its batch."""
        if self._woken:
            return  # a batch is on its way: its last one passes the turn on
        self._requeue_at = 0
        waiters = self.waiters
        while waiters and not self.paused and self._woken < WAKE_BATCH:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                self._woken += 1
        self._update_hold()
