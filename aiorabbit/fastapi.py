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
import functools
import inspect
import json as jsonlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Literal, TypedDict, TypeVar

try:
    import pydantic
    from fastapi import APIRouter, FastAPI
    from fastapi.responses import JSONResponse
except ImportError as exc:
    raise ImportError(
        f'aiorabbit.fastapi needs FastAPI and pydantic ({exc}): pip install "aiorabbit-client[fastapi]"'
    ) from exc

from ._compat import wait_for
from ._inputs import copy_arguments, is_async_callable
from .codec import Buffer
from .codec.properties import DeliveryMode, Properties
from .exceptions import AMQPConnectionError, AMQPError, InvalidArgument
from .message import IncomingMessage
from .publisher import Publisher
from .robust import RobustChannel, RobustConnection, RobustConsumer, connect_robust

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
Status = Literal["ok", "degraded", "unavailable"]

#: Unconfirmed publishes get at least this long at shutdown, even when the
#: handlers used up ``shutdown_timeout``: a confirm normally takes
#: milliseconds, and a result published just before the deadline should not
#: be failed for want of them.
PUBLISHER_GRACE = 1.0


class NotRunning(AMQPError):
    """The :class:`RabbitMQ` is not running: it is used before its lifespan
    started it, after it stopped, or while it stops."""


class StartupTimeout(AMQPConnectionError):
    """Startup (connecting, declaring, starting the consumers) took longer
    than ``startup_timeout``; nothing was left running."""


class ConsumerHealth(TypedDict):
    """One consumer in :meth:`RabbitMQ.health`."""

    queue: str
    #: Registered with the broker and taking messages right now.
    consuming: bool
    #: Handlers running now.
    in_flight: int
    #: Messages whose handler returned (then acked) since startup.
    processed: int
    #: Messages whose handler raised (dead-lettered, or requeued).
    failed: int
    #: Messages whose body did not decode (dead-lettered without a handler call).
    rejected: int
    #: Why the consumer stopped, if it stopped on its own.
    error: str | None


class PublisherHealth(TypedDict):
    """The publisher pool in :meth:`RabbitMQ.health`."""

    channels: int
    #: Publishes waiting for their confirm (or for room in a window).
    in_flight: int


class Health(TypedDict):
    """What :meth:`RabbitMQ.health` returns."""

    #: ``ok``; ``degraded``: connected, but a consumer is not consuming or
    #: the broker blocks publishers; ``unavailable``: not connected.
    status: Status
    #: The connection's state (``connected``, ``reconnecting``...), or
    #: ``stopped`` / ``starting`` / ``stopping``.
    state: str
    #: The broker blocks publishers on this connection (a resource alarm).
    blocked: bool
    consumers: dict[str, ConsumerHealth]
    publishers: PublisherHealth


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
# publishing


class RabbitPublisher:
    """Confirmed publishing for the whole application, over a pool of
    confirm-mode channels opened at startup (each publish goes to the least
    busy one): not a channel per request.

    Get it in a request handler with ``Depends(rabbit.publisher)``, or use
    ``rabbit.publisher`` directly (in a consumer, a background task).
    Every publish returns once the broker confirmed the message, and is
    published again if the connection is lost before that (so it may
    arrive twice, with the same ``message_id``).  While the connection is
    down a publish waits for it, up to the connection's ``wait_timeout``,
    then raises :class:`~aiorabbit.RecoveryTimeout`.
    """

    def __init__(self, pool: _PublisherPool | None = None) -> None:
        self._pool = pool if pool is not None else _PublisherPool()

    async def __call__(self) -> RabbitPublisher:
        """The dependency: ``Depends(rabbit.publisher)`` gives this object."""
        self._check()
        return self

    def _check(self) -> None:
        if not self._pool.publishers:
            raise NotRunning("RabbitMQ is not running: publish inside the app's lifespan")

    @property
    def in_flight(self) -> int:
        """Publishes started and not yet confirmed (or failed)."""
        return self._pool.in_flight

    async def publish(
        self,
        body: Buffer | str,
        *,
        exchange: str = "",
        routing_key: str = "",
        properties: Properties | None = None,
        mandatory: bool = False,
        persistent: bool = True,
    ) -> str:
        """Publish ``body`` (a ``str`` is sent as UTF-8) and return its
        ``message_id`` once the broker confirmed it.

        ``persistent`` sets ``delivery_mode`` 2 unless ``properties`` sets
        one.  With ``mandatory``, a message no queue takes raises
        :class:`~aiorabbit.MessageReturned` instead of vanishing.  Raises
        :class:`NotRunning` outside the lifespan."""
        data = body.encode() if isinstance(body, str) else body
        return await self._send(data, exchange, routing_key, properties, mandatory, persistent, None)

    async def publish_json(
        self,
        data: Any,
        *,
        exchange: str = "",
        routing_key: str = "",
        properties: Properties | None = None,
        mandatory: bool = False,
        persistent: bool = True,
    ) -> str:
        """Publish ``data`` as JSON, like :meth:`publish`.

        ``data`` is a pydantic model (dumped by alias, the way it is
        validated back) or anything pydantic can serialize: dicts, lists,
        dataclasses, datetimes, UUIDs.  ``content_type`` is
        ``application/json`` unless ``properties`` sets one.  Raises
        :class:`~aiorabbit.InvalidArgument` for what cannot be encoded."""
        self._check()
        return await self._send(
            _to_json(data), exchange, routing_key, properties, mandatory, persistent, "application/json"
        )

    async def _send(
        self,
        body: Buffer,
        exchange: str,
        routing_key: str,
        properties: Properties | None,
        mandatory: bool,
        persistent: bool,
        content_type: str | None,
    ) -> str:
        self._check()
        props = _merge(properties, persistent=persistent, content_type=content_type)
        return await self._pool.pick().publish(
            body, exchange=exchange, routing_key=routing_key, properties=props, mandatory=mandatory
        )


