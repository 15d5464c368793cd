"""Request/reply over RabbitMQ: :class:`RpcClient` and :class:`RpcServer`.

The client uses RabbitMQ's *direct reply-to*: it consumes the pseudo-queue
``amq.rabbitmq.reply-to`` on its channel (no queue is declared per client or
per call) and publishes each request with ``reply_to`` set to it and a
correlation id of its own; the broker routes the server's reply straight
back to that channel.  Any number of calls may be in flight on the one
channel; each reply is matched to its call by correlation id.

The server consumes a queue, awaits an async handler for each request,
publishes the handler's result to the request's ``reply_to`` with the same
correlation id, and only then acknowledges the request.  A handler that
raises is answered with an error reply (headers ``x-error-type`` and
``x-error``), which the client raises as :class:`RemoteError`.

Requests are not retried: a call whose reply was lost (timeout, connection
loss) may or may not have been processed.  See ``docs/rpc.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import enum
import itertools
import logging
import math
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Union

from ._compat import wait_for
from ._futures import retrieve
from ._inputs import copy_arguments
from .channel import Channel
from .codec import Buffer
from .codec.properties import Properties
from .consumer import Consumer
from .dispatch import Dispatcher
from .exceptions import (
    AMQPError,
    ChannelClosed,
    ConnectionClosed,
    InvalidArgument,
    MessageReturned,
    RemoteError,
    RpcTimeout,
)
from .interface import AnyConnection
from .message import IncomingMessage, ReturnedMessage
from .robust import RobustConsumer

__all__ = [
    "RpcClient",
    "RpcServer",
    "Reply",
    "Handler",
    "RpcTimeout",
    "RemoteError",
    "REPLY_TO",
    "ERROR_TYPE_HEADER",
    "ERROR_HEADER",
]

log = logging.getLogger("aiorabbit.rpc")

#: The direct reply-to pseudo-queue.
REPLY_TO = "amq.rabbitmq.reply-to"
#: Reply header naming the type of the exception a server's handler raised.
ERROR_TYPE_HEADER = "x-error-type"
#: Reply header carrying that exception's message.
ERROR_HEADER = "x-error"
# The content header must fit in one frame (frame_max can be as low as 4096).
_ERROR_TEXT_MAX = 1000


@dataclasses.dataclass(frozen=True)
class Reply:
    """What a handler returns to set reply properties as well as the body
    (the server sets ``correlation_id`` itself)."""

    body: Buffer
    properties: Properties | None = None


#: An :class:`RpcServer` handler: takes the request, returns the reply body
#: (bytes-like) or a :class:`Reply`.  It must not settle the request.
Handler = Callable[[IncomingMessage], Awaitable[Union[Buffer, Reply]]]


class _Default(enum.Enum):
    TIMEOUT = "the client's timeout"


#: :meth:`RpcClient.call`'s ``timeout`` default: the client's own timeout.
CLIENT_TIMEOUT = _Default.TIMEOUT
#: What :meth:`RpcClient.call`'s ``timeout`` takes.
CallTimeout = Union[float, _Default, None]


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):  # not UTF-8, or a byte array
        return value.decode("utf-8", "replace")
    return str(value)


def _level(exc: BaseException) -> int:
    """Log level for a server that stops because of ``exc``: a connection the
    application closed is no error."""
    return logging.INFO if getattr(exc, "reply_code", 0) == 200 else logging.ERROR


def _ttl(timeout: float) -> str:
    return str(max(1, math.ceil(timeout * 1000)))


# ----------------------------------------------------------------------
# client


class RpcClient:
    """Call RPC servers over direct reply-to, many calls at a time on one channel.

    ``async with RpcClient(conn) as rpc:`` then
    ``reply = await rpc.call(body, routing_key="rpc_queue")``.  ``conn`` is
    a :class:`~aiorabbit.Connection` or a :class:`~aiorabbit.RobustConnection`
    (after a loss, later calls wait for recovery and work again).
    ``timeout`` is the default per-call timeout in seconds (``None``: wait
    for ever).

    A call fails with :class:`RpcTimeout` when no reply comes in time,
    :class:`RemoteError` when the server's handler raised,
    :class:`~aiorabbit.MessageReturned` at once when no queue takes the
    request, and with the channel's or connection's error the moment the
    channel closes or the connection is lost (its reply could no longer
    arrive).
    """

    def __init__(self, conn: AnyConnection, *, timeout: float | None = 30.0) -> None:
        if timeout is not None and not timeout > 0:
            raise InvalidArgument("timeout must be positive or None")
        self._conn = conn
        #: Default timeout of :meth:`call`, in seconds (``None``: no limit).
        self.timeout = timeout
        self._channel: Any = None  # a Channel, or a RobustChannel on a robust connection
        self._opening: asyncio.Task[Any] | None = None
        # The plain channel whose reply consumer was lost (its replies too).
        self._lost_channel: Channel | None = None
        self._pending: dict[str, asyncio.Future[IncomingMessage]] = {}
        # Correlation ids only have to be unique among this client's calls
        # (replies come back on its channel alone); the random prefix keeps
        # them apart from other clients' in logs and traces.
        self._prefix = uuid.uuid4().hex[:12] + "."
        self._ids = itertools.count(1)
        self._closed = False
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def channel(self) -> Channel | None:
        """The plain channel calls go through now: ``None`` before the
        first call and while the connection is down (replaced after a loss;
        on a robust connection the robust channel beneath reopens it)."""
        channel = self._channel
        if channel is None:
            return None
        plain: Channel | None = getattr(channel, "channel", channel)  # a RobustChannel's plain one
        if plain is None or plain is self._lost_channel or plain.is_closed:
            return None
        return plain

    @property
    def pending(self) -> int:
        """Calls waiting for their reply."""
        return len(self._pending)

    @property
    def is_closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def __repr__(self) -> str:
        return f"<aiorabbit.rpc.RpcClient pending={len(self._pending)} {self._channel!r}>"

    async def __aenter__(self) -> RpcClient:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> RpcClient:
        """Open the channel and start consuming replies (done by
        ``async with``, or by the first call)."""
        if self._channel is None:
            await self._ready(None, None)
        return self

    async def close(self) -> None:
        """Close the client (idempotent): pending calls fail with
        :class:`~aiorabbit.ChannelClosed` and the channel closes."""
        if self._closed:
            return
        self._closed = True
        self._fail_pending(ChannelClosed(200, "RPC client closed"))
        opening = self._opening
        if opening is not None and not opening.done():
            opening.cancel()
            await asyncio.wait([opening])
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close()
        if self._tasks:
            await asyncio.wait(set(self._tasks))

    async def call(
        self,
        body: Buffer,
        *,
        routing_key: str,
        exchange: str = "",
        properties: Properties | None = None,
        timeout: float | _Default | None = _Default.TIMEOUT,
    ) -> IncomingMessage:
        """Send a request and return the reply.

        ``properties`` may carry headers, ``content_type``, ``message_id``...
        but not ``correlation_id`` nor ``reply_to``, which the client sets.
        Unless they set ``expiration``, a request with a timeout expires in
        its queue when the call times out: a server does not get requests
        nobody waits for any more.  ``timeout`` (seconds; ``None``: no
        limit) defaults to the client's and covers the whole call,
        including waiting for the channel or for recovery.

        Raises :class:`RpcTimeout`, :class:`RemoteError`,
        :class:`~aiorabbit.MessageReturned` (unroutable request), and the
        channel's or connection's error if it closes before the reply.
        """
        if timeout is _Default.TIMEOUT:
            timeout = self.timeout
        elif timeout is not None and not timeout > 0:
            raise InvalidArgument("timeout must be positive or None")
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        cid = f"{self._prefix}{next(self._ids):x}"
        props = _request_properties(properties, cid, timeout)
        while True:
            channel = self._channel
            if channel is None:
                channel = await self._ready(deadline, timeout)
            fut: asyncio.Future[IncomingMessage] = loop.create_future()
            self._pending[cid] = fut
            # A timer rather than wait_for(): no task per call.
            timer = None
            if timeout is not None and deadline is not None:
                timer = loop.call_at(deadline, self._expire, fut, cid, timeout)
            try:
                try:
                    await self._publish(channel, body, exchange, routing_key, props, deadline, cid, timeout)
                except (ConnectionClosed, ChannelClosed) as exc:
                    if self._channel is channel and channel.is_closed:
                        self._channel = None  # a plain channel: a new one next time
                    if not self._conn.recovers_from(exc):
                        raise
                    continue  # not sent: try again on the recovered connection
                return await fut
            finally:
                if timer is not None:
                    timer.cancel()
                self._pending.pop(cid, None)
                if not fut.done():
                    fut.cancel()
                elif not fut.cancelled():
                    fut.exception()  # retrieved, even when the caller was cancelled

    async def _publish(
        self,
        channel: Any,
        body: Buffer,
        exchange: str,
        routing_key: str,
        props: Properties,
        deadline: float | None,
        cid: str,
        timeout: float | None,
    ) -> None:
        # mandatory: a request no queue takes comes back at once (basic.return).
        publish = channel.basic_publish(
            body, exchange=exchange, routing_key=routing_key, properties=props, mandatory=True
        )
        conn = channel.connection
        if deadline is None or conn.is_writable:
            await publish
            return
        # The publish has to wait (a blocked connection, a full socket
        # buffer, recovery): not past the call's deadline.  A publish that
        # times out waiting was never sent.
        try:
            await wait_for(publish, deadline - asyncio.get_running_loop().time())
        except asyncio.TimeoutError:
            assert timeout is not None
            raise RpcTimeout(timeout) from None

    def _expire(self, fut: asyncio.Future[IncomingMessage], cid: str, timeout: float) -> None:
        self._pending.pop(cid, None)
        # Done already if the reply came in the same loop turn, or the
        # caller was cancelled; its own cleanup has not run yet.
        if not fut.done():  # pragma: no branch
            fut.set_exception(RpcTimeout(timeout, cid))

    async def _ready(self, deadline: float | None, timeout: float | None) -> Any:
        """The channel, opened (once, whoever asks) if there is none; raise
        :class:`RpcTimeout` (for a call of ``timeout``) at ``deadline``."""
        if self._closed:
            raise ChannelClosed(200, "RPC client is closed")
        opening = self._opening
        if opening is None or opening.done():
            opening = self._opening = asyncio.ensure_future(self._open())
            opening.add_done_callback(retrieve)
        # asyncio.wait neither cancels the shared opening on our timeout or
        # cancellation, nor raises when close() cancels it.
        remaining = None if deadline is None else max(0.0, deadline - asyncio.get_running_loop().time())
        await asyncio.wait([opening], timeout=remaining)
        if not opening.done():
            assert timeout is not None  # only a deadline cuts the wait short
            raise RpcTimeout(timeout)
        if opening.cancelled() or self._closed:
            # A call registered now would not be failed by close(), which ran.
            raise ChannelClosed(200, "RPC client is closed")
        return opening.result()

    async def _open(self) -> Any:
        # On a robust connection the channel and its reply consumer are
        # robust: they wait for recovery and come back after it.
        channel = await self._conn.channel(on_return=self._on_return)
        try:
            # Direct reply-to needs a no-ack consumer on the publishing channel.
            consumer = channel.consume(REPLY_TO, no_ack=True, callback=self._on_reply,
                                       on_end=self._reply_consumer_ended)
            await consumer.start()
        except BaseException:  # lost (plain connection), or cancelled by close()
            with contextlib.suppress(AMQPError):
                await channel.close()
            raise
        self._channel = channel
        return channel

    def _on_reply(self, msg: IncomingMessage) -> None:
        props = msg.properties
        fut = self._pending.pop(props.correlation_id or "", None)
        if fut is None or fut.done():
            log.debug("dropping a reply no call waits for: %r", props.correlation_id)
            return
        headers = props.headers
        if headers and ERROR_TYPE_HEADER in headers:
            fut.set_exception(
                RemoteError(_text(headers[ERROR_TYPE_HEADER]), _text(headers.get(ERROR_HEADER, "")), msg)
            )
        else:
            fut.set_result(msg)

    def _on_return(self, returned: ReturnedMessage) -> None:
        fut = self._pending.pop(returned.properties.correlation_id or "", None)
        if fut is None or fut.done():
            log.debug("dropping a returned request no call waits for: %r", returned)
            return
        fut.set_exception(MessageReturned(returned))

    def _reply_consumer_ended(self, consumer: Consumer | RobustConsumer, exc: BaseException) -> None:
        channel = consumer.channel
        if channel is not self._channel:
            return  # our own close, or a channel not yet (or no longer) in use
        # Replies to the calls in flight can no longer arrive (direct
        # reply-to is bound to the channel the broker lost).
        self._fail_pending(exc)
        if not consumer.ended:
            # A robust consumer: it consumes again after recovery.
            self._lost_channel = getattr(channel, "channel", None)
            return
        self._channel = None
        if channel.is_open:
            # The broker cancelled the reply consumer: the channel is useless.
            task = asyncio.ensure_future(channel.close())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _fail_pending(self, exc: BaseException) -> None:
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():  # pragma: no branch - cancelled, cleanup not run yet
                fut.set_exception(exc)


def _request_properties(properties: Properties | None, cid: str, timeout: float | None) -> Properties:
    expiration = None if timeout is None else _ttl(timeout)
    if properties is None:
        return Properties(correlation_id=cid, reply_to=REPLY_TO, expiration=expiration)
    if not isinstance(properties, Properties):
        raise InvalidArgument("properties must be an aiorabbit.Properties")
    if properties.correlation_id is not None or properties.reply_to is not None:
        raise InvalidArgument("the RPC client sets correlation_id and reply_to itself")
    if properties.expiration is not None:
        expiration = properties.expiration
    return properties.replace(correlation_id=cid, reply_to=REPLY_TO, expiration=expiration)


# ----------------------------------------------------------------------
# server


class RpcServer:
    """Serve requests from ``queue`` with ``handler``.

    ``async with RpcServer(conn, "rpc_queue", handler) as server:`` then
    ``await server.serve_forever()``.  For each request the server awaits
    ``handler(message)``, publishes what it returns (bytes-like, or a
    :class:`Reply`) to the request's ``reply_to`` with its
    ``correlation_id``, and then acks the request.  If the handler raises,
    the reply is an error reply (the client raises :class:`RemoteError`) and
    the request is acked all the same: a request that fails is not
    redelivered for ever.  A request without ``reply_to`` is handled and
    acked, with no reply.

    Up to ``concurrency`` handlers run at a time.  ``prefetch`` (default:
    ``concurrency``) is how many unacknowledged requests the broker hands
    over; those beyond ``concurrency`` wait in the server.  ``declare``
    declares the queue (with ``durable``, ``auto_delete``, ``arguments``)
    before consuming.  It is durable by default: RabbitMQ 4.3 refuses a
    queue that is neither durable nor exclusive, and several servers share
    the queue, so it cannot be exclusive.

    On a :class:`~aiorabbit.RobustConnection` the server consumes again
    after recovery (requests unacked at the loss are redelivered); on a
    plain connection a loss ends it (:meth:`serve_forever` raises).
    """

    def __init__(
        self,
        conn: AnyConnection,
        queue: str,
        handler: Handler,
        *,
        concurrency: int = 10,
        prefetch: int | None = None,
        declare: bool = True,
        durable: bool = True,
        auto_delete: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> None:
        if not queue:
            raise InvalidArgument("an RPC server needs a queue name")
        if concurrency < 1:
            raise InvalidArgument("concurrency must be at least 1")
        if prefetch is not None and not 1 <= prefetch <= 0xFFFF:
            raise InvalidArgument("prefetch must be from 1 to 65535")
        self._conn = conn
        self.queue = queue
        self.handler = handler
        self.concurrency = concurrency
        self.prefetch = concurrency if prefetch is None else prefetch
        self.declare = declare
        self.durable = durable
        self.auto_delete = auto_delete
        self.arguments = copy_arguments(arguments)
        self._channel: Any = None  # a Channel, or a RobustChannel on a robust connection
        self._consumer: Any = None
        self._dispatcher: Dispatcher | None = None
        self._winding_down: asyncio.Future[None] | None = None
        self._done: asyncio.Future[None] | None = None
        self._started = False
        self._stopping = False

    @property
    def channel(self) -> Any:
        """The channel the server consumes on (a :class:`~aiorabbit.RobustChannel`
        on a robust connection)."""
        return self._channel

    @property
    def in_flight(self) -> int:
        """Handlers running now."""
        return len(self._dispatcher.handlers) if self._dispatcher is not None else 0

    def __repr__(self) -> str:
        return f"<aiorabbit.rpc.RpcServer queue={self.queue!r} in_flight={self.in_flight}>"

    async def __aenter__(self) -> RpcServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _finished(self) -> asyncio.Future[None]:
        done = self._done
        if done is None:
            done = self._done = asyncio.get_running_loop().create_future()
            done.add_done_callback(retrieve)
        return done

    async def start(self) -> RpcServer:
        """Open a channel, set the prefetch, declare the queue and start
        consuming (done by ``async with``)."""
        if self._stopping:
            raise InvalidArgument("start on a closed RpcServer")
        if not self._started:
            self._finished()
            await self._establish()
            self._started = True
        return self

    async def serve_forever(self) -> None:
        """Serve until :meth:`close` (then return) or until the server stops
        for good: its connection closed or was lost without recovery, or
        the broker cancelled its consumer (then raise why)."""
        if not self._stopping:
            await self.start()
        await asyncio.shield(self._finished())

    async def close(self) -> None:
        """Stop consuming, requeue the requests not started, wait for the
        handlers running to reply and ack, and close the channel
        (idempotent).  If ``close()`` is cancelled (``wait_for``), the
        running handlers are cancelled and their requests requeued."""
        if self._stopping:
            return
        self._stopping = True
        consumer, dispatcher = self._consumer, self._dispatcher
        try:
            if dispatcher is not None:
                await dispatcher.stop()  # no request is handed out from here on
            if consumer is not None:
                await consumer.cancel()  # what was not handed out goes back
            if dispatcher is not None:
                await dispatcher.drain()
        finally:
            channel, self._channel = self._channel, None
            if channel is not None:
                await channel.close()  # what is left unacked is requeued
            self._stop(None)

    # -- internals ---------------------------------------------------------

    async def _establish(self) -> None:
        # On a robust connection this is a RobustChannel: it waits for
        # recovery, retries what a loss interrupts, and consumes again after
        # every recovery; there is no loop of ours to write.
        channel = await self._conn.channel()
        try:
            await channel.basic_qos(prefetch_count=self.prefetch)
            if self.declare:
                await channel.queue_declare(self.queue, durable=self.durable, auto_delete=self.auto_delete,
                                            arguments=self.arguments)
            # on_end: told at once, even while every handler slot is taken.
            consumer = channel.consume(self.queue, on_end=self._consumer_ended)
            await consumer.start()
        except BaseException:
            with contextlib.suppress(AMQPError):
                await channel.close()
            raise
        if self._stopping:  # close() ran meanwhile: it had nothing to stop yet
            await consumer.cancel()
            await channel.close()
            return
        self._channel, self._consumer = channel, consumer
        self._dispatcher = Dispatcher(consumer, self._handle, concurrency=self.concurrency,
                                      requeue_on_error=_always, name=f"RPC server {self.queue}")
        error = consumer.error
        if error is not None:  # pragma: no cover - ended between consume-ok and here
            self._consumer_ended(consumer, error)

    def _consumer_ended(self, consumer: Any, error: BaseException) -> None:
        """The consumer ended by itself: its connection closed (or, on a
        plain connection, was lost), or the broker cancelled it.  Requests
        not handed out yet go back to the queue (after a loss the broker
        requeues them itself)."""
        if self._stopping or (self._done is not None and self._done.done()):
            return
        if not consumer.ended:
            # A robust consumer: it consumes again after recovery; requests
            # in flight are redelivered.
            log.warning("RPC server for %r lost its connection (%s); resuming", self.queue, error)
            return
        log.log(_level(error), "RPC server for %r stopped: %s", self.queue, error)
        self._stop(error)
        if self._dispatcher is not None:
            self._winding_down = asyncio.ensure_future(self._wind_down(consumer))

    async def _wind_down(self, consumer: Any) -> None:
        assert self._dispatcher is not None
        await self._dispatcher.stop()
        await consumer.cancel()  # requeues what it still holds

    async def _handle(self, msg: IncomingMessage) -> None:
        """Answer one request; the dispatcher acks it once this returns,
        after the reply.  A reply that cannot be sent raises: the request
        goes back to the queue."""
        request = msg.properties
        try:
            result = await self.handler(msg)
            body, props = _reply(result, request.correlation_id)
        except Exception as exc:
            log.exception("RPC handler for %r failed on %r", self.queue, msg)
            body, props = b"", _error_reply(exc, request.correlation_id)
        if not request.reply_to:
            return
        channel = msg.channel
        try:
            try:
                await channel.basic_publish(body, routing_key=request.reply_to, properties=props)
            except InvalidArgument as exc:  # the handler's properties cannot be sent
                log.error("RPC reply for %r cannot be sent: %s", msg, exc)
                error = _error_reply(exc, request.correlation_id)
                await channel.basic_publish(b"", routing_key=request.reply_to, properties=error)
        except AMQPError as exc:
            log.info("RPC request %r not answered (%s): the broker will redeliver it", msg, exc)
            raise

    def _stop(self, exc: BaseException | None) -> None:
        done = self._finished()
        if not done.done():
            if exc is None:
                done.set_result(None)
            else:
                done.set_exception(exc)


def _always(exc: BaseException) -> bool:
    """A request whose reply could not be sent goes back to the queue."""
    return True


def _reply(result: Buffer | Reply, correlation_id: str | None) -> tuple[Buffer, Properties]:
    props: Properties | None = None
    body: Any = result
    if isinstance(result, Reply):
        body, props = result.body, result.properties
    if not isinstance(body, (bytes, bytearray, memoryview)):
        raise TypeError(f"an RPC handler must return bytes-like or a Reply, not {type(body).__name__}")
    if props is None:
        return body, Properties(correlation_id=correlation_id)
    if not isinstance(props, Properties):
        raise TypeError(f"Reply.properties must be an aiorabbit.Properties, not {type(props).__name__}")
    return body, props.replace(correlation_id=correlation_id)


def _error_reply(exc: BaseException, correlation_id: str | None) -> Properties:
    cls = type(exc)
    name = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    return Properties(
        correlation_id=correlation_id,
        headers={ERROR_TYPE_HEADER: name[:_ERROR_TEXT_MAX], ERROR_HEADER: str(exc)[:_ERROR_TEXT_MAX]},
    )
