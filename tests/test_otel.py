"""aiorabbit.otel against the real broker, with the OpenTelemetry SDK's
in-memory exporters: span trees, attributes, durations and metrics."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import aiorabbit
from aiorabbit.otel import OpenTelemetryObserver, conventions
from aiorabbit.rpc import RpcClient, RpcServer

from .conftest import Names
from .proxy import Proxy

BROKER = ("127.0.0.1", 5672)


class Telemetry:
    """An observer wired to in-memory span and metric exporters."""

    def __init__(self, semconv: str = "messaging") -> None:
        self.spans_out = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans_out))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])
        self.observer = OpenTelemetryObserver(self.tracer_provider, self.meter_provider, semconv=semconv)
        self.tracer = self.tracer_provider.get_tracer("test")

    def spans(self, prefix: str = "") -> list[ReadableSpan]:
        return [s for s in self.spans_out.get_finished_spans() if s.name.startswith(prefix)]

    def metrics(self) -> dict[str, list[Any]]:
        data = self.reader.get_metrics_data()
        found: dict[str, list[Any]] = {}
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    found.setdefault(metric.name, []).extend(metric.data.data_points)
        return found

    def total(self, name: str) -> float:
        points = self.metrics().get(name, [])
        return sum(getattr(p, "value", getattr(p, "count", 0)) for p in points)


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    t = Telemetry()
    yield t
    t.tracer_provider.shutdown()
    t.meter_provider.shutdown()


def test_the_opt_in_variable_chooses_the_conventions(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN", raising=False)
    assert conventions() == (True, False)
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http, messaging")
    assert conventions() == (False, True)
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "messaging,messaging/dup")
    assert conventions() == (True, True)


async def test_publish_and_async_for_make_one_trace(telemetry: Telemetry, names: Names) -> None:
    queue = names.queue()
    async with aiorabbit.connect(observer=telemetry.observer) as conn:
        ch = await conn.channel(publisher_confirms=True)
        await ch.queue_declare(queue, auto_delete=True)
        with telemetry.tracer.start_as_current_span("request") as request:
            props = aiorabbit.Properties(message_id="id-1", correlation_id="conv-1")
            await ch.basic_publish(b"hello", routing_key=queue, properties=props)
        async with ch.consume(queue) as messages:
            async for msg in messages:
                current = trace.get_current_span()
                assert current.is_recording()  # the consumer span is current in the body
                with telemetry.tracer.start_as_current_span("work"):
                    await asyncio.sleep(0.05)
                await msg.ack()
                await asyncio.sleep(0.05)  # after the ack: not part of the handling
                break
    (publish,) = telemetry.spans("publish")
    (process,) = telemetry.spans("process")
    (ack,) = telemetry.spans("ack")
    (work,) = telemetry.spans("work")
    trace_id = request.get_span_context().trace_id
    assert {s.context.trace_id for s in (publish, process, ack, work)} == {trace_id}
    assert publish.parent is not None and publish.parent.span_id == request.get_span_context().span_id
    assert process.parent is not None and process.parent.span_id == publish.context.span_id
    assert [link.context.span_id for link in process.links] == [publish.context.span_id]
    assert work.parent is not None and work.parent.span_id == process.context.span_id
    assert ack.parent is not None and ack.parent.span_id == process.context.span_id
    assert (publish.kind, process.kind, ack.kind) == (SpanKind.PRODUCER, SpanKind.CONSUMER, SpanKind.CLIENT)
    assert publish.name == f"publish {queue}" and process.name == f"process {queue}"
    assert publish.attributes is not None and process.attributes is not None
    assert dict(publish.attributes).items() >= {
        "messaging.system": "rabbitmq", "messaging.operation.name": "publish",
        "messaging.operation.type": "send", "messaging.destination.name": queue,
        "messaging.rabbitmq.destination.routing_key": queue, "messaging.message.id": "id-1",
        "messaging.message.conversation_id": "conv-1", "messaging.message.body.size": 5,
        "server.port": 5672, "aiorabbit.publish.outcome": "confirmed",
    }.items()
    assert process.attributes["messaging.rabbitmq.message.delivery_tag"] == 1
    assert process.attributes["messaging.operation.type"] == "process"
    # The handling lasts from the hand-out to the ack: the work, not the sleep after it.
    assert process.start_time is not None and process.end_time is not None
    handled = (process.end_time - process.start_time) / 1e9
    assert 0.05 <= handled < 0.1
    assert abs(process.end_time - ack.end_time) < 5e6  # type: ignore[operator]  # ended by the ack
    assert trace.get_current_span() is trace.INVALID_SPAN  # nothing left current after the loop


async def test_metrics_count_messages_and_confirms(telemetry: Telemetry, names: Names) -> None:
    queue, full = names.queue(), names.queue("full")
    async with aiorabbit.connect(observer=telemetry.observer) as conn:
        ch = await conn.channel(publisher_confirms=True)
        await ch.queue_declare(queue, auto_delete=True)
        await ch.queue_declare(full, auto_delete=True,
                               arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
        await asyncio.gather(*(ch.basic_publish(b"%d" % i, routing_key=queue) for i in range(10)))
        await ch.basic_publish(b"first", routing_key=full)
        with pytest.raises(aiorabbit.PublishNacked):
            await ch.basic_publish(b"second", routing_key=full)
        with pytest.raises(aiorabbit.MessageReturned):
            await ch.basic_publish(b"lost", routing_key=names.queue("nowhere"), mandatory=True)
        got = await ch.basic_get(queue)
        assert got is not None
        await got.ack()
        consumer = await ch.consume(queue).start()
        await asyncio.sleep(0.2)
        assert telemetry.total("aiorabbit.consumer.buffered") == 9
        for _ in range(9):
            msg = await consumer.get(timeout=5)
            await msg.ack()
        await consumer.cancel()
    assert telemetry.total("messaging.client.sent.messages") == 13
    assert telemetry.total("messaging.client.consumed.messages") == 10  # 1 basic.get + 9 handed out
    assert telemetry.total("aiorabbit.publish.confirm.duration") == 11  # histogram count: confirmed
    assert telemetry.total("aiorabbit.publish.nacked") == 1
    assert telemetry.total("aiorabbit.publish.returned") == 1
    assert telemetry.total("aiorabbit.publish.confirms_in_flight") == 0
    assert telemetry.total("aiorabbit.delivery.settled") == 10
    assert telemetry.total("messaging.process.duration") == 9
    nacked = [s for s in telemetry.spans("publish") if s.status.status_code is StatusCode.ERROR]
    assert len(nacked) == 2
    assert {s.attributes["error.type"] for s in nacked} == {"PublishNacked", "MessageReturned"}  # type: ignore[index]
    (receive,) = telemetry.spans("receive")
    assert receive.kind is SpanKind.CLIENT and receive.attributes["messaging.operation.type"] == "receive"  # type: ignore[index]


async def test_a_failing_handler_records_its_error(telemetry: Telemetry, names: Names) -> None:
    queue = names.queue()
    done = asyncio.Event()

    async def handle(msg: aiorabbit.IncomingMessage) -> None:
        done.set()
        raise KeyError("missing")

    async with aiorabbit.connect(observer=telemetry.observer) as conn:
        ch = await conn.channel()
        await ch.queue_declare(queue, auto_delete=True)
        await ch.basic_publish(b"x", routing_key=queue)
        async with ch.consume(queue, callback=handle, no_ack=True):
            await asyncio.wait_for(done.wait(), 5)
            await asyncio.sleep(0.05)
    (process,) = telemetry.spans("process")
    assert process.status.status_code is StatusCode.ERROR
    assert process.attributes is not None and process.attributes["error.type"] == "KeyError"
    assert [e.name for e in process.events] == ["exception"]


async def test_default_conventions_are_v1_24_and_dup_emits_both(
    names: Names, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN", raising=False)
    old, dup = Telemetry(semconv=""), Telemetry(semconv="messaging/dup")
    queue = names.queue()
    for t in (old, dup):
        async with aiorabbit.connect(observer=t.observer) as conn:
            ch = await conn.channel()
            await ch.basic_publish(b"x", exchange="amq.direct", routing_key=queue)
    (span_old,) = old.spans()
    (span_dup,) = dup.spans()
    assert span_old.name == "amq.direct publish" and span_dup.name == f"publish amq.direct:{queue}"
    attrs_old, attrs_dup = dict(span_old.attributes or {}), dict(span_dup.attributes or {})
    assert attrs_old["messaging.operation"] == "publish" and "messaging.operation.name" not in attrs_old
    assert attrs_old["messaging.destination.name"] == "amq.direct"
    assert attrs_dup["messaging.operation"] == "publish" and attrs_dup["messaging.operation.type"] == "send"
    assert attrs_dup["messaging.destination.name"] == f"amq.direct:{queue}"
    assert "messaging.publish.duration" in old.metrics()
    assert "messaging.client.sent.messages" not in old.metrics()
    assert {"messaging.publish.duration", "messaging.client.operation.duration"} <= set(dup.metrics())


async def test_recovery_is_a_span_and_metrics(telemetry: Telemetry, names: Names) -> None:
    async with Proxy(*BROKER) as proxy:
        conn = await aiorabbit.connect_robust(proxy.url, backoff=aiorabbit.Backoff(initial=0.05, maximum=0.2),
                                              observer=telemetry.observer)
        ch = await conn.channel(publisher_confirms=True)
        proxy.cut()
        await asyncio.sleep(0.1)
        await ch.basic_publish(b"x", routing_key=names.queue())  # waits for the recovery
        await conn.close()
    (recovery,) = telemetry.spans("aiorabbit recovery")
    assert recovery.status.status_code is not StatusCode.ERROR
    assert recovery.attributes is not None and recovery.attributes["error.type"] == "ConnectionLost"
    assert telemetry.total("aiorabbit.connection.recoveries") == 1
    assert telemetry.total("aiorabbit.connection.recovery.duration") == 1


async def test_rpc_call_and_reply_share_the_trace(telemetry: Telemetry, names: Names) -> None:
    async def double(msg: aiorabbit.IncomingMessage) -> bytes:
        with telemetry.tracer.start_as_current_span("server work"):
            return msg.body * 2

    queue = names.queue("rpc")
    async with aiorabbit.connect(observer=telemetry.observer) as conn:
        async with RpcServer(conn, queue, double), RpcClient(conn) as client:
            with telemetry.tracer.start_as_current_span("caller") as caller:
                reply = await client.call(b"ab", routing_key=queue, timeout=10)
                assert reply.body == b"abab"
            await asyncio.sleep(0.05)
    trace_id = caller.get_span_context().trace_id
    by_name = {s.name: s for s in telemetry.spans()}
    work = by_name["server work"]
    assert work.context.trace_id == trace_id
    request_publish = by_name[f"publish {queue}"]
    server_process = by_name[f"process {queue}"]
    assert server_process.parent.span_id == request_publish.context.span_id  # type: ignore[union-attr]
    assert work.parent.span_id == server_process.context.span_id  # type: ignore[union-attr]
    replies = [s for s in telemetry.spans("publish") if s is not request_publish]
    (reply,) = replies
    assert reply.context.trace_id == trace_id
    assert reply.parent.span_id == server_process.context.span_id  # type: ignore[union-attr]
    # The server acks the request after its handler returned, within its handling.
    (server_ack,) = telemetry.spans(f"ack {queue}")
    assert server_ack.parent.span_id == server_process.context.span_id  # type: ignore[union-attr]
    assert server_process.end_time >= server_ack.end_time  # type: ignore[operator]


CONSUMER_PROCESS = r"""
import asyncio, json, sys
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import aiorabbit, aiorabbit.otel

