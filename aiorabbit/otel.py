"""OpenTelemetry tracing and metrics for aiorabbit (``pip install
"aiorabbit-client[otel]"``; it needs ``opentelemetry-api`` only).

``aiorabbit.otel.instrument()`` installs an :class:`OpenTelemetryObserver`
for every connection opened afterwards.  It follows the OpenTelemetry
messaging semantic conventions for RabbitMQ; which version is chosen by
``OTEL_SEMCONV_STABILITY_OPT_IN`` as those conventions ask of
instrumentations while they are not stable:

- unset (the default): the v1.24 conventions (``messaging.operation``,
  the destination is the exchange name, ``messaging.publish.duration``...);
- ``messaging``: the current ones (``messaging.operation.name`` and
  ``.type``, ``{exchange}:{routing key}`` destinations,
  ``messaging.client.operation.duration``...);
- ``messaging/dup``: both sets of attributes and metrics, with the current
  span names and kinds.

Trace context (W3C ``traceparent``/``tracestate`` through the global
propagator) is injected into the headers of each published message and
extracted from each delivery; a consumer span is a child of the producer's
span when no other span is current, else a child of the current one with
a link to the producer's (docs/observability.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, propagate, trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode

from ._version import __version__
from .codec.properties import Properties
from .message import Settle
from .observe import Observer, PublishEvent, PublishOutcome, install, installed, uninstall

if TYPE_CHECKING:
    from .channel import Channel
    from .connection import Connection
    from .consumer import Consumer
    from .message import IncomingMessage
    from .robust.connection import RobustConnection

__all__ = ["OpenTelemetryObserver", "instrument", "uninstrument"]

_SCOPE = "aiorabbit"
#: The explicit bucket boundaries the conventions advise for durations (s).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
_SETTLE_NAMES = {Settle.ACK: "ack", Settle.NACK: "nack", Settle.REJECT: "reject"}


def conventions(value: str | None = None) -> tuple[bool, bool]:
    """(old, new): which conventions ``OTEL_SEMCONV_STABILITY_OPT_IN`` (or
    ``value``) asks for."""
    raw = os.environ.get("OTEL_SEMCONV_STABILITY_OPT_IN", "") if value is None else value
    wanted = {item.strip() for item in raw.split(",")}
    if "messaging/dup" in wanted:
        return True, True
    if "messaging" in wanted:
        return False, True
    return True, False


_REPLY_TO = "amq.rabbitmq.reply-to"


def _low_cardinality(name: str) -> str:
    """Names made per connection or per queue declare stand for their kind:
    destinations go into span names and metric attributes."""
    if name.startswith(_REPLY_TO):
        return _REPLY_TO
    if name.startswith("amq.gen-"):
        return "(server-named)"
    return name


def _producer_destination(exchange: str, routing_key: str) -> str:
    """The current conventions' destination of a publish."""
    routing_key = _low_cardinality(routing_key)
    if exchange and routing_key:
        return f"{exchange}:{routing_key}"
    return exchange or routing_key or "amq.default"


def _consumer_destination(exchange: str, routing_key: str, queue: str) -> str:
    """The current conventions' destination of a delivery."""
    routing_key, queue = _low_cardinality(routing_key), _low_cardinality(queue)
    parts = [exchange, routing_key] if routing_key != queue else [exchange]
    return ":".join(part for part in (*parts, queue) if part) or "amq.default"


class _Delivery:
    """A delivery being handled: its span and the context set for it."""

    __slots__ = ("ended", "scoped", "span", "started", "task", "token")

    def __init__(self, span: Span, token: object, started: float, scoped: bool) -> None:
        self.scoped = scoped
        self.span = span
        self.token = token
        self.started = started
        self.ended = False
        # The context is reset where it was set: the same task (or none,
        # for a callback run from the protocol).
        self.task = _current_task()


