"""Robust consumers: the same consumer tag again after every recovery."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from .._compat import wait_for
from .._futures import retrieve
from .._inputs import copy_arguments, is_async_callable
from .._logging import fields
from ..channel import Channel
from ..consumer import Consumer
from ..exceptions import ChannelClosed, ConnectionClosed, ConsumerCancelled, RecoveryTimeout
from ..message import IncomingMessage
from ..observe import processing
from .common import ChannelAccess, ConsumerRecovery, State

if TYPE_CHECKING:
    from .channel import RobustChannel

__all__ = ["RobustConsumer"]

log = logging.getLogger("aiorabbit.recovery")


class RobustConsumer:
    """A consumer on a :class:`RobustChannel`: the same consumer tag is
    registered again after every recovery, and ``async for`` goes on.

    A consumer the broker cancels (its queue was deleted, a quorum queue's
    leader moved) is reported (the ``consumer_cancelled`` event) and
    consumes again once the queue exists again.  A stream consumer
    (``x-stream-offset`` argument) resumes after the last offset it handed
    out.
    """

    def __init__(
        self,
        channel: RobustChannel,
        queue: str,
        *,
        no_ack: bool = False,
        exclusive: bool = False,
        arguments: Mapping[str, Any] | None = None,
        consumer_tag: str | None = None,
        callback: Callable[[IncomingMessage], Any] | None = None,
        on_end: Callable[[RobustConsumer, BaseException], None] | None = None,
        access: ChannelAccess,
    ) -> None:
        self.channel = channel
        self._access = access
        self._hub = access.hub
        self._queue = queue
        self.no_ack = no_ack
        self.exclusive = exclusive
        self.arguments = copy_arguments(arguments)
        self.consumer_tag = consumer_tag
        self._callback = callback
        self._on_end = on_end
        self._inner: Consumer | None = None
        self._ready: asyncio.Event = asyncio.Event()
        self._exc: BaseException | None = None
        self._started = False
        self._cancelled = False
        self._parked = False  # waiting for its queue to exist again
        self._watcher: asyncio.Task[None] | None = None
        self._starting: asyncio.Future[None] | None = None
        # A stream consumer resumes after the last offset it handed out.
        # Without an x-stream-offset argument (the broker's default, "next")
        # the first delivery tells whether the queue is a stream.
        self._stream: bool | None = True if arguments and "x-stream-offset" in arguments else None
        self._last_offset: int | None = None
        self._consumed = False  # registered with the broker at least once
        self._backlogged = False  # set_backlogged(True): kept across recoveries
        self._port = ConsumerRecovery(self, self._needs_resume, self._resume, self._park, self._abort,
                                      self._stop_watching, self._rename)

    @property
    def queue(self) -> str:
        """The queue's current name (follows a server-named queue's renames)."""
        return self._queue

    @property
    def is_consuming(self) -> bool:
        """True while the broker delivers to this consumer: started, not
        cancelled or ended, not waiting for its queue, and its channel open
        (False while the connection recovers)."""
        inner = self._inner
        return (
            self._hub.state() is State.CONNECTED
            and not self._parked and self._exc is None and not self._cancelled
            and inner is not None and not inner.ended and inner.channel.is_open
        )

    @property
    def error(self) -> BaseException | None:
        """Why the consumer ended for good, once it has (its channel or
        connection closed for good, or its queue deleted through the
        robust channel); ``None`` while it runs, and after ``cancel()`` or
        the program closing its connection."""
        exc = self._exc
        return None if exc is None or getattr(exc, "by_client", False) else exc

    @property
    def buffered(self) -> int:
        """Deliveries received and not yet handed out."""
        inner = self._inner
        return inner.buffered if inner is not None else 0

    @property
    def ended(self) -> bool:
        """True once the consumer ended for good, for whatever reason."""
        return self._exc is not None or self._cancelled

    def __repr__(self) -> str:
        return f"<aiorabbit.RobustConsumer queue={self._queue!r} tag={self.consumer_tag!r}>"

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> RobustConsumer:
        """Start consuming (done by ``async with``)."""
        if self._started:
            return self
        self._started = True
        while True:
            inner = await self._access.live()
            try:
                await self._resume(inner)
                break
            except (ConnectionClosed, ChannelClosed) as exc:
                if not self._hub.recovers_from(exc):
                    raise
        self._access.consumers.append(self._port)
        return self

    async def cancel(self) -> None:
        """Stop consuming for good (idempotent); it is not recovered."""
        if self._cancelled:
            return
        self._cancelled = True
        self._stop_watching()
        channel = self.channel
        if self._port in self._access.consumers:
            self._access.consumers.remove(self._port)
        inner, self._inner = self._inner, None
        if inner is not None:
            await inner.cancel()
        self._ready.set()
        if not any(c.consumer.queue == self._queue for ch in self._hub.channels for c in ch.consumers):
            channel.connection.topology.last_consumer_gone(self._queue)

    async def __aenter__(self) -> RobustConsumer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.cancel()

    def set_backlogged(self, full: bool) -> None:
        """Stop (``True``) or resume reading for a callback consumer whose
        messages wait elsewhere (see :meth:`aiorabbit.Consumer.set_backlogged`);
        the state carries over to the consumer registered after a recovery."""
        self._backlogged = full
        if self._inner is not None:
            self._inner.set_backlogged(full)

    # -- iteration -----------------------------------------------------------

    def __aiter__(self) -> RobustConsumer:
        return self

    async def __anext__(self) -> IncomingMessage:
        return await self._next(tracked=True)

    async def take(self) -> IncomingMessage:
        """The next message, like ``async for``, except that the observer is
        not told when its handling starts and ends: the caller reports it
        with :meth:`processing` (for concurrent handlers)."""
        return await self._next(tracked=False)

    def processing(self, message: IncomingMessage) -> AbstractContextManager[None]:
        """``with consumer.processing(msg):`` around the handling of a message
        from :meth:`take` (see :meth:`aiorabbit.Consumer.processing`)."""
        return processing(self.channel.connection.observer, self, message)

    async def _next(self, *, tracked: bool) -> IncomingMessage:
        while True:
            if self._cancelled or getattr(self._exc, "by_client", False):
                raise StopAsyncIteration  # the program ended it
            if self._exc is not None:
                raise self._exc
            inner = self._inner
            if inner is None:
                try:
                    await self._wait_ready()
                except (ConnectionClosed, ChannelClosed):
                    if self._closed_by_program():
                        raise StopAsyncIteration from None
                    raise
                continue
            try:
                msg = await (inner.__anext__() if tracked else inner.take())
            except StopAsyncIteration:
                if self._cancelled:
                    raise
                self._lost(inner)
                continue
            except ConsumerCancelled:
                self._lost(inner)
                self._hub.emit("consumer_cancelled", self)
                self._park()
                continue
            except (ConnectionClosed, ChannelClosed):
                # Only a connection closed for good ends the iteration: an
                # error on a channel or connection that recovery replaces
                # (even one seen while it is under way) means waiting for it.
                if self._closed_by_program():
                    raise StopAsyncIteration from None
                if self._hub.state() is State.CLOSED:
                    raise
                self._lost(inner)
                continue
            if self._stream is not False:
                self._track(msg)
            return msg

    def _closed_by_program(self) -> bool:
        """An error came because the program is closing the connection: the
        iteration ends cleanly instead of raising it."""
        return self._hub.closing()

    async def get(self, timeout: float | None = None) -> IncomingMessage:
        """The next message, waiting at most ``timeout`` seconds."""
        return await wait_for(self.__anext__(), timeout)

    # -- internals -------------------------------------------------------------

    def _lost(self, inner: Consumer) -> None:
        if self._inner is inner:
            self._inner = None
            self._ready.clear()

    async def _wait_ready(self) -> None:
        """Wait until recovery (or a re-consume) gives us a new consumer."""
        while self._inner is None and not self._cancelled and self._exc is None:
            if not self._parked and self._hub.state() is State.CONNECTED:
                # Connected, yet we have no consumer: our channel was closed
                # by a channel error; reopening it resumes us.
                try:
                    await self._access.live()
                    if self._inner is None and not self._parked:
                        await self._resume(self._access.current())  # type: ignore[arg-type]
                except RecoveryTimeout:
                    pass  # a consumer waits for recovery however long it takes
                except (ConnectionClosed, ChannelClosed) as exc:
                    if not self._hub.recovers_from(exc):
                        raise
                continue
            await self._ready.wait()

    def _needs_resume(self, inner_channel: Channel) -> bool:
        if self._cancelled or self._parked:
            return False
        return self._inner is None or self._inner.channel is not inner_channel or self._inner.ended

    async def _resume(self, inner_channel: Channel) -> None:
        """Register the consumer again on ``inner_channel``.

        The ``basic.consume`` runs in a task of its own that the caller's
        cancellation does not stop: once sent, the broker registers the tag
        whatever happens to us, and a consumer registered but not adopted
        would hold deliveries, and make the next attempt reuse a live tag
        (a connection error).  A second caller waits for the same start.
        """
        starting = self._starting
        if starting is None or starting.done():
            starting = self._starting = self._hub.spawn(self._start_inner(inner_channel))
            starting.add_done_callback(retrieve)  # whoever awaited it may be gone
        await asyncio.shield(starting)

    async def _start_inner(self, inner_channel: Channel) -> None:
        arguments = dict(self.arguments) if self.arguments else None
        if self._last_offset is not None:  # a stream: no gap, no duplicate
            arguments = {**(arguments or {}), "x-stream-offset": self._last_offset + 1}
        callback = self._callback
        if callback is not None and self._stream is not False:
            callback = self._tracking(callback)
        consumer = inner_channel.consume(
            self._queue, no_ack=self.no_ack, exclusive=self.exclusive, arguments=arguments,
            consumer_tag=self.consumer_tag, callback=callback,
            on_end=self._inner_ended)
        await consumer.start()
        self.consumer_tag = consumer.consumer_tag
        if self._cancelled:
            await consumer.cancel()  # cancelled by the user while it started
            return
        first = not self._consumed
        self._consumed = True
        self._inner = consumer
        if self._backlogged:
            consumer.set_backlogged(True)
        self._parked = False
        self._ready.set()
        observer = self.channel.connection.observer
        if observer is not None and not first:
            observer.consumer_recovered(self)

    def _inner_ended(self, inner: Consumer, exc: BaseException) -> None:
        """The plain consumer under us ended: the broker stopped delivering
        (a loss, a channel error, a cancel).  Told at once, even while
        nobody iterates."""
        if inner is not self._inner or self._cancelled:
            return
        if self._hub.closing() or getattr(exc, "by_client", False):
            return  # the program closes the connection or channel: _abort() tells
        if self._callback is not None and isinstance(exc, ConsumerCancelled):
            # What ``__anext__`` does for an iterated consumer the broker cancels.
            self._lost(inner)
            self._hub.emit("consumer_cancelled", self)
            self._park()
        self._notify_end(exc)

    def _notify_end(self, exc: BaseException) -> None:
        if self._on_end is None:
            return
        try:
            self._on_end(self, exc)
        except Exception:  # a user hook must not break recovery
            log.exception("consumer on_end callback failed")

    def _park(self) -> None:
        """Wait, in the background, for the queue to exist again."""
        self._parked = True
        if self._watcher is None or self._watcher.done():
            self._watcher = self._hub.spawn(self._watch_queue())

    async def _watch_queue(self) -> None:
        backoff = self.channel.connection.backoff
        attempt = 0
        while self._parked and not self._cancelled and self._exc is None:
            attempt += 1
            await asyncio.sleep(backoff.delay(min(attempt, 8)) + 0.05)
            try:
                conn = await self._hub.wait_connected(None)
                probe = await conn.channel()
                try:
                    await probe.queue_declare(self._queue, passive=True)
                finally:
                    await probe.close()
                if self._parked and not self._cancelled:
                    inner = await self._access.live()
                    self._parked = False
                    await self._resume(inner)
                    log.info("consumer %r consumes again", self.consumer_tag, extra=fields(
                        self.channel.connection.params, queue=self._queue, consumer_tag=self.consumer_tag))
            except (ConnectionClosed, ChannelClosed):
                self._parked = True  # not there yet (or the connection dropped): try again

    def _rename(self, queue: str) -> None:
        self._queue = queue

    def _stop_watching(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None

    def _abort(self, exc: BaseException) -> None:
        first = self._exc is None and not self._cancelled
        self._exc = exc
        self._stop_watching()
        self._ready.set()
        if first:
            self._notify_end(exc)

    def _track(self, msg: IncomingMessage) -> None:
        if self._stream is False:
            return
        offset = msg.stream_offset
        if self._stream is None:
            self._stream = offset is not None
        if offset is not None:
            self._last_offset = offset

    def _tracking(self, callback: Callable[[IncomingMessage], Any]) -> Callable[[IncomingMessage], Any]:
        def tracked(msg: IncomingMessage) -> Any:
            self._track(msg)
            return callback(msg)

        if is_async_callable(callback):
            async def tracked_async(msg: IncomingMessage) -> Any:
                self._track(msg)
                return await callback(msg)

            return tracked_async
        return tracked
