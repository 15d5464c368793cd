"""A scripted AMQP 0-9-1 server, for tests that need a broker misbehaving.

RabbitMQ never sends hostile frames, withholds a reply on request or answers
the protocol header with its own; this server does whatever its script says.
It listens on 127.0.0.1 (a free port, optionally TLS) and speaks through
:mod:`aiorabbit.codec`.  Each accepted connection is a :class:`Peer`; the
script (a coroutine function of the peer) drives it::

    async def script(peer: Peer) -> None:
        await peer.handshake()
        await peer.serve({m.QueueDeclare: withhold})  # a cooperative broker otherwise

    async with ScriptedServer(script) as server:
        async with aiorabbit.connect(server.url) as conn:
            ...
    assert not server.errors

``ScriptedServer()`` without a script runs ``handshake()`` then ``serve()``
for every connection.  Leaving the ``async with`` block stops listening,
aborts every client socket and cancels the scripts (it never hangs).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import secrets
import struct
from collections.abc import Awaitable, Callable
from ssl import SSLContext
from typing import Any, NamedTuple, TypeVar

from aiorabbit.codec import Method
from aiorabbit.codec import methods as m
from aiorabbit.codec.frames import (
    FRAME_BODY,
    FRAME_END,
    HEARTBEAT_FRAME,
    PROTOCOL_HEADER,
    BodyFrame,
    Frame,
    FrameParser,
    HeaderFrame,
    HeartbeatFrame,
    MethodFrame,
    encode_method_frame,
)
from aiorabbit.codec.properties import Properties

__all__ = ["Handler", "Peer", "PeerClosed", "Published", "Script", "ScriptedServer", "eventually", "serving"]

_FRAME_HEAD = struct.Struct(">BHI")
_CONTENT_HEAD = struct.Struct(">BHIHHQ")
_END = bytes([FRAME_END])

M = TypeVar("M", bound=Method)

Handler = Callable[["Peer", int, Any], "Awaitable[bool | None] | bool | None"]
"""``handler(peer, channel, method)``: replaces the default answer to one
method type in :meth:`Peer.serve`; returning (or awaiting to) ``True``
suppresses the default."""

Script = Callable[["Peer"], Awaitable[None]]

DEFAULT_SERVER_PROPERTIES: dict[str, Any] = {
    "product": "ScriptedServer",
    "version": "0.0.0",
    "platform": "aiorabbit tests",
    "capabilities": {
        "publisher_confirms": True,
        "exchange_exchange_bindings": True,
        "basic.nack": True,
        "consumer_cancel_notify": True,
        "connection.blocked": True,
        "authentication_failure_close": True,
        "per_consumer_qos": True,
    },
}


class PeerClosed(ConnectionError):
    """The client closed the connection (or it was aborted)."""


class Published(NamedTuple):
    """A message a client published (see :attr:`Peer.published`)."""

    channel: int
    exchange: str
    routing_key: str
    body: bytes
    properties: bytes


class _Content:
    """Content being assembled on one channel: basic.publish, header, body."""

    __slots__ = ("body", "method", "properties", "size")

    def __init__(self, method: m.BasicPublish) -> None:
        self.method = method
        self.size: int | None = None  # known once the header arrived
        self.properties = b""
        self.body = bytearray()


class Peer:
    """One accepted client connection, driven by a script."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, index: int) -> None:
        self.reader = reader
        self.writer = writer
        #: 0 for the server's first connection, 1 for the next, ...
        self.index = index
        #: Every frame's method read so far, as ``(channel, method)``.
        self.received: list[tuple[int, Method]] = []
        #: Messages published by the client (assembled by :meth:`serve`).
        self.published: list[Published] = []
        #: The last publish sequence number of each channel in confirm mode.
        self.confirm_seq: dict[int, int] = {}
        #: Consumers started through :meth:`serve`: tag -> (channel, queue).
        self.consumers: dict[str, tuple[int, str]] = {}
        #: Handshake results (set by :meth:`handshake`).
        self.start_ok: m.ConnectionStartOk | None = None
        self.tune_ok: m.ConnectionTuneOk | None = None
        self.open: m.ConnectionOpen | None = None
        #: The frame_max used by :meth:`send_content` (the negotiated one after the handshake).
        self.frame_max = 131072
        self._parser = FrameParser(0)  # frames from the client: any size
        self._open_channels: set[int] = set()
        self._delivery_tags: dict[int, itertools.count[int]] = {}
        self._content: dict[int, _Content] = {}
        self._closed = False
        # Set (and replaced) whenever a method is recorded in ``received``.
        self._arrival = asyncio.Event()

    def __repr__(self) -> str:
        return f"<Peer #{self.index} closed={self._closed}>"

    # ------------------------------------------------------------------
    # reading

    async def read_protocol_header(self, timeout: float | None = 5.0) -> bytes:
        """The 8 bytes the client opens with (``AMQP\\x00\\x00\\x09\\x01`` for 0-9-1)."""
        return await self._read(8, timeout)

    async def read_frame(self, timeout: float | None = 5.0, *, heartbeats: bool = False) -> Frame:
        """The client's next frame (heartbeats skipped unless ``heartbeats``).

        A body frame comes whole, as one :class:`BodyFrame` (its payload may
        be empty).  Raises :class:`PeerClosed` when the client went away and
        ``TimeoutError`` when nothing came within ``timeout`` seconds.
        """
        while True:
            frame = await self._read_one(timeout)
            if heartbeats or not isinstance(frame, HeartbeatFrame):
                return frame

    async def expect(self, method_type: type[M], timeout: float | None = 5.0) -> tuple[int, M]:
        """``(channel, method)`` of the client's next method frame, which must be a ``method_type``."""
        frame = await self.read_frame(timeout)
        if not isinstance(frame, MethodFrame):
            raise AssertionError(f"expected {method_type.NAME} from the client, got {frame!r}")
        if not isinstance(frame.method, method_type):
            raise AssertionError(
                f"expected {method_type.NAME} from the client, "
                f"got {frame.method!r} on channel {frame.channel}"
            )
        return frame.channel, frame.method

    async def _read(self, size: int, timeout: float | None) -> bytes:
        try:
            return await asyncio.wait_for(self.reader.readexactly(size), timeout)
        except asyncio.IncompleteReadError:
            self._closed = True
            raise PeerClosed(f"the client closed the connection ({self!r})") from None
        except (ConnectionError, OSError) as exc:
            self._closed = True
            raise PeerClosed(f"the client connection failed: {exc}") from None
        except asyncio.TimeoutError:
            raise TimeoutError(f"nothing from the client within {timeout} s") from None

    async def _read_one(self, timeout: float | None) -> Frame:
        async def whole_frame() -> bytes:
            head = await self._read(7, None)
            (_, _, size) = _FRAME_HEAD.unpack(head)
            return head + await self._read(size + 1, None)

        try:
            raw = await asyncio.wait_for(whole_frame(), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"no frame from the client within {timeout} s") from None
        kind, channel, _ = _FRAME_HEAD.unpack_from(raw)
        frame: Frame
        if kind == FRAME_BODY:
            if raw[-1] != FRAME_END:
                raise AssertionError(f"client sent a bad frame-end octet {raw[-1]:#04x}")
            frame = BodyFrame(channel, memoryview(raw[7:-1]))
        else:
            frames = self._parser.feed(raw)
            if len(frames) != 1:  # pragma: no cover - a whole frame makes one
                raise AssertionError(f"{raw.hex()} parsed to {frames!r}")
            frame = frames[0]
        if isinstance(frame, MethodFrame):
            self.received.append((frame.channel, frame.method))
            self._arrival.set()
            self._arrival = asyncio.Event()
        return frame

    async def wait_received(
        self, method_type: type[M], count: int = 1, timeout: float = 5.0
    ) -> list[tuple[int, M]]:
        """Wait until :attr:`received` holds at least ``count`` methods of
        ``method_type`` (read by :meth:`serve` or any other read); return
        them all as ``(channel, method)``, in arrival order."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            found = [(c, x) for c, x in self.received if isinstance(x, method_type)]
            if len(found) >= count:
                return found
            remaining = deadline - loop.time()
            try:
                if remaining <= 0:
                    raise asyncio.TimeoutError
                await asyncio.wait_for(self._arrival.wait(), remaining)
            except asyncio.TimeoutError:
                names = [x.NAME for _, x in self.received]
                raise TimeoutError(
                    f"{len(found)} {method_type.NAME} of {count} from the client within {timeout} s; "
                    f"received {names}"
                ) from None

    # ------------------------------------------------------------------
    # writing

    def send_raw(self, data: bytes) -> None:
        """Write ``data`` as is."""
        self.writer.write(data)

    def send_method(self, channel: int, method: Method) -> None:
        """Write one method frame."""
        self.writer.write(encode_method_frame(channel, method))

    def send_content(
        self,
        channel: int,
        method: Method,
        body: bytes,
        properties: bytes | Properties = b"\x00\x00",
        *,
        body_size: int | None = None,
        frame_max: int | None = None,
        chunk: int | None = None,
    ) -> None:
        """Write ``method`` (basic.deliver, get-ok, return) with its content:
        the header and body frames.  ``body_size`` replaces the size the
        header announces (a lie, for tests); ``frame_max`` defaults to the
        negotiated one; ``chunk`` cuts the body into frames of that many
        bytes (at most) instead of the largest ``frame_max`` allows."""
        self.writer.write(
            b"".join(
                self.content_frames(
                    channel, method, body, properties, body_size=body_size, frame_max=frame_max, chunk=chunk
                )
            )
        )

    def content_frames(
        self,
        channel: int,
        method: Method,
        body: bytes,
        properties: bytes | Properties = b"\x00\x00",
        *,
        body_size: int | None = None,
        frame_max: int | None = None,
        chunk: int | None = None,
    ) -> list[bytes]:
        """The frames :meth:`send_content` writes, one ``bytes`` each: the
        method, the content header, then the body frames (to send them
        interleaved with other frames, for instance)."""
        props = properties.encode() if isinstance(properties, Properties) else properties
        size = len(body) if body_size is None else body_size
        frames = [
            encode_method_frame(channel, method),
            _CONTENT_HEAD.pack(2, channel, 12 + len(props), method.CLASS_ID, 0, size) + props + _END,
        ]
        if chunk is None:
            limit = self.frame_max if frame_max is None else frame_max
            chunk = limit - 8 if limit else max(len(body), 1)
        if chunk < 1:
            raise ValueError(f"body frames of {chunk} bytes")
        for start in range(0, len(body), chunk):
            piece = body[start : start + chunk]
            frames.append(_FRAME_HEAD.pack(FRAME_BODY, channel, len(piece)) + piece + _END)
        return frames

    def deliver(
        self,
        channel: int,
        consumer_tag: str,
        body: bytes,
        properties: bytes | Properties = b"\x00\x00",
        *,
        exchange: str = "",
        routing_key: str = "",
        redelivered: bool = False,
    ) -> int:
        """Send a ``basic.deliver`` with its content; return its delivery tag
        (1, 2, ... per channel)."""
        tag = next(self._delivery_tags.setdefault(channel, itertools.count(1)))
        self.send_content(
            channel,
            m.BasicDeliver(
                consumer_tag=consumer_tag,
                delivery_tag=tag,
                exchange=exchange,
                routing_key=routing_key,
                redelivered=redelivered,
            ),
            body,
            properties,
        )
        return tag

    async def drain(self) -> None:
        """Wait until the written data left the buffer (best effort)."""
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.drain()

    def close(self) -> None:
        """Close the socket after what was written is sent."""
        self._closed = True
        self.writer.close()

    def abort(self) -> None:
        """Drop the connection at once (no close-ok, unsent data lost)."""
        self._closed = True
        self.writer.transport.abort()

    @property
    def closed(self) -> bool:
        """The connection is closed (by either side) as far as this peer knows."""
        return self._closed or self.writer.transport.is_closing()

    # ------------------------------------------------------------------
    # the cooperative broker

    async def handshake(
        self,
        *,
        frame_max: int = 131072,
        channel_max: int = 2047,
        heartbeat: int = 0,
        server_properties: dict[str, Any] | None = None,
        mechanisms: bytes = b"PLAIN AMQPLAIN",
    ) -> None:
        """Read the protocol header and play the server's part of the
        connection handshake (start, tune, open)."""
        header = await self.read_protocol_header()
        if header != PROTOCOL_HEADER:
            raise AssertionError(f"client sent protocol header {header!r}")
        self.send_method(
            0,
            m.ConnectionStart(
                server_properties=server_properties or DEFAULT_SERVER_PROPERTIES,
                mechanisms=mechanisms,
                locales=b"en_US",
            ),
        )
        _, self.start_ok = await self.expect(m.ConnectionStartOk)
        tune = m.ConnectionTune(channel_max=channel_max, frame_max=frame_max, heartbeat=heartbeat)
        self.send_method(0, tune)
        _, self.tune_ok = await self.expect(m.ConnectionTuneOk)
        self.frame_max = self.tune_ok.frame_max or frame_max
        _, self.open = await self.expect(m.ConnectionOpen)
        self.send_method(0, m.ConnectionOpenOk())

    async def refuse_login(
        self,
        reply_code: int = 403,
        reply_text: str = "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN",
    ) -> None:
        """Play a broker that refuses the client's credentials: start, read
        start-ok, then ``connection.close`` (RabbitMQ's answer to a bad login
        with ``authentication_failure_close``); wait for the close-ok."""
        header = await self.read_protocol_header()
        if header != PROTOCOL_HEADER:
            raise AssertionError(f"client sent protocol header {header!r}")
        self.send_method(
            0,
            m.ConnectionStart(
                server_properties=DEFAULT_SERVER_PROPERTIES, mechanisms=b"PLAIN AMQPLAIN", locales=b"en_US"
            ),
        )
        _, self.start_ok = await self.expect(m.ConnectionStartOk)
        self.send_method(
            0, m.ConnectionClose(reply_code=reply_code, reply_text=reply_text, class_id=0, method_id=0)
        )
        await self.expect(m.ConnectionCloseOk)

    async def serve(self, handlers: dict[type[Method], Handler] | None = None) -> None:
        """Behave as a cooperative broker until the client goes away.

        Every method gets the answer RabbitMQ would give, unless
        ``handlers`` has one for its type: ``handler(peer, channel, method)``
        may send anything (or nothing, withholding the reply) and returns
        (or awaits to) ``True`` to suppress the default answer.  Published
        content is assembled into :attr:`published`; the ``basic.publish``
        handler runs once the content is complete (``peer.published[-1]``),
        and the default acks it on a channel in confirm mode (the tag is
        ``peer.confirm_seq[channel]``).  Sends heartbeats when negotiated.
        """
        handlers = handlers or {}
        beat = self._heartbeat_task()
        try:
            while not self._closed:
                try:
                    frame = await self.read_frame(None)
                except PeerClosed:
                    return
                if isinstance(frame, MethodFrame):
                    if isinstance(frame.method, m.BasicPublish):
                        self._content[frame.channel] = _Content(frame.method)
                        continue
                    await self._answer(frame.channel, frame.method, handlers)
                elif isinstance(frame, HeaderFrame):
                    content = self._content.get(frame.channel)
                    if content is None or content.size is not None:
                        raise AssertionError(f"unexpected content header on channel {frame.channel}")
                    content.size = frame.body_size
                    content.properties = frame.properties
                    await self._content_done(frame.channel, handlers)
                elif isinstance(frame, BodyFrame):
                    content = self._content.get(frame.channel)
                    if content is None or content.size is None:
                        raise AssertionError(f"unexpected body frame on channel {frame.channel}")
                    content.body += frame.payload
                    await self._content_done(frame.channel, handlers)
        finally:
            if beat is not None:
                beat.cancel()

    def _heartbeat_task(self) -> asyncio.Task[None] | None:
        interval = self.tune_ok.heartbeat if self.tune_ok is not None else 0
        if not interval:
            return None

        async def beat() -> None:
            while not self.closed:
                await asyncio.sleep(interval / 2)
                self.send_raw(HEARTBEAT_FRAME)

        return asyncio.get_running_loop().create_task(beat())

    async def _content_done(self, channel: int, handlers: dict[type[Method], Handler]) -> None:
        content = self._content[channel]
        assert content.size is not None
        if len(content.body) < content.size:
            return
        del self._content[channel]
        if len(content.body) > content.size:
            raise AssertionError(f"client sent {len(content.body)} body bytes, announced {content.size}")
        method = content.method
        self.published.append(
            Published(channel, method.exchange, method.routing_key, bytes(content.body), content.properties)
        )
        if channel in self.confirm_seq:
            self.confirm_seq[channel] += 1
        if await self._handled(channel, method, handlers):
            return
        if channel in self.confirm_seq:
            self.send_method(channel, m.BasicAck(delivery_tag=self.confirm_seq[channel]))

    @staticmethod
    async def _call(handler: Handler, peer: Peer, channel: int, method: Method) -> bool:
        result = handler(peer, channel, method)
        if inspect.isawaitable(result):
            result = await result
        return bool(result)

    async def _handled(self, channel: int, method: Method, handlers: dict[type[Method], Handler]) -> bool:
        handler = handlers.get(type(method))
        return handler is not None and await self._call(handler, self, channel, method)

    async def _answer(self, channel: int, method: Method, handlers: dict[type[Method], Handler]) -> None:
        # State that follows from what the client sent, whatever the answer.
        if isinstance(method, (m.ChannelClose, m.ChannelCloseOk)):
            self._open_channels.discard(channel)
            self.confirm_seq.pop(channel, None)
            self._content.pop(channel, None)
        if await self._handled(channel, method, handlers):
            return
        reply = self._default_reply(channel, method)
        if reply is not None:
            self.send_method(channel, reply)
        if isinstance(method, m.ConnectionClose):
            await self.drain()
            self.close()
        elif isinstance(method, m.ConnectionCloseOk):
            self.close()

    def _default_reply(self, channel: int, method: Method) -> Method | None:
        nowait = bool(getattr(method, "nowait", False))
        reply: Method | None = None
        if isinstance(method, m.ChannelOpen):
            self._open_channels.add(channel)
            reply = m.ChannelOpenOk()
        elif isinstance(method, m.ChannelClose):
            reply = m.ChannelCloseOk()
        elif isinstance(method, m.ChannelFlow):
            reply = m.ChannelFlowOk(active=method.active)
        elif isinstance(method, m.ConfirmSelect):
            self.confirm_seq.setdefault(channel, 0)
            reply = m.ConfirmSelectOk()
        elif isinstance(method, m.BasicQos):
            reply = m.BasicQosOk()
        elif isinstance(method, m.QueueDeclare):
            name = method.queue or f"amq.gen-{secrets.token_urlsafe(16)}"
            reply = m.QueueDeclareOk(queue=name, message_count=0, consumer_count=0)
        elif isinstance(method, m.QueueBind):
            reply = m.QueueBindOk()
        elif isinstance(method, m.QueueUnbind):
            reply = m.QueueUnbindOk()
        elif isinstance(method, m.QueuePurge):
            reply = m.QueuePurgeOk(message_count=0)
        elif isinstance(method, m.QueueDelete):
            reply = m.QueueDeleteOk(message_count=0)
        elif isinstance(method, m.ExchangeDeclare):
            reply = m.ExchangeDeclareOk()
        elif isinstance(method, m.ExchangeDelete):
            reply = m.ExchangeDeleteOk()
        elif isinstance(method, m.ExchangeBind):
            reply = m.ExchangeBindOk()
        elif isinstance(method, m.ExchangeUnbind):
            reply = m.ExchangeUnbindOk()
        elif isinstance(method, m.BasicConsume):
            tag = method.consumer_tag or f"amq.ctag-{secrets.token_urlsafe(16)}"
            self.consumers[tag] = (channel, method.queue)
            reply = m.BasicConsumeOk(consumer_tag=tag)
        elif isinstance(method, m.BasicCancel):
            self.consumers.pop(method.consumer_tag, None)
            reply = m.BasicCancelOk(consumer_tag=method.consumer_tag)
        elif isinstance(method, m.BasicGet):
            reply = m.BasicGetEmpty()
        elif isinstance(method, m.BasicRecover):
            reply = m.BasicRecoverOk()
        elif isinstance(method, m.TxSelect):
            reply = m.TxSelectOk()
        elif isinstance(method, m.TxCommit):
            reply = m.TxCommitOk()
        elif isinstance(method, m.TxRollback):
            reply = m.TxRollbackOk()
        elif isinstance(method, m.ConnectionClose):
            reply = m.ConnectionCloseOk()
        elif isinstance(method, m.ConnectionUpdateSecret):
            reply = m.ConnectionUpdateSecretOk()
        # basic.ack / nack / reject / recover-async, channel.close-ok,
        # channel.flow-ok, connection.close-ok: nothing to answer.
        if nowait and not isinstance(method, (m.ChannelClose, m.ConnectionClose)):
            return None
        return reply


async def eventually(predicate: Callable[[], object], what: str, timeout: float = 5.0) -> None:
    """Wait until ``predicate()`` is true (checked every few milliseconds);
    fail naming ``what`` after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.002)


