"""A blocking API: aiorabbit's async core on a background event-loop thread.

For scripts, threaded web apps and programs written after pika's
``BlockingConnection``::

    with aiorabbit.blocking.connect() as conn:
        ch = conn.channel(publisher_confirms=True)
        ch.queue_declare("hello")
        ch.basic_publish(b"Hello World!", routing_key="hello")   # returns once confirmed
        for msg in ch.consume("hello", inactivity_timeout=1):
            if msg is None:
                break
            print(msg.body)
            msg.ack()

Every connection runs its own event loop in a daemon thread (the standard
library's ``asyncio.run_coroutine_threadsafe`` is all it takes: anyio's
blocking portal would add a dependency and nothing this needs).  Calls from
any thread are safe and run on that loop; heartbeats and confirms keep
flowing there while application code blocks.  Callbacks never run on the
I/O thread: ``start_consuming()`` calls them on the thread that called it.
Exceptions are the async API's classes.  ``close()`` closes the connection
and joins the thread.
"""

from __future__ import annotations

import asyncio
import functools
import queue as queue_module
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Concatenate, ParamSpec, TypeVar

from .channel import Channel
from .connection import Connection
from .connection import connect as connect_async
from .consumer import Consumer
from .exceptions import InvalidArgument
from .message import IncomingMessage
from .robust import RobustChannel, RobustConnection, RobustConsumer
from .robust import connect_robust as connect_robust_async

