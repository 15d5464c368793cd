"""The AMQP connection: an ``asyncio.Protocol`` feeding the sans-I/O parser.

Layering: bytes from the transport go through :class:`FrameParser` into
this module's frame router, which hands channel 0 methods to the
:class:`Connection` and everything else to its :class:`Channel`.  Outgoing
frames are appended to one list and written once per event-loop turn.
Transport and TLS errors are translated into aiorabbit exceptions here and
nowhere else.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import platform
import ssl
from collections.abc import Callable
from typing import Any

from . import __version__
from ._compat import wait_for
from ._gather import gather_fd, write_gathered
from ._opening import Opening
from .channel import DIRECT_READ_MIN, Channel
from .codec import methods as m
from .codec._primitives import Buffer, Method
from .codec.frames import HEARTBEAT_FRAME, PROTOCOL_HEADER, FrameParser, encode_method_frame
from .codec.table import encode_table
from .exceptions import (
    AMQPError,
    AuthenticationError,
    ChannelExhausted,
    ConnectionClosed,
    ConnectionFailed,
    ConnectionLost,
    FrameError,
    HeartbeatTimeout,
    InvalidArgument,
    OperationTimeout,
    ProtocolError,
    ProtocolVersionMismatch,
    ProtocolViolation,
    closed_by_client,
    connection_error,
)
from .parameters import ConnectionParameters

__all__ = ["Connection", "connect"]

log = logging.getLogger("aiorabbit")

# Flush the write buffer at once past this many bytes instead of waiting
# for the end of the loop turn, so a publisher that never yields cannot
# buffer without bound.
_FLUSH_AT = 256 * 1024
# Writes holding a body this large are gathered without copying it (see
# ``_gather``); smaller ones are cheaper to join.
_ZERO_COPY_MIN = 64 * 1024
# Publishers wait once the transport holds this much unsent (it resumes them
# at a quarter of it): enough to keep the socket busy while they wake up,
# small enough that a slow broker cannot make us buffer without bound.
_WRITE_HIGH = 1024 * 1024
# Each read takes up to this much (what the stdlib transport reads too).
_READ_SIZE = 256 * 1024

BlockedCallback = Callable[["Connection", "str | None"], Any]


class _Protocol(asyncio.BufferedProtocol):
    """Moves bytes between the transport and the connection.

    Reads land in one reused buffer, parsed in place, so no ``bytes`` is
    allocated per read (nor, under uvloop, copied out of its own buffer).
    While a large body frame is being received, the read goes straight into
    that body's assembly buffer instead: its bytes are then copied once in
    all, into the message's ``bytes``.
    """

    __slots__ = ("_direct", "_view", "conn", "feed", "parser", "router")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.parser = conn._parser
        self.router = conn._router
        self.feed = conn._parser.feed_into
        self._view = memoryview(bytearray(_READ_SIZE))
        self._direct = -1  # the channel whose body the pending read fills, if any

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.conn._connection_made(transport)  # type: ignore[arg-type]

    def get_buffer(self, sizehint: int) -> memoryview:
        self._direct = -1
        try:
            return self._next_buffer()
        except Exception as exc:  # never out of a transport callback
            self.conn._internal_failure(exc)
            return self._view

    def _next_buffer(self) -> memoryview:
        parser = self.parser
        channel, due = parser.pending_body()
        ch = self.router.channels.get(channel) if channel else None
        if ch is None:
            return self._view
        if due:
            # The rest of a large frame, or a short rest of one frame of a
            # large body (read alone, or the next frame would follow it here).
            target = ch._body_target(due) if due >= DIRECT_READ_MIN or ch._receiving_large_body() else None
            if target is not None:
                self._direct = channel
                return target
        elif parser.frame_max >= DIRECT_READ_MIN + 8 and ch._receiving_large_body():
            # Between two frames of a large body: read just up to the next
            # payload, so that payload can go straight into the body.
            head = parser.head_due()
            if head:
                return self._view[:head]
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        conn = self.conn
        conn._received = True
        try:
            channel = self._direct
            if channel < 0:
                self.feed(self._view[:nbytes], self.router)
                return
            self._direct = -1
            self.parser.body_placed(nbytes)
            ch = self.router.channels.get(channel)
            if ch is not None:
                ch._body_placed(nbytes)
        except ProtocolError as exc:  # FrameError included
            conn._protocol_failure(exc)
        except Exception as exc:  # never out of a transport callback
            conn._internal_failure(exc)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn._connection_lost(exc)

    def pause_writing(self) -> None:
        self.conn._pause_writing()

    def resume_writing(self) -> None:
        self.conn._resume_writing()


class _Router:
    """The parser's frame sink: routes frames to channel 0 or a channel."""

    __slots__ = ("channels", "conn")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.channels = conn._channels

    def on_method(self, channel: int, method: Method) -> None:
        if channel == 0:
            self.conn._on_method(method)
            return
        ch = self.channels.get(channel)
        if ch is None:
            log.debug("dropping %r for unknown channel %d", method, channel)
            return
        ch._on_method(method)

    def on_header(self, channel: int, class_id: int, body_size: int, props: bytes) -> None:
        ch = self.channels.get(channel)
        if ch is not None:
            ch._on_header(body_size, props)

    def on_body(self, channel: int, chunk: memoryview) -> None:
        ch = self.channels.get(channel)
        if ch is not None:
            ch._on_body(chunk)

    def on_heartbeat(self) -> None:
        pass  # any received byte already counts as life


