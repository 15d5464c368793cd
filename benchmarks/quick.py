"""A quick single-client benchmark of aiorabbit's hot paths.

    python benchmarks/quick.py [--count N] [--size BYTES] [--uvloop] [--observe {hooks,otel}]

Publishes N messages without confirms, consumes and acks them through
``async for`` (prefetch 1,000), then publishes N/2 with publisher confirms
and 1,000 outstanding.  Prints messages/s and the client's CPU microseconds
per message for each, and fails if a message is missing.  The comparison
against other clients and the bare-socket ceiling is a separate harness.

``--observe hooks`` installs an observer whose hooks do nothing (the cost
of calling them); ``--observe otel`` turns on aiorabbit.otel with the
OpenTelemetry SDK (every span through a batch processor into an exporter
that drops it, metrics into an in-memory reader): what tracing costs.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import aiorabbit


def _report(name: str, count: int, wall: float, cpu: float) -> None:
    print(f"{name:<28} {count / wall:>10,.0f} msg/s {cpu / count * 1e6:>8.2f} us CPU/msg")


async def run(count: int, size: int) -> None:
    body = b"x" * size
    async with aiorabbit.connect(name="aiorabbit-quick-bench") as conn:
        ch = await conn.channel()
        queue = (await ch.queue_declare("", exclusive=True)).queue

        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(count):
            await ch.basic_publish(body, routing_key=queue)
        await ch.queue_declare(queue, passive=True)  # a round trip: all written
        _report("publish, no confirms", count, time.perf_counter() - wall, time.process_time() - cpu)

        # The broker's queue count lags the socket: poll it (nothing to wait on).
        while (await ch.queue_declare(queue, passive=True)).message_count < count:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await ch.basic_qos(prefetch_count=1000)
        received = 0
        wall, cpu = time.perf_counter(), time.process_time()
        async with ch.consume(queue) as messages:
            async for msg in messages:
                msg.ack()
                received += 1
                if received == count:
                    break
        _report("consume + ack, prefetch 1000", count, time.perf_counter() - wall, time.process_time() - cpu)

        confirmed = await conn.channel(publisher_confirms=True)
        half = count // 2
        window = 1000

        async def publisher(share: int) -> None:
            for _ in range(share):
                await confirmed.basic_publish(body, routing_key=queue)

        wall, cpu = time.perf_counter(), time.process_time()
        # ``window`` tasks each with one publish in flight: 1,000 outstanding.
        await asyncio.gather(*(publisher(half // window + (i < half % window)) for i in range(window)))
        _report("publish, confirms, 1000 out", half, time.perf_counter() - wall, time.process_time() - cpu)
        left = (await ch.queue_declare(queue, passive=True)).message_count
        if left != half:
            raise SystemExit(f"expected {half} confirmed messages in the queue, found {left}")


def _install_otel() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    import aiorabbit.otel

    class Drop(SpanExporter):
        def export(self, spans: object) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(BatchSpanProcessor(Drop()))
    aiorabbit.otel.instrument(tracer_provider, MeterProvider(metric_readers=[InMemoryMetricReader()]))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--observe", choices=("hooks", "otel"))
    args = parser.parse_args()
    if args.observe == "hooks":
        from aiorabbit import observe

        observe.install(observe.Observer())
    elif args.observe == "otel":
        _install_otel()
    if args.uvloop:
        import uvloop

        uvloop.install()
    asyncio.run(run(args.count, args.size))


if __name__ == "__main__":
    main()
