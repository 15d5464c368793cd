"""Connections that come back: :func:`connect_robust`.

A :class:`RobustConnection` keeps one plain :class:`~aiorabbit.Connection`
at a time.  When it is lost for a reason worth retrying (see
:func:`~aiorabbit.backoff.is_recoverable`), a supervisor task reconnects with
backoff over the endpoints, then recovers, in order: the channels (the same
:class:`RobustChannel` objects, with their QoS and confirm mode), exchanges,
queues, exchange-to-exchange bindings, queue bindings and consumers (with
their tags).  Calls made meanwhile wait for it, up to ``wait_timeout``.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from ._compat import wait_for
from ._opening import Opening
from .backoff import Backoff, failure_signature, is_recoverable
from .channel import Channel, DeclareOk, _retrieve
from .codec._primitives import Buffer
from .codec.properties import Properties
from .connection import Connection, _fail
from .consumer import Consumer
from .exceptions import (
    AMQPError,
    ChannelClosed,
    ConnectionClosed,
    ConnectionFailed,
    ConsumerCancelled,
    DeprecatedFeature,
    InvalidArgument,
    OperationTimeout,
    RecoveryFailed,
    RecoveryTimeout,
    ResourceLocked,
    TransactionLost,
    closed_by_client,
)
from .message import IncomingMessage
from .parameters import ConnectionParameters
from .topology import BindingRecord, ExchangeRecord, QueueRecord, Topology

__all__ = ["connect_robust", "RobustConnection", "RobustChannel", "RobustConsumer", "DeclaredQueue", "State"]

log = logging.getLogger("aiorabbit")

# close() cancels a task up to this many times, waiting this long after each.
_STOP_TRIES = 50
_STOP_WAIT = 0.1

T = TypeVar("T")
Listener = Callable[..., Any]
EVENTS = (
    "disconnected",  # (conn, error): the connection was lost; recovery starts
    "reconnected",  # (conn,): connected again and everything recovered
    "recovery_failed",  # (conn, error): gave up; the connection is closed
    "recovery_error",  # (conn, record, error): one declare or consume failed during recovery
    "consumer_cancelled",  # (conn, consumer): the broker cancelled a consumer
    "blocked",  # (conn, reason)
    "unblocked",  # (conn,)
)


class State(str, enum.Enum):
    """Where a :class:`RobustConnection` is."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


def endpoints(url_or_urls: str | Sequence[str] | None, **options: Any) -> list[ConnectionParameters]:
    """One :class:`ConnectionParameters` per broker address: several URLs,
    or several ``host:port`` separated by commas in one URL."""
    if url_or_urls is None or isinstance(url_or_urls, str):
        urls = [url_or_urls]
    else:
        urls = list(url_or_urls)
        if not urls:
            raise InvalidArgument("connect_robust needs at least one URL")
    out = []
    for url in urls:
        for one in _split_hosts(url):
            out.append(ConnectionParameters.from_url(one, **options))
    return out


def _split_hosts(url: str | None) -> list[str | None]:
    if url is None:
        return [None]
    try:
        parts = urlsplit(url)
    except ValueError:
        # from_url explains what is wrong without quoting the password.
        return [url]
    userinfo, at, hosts = parts.netloc.rpartition("@")
    if "," not in hosts:
        return [url]
    return [urlunsplit(parts._replace(netloc=f"{userinfo}{at}{host}")) for host in hosts.split(",") if host]


class DeclaredQueue(DeclareOk):
    """What :meth:`RobustChannel.queue_declare` returns: a
    :class:`~aiorabbit.DeclareOk` whose ``queue`` attribute is always the
    queue's current name (a server-named queue gets a new name from the
    broker on each recovery).  Unpacking or indexing gives the name at
    declare time."""

    _record: QueueRecord

    @property
    def queue(self) -> str:
        """The queue's current name."""
        return self._record.name


