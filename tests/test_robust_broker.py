"""``connect_robust`` against real broker restarts, crashes and failover.

Every test runs on extra nodes of our own (:mod:`tests.broker_node`); the
shared broker on 127.0.0.1:5672 is never touched.  One node (the module's
``broker_node``) serves most tests, a second one (``second_node``) is started
for endpoint failover and for the "recovery gives up" test.  A test that
stops a node starts it again before it ends (``finally``), and every test
first makes sure the nodes it uses are running, so that they can run alone
or in any order.

``BrokerNode.stop()`` / ``start()`` / ``restart()`` block for seconds: they
run in a thread (``asyncio.to_thread``) so that the event loop keeps
serving the client meanwhile, as a real application's would.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import aiorabbit
from aiorabbit import IncomingMessage, Properties

from .broker_node import BrokerNode, broker_node, unavailable_reason  # noqa: F401  (module fixture)

pytestmark = [pytest.mark.slow, pytest.mark.extra_node]  # extra broker nodes: tests/broker_node.py

BACKOFF = aiorabbit.Backoff(initial=0.1, maximum=1.0)
TIMEOUT = 30.0  # for anything that should happen (a restart takes 5-15 s here)
EVENTS = ("disconnected", "reconnected", "recovery_failed", "recovery_error", "consumer_cancelled")


def unique(label: str) -> str:
    return f"test_robust_broker.{label}.{uuid.uuid4().hex[:8]}"


def ensure_running(node: BrokerNode) -> None:
    """Start ``node`` if an earlier test left it stopped (or failed midway)."""
    if not node.is_running:
        node.start()


@pytest.fixture(scope="module")
def second_node() -> Iterator[BrokerNode]:
    """Another extra node (not clustered with ``broker_node``)."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(f"cannot start an extra RabbitMQ node: {reason}")
    with BrokerNode() as node:
        yield node


@pytest.fixture
def node(broker_node: BrokerNode) -> Iterator[BrokerNode]:  # noqa: F811
    """The module's node, running at the start and at the end of the test."""
    ensure_running(broker_node)
    try:
        yield broker_node
    finally:
        ensure_running(broker_node)


