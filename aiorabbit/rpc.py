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
import collections
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
from .channel import Channel
from .codec import Buffer
from .codec.properties import Properties
from .consumer import Consumer
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

log = logging.getLogger("aiorabbit")

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


def _watched(
    channel: Channel,
    queue: str,
    callback: Callable[[IncomingMessage], None],
    on_end: Callable[[Consumer, BaseException], None],
    *,
    no_ack: bool,
) -> Consumer:
    """A callback consumer that reports its end (channel or connection
    closed, or cancelled by the broker) the moment it happens, so that what
    depends on it can fail at once instead of waiting for a timeout."""
    return channel.consume(queue, no_ack=no_ack, callback=callback, on_end=on_end)


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
        self._channel: Channel | None = None
        self._opening: asyncio.Task[Channel] | None = None
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
        """The channel calls go through right now (replaced after a loss)."""
        return self._channel

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
                    if self._channel is channel:
                        self._channel = None
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
        channel: Channel,
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
        # buffer): not past the call's deadline.
        try:
            await wait_for(publish, deadline - asyncio.get_running_loop().time())
        except asyncio.TimeoutError:
            assert timeout is not None
            raise RpcTimeout(timeout, cid) from None

    def _expire(self, fut: asyncio.Future[IncomingMessage], cid: str, timeout: float) -> None:
        self._pending.pop(cid, None)
        # Done already if the reply came in the same loop turn, or the
        # caller was cancelled; its own cleanup has not run yet.
        if not fut.done():  # pragma: no branch
            fut.set_exception(RpcTimeout(timeout, cid))

    async def _ready(self, deadline: float | None, timeout: float | None) -> Channel:
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

    async def _open(self) -> Channel:
        conn = self._conn
        while True:
            live = await conn.wait_usable()
            channel: Channel | None = None
            try:
                channel = await live.channel(on_return=self._on_return)
                # Direct reply-to needs a no-ack consumer on the publishing channel.
                await _watched(channel, REPLY_TO, self._on_reply, self._reply_consumer_ended,
                               no_ack=True).start()
            except (ConnectionClosed, ChannelClosed) as exc:
                if not conn.recovers_from(exc):
                    raise
                continue
            except BaseException:  # cancelled by close()
                if channel is not None:
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

    def _reply_consumer_ended(self, consumer: Consumer, exc: BaseException) -> None:
        channel = consumer.channel
        if channel is not self._channel:
            return  # our own close, or a channel not yet (or no longer) in use
        self._channel = None
        # Replies to the calls in flight can no longer arrive.
        self._fail_pending(exc)
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
        self.arguments = dict(arguments) if arguments else None
        self._channel: Channel | None = None
        self._consumer: Consumer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._backlog: collections.deque[IncomingMessage] = collections.deque()
        self._resuming: asyncio.Task[None] | None = None
        self._done: asyncio.Future[None] | None = None
        self._started = False
        self._stopping = False

    @property
    def channel(self) -> Channel | None:
        """The channel the server consumes on right now."""
        return self._channel

    @property
    def in_flight(self) -> int:
        """Handlers running now."""
        return len(self._tasks)

    def __repr__(self) -> str:
        return f"<aiorabbit.rpc.RpcServer queue={self.queue!r} in_flight={len(self._tasks)}>"

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
            await self._establish(None)
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
        resuming = self._resuming
        if resuming is not None and not resuming.done():
            resuming.cancel()
            await asyncio.wait([resuming])
        consumer, self._consumer = self._consumer, None
        try:
            if consumer is not None:
                await consumer.cancel()
            self._requeue_backlog()
            if self._tasks:
                await asyncio.wait(set(self._tasks))
        except asyncio.CancelledError:
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        finally:
            channel, self._channel = self._channel, None
            if channel is not None:
                await channel.close()  # what is left unacked is requeued
            self._stop(None)

    # -- internals ---------------------------------------------------------

    async def _establish(self, wait: float | None) -> None:
        conn = self._conn
        while True:
            live = await conn.wait_usable(wait)
            channel: Channel | None = None
            try:
                channel = await live.channel()
                await channel.basic_qos(prefetch_count=self.prefetch)
                if self.declare:
                    await channel.queue_declare(self.queue, durable=self.durable,
                                                auto_delete=self.auto_delete, arguments=self.arguments)
                consumer = _watched(channel, self.queue, self._on_request, self._consumer_ended,
                                    no_ack=False)
                await consumer.start()
            except (ConnectionClosed, ChannelClosed) as exc:
                if not conn.recovers_from(exc):
                    raise
                continue
            except BaseException:
                if channel is not None:
                    await channel.close()
                raise
            if self._stopping:  # close() ran meanwhile: it had nothing to stop yet
                await consumer.cancel()
                await channel.close()
                return
            self._channel, self._consumer = channel, consumer
            error = consumer.error
            if error is not None:  # pragma: no cover - lost between consume-ok and here
                self._consumer_ended(consumer, error)
            return

    def _on_request(self, msg: IncomingMessage) -> None:
        if self._stopping:
            # Delivered before the broker saw our basic.cancel.
            msg.reject(requeue=True)
        elif len(self._tasks) < self.concurrency:
            self._spawn(msg)
        else:
            self._backlog.append(msg)

    def _spawn(self, msg: IncomingMessage) -> None:
        task = asyncio.ensure_future(self._handle(msg))
        self._tasks.add(task)
        task.add_done_callback(self._handled)

    def _handled(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if self._backlog and not self._stopping:
            self._spawn(self._backlog.popleft())

    async def _handle(self, msg: IncomingMessage) -> None:
        request = msg.properties
        try:
            result = await self.handler(msg)
            body, props = _reply(result, request.correlation_id)
        except Exception as exc:
            log.exception("RPC handler for %r failed on %r", self.queue, msg)
            body, props = b"", _error_reply(exc, request.correlation_id)
        channel = msg.channel
        try:
            if request.reply_to:
                try:
                    await channel.basic_publish(body, routing_key=request.reply_to, properties=props)
                except InvalidArgument as exc:  # the handler's properties cannot be sent
                    log.error("RPC reply for %r cannot be sent: %s", msg, exc)
                    error = _error_reply(exc, request.correlation_id)
                    await channel.basic_publish(b"", routing_key=request.reply_to, properties=error)
            # After the reply: a request whose reply never left is redelivered.
            msg.ack()
        except AMQPError as exc:
            log.info("RPC request %r not answered (%s): the broker will redeliver it", msg, exc)

    def _requeue_backlog(self) -> None:
        backlog = self._backlog
        while backlog:
            msg = backlog.popleft()
            if msg.channel.is_open:
                msg.reject(requeue=True)

    def _consumer_ended(self, consumer: Consumer, exc: BaseException) -> None:
        if consumer is not self._consumer:
            return  # cancelled by close(), or replaced
        self._consumer = None
        # Requests not started: back to the queue (after a loss the broker
        # requeues them itself, and their delivery tags are dead).
        self._requeue_backlog()
        if self._conn.recovers_from(exc):
            log.warning("RPC server for %r lost its connection (%s); resuming", self.queue, exc)
            self._resuming = asyncio.ensure_future(self._resume())
        else:
            log.log(_level(exc), "RPC server for %r stopped: %s", self.queue, exc)
            self._stop(exc)

    async def _resume(self) -> None:
        try:
            await self._establish(math.inf)
        except AMQPError as exc:
            log.log(_level(exc), "RPC server for %r could not resume: %s", self.queue, exc)
            self._stop(exc)
            return
        log.info("RPC server for %r consumes again", self.queue)

    def _stop(self, exc: BaseException | None) -> None:
        done = self._finished()
        if not done.done():
            if exc is None:
                done.set_result(None)
            else:
                done.set_exception(exc)


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
