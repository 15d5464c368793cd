"""aiorabbit on a three-node RabbitMQ cluster (:mod:`tests.cluster`).

The module's ``cluster`` fixture forms the cluster once (about 20 s here);
each test then takes a few seconds.  A test that stops or kills a node
starts it again before it ends, and every test first makes sure the three
nodes run (``_all_running``), so that the tests run alone or in any order.

The blocking cluster calls (kill, start, ``rabbitmqctl``) run in a thread
(``asyncio.to_thread``) so that the event loop keeps serving the client.

The long run, rounds of leader kills and restarts under a publisher that
keeps going through ``connect_robust`` over the three nodes, sits behind a
flag::

    AIORABBIT_CLUSTER_LONG=1 AIORABBIT_TEST_HANG_AFTER=900 \\
        .venv/bin/pytest -p no:cacheprovider tests/test_cluster.py -k long

``AIORABBIT_CLUSTER_ROUNDS`` sets the number of rounds (default 8); the
suite's hang guard (``AIORABBIT_TEST_HANG_AFTER``, 100 s by default) must
leave it room, which the test checks first.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import TypeVar

import pytest

import aiorabbit
from aiorabbit import Properties

from . import conftest
from .cluster import Cluster, ClusterNode  # the ``cluster`` fixture comes from conftest.py

# Extra broker nodes (tests/broker_node.py, tests/cluster.py): slow, as every such test.
pytestmark = [pytest.mark.extra_node, pytest.mark.slow]

T = TypeVar("T")

QUORUM = {"x-queue-type": "quorum"}
TIMEOUT = 30.0  # for anything that should happen (an election takes a few seconds here)
LONG = os.environ.get("AIORABBIT_CLUSTER_LONG", "") not in ("", "0")
ROUNDS = int(os.environ.get("AIORABBIT_CLUSTER_ROUNDS") or "8")


def unique(label: str) -> str:
    return f"test_cluster.{label}.{uuid.uuid4().hex[:8]}"


@pytest.fixture(autouse=True)
def _all_running(cluster: Cluster) -> Iterator[None]:
    """All three nodes of the module's cluster run at the start and at the
    end of every test."""
    cluster.ensure_running()
    try:
        yield
    finally:
        cluster.ensure_running()


@contextlib.asynccontextmanager
async def channel_on(node: ClusterNode, *, confirms: bool = False) -> AsyncIterator[aiorabbit.Channel]:
    """A channel on a plain connection to one node, closed at the end."""
    async with aiorabbit.connect(node.url, name=unique(f"node{node.index}")) as conn:
        async with conn.channel(publisher_confirms=confirms) as ch:
            yield ch


async def eventually(probe: Callable[[], Awaitable[T]], ok: Callable[[T], bool], what: str,
                     timeout: float = TIMEOUT) -> T:
    """Call ``probe`` until ``ok(result)``; fail after ``timeout`` with the last result."""
    deadline = time.monotonic() + timeout
    while True:
        result = await probe()
        if ok(result):
            return result
        if time.monotonic() >= deadline:
            pytest.fail(f"{what}: still {result!r} after {timeout:.0f}s")
        await asyncio.sleep(0.2)


async def count_on(node: ClusterNode, queue: str) -> int:
    """The queue's ready messages as ``queue.declare(passive)`` through ``node`` reports them."""
    async with channel_on(node) as ch:
        return (await ch.queue_declare(queue, passive=True)).message_count


async def publish(node: ClusterNode, queue: str, bodies: list[bytes]) -> None:
    """Publish with confirms through ``node``: returns once the broker confirmed every one."""
    async with channel_on(node, confirms=True) as ch:
        for body in bodies:
            props = Properties(message_id=body.decode(), delivery_mode=aiorabbit.DeliveryMode.PERSISTENT)
            await ch.basic_publish(body, routing_key=queue, properties=props)


