"""Consumers on a three-node RabbitMQ cluster (:mod:`tests.cluster`), across
node kills: a robust consumer follows its connection to another node,
single-active-consumer hands over to the standby, consumer priorities hold
after recovery, a poison message ends in the dead-letter queue after the
delivery limit, and streams are read from every kind of offset and resumed
exactly (the single-node versions are in ``test_queue_types.py``).

Every test uses ``running_cluster`` (from conftest.py): the session's
cluster with its three nodes running at the start and at the end, so that
a test that kills a node leaves it started again.  Blocking cluster calls
run in a thread (``asyncio.to_thread``) so that the client keeps running.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import time
from collections.abc import AsyncIterator, Callable

import pytest

import aiorabbit
from aiorabbit import Properties
from aiorabbit.queues import StreamOffset, quorum_queue, stream_offset, stream_queue

from .cluster import Cluster, ClusterNode
from .test_cluster import QUORUM, TIMEOUT, channel_on, delete_queue, eventually, unique

# Extra broker nodes (tests/broker_node.py, tests/cluster.py): slow, as every such test.
pytestmark = [pytest.mark.extra_node, pytest.mark.slow]

FAST = aiorabbit.Backoff(initial=0.05, maximum=0.5)
GONE = (aiorabbit.ConnectionClosed, aiorabbit.ChannelClosed)


def node_of(cluster: Cluster, conn: aiorabbit.RobustConnection) -> ClusterNode:
    """The node a robust connection is connected to now."""
    inner = conn.connection
    assert inner is not None, "not connected"
    port = inner.params.port
    return next(node for node in cluster.nodes if node.amqp_port == port)


@contextlib.asynccontextmanager
async def robust(cluster: Cluster, label: str, urls: list[str] | None = None,
                 ) -> AsyncIterator[aiorabbit.RobustConnection]:
    """``connect_robust`` over the three nodes (``urls``: in that order), closed at the end."""
    conn = await aiorabbit.connect_robust(urls or cluster.urls, backoff=FAST, wait_timeout=TIMEOUT,
                                          name=unique(label))
    try:
        yield conn
    finally:
        with contextlib.suppress(Exception):
            await conn.close()


@contextlib.asynccontextmanager
async def plain(node: ClusterNode, label: str) -> AsyncIterator[aiorabbit.Connection]:
    """A plain connection to one node; closing it after its node died is no error."""
    conn = await aiorabbit.connect(node.url, name=unique(label))
    try:
        yield conn
    finally:
        with contextlib.suppress(Exception):
            await conn.close()


class Reconnects:
    """Counts a robust connection's recoveries."""

    def __init__(self, conn: aiorabbit.RobustConnection) -> None:
        self.times: list[float] = []
        conn.add_listener("reconnected", lambda _conn: self.times.append(time.monotonic()))

    async def wait(self, count: int = 1) -> None:
        await until(lambda: len(self.times) >= count, f"{count} reconnects")


async def until(check: Callable[[], object], what: str, timeout: float = TIMEOUT) -> None:
    """Wait until ``check()`` is true (polled every 0.2 s); fail after ``timeout``."""

    async def probe() -> object:
        return check()

    await eventually(probe, bool, what, timeout)


async def cleanup(cluster: Cluster, *queues: str) -> None:
    """Start the killed node again, then delete ``queues``: deleting a
    quorum queue or a stream while one of its members is down waits
    about 5 s for that member (``running_cluster`` would start the node
    at the end anyway)."""
    await asyncio.to_thread(cluster.ensure_running)
    await asyncio.gather(*(delete_queue(cluster, queue) for queue in queues))


async def publish(node: ClusterNode, queue: str, numbers: range) -> None:
    """Publish ``b"<n>"`` for every n, each confirmed, through ``node``."""
    async with channel_on(node, confirms=True) as ch:
        for n in numbers:
            await ch.basic_publish(b"%d" % n, routing_key=queue, properties=Properties(message_id=str(n)))


async def ready_count(node: ClusterNode, queue: str) -> int:
    async with channel_on(node) as ch:
        return (await ch.queue_declare(queue, passive=True)).message_count


# --------------------------------------------------------------------------
# quorum queues: consumers follow


