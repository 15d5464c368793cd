"""Render docs/images/trace.png: the span tree of one traced request.

    python tools/trace_image.py [--out docs/images/trace.png]

Against the broker at $AMQP_URL (else localhost): an HTTP-like request span
publishes an order with confirms; a consumer handles it (its span is the
producer's child), calls an RPC service and acks.  The spans come from the
OpenTelemetry SDK's in-memory exporter; matplotlib draws them (pip install
matplotlib).
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from pathlib import Path

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

import aiorabbit
from aiorabbit.otel import OpenTelemetryObserver
from aiorabbit.rpc import RpcClient, RpcServer


async def scenario(provider: TracerProvider) -> None:
    tracer = provider.get_tracer("example")
    observer = OpenTelemetryObserver(provider, semconv="messaging")
    orders, prices = f"orders-{uuid.uuid4().hex[:6]}", f"prices-{uuid.uuid4().hex[:6]}"

    async def price(msg: aiorabbit.IncomingMessage) -> bytes:
        await asyncio.sleep(0.004)
        return b"12.50"

    async with aiorabbit.connect(observer=observer) as conn:
        ch = await conn.channel(publisher_confirms=True)
        await ch.queue_declare(orders, auto_delete=True)
        async with RpcServer(conn, prices, price, durable=False, auto_delete=True), RpcClient(conn) as rpc:
            with tracer.start_as_current_span("POST /orders", kind=SpanKind.SERVER):
                await ch.basic_publish(b'{"order": 1}', routing_key=orders,
                                       properties=aiorabbit.Properties(message_id="order-1"))
            async with ch.consume(orders) as messages:
                async for msg in messages:
                    with tracer.start_as_current_span("validate order"):
                        await asyncio.sleep(0.003)
                    await rpc.call(b"1", routing_key=prices)
                    with tracer.start_as_current_span("store order"):
                        await asyncio.sleep(0.005)
                    await msg.ack()
                    break
            await asyncio.sleep(0.05)


def draw(spans: list[ReadableSpan], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_id = {s.context.span_id: s for s in spans}

    def depth(span: ReadableSpan) -> int:
        d = 0
        while span.parent is not None and span.parent.span_id in by_id:
            span, d = by_id[span.parent.span_id], d + 1
        return d

    def order(span: ReadableSpan) -> list[int]:
        chain = [span.start_time or 0]
        while span.parent is not None and span.parent.span_id in by_id:
            span = by_id[span.parent.span_id]
            chain.insert(0, span.start_time or 0)
        return chain

    rows = sorted(spans, key=order)
    t0 = min(s.start_time or 0 for s in rows)
    colors = {SpanKind.SERVER: "#4c72b0", SpanKind.PRODUCER: "#dd8452", SpanKind.CONSUMER: "#55a868",
              SpanKind.CLIENT: "#8172b3", SpanKind.INTERNAL: "#937860"}
    fig, ax = plt.subplots(figsize=(12, 0.42 * len(rows) + 1.2))
    fig.subplots_adjust(left=0.45)
    for i, span in enumerate(rows):
        start = ((span.start_time or 0) - t0) / 1e6
        width = max(((span.end_time or 0) - (span.start_time or 0)) / 1e6, 0.15)
        ax.barh(i, width, left=start, color=colors.get(span.kind, "#999999"), height=0.6)
        label = "   " * depth(span) + f"{span.name}  ({span.kind.name.lower()}, {width:.1f} ms)"
        ax.text(-0.8, i, label, ha="left", va="center", fontsize=9, family="monospace",
                transform=ax.get_yaxis_transform())
    ax.set_yticks([])
    ax.invert_yaxis()
    ax.set_xlabel("milliseconds since the request began")
    title = "One trace: an HTTP request, its publish, the consumer, an RPC call and the ack"
    ax.set_title(title, fontsize=10)
    ax.spines[["left", "top", "right"]].set_visible(False)
    fig.savefig(out, dpi=110, bbox_inches="tight")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    default = Path(__file__).resolve().parent.parent / "docs/images/trace.png"
    parser.add_argument("--out", type=Path, default=default)
    args = parser.parse_args()
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    asyncio.run(scenario(provider))
    spans = list(exporter.get_finished_spans())
    trace_ids = {s.context.trace_id for s in spans if s.name == "POST /orders"}
    draw([s for s in spans if s.context.trace_id in trace_ids], args.out)
    print(f"{len(spans)} spans; wrote {args.out}")


if __name__ == "__main__":
    main()