async def get_all(node: ClusterNode, queue: str) -> list[bytes]:
    """Every message of ``queue`` through ``node`` with basic.get, acked."""
    bodies = []
    async with channel_on(node) as ch:
        while (msg := await ch.basic_get(queue)) is not None:
            bodies.append(msg.body)
            await msg.ack()
    return bodies


async def delete_queue(cluster: Cluster, queue: str) -> None:
    with contextlib.suppress(aiorabbit.AMQPError):
        async with channel_on(cluster.running()[0]) as ch:
            await ch.queue_delete(queue)


# --------------------------------------------------------------------------
# the cluster itself


async def test_three_nodes_form_one_cluster(cluster: Cluster) -> None:
    timings = ", ".join(f"{step} {seconds:.1f} s" for step, seconds in cluster.timings.items())
    print(f"\ncluster formed: {timings}")
    assert len(set(cluster.urls)) == 3
    assert await asyncio.to_thread(cluster.running_nodes) == cluster.nodes
    statuses = await asyncio.gather(*(asyncio.to_thread(node.cluster_status) for node in cluster.nodes))
    names = set(cluster.names)
    for node, status in zip(cluster.nodes, statuses, strict=True):
        assert set(status["running_nodes"]) == names, node
        assert set(status["disk_nodes"]) == names, node
    # (No check of "cluster_name": until someone sets one, every node
    # reports a default made of its own name.)
    # Every node takes AMQP clients, and a queue declared on one is seen by all.
    queue = unique("seen-by-all")
    try:
        async with channel_on(cluster.nodes[0]) as ch:
            await ch.queue_declare(queue, durable=True, arguments=QUORUM)
        for node in cluster.nodes:
            assert await count_on(node, queue) == 0
        info = await asyncio.to_thread(cluster.queue_info, queue)
        assert info["type"] == "quorum"
        assert set(info["members"]) == names
    finally:
        await delete_queue(cluster, queue)


async def test_quorum_queue_through_three_nodes(cluster: Cluster) -> None:
    """Declared through node 1, published (confirmed) through node 2,
    counted and consumed through node 3."""
    first, second, third = cluster.nodes
    queue = unique("across")
    bodies = [f"{queue}:{i}".encode() for i in range(20)]
    try:
        async with channel_on(first) as ch:
            ok = await ch.queue_declare(queue, durable=True, arguments=QUORUM)
            assert (ok.queue, ok.message_count) == (queue, 0)
        await publish(second, queue, bodies)
        await eventually(lambda: count_on(third, queue), lambda n: n == len(bodies), "count through node 3")
        assert await get_all(third, queue) == bodies  # all of them, in order
        await eventually(lambda: count_on(first, queue), lambda n: n == 0, "count through node 1")
    finally:
        await delete_queue(cluster, queue)


async def test_leader_of_a_quorum_queue_and_a_stream(cluster: Cluster) -> None:
    quorum, stream = unique("leader-q"), unique("leader-s")
    try:
        async with channel_on(cluster.nodes[1]) as ch:
            await ch.queue_declare(quorum, durable=True, arguments=QUORUM)
            await ch.queue_declare(stream, durable=True, arguments={"x-queue-type": "stream"})
        for queue in (quorum, stream):
            leader = await asyncio.to_thread(cluster.wait_for_leader, queue)
            assert leader in cluster.nodes
            info = await asyncio.to_thread(cluster.queue_info, queue)
            assert set(info["members"]) == set(cluster.names), info
    finally:
        await delete_queue(cluster, quorum)
        await delete_queue(cluster, stream)


# --------------------------------------------------------------------------
# failures