class _PublisherPool:
    """The confirm-mode publishers behind :class:`RabbitPublisher`, started
    and closed by the :class:`RabbitMQ` that owns them."""

    def __init__(self) -> None:
        self.publishers: list[Publisher] = []
        self._turn = 0

    @property
    def in_flight(self) -> int:
        return sum(p.in_flight for p in self.publishers)

    def pick(self) -> Publisher:
        """The publisher with the fewest publishes in flight; ties go round
        the pool so that the channels share the load."""
        pool = self.publishers
        self._turn = start = (self._turn + 1) % len(pool)
        return min(pool[start:] + pool[:start], key=lambda publisher: publisher.in_flight)

    async def start(self, conn: RobustConnection, size: int, window: int) -> None:
        for _ in range(size):
            # timeout: a publish republished after a loss waits for the
            # connection as long as a first attempt would, not forever.
            publisher = Publisher(conn, window=window, timeout=conn.wait_timeout)
            await publisher.start()
            self.publishers.append(publisher)

    async def close(self, timeout: float) -> None:
        """Wait (up to ``timeout``) for the publishes in flight; new ones
        raise :class:`NotRunning` from now on."""
        pool, self.publishers = self.publishers, []
        if not pool:
            return
        try:
            closing = asyncio.gather(*(p.close() for p in pool), return_exceptions=True)
            await wait_for(closing, timeout)
        except asyncio.TimeoutError:
            left = sum(p.in_flight for p in pool)
            log.warning("%d publishes still unconfirmed after %.1f s; they fail with the connection", left,
                        timeout)


def _merge(properties: Properties | None, *, persistent: bool, content_type: str | None) -> Properties:
    if properties is not None and not isinstance(properties, Properties):
        raise InvalidArgument("properties must be an aiorabbit.Properties")
    props = properties if properties is not None else Properties()
    defaults: dict[str, Any] = {}
    if persistent and props.delivery_mode is None:
        defaults["delivery_mode"] = DeliveryMode.PERSISTENT
    if content_type is not None and props.content_type is None:
        defaults["content_type"] = content_type
    return props.replace(**defaults)


_ANY: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(Any)


def _to_json(data: Any) -> bytes:
    try:
        if isinstance(data, pydantic.BaseModel):
            return data.model_dump_json(by_alias=True).encode()
        return _ANY.dump_json(data, by_alias=True)
    except (ValueError, TypeError) as exc:  # pydantic's PydanticSerializationError is a ValueError
        raise InvalidArgument(f"cannot encode {type(data).__name__} as JSON: {exc}") from exc


# ----------------------------------------------------------------------
# consuming


@dataclasses.dataclass(frozen=True)
class _ConsumerSpec:
    name: str
    queue: str
    handler: Callable[..., Awaitable[Any]]
    prefetch: int
    concurrency: int
    adapter: pydantic.TypeAdapter[Any] | None
    decode_json: bool
    pass_message: bool
    requeue_on_error: bool
    arguments: dict[str, Any] | None


