"""Memory under load: aiorabbit's RSS must stay flat.

    python benchmarks/memory.py [--count 1000000] [--slow-seconds 10]

1. Consume ``--count`` 64-byte messages with a manual ack each through
   ``async for`` (prefetch 1,000), sampling RSS every 5 % of the way.  The
   target: growth after warm-up (the first 5 %) below 30 MB.
2. Publish 64 KiB messages from 50 tasks for ``--slow-seconds`` through a
   TCP proxy that forwards 2 MB/s: the publishers must wait, not buffer.
   The target: RSS growth below 30 MB, and the bytes published stay within
   what the link carried plus the client's bounded write buffer.

Both check with the broker that nothing was lost.  Exit status 1 if a
target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiorabbit  # noqa: E402
from benchmarks.clients.bare_client import Client as BareClient  # noqa: E402
from benchmarks.procstat import rss_mb  # noqa: E402
from tests.proxy import Proxy  # noqa: E402

LIMIT_MB = 30.0


async def wait_count(ch: aiorabbit.Channel, queue: str, count: int) -> int:
    found = (await ch.queue_declare(queue, passive=True)).message_count
    deadline = time.monotonic() + 120
    while found < count and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        found = (await ch.queue_declare(queue, passive=True)).message_count
    return found


async def consume_flat(url: str, count: int) -> bool:
    queue = f"bench-memory-{uuid.uuid4().hex[:8]}"
    async with aiorabbit.connect(url, name="bench-memory") as conn:
        ch = await conn.channel()
        await ch.queue_declare(queue)
        try:
            print(f"filling {queue} with {count:,} messages ...", flush=True)
            bare = BareClient()
            bare.connect(url)
            await asyncio.to_thread(bare.publish, queue, b"x" * 64, count, False, 0)
            bare.close()
            if await wait_count(ch, queue, count) != count:
                print("prefill did not arrive")
                return False
            consumer_ch = await conn.channel()
            await consumer_ch.basic_qos(prefetch_count=1000)
            step = max(1, count // 20)
            samples: list[tuple[int, float]] = []
            received = 0
            start = time.perf_counter()
            async with consumer_ch.consume(queue) as messages:
                async for msg in messages:
                    msg.ack()
                    received += 1
                    if received % step == 0:
                        samples.append((received, rss_mb()))
                    if received == count:
                        break
            wall = time.perf_counter() - start
            left = (await ch.queue_declare(queue, passive=True)).message_count
        finally:
            await ch.queue_delete(queue)
    base = samples[0][1]
    growth = max(r for _, r in samples) - base
    print(f"consumed {received:,} in {wall:.1f} s ({received / wall:,.0f} msg/s), {left} left in the queue")
    print("RSS MB at:", ", ".join(f"{n // 1000}k={r:.1f}" for n, r in samples))
    ok = growth < LIMIT_MB and left == 0 and received == count
    print(f"RSS growth after warm-up: {growth:.1f} MB (target < {LIMIT_MB:g}): {'met' if ok else 'MISSED'}")
    return ok


async def publish_slow(url: str, seconds: float) -> bool:
    host, port = "127.0.0.1", aiorabbit.ConnectionParameters.from_url(url).port
    queue = f"bench-memory-slow-{uuid.uuid4().hex[:8]}"
    rate = 2_000_000
    body = b"x" * 65536
    async with Proxy(host, port) as proxy, aiorabbit.connect(url, name="bench-memory-admin") as admin:
        ach = await admin.channel()
        await ach.queue_declare(queue)
        try:
            proxy.rate = rate
            published = 0
            samples: list[float] = []
            async with aiorabbit.connect(proxy.url, name="bench-memory-slow", heartbeat=0) as conn:
                ch = await conn.channel()
                base = rss_mb()
                stop = time.monotonic() + seconds

                async def publisher() -> None:
                    nonlocal published
                    while time.monotonic() < stop:
                        await ch.basic_publish(body, routing_key=queue)
                        published += 1

                async def sampler() -> None:
                    while time.monotonic() < stop:
                        samples.append(rss_mb())
                        await asyncio.sleep(0.25)

                await asyncio.gather(sampler(), *(publisher() for _ in range(50)))
                peak = max(samples)
                proxy.rate = None  # let the tail through, then count
                await ch.queue_declare(queue, passive=True)
            found = await wait_count(ach, queue, published)
        finally:
            await ach.queue_delete(queue)
    carried = rate * seconds / len(body)
    growth = peak - base
    print(f"slow link ({rate / 1e6:g} MB/s for {seconds:g} s): published {published:,} x 64 KiB "
          f"(the link carries ~{carried:,.0f}), {found:,} arrived")
    ok = growth < LIMIT_MB and found == published
    print(f"RSS growth while publishers waited: {growth:.1f} MB (target < {LIMIT_MB:g}): "
          f"{'met' if ok else 'MISSED'}")
    return ok


async def main_async(args: argparse.Namespace) -> bool:
    ok = await consume_flat(args.url, args.count)
    ok = await publish_slow(args.url, args.slow_seconds) and ok
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default=os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"))
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--slow-seconds", type=float, default=10.0)
    args = parser.parse_args()
    sys.exit(0 if asyncio.run(main_async(args)) else 1)


if __name__ == "__main__":
    main()