def serving(handlers: dict[type[Method], Handler] | None = None) -> Script:
    """The script of a cooperative broker: the handshake, then
    :meth:`Peer.serve` with ``handlers``."""

    async def script(peer: Peer) -> None:
        await peer.handshake()
        await peer.serve(handlers)

    return script


_default_script = serving()


class ScriptedServer:
    """An AMQP server on 127.0.0.1 that runs ``script(peer)`` for every
    connection (default: handshake, then :meth:`Peer.serve`)."""

    def __init__(self, script: Script | None = None, *, ssl: SSLContext | None = None) -> None:
        self.script: Script = script or _default_script
        self.ssl = ssl
        self.port = 0
        #: Every accepted connection, in order.
        self.peers: list[Peer] = []
        #: Exceptions raised by the scripts (a test can assert it is empty).
        self.errors: list[BaseException] = []
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._connected = asyncio.Event()

    @property
    def url(self) -> str:
        scheme = "amqps" if self.ssl is not None else "amqp"
        return f"{scheme}://guest:guest@127.0.0.1:{self.port}/%2F"

    @property
    def connections(self) -> int:
        """How many clients connected so far."""
        return len(self.peers)

    async def start(self) -> ScriptedServer:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, ssl=self.ssl)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def wait_for_peer(self, index: int = 0, timeout: float = 5.0) -> Peer:
        """The ``index``-th connection, once it was accepted."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.peers) <= index:
            self._connected.clear()
            try:
                await asyncio.wait_for(self._connected.wait(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                raise TimeoutError(f"no connection #{index} within {timeout} s") from None
        return self.peers[index]

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = Peer(reader, writer, len(self.peers))
        self.peers.append(peer)
        self._connected.set()
        task = asyncio.get_running_loop().create_task(self._run(peer), name=f"scripted-server-{peer.index}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, peer: Peer) -> None:
        try:
            await self.script(peer)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.errors.append(exc)
        finally:
            if not peer.writer.transport.is_closing():
                peer.close()

    async def stop(self) -> None:
        """Stop listening, drop every client and cancel the scripts."""
        if self._server is not None:
            self._server.close()
        for peer in self.peers:
            peer.abort()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)
        if self._server is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
            self._server = None

    async def __aenter__(self) -> ScriptedServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
