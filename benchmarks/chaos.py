"""Chaos run: at-least-once delivery through cuts and a broker restart.

    python benchmarks/chaos.py                  # 20,000 messages (what CI runs)
    python benchmarks/chaos.py --count 1000000 --duration 300  # the long run

A dedicated RabbitMQ node (its own name, ports and data; see
``tests/broker_node.py``) sits behind an in-process TCP proxy.  One robust
connection publishes ``--count`` persistent messages with unique ids through
:class:`aiorabbit.Publisher` to a durable queue; another robust connection
consumes them with ``async for`` and acks each.  Meanwhile the proxy cuts
every link about once a second, and the node is restarted once, half way.

At the end it prints, and checks:

* lost: ids published (confirmed) but never consumed; must be 0;
* duplicates: ids consumed more than once; must stay within what was
  unconfirmed or unacked at the cuts (the publisher's republished count
  plus one prefetch window of redeliveries per cut);
* tasks and RSS before and after: no task left over, RSS growth < 50 MB.

Exit status 1 if a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiorabbit  # noqa: E402
from benchmarks.procstat import rss_mb  # noqa: E402
from tests.broker_node import BrokerNode  # noqa: E402
from tests.proxy import Proxy  # noqa: E402

PREFETCH = 1000


class Chaos:
    def __init__(self, node: BrokerNode, proxy: Proxy, args: argparse.Namespace) -> None:
        self.node, self.proxy, self.args = node, proxy, args
        self.queue = f"chaos-{uuid.uuid4().hex[:8]}"
        # Deliveries per id, one byte each: the run's own bookkeeping must
        # not hide (or look like) the client's memory growth.
        self.seen = bytearray(args.count)
        self.distinct = 0
        self.duplicates = 0
        self.confirmed = 0
        self.cuts = 0
        self.restarts = 0
        self.done = asyncio.Event()
        self.restart: asyncio.Future[None] | None = None
        self.backoff = aiorabbit.Backoff(initial=0.05, maximum=1.0)

    async def publish(self) -> aiorabbit.Publisher:
        conn = await aiorabbit.connect_robust(self.proxy.url, backoff=self.backoff, heartbeat=2,
                                              wait_timeout=120, name="chaos-publisher")
        try:
            ch = await conn.channel()
            await ch.queue_declare(self.queue, durable=True)
            persistent = aiorabbit.DeliveryMode.PERSISTENT
            async with aiorabbit.Publisher(conn, window=1000) as publisher:

                async def one(i: int) -> None:
                    props = aiorabbit.Properties(message_id=str(i), delivery_mode=persistent)
                    await publisher.publish(b"%d" % i, routing_key=self.queue, properties=props)
                    self.confirmed += 1

                # Paced to last at least --duration seconds, so the cuts and
                # the restart happen while messages are in flight.
                step, began = 500, time.monotonic()
                rate = self.args.count / self.args.duration
                for start in range(0, self.args.count, step):
                    due = began + start / rate
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                    await asyncio.gather(*(one(i) for i in range(start, min(start + step, self.args.count))))
            return publisher
        finally:
            await conn.close()

    async def consume(self) -> None:
        conn = await aiorabbit.connect_robust(self.proxy.url, backoff=self.backoff, heartbeat=2,
                                              wait_timeout=120, name="chaos-consumer")
        try:
            ch = await conn.channel()
            await ch.queue_declare(self.queue, durable=True)
            await ch.basic_qos(prefetch_count=PREFETCH)
            async with ch.consume(self.queue) as messages:
                async for msg in messages:
                    i = int(msg.properties.message_id or "-1")
                    if self.seen[i]:
                        self.duplicates += 1
                    else:
                        self.distinct += 1
                    self.seen[i] = min(255, self.seen[i] + 1)
                    try:
                        await msg.ack()
                    except aiorabbit.AMQPError:
                        pass  # its channel died with the link: the broker redelivers it
                    if self.distinct >= self.args.count:
                        self.done.set()
                        return
        finally:
            await conn.close()

    async def chaos(self) -> None:
        while not self.done.is_set():
            await asyncio.sleep(random.uniform(0.5, 1.5) * self.args.cut_every)
            if self.done.is_set():
                return
            if self.restart is None and self.confirmed >= self.args.count // 2:
                self.restarts += 1
                print(f"  restarting the node ({self.confirmed:,} confirmed, {self.distinct:,} consumed)",
                      flush=True)
                # In a thread: the cuts go on meanwhile.
                self.restart = asyncio.ensure_future(asyncio.to_thread(self.node.restart))
                continue
            self.proxy.cut()
            self.cuts += 1

    async def run(self) -> bool:
        tasks_before = len(asyncio.all_tasks())
        rss_before = rss_mb()
        start = time.perf_counter()
        publishing = asyncio.ensure_future(self.publish())
        consuming = asyncio.ensure_future(self.consume())
        chaos = asyncio.ensure_future(self.chaos())
        try:
            publisher = await asyncio.wait_for(publishing, self.args.timeout)
            await asyncio.wait_for(consuming, self.args.timeout)
        finally:
            self.done.set()
            chaos.cancel()
            for task in (publishing, consuming, chaos):
                if not task.done():
                    task.cancel()
            await asyncio.gather(publishing, consuming, chaos, return_exceptions=True)
            if self.restart is not None:
                await self.restart  # the node must be up again for the checks below
        wall = time.perf_counter() - start
        await asyncio.sleep(0.1)
        leftover = len(asyncio.all_tasks()) - tasks_before
        growth = rss_mb() - rss_before
        lost = self.seen.count(0)
        duplicates = self.duplicates
        allowed = publisher.republished + self.cuts * PREFETCH + (self.restarts * PREFETCH)
        async with aiorabbit.connect(self.node.url) as conn:
            left = (await (await conn.channel()).queue_delete(self.queue))
        print(f"published and confirmed {self.confirmed:,} of {self.args.count:,} in {wall:.1f} s "
              f"through {self.cuts} cuts and {self.restarts} node restart(s)")
        print(f"consumed {self.distinct:,} distinct ids; lost {lost}; duplicates {duplicates} "
              f"(allowed {allowed}: {publisher.republished} republished + a prefetch window per cut); "
              f"{left} left in the queue")
        print(f"tasks left over {leftover}; RSS {rss_before:.1f} -> {rss_mb():.1f} MB (growth {growth:.1f})")
        ok = lost == 0 and self.confirmed == self.args.count and duplicates <= allowed
        ok = ok and leftover <= 0 and growth < 50 and self.cuts > 0 and self.restarts == 1
        print("chaos run:", "PASSED" if ok else "FAILED")
        return ok


async def main_async(args: argparse.Namespace) -> bool:
    with BrokerNode() as node:
        async with Proxy("127.0.0.1", node.amqp_port) as proxy:
            return await Chaos(node, proxy, args).run()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--cut-every", type=float, default=1.0, help="mean seconds between cuts")
    parser.add_argument("--duration", type=float, default=12.0,
                        help="publish no faster than --count over this many seconds")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    sys.exit(0 if asyncio.run(main_async(args)) else 1)


if __name__ == "__main__":
    main()