class _Runner:
    """One registered consumer while the app runs: a channel with its QoS,
    a :class:`RobustConsumer`, the dispatch task and the handler tasks."""

    def __init__(self, spec: _ConsumerSpec, channel: RobustChannel, consumer: RobustConsumer) -> None:
        self.spec = spec
        self.channel = channel
        self.consumer = consumer
        self.handlers: set[asyncio.Task[None]] = set()
        self.slots = asyncio.Semaphore(spec.concurrency)
        self.processed = 0
        self.failed = 0
        self.rejected = 0
        self.error: BaseException | None = None
        self.task = asyncio.get_running_loop().create_task(
            self._dispatch(), name=f"aiorabbit.fastapi consumer {spec.name}"
        )

    @classmethod
    async def start(cls, spec: _ConsumerSpec, conn: RobustConnection) -> _Runner:
        channel = await conn.channel()
        try:
            await channel.basic_qos(prefetch_count=spec.prefetch)
            consumer = channel.consume(spec.queue, arguments=spec.arguments)
            await consumer.start()
        except BaseException:
            with contextlib.suppress(AMQPError):
                await channel.close()
            raise
        return cls(spec, channel, consumer)

    @property
    def consuming(self) -> bool:
        return not self.task.done() and self.consumer.is_consuming

    def health(self) -> ConsumerHealth:
        return {
            "queue": self.spec.queue,
            "consuming": self.consuming,
            "in_flight": len(self.handlers),
            "processed": self.processed,
            "failed": self.failed,
            "rejected": self.rejected,
            "error": None if self.error is None else _one_line(self.error),
        }

    async def _dispatch(self) -> None:
        """Hand messages to handler tasks, at most ``concurrency`` at once.

        A slot is taken before the next message: a message waits in the
        consumer's buffer (bounded by the prefetch, and requeued when the
        consumer is cancelled), never in our hands."""
        loop = asyncio.get_running_loop()
        consumer = self.consumer
        try:
            while True:
                await self.slots.acquire()
                try:
                    msg = await consumer.__anext__()
                except BaseException:
                    self.slots.release()
                    raise
                task = loop.create_task(self._handle(msg))
                self.handlers.add(task)
                task.add_done_callback(functools.partial(self._handled, msg))
        except StopAsyncIteration:
            return  # cancelled at shutdown
        except Exception as exc:
            # The connection closed for good, or the application deleted the
            # queue: health() reports it.
            self.error = exc
            log.error("consumer %s stopped: %s", self.spec.name, _one_line(exc),
                      exc_info=not isinstance(exc, AMQPError))

    def _handled(self, msg: IncomingMessage, task: asyncio.Task[None]) -> None:
        self.handlers.discard(task)
        self.slots.release()
        if task.cancelled():
            # Cancelled at shutdown (even before it started): the message
            # goes back to the queue now rather than when the connection closes.
            _settle(msg, "reject", requeue=True)

    async def _handle(self, msg: IncomingMessage) -> None:
        spec = self.spec
        try:
            args = self._arguments(msg)
        except Exception as exc:
            self.rejected += 1
            log.warning("consumer %s: cannot decode %r (%s); rejected without requeue (dead-lettered)",
                        spec.name, msg, _one_line(exc))
            _settle(msg, "reject", requeue=False)
            return
        try:
            await spec.handler(*args)
        except Exception:
            self.failed += 1
            fate = "requeued" if spec.requeue_on_error else "rejected without requeue (dead-lettered)"
            log.exception("consumer %s: handler failed on %r; %s", spec.name, msg, fate)
            _settle(msg, "reject", requeue=spec.requeue_on_error)
            return
        self.processed += 1
        _settle(msg, "ack")

    def _arguments(self, msg: IncomingMessage) -> tuple[Any, ...]:
        spec = self.spec
        if spec.adapter is not None:
            body: Any = spec.adapter.validate_json(msg.body)
        elif spec.decode_json:
            body = jsonlib.loads(msg.body)
        else:
            return (msg,)
        return (body, msg) if spec.pass_message else (body,)

    async def stop_consuming(self) -> None:
        """Cancel the consumer: the broker sends no more, and what it sent
        that was not handed to a handler yet goes back to the queue.  The
        handlers in flight go on (a message handed out while the cancel
        was under way is one of them)."""
        await self.consumer.cancel()

    async def stop_dispatching(self) -> None:
        self.task.cancel()
        await asyncio.wait([self.task])


def _settle(msg: IncomingMessage, action: Literal["ack", "reject"], *, requeue: bool = False) -> None:
    """Ack or reject unless the handler settled the message itself; a
    message whose channel is gone cannot be settled, but the broker
    redelivers it anyway."""
    if msg.settled:
        return
    try:
        if action == "ack":
            msg.ack()
        else:
            msg.reject(requeue=requeue)
    except AMQPError as exc:
        log.info("cannot %s %r (%s); the broker redelivers it", action, msg, exc)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _takes(signature: inspect.Signature, count: int) -> bool:
    try:
        signature.bind(*([None] * count))
    except TypeError:
        return False
    return True


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
        self._publishers = _PublisherPool()
        self.publisher = RabbitPublisher(self._publishers)
        self._exchanges: dict[str, _Exchange] = {}
        self._queues: dict[str, _Queue] = {}
        self._specs: dict[str, _ConsumerSpec] = {}
        self._runners: list[_Runner] = []
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
            if not is_async_callable(handler):
                raise TypeError(f"consumer handler {handler!r} must be an async function")
            signature = inspect.signature(handler)
            if model is not None or json:
                pass_message = _takes(signature, 2)
                if not pass_message and not _takes(signature, 1):
                    raise TypeError(f"consumer handler {handler!r} must take the body (and, optionally, "
                                    "the message)")
            else:
                pass_message = True
                if not _takes(signature, 1):
                    raise TypeError(f"consumer handler {handler!r} must take the message")
            key = name or getattr(handler, "__name__", None) or repr(handler)
            if key in self._specs:
                raise InvalidArgument(f"a consumer named {key!r} is already registered; pass name=")
            self._specs[key] = _ConsumerSpec(
                key, queue, handler, prefetch, concurrency or prefetch, adapter, json,
                pass_message and (model is not None or json), requeue_on_error, copy_arguments(arguments),
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
            log.error("RabbitMQ startup failed: %s", _one_line(error))
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
            self._runners.append(await _Runner.start(spec, conn))

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