async def test_killing_the_leader_moves_leadership_and_keeps_messages(cluster: Cluster) -> None:
    queue = unique("failover")
    bodies = [f"{queue}:{i}".encode() for i in range(50)]
    try:
        async with channel_on(cluster.nodes[0]) as ch:
            await ch.queue_declare(queue, durable=True, arguments=QUORUM)
        leader = await asyncio.to_thread(cluster.wait_for_leader, queue)
        # Published through a follower: that connection survives the kill.
        follower = next(node for node in cluster.nodes if node is not leader)
        await publish(follower, queue, bodies)

        killed_at = time.monotonic()
        await asyncio.to_thread(leader.kill)
        new_leader = await asyncio.to_thread(cluster.wait_for_leader, queue, not_on=leader)
        elected = time.monotonic() - killed_at
        assert new_leader is not leader and new_leader.is_running
        assert await asyncio.to_thread(cluster.leader_of, queue) is new_leader
        print(f"\nleader {leader.nodename} killed; {new_leader.nodename} leads after {elected:.1f} s")

        survivors = [node for node in cluster.nodes if node is not leader]
        for node in survivors:
            await eventually(functools.partial(count_on, node, queue), lambda n: n == len(bodies),
                             f"count through {node!r}")
        assert await get_all(survivors[-1], queue) == bodies
        # The queue takes new work with one member down (two of three are a majority).
        await publish(survivors[0], queue, [b"after the kill"])
        assert await get_all(survivors[1], queue) == [b"after the kill"]
    finally:
        await asyncio.to_thread(cluster.ensure_running)
        await delete_queue(cluster, queue)


async def test_killed_first_node_restarts_and_rejoins(cluster: Cluster) -> None:
    """The first node (the one the others joined) is killed, work goes on
    without it, and it comes back as a member that serves that work."""
    first = cluster.nodes[0]
    queue = unique("rejoin")
    try:
        async with channel_on(cluster.nodes[1]) as ch:
            await ch.queue_declare(queue, durable=True, arguments=QUORUM)
        await asyncio.to_thread(first.kill)
        assert not first.is_running
        assert await asyncio.to_thread(cluster.running_nodes) == cluster.nodes[1:]
        await publish(cluster.nodes[2], queue, [b"while node 1 was down"])

        await asyncio.to_thread(first.start)
        assert first.last_start_seconds is not None
        print(f"\n{first.nodename} restarted and rejoined in {first.last_start_seconds:.1f} s")
        assert await asyncio.to_thread(cluster.running_nodes) == cluster.nodes
        status = await asyncio.to_thread(first.cluster_status)
        assert set(status["running_nodes"]) == set(cluster.names)
        info = await eventually(lambda: asyncio.to_thread(cluster.queue_info, queue),
                                lambda row: set(row["online"]) == set(cluster.names), "members online")
        assert first.nodename in info["members"]
        # The message published while it was down, counted and taken through it.
        await eventually(lambda: count_on(first, queue), lambda n: n == 1, "count through node 1")
        assert await get_all(first, queue) == [b"while node 1 was down"]
    finally:
        await asyncio.to_thread(cluster.ensure_running)
        await delete_queue(cluster, queue)


async def test_stopped_node_starts_again(cluster: Cluster) -> None:
    """A graceful stop (``rabbitmqctl stop``) and a start, of the last node."""
    last = cluster.nodes[-1]
    await asyncio.to_thread(last.stop)
    assert await asyncio.to_thread(cluster.running_nodes) == cluster.nodes[:-1]
    await asyncio.to_thread(last.start)
    assert await asyncio.to_thread(cluster.running_nodes) == cluster.nodes
    async with channel_on(last) as ch:
        ok = await ch.queue_declare("", exclusive=True)
        assert ok.queue


# --------------------------------------------------------------------------
# the long run, behind AIORABBIT_CLUSTER_LONG=1


