"""AMQP channels: awaitable methods, publishing, confirms and deliveries."""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import struct
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from .codec import methods as m
from .codec._primitives import Buffer, Method
from .codec.frames import encode_content_frames, encode_method_frame
from .codec.properties import Properties
from .consumer import Consumer
from .exceptions import (
    AMQPError,
    BodyTooLarge,
    ChannelClosed,
    ConnectionClosed,
    ConsumerCancelled,
    InvalidArgument,
    MessageAlreadySettled,
    MessageReturned,
    OperationTimeout,
    ProtocolError,
    PublishNacked,
    channel_error,
    closed_by_client,
)
from .message import IncomingMessage, ReturnedMessage

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["Channel", "DeclareOk"]

log = logging.getLogger("aiorabbit")

_NO_PROPERTIES = b"\x00\x00"
# A body whose frame still has this much to come is read straight into its
# assembly buffer (see ``_Protocol.get_buffer``); less is not worth a read.
DIRECT_READ_MIN = 32 * 1024
# Assembly buffers up to this size are kept for the channel's next body.
_SCRATCH_MAX = 8 * 1024 * 1024
_METHOD_CACHE_SIZE = 512
# basic.ack (80) / basic.reject (90) / basic.nack (120) as one whole frame:
# type, channel, size 13, class 60, method, delivery tag, flag bits, frame end.
_SETTLE_FRAME = struct.Struct(">BHIHHQBB")
_SETTLE_METHOD = (80, 120, 90)

ReturnCallback = Callable[[ReturnedMessage], Any]


class DeclareOk(NamedTuple):
    """Result of :meth:`Channel.queue_declare`."""

    queue: str
    message_count: int
    consumer_count: int