class RobustConnection:
    """A connection whose channels, topology and consumers survive
    connection loss.  Create it with :func:`connect_robust`."""

    def __init__(
        self,
        endpoints: list[ConnectionParameters],
        *,
        backoff: Backoff,
        wait_timeout: float,
        recovery_timeout: float,
        first_connect_timeout: float | None = 60.0,
    ) -> None:
        self._endpoints = endpoints
        self._next_endpoint = 0
        self.backoff = backoff
        #: Seconds a call waits for a lost connection to come back.
        self.wait_timeout = wait_timeout
        #: Seconds allowed for each step of recovery (a declare, a consume).
        self.recovery_timeout = recovery_timeout
        #: Seconds the first connect keeps trying (``None``: for ever).
        self.first_connect_timeout = first_connect_timeout
        #: The declared exchanges, queues and bindings that recovery restores.
        self.topology = Topology()
        self._loop = asyncio.get_running_loop()
        self._conn: Connection | None = None
        self._state = State.CONNECTING
        self._closing = False
        self._closed_exc: BaseException | None = None
        self._connected: asyncio.Future[None] = self._loop.create_future()
        self._closed_for_good: asyncio.Future[None] = self._loop.create_future()
        self._channels: list[RobustChannel] = []
        self._listeners: dict[str, list[Listener]] = {event: [] for event in EVENTS}
        self._blocked_callbacks: list[Callable[[RobustConnection, str | None], Any]] = []
        self._supervisor: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._attempts = 0
        self._outage_started = 0.0
        self._connected_at = 0.0
        # The latest reason the connection was lost or could not be made.
        self._last_error: BaseException | None = None
        # The last recovery failure and how often it came in a row.
        self._last_failure: tuple[object, ...] | None = None
        self._same_failures = 0

    # ------------------------------------------------------------------
    # state

    @property
    def state(self) -> State:
        """``connecting``, ``connected``, ``reconnecting`` or ``closed``."""
        return self._state

    @property
    def is_open(self) -> bool:
        """True while connected (not while reconnecting)."""
        return self._state is State.CONNECTED and self._conn is not None and self._conn.is_open

    @property
    def is_closed(self) -> bool:
        """True once closed by :meth:`close` or after recovery gave up."""
        return self._state is State.CLOSED

    @property
    def closed_reason(self) -> BaseException | None:
        """Why the connection closed for good (``None`` while it is not)."""
        return self._closed_exc

    @property
    def connection(self) -> Connection | None:
        """The plain connection in use right now (replaced on recovery)."""
        return self._conn

    @property
    def server_properties(self) -> dict[str, Any]:
        """The current broker's ``connection.start`` properties."""
        return self._conn.server_properties if self._conn is not None else {}

    @property
    def is_blocked(self) -> bool:
        """True while the broker blocks publishers on this connection."""
        return self._conn is not None and self._conn.is_blocked

    @property
    def last_error(self) -> BaseException | None:
        """The latest reason the connection was lost or could not be made
        (kept after recovery, for diagnostics)."""
        return self._last_error

    @property
    def blocked_reason(self) -> str | None:
        """The reason the broker gave for blocking, or ``None``."""
        return self._conn.blocked_reason if self._conn is not None else None

    @property
    def params(self) -> ConnectionParameters:
        """The parameters of the endpoint in use (or tried) now."""
        if self._conn is not None:
            return self._conn.params
        return self._endpoints[self._next_endpoint % len(self._endpoints)]

    async def wait_closed(self) -> BaseException:
        """Wait until the connection is closed for good (:meth:`close`, or
        recovery gave up); return the reason.  A loss that recovery repairs
        does not end the wait."""
        await asyncio.shield(self._closed_for_good)
        assert self._closed_exc is not None
        return self._closed_exc

    async def wait_unblocked(self) -> None:
        """Return once the broker is not blocking publishers.  A connection
        lost while blocked ends the wait: its replacement starts unblocked."""
        conn = self._conn
        if conn is None or not conn.is_blocked:
            return
        try:
            await conn.wait_unblocked()
        except ConnectionClosed:
            if self._state is State.CLOSED:
                raise

    def __repr__(self) -> str:
        return f"<aiorabbit.RobustConnection {self._state.value} {self._conn!r}>"

    # ------------------------------------------------------------------
    # events

    def add_listener(self, event: str, callback: Listener) -> None:
        """Call ``callback(conn, ...)`` on ``event``: one of ``disconnected``,
        ``reconnected``, ``recovery_failed``, ``recovery_error``,
        ``consumer_cancelled``, ``blocked``, ``unblocked`` (a coroutine
        function is run as a task, cancelled at close)."""
        if event not in self._listeners:
            raise InvalidArgument(f"unknown event {event!r}; one of {', '.join(EVENTS)}")
        self._listeners[event].append(callback)

    def remove_listener(self, event: str, callback: Listener) -> None:
        """Stop calling ``callback`` on ``event``."""
        if callback in self._listeners.get(event, []):
            self._listeners[event].remove(callback)

    def add_blocked_callback(self, callback: Callable[[RobustConnection, str | None], Any]) -> None:
        """Like :meth:`Connection.add_blocked_callback`, across reconnects."""
        self._blocked_callbacks.append(callback)

    def remove_blocked_callback(self, callback: Callable[[RobustConnection, str | None], Any]) -> None:
        """Forget a callback given to :meth:`add_blocked_callback`."""
        self._blocked_callbacks.remove(callback)

    def _emit(self, event: str, *args: Any) -> None:
        for callback in list(self._listeners[event]):
            try:
                result = callback(self, *args)
                if inspect.isawaitable(result):
                    self._spawn(result)
            except Exception:
                log.exception("%s listener failed", event)

    def _spawn(self, awaitable: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(awaitable)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _on_blocked(self, conn: Connection, reason: str | None) -> None:
        if conn is not self._conn:
            return
        if reason is not None:
            self._emit("blocked", reason)
        else:
            self._emit("unblocked")
        for callback in list(self._blocked_callbacks):
            try:
                callback(self, reason)
            except Exception:
                log.exception("blocked callback failed")

    # ------------------------------------------------------------------
    # connecting

    async def _start(self) -> None:
        self._outage_started = time.monotonic()
        self._attempts = 0
        try:
            conn = await self._connect_with_backoff(first=True)
        except BaseException as exc:
            self._state = State.CLOSED
            self._closed_exc = exc
            self._connected.cancel()
            self._closed_for_good.set_result(None)
            raise
        self._use(conn)
        self._set_connected()
        self._supervisor = self._loop.create_task(self._supervise())

    def _use(self, conn: Connection) -> None:
        if self._closing:
            # close() ran while this connection was being opened.
            conn._abort(ConnectionClosed(200, "closed by client"))
            raise asyncio.CancelledError
        self._conn = conn
        conn.add_blocked_callback(self._on_blocked)

    def _set_connected(self) -> None:
        self._state = State.CONNECTED
        self._connected_at = time.monotonic()
        if not self._connected.done():
            self._connected.set_result(None)

    def _stable(self) -> bool:
        """Whether the connection just lost had been up long enough for
        the next outage to start its backoff afresh."""
        return time.monotonic() - self._connected_at >= self.backoff.reset_after

    def _same_failure_again(self, exc: BaseException) -> bool:
        """Count ``exc`` as a recovery failure; True once the same one came
        ``max_same_failures`` times in a row."""
        signature = failure_signature(exc)
        if signature is None:
            return False
        if signature == self._last_failure:
            self._same_failures += 1
        else:
            self._last_failure, self._same_failures = signature, 1
        limit = self.backoff.max_same_failures
        return limit is not None and self._same_failures >= limit

    def _check_closing(self) -> None:
        if self._closing:
            raise asyncio.CancelledError

    async def _connect_with_backoff(self, *, first: bool = False) -> Connection:
        """Connect to the next endpoint, moving on after each failure, with
        the backoff's delays; raise when the error is fatal or the budget
        is spent."""
        while True:
            self._check_closing()
            params = self._endpoints[self._next_endpoint % len(self._endpoints)]
            conn = Connection(params)
            try:
                await conn._open()
                return conn
            except AMQPError as exc:
                self._last_error = exc
                if not is_recoverable(exc):
                    raise
                self._attempts += 1
                self._next_endpoint += 1
                elapsed = time.monotonic() - self._outage_started
                if self.backoff.exhausted(self._attempts, elapsed):
                    raise
                if first and self.first_connect_timeout is not None and elapsed >= self.first_connect_timeout:
                    raise ConnectionFailed(
                        f"could not connect to {params.url} within {self.first_connect_timeout:g} s "
                        f"({self._attempts} attempts); last error: {exc}"
                    ) from exc
                delay = self.backoff.delay(self._attempts)
                log.warning("connecting to %s failed (%s); attempt %d, next in %.2f s",
                            params.url, exc, self._attempts + 1, delay)
                await asyncio.sleep(delay)

    async def _supervise(self) -> None:
        while True:
            conn = self._conn
            assert conn is not None
            reason = await conn.wait_closed()
            self._last_error = reason
            if self._closing:
                return
            if not is_recoverable(reason):
                self._emit("recovery_failed", reason)
                self._give_up(reason)
                return
            stable = self._stable()
            if stable:
                self._attempts = 0
                self._last_failure, self._same_failures = None, 0
            elif self._same_failure_again(reason):
                failed = RecoveryFailed(
                    f"the connection failed the same way {self._same_failures} times in a row "
                    f"soon after recovering: {reason}"
                )
                failed.__cause__ = reason
                self._emit("recovery_failed", failed)
                self._give_up(failed)
                return
            log.warning("connection lost (%s); recovering", reason)
            self._state = State.RECONNECTING
            self._connected = self._loop.create_future()
            self._outage_started = time.monotonic()
            self._emit("disconnected", reason)
            try:
                if not stable:
                    # Lost again soon after recovering: back off first.
                    self._attempts += 1
                    await asyncio.sleep(self.backoff.delay(self._attempts))
                await self._reconnect()
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                log.error("recovery failed: %s", exc)
                self._emit("recovery_failed", exc)
                self._give_up(exc)
                return
            log.info("connection recovered")
            self._emit("reconnected")

    async def _reconnect(self) -> None:
        while True:
            conn = await self._connect_with_backoff()
            self._use(conn)
            try:
                await self._recover(conn)
            except (AMQPError, asyncio.TimeoutError) as exc:
                if isinstance(exc, AMQPError) and not isinstance(
                    exc, (ConnectionClosed, ChannelClosed, OperationTimeout)
                ):
                    raise
                if isinstance(exc, ConnectionClosed) and exc.reply_code and not is_recoverable(exc):
                    raise  # the broker closed it for a reason reconnecting cannot fix
                if isinstance(exc, DeprecatedFeature):
                    raise RecoveryFailed(
                        f"the broker refuses to restore the recorded topology: {exc}"
                    ) from exc
                # The new connection died, or a step did not answer in time:
                # nothing is reported as recovered; start over.
                log.warning("recovery interrupted (%s); reconnecting", exc or "timeout")
                conn._abort(ConnectionClosed(0, "recovery interrupted"))
                if self._same_failure_again(exc):
                    raise RecoveryFailed(
                        f"recovery failed the same way {self._same_failures} times in a row: "
                        f"{exc or type(exc).__name__}"
                    ) from exc
                self._check_closing()
                self._attempts += 1
                if self.backoff.exhausted(self._attempts, time.monotonic() - self._outage_started):
                    raise
                await asyncio.sleep(self.backoff.delay(self._attempts))
                continue
            self._set_connected()
            return

    async def _recover(self, conn: Connection) -> None:
        timeout = self.recovery_timeout
        for channel in list(self._channels):
            await wait_for(channel._reopen(conn), timeout)
        await self._recover_topology(conn)
        for channel in list(self._channels):
            await channel._recover_consumers(conn)

    async def _recover_topology(self, conn: Connection) -> None:
        topology, timeout = self.topology, self.recovery_timeout
        # The broker drops a silent connection after two missed heartbeats;
        # until then its exclusive queues stay locked.
        locked_budget = max(self.wait_timeout, 3.0 * conn.heartbeat)
        ch = await wait_for(conn.channel(), timeout)

        async def run(record: Any, call: Callable[[Channel], Awaitable[T]]) -> T | None:
            nonlocal ch
            started = time.monotonic()
            attempt = 0
            while True:
                try:
                    return await wait_for(call(ch), timeout)
                except ChannelClosed as exc:
                    ch = await wait_for(conn.channel(), timeout)
                    attempt += 1
                    # An exclusive queue of the dead connection is still
                    # there until the broker notices that connection is gone.
                    if isinstance(exc, ResourceLocked) and time.monotonic() - started < locked_budget:
                        await asyncio.sleep(self.backoff.delay(attempt))
                        continue
                    log.warning("recovering %r failed: %s", record, exc)
                    self._emit("recovery_error", record, exc)
                    return None

        for ex in list(topology.exchanges.values()):
            await run(ex, lambda c, ex=ex: c.exchange_declare(  # type: ignore[misc]
                ex.name, ex.type, durable=ex.durable, auto_delete=ex.auto_delete, internal=ex.internal,
                arguments=ex.arguments))
        for q in list(topology.queues.values()):
            old = q.name
            ok = await run(q, lambda c, q=q: c.queue_declare(  # type: ignore[misc]
                "" if q.server_named else q.name, durable=q.durable, exclusive=q.exclusive,
                auto_delete=q.auto_delete, arguments=q.arguments))
            if ok is not None and ok.queue != old:
                topology.rename_queue(old, ok.queue)
                for channel in self._channels:
                    channel._rename_queue(old, ok.queue)
        for b in topology.exchange_bindings():
            await run(b, lambda c, b=b: c.exchange_bind(  # type: ignore[misc]
                b.destination, b.source, b.routing_key, b.arguments))
        for b in topology.queue_bindings():
            await run(b, lambda c, b=b: c.queue_bind(  # type: ignore[misc]
                b.destination, b.source, b.routing_key, b.arguments))
        await wait_for(ch.close(), timeout)

    def _give_up(self, exc: BaseException) -> None:
        self._state = State.CLOSED
        self._closed_exc = exc
        if not self._closed_for_good.done():
            self._closed_for_good.set_result(None)
        _fail(self._connected, exc)
        for channel in list(self._channels):
            channel._set_closed(exc)

    async def _wait_connected(self, timeout: float | None) -> Connection:
        """The live connection, waiting up to ``timeout`` for recovery."""
        while True:
            if self._state is State.CLOSED:
                raise ConnectionClosed(0, f"connection closed: {self._closed_exc}")
            conn = self._conn
            if self._state is State.CONNECTED and conn is not None and conn.is_open:
                return conn
            waiter = self._connected
            if waiter.done():
                # Connected on paper, but the socket just died: the
                # supervisor will notice on its next turn.
                await asyncio.sleep(0.01)
                continue
            try:
                await wait_for(asyncio.shield(waiter), timeout)
            except asyncio.TimeoutError:
                last = self.last_error
                failed = RecoveryTimeout(
                    f"the connection to {self.params.url} was not back within {timeout} s"
                    + (f"; last error: {last}" if last is not None else "")
                )
                raise failed from last

    def _lost_connection(self, exc: BaseException) -> bool:
        """Whether ``exc`` (from a call) means the connection went away in a
        way recovery will repair."""
        if self._closing or self._state is State.CLOSED:
            return False
        if isinstance(exc, ChannelClosed) and exc.cause is not None:
            exc = exc.cause
        if isinstance(exc, DeprecatedFeature):
            return False  # the call itself was refused: retrying repeats it
        return isinstance(exc, ConnectionClosed) and is_recoverable(exc)

    # ------------------------------------------------------------------
    # public API

    async def wait_connected(self, timeout: float | None = None) -> None:
        """Wait until connected (now, or after recovery); raise
        :class:`RecoveryTimeout` after ``timeout`` seconds."""
        await self._wait_connected(timeout)

    def channel(
        self,
        *,
        publisher_confirms: bool = False,
        on_return: Callable[[Any], Any] | None = None,
    ) -> Opening[RobustChannel]:
        """Open a :class:`RobustChannel` (reopened on every recovery):
        ``ch = await conn.channel()``, or ``async with conn.channel() as
        ch:`` to close it when the block ends."""
        return Opening(lambda: self._open_channel(publisher_confirms, on_return))

    async def _open_channel(
        self, publisher_confirms: bool, on_return: Callable[[Any], Any] | None
    ) -> RobustChannel:
        channel = RobustChannel(self, publisher_confirms=publisher_confirms, on_return=on_return)
        conn = await self._wait_connected(self.wait_timeout)
        await channel._reopen(conn)
        self._channels.append(channel)
        return channel

    async def update_secret(self, new_secret: str | bytes, reason: str = "") -> None:
        """Update the secret (for example an OAuth token) now and for every
        later reconnect."""
        conn = await self._wait_connected(self.wait_timeout)
        await conn.update_secret(new_secret, reason)
        secret = new_secret.decode() if isinstance(new_secret, bytes) else new_secret
        self._endpoints = [params.replace(password=secret) for params in self._endpoints]

    async def close(self) -> None:
        """Close for good (idempotent), stopping any reconnect under way."""
        if self._closing:
            return
        self._closing = True
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None and supervisor is not asyncio.current_task():
            await _stop(supervisor, "the recovery task")
        # A listener task may be the one calling close(): it is left alone.
        others = [task for task in self._tasks if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        for channel in list(self._channels):
            channel._stop_reconsuming()
        conn = self._conn
        if conn is not None and not conn.is_closed:
            await conn.close()
        closed = closed_by_client(ConnectionClosed(200, "closed by client"))
        if self._state is not State.CLOSED:
            self._give_up(closed)
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                await _stop(task, "a listener or consumer task")

    async def __aenter__(self) -> RobustConnection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class RobustChannel:
    """A channel that is reopened, with its QoS, confirm mode and consumers,
    whenever its connection recovers (or after a channel error closed it).

    It has :class:`~aiorabbit.Channel`'s methods.  Declares, binds, unbinds
    and deletes are recorded in the connection's topology.  A call made
    while the connection is down waits for it (up to the connection's
    ``wait_timeout``, then :class:`RecoveryTimeout`); declares, binds and
    QoS interrupted by a loss are retried after recovery.  A publish that
    the loss interrupts raises: use :class:`aiorabbit.Publisher` for
    at-least-once delivery.
    """

    def __init__(
        self,
        rconn: RobustConnection,
        *,
        publisher_confirms: bool,
        on_return: Callable[[Any], Any] | None,
    ) -> None:
        self._rconn = rconn
        self._confirms = publisher_confirms
        self._on_return = on_return
        self._inner: Channel | None = None
        self._qos: dict[bool, tuple[int, int]] = {}  # global flag -> (count, size)
        self._consumers: list[RobustConsumer] = []
        self._closed_exc: BaseException | None = None
        self._reopen_lock = asyncio.Lock()
        self._tx = False
        # The plain channel the current transaction runs on.
        self._tx_channel: Channel | None = None

    @property
    def connection(self) -> RobustConnection:
        """The robust connection this channel belongs to."""
        return self._rconn

    @property
    def channel(self) -> Channel | None:
        """The plain channel in use right now (replaced on recovery)."""
        return self._inner

    @property
    def is_open(self) -> bool:
        """True while usable now (not while the connection recovers)."""
        return self._closed_exc is None and self._inner is not None and self._inner.is_open

    @property
    def is_closed(self) -> bool:
        """True once closed by :meth:`close` or by the connection giving up."""
        return self._closed_exc is not None

    @property
    def publisher_confirms(self) -> bool:
        """Whether publishes wait for the broker's confirm."""
        return self._confirms

    @property
    def closed_reason(self) -> BaseException | None:
        """Why the channel closed for good (``None`` while it is usable)."""
        return self._closed_exc

    @property
    def number(self) -> int | None:
        """The channel number in use now (it may change on recovery)."""
        return self._inner.number if self._inner is not None else None

    def __repr__(self) -> str:
        return f"<aiorabbit.RobustChannel {self._inner!r}>"

    async def __aenter__(self) -> RobustChannel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- recovery ----------------------------------------------------------

    async def _reopen(self, conn: Connection) -> None:
        inner = await conn.channel(publisher_confirms=self._confirms, on_return=self._on_return)
        for global_qos, (count, size) in self._qos.items():
            await inner.basic_qos(prefetch_count=count, prefetch_size=size, global_qos=global_qos)
        if self._tx:
            await inner.tx_select()
        self._inner = inner

    async def _recover_consumers(self, conn: Connection) -> None:
        timeout = self._rconn.recovery_timeout
        while True:
            inner = self._inner
            assert inner is not None
            for consumer in list(self._consumers):
                if not consumer._needs_resume(inner):
                    continue
                try:
                    await wait_for(consumer._resume(inner), timeout)
                except ChannelClosed as exc:
                    # Its queue is gone (and was not declared by us): report
                    # it, watch for the queue, and go on with the others on
                    # a fresh channel (the error closed this one).
                    log.warning("recovering consumer %r failed: %s", consumer, exc)
                    self._rconn._emit("recovery_error", consumer, exc)
                    consumer._park()
                    await wait_for(self._reopen(conn), timeout)
                    break
            else:
                return

    async def _live(self) -> Channel:
        """The plain channel to use now, waiting while the connection
        recovers, reopening it if a channel error closed it."""
        rconn = self._rconn
        while True:
            if self._closed_exc is not None:
                raise ChannelClosed(0, "channel is closed", cause=self._closed_exc)
            inner = self._inner
            if inner is not None and inner.is_open and rconn._state is State.CONNECTED:
                return inner
            conn = await rconn._wait_connected(rconn.wait_timeout)
            async with self._reopen_lock:
                if self._inner is inner and (inner is None or inner.is_closed) and self._closed_exc is None:
                    try:
                        await wait_for(self._reopen(conn), rconn.recovery_timeout)
                        await self._recover_consumers(conn)
                    except (ConnectionClosed, ChannelClosed) as exc:
                        if not rconn._lost_connection(exc):
                            raise
                    except asyncio.TimeoutError:
                        raise RecoveryTimeout(
                            f"reopening the channel took more than {rconn.recovery_timeout} s"
                        ) from None

    async def _run(self, call: Callable[[Channel], Awaitable[T]], *, retry: bool) -> T:
        while True:
            inner = await self._live()
            try:
                return await call(inner)
            except (ConnectionClosed, ChannelClosed) as exc:
                if not retry or not self._rconn._lost_connection(exc):
                    raise

    def _rename_queue(self, old: str, new: str) -> None:
        for consumer in self._consumers:
            if consumer._queue == old:
                consumer._queue = new

    def _set_closed(self, exc: BaseException) -> None:
        if self._closed_exc is None:
            self._closed_exc = exc
        for consumer in list(self._consumers):
            consumer._abort(exc)

    def _stop_reconsuming(self) -> None:
        for consumer in self._consumers:
            consumer._stop_watching()

    # -- channel methods ---------------------------------------------------

    async def close(self, *, timeout: float | None = None) -> None:
        """Close the channel for good (idempotent); its consumers end.  It
        returns within ``timeout`` (default: ``call_timeout``) whatever
        the broker does."""
        if self._closed_exc is not None:
            return
        self._set_closed(closed_by_client(ChannelClosed(200, "closed by client")))
        for consumer in list(self._consumers):
            await consumer.cancel()
        if self in self._rconn._channels:
            self._rconn._channels.remove(self)
        if self._inner is not None:
            await self._inner.close(timeout=timeout)

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
        """Declare an exchange and record it for recovery (not when passive)."""
        await self._run(lambda ch: ch.exchange_declare(
            exchange, exchange_type, passive=passive, durable=durable, auto_delete=auto_delete,
            internal=internal, arguments=arguments, timeout=timeout), retry=True)
        if not passive and exchange and not exchange.startswith("amq."):
            self._rconn.topology.add_exchange(ExchangeRecord(
                exchange, exchange_type, durable, auto_delete, internal, _copy(arguments)))

    async def exchange_delete(
        self,
        exchange: str,
        *,
        if_unused: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Delete an exchange and forget it."""
        await self._run(
            lambda ch: ch.exchange_delete(exchange, if_unused=if_unused, timeout=timeout),
            retry=False,
        )
        self._rconn.topology.remove_exchange(exchange)

    async def exchange_bind(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        """Bind exchange ``destination`` to ``source``; recorded for recovery."""
        await self._run(
            lambda ch: ch.exchange_bind(destination, source, routing_key, arguments, timeout=timeout),
            retry=True,
        )
        self._rconn.topology.add_binding(
            BindingRecord("exchange", destination, source, routing_key, _copy(arguments)))

    async def exchange_unbind(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        """Remove an exchange-to-exchange binding and forget it."""
        await self._run(
            lambda ch: ch.exchange_unbind(destination, source, routing_key, arguments, timeout=timeout),
            retry=True)
        self._rconn.topology.remove_binding(
            BindingRecord("exchange", destination, source, routing_key, _copy(arguments)))

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
    ) -> DeclaredQueue:
        """Declare a queue and record it for recovery (not when passive).

        The result's ``queue`` follows a server-named queue's new name
        after each recovery."""
        ok = await self._run(lambda ch: ch.queue_declare(
            queue, passive=passive, durable=durable, exclusive=exclusive, auto_delete=auto_delete,
            arguments=arguments, timeout=timeout), retry=True)
        result = DeclaredQueue(*ok)
        topology = self._rconn.topology
        record = topology.queues.get(ok.queue)
        if not passive or record is None:
            record = QueueRecord(ok.queue, queue == "", durable, exclusive, auto_delete, _copy(arguments))
            if not passive:
                topology.add_queue(record)
        result._record = record
        return result

    async def queue_bind(
        self,
        queue: str,
        exchange: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        """Bind a queue to an exchange; recorded for recovery (every routing
        key and argument set is its own binding)."""
        await self._run(
            lambda ch: ch.queue_bind(queue, exchange, routing_key, arguments, timeout=timeout),
            retry=True,
        )
        self._rconn.topology.add_binding(
            BindingRecord("queue", queue, exchange, routing_key, _copy(arguments)))

    async def queue_unbind(
        self,
        queue: str,
        exchange: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        """Remove a queue binding and forget it."""
        await self._run(
            lambda ch: ch.queue_unbind(queue, exchange, routing_key, arguments, timeout=timeout),
            retry=True,
        )
        self._rconn.topology.remove_binding(
            BindingRecord("queue", queue, exchange, routing_key, _copy(arguments)))

    async def queue_purge(
        self,
        queue: str,
        *,
        timeout: float | None = None,
    ) -> int:
        """Remove every ready message from ``queue``; return how many."""
        return await self._run(lambda ch: ch.queue_purge(queue, timeout=timeout), retry=False)

    async def queue_delete(
        self,
        queue: str,
        *,
        if_unused: bool = False,
        if_empty: bool = False,
        timeout: float | None = None,
    ) -> int:
        """Delete a queue and forget it (and its bindings)."""
        count = await self._run(
            lambda ch: ch.queue_delete(queue, if_unused=if_unused, if_empty=if_empty, timeout=timeout),
            retry=False)
        rconn = self._rconn
        rconn.topology.remove_queue(queue)
        # Its consumers end (the broker cancelled them) instead of waiting
        # for a queue the application meant to remove.
        for channel in rconn._channels:
            for consumer in list(channel._consumers):
                if consumer.queue == queue:
                    channel._consumers.remove(consumer)
                    consumer._abort(ConsumerCancelled(consumer.consumer_tag or ""))
        return count

    async def basic_qos(
        self,
        prefetch_count: int = 0,
        prefetch_size: int = 0,
        global_qos: bool = False,
        *,
        timeout: float | None = None,
    ) -> None:
        """Set the prefetch limits; reapplied on every recovery."""
        await self._run(
            lambda ch: ch.basic_qos(prefetch_count, prefetch_size, global_qos, timeout=timeout),
            retry=True,
        )
        self._qos[global_qos] = (prefetch_count, prefetch_size)

    async def confirm_select(self, *, timeout: float | None = None) -> None:
        """Enable publisher confirms, now and on every channel recovery
        opens."""
        self._confirms = True
        await self._run(lambda ch: ch.confirm_select(timeout=timeout), retry=True)

    async def tx_select(self, *, timeout: float | None = None) -> None:
        """Put the channel in transaction mode, now and after recovery."""
        self._tx = True
        self._tx_channel = await self._run(lambda ch: _selected(ch, timeout), retry=True)

    async def tx_commit(self, *, timeout: float | None = None) -> None:
        """Commit the current transaction.

        Raises :class:`~aiorabbit.TransactionLost` if the channel was lost
        since the transaction began: the broker discarded its publishes and
        acks (publish them again; a new transaction has begun).  A commit
        cut off by a loss raises the connection's error: whether the broker
        committed is then unknown."""
        inner = await self._tx_live()
        await inner.tx_commit(timeout=timeout)

    async def tx_rollback(self, *, timeout: float | None = None) -> None:
        """Roll back the current transaction.  After a loss there is nothing
        to roll back (the broker discarded it), so this only starts anew."""
        inner = await self._live()
        if inner is not self._tx_channel:
            self._tx_channel = inner
            return
        await inner.tx_rollback(timeout=timeout)

    async def _tx_live(self) -> Channel:
        if not self._tx:
            raise InvalidArgument("tx_select() first: the channel is not in transaction mode")
        inner = await self._live()
        if inner is not self._tx_channel:
            self._tx_channel = inner
            raise TransactionLost(
                "the channel was lost during the transaction: the broker discarded its publishes "
                "and acks; a new transaction has begun"
            )
        return inner

    async def basic_recover(
        self,
        requeue: bool = True,
        *,
        timeout: float | None = None,
    ) -> None:
        """Redeliver every unacknowledged message on this channel."""
        await self._run(lambda ch: ch.basic_recover(requeue, timeout=timeout), retry=False)

    async def flow(
        self,
        active: bool,
        *,
        timeout: float | None = None,
    ) -> bool:
        """Ask the broker to pause (``False``) or resume deliveries."""
        return await self._run(lambda ch: ch.flow(active, timeout=timeout), retry=False)

    async def basic_get(
        self,
        queue: str,
        *,
        no_ack: bool = False,
        timeout: float | None = None,
    ) -> IncomingMessage | None:
        """Fetch one message from ``queue``, or ``None`` if it is empty."""
        return await self._run(lambda ch: ch.basic_get(queue, no_ack=no_ack, timeout=timeout), retry=False)

    async def basic_publish(
        self,
        body: Buffer,
        *,
        exchange: str = "",
        routing_key: str = "",
        properties: Properties | None = None,
        mandatory: bool = False,
    ) -> None:
        """Publish a message (see :meth:`Channel.basic_publish`).  While the
        connection is down this waits for it, up to ``wait_timeout``."""
        inner = self._inner
        if inner is None or not inner.is_open or self._rconn._state is not State.CONNECTED:
            inner = await self._live()
        await inner.basic_publish(
            body, exchange=exchange, routing_key=routing_key, properties=properties, mandatory=mandatory
        )

    def consume(
        self,
        queue: str,
        *,
        no_ack: bool = False,
        exclusive: bool = False,
        arguments: Mapping[str, Any] | None = None,
        consumer_tag: str | None = None,
    ) -> RobustConsumer:
        """A consumer that survives recovery: ``async with ch.consume(q) as
        messages: async for msg in messages:`` keeps yielding across
        reconnects (messages unacked at the loss come again, redelivered)."""
        return RobustConsumer(self, queue, no_ack=no_ack, exclusive=exclusive, arguments=arguments,
                              consumer_tag=consumer_tag)

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
        """Start a callback consumer that survives recovery; return its tag."""
        consumer = RobustConsumer(self, queue, no_ack=no_ack, exclusive=exclusive, arguments=arguments,
                                  consumer_tag=consumer_tag, callback=callback)
        await consumer.start()
        assert consumer.consumer_tag is not None
        return consumer.consumer_tag

    async def basic_cancel(self, consumer_tag: str) -> None:
        """Cancel the consumer with ``consumer_tag`` (it is not recovered)."""
        for consumer in self._consumers:
            if consumer.consumer_tag == consumer_tag:
                await consumer.cancel()
                return
        raise InvalidArgument(f"no consumer {consumer_tag!r} on this channel")


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
    ) -> None:
        self.channel = channel
        self._queue = queue
        self.no_ack = no_ack
        self.exclusive = exclusive
        self.arguments = _copy(arguments)
        self.consumer_tag = consumer_tag
        self._callback = callback
        self._inner: Consumer | None = None
        self._ready: asyncio.Event = asyncio.Event()
        self._exc: BaseException | None = None
        self._started = False
        self._cancelled = False
        self._parked = False  # waiting for its queue to exist again
        self._watcher: asyncio.Task[None] | None = None
        self._starting: asyncio.Future[None] | None = None
        self._stream = bool(arguments) and "x-stream-offset" in (arguments or {})
        self._last_offset: int | None = None

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
            self.channel._rconn._state is State.CONNECTED
            and not self._parked and self._exc is None and not self._cancelled
            and inner is not None and inner._exc is None and inner.channel.is_open
        )

    def __repr__(self) -> str:
        return f"<aiorabbit.RobustConsumer queue={self._queue!r} tag={self.consumer_tag!r}>"

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> RobustConsumer:
        """Start consuming (done by ``async with``)."""
        if self._started:
            return self
        self._started = True
        channel = self.channel
        while True:
            inner = await channel._live()
            try:
                await self._resume(inner)
                break
            except (ConnectionClosed, ChannelClosed) as exc:
                if not channel._rconn._lost_connection(exc):
                    raise
        channel._consumers.append(self)
        return self

    async def cancel(self) -> None:
        """Stop consuming for good (idempotent); it is not recovered."""
        if self._cancelled:
            return
        self._cancelled = True
        self._stop_watching()
        channel = self.channel
        if self in channel._consumers:
            channel._consumers.remove(self)
        inner, self._inner = self._inner, None
        if inner is not None:
            await inner.cancel()
        self._ready.set()
        rconn = channel._rconn
        if not any(c._queue == self._queue for ch in rconn._channels for c in ch._consumers):
            rconn.topology.last_consumer_gone(self._queue)

    async def __aenter__(self) -> RobustConsumer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.cancel()

    # -- iteration -----------------------------------------------------------

    def __aiter__(self) -> RobustConsumer:
        return self

    async def __anext__(self) -> IncomingMessage:
        rconn = self.channel._rconn
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
                msg = await inner.__anext__()
            except StopAsyncIteration:
                if self._cancelled:
                    raise
                self._lost(inner)
                continue
            except ConsumerCancelled:
                self._lost(inner)
                rconn._emit("consumer_cancelled", self)
                self._park()
                continue
            except (ConnectionClosed, ChannelClosed):
                # Only a connection closed for good ends the iteration: an
                # error on a channel or connection that recovery replaces
                # (even one seen while it is under way) means waiting for it.
                if self._closed_by_program():
                    raise StopAsyncIteration from None
                if rconn._state is State.CLOSED:
                    raise
                self._lost(inner)
                continue
            if self._stream:
                self._track(msg)
            return msg

    def _closed_by_program(self) -> bool:
        """An error came because the program is closing the connection: the
        iteration ends cleanly instead of raising it."""
        return self.channel._rconn._closing

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
        channel = self.channel
        while self._inner is None and not self._cancelled and self._exc is None:
            if not self._parked and channel._rconn._state is State.CONNECTED:
                # Connected, yet we have no consumer: our channel was closed
                # by a channel error; reopening it resumes us.
                try:
                    await channel._live()
                    if self._inner is None and not self._parked:
                        await self._resume(channel._inner)  # type: ignore[arg-type]
                except RecoveryTimeout:
                    pass  # a consumer waits for recovery however long it takes
                except (ConnectionClosed, ChannelClosed) as exc:
                    if not channel._rconn._lost_connection(exc):
                        raise
                continue
            await self._ready.wait()

    def _needs_resume(self, inner_channel: Channel) -> bool:
        if self._cancelled or self._parked:
            return False
        return self._inner is None or self._inner.channel is not inner_channel or self._inner._exc is not None

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
            starting = self._starting = self.channel._rconn._spawn(self._start_inner(inner_channel))
            starting.add_done_callback(_retrieve)  # whoever awaited it may be gone
        await asyncio.shield(starting)

    async def _start_inner(self, inner_channel: Channel) -> None:
        arguments = dict(self.arguments) if self.arguments else None
        if self._stream and self._last_offset is not None and arguments is not None:
            arguments["x-stream-offset"] = self._last_offset + 1
        callback = self._callback
        if callback is not None and self._stream:
            callback = self._tracking(callback)
        consumer = Consumer(inner_channel, self._queue, no_ack=self.no_ack, exclusive=self.exclusive,
                            arguments=arguments, consumer_tag=self.consumer_tag, callback=callback)
        if callback is not None:
            consumer._on_end = self._callback_consumer_ended
        await consumer.start()
        self.consumer_tag = consumer.consumer_tag
        if self._cancelled:
            await consumer.cancel()  # cancelled by the user while it started
            return
        self._inner = consumer
        self._parked = False
        self._ready.set()

    def _callback_consumer_ended(self, inner: Consumer, exc: BaseException) -> None:
        # What ``__anext__`` does for an iterated consumer the broker cancels.
        if isinstance(exc, ConsumerCancelled) and inner is self._inner and not self._cancelled:
            self._lost(inner)
            self.channel._rconn._emit("consumer_cancelled", self)
            self._park()

    def _park(self) -> None:
        """Wait, in the background, for the queue to exist again."""
        self._parked = True
        if self._watcher is None or self._watcher.done():
            self._watcher = self.channel._rconn._spawn(self._watch_queue())

    async def _watch_queue(self) -> None:
        rconn = self.channel._rconn
        attempt = 0
        while self._parked and not self._cancelled and self._exc is None:
            attempt += 1
            await asyncio.sleep(rconn.backoff.delay(min(attempt, 8)) + 0.05)
            try:
                conn = await rconn._wait_connected(None)
                probe = await conn.channel()
                try:
                    await probe.queue_declare(self._queue, passive=True)
                finally:
                    await probe.close()
                if self._parked and not self._cancelled:
                    inner = await self.channel._live()
                    self._parked = False
                    await self._resume(inner)
                    log.info("consumer %r consumes again", self.consumer_tag)
            except (ConnectionClosed, ChannelClosed):
                self._parked = True  # not there yet (or the connection dropped): try again

    def _stop_watching(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None

    def _abort(self, exc: BaseException) -> None:
        self._exc = exc
        self._stop_watching()
        self._ready.set()

    def _track(self, msg: IncomingMessage) -> None:
        offset = msg.headers.get("x-stream-offset")
        if isinstance(offset, int):
            self._last_offset = offset

    def _tracking(self, callback: Callable[[IncomingMessage], Any]) -> Callable[[IncomingMessage], Any]:
        def tracked(msg: IncomingMessage) -> Any:
            self._track(msg)
            return callback(msg)

        if inspect.iscoroutinefunction(callback):
            async def tracked_async(msg: IncomingMessage) -> Any:
                self._track(msg)
                return await callback(msg)

            return tracked_async
        return tracked


async def _stop(task: asyncio.Task[Any], what: str) -> None:
    """Cancel ``task`` and wait for it to end, for a bounded time: a task
    that swallows a cancellation (``asyncio.wait_for`` on Python 3.10 and
    3.11 can, CPython gh-86296) is cancelled again, and close() never
    waits for ever on one that will not stop."""
    for _ in range(_STOP_TRIES):
        task.cancel()
        await asyncio.wait({task}, timeout=_STOP_WAIT)
        if task.done():
            if not task.cancelled():
                task.exception()  # retrieved: its error was reported where it happened
            return
    log.error("%s did not stop within %.1f s of close(); leaving it", what, _STOP_TRIES * _STOP_WAIT)


async def _selected(channel: Channel, timeout: float | None) -> Channel:
    await channel.tx_select(timeout=timeout)
    return channel


def _copy(arguments: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return dict(arguments) if arguments else None


class _ConnectRobust(Opening[RobustConnection]):
    """What :func:`connect_robust` returns: await it, or ``async with`` it."""

    def __init__(self, factory: Callable[[], RobustConnection]) -> None:
        super().__init__(self._start)
        self._factory = factory
        #: The connection being opened (or open), once awaited: its
        #: ``last_error`` says why a first connect that is taking long fails.
        self.connection: RobustConnection | None = None

    async def _start(self) -> RobustConnection:
        conn = self.connection = self._factory()
        await conn._start()
        return conn


def connect_robust(
    url_or_urls: str | Sequence[str] | None = None,
    *,
    backoff: Backoff | None = None,
    wait_timeout: float = 30.0,
    recovery_timeout: float = 10.0,
    first_connect_timeout: float | None = 60.0,
    **options: Any,
) -> _ConnectRobust:
    """Open a :class:`RobustConnection`: same API as :func:`connect`, but
    channels, declared topology and consumers survive connection loss.

    ``url_or_urls``: one URL, a list of URLs, or one URL listing several
    ``host:port`` separated by commas; on failure the next one is tried.
    ``backoff`` sets the delays (default: full jitter from 0.5 s up to
    30 s, forever); the first connect uses it too.  Calls wait up to
    ``wait_timeout`` seconds while disconnected; each recovery step gets
    ``recovery_timeout`` seconds before the attempt starts over.
    ``options`` are :class:`ConnectionParameters` fields for every endpoint.
    A login failure or another fatal error raises at once.  The first
    connect keeps trying (logging each failure at WARNING) for
    ``first_connect_timeout`` seconds, then raises :class:`ConnectionFailed`
    naming the last error: a wrong host or port fails visibly instead of
    retrying silently for ever (``None`` waits for ever, for a broker that
    may start long after the service).
    """
    params = endpoints(url_or_urls, **options)
    policy = backoff if backoff is not None else Backoff()
    if wait_timeout <= 0 or recovery_timeout <= 0:
        raise InvalidArgument("wait_timeout and recovery_timeout must be positive")
    if first_connect_timeout is not None and first_connect_timeout <= 0:
        raise InvalidArgument("first_connect_timeout must be positive (or None)")
    return _ConnectRobust(lambda: RobustConnection(
        params, backoff=policy, wait_timeout=wait_timeout, recovery_timeout=recovery_timeout,
        first_connect_timeout=first_connect_timeout))
