"""Connections that come back: :func:`connect_robust`.

A :class:`RobustConnection` keeps one plain :class:`~aiorabbit.Connection`
at a time.  When it is lost for a reason worth retrying (see
:func:`~aiorabbit.backoff.is_recoverable`), a supervisor task reconnects with
backoff over the endpoints, then recovers (see :mod:`.replay`), in order:
the channels (the same :class:`RobustChannel` objects, with their QoS and
confirm mode), exchanges, queues, exchange-to-exchange bindings, queue
bindings and consumers (with their tags).  Calls made meanwhile wait for
it, up to ``wait_timeout``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .._compat import wait_for
from .._futures import fail
from .._logging import fields
from .._opening import Opening
from ..backoff import Backoff, failure_signature, is_recoverable
from ..connection import Connection
from ..exceptions import (
    AMQPError,
    ChannelClosed,
    ConnectionClosed,
    ConnectionFailed,
    DeprecatedFeature,
    InvalidArgument,
    OperationTimeout,
    RecoveryFailed,
    RecoveryTimeout,
    closed_by_client,
)
from ..observe import Observer, resolve
from ..parameters import ConnectionParameters
from ..topology import Topology
from .channel import RobustChannel
from .common import EVENTS, ChannelRecovery, Hub, Listener, State, stop_task
from .endpoints import endpoints
from .replay import replay

__all__ = ["RobustConnection", "connect_robust"]

log = logging.getLogger("aiorabbit.recovery")


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
        observer = resolve(endpoints[0].observer)
        if observer is not None:
            # Every plain connection it opens reports to the same observer.
            endpoints = [params.replace(observer=observer) for params in endpoints]
        self._observer = observer
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
        self._channels: list[ChannelRecovery] = []
        self._hub = Hub(self._emit, self._spawn, self._wait_connected, self._lost_connection,
                        self._get_state, self._is_closing, self._channels)
        self._listeners: dict[str, list[Listener]] = {event: [] for event in EVENTS}
        self._blocked_callbacks: list[Callable[[RobustConnection, str | None], Any]] = []
        self._supervisor: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._attempts = 0
        self._tries = 0  # failed connects in this outage
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

    def _get_state(self) -> State:
        return self._state

    def _is_closing(self) -> bool:
        return self._closing

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
    def peer(self) -> tuple[str, int] | None:
        """The address and port of the broker connected to now (``None``
        while recovering)."""
        conn = self._conn
        return conn.peer if conn is not None and conn.is_open else None

    @property
    def observer(self) -> Observer | None:
        """The observer that sees this connection's events (``None``: none)."""
        return self._observer

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
            # seam: the robust layer owns the plain connection it opened and drops it at once
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
        is spent.

        A failed endpoint hands over to the next one at once: the backoff
        waits only once every endpoint failed in a row (a dead node refuses
        at once, and waiting before its peers only lengthens the outage)."""
        failed_in_a_row = 0
        while True:
            self._check_closing()
            params = self._endpoints[self._next_endpoint % len(self._endpoints)]
            conn = Connection(params)
            try:
                await conn._open()  # seam: the robust layer opens the plain connections it makes
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
                failed_in_a_row += 1
                count = len(self._endpoints)
                # A round of the endpoints counts as one attempt for the delay.
                delay = 0.0 if failed_in_a_row % count else self.backoff.delay(-(-self._attempts // count))
                log.warning("connecting to %s failed (%s); attempt %d, next in %.2f s",
                            params.url, exc, self._attempts + 1, delay, extra=fields(params))
                self._tries += 1
                if self._observer is not None and not first:
                    self._observer.recovery_attempt(self, self._tries, exc, delay)
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
                self._recovery_failed(reason)
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
                self._recovery_failed(failed)
                self._give_up(failed)
                return
            log.warning("connection lost (%s); recovering", reason, extra=self._log_fields(reason))
            self._state = State.RECONNECTING
            self._connected = self._loop.create_future()
            self._outage_started = time.monotonic()
            self._tries = 0
            self._emit("disconnected", reason)
            if self._observer is not None:
                self._observer.recovery_started(self, reason)
            try:
                if not stable:
                    # Lost again soon after recovering: back off first.
                    self._attempts += 1
                    await asyncio.sleep(self.backoff.delay(self._attempts))
                await self._reconnect()
            except asyncio.CancelledError:
                raise
            except BaseException as exc:
                log.error("recovery failed: %s", exc, extra=self._log_fields(exc))
                self._recovery_failed(exc)
                self._give_up(exc)
                return
            log.info("connection recovered", extra=self._log_fields())
            self._emit("reconnected")
            if self._observer is not None:
                self._observer.recovered(self, time.monotonic() - self._outage_started)

    def _log_fields(self, error: BaseException | None = None) -> dict[str, Any]:
        return fields(self.params, reply_code=getattr(error, "reply_code", None))

    def _recovery_failed(self, exc: BaseException) -> None:
        self._emit("recovery_failed", exc)
        if self._observer is not None:
            self._observer.recovery_failed(self, exc, time.monotonic() - self._outage_started)

    async def _reconnect(self) -> None:
        while True:
            conn = await self._connect_with_backoff()
            self._use(conn)
            try:
                await replay(conn, self._hub, self.topology, timeout=self.recovery_timeout,
                             wait_timeout=self.wait_timeout, backoff=self.backoff)
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
                log.warning("recovery interrupted (%s); reconnecting", exc or "timeout",
                            extra=self._log_fields(exc))
                # seam: the robust layer owns the plain connection it opened and drops it at once
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

    def _give_up(self, exc: BaseException) -> None:
        self._state = State.CLOSED
        self._closed_exc = exc
        if not self._closed_for_good.done():
            self._closed_for_good.set_result(None)
        fail(self._connected, exc)
        for port in list(self._channels):
            port.closed(exc)

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

    async def wait_usable(self, timeout: float | None = None) -> Connection:
        """The plain connection in use, once connected: waits for recovery up
        to ``timeout`` (default: ``wait_timeout``; ``math.inf``: for ever)."""
        if timeout is None:
            timeout = self.wait_timeout
        return await self._wait_connected(None if timeout == math.inf else timeout)

    def recovers_from(self, exc: BaseException) -> bool:
        """Whether ``exc`` (raised by a call) means the connection went away
        in a way recovery will repair."""
        return self._lost_connection(exc)

    @property
    def is_writable(self) -> bool:
        """True while a publish can be written without waiting (connected,
        the socket takes more, the broker does not block publishers)."""
        conn = self._conn
        return self.is_open and conn is not None and conn.is_writable

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
        channel = RobustChannel(self, publisher_confirms=publisher_confirms, on_return=on_return,
                                hub=self._hub)
        while True:
            conn = await self._wait_connected(self.wait_timeout)
            try:
                await channel._open(conn)  # seam: the channel is created here; it joins recovery once open
            except (ConnectionClosed, ChannelClosed) as exc:
                if not self._lost_connection(exc):
                    raise
                continue  # lost while opening: open it on the recovered connection
            return channel

    async def update_secret(self, new_secret: str | bytes, reason: str = "") -> None:
        """Update the secret (for example an OAuth token) now and for every
        later reconnect."""
        conn = await self._wait_connected(self.wait_timeout)
        await conn.update_secret(new_secret, reason)
        secret = new_secret.decode() if isinstance(new_secret, bytes) else new_secret
        self._endpoints = [params.replace(password=secret) for params in self._endpoints]

    async def close(self, reply_code: int = 200, reply_text: str = "Normal shutdown") -> None:
        """Close for good (idempotent), stopping any reconnect under way;
        ``reply_code`` and ``reply_text`` go to the broker, as with
        :meth:`Connection.close`."""
        if self._closing:
            return
        self._closing = True
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None and supervisor is not asyncio.current_task():
            await stop_task(supervisor, "the recovery task")
        # A listener task may be the one calling close(): it is left alone.
        others = [task for task in self._tasks if task is not asyncio.current_task()]
        for task in others:
            task.cancel()
        for port in list(self._channels):
            for consumer in port.consumers:
                consumer.stop_watching()
        conn = self._conn
        if conn is not None and not conn.is_closed:
            await conn.close(reply_code, reply_text)
        closed = closed_by_client(ConnectionClosed(reply_code, f"closed by client: {reply_text}"))
        if self._state is not State.CLOSED:
            self._give_up(closed)
        for task in list(self._tasks):
            if task is not asyncio.current_task():
                await stop_task(task, "a listener or consumer task")

    async def __aenter__(self) -> RobustConnection:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


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
        await conn._start()  # seam: connect_robust() starts the connection it creates
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