class Events:
    """Records every ``RobustConnection`` event with its arguments."""

    def __init__(self, conn: aiorabbit.RobustConnection) -> None:
        self.calls: dict[str, list[tuple[Any, ...]]] = {event: [] for event in EVENTS}
        self._changed = asyncio.Event()
        for event in EVENTS:
            conn.add_listener(event, functools.partial(self._on, event, conn))

    def _on(self, event: str, expected: aiorabbit.RobustConnection, conn: Any, *args: Any) -> None:
        assert conn is expected
        self.calls[event].append(args)
        self._changed.set()

    async def wait(self, event: str, count: int = 1, timeout: float = TIMEOUT) -> list[tuple[Any, ...]]:
        """Wait until ``event`` happened at least ``count`` times."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(self.calls[event]) < count:
            self._changed.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                pytest.fail(f"no {event!r} event within {timeout}s; events so far: {self.calls}")
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)
        return self.calls[event]


async def pump(consumer: aiorabbit.RobustConsumer, inbox: asyncio.Queue[IncomingMessage]) -> None:
    """What an application does: ``async for`` over the consumer, nothing
    about recovery.  Every message goes to ``inbox``."""
    async with consumer as messages:
        async for msg in messages:
            inbox.put_nowait(msg)


async def next_msg(inbox: asyncio.Queue[IncomingMessage], task: asyncio.Task[None]) -> IncomingMessage:
    """The next message from ``inbox``; fail at once if the consumer died."""
    getter = asyncio.ensure_future(inbox.get())
    done, _ = await asyncio.wait({getter, task}, timeout=TIMEOUT, return_when=asyncio.FIRST_COMPLETED)
    if getter in done:
        return getter.result()
    getter.cancel()
    if task in done:
        task.result()  # raises what ended the async for
        pytest.fail("the consumer's async for ended")
    pytest.fail(f"no message within {TIMEOUT}s")


async def stop_task(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, aiorabbit.AMQPError):
        await asyncio.wait_for(task, 10)


@contextlib.asynccontextmanager
async def plain(url: str) -> AsyncIterator[aiorabbit.Connection]:
    """A plain (non-robust) connection, to look at a node from outside."""
    async with aiorabbit.connect(url, name=unique("observer")) as conn:
        yield conn


async def passive_declare(url: str, queue: str) -> aiorabbit.DeclareOk:
    async with plain(url) as conn:
        ch = await conn.channel()
        return await ch.queue_declare(queue, passive=True)


# --------------------------------------------------------------------------
# 1. restart with durable topology and persistent messages


async def test_restart_keeps_consuming_durable_persistent_messages(node: BrokerNode) -> None:
    total = 100
    exchange, queue, key = unique("durable-x"), unique("durable-q"), "jobs"
    conn = await aiorabbit.connect_robust(node.url, backoff=BACKOFF, wait_timeout=TIMEOUT)
    try:
        events = Events(conn)
        pub = await conn.channel(publisher_confirms=True)
        await pub.exchange_declare(exchange, "direct", durable=True)
        await pub.queue_declare(queue, durable=True)
        await pub.queue_bind(queue, exchange, key)
        persistent = Properties(delivery_mode=2)
        for i in range(total):
            # Confirmed: each one is on disk before the restart.
            await pub.basic_publish(
                str(i).encode(), exchange=exchange, routing_key=key, properties=persistent
            )

        ch = await conn.channel()
        await ch.basic_qos(prefetch_count=10)
        inbox: asyncio.Queue[IncomingMessage] = asyncio.Queue()
        consumer = ch.consume(queue)
        task = asyncio.ensure_future(pump(consumer, inbox))

        # Before the restart: 25 messages, every fifth one left unacked (at
        # most 5 unacked, under the prefetch of 10, so deliveries go on).
        held: dict[int, IncomingMessage] = {}
        seen: dict[int, list[bool]] = {}  # id -> redelivered flag of each copy
        for _ in range(25):
            msg = await next_msg(inbox, task)
            ident = int(msg.body)
            seen.setdefault(ident, []).append(msg.redelivered)
            if ident % 5 == 4:
                held[ident] = msg
            else:
                await msg.ack()
        assert sorted(seen) == list(range(25))
        assert not any(flag for flags in seen.values() for flag in flags)
        old_inner, old_conn = ch.channel, conn.connection
        assert old_inner is not None and old_conn is not None

        await asyncio.to_thread(node.restart)

        # The dead channel's messages: settling them must not ack anything
        # on the new channel (delivery tags start again at 1 there).
        for msg in held.values():
            with pytest.raises(aiorabbit.AMQPError):
                await msg.ack()

        # After recovery the same async for goes on by itself.
        must_come_again = set(held)
        stale_acks = 0
        while len(seen) < total or must_come_again:
            msg = await next_msg(inbox, task)
            ident = int(msg.body)
            if msg.channel is old_inner:
                # Handed out after the loss but delivered before it: its
                # tag is dead, so it comes again.
                with pytest.raises(aiorabbit.AMQPError):
                    await msg.ack()
                stale_acks += 1
                must_come_again.add(ident)
                seen.setdefault(ident, []).append(msg.redelivered)
                continue
            if ident in seen:
                assert msg.redelivered, f"message {ident} came again without redelivered=True"
            must_come_again.discard(ident)
            seen.setdefault(ident, []).append(msg.redelivered)
            await msg.ack()

        assert sorted(seen) == list(range(total))  # nothing lost
        assert conn.state == "connected"
        assert conn.connection is not old_conn
        assert ch.channel is not old_inner
        assert consumer.consumer_tag is not None
        disconnected = events.calls["disconnected"]
        assert len(disconnected) >= 1
        assert isinstance(disconnected[0][0], aiorabbit.AMQPError)
        assert len(events.calls["reconnected"]) == len(disconnected)
        assert events.calls["recovery_failed"] == []
        assert events.calls["recovery_error"] == []

        # Everything was acked on the live channel: nothing is left, and the
        # recovered consumer is the queue's only consumer.
        await asyncio.sleep(0.2)
        ok = await passive_declare(node.url, queue)
        assert ok.message_count == 0
        assert ok.consumer_count == 1
        await stop_task(task)
        await ch.queue_delete(queue)
        await ch.exchange_delete(exchange)
    finally:
        await conn.close()


# --------------------------------------------------------------------------
# 2. a server-named exclusive queue is recreated under a new name


async def test_server_named_exclusive_queue_recreated_with_bindings_after_crash(node: BrokerNode) -> None:
    exchange = unique("transient-x")
    conn = await aiorabbit.connect_robust(node.url, backoff=BACKOFF, wait_timeout=TIMEOUT)
    try:
        events = Events(conn)
        ch = await conn.channel(publisher_confirms=True)
        await ch.exchange_declare(exchange, "direct")  # not durable: gone after the crash
        declared = await ch.queue_declare("", exclusive=True)
        old_name = declared.queue
        assert old_name.startswith("amq.gen-")
        for key in ("red", "green"):
            await ch.queue_bind(old_name, exchange, key)
        inbox: asyncio.Queue[IncomingMessage] = asyncio.Queue()
        consumer = ch.consume(old_name)
        task = asyncio.ensure_future(pump(consumer, inbox))
        await ch.basic_publish(b"before", exchange=exchange, routing_key="red", mandatory=True)
        msg = await next_msg(inbox, task)
        assert msg.body == b"before"
        await msg.ack()

        await asyncio.to_thread(node.kill)  # a crash: no connection.close
        await asyncio.to_thread(node.start)
        await events.wait("reconnected")

        new_name = declared.queue
        assert new_name != old_name
        assert new_name.startswith("amq.gen-")
        assert consumer.queue == new_name
        assert new_name in conn.topology.queues
        assert old_name not in conn.topology.queues
        assert events.calls["recovery_error"] == []

        # Both bindings were recovered (mandatory: an unroutable message
        # would raise MessageReturned), to the new queue and its consumer.
        for key in ("red", "green"):
            await ch.basic_publish(
                f"after-{key}".encode(), exchange=exchange, routing_key=key, mandatory=True
            )
        got = {}
        for _ in range(2):
            msg = await next_msg(inbox, task)
            assert msg.channel is ch.channel
            assert not msg.redelivered
            got[msg.body] = msg.routing_key
            await msg.ack()
        assert got == {b"after-red": "red", b"after-green": "green"}

        # Seen from another connection: the old queue is gone, the new one
        # exists and is exclusive to the robust connection.
        with pytest.raises(aiorabbit.NotFound):
            await passive_declare(node.url, old_name)
        with pytest.raises(aiorabbit.ResourceLocked):
            await passive_declare(node.url, new_name)
        await stop_task(task)
        await ch.exchange_delete(exchange)
    finally:
        await conn.close()


# --------------------------------------------------------------------------
# 3. failover between two nodes


@dataclasses.dataclass
class Setup:
    """One robust connection of the failover test and its consumer."""

    form: str
    conn: aiorabbit.RobustConnection
    events: Events
    queue: str
    inbox: asyncio.Queue[IncomingMessage] = dataclasses.field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None


async def test_failover_to_second_node(node: BrokerNode, second_node: BrokerNode) -> None:
    a, b = node, second_node
    ensure_running(b)
    comma_url = f"amqp://guest:guest@127.0.0.1:{a.amqp_port},127.0.0.1:{b.amqp_port}/%2F"
    setups: list[Setup] = []
    try:
        # The same failover through both ways of listing endpoints.
        for form, target in (("list", [a.url, b.url]), ("comma", comma_url)):
            conn = await aiorabbit.connect_robust(target, backoff=BACKOFF, wait_timeout=TIMEOUT)
            setup = Setup(form, conn, Events(conn), unique(f"failover-{form}"))
            setups.append(setup)
            assert conn.connection is not None
            assert conn.connection.params.port == a.amqp_port, form  # the first endpoint first
            ch = await conn.channel()
            await ch.queue_declare(setup.queue)  # non-durable, on a only
            setup.task = asyncio.ensure_future(pump(ch.consume(setup.queue), setup.inbox))
            await ch.basic_publish(b"on a", routing_key=setup.queue)
            msg = await next_msg(setup.inbox, setup.task)
            assert msg.body == b"on a"
            await msg.ack()
            with pytest.raises(aiorabbit.NotFound):
                await passive_declare(b.url, setup.queue)

        await asyncio.to_thread(a.stop)

        for setup in setups:
            form, conn = setup.form, setup.conn
            assert setup.task is not None
            await setup.events.wait("reconnected")
            assert conn.state == "connected", form
            assert conn.connection is not None
            assert conn.connection.params.port == b.amqp_port, form
            assert setup.events.calls["recovery_error"] == [], form
            # The topology was declared again on b, with the consumer.
            ok = await passive_declare(b.url, setup.queue)
            assert ok.consumer_count == 1, form
            async with plain(b.url) as observer:
                och = await observer.channel(publisher_confirms=True)
                await och.basic_publish(f"on b via {form}".encode(), routing_key=setup.queue)
            msg = await next_msg(setup.inbox, setup.task)
            assert msg.body == f"on b via {form}".encode()
            assert not msg.redelivered
            await msg.ack()
    finally:
        for setup in setups:
            if setup.task is not None:
                await stop_task(setup.task)
            await setup.conn.close()
        await asyncio.to_thread(ensure_running, a)


# --------------------------------------------------------------------------
# 4. calls made during an outage


async def test_calls_during_outage_wait_or_time_out(node: BrokerNode) -> None:
    patient = await aiorabbit.connect_robust(node.url, backoff=BACKOFF, wait_timeout=60)
    hasty = await aiorabbit.connect_robust(node.url, backoff=BACKOFF, wait_timeout=1)
    pending: list[asyncio.Future[Any]] = []
    try:
        patient_events, hasty_events = Events(patient), Events(hasty)
        pch = await patient.channel(publisher_confirms=True)
        hch = await hasty.channel()
        queue = unique("outage")
        await pch.queue_declare(queue)  # recorded: recovered before the calls go on

        await asyncio.to_thread(node.stop)
        await patient_events.wait("disconnected")
        await hasty_events.wait("disconnected")
        assert patient.state == "reconnecting"
        assert not patient.is_open

        late_queue = unique("declared-while-down")
        declare = asyncio.ensure_future(pch.queue_declare(late_queue))
        publish = asyncio.ensure_future(pch.basic_publish(b"while down", routing_key=queue))
        pending += [declare, publish]

        # wait_timeout=1: the call gives up after about a second, typed.
        started = time.monotonic()
        with pytest.raises(aiorabbit.RecoveryTimeout):
            await hch.queue_declare(unique("never"))
        elapsed = time.monotonic() - started
        assert 0.8 <= elapsed < 5, elapsed
        with pytest.raises(aiorabbit.RecoveryTimeout):
            await hasty.wait_connected(timeout=0.2)
        assert not declare.done() and not publish.done()

        await asyncio.to_thread(node.start)

        # Within wait_timeout=60: both calls went through once it was back.
        ok = await asyncio.wait_for(declare, TIMEOUT)
        assert ok.queue == late_queue
        await asyncio.wait_for(publish, TIMEOUT)  # confirmed by the broker
        msg = await pch.basic_get(queue, no_ack=True)
        assert msg is not None and msg.body == b"while down"
        assert (await passive_declare(node.url, late_queue)).queue == late_queue

        # The connection whose call timed out recovers too, and works.
        await hasty.wait_connected(timeout=TIMEOUT)
        assert hasty.state == "connected"
        assert hasty_events.calls["recovery_failed"] == []
        again = await hch.queue_declare(unique("after-outage"), auto_delete=True)
        assert again.message_count == 0
        await pch.queue_delete(queue)
        await pch.queue_delete(late_queue)
    finally:
        for fut in pending:
            fut.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        await hasty.close()
        await patient.close()


# --------------------------------------------------------------------------
# 5. a stream consumer resumes after its last offset


async def test_stream_consumer_resumes_after_last_offset(node: BrokerNode) -> None:
    stream = unique("stream")
    name = unique("stream-conn")
    conn = await aiorabbit.connect_robust(node.url, backoff=BACKOFF, wait_timeout=TIMEOUT, name=name)
    try:
        events = Events(conn)
        ch = await conn.channel(publisher_confirms=True)
        await ch.queue_declare(stream, durable=True, arguments={"x-queue-type": "stream"})
        for i in range(20):
            await ch.basic_publish(str(i).encode(), routing_key=stream)
        await ch.basic_qos(prefetch_count=10)  # streams need a prefetch

        received: list[tuple[int, int]] = []  # (body, x-stream-offset)

        async def close_our_connection() -> None:
            listing = await asyncio.to_thread(
                node.ctl, "list_connections", "pid", "client_properties", "-q", "--no-table-headers"
            )
            pids = [
                line.split("\t", 1)[0]
                for line in listing.splitlines()
                if f'{{"connection_name","{name}"}}' in line
            ]
            assert len(pids) == 1, listing
            await asyncio.to_thread(node.ctl, "close_connection", pids[0], "stream test")
            await events.wait("disconnected")

        async def consume() -> None:
            async with ch.consume(stream, arguments={"x-stream-offset": "first"}) as messages:
                async for msg in messages:
                    offset = msg.headers.get("x-stream-offset")
                    assert isinstance(offset, int), msg.headers
                    received.append((int(msg.body), offset))
                    await msg.ack()
                    if len(received) == 10:
                        # The broker has sent more already (prefetch 10):
                        # those die with the connection.
                        await close_our_connection()
                    if len(received) == 20:
                        break

        await asyncio.wait_for(consume(), TIMEOUT * 2)

        assert len(events.calls["reconnected"]) == 1
        disconnected = events.calls["disconnected"]
        assert isinstance(disconnected[0][0], aiorabbit.ConnectionForced), disconnected
        bodies = [body for body, _ in received]
        assert bodies == list(range(20)), bodies  # not from 0 again, nothing skipped
        offsets = [offset for _, offset in received]
        assert offsets == list(range(offsets[0], offsets[0] + 20)), offsets
        await ch.queue_delete(stream)
    finally:
        await conn.close()


# --------------------------------------------------------------------------
# 6. recovery gives up


async def test_recovery_gives_up_after_max_attempts(second_node: BrokerNode) -> None:
    node = second_node
    ensure_running(node)
    before = asyncio.all_tasks()
    conn = await aiorabbit.connect_robust(
        node.url, backoff=aiorabbit.Backoff(initial=0.1, maximum=1.0, max_attempts=3), wait_timeout=TIMEOUT
    )
    try:
        events = Events(conn)
        ch = await conn.channel()
        queue = unique("doomed")
        await ch.queue_declare(queue)
        inbox: asyncio.Queue[IncomingMessage] = asyncio.Queue()
        consumer = await ch.consume(queue).start()  # pump's async with: already started
        task = asyncio.ensure_future(pump(consumer, inbox))
        await asyncio.sleep(0.1)
        assert not task.done()

        await asyncio.to_thread(node.stop)  # for good (the fixture cleans up)

        failed = await events.wait("recovery_failed")
        assert len(failed) == 1
        assert isinstance(failed[0][0], aiorabbit.AMQPError), failed
        assert conn.state == "closed"
        assert conn.is_closed
        assert isinstance(conn.closed_reason, aiorabbit.AMQPError)

        # The pending async for ends with a typed error, promptly.
        done, _ = await asyncio.wait({task}, timeout=5)
        assert done, "the consumer's async for still waits after recovery gave up"
        exc = task.exception()
        assert isinstance(exc, aiorabbit.AMQPError), repr(exc)

        # New calls fail at once (no wait_timeout wait), typed.
        started = time.monotonic()
        with pytest.raises(aiorabbit.AMQPError):
            await ch.queue_declare(unique("after-give-up"))
        with pytest.raises(aiorabbit.AMQPError):
            await conn.channel()
        assert time.monotonic() - started < 2

        # Nothing of the connection is left running.
        for _ in range(5):
            await asyncio.sleep(0)
        left = {t for t in asyncio.all_tasks() - before if not t.done()}
        assert not left, left
        await asyncio.wait_for(conn.close(), 5)  # still fine, and idempotent
        assert conn.state == "closed"
        left = {t for t in asyncio.all_tasks() - before if not t.done()}
        assert not left, left
    finally:
        await conn.close()


async def test_update_secret_is_used_when_reconnecting(node: BrokerNode) -> None:
    user, name = f"secret-{uuid.uuid4().hex[:8]}", unique("secret")
    node.add_user(user, "first")
    conn = await aiorabbit.connect_robust(node.url_for(user, "first"), backoff=BACKOFF, name=name)
    events = Events(conn)
    try:
        ch = await conn.channel()
        # The password rotates: the old one no longer logs in.
        await asyncio.to_thread(node.ctl, "change_password", user, "second")
        await conn.update_secret("second", "rotated")
        listing = await asyncio.to_thread(
            node.ctl, "list_connections", "pid", "client_properties", "-q", "--no-table-headers"
        )
        (pid,) = [line.split("\t", 1)[0] for line in listing.splitlines() if f'"{name}"' in line]
        await asyncio.to_thread(node.ctl, "close_connection", pid, "rotation test")
        await events.wait("reconnected")
        assert not events.calls["recovery_failed"]
        q = await ch.queue_declare("", exclusive=True)  # the channel works on the new login
        assert q.queue.startswith("amq.gen-")
        # A connection with the old password is refused: the new one was used.
        with pytest.raises(aiorabbit.AuthenticationError):
            await aiorabbit.connect(node.url_for(user, "first"))
    finally:
        await conn.close()