async def main(queue):
    out = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(out))
    aiorabbit.otel.instrument(provider, semconv="messaging")
    async with aiorabbit.connect() as conn:
        ch = await conn.channel()
        await ch.queue_declare(queue, auto_delete=True)
        print("ready", flush=True)
        async with ch.consume(queue) as messages:
            async for msg in messages:
                await msg.ack()
                break
    print(json.dumps([{"name": s.name, "trace_id": s.context.trace_id, "span_id": s.context.span_id,
                       "parent": s.parent.span_id if s.parent else None} for s in out.get_finished_spans()]))

asyncio.run(main(sys.argv[1]))
"""


async def test_a_fastapi_request_traces_into_a_consumer_in_another_process(
    telemetry: Telemetry, names: Names
) -> None:
    from fastapi import FastAPI
    from httpx import ASGITransport, AsyncClient
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    from aiorabbit.fastapi import RabbitMQ

    queue = names.queue("orders")
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    # Started once, read from a thread below: nothing here blocks the loop.
    child = subprocess.Popen(  # noqa: ASYNC220
        [sys.executable, "-c", CONSUMER_PROCESS, queue], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert child.stdout is not None
        assert await asyncio.to_thread(child.stdout.readline) == "ready\n"
        rabbit = RabbitMQ(os.environ.get("AMQP_URL"), observer=telemetry.observer)
        app = FastAPI()

        @app.post("/orders")
        async def order() -> dict[str, str]:
            await rabbit.publisher.publish(b"order 1", routing_key=queue)
            return {"status": "queued"}

        traced = OpenTelemetryMiddleware(app, tracer_provider=telemetry.tracer_provider)
        async with rabbit.lifespan(app):
            async with AsyncClient(transport=ASGITransport(app=traced), base_url="http://test") as http:
                assert (await http.post("/orders")).json() == {"status": "queued"}
        output, _ = await asyncio.to_thread(child.communicate, timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    remote = json.loads(output)
    (request,) = [s for s in telemetry.spans() if s.kind is SpanKind.SERVER]
    (publish,) = telemetry.spans("publish")
    assert publish.context.trace_id == request.context.trace_id
    (process,) = [s for s in remote if s["name"].startswith("process")]
    assert process["trace_id"] == request.context.trace_id
    assert process["parent"] == publish.context.span_id
    ack = [s for s in remote if s["name"].startswith("ack")]
    assert ack and ack[0]["parent"] == process["span_id"]
