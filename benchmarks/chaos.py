"""Chaos run: at-least-once delivery through cuts and a broker restart.

    python benchmarks/chaos.py                  # 20,000 messages (what CI runs)
    python benchmarks/chaos.py --count 1000000 --duration 300  # the long run
    python benchmarks/chaos.py --cluster        # on a three-node cluster (CI too)
    python benchmarks/chaos.py --cluster --count 1000000 --duration 300

With ``--cluster`` the broker is a three-node cluster of extra nodes
(``tests/cluster.py``), each behind a proxy of its own; the queue is a
quorum queue, both connections get the three endpoints, and besides the
cuts a random node is killed (SIGKILL) and started again every
``--kill-every`` seconds, one at a time, so that a majority always stays.

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
* tasks and RSS before and after: no task left over, RSS growth < 50 MB;
* recovery: for each cut, restart or kill, the time to the next confirmed
  publish (p50, p99, max).

Exit status 1 if a check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
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
from tests.cluster import Cluster  # noqa: E402
from tests.proxy import Proxy  # noqa: E402

PREFETCH = 1000


class Chaos:
    """One run over ``nodes`` (one, or a cluster's three), each behind the
    proxy at the same index."""

    def __init__(self, nodes: list[BrokerNode], proxies: list[Proxy], args: argparse.Namespace) -> None:
        self.nodes, self.proxies, self.args = nodes, proxies, args
        self.cluster = len(nodes) > 1
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
        # Disruptions waiting for the next confirm, and the times it took.
        self.disrupted: list[float] = []
        self.recoveries: list[float] = []

    @property
    def urls(self) -> list[str]:
        return [proxy.url for proxy in self.proxies]

    def queue_arguments(self) -> dict[str, str] | None:
        return {"x-queue-type": "quorum"} if self.cluster else None

    def confirmed_one(self) -> None:
        self.confirmed += 1
        if self.disrupted:
            now = time.monotonic()
            self.recoveries.extend(now - t for t in self.disrupted)
            self.disrupted.clear()

    async def publish(self) -> aiorabbit.Publisher:
        conn = await aiorabbit.connect_robust(self.urls, backoff=self.backoff, heartbeat=2,
                                              wait_timeout=120, name="chaos-publisher")
        try:
            ch = await conn.channel()
            await ch.queue_declare(self.queue, durable=True, arguments=self.queue_arguments())
            persistent = aiorabbit.DeliveryMode.PERSISTENT
            async with aiorabbit.Publisher(conn, window=1000) as publisher:

                async def one(i: int) -> None:
                    props = aiorabbit.Properties(message_id=str(i), delivery_mode=persistent)
                    await publisher.publish(b"%d" % i, routing_key=self.queue, properties=props)
                    self.confirmed_one()

                # Paced to last at least --duration seconds, so the cuts and
                # the restarts happen while messages are in flight.
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
        conn = await aiorabbit.connect_robust(self.urls, backoff=self.backoff, heartbeat=2,
                                              wait_timeout=120, name="chaos-consumer")
        try:
            ch = await conn.channel()
            await ch.queue_declare(self.queue, durable=True, arguments=self.queue_arguments())
            await ch.basic_qos(prefetch_count=PREFETCH)
            async with ch.consume(self.queue) as messages:
                async for msg in messages:
                    self.count(int(msg.properties.message_id or "-1"))
                    try:
                        await msg.ack()
                    except aiorabbit.AMQPError:
                        pass  # its channel died with the link: the broker redelivers it
                    if self.distinct >= self.args.count:
                        self.done.set()
                        return
        finally:
            await conn.close()

    def count(self, i: int) -> None:
        if self.seen[i]:
            self.duplicates += 1
        else:
            self.distinct += 1
        self.seen[i] = min(255, self.seen[i] + 1)

    async def chaos(self) -> None:
        next_kill = time.monotonic() + self.args.kill_every
        while not self.done.is_set():
            await asyncio.sleep(random.uniform(0.5, 1.5) * self.args.cut_every)
            if self.done.is_set():
                return
            if self.restart_due(next_kill):
                next_kill = time.monotonic() + self.args.kill_every
                self.start_restart()
                continue
            random.choice(self.proxies).cut()
            self.cuts += 1
            self.disrupted.append(time.monotonic())

    def restart_due(self, next_kill: float) -> bool:
        if self.restart is not None and not self.restart.done():
            return False  # one node down at a time: a majority always stays
        if self.cluster:
            return time.monotonic() >= next_kill
        return self.restart is None and self.confirmed >= self.args.count // 2

    def start_restart(self) -> None:
        self.restarts += 1
        node = random.choice(self.nodes)
        how = "killing and starting" if self.cluster else "restarting"
        print(f"  {how} {node.nodename} ({self.confirmed:,} confirmed, {self.distinct:,} consumed)",
              flush=True)
        self.disrupted.append(time.monotonic())
        # In a thread: the cuts go on meanwhile.
        action = _kill_and_start if self.cluster else BrokerNode.restart
        self.restart = asyncio.ensure_future(asyncio.to_thread(action, node))

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
        await asyncio.sleep(0.1)
        return await self.report(publisher, time.perf_counter() - start,
                                 len(asyncio.all_tasks()) - tasks_before, rss_before)

    async def report(self, publisher: aiorabbit.Publisher, wall: float, leftover: int,
                     rss_before: float) -> bool:
        growth = rss_mb() - rss_before
        lost = self.seen.count(0)
        allowed = publisher.republished + (self.cuts + self.restarts) * PREFETCH
        async with aiorabbit.connect(self.nodes[0].url) as conn:
            left = (await (await conn.channel()).queue_delete(self.queue))
        what = "node kill(s)" if self.cluster else "node restart(s)"
        print(f"published and confirmed {self.confirmed:,} of {self.args.count:,} in {wall:.1f} s "
              f"through {self.cuts} cuts and {self.restarts} {what}")
        print(f"consumed {self.distinct:,} distinct ids; lost {lost}; duplicates {self.duplicates} "
              f"(allowed {allowed}: {publisher.republished} republished + a prefetch window per cut); "
              f"{left} left in the queue")
        print(f"recovery to the next confirm: {_percentiles(self.recoveries)}")
        print(f"tasks left over {leftover}; RSS {rss_before:.1f} -> {rss_mb():.1f} MB (growth {growth:.1f})")
        ok = lost == 0 and self.confirmed == self.args.count and self.duplicates <= allowed
        ok = ok and leftover <= 0 and growth < 50 and self.cuts > 0
        ok = ok and (self.restarts >= 1 if self.cluster else self.restarts == 1)
        print("chaos run:", "PASSED" if ok else "FAILED")
        return ok


def _kill_and_start(node: BrokerNode) -> None:
    node.kill()
    node.start()


def _percentiles(values: list[float]) -> str:
    if not values:
        return "none measured"
    ordered = sorted(values)
    p50 = ordered[len(ordered) // 2]
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"p50 {p50:.2f} s, p99 {p99:.2f} s, max {ordered[-1]:.2f} s over {len(ordered)} disruptions"


async def main_async(args: argparse.Namespace) -> bool:
    with contextlib.ExitStack() as stack:
        if args.cluster:
            nodes: list[BrokerNode] = list(stack.enter_context(Cluster()).nodes)
        else:
            nodes = [stack.enter_context(BrokerNode())]
        async with contextlib.AsyncExitStack() as proxies:
            links = [await proxies.enter_async_context(Proxy("127.0.0.1", n.amqp_port)) for n in nodes]
            return await Chaos(nodes, links, args).run()
    return False  # unreachable: keeps mypy's return check happy


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--cut-every", type=float, default=1.0, help="mean seconds between cuts")
    parser.add_argument("--duration", type=float, default=12.0,
                        help="publish no faster than --count over this many seconds")
    parser.add_argument("--cluster", action="store_true", help="a three-node cluster and a quorum queue")
    parser.add_argument("--kill-every", type=float, default=4.0,
                        help="with --cluster: seconds between node kills (one node down at a time)")
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args()
    sys.exit(0 if asyncio.run(main_async(args)) else 1)


if __name__ == "__main__":
    main()