class OpenTelemetryObserver(Observer):
    """Spans and metrics through the OpenTelemetry API.

    ``tracer_provider`` / ``meter_provider`` default to the global ones.
    ``semconv`` overrides ``OTEL_SEMCONV_STABILITY_OPT_IN`` (same values)."""

    def __init__(
        self,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
        *,
        semconv: str | None = None,
    ) -> None:
        self.old, self.new = conventions(semconv)
        self._tracer = trace.get_tracer(_SCOPE, __version__, tracer_provider)
        self._meter = metrics.get_meter(_SCOPE, __version__, meter_provider)
        self._handling: dict[int, _Delivery] = {}
        self._consumers: weakref.WeakSet[Any] = weakref.WeakSet()
        self._recovering: dict[int, Span] = {}
        self._make_instruments()

    # -- instruments -------------------------------------------------------

    def _make_instruments(self) -> None:
        meter = self._meter

        def histogram(name: str, description: str) -> metrics.Histogram:
            return meter.create_histogram(name, unit="s", description=description,
                                          explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS))

        def counter(name: str, description: str, unit: str = "{message}") -> metrics.Counter:
            return meter.create_counter(name, unit=unit, description=description)

        if self.new:
            self._operation_duration = histogram("messaging.client.operation.duration",
                                                 "Duration of publish, basic.get and settle operations")
            self._process_duration = histogram("messaging.process.duration",
                                               "Duration of the application's handling of a delivery")
            self._sent = counter("messaging.client.sent.messages", "Messages published")
            self._consumed = counter("messaging.client.consumed.messages",
                                     "Messages handed to the application")
        if self.old:
            self._publish_duration_v124 = histogram("messaging.publish.duration", "Duration of publishes")
            self._receive_duration_v124 = histogram("messaging.receive.duration", "Duration of basic.get")
            self._deliver_duration_v124 = histogram("messaging.deliver.duration",
                                                    "Duration of the application's handling of a delivery")
        # What this client knows and the conventions have no name for.
        self._confirm_latency = histogram("aiorabbit.publish.confirm.duration",
                                          "Time from a publish to the broker's confirm")
        self._in_flight = meter.create_up_down_counter(
            "aiorabbit.publish.confirms_in_flight", unit="{message}",
            description="Publishes waiting for the broker's confirm")
        self._nacked = counter("aiorabbit.publish.nacked", "Publishes the broker nacked")
        self._returned = counter("aiorabbit.publish.returned", "Mandatory publishes returned unroutable")
        self._failed = counter("aiorabbit.publish.failed", "Publishes that failed before an outcome")
        self._settled = counter("aiorabbit.delivery.settled", "Deliveries acked, nacked or rejected")
        self._recoveries = counter("aiorabbit.connection.recoveries", "Recoveries, by outcome", "{recovery}")
        self._recovery_duration = histogram("aiorabbit.connection.recovery.duration",
                                            "Time from a connection loss to its recovery (or giving up)")
        self._blocked = meter.create_counter("aiorabbit.connection.blocked.time", unit="s",
                                             description="Time the broker blocked publishing")
        meter.create_observable_gauge("aiorabbit.consumer.buffered", callbacks=[self._observe_buffers],
                                      unit="{message}",
                                      description="Deliveries received and not yet handed out, by queue")

    def _observe_buffers(self, options: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        depth: dict[str, int] = {}
        for consumer in list(self._consumers):
            if consumer.ended:
                continue
            depth[consumer.queue] = depth.get(consumer.queue, 0) + consumer.buffered
        return [metrics.Observation(count, {"messaging.system": "rabbitmq", "aiorabbit.queue": queue})
                for queue, count in depth.items()]

    # -- attributes --------------------------------------------------------

    def _common(self, connection: Connection, operation: str, kind: str) -> dict[str, Any]:
        """Attributes every span and metric of an operation has; ``kind``
        is the current conventions' operation type."""
        params = connection.params
        attrs: dict[str, Any] = {"messaging.system": "rabbitmq", "server.address": params.host,
                                 "server.port": params.port}
        if self.new:
            attrs["messaging.operation.name"] = operation
            attrs["messaging.operation.type"] = kind
        if self.old:
            attrs["messaging.operation"] = {"send": "publish", "process": "deliver"}.get(kind, kind)
        return attrs

    def _message(self, attrs: dict[str, Any], routing_key: str, message_id: str | None,
                 correlation_id: str | None, body_size: int) -> None:
        if routing_key:
            attrs["messaging.rabbitmq.destination.routing_key"] = routing_key
        if message_id:
            attrs["messaging.message.id"] = message_id
        if correlation_id:
            attrs["messaging.message.conversation_id"] = correlation_id
        attrs["messaging.message.body.size"] = body_size

    def _name(self, operation: str, old_operation: str, destination: str, exchange: str) -> str:
        if self.new:
            return f"{operation} {destination}"
        return f"{exchange or '(default)'} {old_operation}"

    def _destination(self, attrs: dict[str, Any], exchange: str, current: str) -> None:
        # Single-valued: under messaging/dup the current conventions' value.
        attrs["messaging.destination.name"] = current if self.new else exchange
        if _REPLY_TO in current:
            attrs["messaging.destination.temporary"] = True
        elif "(server-named)" in current:
            attrs["messaging.destination.anonymous"] = True

    @staticmethod
    def _peer(attrs: dict[str, Any], connection: Connection) -> None:
        peer = connection.peer
        if peer is not None:
            attrs["network.peer.address"], attrs["network.peer.port"] = peer

    @staticmethod
    def _metric_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
        """The low-cardinality subset of a span's attributes."""
        keep = ("messaging.system", "messaging.operation.name", "messaging.operation.type",
                "messaging.operation",
                "messaging.destination.name", "server.address", "server.port", "error.type")
        return {key: attrs[key] for key in keep if key in attrs}

    # -- publishing --------------------------------------------------------

    def publish_started(self, channel: Channel, event: PublishEvent) -> Any:
        conn = channel.connection
        props = event.properties
        attrs = self._common(conn, "publish", "send")
        destination = _producer_destination(event.exchange, event.routing_key)
        self._destination(attrs, event.exchange, destination)
        self._message(attrs, event.routing_key, props.message_id if props else None,
                      props.correlation_id if props else None, event.body_size)
        self._peer(attrs, conn)
        span = self._tracer.start_span(self._name("publish", "publish", destination, event.exchange),
                                       kind=SpanKind.PRODUCER, attributes=attrs)
        headers = dict(props.headers) if props is not None and props.headers else {}
        if "traceparent" not in headers:  # a context the application set is left alone
            propagate.inject(headers, context=trace.set_span_in_context(span))
            event.properties = (props.replace(headers=headers) if props is not None
                                else Properties(headers=headers))
        if event.confirm:
            self._in_flight.add(1, {"messaging.system": "rabbitmq"})
        return span, attrs

    def publish_ended(
        self, channel: Channel, event: PublishEvent, token: Any, outcome: PublishOutcome,
        error: BaseException | None,
    ) -> None:
        span, attrs = token
        duration = time.perf_counter() - event.started
        if error is not None:
            _record_error(span, attrs, error)
        span.set_attribute("aiorabbit.publish.outcome", outcome.value)
        span.end()
        metric = self._metric_attrs(attrs)
        if self.new:
            self._operation_duration.record(duration, metric)
            self._sent.add(1, metric)
        if self.old:
            self._publish_duration_v124.record(duration, metric)
        if event.confirm:
            self._in_flight.add(-1, {"messaging.system": "rabbitmq"})
            if outcome is PublishOutcome.CONFIRMED:
                self._confirm_latency.record(duration, metric)
        if outcome is PublishOutcome.NACKED:
            self._nacked.add(1, metric)
        elif outcome is PublishOutcome.RETURNED:
            self._returned.add(1, metric)
        elif outcome is PublishOutcome.FAILED:
            self._failed.add(1, metric)

    # -- consuming ---------------------------------------------------------

    def _delivery_attrs(self, connection: Connection, message: IncomingMessage, queue: str,
                        operation: str, kind: str) -> tuple[dict[str, Any], str]:
        attrs = self._common(connection, operation, kind)
        destination = _consumer_destination(message.exchange, message.routing_key, queue)
        self._destination(attrs, message.exchange, destination)
        props = message.properties
        self._message(attrs, message.routing_key, props.message_id, props.correlation_id, message.body_size)
        attrs["messaging.rabbitmq.message.delivery_tag"] = message.delivery_tag
        if queue:
            attrs["aiorabbit.queue"] = queue
        return attrs, destination

    def consumer_started(self, consumer: Consumer) -> None:
        self._consumers.add(consumer)

    def delivery_started(self, consumer: Consumer, message: IncomingMessage, scoped: bool) -> Any:
        attrs, destination = self._delivery_attrs(consumer.channel.connection, message, consumer.queue,
                                                  "process", "process")
        parent, links = _parent_and_links(message.headers)
        span = self._tracer.start_span(self._name("process", "deliver", destination, message.exchange),
                                       context=parent, kind=SpanKind.CONSUMER, attributes=attrs, links=links)
        token = otel_context.attach(trace.set_span_in_context(span))
        delivery = _Delivery(span, token, time.perf_counter(), scoped)
        self._handling[id(message)] = delivery
        if self.new:
            self._consumed.add(1, self._metric_attrs(attrs))
        return delivery, attrs

    def delivery_ended(
        self, consumer: Consumer, message: IncomingMessage, token: Any, error: BaseException | None
    ) -> None:
        delivery, attrs = token
        if _current_task() is delivery.task:
            otel_context.detach(delivery.token)
        if error is not None and not delivery.ended:
            _record_error(delivery.span, attrs, error)
        self._end_handling(message, delivery, attrs)

    def _end_handling(self, message: IncomingMessage, delivery: _Delivery, attrs: dict[str, Any]) -> None:
        if delivery.ended:
            return
        delivery.ended = True
        self._handling.pop(id(message), None)
        delivery.span.end()
        duration = time.perf_counter() - delivery.started
        metric = self._metric_attrs(attrs)
        if self.new:
            self._process_duration.record(duration, metric)
        if self.old:
            self._deliver_duration_v124.record(duration, metric)

    def delivery_settled(
        self, channel: Channel, message: IncomingMessage, kind: Settle, multiple: bool, requeue: bool
    ) -> None:
        operation = _SETTLE_NAMES[kind]
        delivery = self._handling.get(id(message))
        attrs, destination = self._delivery_attrs(channel.connection, message, "", operation, "settle")
        attrs.pop("messaging.rabbitmq.destination.routing_key", None)  # not a settle attribute
        parent = trace.set_span_in_context(delivery.span) if delivery is not None else None
        started = time.perf_counter()
        span = self._tracer.start_span(self._name(operation, operation, destination, message.exchange),
                                       context=parent, kind=SpanKind.CLIENT, attributes=attrs)
        span.set_attribute("aiorabbit.settle.multiple", multiple)
        if kind is not Settle.ACK:
            span.set_attribute("aiorabbit.settle.requeue", requeue)
        span.end()
        metric = self._metric_attrs(attrs)
        self._settled.add(1, metric)
        if self.new:
            self._operation_duration.record(time.perf_counter() - started, metric)
        if delivery is not None and not delivery.scoped:
            # Settling ends the handling of a message ``async for`` handed
            # out, even before the next one is asked for.
            self._end_handling(message, delivery, attrs)

    def message_got(self, channel: Channel, queue: str, message: IncomingMessage | None,
                    duration: float) -> None:
        conn = channel.connection
        if message is None:
            attrs = self._common(conn, "receive", "receive")
            attrs["messaging.destination.name"] = queue if self.new else ""
            links: list[Link] = []
            name = self._name("receive", "receive", queue, "")
        else:
            attrs, destination = self._delivery_attrs(conn, message, queue, "receive", "receive")
            links = _parent_and_links(message.headers, link_only=True)[1]
            name = self._name("receive", "receive", destination, message.exchange)
        self._peer(attrs, conn)
        end = time.time_ns()
        span = self._tracer.start_span(name, kind=SpanKind.CLIENT if self.new else SpanKind.CONSUMER,
                                       attributes=attrs, links=links, start_time=end - int(duration * 1e9))
        span.end(end_time=end)
        metric = self._metric_attrs(attrs)
        if self.new:
            self._operation_duration.record(duration, metric)
            if message is not None:
                self._consumed.add(1, metric)
        if self.old:
            self._receive_duration_v124.record(duration, metric)

    # -- connections -------------------------------------------------------

    def connection_unblocked(self, connection: Connection, blocked_for: float) -> None:
        attrs = {"messaging.system": "rabbitmq", "server.address": connection.params.host}
        self._blocked.add(blocked_for, attrs)

    def recovery_started(self, connection: RobustConnection, error: BaseException) -> None:
        span = self._tracer.start_span("aiorabbit recovery", kind=SpanKind.INTERNAL, attributes={
            "messaging.system": "rabbitmq", "error.type": _error_type(error)})
        span.add_event("connection lost", {"exception.message": str(error)})
        self._recovering[id(connection)] = span

    def recovery_attempt(self, connection: RobustConnection, attempt: int, error: BaseException,
                         delay: float) -> None:
        span = self._recovering.get(id(connection))
        if span is not None:
            span.add_event("attempt failed", {"aiorabbit.attempt": attempt, "error.type": _error_type(error),
                                              "aiorabbit.retry_in": delay})

    def recovered(self, connection: RobustConnection, duration: float) -> None:
        self._end_recovery(connection, duration, None)

    def recovery_failed(self, connection: RobustConnection, error: BaseException, duration: float) -> None:
        self._end_recovery(connection, duration, error)

    def _end_recovery(
        self, connection: RobustConnection, duration: float, error: BaseException | None
    ) -> None:
        attrs = {"messaging.system": "rabbitmq", "aiorabbit.outcome": "failed" if error else "recovered"}
        self._recoveries.add(1, attrs)
        self._recovery_duration.record(duration, attrs)
        span = self._recovering.pop(id(connection), None)
        if span is None:
            return
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, str(error)))
        span.end()


