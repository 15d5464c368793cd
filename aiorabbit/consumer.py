"""Consumers: ``async for`` over deliveries, or a callback per message."""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, NamedTuple

from ._compat import wait_for
from ._inputs import is_async_callable
from ._logging import fields
from .exceptions import AMQPError, ChannelClosed, ConnectionClosed, ConsumerCancelled
from .message import give_back
from .observe import Observer, processing
from .reading import ReadGate

if TYPE_CHECKING:
    from .channel import Channel
    from .message import IncomingMessage

__all__ = ["Consumer", "ConsumerHooks", "ConsumerPort"]

log = logging.getLogger("aiorabbit.consumer")

# With no_ack the broker applies no prefetch limit; past this many buffered
# messages the connection stops reading from the socket until the consumer
# catches up, so memory stays bounded.  It reads on while a reply, a confirm
# or a close-ok is due on the connection, so nothing waits behind the
# backlog (the backlog may then grow past this mark for that long).
NO_ACK_HIGH_WATER = 2000
#: ... or once the buffered bodies hold about this many bytes (estimated
#: from the size of the delivery that crosses the mark: no count per take).
NO_ACK_HIGH_BYTES = 32 * 1024 * 1024


class ConsumerPort(NamedTuple):
    """How the channel reaches a consumer it registered."""

    consumer: Consumer
    #: Hand over one delivery.
    deliver: Callable[[IncomingMessage], None]
    #: The consumer ended (cancelled by the broker, channel or connection closed).
    end: Callable[[BaseException], None]
    no_ack: bool


class ConsumerHooks(NamedTuple):
    """What a consumer gets from its channel at creation."""

    #: Send ``basic.consume``; return the tag.
    register: Callable[[Consumer, ConsumerPort], Awaitable[str]]
    #: Send ``basic.cancel`` (nothing if the channel is not open).
    unregister: Callable[[Consumer], Awaitable[None]]
    #: Stop reading while a no_ack backlog is full.
    reading: ReadGate
    #: The connection's observer, if any.
    observer: Observer | None = None