async def test_a_robust_consumer_keeps_receiving_after_its_node_dies(running_cluster: Cluster) -> None:
    """Messages flow (a Publisher through another node) to a robust
    consumer; the node its connection is on, which also leads the queue
    (declared through it: RabbitMQ puts the leader on the declaring
    client's node), is killed while the consumer holds unacked deliveries.
    It goes on on another node; what it had not acked comes again, flagged
    redelivered; every message arrives."""
    cluster = running_cluster
    queue, total, prefetch = unique("follow"), 300, 20
    deliveries: list[tuple[int, bool]] = []  # (body, redelivered), in order
    held: list[int] = []  # handed out while holding: never acked
    hold = asyncio.Event()
    all_in = asyncio.Event()
    try:
        async with robust(cluster, "follower") as conn:
            here = node_of(cluster, conn)
            there = next(node for node in cluster.nodes if node is not here)
            async with channel_on(here) as ch:
                await ch.queue_declare(queue, durable=True, arguments=QUORUM)
            leader = await asyncio.to_thread(cluster.wait_for_leader, queue)
            conn.add_listener("disconnected", lambda *_: hold.clear())
            reconnects = Reconnects(conn)
            rch = await conn.channel()
            await rch.basic_qos(prefetch_count=prefetch)

            async def consuming() -> None:
                async with rch.consume(queue) as messages:
                    async for msg in messages:
                        n = int(msg.body)
                        deliveries.append((n, msg.redelivered))
                        if hold.is_set():
                            held.append(n)
                        else:
                            with contextlib.suppress(*GONE):  # lost with the node: comes again
                                await msg.ack()
                        if len({body for body, _ in deliveries}) == total:
                            all_in.set()

            async def publishing() -> aiorabbit.Publisher:
                async with plain(there, "publisher") as pconn:
                    async with aiorabbit.Publisher(pconn, window=20) as publisher:
                        for start in range(0, total, 10):
                            await asyncio.gather(*(
                                publisher.publish(b"%d" % n, routing_key=queue,
                                                  properties=Properties(message_id=str(n)))
                                for n in range(start, start + 10)))
                            await asyncio.sleep(0.03)
                return publisher

            consumer = asyncio.ensure_future(consuming())
            publisher = asyncio.ensure_future(publishing())
            try:
                await until(lambda: len(deliveries) >= 60, "deliveries flowing")
                hold.set()
                await until(lambda: len(held) >= prefetch, "unacked deliveries held")
                acked_before = len(deliveries) - len(held)
                killed_at = time.monotonic()
                await asyncio.to_thread(here.kill)
                await reconnects.wait()
                moved = time.monotonic() - killed_at
                assert node_of(cluster, conn) is not here
                stats = await asyncio.wait_for(publisher, TIMEOUT)
                await asyncio.wait_for(all_in.wait(), TIMEOUT)
            finally:
                consumer.cancel()
                publisher.cancel()
                await asyncio.gather(consumer, publisher, return_exceptions=True)
            assert len(reconnects.times) == 1
        print(f"\nconsumer on {here.nodename} (leader: {leader is here}) killed after "
              f"{acked_before} acked deliveries and {len(held)} held; "
              f"reconnected in {moved:.2f} s; {len(deliveries)} deliveries of {total} messages, "
              f"{sum(r for _, r in deliveries)} redelivered; the publisher (on {there.nodename}) "
              f"retried {stats.nacks_retried} nacks, renewed {stats.channels_renewed} channels")

        bodies = [n for n, _ in deliveries]
        assert set(bodies) == set(range(total)), "lost messages"
        assert len(held) == prefetch
        first_held = bodies.index(held[0])
        assert not any(r for _, r in deliveries[:first_held]), "redelivered before the kill"
        for n in held:  # not acked when the node died: delivered again, flagged
            again = [r for body, r in deliveries[first_held + len(held):] if body == n]
            assert again and all(again), (n, again)
        seen: set[int] = set()
        for n, redelivered in deliveries:  # every second delivery of a body is flagged
            assert n not in seen or redelivered, f"{n} delivered again without the redelivered flag"
            seen.add(n)
    finally:
        await cleanup(cluster, queue)


