"""FastAPI integration: RabbitMQ in a FastAPI service in a few lines.

Install with ``pip install "aiorabbit-client[fastapi]"``::

    from typing import Annotated
    from fastapi import Depends, FastAPI
    from aiorabbit.fastapi import RabbitMQ, RabbitPublisher

    rabbit = RabbitMQ()                      # URL: $AMQP_URL, else localhost
    rabbit.queue("jobs", dead_letter_queue="jobs.dead")

    @rabbit.consumer("jobs", model=Job)
    async def work(job: Job) -> None:        # acked on return, dead-lettered on error
        ...

    app = FastAPI(lifespan=rabbit.lifespan)
    rabbit.add_health_route(app, "/health/rabbitmq")

    @app.post("/jobs")
    async def create(job: Job, publisher: Annotated[RabbitPublisher, Depends(rabbit.publisher)]) -> None:
        await publisher.publish_json(job, routing_key="jobs")   # returns once confirmed

:class:`RabbitMQ` owns one :func:`~aiorabbit.connect_robust` connection, a
small pool of confirm-mode :class:`~aiorabbit.Publisher` channels shared by
every request, and one channel per registered consumer.  Its lifespan
declares the registered topology, starts the consumers, and at shutdown
stops consuming, lets the handlers in flight finish (up to
``shutdown_timeout``), requeues what they could not finish and waits for
unconfirmed publishes before closing the connection.  See ``docs/fastapi.md``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar

try:
    import pydantic
    from fastapi import APIRouter, FastAPI
    from fastapi.responses import JSONResponse
except ImportError as exc:
    raise ImportError(
        f'aiorabbit.fastapi needs FastAPI and pydantic ({exc}): pip install "aiorabbit-client[fastapi]"'
    ) from exc

from .._compat import wait_for
from .._inputs import copy_arguments, is_async_callable
from ..exceptions import InvalidArgument, NotRunning, StartupTimeout
from ..robust import RobustConnection, connect_robust
from .consumers import ConsumerSpec, Runner, one_line, takes
from .health import ConsumerHealth, Health, PublisherHealth, Status
from .publishing import PublisherPool, RabbitPublisher

__all__ = [
    "RabbitMQ",
    "RabbitPublisher",
    "NotRunning",
    "StartupTimeout",
    "Health",
    "ConsumerHealth",
    "PublisherHealth",
]

log = logging.getLogger("aiorabbit.fastapi")

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])

#: Unconfirmed publishes get at least this long at shutdown, even when the
#: handlers used up ``shutdown_timeout``: a confirm normally takes
#: milliseconds, and a result published just before the deadline should not
#: be failed for want of them.
PUBLISHER_GRACE = 1.0


# ----------------------------------------------------------------------
# topology records


@dataclasses.dataclass(frozen=True)
class _Exchange:
    name: str
    exchange_type: str
    durable: bool
    auto_delete: bool
    internal: bool
    arguments: dict[str, Any] | None


@dataclasses.dataclass(frozen=True)
class _Queue:
    name: str
    durable: bool
    exclusive: bool
    auto_delete: bool
    arguments: dict[str, Any] | None
    bindings: tuple[tuple[str, str], ...]


# ----------------------------------------------------------------------


# ----------------------------------------------------------------------
# the application's RabbitMQ


class RabbitMQ:
    """RabbitMQ for one FastAPI application.

    ``url``: one URL or several (tried in turn); ``None`` reads
    ``$AMQP_URL`` at startup, else ``amqp://guest:guest@localhost:5672/%2F``
    (the :attr:`url` attribute may be set until startup, from settings
    loaded late).  ``connection_name`` shows in the management UI.
    ``publisher_pool`` confirm-mode channels publish for the whole app, each
    with at most ``publisher_window`` unconfirmed messages.
    ``shutdown_timeout``: how long in-flight handlers get to finish at
    shutdown.  ``startup_timeout`` bounds startup (``None``: as long as the
    connection keeps trying).  ``connect_options`` go to
    :func:`~aiorabbit.connect_robust`: ``backoff``, ``wait_timeout``,
    ``heartbeat`` and every :class:`~aiorabbit.ConnectionParameters` field.

    Register the topology (:meth:`exchange`, :meth:`queue`) and the
    consumers (:meth:`consumer`) before the app starts; run it with
    ``FastAPI(lifespan=rabbit.lifespan)`` or ``async with
    rabbit.lifespan(app):`` inside your own lifespan.
    """

    def __init__(
        self,
        url: str | Sequence[str] | None = None,
        *,
        connection_name: str | None = "fastapi",
        publisher_pool: int = 4,
        publisher_window: int = 1000,
        shutdown_timeout: float = 30.0,
        startup_timeout: float | None = 60.0,
        **connect_options: Any,
    ) -> None:
        if publisher_pool < 1:
            raise InvalidArgument("publisher_pool must be at least 1")
        if publisher_window < 1:
            raise InvalidArgument("publisher_window must be at least 1")
        if shutdown_timeout < 0:
            raise InvalidArgument("shutdown_timeout must be >= 0")
        if startup_timeout is not None and startup_timeout <= 0:
            raise InvalidArgument("startup_timeout must be positive (or None)")
        #: The broker URL(s) used at the next startup.
        self.url = url
        self.publisher_pool = publisher_pool
        self.publisher_window = publisher_window
        self.shutdown_timeout = shutdown_timeout
        self.startup_timeout = startup_timeout
        if connection_name is not None:
            connect_options.setdefault("name", connection_name)
        self.connect_options = connect_options
        #: Confirmed publishing; also the ``Depends(rabbit.publisher)`` dependency.
        self._publishers = PublisherPool()
        self.publisher = RabbitPublisher(self._publishers)
        self._exchanges: dict[str, _Exchange] = {}
        self._queues: dict[str, _Queue] = {}
        self._specs: dict[str, ConsumerSpec] = {}
        self._runners: list[Runner] = []
        self._conn: RobustConnection | None = None
        self._opening: Any = None  # connect_robust() while it connects
        self._phase: Literal["stopped", "starting", "running", "stopping"] = "stopped"

    def __repr__(self) -> str:
        return f"<aiorabbit.fastapi.RabbitMQ {self._phase} consumers={list(self._specs)}>"

    @property
    def running(self) -> bool:
        """True between a completed startup and the start of shutdown."""
        return self._phase == "running"

    # -- registration ------------------------------------------------------

    def _check_registering(self) -> None:
        if self._phase != "stopped":
            raise InvalidArgument("register exchanges, queues and consumers before the app starts")

    def exchange(
        self,
        name: str,
        exchange_type: str = "direct",
        *,
        durable: bool = True,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: Mapping[str, Any] | None = None,
    ) -> str:
        """Declare exchange ``name`` at startup (and after every recovery);
        return the name.  Durable unless told otherwise."""
        self._check_registering()
        if not name or name.startswith("amq."):
            raise InvalidArgument(f"cannot declare exchange {name!r}: the default and amq.* exchanges exist")
        if name in self._exchanges:
            raise InvalidArgument(f"exchange {name!r} is already registered")
        self._exchanges[name] = _Exchange(
            name, exchange_type, durable, auto_delete, internal, copy_arguments(arguments))
        return name

    def queue(
        self,
        name: str,
        *,
        durable: bool = True,
        exclusive: bool = False,
        auto_delete: bool = False,
        bindings: Sequence[tuple[str, str]] = (),
        dead_letter_queue: str | None = None,
        dead_letter_exchange: str | None = None,
        dead_letter_routing_key: str | None = None,
        arguments: Mapping[str, Any] | None = None,
    ) -> str:
        """Declare queue ``name`` at startup (and after every recovery),
        bound to each ``(exchange, routing_key)`` of ``bindings``; return
        the name.  Durable unless told otherwise.

        Dead-lettering (where rejected messages go): ``dead_letter_queue``
        declares that queue too (durable) and routes dead letters straight
        to it; or name a ``dead_letter_exchange`` (and optionally a
        ``dead_letter_routing_key``) that you register and bind yourself.
        Without either, a message rejected without requeue is dropped."""
        self._check_registering()
        if not name:
            raise InvalidArgument("registered queues need a name (server-named queues are not supported)")
        if dead_letter_queue is not None and (dead_letter_exchange is not None or dead_letter_routing_key):
            raise InvalidArgument("give dead_letter_queue, or dead_letter_exchange and its routing key")
        args = dict(arguments or {})
        if dead_letter_queue is not None:
            # Dead letters through the default exchange: straight to the queue.
            self._add_queue(_Queue(dead_letter_queue, True, False, False, None, ()))
            args["x-dead-letter-exchange"] = ""
            args["x-dead-letter-routing-key"] = dead_letter_queue
        if dead_letter_exchange is not None:
            args["x-dead-letter-exchange"] = dead_letter_exchange
        if dead_letter_routing_key is not None:
            args["x-dead-letter-routing-key"] = dead_letter_routing_key
        bound = tuple((str(exchange), str(key)) for exchange, key in bindings)
        self._add_queue(_Queue(name, durable, exclusive, auto_delete, args or None, bound))
        return name

    def _add_queue(self, record: _Queue) -> None:
        if record.name in self._queues:
            raise InvalidArgument(f"queue {record.name!r} is already registered")
        self._queues[record.name] = record

    def consumer(
        self,
        queue: str,
        *,
        prefetch: int = 10,
        concurrency: int | None = None,
        model: Any = None,
        json: bool = False,
        requeue_on_error: bool = False,
        name: str | None = None,
        arguments: Mapping[str, Any] | None = None,
    ) -> Callable[[Handler], Handler]:
        """Register an ``async def`` handler for the messages of ``queue``
        (a decorator; the function is returned unchanged).

        The handler receives, with ``model`` (a pydantic model or any type
        pydantic validates, e.g. ``list[int]``), the validated JSON body;
        with ``json=True``, the decoded JSON; else the
        :class:`~aiorabbit.IncomingMessage`.  A handler taking one more
        positional parameter than that also gets the message.

        Each message is acked when the handler returns.  When the handler
        raises, it is rejected without requeue (dead-lettered, if the queue
        has a dead-letter exchange), or requeued with ``requeue_on_error``
        (then a message that always fails comes back forever).  A body that
        does not decode is dead-lettered without calling the handler.

        ``prefetch``: messages the broker sends ahead; ``concurrency``:
        handlers running at once (default: ``prefetch``).  ``name`` (default:
        the function's name) identifies the consumer in :meth:`health`.
        """
        self._check_registering()
        if prefetch < 1:
            raise InvalidArgument("prefetch must be at least 1")
        if concurrency is not None and concurrency < 1:
            raise InvalidArgument("concurrency must be at least 1")
        adapter = None if model is None else pydantic.TypeAdapter(model)

        def register(handler: Handler) -> Handler:
            self._check_registering()
            pass_message = _passes_message(handler, decodes=model is not None or json)
            key = name or getattr(handler, "__name__", None) or repr(handler)
            if key in self._specs:
                raise InvalidArgument(f"a consumer named {key!r} is already registered; pass name=")
            self._specs[key] = ConsumerSpec(
                key, queue, handler, prefetch, concurrency or prefetch, adapter, json,
                pass_message, requeue_on_error, copy_arguments(arguments),
            )
            return handler

        return register

    # -- dependencies --------------------------------------------------------

    async def connection(self) -> RobustConnection:
        """The connection (a dependency: ``Depends(rabbit.connection)``);
        raises :class:`NotRunning` outside the lifespan (handlers finishing
        at shutdown still get it)."""
        if self._conn is None or self._phase not in ("running", "stopping"):
            raise NotRunning("RabbitMQ is not running: use the connection inside the app's lifespan")
        return self._conn

    # -- health --------------------------------------------------------------

    def health(self) -> Health:
        """The connection's state and each consumer's, for readiness checks:
        ``status`` is ``ok``, ``degraded`` (connected, but a consumer is not
        consuming or the broker blocks publishers) or ``unavailable`` (not
        connected, or not running)."""
        conn = self._conn
        runners = self._runners
        consumers = {runner.spec.name: runner.health() for runner in runners}
        blocked = conn is not None and conn.is_blocked
        status: Status
        if conn is None or self._phase != "running" or not conn.is_open:
            status = "unavailable"
        elif blocked or not all(c["consuming"] for c in consumers.values()):
            status = "degraded"
        else:
            status = "ok"
        state = conn.state.value if conn is not None and self._phase == "running" else self._phase
        publishers: PublisherHealth = {
            "channels": len(self._publishers.publishers),
            "in_flight": self.publisher.in_flight,
        }
        return {"status": status, "state": state, "blocked": blocked, "consumers": consumers,
                "publishers": publishers}

    async def health_endpoint(self) -> JSONResponse:
        """:meth:`health` as an HTTP response: 200 when ``ok`` or
        ``degraded``, 503 when ``unavailable``.  Route it with
        ``app.get("/health")(rabbit.health_endpoint)`` or
        :meth:`add_health_route`."""
        health = self.health()
        return JSONResponse(dict(health), status_code=503 if health["status"] == "unavailable" else 200)

    def add_health_route(self, app: FastAPI | APIRouter, path: str = "/health/rabbitmq") -> None:
        """Serve :meth:`health_endpoint` at ``GET path``."""
        app.add_api_route(path, self.health_endpoint, methods=["GET"], summary="RabbitMQ health",
                          response_class=JSONResponse)

    # -- lifecycle -----------------------------------------------------------

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object = None) -> AsyncIterator[None]:
        """Start at entry, stop at exit: ``FastAPI(lifespan=rabbit.lifespan)``,
        or ``async with rabbit.lifespan(app):`` in your own lifespan."""
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    async def start(self) -> None:
        """Connect, declare the registered topology, open the publisher pool
        and start the consumers.  On failure everything opened so far is
        closed and the error raised: :class:`~aiorabbit.ConnectionFailed`
        when the broker stays unreachable (the ``backoff`` option bounds the
        attempts), the broker's refusal of a declare or consume
        (``PreconditionFailed``, ``NotFound``...), or :class:`StartupTimeout`."""
        if self._phase != "stopped":
            raise InvalidArgument(f"RabbitMQ is already {self._phase}")
        self._phase = "starting"
        try:
            await wait_for(self._start(), self.startup_timeout)
        except BaseException as exc:
            error = exc
            if isinstance(exc, asyncio.TimeoutError):
                error = self._startup_timeout()
            log.error("RabbitMQ startup failed: %s", one_line(error))
            await self._teardown(self.shutdown_timeout)
            self._phase = "stopped"
            if error is not exc:
                raise error from error.__cause__
            raise
        self._phase = "running"
        log.info("RabbitMQ ready: %d consumers, %d publisher channels", len(self._runners),
                 self.publisher_pool)

    def _startup_timeout(self) -> StartupTimeout:
        """The timeout error, naming the broker (password masked) and the
        last connection error (also its ``__cause__``)."""
        opening = self._opening.connection if self._opening is not None else None
        last = opening.last_error if opening is not None else None
        where = f" connecting to {opening.params.url}" if opening is not None and not opening.is_open else ""
        error = StartupTimeout(
            f"RabbitMQ startup took more than {self.startup_timeout} s{where}"
            + (f"; last error: {last}" if last is not None else "")
        )
        error.__cause__ = last
        return error

    async def _start(self) -> None:
        self._opening = connect_robust(self.url, **self.connect_options)
        self._conn = conn = await self._opening
        channel = await conn.channel()
        # Declared on a robust channel: the connection records them and
        # declares them again after every recovery.
        for exchange in self._exchanges.values():
            await channel.exchange_declare(
                exchange.name, exchange.exchange_type, durable=exchange.durable,
                auto_delete=exchange.auto_delete, internal=exchange.internal, arguments=exchange.arguments)
        for queue in self._queues.values():
            await channel.queue_declare(queue.name, durable=queue.durable, exclusive=queue.exclusive,
                                        auto_delete=queue.auto_delete, arguments=queue.arguments)
        for queue in self._queues.values():
            for exchange_name, routing_key in queue.bindings:
                await channel.queue_bind(queue.name, exchange_name, routing_key)
        await channel.close()
        await self._publishers.start(conn, self.publisher_pool, self.publisher_window)
        for spec in self._specs.values():
            self._runners.append(await Runner.start(spec, conn))

    async def stop(self) -> None:
        """Shut down without losing a message (idempotent):

        1. stop consuming: messages delivered but not handed to a handler go
           back to the queue;
        2. wait up to ``shutdown_timeout`` for the handlers in flight, then
           cancel the rest: their messages go back to the queue;
        3. wait for the publishes not yet confirmed;
        4. close the connection.
        """
        if self._phase != "running":
            return
        self._phase = "stopping"
        try:
            await self._teardown(self.shutdown_timeout)
        finally:
            self._phase = "stopped"
        log.info("RabbitMQ stopped")

    async def _teardown(self, timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout

        def left() -> float:
            return max(0.0, deadline - loop.time())

        runners, self._runners = self._runners, []
        try:
            # A cancel-ok that does not come (a stalled link) must not hold
            # shutdown: closing the connection ends the consumers anyway.
            await wait_for(asyncio.gather(*(r.stop_consuming() for r in runners)), left())
        except asyncio.TimeoutError:
            log.warning("the broker did not confirm the consumers' cancel in time; closing anyway")
        handlers = {task for runner in runners for task in runner.handlers}
        if handlers:
            log.info("waiting up to %.1f s for %d handlers in flight", left(), len(handlers))
            _, pending = await asyncio.wait(handlers, timeout=left())
            if pending:
                log.warning("cancelling %d handlers still running after %.1f s; their messages go back to "
                            "the queue", len(pending), timeout)
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending)
        for runner in runners:
            await runner.stop_dispatching()
        # The consumers' channels close with the connection: nothing on them
        # is unsettled any more, and a close-ok that does not come (a
        # stalled link) would only hold shutdown.
        await self._publishers.close(max(left(), PUBLISHER_GRACE))
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()


def _passes_message(handler: Callable[..., Any], *, decodes: bool) -> bool:
    """Check that ``handler`` is async and takes what it will be given: the
    decoded body, optionally followed by the message (``decodes``), else
    the message.  True when it gets the message after the body."""
    if not is_async_callable(handler):
        raise TypeError(f"consumer handler {handler!r} must be an async function")
    signature = inspect.signature(handler)
    if not decodes:
        if not takes(signature, 1):
            raise TypeError(f"consumer handler {handler!r} must take the message")
        return False
    if takes(signature, 2):
        return True
    if not takes(signature, 1):
        raise TypeError(f"consumer handler {handler!r} must take the body (and, optionally, the message)")
    return False