def _parent_and_links(headers: Mapping[str, Any], *, link_only: bool = False) -> tuple[Any, list[Link]]:
    """The parent context and the links of a consumer span: the producer's
    context is the parent unless another span is current (then it is
    linked, as it always is)."""
    carrier = {key: value for key, value in headers.items() if isinstance(value, str)}
    creation = propagate.extract(carrier)
    producer = trace.get_current_span(creation).get_span_context()
    links = [Link(producer)] if producer.is_valid else []
    ambient = trace.get_current_span().get_span_context()
    if link_only or ambient.is_valid or not producer.is_valid:
        return None, links  # the current context is the parent
    return creation, links


def _current_task() -> asyncio.Task[Any] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # no running loop
        return None


def _record_error(span: Span, attrs: dict[str, Any], error: BaseException) -> None:
    """Mark a failed operation's span (and the metric attributes taken from
    ``attrs``) with its error."""
    attrs["error.type"] = _error_type(error)
    span.set_attribute("error.type", attrs["error.type"])
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, str(error)))


def _error_type(error: BaseException) -> str:
    """A low-cardinality error name: the AMQP reply code's name when there
    is one, else the exception's class."""
    text = getattr(error, "reply_text", "")
    code = getattr(error, "reply_code", 0)
    if code and isinstance(text, str) and " - " in text:
        return text.split(" - ", 1)[0].strip()  # e.g. NOT_FOUND
    return type(error).__qualname__


def instrument(
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    *,
    semconv: str | None = None,
) -> OpenTelemetryObserver:
    """Trace and measure every connection opened from now on (see
    :class:`OpenTelemetryObserver`); return the observer installed."""
    observer = OpenTelemetryObserver(tracer_provider, meter_provider, semconv=semconv)
    install(observer)
    return observer


def uninstrument() -> None:
    """Stop observing connections opened from now on (if this module's
    observer is the one installed)."""
    if isinstance(installed(), OpenTelemetryObserver):
        uninstall()


@contextlib.contextmanager
def instrumented(**options: Any) -> Iterator[OpenTelemetryObserver]:
    """``instrument()`` for the length of a ``with`` block."""
    observer = instrument(**options)
    try:
        yield observer
    finally:
        uninstrument()