@pytest.mark.slow
@pytest.mark.skipif(not LONG, reason="the long cluster run: set AIORABBIT_CLUSTER_LONG=1")
@pytest.mark.timeout(ROUNDS * 90 + 180)
async def test_long_leader_kills_under_a_robust_publisher(cluster: Cluster) -> None:
    """``ROUNDS`` times: kill (odd rounds: stop) the queue's leader while a
    Publisher on ``connect_robust`` over the three nodes keeps publishing,
    wait for the new leader, start the node again.  Then every confirmed
    message must be in the queue (duplicates allowed: at least once)."""
    needed = ROUNDS * 60 + 120
    if conftest.HANG_AFTER < needed:
        pytest.fail(f"the long run needs AIORABBIT_TEST_HANG_AFTER >= {needed} "
                    f"(it is {conftest.HANG_AFTER:g})")
    queue = unique("long")
    confirmed: set[int] = set()
    stop = asyncio.Event()
    hosts = ",".join(url.split("@", 1)[1].split("/", 1)[0] for url in cluster.urls)
    comma_url = f"amqp://guest:guest@{hosts}/%2F"

    async def publishing() -> aiorabbit.Publisher:
        backoff = aiorabbit.Backoff(initial=0.1, maximum=1.0)
        conn = await aiorabbit.connect_robust(comma_url, backoff=backoff, wait_timeout=120,
                                              name=unique("long-publisher"))
        try:
            ch = await conn.channel()
            await ch.queue_declare(queue, durable=True, arguments=QUORUM)
            async with aiorabbit.Publisher(conn, window=200) as publisher:

                async def one(i: int) -> None:
                    await publisher.publish(b"%d" % i, routing_key=queue,
                                            properties=Properties(message_id=str(i)))
                    confirmed.add(i)

                i = 0
                while not stop.is_set():
                    await asyncio.gather(*(one(n) for n in range(i, i + 100)))
                    i += 100
                    await asyncio.sleep(0.05)
            return publisher
        finally:
            await conn.close()

    async def confirmed_count() -> int:
        if task.done():
            task.result()  # raises what ended the publisher
            pytest.fail("the publisher stopped before it was told to")
        return len(confirmed)

    async def drain() -> set[int]:
        seen: set[int] = set()
        async with channel_on(cluster.nodes[0]) as ch:
            await ch.basic_qos(prefetch_count=500)
            async with ch.consume(queue) as messages:
                async for msg in messages:
                    seen.add(int(msg.body))
                    await msg.ack()
                    if confirmed <= seen:
                        break
        return seen

    task = asyncio.ensure_future(publishing())
    elections: list[float] = []
    restarts: list[float] = []
    try:
        await eventually(confirmed_count, lambda n: n > 0, "first confirms", 60)
        for round_ in range(ROUNDS):
            leader = await asyncio.to_thread(cluster.wait_for_leader, queue)
            before = len(confirmed)
            began = time.monotonic()
            await asyncio.to_thread(leader.stop if round_ % 2 else leader.kill)
            await asyncio.to_thread(cluster.wait_for_leader, queue, not_on=leader)
            elections.append(time.monotonic() - began)
            await eventually(confirmed_count, lambda n: n > before + 100,  # noqa: B023 (awaited here)
                             f"confirms after losing {leader!r}")
            await asyncio.to_thread(leader.start)
            assert leader.last_start_seconds is not None
            restarts.append(leader.last_start_seconds)
        stop.set()
        publisher = await asyncio.wait_for(task, 120)
        print(f"\n{ROUNDS} rounds: {len(confirmed)} confirmed, {publisher.republished} republished; "
              f"a new leader within {max(elections):.1f} s of the kill or stop at most, "
              f"restart and rejoin {max(restarts):.1f} s at most")
        seen = await asyncio.wait_for(drain(), 120)
        assert not confirmed - seen, f"lost {len(confirmed - seen)} of {len(confirmed)} confirmed messages"
    finally:
        stop.set()
        if not task.done():
            task.cancel()
        with contextlib.suppress(Exception, asyncio.CancelledError):
            await asyncio.wait_for(task, 30)
        await asyncio.to_thread(cluster.ensure_running)
        await delete_queue(cluster, queue)