class Channel:
    """One AMQP channel.  Open it with :meth:`Connection.channel`.

    Synchronous methods are serialised: one is in flight at a time and the
    others wait their turn in call order.  Publishing and settling are not
    serialised and never wait for one another.

    Each synchronous method takes ``timeout``: the seconds to wait for the
    broker's reply (default: the connection's ``call_timeout``, 600 s;
    ``math.inf`` for no limit).  Past it the call raises
    :class:`~aiorabbit.OperationTimeout` and the channel is closed.
    """

    def __init__(
        self,
        connection: Connection,
        number: int,
        *,
        on_return: ReturnCallback | None = None,
    ) -> None:
        self._conn = connection
        self._loop = connection._loop
        self.number = number
        self.on_return = on_return
        self._rpc_lock = asyncio.Lock()
        self._rpc_waiter: asyncio.Future[Any] | None = None
        self._rpc_request: Method | None = None  # its RESPONSES are what we wait for
        self._rpc_on_reply: Callable[[Any], None] | None = None
        self._closed_exc: BaseException | None = None
        self._closing = False
        self._open_done = False
        # content assembly
        self._content_method: Method | None = None
        self._content_size = 0
        self._content_props = _NO_PROPERTIES
        self._content_buf: bytearray | None = None  # a body arriving in parts
        self._content_got = 0
        self._scratch = bytearray()
        self._max_body = connection.params.max_body_size
        # publishing
        self._method_cache: dict[tuple[str, str, bool], bytes] = {}
        self._confirm_mode = False
        self._publish_seq = 0
        self._confirms: dict[int, asyncio.Future[None]] = {}
        self._confirm_order: collections.deque[int] = collections.deque()
        self._mandatory: collections.deque[tuple[int, str, str]] = collections.deque()
        # consuming
        self._consumers: dict[str, Consumer] = {}
        self._settled_through = 0
        self._handlers: dict[type[Method], Callable[[Any], None]] = {
            m.BasicDeliver: self._on_deliver,
            m.BasicAck: self._on_ack,
            m.BasicNack: self._on_nack,
            m.BasicReturn: self._start_content,
            m.BasicGetOk: self._start_content,
            m.BasicCancel: self._on_server_cancel,
            m.ChannelClose: self._on_close,
            m.ChannelFlow: self._on_flow,
        }

    # ------------------------------------------------------------------
    # state

    @property
    def connection(self) -> Connection:
        """The connection this channel belongs to."""
        return self._conn

    @property
    def is_open(self) -> bool:
        """True while the channel can be used."""
        return self._open_done and self._closed_exc is None and not self._closing

    @property
    def is_closed(self) -> bool:
        """True once the channel is closed."""
        return self._closed_exc is not None

    @property
    def closed_reason(self) -> BaseException | None:
        """Why the channel closed, once it has."""
        return self._closed_exc

    @property
    def publisher_confirms(self) -> bool:
        """True once ``confirm.select`` succeeded on this channel."""
        return self._confirm_mode

    def _check_open(self) -> None:
        exc = self._closed_exc
        if exc is not None:
            if isinstance(exc, ConnectionClosed):
                raise exc
            raise ChannelClosed(
                getattr(exc, "reply_code", 0), getattr(exc, "reply_text", str(exc)), cause=exc
            )

    def __repr__(self) -> str:
        state = "open" if self.is_open else ("closed" if self.is_closed else "opening")
        return f"<aiorabbit.Channel {self.number} {state}>"

    async def __aenter__(self) -> Channel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------
    # synchronous methods

    async def _call(
        self,
        method: Method,
        on_reply: Callable[[Any], None] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Send ``method`` and return its reply, one call at a time, waiting
        at most ``timeout`` seconds (default: the connection's
        ``call_timeout``) once it is sent."""
        self._check_open()
        frame = encode_method_frame(self.number, method)  # bad input raises here
        if timeout is None:
            timeout = self._conn.params.call_timeout
        lock = self._rpc_lock
        await lock.acquire()
        fut: asyncio.Future[Any] | None = None
        timer: asyncio.TimerHandle | None = None
        try:
            self._check_open()
            fut = self._loop.create_future()
            self._rpc_waiter = fut
            self._rpc_request = method
            self._rpc_on_reply = on_reply
            self._conn._send_one(frame)
            self._conn._frame_awaited()
            if timeout is not None and timeout != math.inf:
                timer = self._loop.call_later(timeout, self._reply_overdue, fut, method, timeout)
            return await asyncio.shield(fut)
        finally:
            if timer is not None and (fut is None or fut.done()):
                timer.cancel()
            if fut is None or fut.done():
                lock.release()
            else:
                # Cancelled while the reply is due: the slot stays taken until
                # it arrives, so the next call cannot receive this reply.
                def release(done: asyncio.Future[Any]) -> None:
                    _retrieve(done)
                    lock.release()

                fut.add_done_callback(release)

    def _reply_overdue(self, fut: asyncio.Future[Any], method: Method, timeout: float) -> None:
        """No reply in time: give the channel up.  A late reply would be
        taken for the answer to the next call, so the channel closes and
        keeps its number until the broker confirms (see ``_abandon``)."""
        if fut.done() or fut is not self._rpc_waiter:
            return
        self._abandon(
            OperationTimeout(
                f"no reply to {method.NAME} on channel {self.number} within {timeout:g} s; "
                "the channel is closed"
            ),
            send_close=not isinstance(method, m.ChannelClose),
        )

    def _abandon(self, exc: BaseException, *, send_close: bool) -> None:
        """Close the channel now with ``exc`` without waiting for the broker:
        from here on, frames for it are dropped until its close-ok (or a
        close) arrives, when its number is free again."""
        self._set_closed(exc)
        self._closing = True
        self._on_method = self._drop_method  # type: ignore[method-assign]
        self._on_header = self._drop_content  # type: ignore[method-assign, assignment]
        self._on_body = self._drop_content  # type: ignore[method-assign, assignment]
        if send_close and self._conn.is_open:
            self._conn._send_method(
                self.number,
                m.ChannelClose(reply_code=200, reply_text="abandoned by client", class_id=0, method_id=0),
            )

    def _drop_method(self, method: Method) -> None:
        kind = type(method)
        if kind is m.ChannelClose:
            self._conn._send_method(self.number, m.ChannelCloseOk())
        if kind is m.ChannelClose or kind is m.ChannelCloseOk:
            self._conn._release_channel(self.number)

    def _drop_content(self, *args: Any) -> None:
        pass

    def _awaits_frame(self) -> bool:
        """True while a reply or a confirm is due on this channel."""
        return self._rpc_waiter is not None or bool(self._confirms)

    def _complete_rpc(self, result: Any) -> None:
        fut = self._rpc_waiter
        self._rpc_waiter = None
        if fut is not None and not fut.done():
            fut.set_result(result)

    async def _open(self) -> None:
        await self._call(m.ChannelOpen())
        self._open_done = True

    async def close(self, *, timeout: float | None = None) -> None:
        """Close the channel (idempotent).  Consumers end, pending confirms
        fail with :class:`ChannelClosed`.  It returns within ``timeout``
        (default: the connection's ``call_timeout``) even if the broker
        never answers."""
        if self._closed_exc is not None or self._closing:
            return
        self._closing = True
        abandoned = False
        try:
            await self._call(
                m.ChannelClose(reply_code=200, reply_text="Normal shutdown", class_id=0, method_id=0),
                timeout=timeout,
            )
        except OperationTimeout:
            abandoned = True  # the number is freed when close-ok comes
        except AMQPError:
            pass
        finally:
            self._set_closed(closed_by_client(ChannelClosed(200, "closed by client")))
            if not abandoned:
                self._conn._release_channel(self.number)

    async def flow(self, active: bool, *, timeout: float | None = None) -> bool:
        """Ask the broker to pause (``False``) or resume deliveries."""
        reply = await self._call(m.ChannelFlow(active=active), timeout=timeout)
        return bool(reply.active)

    async def exchange_declare(
        self,
        exchange: str,
        exchange_type: str = "direct",
        *,
        passive: bool = False,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> None:
        """Declare an exchange (``passive``: only check that it exists)."""
        await self._call(
            m.ExchangeDeclare(
                exchange=exchange,
                type=exchange_type,
                passive=passive,
                durable=durable,
                auto_delete=auto_delete,
                internal=internal,
                arguments=_table(arguments),
            ),
            timeout=timeout,
        )

    async def exchange_delete(
        self,
        exchange: str,
        *,
        if_unused: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Delete an exchange."""
        await self._call(m.ExchangeDelete(exchange=exchange, if_unused=if_unused), timeout=timeout)

    async def exchange_bind(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        """Bind exchange ``destination`` to exchange ``source``."""
        await self._call(
            m.ExchangeBind(
                destination=destination, source=source, routing_key=routing_key, arguments=_table(arguments)
            ),
            timeout=timeout,
        )

    async def exchange_unbind(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        """Remove an exchange-to-exchange binding."""
        await self._call(
            m.ExchangeUnbind(
                destination=destination, source=source, routing_key=routing_key, arguments=_table(arguments)
            ),
            timeout=timeout,
        )

    async def queue_declare(
        self,
        queue: str = "",
        *,
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> DeclareOk:
        """Declare a queue; ``queue=""`` lets the broker name it."""
        reply = await self._call(
            m.QueueDeclare(
                queue=queue,
                passive=passive,
                durable=durable,
                exclusive=exclusive,
                auto_delete=auto_delete,
                arguments=_table(arguments),
            ),
            timeout=timeout,
        )
        return DeclareOk(reply.queue, reply.message_count, reply.consumer_count)

    async def queue_bind(
        self,
        queue: str,
        exchange: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        """Bind a queue to an exchange."""
        await self._call(
            m.QueueBind(queue=queue, exchange=exchange, routing_key=routing_key, arguments=_table(arguments)),
            timeout=timeout,
        )

    async def queue_unbind(
        self,
        queue: str,
        exchange: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        """Remove a queue binding."""
        await self._call(
            m.QueueUnbind(
                queue=queue, exchange=exchange, routing_key=routing_key, arguments=_table(arguments)
            ),
            timeout=timeout,
        )

    async def queue_purge(self, queue: str, *, timeout: float | None = None) -> int:
        """Remove every ready message from ``queue``; return how many."""
        reply = await self._call(m.QueuePurge(queue=queue), timeout=timeout)
        return int(reply.message_count)

    async def queue_delete(
        self,
        queue: str,
        *,
        if_unused: bool = False,
        if_empty: bool = False,
        timeout: float | None = None,
    ) -> int:
        """Delete a queue; return how many messages it held."""
        reply = await self._call(
            m.QueueDelete(queue=queue, if_unused=if_unused, if_empty=if_empty),
            timeout=timeout,
        )
        return int(reply.message_count)

    async def basic_qos(
        self,
        prefetch_count: int = 0,
        prefetch_size: int = 0,
        global_qos: bool = False,
        *,
        timeout: float | None = None,
    ) -> None:
        """Limit unacknowledged deliveries (per consumer unless ``global_qos``).

        RabbitMQ 4.3 and later no longer permit ``global_qos`` by default
        and apply such a limit per consumer instead, without an error: a
        warning is logged when the broker is such a version."""
        if global_qos and _version(self._conn.server_properties) >= (4, 3):
            log.warning(
                "RabbitMQ %s applies a global_qos prefetch per consumer unless the deprecated "
                "feature global_qos is permitted in its configuration",
                self._conn.server_properties.get("version"),
            )
        await self._call(
            m.BasicQos(prefetch_size=prefetch_size, prefetch_count=prefetch_count, global_=global_qos),
            timeout=timeout,
        )

    async def basic_recover(self, requeue: bool = True, *, timeout: float | None = None) -> None:
        """Redeliver every unacknowledged message on this channel."""
        await self._call(m.BasicRecover(requeue=requeue), timeout=timeout)

    async def confirm_select(self, *, timeout: float | None = None) -> None:
        """Enable publisher confirms: publishes then wait for the broker's ack."""
        if self._confirm_mode:
            return
        await self._call(m.ConfirmSelect(), timeout=timeout)
        self._confirm_mode = True

    async def tx_select(self, *, timeout: float | None = None) -> None:
        """Put the channel in transaction mode."""
        await self._call(m.TxSelect(), timeout=timeout)

    async def tx_commit(self, *, timeout: float | None = None) -> None:
        """Commit the current transaction."""
        await self._call(m.TxCommit(), timeout=timeout)

    async def tx_rollback(self, *, timeout: float | None = None) -> None:
        """Roll back the current transaction."""
        await self._call(m.TxRollback(), timeout=timeout)

    # ------------------------------------------------------------------
    # publishing

    async def basic_publish(
        self,
        body: Buffer,
        *,
        exchange: str = "",
        routing_key: str = "",
        properties: Properties | None = None,
        mandatory: bool = False,
    ) -> None:
        """Publish a message.

        ``body`` is any contiguous bytes-like object.  ``bytes`` (and views
        of ``bytes``) are sent without a copy; a mutable buffer (bytearray,
        ``array.array``, a writable memoryview) is copied here, so what is
        sent is what it held at the call, whatever the caller does with it
        afterwards.

        Without publisher confirms this returns once the frames are queued
        for writing (waiting first while the broker blocks publishers or the
        socket buffer is full).  With confirms it returns when the broker
        acks, raising :class:`PublishNacked` on a nack and
        :class:`MessageReturned` when a ``mandatory`` message is unroutable.
        """
        if self._closed_exc is not None:
            self._check_open()
        conn = self._conn
        if conn._write_paused or conn._blocked_reason is not None or conn._closing:
            await conn._wait_writable()
            self._check_open()
        key = (exchange, routing_key, mandatory)
        method = self._method_cache.get(key)
        if method is None:
            method = self._encode_publish(key)
        if properties is None:
            props = _NO_PROPERTIES
        elif isinstance(properties, Properties):
            props = properties.encode()
        else:
            raise InvalidArgument("properties must be an aiorabbit.Properties")
        if type(body) is not bytes:
            body = _owned_body(body)
        parts: list[Buffer] = [method]
        encode_content_frames(self.number, 60, body, props, conn.frame_max, parts)
        if not self._confirm_mode:
            conn._send(parts, len(body) + 64)
            return
        self._publish_seq = tag = self._publish_seq + 1
        fut: asyncio.Future[None] = self._loop.create_future()
        self._confirms[tag] = fut
        self._confirm_order.append(tag)
        if mandatory:
            self._mandatory.append((tag, exchange, routing_key))
        conn._send(parts, len(body) + 64)
        if conn._reading_paused:
            conn._frame_awaited()
        await fut

    def _encode_publish(self, key: tuple[str, str, bool]) -> bytes:
        exchange, routing_key, mandatory = key
        frame = encode_method_frame(
            self.number, m.BasicPublish(exchange=exchange, routing_key=routing_key, mandatory=mandatory)
        )
        if len(self._method_cache) >= _METHOD_CACHE_SIZE:
            self._method_cache.clear()
        self._method_cache[key] = frame
        return frame

    def _on_ack(self, method: m.BasicAck) -> None:
        tag = method.delivery_tag
        confirms = self._confirms
        if method.multiple:
            order = self._confirm_order
            while order and order[0] <= tag:
                fut = confirms.pop(order.popleft(), None)
                if fut is not None and not fut.done():
                    fut.set_result(None)
        else:
            fut = confirms.pop(tag, None)
            if fut is not None and not fut.done():
                fut.set_result(None)
        if not confirms:
            self._confirm_order.clear()

    def _on_nack(self, method: m.BasicNack) -> None:
        tag = method.delivery_tag
        if method.multiple:
            order = self._confirm_order
            while order and order[0] <= tag:
                number = order.popleft()
                self._nack_one(number)
        else:
            self._nack_one(tag)

    def _nack_one(self, tag: int) -> None:
        fut = self._confirms.pop(tag, None)
        if fut is not None and not fut.done():
            fut.set_exception(PublishNacked(tag))

    def _on_return(self, method: m.BasicReturn, body: bytes, props: bytes) -> None:
        returned = ReturnedMessage(
            body, props, method.reply_code, method.reply_text, method.exchange, method.routing_key
        )
        # The broker returns a message before it acks it, and returns arrive
        # in publish order: the oldest pending mandatory publish to the same
        # exchange and routing key is the one that came back.
        pending = self._mandatory
        while pending and pending[0][0] not in self._confirms:
            pending.popleft()
        for entry in pending:
            tag, exchange, routing_key = entry
            if exchange == method.exchange and routing_key == method.routing_key:
                fut = self._confirms.get(tag)
                if fut is not None and not fut.done():
                    pending.remove(entry)
                    fut.set_exception(MessageReturned(returned))
                    return
        if self.on_return is not None:
            try:
                self.on_return(returned)
            except Exception:
                log.exception("on_return callback failed")
        else:
            log.warning("unroutable message returned: %r", returned)

    # ------------------------------------------------------------------
    # consuming

    def consume(
        self,
        queue: str,
        *,
        no_ack: bool = False,
        exclusive: bool = False,
        arguments: Mapping[str, Any] | None = None,
        consumer_tag: str | None = None,
    ) -> Consumer:
        """A consumer to use as ``async with ch.consume(q) as messages:``
        then ``async for msg in messages:``.  Leaving the block cancels it
        and returns messages not yet handed out to the queue."""
        return Consumer(
            self, queue, no_ack=no_ack, exclusive=exclusive, arguments=arguments, consumer_tag=consumer_tag
        )

    async def basic_consume(
        self,
        queue: str,
        callback: Callable[[IncomingMessage], Any],
        *,
        no_ack: bool = False,
        exclusive: bool = False,
        arguments: Mapping[str, Any] | None = None,
        consumer_tag: str | None = None,
    ) -> str:
        """Start a consumer that calls ``callback(message)`` for each delivery
        (a coroutine function is awaited, one message at a time, in order).
        Return the consumer tag."""
        consumer = Consumer(
            self, queue, no_ack=no_ack, exclusive=exclusive, arguments=arguments,
            consumer_tag=consumer_tag, callback=callback,
        )
        await consumer.start()
        assert consumer.consumer_tag is not None
        return consumer.consumer_tag

    async def basic_cancel(self, consumer_tag: str) -> None:
        """Cancel the consumer with ``consumer_tag``."""
        consumer = self._consumers.get(consumer_tag)
        if consumer is None:
            raise InvalidArgument(f"no consumer {consumer_tag!r} on this channel")
        await consumer.cancel()

    async def basic_get(
        self,
        queue: str,
        *,
        no_ack: bool = False,
        timeout: float | None = None,
    ) -> IncomingMessage | None:
        """Fetch one message from ``queue``, or ``None`` if it is empty."""
        method = m.BasicGet(queue=queue, no_ack=no_ack)
        got: IncomingMessage | None = await self._call(method, timeout=timeout)
        return got

    async def _basic_consume(self, consumer: Consumer) -> str:
        def registered(reply: m.BasicConsumeOk) -> None:
            # Runs before any delivery for the tag can be dispatched.
            consumer.consumer_tag = reply.consumer_tag
            self._consumers[reply.consumer_tag] = consumer

        reply = await self._call(
            m.BasicConsume(
                queue=consumer.queue,
                consumer_tag=consumer.consumer_tag or "",
                no_ack=consumer.no_ack,
                exclusive=consumer.exclusive,
                arguments=_table(consumer.arguments),
            ),
            on_reply=registered,
        )
        return str(reply.consumer_tag)

    async def _basic_cancel(self, consumer: Consumer) -> None:
        tag = consumer.consumer_tag
        if tag is None or tag not in self._consumers:
            return
        try:
            await self._call(m.BasicCancel(consumer_tag=tag))
        finally:
            self._consumers.pop(tag, None)

    def _on_deliver(self, method: m.BasicDeliver) -> None:
        self._start_content(method)

    def _on_server_cancel(self, method: m.BasicCancel) -> None:
        consumer = self._consumers.pop(method.consumer_tag, None)
        if not method.nowait:
            self._conn._send_method(self.number, m.BasicCancelOk(consumer_tag=method.consumer_tag))
        if consumer is not None:
            log.warning("broker cancelled consumer %r", method.consumer_tag)
            consumer._fail(ConsumerCancelled(method.consumer_tag))

    def _settle(self, msg: IncomingMessage, kind: int, multiple: bool, requeue: bool) -> None:
        if msg._channel is not self:  # pragma: no cover - defensive
            raise MessageAlreadySettled("message belongs to another channel")
        if self._closed_exc is not None:
            self._check_open()
        tag = msg.delivery_tag
        if msg.settled or tag <= self._settled_through:
            raise MessageAlreadySettled(f"delivery tag {tag} was already settled")
        msg.settled = True
        if multiple:
            self._settled_through = tag
        if kind == 0:
            bits = 1 if multiple else 0  # multiple
        elif kind == 1:
            bits = (1 if multiple else 0) | (2 if requeue else 0)  # multiple, requeue
        else:
            bits = 1 if requeue else 0  # requeue
        self._conn._send_one(
            _SETTLE_FRAME.pack(1, self.number, 13, 60, _SETTLE_METHOD[kind], tag, bits, 0xCE)
        )

    # ------------------------------------------------------------------
    # incoming frames

    def _on_method(self, method: Method) -> None:
        if self._content_method is not None:
            self._protocol_error(f"{method.NAME} arrived in the middle of a content body")
            return
        waiter = self._rpc_waiter
        if waiter is not None and isinstance(method, self._rpc_request.RESPONSES):  # type: ignore[union-attr]
            if type(method) is m.BasicGetOk:
                self._start_content(method)
                return
            if type(method) is m.BasicGetEmpty:
                self._complete_rpc(None)
                return
            on_reply = self._rpc_on_reply
            if on_reply is not None:
                self._rpc_on_reply = None
                on_reply(method)
            self._complete_rpc(method)
            return
        handler = self._handlers.get(type(method))
        if handler is None:
            self._protocol_error(f"unexpected {method.NAME}")
            return
        handler(method)

    def _start_content(self, method: Method) -> None:
        self._content_method = method
        self._content_size = -1  # header due

    def _on_header(self, body_size: int, props: bytes) -> None:
        if self._content_method is None or self._content_size != -1:
            self._protocol_error("unexpected content header")
            return
        if body_size > self._max_body:
            self._conn._protocol_failure(
                BodyTooLarge(
                    f"channel {self.number}: a message of {body_size} bytes exceeds "
                    f"max_body_size ({self._max_body} bytes)"
                )
            )
            return
        self._content_props = props
        self._content_size = body_size
        self._content_got = 0
        if body_size == 0:
            self._finish_content(b"")

    def _on_body(self, chunk: memoryview) -> None:
        # ``chunk`` is a view of the read buffer, reused by the next read:
        # its bytes are copied now.
        size = self._content_size
        if self._content_method is None or size < 0:
            self._protocol_error("unexpected content body")
            return
        got = self._content_got
        end = got + len(chunk)
        if end > size:
            self._protocol_error("content body longer than its header said")
            return
        if not got and end == size:
            self._finish_content(bytes(chunk))  # the one copy of the body
            return
        self._assembly(end)[got:end] = chunk
        self._content_got = end
        if end == size:
            self._finish_assembled()

    def _body_target(self, size: int) -> memoryview | None:
        """Where the next ``size`` bytes of the body being received should
        go (``None`` if they do not belong to a body in progress)."""
        got = self._content_got
        if self._content_method is None or self._content_size < 0 or got + size > self._content_size:
            return None
        return memoryview(self._assembly(got + size))[got : got + size]

    def _receiving_large_body(self) -> bool:
        """True between the frames of a body with a direct read's worth to come."""
        return self._content_method is not None and self._content_size - self._content_got >= DIRECT_READ_MIN

    def _body_placed(self, size: int) -> None:
        self._content_got += size
        if self._content_got == self._content_size:
            self._finish_assembled()

    def _assembly(self, need: int) -> bytearray:
        """The body's assembly buffer, at least ``need`` bytes long.  Past
        ``_SCRATCH_MAX`` it grows as the body arrives, not as its header
        claims: a header announcing a gigabyte costs what was really sent."""
        buf = self._content_buf
        if buf is None:
            size = self._content_size
            buf = self._scratch
            if len(buf) < size:
                if size <= _SCRATCH_MAX:
                    buf = self._scratch = bytearray(size)
                else:
                    buf = bytearray(max(need, _SCRATCH_MAX))
            self._content_buf = buf
        if len(buf) < need:
            got = self._content_got
            grown = bytearray(min(self._content_size, max(need, 2 * len(buf))))
            grown[:got] = memoryview(buf)[:got]
            self._content_buf = buf = grown
        return buf

    def _finish_assembled(self) -> None:
        buf, size = self._content_buf, self._content_size
        assert buf is not None
        self._content_buf = None
        # The one copy of the body (its bytes were read into ``buf``).
        self._finish_content(bytes(buf) if len(buf) == size else bytes(memoryview(buf)[:size]))

    def _finish_content(self, body: bytes) -> None:
        method = self._content_method
        props = self._content_props
        self._content_method = None
        self._content_size = 0
        kind = type(method)
        if kind is m.BasicDeliver:
            assert isinstance(method, m.BasicDeliver)
            consumer = self._consumers.get(method.consumer_tag)
            if consumer is None:
                log.warning("delivery for unknown consumer %r: rejecting", method.consumer_tag)
                self._conn._send_method(
                    self.number, m.BasicReject(delivery_tag=method.delivery_tag, requeue=True)
                )
                return
            consumer._deliver(
                IncomingMessage(
                    self, body, props, method.delivery_tag, method.redelivered, method.exchange,
                    method.routing_key, method.consumer_tag, None, consumer.no_ack,
                )
            )
        elif kind is m.BasicGetOk:
            assert isinstance(method, m.BasicGetOk)
            self._complete_rpc(
                IncomingMessage(
                    self, body, props, method.delivery_tag, method.redelivered, method.exchange,
                    method.routing_key, None, method.message_count,
                    isinstance(self._rpc_request, m.BasicGet) and self._rpc_request.no_ack,
                )
            )
        else:
            assert isinstance(method, m.BasicReturn)
            self._on_return(method, body, props)

    def _on_flow(self, method: m.ChannelFlow) -> None:
        self._conn._send_method(self.number, m.ChannelFlowOk(active=method.active))

    def _on_close(self, method: m.ChannelClose) -> None:
        self._conn._send_method(self.number, m.ChannelCloseOk())
        exc = channel_error(method.reply_code, method.reply_text)
        log.info("broker closed channel %d: %s", self.number, exc)
        self._set_closed(exc)
        self._conn._release_channel(self.number)

    def _protocol_error(self, text: str) -> None:
        self._conn._protocol_failure(ProtocolError(f"channel {self.number}: {text}"))

    def _set_closed(self, exc: BaseException) -> None:
        """Fail everything waiting on this channel with ``exc``."""
        if self._closed_exc is not None:
            return
        self._closed_exc = exc
        self._content_method = None
        self._content_buf = None
        fut = self._rpc_waiter
        self._rpc_waiter = None
        if fut is not None and not fut.done():
            if isinstance(exc, ChannelClosed) and exc.reply_code == 200 and self._closing:
                fut.set_result(None)
            else:
                fut.set_exception(exc)
        confirms = self._confirms
        self._confirms = {}
        self._confirm_order.clear()
        self._mandatory.clear()
        for pending in confirms.values():
            if not pending.done():
                pending.set_exception(exc)
        consumers = list(self._consumers.values())
        self._consumers.clear()
        for consumer in consumers:
            consumer._fail(exc)


def _table(arguments: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if arguments is None:
        return None
    if not isinstance(arguments, Mapping):
        raise InvalidArgument(f"arguments must be a mapping, not {type(arguments).__name__}")
    return dict(arguments)


def _version(server_properties: Mapping[str, Any]) -> tuple[int, ...]:
    """The broker's version as numbers (``(0,)`` if it does not say)."""
    raw = server_properties.get("version", "")
    text = raw.decode("utf-8", "replace") if isinstance(raw, (bytes, bytearray)) else str(raw)
    numbers: list[int] = []
    for part in text.split("."):
        digits = "".join(c for c in part if c.isdigit()) if part[:1].isdigit() else ""
        if not digits:
            break
        numbers.append(int(digits))
    return tuple(numbers) or (0,)


def _owned_body(body: object) -> Buffer:
    """``body`` as a buffer that nothing the caller does later can change:
    a view of immutable ``bytes`` as it is, anything else copied.  Bad
    bodies fail here, at the call, never later in the batched write where
    they would take other messages' frames with them."""
    try:
        view = memoryview(body)  # type: ignore[arg-type]
    except TypeError:
        raise InvalidArgument(f"body must be bytes-like, not {type(body).__name__}") from None
    except ValueError as exc:  # a released memoryview
        raise InvalidArgument(f"body cannot be read: {exc}") from None
    if not view.c_contiguous:
        raise InvalidArgument("body must be a contiguous buffer (copy a strided view with bytes() first)")
    if type(view.obj) is bytes:
        # Our own view: it stays valid if the caller releases theirs.
        return view if view.format == "B" and view.ndim == 1 else view.cast("B")
    return view.tobytes()


def _retrieve(fut: asyncio.Future[Any]) -> None:
    if not fut.cancelled():
        fut.exception()