async def test_single_active_consumer_standby_takes_over(running_cluster: Cluster) -> None:
    """x-single-active-consumer on a quorum queue: two consumers, on two
    nodes; only the first one receives; its node, which also leads the
    queue, is killed; the standby gets the rest, the one message the first
    left unacked included."""
    cluster = running_cluster
    publisher_node, active_node, standby_node = cluster.nodes
    queue = unique("sac")
    try:
        async with channel_on(active_node) as ch:
            await ch.queue_declare(queue, durable=True,
                                   arguments={**QUORUM, "x-single-active-consumer": True})
        leader = await asyncio.to_thread(cluster.wait_for_leader, queue)
        async with plain(active_node, "active") as aconn, plain(standby_node, "standby") as sconn:
            ach, sch = await aconn.channel(), await sconn.channel()
            await ach.basic_qos(prefetch_count=10)
            await sch.basic_qos(prefetch_count=10)
            active = await ach.consume(queue).start()
            standby = await sch.consume(queue).start()  # registered second: waits

            await publish(publisher_node, queue, range(10))
            got = [await active.get(TIMEOUT) for _ in range(10)]
            assert [int(m.body) for m in got] == list(range(10))
            for msg in got[:-1]:
                await msg.ack()  # 9 stays unacked
            with pytest.raises(asyncio.TimeoutError):
                await standby.get(1.0)

            killed_at = time.monotonic()
            await asyncio.to_thread(active_node.kill)
            msg = await standby.get(TIMEOUT)  # the one left unacked, once a new leader took over
            took_over = time.monotonic() - killed_at
            taken = [(int(msg.body), msg.redelivered)]
            await msg.ack()
            await publish(publisher_node, queue, range(10, 20))
            for _ in range(10):
                msg = await standby.get(TIMEOUT)
                taken.append((int(msg.body), msg.redelivered))
                await msg.ack()
            with pytest.raises(asyncio.TimeoutError):
                await standby.get(0.5)
        print(f"\nactive consumer's node killed (leader: {leader is active_node}); "
              f"the standby's first delivery {took_over:.1f} s later; it took {taken}")
        assert sorted(n for n, _ in taken) == list(range(9, 20)), taken
        assert dict(taken)[9] is True and not any(r for n, r in taken if n != 9), taken
    finally:
        await cleanup(cluster, queue)


async def test_consumer_priorities_hold_after_recovery(running_cluster: Cluster) -> None:
    """Two robust consumers on one quorum queue, x-priority 10 and 1 (the
    low one registered first), each with room for every message: the high
    one gets them all, before and after the node their connection is on is
    killed and the connection recovered on another node (RabbitMQ 3.10
    quorum queues honour consumer priorities: rabbit_fifo reads
    x-priority from the consumer's arguments)."""
    cluster = running_cluster
    queue, batch = unique("priority"), 40
    got: dict[str, list[int]] = {"high": [], "low": []}
    try:
        async with robust(cluster, "priorities") as conn:
            here = node_of(cluster, conn)
            publisher_node = next(node for node in cluster.nodes if node is not here)
            async with channel_on(publisher_node) as ch:
                await ch.queue_declare(queue, durable=True, arguments=QUORUM)
            reconnects = Reconnects(conn)
            consumers: dict[str, aiorabbit.RobustConsumer] = {}
            for name, priority in (("low", 1), ("high", 10)):
                rch = await conn.channel()
                await rch.basic_qos(prefetch_count=2 * batch)
                consumers[name] = await rch.consume(queue, arguments={"x-priority": priority}).start()

            async def taking(name: str) -> None:
                async for msg in consumers[name]:
                    got[name].append(int(msg.body))
                    with contextlib.suppress(*GONE):
                        await msg.ack()

            tasks = [asyncio.ensure_future(taking(name)) for name in got]
            try:
                def total() -> int:
                    return len(set(got["high"]) | set(got["low"]))

                await publish(publisher_node, queue, range(batch))
                await until(lambda: total() == batch, "the first batch")
                before = {name: sorted(bodies) for name, bodies in got.items()}

                await asyncio.to_thread(here.kill)
                await reconnects.wait()
                assert node_of(cluster, conn) is not here
                await until(lambda: all(c.is_consuming for c in consumers.values()), "both consuming again")
                survivor = next(node for node in cluster.nodes if node is not here)
                await publish(survivor, queue, range(batch, 2 * batch))
                await until(lambda: total() == 2 * batch, "the second batch")
                after = {name: sorted(n for n in bodies if n >= batch) for name, bodies in got.items()}
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                for consumer in consumers.values():
                    with contextlib.suppress(Exception):
                        await consumer.cancel()
        print(f"\nbefore the kill: high {len(before['high'])}, low {len(before['low'])}; "
              f"after recovery: high {len(after['high'])}, low {len(after['low'])}")
        assert before == {"high": list(range(batch)), "low": []}
        assert after == {"high": list(range(batch, 2 * batch)), "low": []}
    finally:
        await cleanup(cluster, queue)