class Connection:
    """An open AMQP connection; create it with :func:`connect`."""

    def __init__(self, params: ConnectionParameters) -> None:
        self.params = params
        self._loop = asyncio.get_running_loop()
        self._parser = FrameParser(params.frame_max or 0)
        self._channels: dict[int, Channel] = {}
        # Channels whose open was interrupted, being closed in the background.
        self._closing_channels: set[asyncio.Task[None]] = set()
        self._router = _Router(self)
        self._transport: asyncio.Transport | None = None
        self._out: list[Buffer] = []
        self._out_bytes = 0
        self._out_large = False
        self._gather_fd = -1
        self._flush_scheduled = False
        self._write_paused = False
        # Publishers waiting for the transport to drain, woken one at a time.
        self._write_waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._blocked_reason: str | None = None
        self._unblocked: asyncio.Future[None] | None = None
        self._blocked_callbacks: list[BlockedCallback] = []
        self._ch0_waiter: asyncio.Future[Method] | None = None
        self._ch0_expect: tuple[type[Method], ...] = ()
        self._ch0_lock = asyncio.Lock()
        self._close_waiter: asyncio.Future[None] | None = None
        self._closed_exc: ConnectionClosed | None = None
        self._lost: asyncio.Future[None] = self._loop.create_future()
        self._handshake_done = False
        self._closing = False
        self._received = False
        self._sent = False
        self._heartbeat_handle: asyncio.TimerHandle | None = None
        self._heartbeat_misses = 0
        # Consumers whose no_ack backlog asks us to stop reading, and whether
        # the transport is paused for them (see ``_update_reading``).
        self._backlogged = 0
        self._reading_paused = False
        self._next_channel = 1
        #: Negotiated limits (set by ``connection.tune``).
        self.channel_max = params.channel_max
        self.frame_max = params.frame_max
        self.heartbeat = 0
        #: The broker's ``server-properties`` table.
        self.server_properties: dict[str, Any] = {}

    # ------------------------------------------------------------------
    # public API

    @property
    def is_open(self) -> bool:
        """True while the connection can be used."""
        return self._handshake_done and self._closed_exc is None and not self._closing

    @property
    def is_closed(self) -> bool:
        """True once the connection is closed (by either side, or lost)."""
        return self._closed_exc is not None

    @property
    def is_blocked(self) -> bool:
        """True while the broker has blocked publishing (``connection.blocked``)."""
        return self._blocked_reason is not None

    @property
    def blocked_reason(self) -> str | None:
        """The reason the broker gave for blocking, or ``None``."""
        return self._blocked_reason

    @property
    def closed_reason(self) -> ConnectionClosed | None:
        """Why the connection closed, once it has."""
        return self._closed_exc

    async def wait_unblocked(self) -> None:
        """Return once the broker is not blocking publishers."""
        while self._blocked_reason is not None:
            self._check_open()
            if self._unblocked is None or self._unblocked.done():
                self._unblocked = self._loop.create_future()
            await self._unblocked

    async def wait_closed(self) -> ConnectionClosed:
        """Wait until the connection is closed; return the reason."""
        await asyncio.shield(self._lost)
        assert self._closed_exc is not None
        return self._closed_exc

    def add_blocked_callback(self, callback: BlockedCallback) -> None:
        """Call ``callback(connection, reason)`` on ``connection.blocked`` and
        ``callback(connection, None)`` on ``connection.unblocked``."""
        self._blocked_callbacks.append(callback)

    def remove_blocked_callback(self, callback: BlockedCallback) -> None:
        """Forget a callback given to :meth:`add_blocked_callback`."""
        self._blocked_callbacks.remove(callback)

    def channel(
        self,
        *,
        publisher_confirms: bool = False,
        on_return: Callable[[Any], Any] | None = None,
    ) -> Opening[Channel]:
        """Open a channel: ``ch = await conn.channel()``, or ``async with
        conn.channel() as ch:`` to close it when the block ends.  With
        ``publisher_confirms`` every publish waits for the broker's ack.
        ``on_return`` receives unroutable mandatory messages that no
        confirmed publish is waiting for."""
        return Opening(lambda: self._open_channel(publisher_confirms, on_return))

    async def _open_channel(
        self, publisher_confirms: bool, on_return: Callable[[Any], Any] | None
    ) -> Channel:
        self._check_open()
        number = self._allocate_channel()
        ch = Channel(self, number, on_return=on_return)
        self._channels[number] = ch
        try:
            await ch._open()
            if publisher_confirms:
                await ch.confirm_select()
        except BaseException:
            if ch.is_closed or not self.is_open:
                if not ch.is_closed:
                    ch._set_closed(ConnectionClosed(0, "channel open was interrupted"))
                self._release_channel(number)
            else:
                # channel.open (or confirm.select) is on the wire: the number
                # stays taken until the broker has closed the channel, since
                # opening it again meanwhile is a connection error (504).
                closing = self._loop.create_task(ch.close())
                self._closing_channels.add(closing)
                closing.add_done_callback(self._closing_channels.discard)
            raise
        return ch

    async def update_secret(self, new_secret: str | bytes, reason: str = "") -> None:
        """Replace the credential of this connection (OAuth 2 token refresh)."""
        secret = new_secret.encode() if isinstance(new_secret, str) else bytes(new_secret)
        timeout = self.params.call_timeout
        try:
            update = m.ConnectionUpdateSecret(new_secret=secret, reason=reason)
            await wait_for(self._ch0_call(update), timeout)
        except asyncio.TimeoutError:
            # The broker's state is unknown: the connection cannot be trusted.
            text = f"no reply to connection.update-secret within {timeout:g} s"
            self._abort(ConnectionLost(0, text))
            raise OperationTimeout(f"{text}; the connection is closed") from None

    async def close(self, reply_code: int = 200, reply_text: str = "Normal shutdown") -> None:
        """Close gracefully (idempotent): the broker acknowledges with close-ok
        before the socket closes.  Pending calls fail with ConnectionClosed."""
        if self._closed_exc is not None:
            return
        if self._closing:
            await asyncio.shield(self._lost)
            return
        self._closing = True
        self._frame_awaited()  # close-ok must be read, whatever the backlog
        # Publishers waiting for room or for an unblock would wait out the
        # whole handshake: they fail now, as any call after close() does.
        closing = ConnectionClosed(0, "connection is closing")
        self._fail_write_waiters(closing)
        _fail(self._unblocked, closing)
        graceful = False
        try:
            self._write_now(
                encode_method_frame(
                    0,
                    m.ConnectionClose(reply_code=reply_code, reply_text=reply_text, class_id=0, method_id=0),
                )
            )
            self._close_waiter = self._loop.create_future()
            await wait_for(
                asyncio.shield(self._close_waiter), self.params.connection_timeout
            )
            graceful = True
        except (asyncio.TimeoutError, AMQPError):
            pass
        finally:
            exc = closed_by_client(ConnectionClosed(reply_code, f"closed by client: {reply_text}"))
            if graceful:
                self._shutdown(exc)
            else:
                # No close-ok: the broker may not be reading at all (blocked),
                # so drop unsent bytes instead of waiting for them to drain.
                self._abort(exc)
        await asyncio.shield(self._lost)

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "open" if self.is_open else ("closed" if self.is_closed else "opening")
        return f"<aiorabbit.Connection {self.params.url} {state}>"

    # ------------------------------------------------------------------
    # opening

    async def _open(self) -> None:
        params = self.params
        try:
            await wait_for(self._open_inner(), params.connection_timeout)
        except asyncio.TimeoutError:
            self._abort(ConnectionLost(0, "connection timed out"))
            raise ConnectionFailed(
                f"timed out after {params.connection_timeout}s connecting to "
                f"{params.host}:{params.port}"
            ) from None
        except ConnectionLost as exc:
            self._abort(exc)
            raise ConnectionFailed(
                f"connection to {params.host}:{params.port} lost during the handshake: {exc}"
            ) from None
        except ProtocolViolation as exc:
            # The same server will answer the same way: not worth a retry.
            self._abort(exc)
            cause = exc.__cause__
            if isinstance(cause, ProtocolVersionMismatch):
                text = str(cause)
            elif not self.server_properties:
                text = (
                    f"the peer did not answer as an AMQP 0-9-1 broker (it sent "
                    f"{self._parser.first_bytes!r} first); is the port right?"
                )
            else:
                text = f"it broke the protocol: {exc}"
            raise ConnectionFailed(
                f"cannot open an AMQP 0-9-1 connection to {params.host}:{params.port}: {text}",
                retryable=False,
            ) from cause
        except BaseException as exc:
            self._abort(ConnectionLost(0, f"handshake failed: {exc}"))
            raise

    async def _open_inner(self) -> None:
        params = self.params
        try:
            context = params.make_ssl_context()
        except (OSError, ssl.SSLError) as exc:
            raise ConnectionFailed(f"cannot build the TLS context: {exc}", retryable=False) from None
        try:
            await self._loop.create_connection(
                lambda: _Protocol(self),
                params.host,
                params.port,
                ssl=context,
                server_hostname=(params.server_hostname or params.host) if context else None,
            )
        except ssl.SSLCertVerificationError as exc:
            raise ConnectionFailed(
                f"TLS certificate of {params.host}:{params.port} did not verify: {exc}", retryable=False
            ) from None
        except ssl.SSLError as exc:
            raise ConnectionFailed(f"TLS handshake with {params.host}:{params.port} failed: {exc}") from None
        except OSError as exc:
            raise ConnectionFailed(f"cannot connect to {params.host}:{params.port}: {exc}") from None
        assert self._transport is not None
        self._transport.write(PROTOCOL_HEADER)
        start = await self._ch0_wait(m.ConnectionStart)
        assert isinstance(start, m.ConnectionStart)
        self.server_properties = start.server_properties
        mechanism = params.auth_mechanism
        offered = start.mechanisms.decode("utf-8", "replace").split()
        if mechanism not in offered:
            raise AuthenticationError(
                f"the broker does not offer the {mechanism} mechanism (it offers {', '.join(offered)})"
            )
        start_ok = m.ConnectionStartOk(
            client_properties=self._client_properties(),
            mechanism=mechanism,
            response=self._auth_response(mechanism),
            locale=params.locale,
        )
        try:
            tune = await self._ch0_call(start_ok, expect=(m.ConnectionTune, m.ConnectionSecure))
        except ConnectionLost:
            # Brokers without authentication_failure_close just hang up.
            raise AuthenticationError(
                f"the broker closed the connection after login as {params.username!r}"
            ) from None
        if isinstance(tune, m.ConnectionSecure):
            raise AuthenticationError(f"{mechanism} does not support a challenge")
        assert isinstance(tune, m.ConnectionTune)
        self._tune(tune)
        await self._ch0_call(m.ConnectionOpen(virtual_host=params.virtual_host))
        self._handshake_done = True
        if self.heartbeat:
            self._schedule_heartbeat()
        log.debug("connected to %s", params.url)

    def _client_properties(self) -> dict[str, Any]:
        props: dict[str, Any] = {
            "product": "aiorabbit",
            "version": __version__,
            "platform": f"{platform.python_implementation()} {platform.python_version()}",
            "information": "https://pypi.org/project/aiorabbit-client/",
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
        if self.params.name:
            props["connection_name"] = self.params.name
        if self.params.client_properties:
            props.update(self.params.client_properties)
        encode_table(props)  # fail early, naming a bad user-supplied property
        return props

    def _auth_response(self, mechanism: str) -> bytes:
        params = self.params
        if mechanism == "PLAIN":
            return b"\x00" + params.username.encode() + b"\x00" + params.password.encode()
        if mechanism == "AMQPLAIN":
            # A field table without its length prefix.
            return encode_table({"LOGIN": params.username, "PASSWORD": params.password})[4:]
        return b""  # EXTERNAL: the identity is the TLS client certificate

    def _tune(self, tune: m.ConnectionTune) -> None:
        params = self.params

        def lower(ours: int, theirs: int) -> int:
            if ours and theirs:
                return min(ours, theirs)
            return ours or theirs

        self.channel_max = lower(params.channel_max, tune.channel_max) or 65535
        self.frame_max = lower(params.frame_max, tune.frame_max)
        if params.heartbeat is None:
            self.heartbeat = tune.heartbeat
        elif params.heartbeat == 0:
            self.heartbeat = 0
        else:
            self.heartbeat = lower(params.heartbeat, tune.heartbeat)
        self._parser.frame_max = self.frame_max
        self._write_now(
            encode_method_frame(
                0,
                m.ConnectionTuneOk(
                    channel_max=self.channel_max, frame_max=self.frame_max, heartbeat=self.heartbeat
                ),
            )
        )

    # ------------------------------------------------------------------
    # channel 0

    async def _ch0_wait(self, *expect: type[Method]) -> Method:
        self._check_alive()
        fut: asyncio.Future[Method] = self._loop.create_future()
        self._ch0_waiter = fut
        self._ch0_expect = expect
        self._frame_awaited()
        return await fut

    async def _ch0_call(self, method: Method, expect: tuple[type[Method], ...] | None = None) -> Method:
        async with self._ch0_lock:
            self._check_alive()
            fut: asyncio.Future[Method] = self._loop.create_future()
            self._ch0_waiter = fut
            self._ch0_expect = expect or method.RESPONSES
            self._frame_awaited()
            self._write_now(encode_method_frame(0, method))
            return await fut

    def _on_method(self, method: Method) -> None:
        waiter = self._ch0_waiter
        if waiter is not None and isinstance(method, self._ch0_expect):
            self._ch0_waiter = None
            if not waiter.done():
                waiter.set_result(method)
            return
        kind = type(method)
        if kind is m.ConnectionClose:
            assert isinstance(method, m.ConnectionClose)
            self._write_now(encode_method_frame(0, m.ConnectionCloseOk()))
            exc = connection_error(method.reply_code, method.reply_text)
            log.warning("broker closed the connection: %s", exc)
            self._shutdown(exc)
        elif kind is m.ConnectionCloseOk:
            if self._close_waiter is not None and not self._close_waiter.done():
                self._close_waiter.set_result(None)
        elif kind is m.ConnectionBlocked:
            assert isinstance(method, m.ConnectionBlocked)
            self._set_blocked(method.reason or "blocked")
        elif kind is m.ConnectionUnblocked:
            self._set_blocked(None)
        else:
            self._protocol_failure(ProtocolError(f"unexpected {method.NAME} on channel 0"))

    def _set_blocked(self, reason: str | None) -> None:
        self._blocked_reason = reason
        if reason is None:
            if self._unblocked is not None and not self._unblocked.done():
                self._unblocked.set_result(None)
            log.info("broker unblocked publishing")
        else:
            log.warning("broker blocked publishing: %s", reason)
        for callback in list(self._blocked_callbacks):
            try:
                callback(self, reason)
            except Exception:  # a user hook must not break the connection
                log.exception("blocked/unblocked callback failed")

    # ------------------------------------------------------------------
    # channels

    def _allocate_channel(self) -> int:
        limit = self.channel_max
        if len(self._channels) >= limit:
            raise ChannelExhausted(f"all {limit} channels are in use")
        number = self._next_channel
        while number in self._channels:
            number = number + 1 if number < limit else 1
        self._next_channel = number + 1 if number < limit else 1
        return number

    def _release_channel(self, number: int) -> None:
        self._channels.pop(number, None)
        # Prefer low numbers again once they are free.
        if number < self._next_channel:
            self._next_channel = number

    # ------------------------------------------------------------------
    # writing

    def _send(self, parts: list[Buffer], size: int) -> None:
        """Queue frames; they go out with everything else this loop turn."""
        self._out.extend(parts)
        self._out_bytes += size
        if size > _ZERO_COPY_MIN:
            self._out_large = True
        if self._out_bytes >= _FLUSH_AT:
            self._flush()
        elif not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _send_one(self, frame: bytes) -> None:
        self._out.append(frame)
        self._out_bytes += len(frame)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _send_method(self, channel: int, method: Method) -> None:
        self._send_one(encode_method_frame(channel, method))

    def _write_now(self, frame: bytes) -> None:
        """Write at once, after anything queued (used for control frames)."""
        self._out.append(frame)
        self._flush()

    def _flush(self) -> None:
        self._flush_scheduled = False
        out = self._out
        if not out:
            return
        self._out = []
        self._out_bytes = 0
        large, self._out_large = self._out_large, False
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        self._sent = True
        try:
            if len(out) == 1:
                transport.write(out[0])
            elif large and self._gather_fd >= 0:
                write_gathered(transport, self._gather_fd, out)
            else:
                transport.writelines(out)
        except Exception as exc:
            # Bodies are checked when published, so this is not one bad
            # message: part of the batch may be on the wire and the stream is
            # beyond repair.  Every pending call and confirm fails; none of
            # them is reported done.
            log.exception("writing to the socket failed")
            lost = ConnectionLost(0, f"writing to the socket failed: {exc!r}")
            lost.__cause__ = exc
            self._abort(lost)

    def _pause_reading(self) -> None:
        """A consumer's no_ack backlog is full: stop reading if we can."""
        self._backlogged += 1
        self._update_reading()

    def _resume_reading(self) -> None:
        """A consumer's backlog drained (or it ended)."""
        self._backlogged = max(0, self._backlogged - 1)
        self._update_reading()

    def _update_reading(self) -> None:
        """Read from the socket unless a backlogged consumer asks us not to
        and nothing else awaits a frame: a reply, a confirm or close-ok
        arriving behind the backlog would otherwise never be read."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        pause = self._backlogged > 0 and not self._awaits_frame()
        if pause != self._reading_paused:
            self._reading_paused = pause
            if pause:
                transport.pause_reading()
            else:
                transport.resume_reading()

    def _awaits_frame(self) -> bool:
        if self._ch0_waiter is not None or self._closing:
            return True
        return any(ch._awaits_frame() for ch in self._channels.values())

    def _frame_awaited(self) -> None:
        """Someone now waits for a frame from the broker: read again."""
        if self._reading_paused:
            self._update_reading()

    def _pause_writing(self) -> None:
        self._write_paused = True

    def _resume_writing(self) -> None:
        self._write_paused = False
        self._wake_writer()

    def _wake_writer(self) -> None:
        """Hand the turn to the next waiting publisher while the transport
        takes more.  Each one passes it on after it has written, so a resume
        wakes publishers only until the buffer is full again, not all of
        them (which would cost a wake-up per waiter per resume)."""
        waiters = self._write_waiters
        while waiters and not self._write_paused:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def _wait_writable(self) -> None:
        """Wait while the transport's buffer is full or the broker blocks us."""
        while True:
            self._check_open()
            if self._blocked_reason is not None:
                await self.wait_unblocked()
                continue
            if not self._write_paused:
                return
            waiter = self._loop.create_future()
            self._write_waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                    # Our turn: pass it on once we have written (or at once,
                    # if we were cancelled in the meantime).
                    self._loop.call_soon(self._wake_writer)
                elif not waiter.done():
                    waiter.cancel()  # skipped by _wake_writer

    def _fail_write_waiters(self, exc: BaseException) -> None:
        while self._write_waiters:
            _fail(self._write_waiters.popleft(), exc)

    # ------------------------------------------------------------------
    # heartbeats

    def _schedule_heartbeat(self) -> None:
        self._heartbeat_handle = self._loop.call_later(self.heartbeat / 2, self._heartbeat_tick)

    def _heartbeat_tick(self) -> None:
        if self._closed_exc is not None:
            return
        if self._received or self._reading_paused:
            # (While we stopped reading, silence is our doing, not the peer's.)
            self._heartbeat_misses = 0
            self._received = False
        else:
            self._heartbeat_misses += 1
            # Four half-intervals: the peer has been silent for two intervals.
            if self._heartbeat_misses >= 4:
                exc = HeartbeatTimeout(0, f"no frame from the broker for {2 * self.heartbeat}s")
                log.warning("%s", exc)
                self._abort(exc)
                return
        if not self._sent and self._transport is not None:
            self._transport.write(HEARTBEAT_FRAME)
        self._sent = False
        self._schedule_heartbeat()

    # ------------------------------------------------------------------
    # closing

    def _check_alive(self) -> None:
        if self._closed_exc is not None:
            raise self._closed_exc

    def _check_open(self) -> None:
        if self._closed_exc is not None:
            raise self._closed_exc
        if self._closing:
            raise ConnectionClosed(0, "connection is closing")

    def _protocol_failure(self, exc: AMQPError) -> None:
        """The broker broke the protocol: close with an error and give up."""
        if self._closed_exc is not None:
            return
        log.error("protocol failure: %s", exc)
        code = 501 if isinstance(exc, FrameError) else 505
        if (
            self._transport is not None
            and not self._transport.is_closing()
            and not isinstance(exc, ProtocolVersionMismatch)
        ):
            text = str(exc).encode("utf-8", "replace")[:255].decode("utf-8", "ignore")
            self._write_now(
                encode_method_frame(
                    0, m.ConnectionClose(reply_code=code, reply_text=text, class_id=0, method_id=0)
                )
            )
        closed = ProtocolViolation(code, f"protocol error: {exc}")
        closed.__cause__ = exc
        self._abort(closed)

    def _internal_failure(self, exc: Exception) -> None:
        """A bug or an exhausted resource while handling received bytes: the
        connection's state is unknown, so it closes with a typed error."""
        log.error("failure while handling received data", exc_info=exc)
        failure = ProtocolError(f"cannot handle the received data: {exc!r}")
        failure.__cause__ = exc
        self._protocol_failure(failure)

    def _abort(self, exc: ConnectionClosed) -> None:
        self._shutdown(exc)
        if self._transport is not None:
            self._transport.abort()

    def _shutdown(self, exc: ConnectionClosed) -> None:
        """Mark the connection closed and fail every waiter with ``exc``."""
        if self._closed_exc is None:
            self._closed_exc = exc
        exc = self._closed_exc
        if self._heartbeat_handle is not None:
            self._heartbeat_handle.cancel()
            self._heartbeat_handle = None
        if self._close_waiter is not None and not self._close_waiter.done():
            self._close_waiter.set_result(None)
        _fail(self._ch0_waiter, exc)
        self._fail_write_waiters(exc)
        _fail(self._unblocked, exc)
        self._ch0_waiter = None
        for ch in list(self._channels.values()):
            ch._set_closed(exc)
        self._channels.clear()
        self._out.clear()
        self._out_large = False
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.close()
        elif transport is None and not self._lost.done():
            self._lost.set_result(None)

    def _connection_made(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        transport.set_write_buffer_limits(high=_WRITE_HIGH)
        self._gather_fd = gather_fd(transport)

    def _connection_lost(self, exc: Exception | None) -> None:
        if self._closed_exc is None:
            reason = (str(exc) or repr(exc)) if exc else "the broker closed the socket"
            self._shutdown(ConnectionLost(0, reason))
        if not self._lost.done():
            self._lost.set_result(None)


async def _connect(params: ConnectionParameters) -> Connection:
    """Open a connection, trying ``connection_attempts`` times."""
    attempt = 0
    while True:
        attempt += 1
        conn = Connection(params)
        try:
            await conn._open()
            return conn
        except (ConnectionFailed, ConnectionClosed) as exc:
            if attempt >= params.connection_attempts or not _retryable(exc):
                raise
            log.info("connect attempt %d failed (%s); retrying", attempt, exc)
            await asyncio.sleep(params.retry_delay)


def _fail(waiter: asyncio.Future[Any] | None, exc: BaseException) -> None:
    """Fail ``waiter`` if it is pending, marking the error retrieved (nobody
    may be awaiting it)."""
    if waiter is not None and not waiter.done():
        waiter.set_exception(exc)
        waiter.exception()


def _retryable(exc: AMQPError) -> bool:
    if isinstance(exc, ConnectionFailed):
        return exc.retryable
    return isinstance(exc, ConnectionLost)


def connect(url: str | None = None, **options: Any) -> Opening[Connection]:
    """Open a connection to RabbitMQ.

    ``url`` defaults to ``$AMQP_URL``, else
    ``amqp://guest:guest@localhost:5672/%2F``; ``options`` override the URL's
    query options (see :class:`ConnectionParameters`).  Use as
    ``conn = await connect(...)`` or ``async with connect(...) as conn:``.

    Raises :class:`ConnectionFailed` when the broker cannot be reached
    within ``connection_timeout``, :class:`AuthenticationError` for refused
    credentials, :class:`NotAllowed` for an unknown or forbidden vhost and
    :class:`InvalidArgument` for a bad option.
    """
    if "params" in options:
        params = options.pop("params")
        if not isinstance(params, ConnectionParameters):
            raise InvalidArgument("params must be a ConnectionParameters")
        if options:
            params = params.replace(**options)
    else:
        params = ConnectionParameters.from_url(url, **options)
    return Opening(lambda: _connect(params))
