"""``connection.blocked`` / ``connection.unblocked`` against a node of our own.

A memory alarm is raised on an extra node (:mod:`tests.broker_node`; the
shared broker is never reconfigured) by setting a tiny
``vm_memory_high_watermark``, and cleared again by restoring the default
(0.4).  RabbitMQ 3.x does not block a connection as soon as the alarm goes
off: the connection becomes "blocking", and only when it next publishes
does the broker send ``connection.blocked`` (reason ``"low on memory"``)
and stop reading from its socket.  So every test publishes (without
confirms) until the blocked notification arrives.

While the broker reads nothing, a ``connection.close`` sent by the client
is never answered either: a client-side close can only finish when
``connection_timeout`` runs out, which is why the close tests connect with
a short one.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import pytest

import aiorabbit
from aiorabbit import Channel, Connection, ConnectionClosed, ConnectionForced

from .broker_node import BrokerNode, broker_node  # noqa: F401  (module-scoped fixture)

pytestmark = [pytest.mark.slow, pytest.mark.extra_node]  # extra broker nodes: tests/broker_node.py

LOW_WATERMARK = "0.0000001"  # of the machine's memory: the alarm goes off at once
DEFAULT_WATERMARK = "0.4"  # RabbitMQ's default
TIMEOUT = 10.0  # for anything that should happen promptly
PENDING_FOR = 1.0  # how long a blocked call must stay pending
CLOSE_TIMEOUT = 1.5  # connection_timeout of the connections closed while blocked


class MemoryAlarm:
    """Raises and clears the node's memory alarm (``rabbitmqctl`` runs in a
    thread so that the event loop keeps reading frames meanwhile)."""

    def __init__(self, node: BrokerNode) -> None:
        self.node = node
        self.raised = False

    async def raise_alarm(self) -> None:
        self.raised = True
        await asyncio.to_thread(self.node.ctl, "set_vm_memory_high_watermark", LOW_WATERMARK)

    async def clear(self) -> None:
        await asyncio.to_thread(self.node.ctl, "set_vm_memory_high_watermark", DEFAULT_WATERMARK)
        self.raised = False


@pytest.fixture
async def memory_alarm(broker_node: BrokerNode) -> AsyncIterator[MemoryAlarm]:  # noqa: F811
    alarm = MemoryAlarm(broker_node)
    try:
        yield alarm
    finally:
        # Whatever happened, later tests on the node must not find it blocked.
        if alarm.raised:
            await alarm.clear()


class BlockedCalls:
    """A blocked callback recording ``(connection, reason)`` calls."""

    def __init__(self, conn: Connection) -> None:
        self.calls: list[tuple[Connection, str | None]] = []
        self.blocked = asyncio.Event()
        self.unblocked = asyncio.Event()
        conn.add_blocked_callback(self)

    def __call__(self, conn: Connection, reason: str | None) -> None:
        self.calls.append((conn, reason))
        (self.unblocked if reason is None else self.blocked).set()


async def publish_until_blocked(ch: Channel, routing_key: str, calls: BlockedCalls) -> list[bytes]:
    """Publish one message at a time until the broker says it blocks us;
    return the bodies published (they all reach the broker eventually)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    sent: list[bytes] = []
    while not calls.blocked.is_set():
        if loop.time() > deadline:
            pytest.fail(f"no connection.blocked after {len(sent)} publishes in {TIMEOUT}s")
        body = f"before-block-{len(sent)}".encode()
        # Not blocked yet, no confirms: returns without waiting for the broker.
        await asyncio.wait_for(ch.basic_publish(body, routing_key=routing_key), TIMEOUT)
        sent.append(body)
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(calls.blocked.wait(), 0.2)
    return sent