# --------------------------------------------------------------------------
# poison messages


async def test_a_poison_message_ends_in_the_dead_letter_queue_across_a_leader_kill(
    running_cluster: Cluster,
) -> None:
    """delivery_limit=2, at-least-once dead-lettering; the consumer always
    nacks with requeue; the work queue's leader is killed while the
    consumer holds the second delivery.  The message ends in the DLQ, with
    x-first-death-reason delivery_limit, exactly once."""
    cluster = running_cluster
    work, dead = unique("work"), unique("dead")
    try:
        async with channel_on(cluster.nodes[0]) as ch:
            await ch.queue_declare(dead, durable=True, arguments=QUORUM)
            await ch.queue_declare(work, durable=True, arguments=quorum_queue(
                delivery_limit=2, dead_letter_exchange="", dead_letter_routing_key=dead, at_least_once=True))
        leader = await asyncio.to_thread(cluster.wait_for_leader, work)
        followers = [node for node in cluster.nodes if node is not leader]
        # The consumer starts on a follower (the node to kill is the leader).
        urls = [node.url for node in followers] + [leader.url]
        async with robust(cluster, "poison", urls) as conn:
            assert node_of(cluster, conn) is followers[0]
            rch = await conn.channel()
            await rch.basic_qos(prefetch_count=10)
            counts = []
            async with rch.consume(work) as messages:
                await publish(followers[1], work, range(1))
                msg = await messages.get(TIMEOUT)
                counts.append((msg.delivery_count, msg.redelivered))
                await msg.nack(requeue=True)  # always fails
                msg = await messages.get(TIMEOUT)
                counts.append((msg.delivery_count, msg.redelivered))
                killed_at = time.monotonic()
                await asyncio.to_thread(leader.kill)
                new_leader = await asyncio.to_thread(cluster.wait_for_leader, work, not_on=leader)
                elected = time.monotonic() - killed_at
                await msg.nack(requeue=True)
                msg = await messages.get(TIMEOUT)
                counts.append((msg.delivery_count, msg.redelivered))
                await msg.nack(requeue=True)
                with pytest.raises(asyncio.TimeoutError):
                    await messages.get(1.0)  # no fourth delivery
            assert node_of(cluster, conn) is followers[0]  # its connection never moved
        print(f"\nleader {leader.nodename} killed holding the second delivery; "
              f"{new_leader.nodename} leads after {elected:.1f} s; deliveries {counts}")
        assert counts == [(0, False), (1, True), (2, True)]
        await eventually(lambda: ready_count(followers[1], dead), lambda n: n == 1, "dead-lettered")
        async with channel_on(followers[1]) as ch:
            got = await ch.basic_get(dead)
            assert got is not None and got.body == b"0"
            assert got.headers["x-first-death-reason"] == "delivery_limit"
            assert got.headers["x-first-death-queue"] == work
            await got.ack()
            await asyncio.sleep(0.5)
            assert await ch.basic_get(dead) is None  # exactly once
            assert (await ch.queue_declare(work, passive=True)).message_count == 0
    finally:
        await cleanup(cluster, work, dead)


# --------------------------------------------------------------------------
# streams