__all__ = ["BlockingChannel", "BlockingConnection", "BlockingMessage", "connect", "connect_robust"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class _LoopThread:
    """An event loop running in a daemon thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="aiorabbit-io", daemon=True)
        self._thread.start()

    def run(self, awaitable: Awaitable[T], timeout: float | None = None) -> T:
        """Await ``awaitable`` on the loop and wait for its result in this
        thread.

        Interrupted (Ctrl-C) or timed out here, it is cancelled there, so
        nothing it started goes on behind the caller's back."""
        coro = awaitable if asyncio.iscoroutine(awaitable) else _awaited(awaitable)
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a blocking aiorabbit call from the I/O thread would wait for ever")
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        try:
            return future.result(timeout)
        except BaseException:
            future.cancel()
            raise

    def call(self, fn: Callable[[], T]) -> T:
        """Run a plain function on the loop; its result or its exception."""
        async def wrapper() -> T:
            return fn()

        return self.run(wrapper())

    def stop(self) -> None:
        """Stop the loop and join its thread (idempotent)."""
        if not self._thread.is_alive():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join()
        self.loop.close()


def connect(url: str | None = None, **options: Any) -> BlockingConnection:
    """Open a connection (the arguments of :func:`aiorabbit.connect`)."""
    return BlockingConnection._open(connect_async(url, **options))


def connect_robust(url: str | list[str] | None = None, **options: Any) -> BlockingConnection:
    """Open a recovering connection (the arguments of
    :func:`aiorabbit.connect_robust`)."""
    return BlockingConnection._open(connect_robust_async(url, **options))


class BlockingConnection:
    """A connection driven from blocking code; use :func:`connect`."""

    def __init__(self, io: _LoopThread, conn: Connection | RobustConnection) -> None:
        self._io = io
        self._conn = conn

    @classmethod
    def _open(cls, opening: Awaitable[Connection | RobustConnection]) -> BlockingConnection:
        io = _LoopThread()
        try:
            conn = io.run(opening)
        except BaseException:
            io.stop()
            raise
        return cls(io, conn)

    @property
    def connection(self) -> Connection | RobustConnection:
        """The async connection underneath (use it only on its own loop)."""
        return self._conn

    @property
    def is_open(self) -> bool:
        """True while the connection is usable."""
        return self._conn.is_open

    @property
    def is_closed(self) -> bool:
        """True once closed."""
        return self._conn.is_closed or not self._io.loop.is_running()

    def channel(self, *, publisher_confirms: bool = False) -> BlockingChannel:
        """Open a channel; with ``publisher_confirms`` each publish returns
        once the broker confirmed it."""
        opening: Awaitable[Channel | RobustChannel] = self._conn.channel(
            publisher_confirms=publisher_confirms)
        return BlockingChannel(self, self._io.run(opening))

    def close(self) -> None:
        """Close the connection and join its I/O thread (idempotent)."""
        if self._io.loop.is_closed():
            return
        try:
            self._io.run(self._conn.close())
        finally:
            self._io.stop()

    def __enter__(self) -> BlockingConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<aiorabbit.blocking.BlockingConnection {self._conn!r}>"


def _blocking(
    method: Callable[Concatenate[Any, P], Awaitable[R]],
) -> Callable[Concatenate[BlockingChannel, P], R]:
    """The blocking form of a channel method: the same arguments, run on the
    connection's loop."""
    name = method.__name__

    def call(self: BlockingChannel, /, *args: P.args, **kwargs: P.kwargs) -> R:
        result: R = self._io.run(getattr(self._channel, name)(*args, **kwargs))
        return result

    call.__name__ = call.__qualname__ = name
    call.__doc__ = method.__doc__
    return call


class BlockingMessage:
    """A delivery: the :class:`~aiorabbit.IncomingMessage` attributes, and
    ``ack()``/``nack()``/``reject()`` as plain calls from any thread."""

    __slots__ = ("_io", "message")

    def __init__(self, io: _LoopThread, message: IncomingMessage) -> None:
        self._io = io
        #: The async message underneath.
        self.message = message

    def __getattr__(self, name: str) -> Any:
        return getattr(self.message, name)

    def ack(self, *, multiple: bool = False) -> None:
        """Acknowledge the message (``multiple``: and every earlier one)."""
        self._io.call(functools.partial(self.message.ack, multiple=multiple))

    def nack(self, *, requeue: bool = True, multiple: bool = False) -> None:
        """Negatively acknowledge the message."""
        self._io.call(functools.partial(self.message.nack, requeue=requeue, multiple=multiple))

    def reject(self, *, requeue: bool = True) -> None:
        """Reject the message; ``requeue=False`` dead-letters or drops it."""
        self._io.call(functools.partial(self.message.reject, requeue=requeue))

    def __repr__(self) -> str:
        return repr(self.message).replace("<IncomingMessage", "<BlockingMessage", 1)


class BlockingChannel:
    """A channel driven from blocking code: the async channel's methods,
    blocking until done (a confirmed publish until the broker's confirm)."""

    def __init__(self, conn: BlockingConnection, channel: Channel | RobustChannel) -> None:
        self._conn = conn
        self._io = conn._io  # seam: the connection's own loop thread, shared by its channels
        self._channel = channel
        self._consumers: list[tuple[Consumer | RobustConsumer, Callable[[BlockingMessage], Any]]] = []
        self._deliveries: queue_module.SimpleQueue[Any] = queue_module.SimpleQueue()
        self._consuming = False

    @property
    def channel(self) -> Channel | RobustChannel:
        """The async channel underneath."""
        return self._channel

    @property
    def is_open(self) -> bool:
        """True while the channel is usable."""
        return self._channel.is_open

    exchange_declare = _blocking(Channel.exchange_declare)
    exchange_delete = _blocking(Channel.exchange_delete)
    exchange_bind = _blocking(Channel.exchange_bind)
    exchange_unbind = _blocking(Channel.exchange_unbind)
    queue_declare = _blocking(Channel.queue_declare)
    queue_bind = _blocking(Channel.queue_bind)
    queue_unbind = _blocking(Channel.queue_unbind)
    queue_purge = _blocking(Channel.queue_purge)
    queue_delete = _blocking(Channel.queue_delete)
    basic_qos = _blocking(Channel.basic_qos)
    basic_publish = _blocking(Channel.basic_publish)
    basic_recover = _blocking(Channel.basic_recover)
    confirm_select = _blocking(Channel.confirm_select)
    tx_select = _blocking(Channel.tx_select)
    tx_commit = _blocking(Channel.tx_commit)
    tx_rollback = _blocking(Channel.tx_rollback)
    flow = _blocking(Channel.flow)

    def basic_get(
        self, queue: str, *, no_ack: bool = False, timeout: float | None = None
    ) -> BlockingMessage | None:
        """Fetch one message from ``queue``, or ``None`` if it is empty."""
        msg = self._io.run(self._channel.basic_get(queue, no_ack=no_ack, timeout=timeout))
        return BlockingMessage(self._io, msg) if msg is not None else None

    def close(self) -> None:
        """Close the channel (idempotent)."""
        if not self._io.loop.is_closed():
            self._io.run(self._channel.close())

    def __enter__(self) -> BlockingChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- consuming ---------------------------------------------------------------

    def consume(
        self,
        queue: str,
        *,
        no_ack: bool = False,
        exclusive: bool = False,
        arguments: dict[str, Any] | None = None,
        inactivity_timeout: float | None = None,
    ) -> Iterator[BlockingMessage | None]:
        """Iterate over the deliveries of ``queue``.  With
        ``inactivity_timeout`` it yields ``None`` after that many seconds
        without one (as pika's ``consume`` does).  Leaving the loop (or
        closing the generator) cancels the consumer and requeues what it
        had not handed out."""
        async def start() -> Consumer | RobustConsumer:
            consumer = self._channel.consume(queue, no_ack=no_ack, exclusive=exclusive, arguments=arguments)
            await consumer.start()
            return consumer

        consumer = self._io.run(start())
        try:
            while True:
                try:
                    msg = self._io.run(_next(consumer, inactivity_timeout))
                except StopAsyncIteration:
                    return
                yield BlockingMessage(self._io, msg) if msg is not None else None
        finally:
            if not self._io.loop.is_closed():
                self._io.run(consumer.cancel())

    def basic_consume(
        self,
        queue: str,
        callback: Callable[[BlockingMessage], Any],
        *,
        no_ack: bool = False,
        exclusive: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> str:
        """Register ``callback(message)`` for the deliveries of ``queue``; it
        runs in the thread that calls :meth:`start_consuming`.  Returns the
        consumer tag."""
        deliveries = self._deliveries

        def handoff(msg: IncomingMessage) -> None:  # on the I/O thread: queue it, nothing more
            deliveries.put((callback, msg))

        async def start() -> Consumer | RobustConsumer:
            consumer = self._channel.consume(
                queue, no_ack=no_ack, exclusive=exclusive, arguments=arguments, callback=handoff,
                on_end=self._consumer_ended)
            await consumer.start()
            return consumer

        consumer = self._io.run(start())
        self._consumers.append((consumer, callback))
        return consumer.consumer_tag or ""

    def _consumer_ended(self, consumer: Any, error: BaseException) -> None:
        if getattr(consumer, "ended", True):
            self._deliveries.put(error)

    def start_consuming(self, *, timeout: float | None = None) -> None:
        """Run the registered callbacks here, one message at a time, until
        :meth:`stop_consuming` (from a callback or another thread), the
        consumers ended, or ``timeout`` seconds without a delivery.  A
        channel or connection error is raised."""
        self._consuming = True
        try:
            while self._consuming and self._consumers:
                try:
                    item = self._deliveries.get(timeout=timeout)
                except queue_module.Empty:
                    return
                if item is None:
                    continue
                if isinstance(item, BaseException):
                    if getattr(item, "by_client", False):
                        return
                    raise item
                callback, msg = item
                callback(BlockingMessage(self._io, msg))
        finally:
            self._consuming = False

    def stop_consuming(self) -> None:
        """Make :meth:`start_consuming` return after the callback running now;
        the consumers stay registered (:meth:`basic_cancel` ends one)."""
        self._consuming = False
        self._deliveries.put(None)

    def basic_cancel(self, consumer_tag: str) -> None:
        """Cancel the consumer with ``consumer_tag``."""
        for consumer, callback in list(self._consumers):
            if consumer.consumer_tag == consumer_tag:
                self._consumers.remove((consumer, callback))
                self._io.run(consumer.cancel())
                return
        raise InvalidArgument(f"no consumer {consumer_tag!r} on this channel")

    def __repr__(self) -> str:
        return f"<aiorabbit.blocking.BlockingChannel {self._channel!r}>"


async def _awaited(awaitable: Awaitable[T]) -> T:
    """A coroutine of any awaitable (``run_coroutine_threadsafe`` takes
    coroutines only)."""
    return await awaitable


async def _next(consumer: Consumer | RobustConsumer, timeout: float | None) -> IncomingMessage | None:
    """The next delivery, ``None`` after ``timeout`` seconds without one."""
    try:
        return await asyncio.wait_for(consumer.__anext__(), timeout)
    except asyncio.TimeoutError:
        return None