class Consumer:
    """A running ``basic.consume``.

    Use it as ``async with channel.consume(queue) as messages:`` and then
    ``async for message in messages:``.  Messages are buffered between the
    socket and the iterator; the broker bounds that buffer by the channel's
    prefetch (``basic_qos``).  Leaving the ``async with`` block cancels the
    consumer and rejects (requeues) what was delivered but not handed out.
    """

    def __init__(
        self,
        channel: Channel,
        queue: str,
        *,
        no_ack: bool = False,
        exclusive: bool = False,
        arguments: Mapping[str, Any] | None = None,
        consumer_tag: str | None = None,
        callback: Callable[[IncomingMessage], Any] | None = None,
        on_end: Callable[[Consumer, BaseException], None] | None = None,
        hooks: ConsumerHooks,
    ) -> None:
        self.channel = channel
        self.queue = queue
        self.no_ack = no_ack
        self.exclusive = exclusive
        self.arguments = arguments
        #: The tag, known once the broker accepted the consumer.
        self.consumer_tag: str | None = consumer_tag
        self._buffer: collections.deque[IncomingMessage] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._exc: BaseException | None = None
        self._started = False
        self._cancelled = False
        self._reading_paused = False
        # Reading resumes once the buffer is shorter than this.
        self._resume_below = NO_ACK_HIGH_WATER // 2
        self._callback = callback
        self._async_callback = callback is not None and is_async_callable(callback)
        self._worker: asyncio.Task[None] | None = None
        # Told at once when the consumer ends (a callback consumer has no
        # iterator that would notice).
        self._on_end = on_end
        self._hooks = hooks
        self._reading = hooks.reading
        self._obs = hooks.observer
        # With an observer: the message the iterator handed out last and its
        # token, until the next one is asked for.
        self._in_hand: tuple[IncomingMessage, Any] | None = None

    # ------------------------------------------------------------------
    # lifecycle

    async def start(self) -> Consumer:
        """Send ``basic.consume`` (done by ``async with``)."""
        if self._started:
            return self
        self._started = True
        await self._hooks.register(self, ConsumerPort(self, self._deliver, self._fail, self.no_ack))
        if self._obs is not None:
            self._obs.consumer_started(self)
        if self._async_callback:
            self._worker = asyncio.get_running_loop().create_task(self._run_callbacks())
        return self

    async def cancel(self) -> None:
        """Cancel the consumer (idempotent) and requeue undelivered messages."""
        if self._cancelled:
            return
        self._cancelled = True
        self._end_in_hand(None)
        try:
            await self._hooks.unregister(self)
        except AMQPError:
            pass
        finally:
            self._return_buffered()
            if self._exc is None:
                self._exc = StopAsyncIteration()
            self._wake()
            if self._worker is not None and self._worker is not asyncio.current_task():
                self._worker.cancel()

    async def __aenter__(self) -> Consumer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.cancel()

    @property
    def error(self) -> BaseException | None:
        """Why the consumer ended, once it has: the broker's cancel
        (:class:`ConsumerCancelled`), or the channel's or connection's
        error; ``None`` while it runs and after a clean end (``cancel()``,
        or the program closing its channel or connection)."""
        exc = self._exc
        return None if exc is None or isinstance(exc, StopAsyncIteration) else exc

    @property
    def ended(self) -> bool:
        """True once the consumer ended, for whatever reason."""
        return self._exc is not None

    @property
    def buffered(self) -> int:
        """Deliveries received and not yet handed out."""
        return len(self._buffer)

    def __repr__(self) -> str:
        return f"<aiorabbit.Consumer queue={self.queue!r} tag={self.consumer_tag!r}>"

    # ------------------------------------------------------------------
    # iteration

    def __aiter__(self) -> Consumer:
        return self

    async def __anext__(self) -> IncomingMessage:
        if self._obs is not None:
            return await self._next_observed()
        buffer = self._buffer
        if buffer and not self._reading_paused:
            return buffer.popleft()  # the common case: no wait, no second coroutine
        return await self.take()

    async def take(self) -> IncomingMessage:
        """The next message, like ``async for``, except that the observer is
        not told when its handling starts and ends: the caller reports it
        with :meth:`processing`.  For programs that hand messages to
        concurrent tasks (the next message is taken before the last one
        is done)."""
        buffer = self._buffer
        while not buffer:
            if self._exc is not None:
                if isinstance(self._exc, StopAsyncIteration):
                    raise StopAsyncIteration
                raise self._exc
            if not self._started:
                raise RuntimeError("use the consumer inside 'async with' (or await start())")
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        msg = buffer.popleft()
        if self._reading_paused and len(buffer) < self._resume_below:
            self._reading_paused = False
            self._reading.backlog_drained()
        return msg

    def processing(self, message: IncomingMessage) -> AbstractContextManager[None]:
        """``with consumer.processing(msg):`` around the handling of a message
        from :meth:`take`: the observer sees it start and end there (and a
        tracing observer makes its span current inside)."""
        return processing(self._obs, self, message)

    async def _next_observed(self) -> IncomingMessage:
        obs = self._obs
        assert obs is not None
        self._end_in_hand(None)  # asking for the next one ends the last one
        msg = await self.take()
        self._in_hand = (msg, obs.delivery_started(self, msg, False))
        return msg

    def _end_in_hand(self, error: BaseException | None) -> None:
        in_hand = self._in_hand
        if in_hand is not None:  # only ever set with an observer
            self._in_hand = None
            assert self._obs is not None
            self._obs.delivery_ended(self, in_hand[0], in_hand[1], error)

    async def get(self, timeout: float | None = None) -> IncomingMessage:
        """The next message (waiting up to ``timeout`` seconds)."""
        return await wait_for(self.__anext__(), timeout)

    # ------------------------------------------------------------------
    # called by the channel

    def _deliver(self, msg: IncomingMessage) -> None:
        if self._obs is not None:
            self._obs.delivery_received(self, msg)
        if self._callback is not None and not self._async_callback:
            try:
                with self.processing(msg):
                    self._callback(msg)
            except Exception:
                log.exception("consumer callback failed for %r", msg, extra=self._log_fields())
            return
        buffer = self._buffer
        buffer.append(msg)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self.no_ack:
            high = NO_ACK_HIGH_WATER
            size = msg.body_size
            if size * NO_ACK_HIGH_WATER > NO_ACK_HIGH_BYTES:  # large bodies: bound the bytes
                high = max(2, NO_ACK_HIGH_BYTES // size)
            if len(buffer) >= high:
                self._resume_below = high // 2
                self.set_backlogged(True)

    def set_backlogged(self, full: bool) -> None:
        """For a callback consumer that hands its messages on (to a thread,
        a queue of its own): ``True`` says that place is full, and the
        connection stops reading from the socket, as it does for a
        ``no_ack`` iterator past its bound, until ``set_backlogged(False)``.
        It reads on while a reply, a confirm or a close-ok is due."""
        if not full:
            if self._reading_paused:
                self._reading_paused = False
                self._reading.backlog_drained()
        elif not self._reading_paused:
            self._reading_paused = True
            self._reading.backlog_full()
        elif not self._reading.paused:
            # Reading went on for a reply; pause again once none is due.
            self._reading.update()

    def _fail(self, exc: BaseException) -> None:
        """End the iteration with ``exc`` after the buffered messages (cleanly
        when the program itself closed the channel or connection)."""
        if self._exc is None:
            self._exc = StopAsyncIteration() if getattr(exc, "by_client", False) else exc
            if self._obs is not None and isinstance(exc, ConsumerCancelled):
                self._obs.consumer_cancelled(self, exc)
            if self._on_end is not None:
                self._on_end(self, exc)
        if isinstance(exc, (ChannelClosed, ConnectionClosed)):
            # Their delivery tags are dead: handing them out would only lead
            # to settle errors, and the broker requeues them anyway.
            if not self.no_ack:
                if self._obs is not None:
                    for msg in self._buffer:
                        self._obs.delivery_dropped(self, msg, exc)
                self._buffer.clear()
        self.set_backlogged(False)
        self._wake()

    def _log_fields(self, reply_code: int | None = None) -> dict[str, Any]:
        channel = self.channel
        return fields(channel.connection.params, channel=channel.number, queue=self.queue,
                      consumer_tag=self.consumer_tag, reply_code=reply_code)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _return_buffered(self) -> None:
        buffer = self._buffer
        self.set_backlogged(False)
        if self.no_ack or not self.channel.is_open:
            buffer.clear()
            return
        while buffer:
            msg = buffer.popleft()
            if not msg.settled:
                give_back(msg)

    async def _run_callbacks(self) -> None:
        assert self._callback is not None
        try:
            while True:
                msg = await self.take()
                try:
                    with self.processing(msg):
                        await self._callback(msg)
                except Exception:
                    log.exception("consumer callback failed for %r", msg, extra=self._log_fields())
        except StopAsyncIteration:
            pass
        except ConsumerCancelled:
            log.info("consumer %r ended: cancelled by the broker", self.consumer_tag,
                     extra=self._log_fields())
        except AMQPError as exc:
            log.info("consumer %r ended: %s", self.consumer_tag, exc,
                     extra=self._log_fields(getattr(exc, "reply_code", None)))