async def get_all(ch: Channel, queue: str, count: int) -> list[bytes]:
    """The bodies of ``count`` messages from ``queue`` (waiting for stragglers),
    then check that nothing else is there."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    bodies: list[bytes] = []
    while len(bodies) < count and loop.time() < deadline:
        msg = await ch.basic_get(queue, no_ack=True)
        if msg is None:
            await asyncio.sleep(0.05)
        else:
            bodies.append(msg.body)
    assert await ch.basic_get(queue, no_ack=True) is None
    return bodies


def unique(label: str) -> str:
    return f"test_blocked.{label}.{uuid.uuid4().hex[:8]}"


async def test_blocked_publisher_waits_and_nothing_is_lost(
    memory_alarm: MemoryAlarm,
) -> None:
    node = memory_alarm.node
    async with (
        aiorabbit.connect(node.url, name=unique("publisher")) as conn,
        aiorabbit.connect(node.url, name=unique("observer")) as observer,
    ):
        calls = BlockedCalls(conn)
        queue = unique("q")
        obs = await observer.channel()
        await obs.queue_declare(queue)
        ch = await conn.channel()
        assert not conn.is_blocked
        assert conn.blocked_reason is None
        await asyncio.wait_for(conn.wait_unblocked(), 1)  # not blocked: returns at once

        await memory_alarm.raise_alarm()
        sent = await publish_until_blocked(ch, queue, calls)

        assert len(calls.calls) == 1
        who, reason = calls.calls[0]
        assert who is conn
        assert reason is not None
        assert "memory" in reason  # RabbitMQ 3.10 says "low on memory"
        assert conn.is_blocked
        assert conn.blocked_reason == reason
        assert conn.is_open  # blocked is not closed

        held = asyncio.ensure_future(ch.basic_publish(b"while-blocked", routing_key=queue))
        waiter = asyncio.ensure_future(conn.wait_unblocked())
        done, _ = await asyncio.wait({held, waiter}, timeout=PENDING_FOR)
        assert not done, "basic_publish / wait_unblocked returned while the broker blocks us"
        # The held message did not go out (a connection that does not
        # publish is not blocked: the observer can still ask).
        declared = await asyncio.wait_for(obs.queue_declare(queue, passive=True), TIMEOUT)
        assert declared.message_count <= len(sent)

        await memory_alarm.clear()
        await asyncio.wait_for(calls.unblocked.wait(), TIMEOUT)
        assert calls.calls[1:] == [(conn, None)]
        assert not conn.is_blocked
        assert conn.blocked_reason is None
        await asyncio.wait_for(waiter, TIMEOUT)
        await asyncio.wait_for(held, TIMEOUT)
        await asyncio.wait_for(ch.basic_publish(b"after-unblock", routing_key=queue), TIMEOUT)

        expected = [*sent, b"while-blocked", b"after-unblock"]
        assert await get_all(obs, queue, len(expected)) == expected
        assert conn.is_open
        assert len(calls.calls) == 2
        await obs.queue_delete(queue)


async def test_client_close_while_blocked_fails_waiting_publisher(
    memory_alarm: MemoryAlarm,
) -> None:
    node = memory_alarm.node
    conn = await aiorabbit.connect(node.url, name=unique("client-close"), connection_timeout=CLOSE_TIMEOUT)
    try:
        calls = BlockedCalls(conn)
        ch = await conn.channel()
        # Unroutable (no such queue): nothing is left behind on the node.
        routing_key = unique("nowhere")
        await memory_alarm.raise_alarm()
        await publish_until_blocked(ch, routing_key, calls)
        held = asyncio.ensure_future(ch.basic_publish(b"while-blocked", routing_key=routing_key))
        waiter = asyncio.ensure_future(conn.wait_unblocked())
        await asyncio.sleep(0.3)
        assert not held.done()
        assert not waiter.done()

        # The blocked broker never answers connection.close: close() gives up
        # after connection_timeout, and the waiters fail instead of hanging.
        await asyncio.wait_for(conn.close(), CLOSE_TIMEOUT + 3)
        assert conn.is_closed
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(held, 1)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(waiter, 1)
        with pytest.raises(ConnectionClosed):
            await ch.basic_publish(b"after-close", routing_key=routing_key)
    finally:
        if conn._transport is not None:
            conn._transport.abort()


async def test_broker_close_while_blocked_fails_waiting_publisher(
    memory_alarm: MemoryAlarm,
) -> None:
    node = memory_alarm.node
    name = unique("broker-close")
    async with aiorabbit.connect(node.url, name=name) as conn:
        calls = BlockedCalls(conn)
        ch = await conn.channel()
        routing_key = unique("nowhere")
        await memory_alarm.raise_alarm()
        await publish_until_blocked(ch, routing_key, calls)
        held = asyncio.ensure_future(ch.basic_publish(b"while-blocked", routing_key=routing_key))
        waiter = asyncio.ensure_future(conn.wait_unblocked())
        # (3.10 has no user_provided_name column; the JSON formatter mangles pids.)
        listing = await asyncio.to_thread(
            node.ctl, "list_connections", "pid", "client_properties", "-q", "--no-table-headers"
        )
        pids = [
            line.split("\t", 1)[0]
            for line in listing.splitlines()
            if f'{{"connection_name","{name}"}}' in line
        ]
        assert len(pids) == 1, listing
        assert not held.done()

        await asyncio.to_thread(node.ctl, "close_connection", pids[0], "blocked test says bye")
        with pytest.raises(ConnectionForced, match="blocked test says bye"):
            await asyncio.wait_for(held, TIMEOUT)
        with pytest.raises(ConnectionForced):
            await asyncio.wait_for(waiter, 1)
        assert conn.is_closed
        assert not conn.is_open


async def test_close_while_blocked_with_unsent_data_returns(
    memory_alarm: MemoryAlarm,
) -> None:
    node = memory_alarm.node
    conn = await aiorabbit.connect(node.url, name=unique("close-unsent"), connection_timeout=CLOSE_TIMEOUT)
    calls = BlockedCalls(conn)
    ch = await conn.channel()
    routing_key = unique("nowhere")
    body = b"x" * 1_000_000

    async def flood() -> None:
        for _ in range(32):
            await ch.basic_publish(body, routing_key=routing_key)

    publisher: asyncio.Future[None] | None = None
    closing: asyncio.Future[None] | None = None
    try:
        await memory_alarm.raise_alarm()
        await asyncio.sleep(0.2)  # let the alarm reach the connection
        # More than the socket buffers hold: the broker blocks after reading
        # the first message, so the rest stays in the transport's buffer.
        publisher = asyncio.ensure_future(flood())
        await asyncio.wait_for(calls.blocked.wait(), TIMEOUT)
        await asyncio.sleep(0.5)
        assert not publisher.done()

        closing = asyncio.ensure_future(conn.close())
        done, _ = await asyncio.wait({closing}, timeout=CLOSE_TIMEOUT + 2)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(publisher, 1)
        assert done, "close() hangs while the broker blocks and data waits to be written"
    finally:
        if conn._transport is not None:
            conn._transport.abort()
        leftovers = {task for task in (publisher, closing) if task is not None}
        if leftovers:
            await asyncio.wait(leftovers, timeout=2)
        with contextlib.suppress(asyncio.TimeoutError, ConnectionClosed):
            await asyncio.wait_for(conn.close(), 2)