async def test_stream_offsets_through_a_replica(running_cluster: Cluster) -> None:
    """first, last, next, a numeric offset and a timestamp, read through a
    node that does not lead the stream."""
    cluster = running_cluster
    stream, total = unique("offsets"), 40
    try:
        async with channel_on(cluster.nodes[0]) as ch:
            await ch.queue_declare(stream, durable=True, arguments=stream_queue(max_age="1h"))
        leader = await asyncio.to_thread(cluster.wait_for_leader, stream)
        replica, other = [node for node in cluster.nodes if node is not leader]
        # One confirmed publish at a time: every message is a chunk of its
        # own.  The second half starts on a new second (AMQP timestamps
        # are whole seconds), so that it begins exactly at ``middle``.
        await publish(other, stream, range(total // 2))
        middle_s = int(time.time()) + 1
        await asyncio.sleep(middle_s - time.time() + 0.05)
        middle = datetime.datetime.fromtimestamp(middle_s, datetime.timezone.utc)
        await publish(other, stream, range(total // 2, total))

        async with plain(replica, "reader") as conn:
            reader = await conn.channel()
            await reader.basic_qos(prefetch_count=10)

            async def read(offset: StreamOffset, count: int,
                           then: range | None = None) -> list[tuple[int, int | None]]:
                got = []
                async with reader.consume(stream, arguments=stream_offset(offset)) as messages:
                    if then is not None:
                        await asyncio.sleep(0.3)  # registered: publish what comes next
                        await publish(other, stream, then)
                    for _ in range(count):
                        msg = await messages.get(TIMEOUT)
                        got.append((int(msg.body), msg.stream_offset))
                        await msg.ack()
                    with pytest.raises(asyncio.TimeoutError):
                        await messages.get(0.3)  # nothing beyond
                return got

            assert await read("first", total) == [(n, n) for n in range(total)]
            assert await read("last", 1) == [(total - 1, total - 1)]
            assert await read(17, total - 17) == [(n, n) for n in range(17, total)]
            assert await read(middle, total // 2) == [(n, n) for n in range(total // 2, total)]
            nexts = await read("next", 2, then=range(total, total + 2))
            assert nexts == [(total, total), (total + 1, total + 1)]
            assert conn.is_open and reader.is_open
    finally:
        await cleanup(cluster, stream)


async def test_a_robust_stream_consumer_resumes_on_another_node(running_cluster: Cluster) -> None:
    """A robust stream consumer reading from "first" with acks; the node its
    connection is on (a replica) is killed mid-stream while more is
    published; it resumes on another node after its last handed-out
    offset: bodies 0..N-1 exactly, no gap, no duplicate."""
    cluster = running_cluster
    stream, total = unique("resume"), 60
    try:
        async with channel_on(cluster.nodes[0]) as ch:
            await ch.queue_declare(stream, durable=True, arguments=stream_queue())
        leader = await asyncio.to_thread(cluster.wait_for_leader, stream)
        replica, other = [node for node in cluster.nodes if node is not leader]
        await publish(leader, stream, range(30))
        urls = [replica.url, other.url, leader.url]
        seen: list[int] = []
        offsets: list[int | None] = []
        async with robust(cluster, "stream-reader", urls) as conn:
            assert node_of(cluster, conn) is replica
            reconnects = Reconnects(conn)
            rch = await conn.channel()
            await rch.basic_qos(prefetch_count=10)
            async with rch.consume(stream, arguments=stream_offset("first")) as messages:
                while len(seen) < 15:
                    msg = await messages.get(TIMEOUT)
                    seen.append(int(msg.body))
                    offsets.append(msg.stream_offset)
                    await msg.ack()
                await asyncio.sleep(0.2)  # more deliveries wait in the buffer, and die with the node
                buffered = messages.buffered
                await asyncio.to_thread(replica.kill)
                await reconnects.wait()
                resumed_on = node_of(cluster, conn)
                assert resumed_on is not replica
                await publish(leader, stream, range(30, total))
                while len(seen) < total:
                    msg = await messages.get(TIMEOUT)
                    seen.append(int(msg.body))
                    offsets.append(msg.stream_offset)
                    with contextlib.suppress(*GONE):
                        await msg.ack()
                with pytest.raises(asyncio.TimeoutError):
                    await messages.get(0.5)
        print(f"\nstream reader on {replica.nodename} killed after offset 14 with {buffered} buffered; "
              f"resumed on {resumed_on.nodename}")
        assert seen == list(range(total))
        assert offsets == list(range(total))
    finally:
        await cleanup(cluster, stream)
