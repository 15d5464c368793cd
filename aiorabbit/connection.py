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
import logging
import platform
import ssl
import time
from collections.abc import Callable
from typing import Any

from ._compat import wait_for
from ._futures import fail
from ._logging import fields
from ._opening import Opening
from ._version import __version__
from .backoff import is_recoverable
from .channel import Channel
from .codec import Method
from .codec import methods as m
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
from .link import ChannelLink, ChannelPort
from .observe import Observer, resolve
from .outbox import Outbox
from .parameters import ConnectionParameters
from .phase import Phase, check_transition
from .protocol import Events, Protocol, Router
from .reading import ReadGate

__all__ = ["Connection", "connect"]

log = logging.getLogger("aiorabbit.connection")

BlockedCallback = Callable[["Connection", "str | None"], Any]


class Connection:
    """An open AMQP connection; create it with :func:`connect`."""

    def __init__(self, params: ConnectionParameters) -> None:
        self.params = params
        self._loop = asyncio.get_running_loop()
        self._phase = Phase.OPENING
        self._parser = FrameParser(params.frame_max or 0)
        self._channels: dict[int, Channel] = {}
        self._ports: dict[int, ChannelPort] = {}
        # Channels whose open was interrupted, being closed in the background.
        self._closing_channels: set[asyncio.Task[None]] = set()
        self._router = Router(self._ports, self._on_method)
        self._transport: asyncio.Transport | None = None
        self._outbox = Outbox(self._loop, self._write_failed)
        self._reading = ReadGate(self._awaits_frame)
        self._link = ChannelLink(self._outbox, self._reading, self._ports.__setitem__, self._release_channel,
                                 self._protocol_failure)
        self._protocol: Protocol | None = None
        self._blocked_callbacks: list[BlockedCallback] = []
        self._ch0_waiter: asyncio.Future[Method] | None = None
        self._ch0_expect: tuple[type[Method], ...] = ()
        self._ch0_lock = asyncio.Lock()
        self._close_waiter: asyncio.Future[None] | None = None
        self._closed_exc: ConnectionClosed | None = None
        self._lost: asyncio.Future[None] = self._loop.create_future()
        self._heartbeat_handle: asyncio.TimerHandle | None = None
        self._heartbeat_misses = 0
        self._next_channel = 1
        self._observer = resolve(params.observer)
        self._blocked_at = 0.0
        #: Negotiated limits (set by ``connection.tune``).
        self.channel_max = params.channel_max
        self.frame_max = params.frame_max
        self.heartbeat = 0
        #: The broker's ``server-properties`` table.
        self.server_properties: dict[str, Any] = {}

    # ------------------------------------------------------------------
    # public API

    @property
    def state(self) -> Phase:
        """``opening``, ``open``, ``closing`` or ``closed``."""
        return self._phase

    @property
    def is_open(self) -> bool:
        """True while the connection can be used."""
        return self._phase is Phase.OPEN

    @property
    def is_closed(self) -> bool:
        """True once the connection is closed (by either side, or lost)."""
        return self._phase is Phase.CLOSED

    @property
    def observer(self) -> Observer | None:
        """The observer that sees this connection's events (``None``: none)."""
        return self._observer

    @property
    def peer(self) -> tuple[str, int] | None:
        """The broker's address and port as connected (``None`` before)."""
        transport = self._transport
        peer = transport.get_extra_info("peername") if transport is not None else None
        if not peer:
            return None
        return str(peer[0]), int(peer[1])

    @property
    def is_blocked(self) -> bool:
        """True while the broker has blocked publishing (``connection.blocked``)."""
        return self._outbox.blocked_reason is not None

    @property
    def blocked_reason(self) -> str | None:
        """The reason the broker gave for blocking, or ``None``."""
        return self._outbox.blocked_reason

    @property
    def is_writable(self) -> bool:
        """True while a publish can be written without waiting: the socket
        takes more and the broker does not block publishers."""
        return not self._outbox.hold

    @property
    def closed_reason(self) -> ConnectionClosed | None:
        """Why the connection closed, once it has."""
        return self._closed_exc

    async def wait_unblocked(self) -> None:
        """Return once the broker is not blocking publishers."""
        self._check_open()
        await self._outbox.wait_unblocked()

    async def wait_usable(self, timeout: float | None = None) -> Connection:
        """Return this connection if it is open (a plain connection does not
        come back: there is nothing to wait for), else raise why not."""
        self._check_open()
        if self._phase is not Phase.OPEN:
            raise ConnectionClosed(0, "the connection is not open yet")
        return self

    def recovers_from(self, exc: BaseException) -> bool:
        """Whether the connection will recover from ``exc`` by itself: never
        for a plain connection."""
        return False

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
        ch = Channel(self, number, link=self._link, on_return=on_return)
        self._channels[number] = ch
        port = self._ports[number]
        try:
            await port.open()
            if publisher_confirms:
                await ch.confirm_select()
        except BaseException:
            if ch.is_closed or not self.is_open:
                if not ch.is_closed:
                    port.closed(ConnectionClosed(0, "channel open was interrupted"))
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
        if self._phase is Phase.CLOSED:
            return
        if self._phase is Phase.CLOSING:
            await asyncio.shield(self._lost)
            return
        self._enter(Phase.CLOSING)
        self._reading.frame_awaited()  # close-ok must be read, whatever the backlog
        # Publishers waiting for room or for an unblock would wait out the
        # whole handshake: they fail now, as any call after close() does.
        self._outbox.refuse(ConnectionClosed(0, "connection is closing"))
        graceful = False
        try:
            self._outbox.write_now(
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
        return f"<aiorabbit.Connection {self.params.url} {self._phase.value}>"

    def _enter(self, phase: Phase) -> None:
        """Every change of state goes through here."""
        check_transition(self._phase, phase)
        self._phase = phase

    # ------------------------------------------------------------------
    # opening

    async def _open(self) -> None:
        observer = self._observer
        if observer is None:
            await self._open_bounded()
            return
        observer.connecting(self.params)
        try:
            await self._open_bounded()
        except BaseException as exc:
            observer.connection_failed(self.params, exc)
            raise
        observer.connection_open(self)

    async def _open_bounded(self) -> None:
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
                self._make_protocol,
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
        if self._phase is Phase.OPENING:
            self._enter(Phase.OPEN)
        if self.heartbeat:
            self._schedule_heartbeat()
        log.info("connected to %s", params.url, extra=fields(params))

    def _make_protocol(self) -> Protocol:
        events = Events(self._connection_made, self._connection_lost, self._protocol_failure,
                         self._internal_failure, self._outbox, self._reading)
        self._protocol = Protocol(events, self._parser, self._router)
        return self._protocol

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
        self._outbox.write_now(
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
        self._reading.frame_awaited()
        return await fut

    async def _ch0_call(self, method: Method, expect: tuple[type[Method], ...] | None = None) -> Method:
        async with self._ch0_lock:
            self._check_alive()
            fut: asyncio.Future[Method] = self._loop.create_future()
            self._ch0_waiter = fut
            self._ch0_expect = expect or method.RESPONSES
            self._reading.frame_awaited()
            self._outbox.write_now(encode_method_frame(0, method))
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
            self._outbox.write_now(encode_method_frame(0, m.ConnectionCloseOk()))
            exc = connection_error(method.reply_code, method.reply_text)
            log.warning("broker closed the connection: %s", exc,
                        extra=fields(self.params, reply_code=method.reply_code))
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
        self._outbox.block(reason)
        now = time.monotonic()
        if reason is None:
            log.info("broker unblocked publishing", extra=fields(self.params))
            if self._observer is not None:
                self._observer.connection_unblocked(self, now - self._blocked_at)
        else:
            log.warning("broker blocked publishing: %s", reason, extra=fields(self.params))
            self._blocked_at = now
            if self._observer is not None:
                self._observer.connection_blocked(self, reason)
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
        self._ports.pop(number, None)
        # Prefer low numbers again once they are free.
        if number < self._next_channel:
            self._next_channel = number

    def _awaits_frame(self) -> bool:
        """True while anything waits for a frame from the broker (then
        reading goes on, whatever the consumers' backlog)."""
        if self._ch0_waiter is not None or self._phase is Phase.CLOSING:
            return True
        return any(port.awaits_frame() for port in self._ports.values())

    def _write_failed(self, exc: Exception) -> None:
        """A write to the socket raised: nothing pending is reported done."""
        lost = ConnectionLost(0, f"writing to the socket failed: {exc!r}")
        lost.__cause__ = exc
        self._abort(lost)

    # ------------------------------------------------------------------
    # heartbeats

    def _schedule_heartbeat(self) -> None:
        self._heartbeat_handle = self._loop.call_later(self.heartbeat / 2, self._heartbeat_tick)

    def _heartbeat_tick(self) -> None:
        protocol = self._protocol
        if self._phase is Phase.CLOSED or protocol is None:
            return
        if protocol.received or self._reading.paused:
            # (While we stopped reading, silence is our doing, not the peer's.)
            self._heartbeat_misses = 0
            protocol.received = False
        else:
            self._heartbeat_misses += 1
            # Four half-intervals: the peer has been silent for two intervals.
            if self._heartbeat_misses >= 4:
                exc = HeartbeatTimeout(0, f"no frame from the broker for {2 * self.heartbeat}s")
                log.warning("%s", exc, extra=fields(self.params))
                self._abort(exc)
                return
        self._outbox.write_heartbeat(HEARTBEAT_FRAME)
        self._schedule_heartbeat()

    # ------------------------------------------------------------------
    # closing

    def _check_alive(self) -> None:
        if self._closed_exc is not None:
            raise self._closed_exc

    def _check_open(self) -> None:
        if self._closed_exc is not None:
            raise self._closed_exc
        if self._phase is Phase.CLOSING:
            raise ConnectionClosed(0, "connection is closing")

    def _protocol_failure(self, exc: AMQPError) -> None:
        """The broker broke the protocol: close with an error and give up."""
        if self._phase is Phase.CLOSED:
            return
        log.error("protocol failure: %s", exc, extra=fields(self.params))
        code = 501 if isinstance(exc, FrameError) else 505
        transport = self._transport
        writable = transport is not None and not transport.is_closing()
        if writable and not isinstance(exc, ProtocolVersionMismatch):
            text = str(exc).encode("utf-8", "replace")[:255].decode("utf-8", "ignore")
            self._outbox.write_now(
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
            opened = self._phase is not Phase.OPENING  # else the open fails: connection_failed
            self._closed_exc = exc
            self._enter(Phase.CLOSED)
            if self._observer is not None and opened:
                self._observer.connection_closed(self, exc)
            if opened and getattr(exc, "by_client", False):
                log.info("connection closed", extra=fields(self.params, reply_code=exc.reply_code))
        exc = self._closed_exc
        if self._heartbeat_handle is not None:
            self._heartbeat_handle.cancel()
            self._heartbeat_handle = None
        if self._close_waiter is not None and not self._close_waiter.done():
            self._close_waiter.set_result(None)
        fail(self._ch0_waiter, exc)
        self._ch0_waiter = None
        self._outbox.refuse(exc)
        for port in list(self._ports.values()):
            port.closed(exc)
        self._channels.clear()
        self._ports.clear()
        self._outbox.discard()
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.close()
        elif transport is None and not self._lost.done():
            self._lost.set_result(None)

    def _connection_made(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._outbox.attach(transport)
        self._reading.attach(transport)

    def _connection_lost(self, exc: Exception | None) -> None:
        if self._closed_exc is None:
            reason = (str(exc) or repr(exc)) if exc else "the broker closed the socket"
            if self._phase is Phase.OPEN:
                log.warning("connection lost: %s", reason, extra=fields(self.params))
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
            await conn._open()  # seam: the module's own class, opened where it is made
            return conn
        except (ConnectionFailed, ConnectionClosed) as exc:
            if attempt >= params.connection_attempts or not is_recoverable(exc):
                raise
            log.info("connect attempt %d failed (%s); retrying", attempt, exc, extra=fields(params))
            await asyncio.sleep(params.retry_delay)


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
