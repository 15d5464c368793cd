"""connect_robust against the real broker, with faults from in-test proxies.

Every test goes through :class:`~tests.proxy.Proxy` (cut, stall) or the
:class:`Forwarder` below (a fixed port, and links whose broker side stays
open after the client side is gone), with a fast backoff so that each
recovery takes a fraction of a second.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import aiorabbit
from aiorabbit import (
    AMQPError,
    AuthenticationError,
    ChannelClosed,
    ConnectionClosed,
    ConnectionFailed,
    ConnectionForced,
    ConnectionLost,
    HeartbeatTimeout,
    MessageAlreadySettled,
    NotAllowed,
    NotFound,
    RecoveryTimeout,
    ResourceLocked,
)
from aiorabbit.channel import Channel
from aiorabbit.robust import EVENTS, State

from . import ctl
from .conftest import Names
from .proxy import Proxy

BROKER = ("127.0.0.1", 5672)
FAST = aiorabbit.Backoff(initial=0.05, maximum=0.3)


def robust(url: str | list[str], **options: Any) -> Any:
    options.setdefault("backoff", FAST)
    return aiorabbit.connect_robust(url, **options)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def url_for(port: int) -> str:
    return f"amqp://guest:guest@127.0.0.1:{port}/%2F"


async def eventually(cond: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


class Events:
    """Records every event of a RobustConnection, with its state then."""

    def __init__(self, conn: aiorabbit.RobustConnection) -> None:
        self.log: list[tuple[str, tuple[Any, ...], State]] = []
        for event in EVENTS:
            conn.add_listener(event, functools.partial(self._record, event))

    def _record(self, event: str, conn: aiorabbit.RobustConnection, *args: Any) -> None:
        self.log.append((event, args, conn.state))

    def count(self, event: str) -> int:
        return sum(1 for name, _, _ in self.log if name == event)

    def args(self, event: str) -> list[tuple[Any, ...]]:
        return [args for name, args, _ in self.log if name == event]

    def states(self, event: str) -> list[State]:
        return [state for name, _, state in self.log if name == event]

    async def wait(self, event: str, count: int = 1, timeout: float = 10.0) -> None:
        await eventually(lambda: self.count(event) >= count, timeout, f"{count} x {event!r}")


async def queue_state(conn: aiorabbit.Connection, queue: str) -> aiorabbit.DeclareOk | None:
    """The queue's passive declare-ok, or None if it does not exist."""
    ch = await conn.channel()
    try:
        ok = await ch.queue_declare(queue, passive=True)
    except NotFound:
        return None
    await ch.close()
    return ok


async def exchange_exists(conn: aiorabbit.Connection, exchange: str) -> bool:
    ch = await conn.channel()
    try:
        await ch.exchange_declare(exchange, passive=True)
    except NotFound:
        return False
    await ch.close()
    return True


async def eventually_gone(conn: aiorabbit.Connection, queue: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while await queue_state(conn, queue) is not None:
        assert time.monotonic() < deadline, f"queue {queue} still exists"
        await asyncio.sleep(0.05)


class _Link:
    def __init__(self, client: asyncio.StreamWriter, broker: asyncio.StreamWriter) -> None:
        self.client = client
        self.broker = broker
        self.held = False


class Forwarder:
    """A minimal TCP forwarder to the broker, on a port of our choosing.

    :meth:`drop_clients` closes the client side of every link but keeps the
    broker side open and silent: the broker believes the old connection
    lives (and keeps its exclusive queues) until its heartbeat check fails.
    """

    def __init__(self, port: int = 0) -> None:
        self.port = port
        self.accepted = 0
        self._server: asyncio.AbstractServer | None = None
        self._links: list[_Link] = []
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return url_for(self.port)

    async def start(self) -> Forwarder:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def drop_clients(self) -> None:
        for link in self._links:
            link.held = True
            link.client.transport.abort()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for link in self._links:
            link.client.transport.abort()
            link.broker.transport.abort()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        up_reader, up_writer = await asyncio.open_connection(*BROKER)
        link = _Link(writer, up_writer)
        self._links.append(link)
        for src, dst, to_broker in ((reader, up_writer, True), (up_reader, writer, False)):
            task = asyncio.get_running_loop().create_task(self._pump(link, src, dst, to_broker))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(
        self, link: _Link, src: asyncio.StreamReader, dst: asyncio.StreamWriter, to_broker: bool
    ) -> None:
        try:
            while data := await src.read(65536):
                if link.held:
                    continue  # the broker side hears nothing more
                dst.write(data)
                await dst.drain()
        except OSError:
            pass
        finally:
            if not (link.held and to_broker):
                dst.transport.abort()


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    async with Proxy(*BROKER) as p:
        yield p


# ---------------------------------------------------------------------------
# a cut link


async def test_cut_recovers_same_channel_with_qos_and_confirms(
    proxy: Proxy, names: Names, connection: aiorabbit.Connection
) -> None:
    queue = names.queue()
    async with robust(proxy.url) as conn:
        assert conn.state is State.CONNECTED and conn.is_open
        events = Events(conn)
        ch = await conn.channel(publisher_confirms=True)
        await ch.basic_qos(prefetch_count=1)
        await ch.queue_declare(queue)
        first, first_inner = conn.connection, ch.channel

        proxy.cut()
        await events.wait("disconnected")
        await events.wait("reconnected")
        assert events.states("disconnected") == [State.RECONNECTING]
        assert events.states("reconnected") == [State.CONNECTED]
        (reason,) = events.args("disconnected")[0]
        assert isinstance(reason, ConnectionLost)
        assert conn.state is State.CONNECTED and conn.is_open
        assert conn.connection is not first and ch.channel is not first_inner
        assert ch.is_open and not ch.is_closed

        # Confirm mode is back: the publish returns once the broker confirmed it.
        assert ch.channel is not None and ch.channel.publisher_confirms
        await asyncio.wait_for(ch.basic_publish(b"one", routing_key=queue), 5)
        await asyncio.wait_for(ch.basic_publish(b"two", routing_key=queue), 5)
        ok = await queue_state(connection, queue)
        assert ok is not None and ok.message_count == 2

        # QoS is back: prefetch 1, so the second message waits for the first ack.
        async with ch.consume(queue) as messages:
            m1 = await messages.get(5)
            assert m1.body == b"one"
            with pytest.raises(asyncio.TimeoutError):
                await messages.get(0.5)
            await m1.ack()
            m2 = await messages.get(5)
            assert m2.body == b"two"
            await m2.ack()
        assert events.count("disconnected") == 1 and events.count("reconnected") == 1
        assert events.count("recovery_failed") == 0 and events.count("recovery_error") == 0
    assert conn.state is State.CLOSED and conn.is_closed and not conn.is_open


async def test_topology_recovered_in_order(
    proxy: Proxy, names: Names, connection: aiorabbit.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dst = names.exchange("src"), names.exchange("dst")
    gone_x, gone_q = names.exchange("gone"), names.queue("gone")
    async with robust(proxy.url) as conn:
        events = Events(conn)
        ch = await conn.channel()
        await ch.basic_qos(prefetch_count=50)
        await ch.exchange_declare(src, "direct")
        await ch.exchange_declare(dst, "fanout")
        declared = await ch.queue_declare("", exclusive=True)
        old = declared.queue
        assert isinstance(declared, aiorabbit.DeclaredQueue) and old.startswith("amq.gen-")
        await ch.queue_bind(old, src, "red")
        await ch.queue_bind(old, src, "green")  # same queue and exchange, another key
        await ch.exchange_bind(dst, src, "blue")  # src -blue-> dst (fanout) -> queue
        await ch.queue_bind(old, dst)
        consumer = await ch.consume(old, no_ack=True).start()
        assert consumer.queue == old
        # What the user removes before the cut stays removed.
        await ch.exchange_declare(gone_x, "direct")
        await ch.exchange_bind(gone_x, src, "gone")
        await ch.queue_declare(gone_q)
        await ch.queue_bind(gone_q, src, "gone")
        await ch.queue_delete(gone_q)
        await ch.exchange_delete(gone_x)
        await ch.queue_bind(old, src, "unbound")
        await ch.queue_unbind(old, src, "unbound")
        await ch.exchange_bind(dst, src, "unbound-e2e")
        await ch.exchange_unbind(dst, src, "unbound-e2e")

        # Watch what the recovery sends, in order.
        calls: list[tuple[str, str]] = []

        def spy(name: str, label: Callable[..., str]) -> None:
            original = getattr(Channel, name)

            async def wrapper(self: Channel, *args: Any, **kwargs: Any) -> Any:
                calls.append((name, label(*args, **kwargs)))
                return await original(self, *args, **kwargs)

            monkeypatch.setattr(Channel, name, wrapper)

        spy("basic_qos", lambda *a, **k: str(k.get("prefetch_count", a[0] if a else "")))
        spy("exchange_declare", lambda name, *a, **k: name)
        spy("queue_declare", lambda name="", *a, **k: name)
        spy("exchange_bind", lambda d, s, key="", *a: f"{s}->{d}:{key}")
        spy("queue_bind", lambda q, x, key="", *a: f"{x}->queue:{key}")
        spy("_basic_consume", lambda c, *port: str(c.consumer_tag))

        proxy.cut()
        await events.wait("reconnected")
        monkeypatch.undo()
        assert calls == [
            ("basic_qos", "50"),
            ("exchange_declare", src),
            ("exchange_declare", dst),
            ("queue_declare", ""),
            ("exchange_bind", f"{src}->{dst}:blue"),
            ("queue_bind", f"{src}->queue:red"),
            ("queue_bind", f"{src}->queue:green"),
            ("queue_bind", f"{dst}->queue:"),
            ("_basic_consume", consumer.consumer_tag),
        ]

        # A new server-assigned name, followed by the result and the consumer.
        new = declared.queue
        assert new != old and new.startswith("amq.gen-")
        assert consumer.queue == new
        name, _, _ = declared  # unpacking gives the name at declare time
        assert name == old
        assert list(conn.topology.queues) == [new]
        await eventually_gone(connection, old)  # the old exclusive queue went with its connection

        for key in ("red", "green", "blue", "unbound", "unbound-e2e", "gone"):
            await ch.basic_publish(key.encode(), exchange=src, routing_key=key)
        got = {(await consumer.get(5)).body for _ in range(3)}
        assert got == {b"red", b"green", b"blue"}
        with pytest.raises(asyncio.TimeoutError):
            await consumer.get(0.5)  # nothing via the removed bindings

        assert await queue_state(connection, gone_q) is None
        assert not await exchange_exists(connection, gone_x)
        assert events.count("recovery_error") == 0


async def test_async_for_survives_a_cut_and_old_messages_cannot_settle(
    proxy: Proxy, names: Names, connection: aiorabbit.Connection
) -> None:
    queue = names.queue("durable")
    async with robust(proxy.url) as conn:
        events = Events(conn)
        ch = await conn.channel()
        await ch.queue_declare(queue, durable=True)
        for i in range(3):
            await ch.basic_publish(str(i).encode(), routing_key=queue)
        received: list[aiorabbit.IncomingMessage] = []

        async def consume() -> None:
            async with ch.consume(queue) as messages:
                async for msg in messages:
                    received.append(msg)

        task = asyncio.ensure_future(consume())
        await eventually(lambda: len(received) == 3, 5, "three deliveries")
        before = list(received)
        assert [m.redelivered for m in before] == [False] * 3

        proxy.cut()
        await events.wait("reconnected")
        # The broker redelivers what was unacked at the loss, to the same loop.
        await eventually(lambda: len(received) == 6, 5, "three redeliveries")
        again = received[3:]
        assert [m.body for m in again] == [b"0", b"1", b"2"]
        assert all(m.redelivered for m in again)
        assert not task.done()
        await ch.basic_publish(b"3", routing_key=queue)
        await eventually(lambda: len(received) == 7, 5, "a new delivery")
        assert received[6].body == b"3" and not received[6].redelivered

        # Settling a message of the dead channel raises a typed error; it
        # must not settle the new delivery that reuses its delivery tag.
        assert again[0].delivery_tag == before[0].delivery_tag
        for settle in (lambda m: m.ack(), lambda m: m.nack(requeue=False), lambda m: m.reject(requeue=False)):
            with pytest.raises((ChannelClosed, ConnectionClosed, MessageAlreadySettled)) as info:
                settle(before[0])
            assert isinstance(info.value, AMQPError)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    # Closing returned every unacked message: all four are still there.
    await eventually_count(connection, queue, 4)


async def eventually_count(conn: aiorabbit.Connection, queue: str, count: int) -> None:
    deadline = time.monotonic() + 5
    while True:
        ok = await queue_state(conn, queue)
        assert ok is not None
        if ok.message_count == count:
            return
        assert time.monotonic() < deadline, f"{queue} holds {ok.message_count} messages, not {count}"
        await asyncio.sleep(0.05)


# ---------------------------------------------------------------------------
# other ways to lose the connection


@pytest.mark.slow
async def test_heartbeat_timeout_recovers(proxy: Proxy) -> None:
    async with robust(proxy.url, heartbeat=1) as conn:
        events = Events(conn)
        ch = await conn.channel()
        q = await ch.queue_declare("", exclusive=True)
        consumer = await ch.consume(q.queue, no_ack=True).start()
        proxy.stall()
        started = time.monotonic()
        await events.wait("disconnected", timeout=6)
        assert time.monotonic() - started < 4.5
        (reason,) = events.args("disconnected")[0]
        assert isinstance(reason, HeartbeatTimeout)
        assert conn.state is State.RECONNECTING and not conn.is_open
        proxy.resume()
        await events.wait("reconnected")
        assert conn.connection is not None and conn.connection.heartbeat == 1
        await ch.basic_publish(b"after", routing_key=q.queue)
        assert (await consumer.get(5)).body == b"after"


@pytest.mark.slow
async def test_server_forced_close_recovers(proxy: Proxy) -> None:
    name = f"aiorabbit-robust-{uuid.uuid4().hex[:8]}"
    async with robust(proxy.url, name=name) as conn:
        events = Events(conn)
        ch = await conn.channel()
        q = await ch.queue_declare("", exclusive=True)
        consumer = await ch.consume(q.queue, no_ack=True).start()
        first = (await ctl.find_connection(name))["pid"]
        await ctl.close_connection(name, "maintenance")
        await events.wait("reconnected")
        (reason,) = events.args("disconnected")[0]
        assert isinstance(reason, ConnectionForced) and reason.reply_code == 320
        assert "maintenance" in reason.reply_text
        assert (await ctl.find_connection(name))["pid"] != first
        await ch.basic_publish(b"after", routing_key=q.queue)
        assert (await consumer.get(5)).body == b"after"


# ---------------------------------------------------------------------------
# connecting: fatal errors, retries, endpoints


async def test_wrong_password_raises_promptly(amqp_url: str) -> None:
    before = asyncio.all_tasks()
    started = time.monotonic()
    with pytest.raises(AuthenticationError):
        await robust(amqp_url, password="Wr0ngPassw0rd!")
    with pytest.raises(NotAllowed):
        await robust(amqp_url, virtual_host="no-such-vhost-robust")
    # Fatal, not retried: the second endpoint is never tried either.
    with pytest.raises(AuthenticationError):
        await robust([amqp_url, amqp_url], password="Wr0ngPassw0rd!")
    assert time.monotonic() - started < 5
    await asyncio.sleep(0)
    assert asyncio.all_tasks() - before == set()


async def test_first_connect_is_retried_with_backoff() -> None:
    port = free_port()
    started = time.monotonic()
    task = asyncio.ensure_future(robust(url_for(port)))
    await asyncio.sleep(0.5)
    assert not task.done()  # refused, and retrying
    fwd = await Forwarder(port).start()
    try:
        conn = await asyncio.wait_for(task, 5)
        assert conn.state is State.CONNECTED and fwd.accepted == 1
        assert time.monotonic() - started >= 0.5
        ch = await conn.channel()
        await ch.queue_declare("", exclusive=True)
        await conn.close()
    finally:
        await fwd.close()


async def test_max_attempts_gives_up_with_connection_failed() -> None:
    accepted = 0

    async def hang_up(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        w.transport.abort()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(ConnectionFailed) as info:
            await robust(url_for(port), backoff=aiorabbit.Backoff(initial=0.05, maximum=0.1, max_attempts=3))
        assert info.value.retryable
        assert accepted == 3
    finally:
        server.close()
        await server.wait_closed()
    # A refused port, too.
    started = time.monotonic()
    with pytest.raises(ConnectionFailed):
        await robust(url_for(free_port()),
                     backoff=aiorabbit.Backoff(initial=0.01, maximum=0.02, max_attempts=3))
    assert time.monotonic() - started < 3


async def test_max_elapsed_gives_up() -> None:
    started = time.monotonic()
    with pytest.raises(ConnectionFailed):
        await robust(url_for(free_port()),
                     backoff=aiorabbit.Backoff(initial=0.05, maximum=0.1, max_elapsed=0.5))
    assert 0.4 < time.monotonic() - started < 3


async def test_endpoint_list_and_comma_hosts() -> None:
    for form in ("list", "hosts"):
        async with Proxy(*BROKER) as a, Proxy(*BROKER) as b:
            dead = free_port()
            if form == "list":
                urls: str | list[str] = [url_for(dead), a.url, b.url]
            else:
                urls = f"amqp://guest:guest@127.0.0.1:{dead},127.0.0.1:{a.port},127.0.0.1:{b.port}/%2F"
            async with robust(urls) as conn:
                events = Events(conn)
                assert conn.connection is not None and conn.connection.params.port == a.port
                ch = await conn.channel()
                q = await ch.queue_declare("", exclusive=True)
                consumer = await ch.consume(q.queue, no_ack=True).start()
                await a.close()  # a dies for good: cut, and refuses from now on
                await events.wait("reconnected")
                assert conn.connection is not None and conn.connection.params.port == b.port
                await ch.basic_publish(b"via b", routing_key=q.queue)
                assert (await consumer.get(5)).body == b"via b"
                # Cut again: b is still the live one.
                b.cut()
                await events.wait("reconnected", 2)
                assert conn.connection is not None and conn.connection.params.port == b.port
                await ch.basic_publish(b"via b again", routing_key=q.queue)
                assert (await consumer.get(5)).body == b"via b again"


# ---------------------------------------------------------------------------
# calls while disconnected, closing while reconnecting


@pytest.mark.slow
async def test_calls_wait_then_raise_recovery_timeout(proxy: Proxy) -> None:
    async with robust(proxy.url, wait_timeout=0.5) as conn:
        events = Events(conn)
        ch = await conn.channel()
        await ch.queue_declare("", exclusive=True)
        proxy.stall()  # reconnects hang in the handshake
        proxy.cut()
        await events.wait("disconnected")
        for call in (
            lambda: ch.queue_declare("", exclusive=True),
            lambda: ch.basic_publish(b"x", routing_key="nowhere"),
            lambda: ch.basic_qos(prefetch_count=3),
            lambda: conn.channel(),
        ):
            started = time.monotonic()
            with pytest.raises(RecoveryTimeout):
                await asyncio.wait_for(call(), 5)
            assert 0.4 < time.monotonic() - started < 2
        with pytest.raises(RecoveryTimeout):
            await conn.wait_connected(0.1)
        assert conn.state is State.RECONNECTING
        # A call that the link outlives by less than wait_timeout just waits.
        waiting = asyncio.ensure_future(ch.queue_declare("", exclusive=True))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        proxy.resume()
        await conn.wait_connected(10)
        await events.wait("reconnected")
        declared = await asyncio.wait_for(waiting, 1)
        assert declared.queue.startswith("amq.gen-")
        q = await ch.queue_declare("", exclusive=True)
        await ch.basic_publish(b"x", routing_key=q.queue)
        msg = await ch.basic_get(q.queue, no_ack=True)
        assert msg is not None and msg.body == b"x"


@pytest.mark.parametrize("where", ["refused", "handshake", "recovering"])
async def test_close_during_reconnect_stops_cleanly(where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    proxy = await Proxy(*BROKER).start()
    before = asyncio.all_tasks()
    conn = await robust(proxy.url)
    events = Events(conn)
    ch = await conn.channel()
    q = await ch.queue_declare("", exclusive=True)

    async def consume() -> None:
        async with ch.consume(q.queue) as messages:
            async for _ in messages:
                pass

    consumer = asyncio.ensure_future(consume())
    await eventually(lambda: bool(ch._consumers), 5, "the consumer")
    if where == "refused":
        await proxy.close()  # every reconnect is refused from now on
    elif where == "handshake":
        proxy.stall()  # reconnects hang in the handshake
        proxy.cut()
    else:  # the recovery hangs on the consumer's basic.consume
        hang = asyncio.Event()
        original = Channel._basic_consume

        async def hung(self: Channel, c: Any, *port: Any) -> str:
            hang.set()
            await asyncio.Event().wait()
            return await original(self, c, *port)  # pragma: no cover

        monkeypatch.setattr(Channel, "_basic_consume", hung)
        proxy.cut()
    await events.wait("disconnected")
    if where == "recovering":
        await asyncio.wait_for(hang.wait(), 5)
    pending = asyncio.ensure_future(ch.queue_declare("", exclusive=True))
    await asyncio.sleep(0.3)
    assert conn.state is State.RECONNECTING and not pending.done()
    await asyncio.wait_for(conn.close(), 5)
    assert conn.state is State.CLOSED and conn.is_closed and not conn.is_open
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(pending, 2)
    # The program closed it: the loop ends cleanly; calls raise.
    await asyncio.wait_for(consumer, 2)
    with pytest.raises((ConnectionClosed, ChannelClosed)):
        await ch.queue_declare("", exclusive=True)
    assert events.count("reconnected") == 0 and events.count("recovery_failed") == 0
    assert conn.connection is None or conn.connection.is_closed
    assert not conn._tasks and conn._supervisor is None
    await proxy.close()
    await asyncio.sleep(0.05)
    assert asyncio.all_tasks() - before == set()
    await conn.close()  # idempotent


async def test_recovery_gives_up_after_max_attempts() -> None:
    proxy = await Proxy(*BROKER).start()
    backoff = aiorabbit.Backoff(initial=0.05, maximum=0.1, max_attempts=3)
    conn = await robust(proxy.url, backoff=backoff)
    events = Events(conn)
    ch = await conn.channel()
    q = await ch.queue_declare("", exclusive=True)
    consumer = await ch.consume(q.queue).start()
    await proxy.close()
    await events.wait("recovery_failed", timeout=5)
    (error,) = events.args("recovery_failed")[0]
    assert isinstance(error, ConnectionFailed)
    assert conn.state is State.CLOSED and conn.closed_reason is error
    assert events.count("reconnected") == 0
    with pytest.raises(ChannelClosed) as info:
        await ch.queue_declare("", exclusive=True)
    assert info.value.cause is error
    with pytest.raises(ConnectionClosed):
        await conn.channel()
    with pytest.raises(AMQPError):
        await consumer.get(1)
    assert ch.is_closed
    await conn.close()


@pytest.mark.parametrize(("code", "recovers"), [(541, True), (506, True), (530, False), (501, False)])
async def test_server_close_codes_decide_recovery(proxy: Proxy, code: int, recovers: bool) -> None:
    from aiorabbit.codec import methods as m
    from aiorabbit.codec.frames import encode_method_frame

    async with robust(proxy.url) as conn:
        events = Events(conn)
        ch = await conn.channel()
        await ch.queue_declare("", exclusive=True)
        first = conn.connection
        close = m.ConnectionClose(reply_code=code, reply_text="injected", class_id=0, method_id=0)
        proxy.inject(encode_method_frame(0, close))
        if recovers:
            await events.wait("reconnected")
            (reason,) = events.args("disconnected")[0]
            assert isinstance(reason, ConnectionClosed) and reason.reply_code == code
            assert conn.state is State.CONNECTED and conn.connection is not first
            await ch.queue_declare("", exclusive=True)
        else:
            await events.wait("recovery_failed")
            (reason,) = events.args("recovery_failed")[0]
            assert isinstance(reason, ConnectionClosed) and reason.reply_code == code
            assert events.count("disconnected") == 0 and events.count("reconnected") == 0
            assert conn.state is State.CLOSED and conn.closed_reason is reason
            with pytest.raises(ChannelClosed) as info:
                await ch.queue_declare("", exclusive=True)
            assert info.value.cause is reason


# ---------------------------------------------------------------------------
# consumers


async def test_consumer_cancelled_by_broker_consumes_again(
    proxy: Proxy, names: Names, connection: aiorabbit.Connection
) -> None:
    queue = names.queue()
    plain = await connection.channel()
    async with robust(proxy.url) as conn:
        events = Events(conn)
        ch = await conn.channel()
        await ch.queue_declare(queue)
        received: list[bytes] = []

        async def consume() -> None:
            async with ch.consume(queue) as messages:
                async for msg in messages:
                    received.append(msg.body)
                    await msg.ack()

        task = asyncio.ensure_future(consume())
        await plain.basic_publish(b"before", routing_key=queue)
        await eventually(lambda: received == [b"before"], 5, "the first message")
        await plain.queue_delete(queue)
        await events.wait("consumer_cancelled")
        (cancelled,) = events.args("consumer_cancelled")[0]
        assert isinstance(cancelled, aiorabbit.RobustConsumer) and cancelled.queue == queue
        assert not task.done()
        await plain.queue_declare(queue)
        await plain.basic_publish(b"after", routing_key=queue)
        await eventually(lambda: received == [b"before", b"after"], 5, "a message from the new queue")
        ok = await queue_state(connection, queue)
        assert ok is not None and ok.consumer_count == 1
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest.mark.parametrize("kind", ["sync", "async"])
async def test_callback_consumer_cancelled_by_broker_consumes_again(
    proxy: Proxy, names: Names, connection: aiorabbit.Connection, kind: str
) -> None:
    # No iterator notices the cancel here: the consumer must act on it itself.
    queue = names.queue()
    plain = await connection.channel()
    async with robust(proxy.url) as conn:
        events = Events(conn)
        ch = await conn.channel()
        await ch.queue_declare(queue)
        received: list[bytes] = []

        def on_message(msg: aiorabbit.IncomingMessage) -> None:
            received.append(msg.body)
            msg.ack()

        async def on_message_async(msg: aiorabbit.IncomingMessage) -> None:
            on_message(msg)

        tag = await ch.basic_consume(queue, on_message if kind == "sync" else on_message_async)
        await plain.basic_publish(b"before", routing_key=queue)
        await eventually(lambda: received == [b"before"], 5, "the first message")
        await plain.queue_delete(queue)
        await events.wait("consumer_cancelled")
        await plain.queue_declare(queue)
        await plain.basic_publish(b"after", routing_key=queue)
        await eventually(lambda: received == [b"before", b"after"], 10, "a message from the new queue")
        assert events.count("consumer_cancelled") == 1
        ok = await queue_state(connection, queue)
        assert ok is not None and ok.consumer_count == 1
        await ch.basic_cancel(tag)
    ok = await queue_state(connection, queue)
    assert ok is not None and ok.consumer_count == 0


async def test_is_consuming_follows_cuts_broker_cancels_and_cancel(
    proxy: Proxy, names: Names, connection: aiorabbit.Connection
) -> None:
    queue = names.queue()
    plain = await connection.channel()
    async with robust(proxy.url) as conn:
        events = Events(conn)
        ch = await conn.channel()
        await ch.queue_declare(queue)
        consumer = ch.consume(queue)
        seen: list[tuple[str, bool]] = []
        for event in ("disconnected", "reconnected"):
            conn.add_listener(event, lambda _c, *_a, e=event: seen.append((e, consumer.is_consuming)))
        assert not consumer.is_consuming  # not started
        async with consumer:
            assert consumer.is_consuming
            # Iterating, as consumers do: it sees the broker's cancel.
            reader = asyncio.ensure_future(consumer.get())
            proxy.cut()
            await events.wait("reconnected")
            await eventually(lambda: consumer.is_consuming, 5, "consuming again")
            assert seen[0] == ("disconnected", False)
            await plain.queue_delete(queue)  # the broker cancels the consumer
            await eventually(lambda: not consumer.is_consuming, 5, "the broker's cancel")
            await plain.queue_declare(queue)
            await eventually(lambda: consumer.is_consuming, 10, "consuming the new queue")
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)
        assert not consumer.is_consuming  # cancelled


async def test_deleting_its_queue_through_the_robust_channel_ends_the_consumer(
    proxy: Proxy, names: Names
) -> None:
    queue = names.queue()
    async with robust(proxy.url) as conn:
        ch = await conn.channel()
        await ch.queue_declare(queue)
        tasks_before = asyncio.all_tasks()

        async def consume() -> None:
            async with ch.consume(queue) as messages:
                async for _ in messages:
                    pass

        task = asyncio.ensure_future(consume())
        await eventually(lambda: bool(ch._consumers), 5, "the consumer")
        await ch.queue_delete(queue)
        # Deliberately deleted: the loop ends, nothing keeps watching for the queue.
        with pytest.raises(aiorabbit.ConsumerCancelled):
            await asyncio.wait_for(task, 5)
        assert not ch._consumers and queue not in conn.topology.queues
        await asyncio.sleep(0.1)
        assert asyncio.all_tasks() - tasks_before <= {asyncio.current_task()}


async def test_consume_ok_timeout_during_recovery_is_retried(
    proxy: Proxy, names: Names, connection: aiorabbit.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    qa, qb = names.queue("a"), names.queue("b")
    async with robust(proxy.url, recovery_timeout=0.5) as conn:
        events = Events(conn)
        ch = await conn.channel()
        await ch.queue_declare(qa)
        await ch.queue_declare(qb)
        a, b = ch.consume(qa, no_ack=True), ch.consume(qb, no_ack=True)
        received: list[bytes] = []
        gate = asyncio.Event()  # the loops are busy until the loss is known

        async def consume(consumer: aiorabbit.RobustConsumer) -> None:
            async with consumer as messages:
                async for msg in messages:
                    received.append(msg.body)
                    await gate.wait()

        tasks = [asyncio.ensure_future(consume(a)), asyncio.ensure_future(consume(b))]
        await ch.basic_publish(b"a1", routing_key=qa)
        await ch.basic_publish(b"b1", routing_key=qb)
        await eventually(lambda: sorted(received) == [b"a1", b"b1"], 5, "first messages")
        conn.add_listener("disconnected", lambda c, exc: gate.set())
        registered: list[bool] = []

        def check(c: aiorabbit.RobustConnection) -> None:
            for consumer in (a, b):
                inner = consumer._inner
                registered.append(
                    inner is not None
                    and inner.channel.is_open
                    and inner.channel.connection is c.connection
                    and getattr(inner.channel._consumers.get(str(consumer.consumer_tag)), "consumer", None)
                    is inner
                )

        conn.add_listener("reconnected", check)
        # In the first recovery, b's basic.consume gets no consume-ok in
        # time (the broker's answers are held past the recovery timeout),
        # after a's consumer was already registered again.
        original = Channel._basic_consume
        consumes: list[str] = []

        async def held(self: Channel, c: Any, *port: Any) -> str:
            consumes.append(c.queue)
            if len(consumes) == 2:
                proxy.stall(upstream=False, downstream=True)
                asyncio.get_running_loop().call_later(1.0, proxy.resume)
            return await original(self, c, *port)

        monkeypatch.setattr(Channel, "_basic_consume", held)
        tags = (a.consumer_tag, b.consumer_tag)
        proxy.cut()
        await events.wait("reconnected", timeout=10)
        # a, b (timed out), then the attempt that worked: a, b.
        assert consumes == [qa, qb, qa, qb]
        assert registered == [True, True]  # reported only once really registered
        assert events.count("reconnected") == 1 and events.count("recovery_failed") == 0
        assert (a.consumer_tag, b.consumer_tag) == tags
        for queue in (qa, qb):
            ok = await queue_state(connection, queue)
            assert ok is not None and ok.consumer_count == 1
        # Neither loop saw the interrupted attempt.
        await asyncio.sleep(0.1)
        assert not any(task.done() for task in tasks), tasks
        await ch.basic_publish(b"a2", routing_key=qa)
        await ch.basic_publish(b"b2", routing_key=qb)
        await eventually(lambda: sorted(received) == [b"a1", b"a2", b"b1", b"b2"], 5, "new messages")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_async_for_waits_out_an_outage_longer_than_wait_timeout(
    proxy: Proxy, names: Names
) -> None:
    queue = names.queue()
    async with robust(proxy.url, wait_timeout=0.3) as conn:
        events = Events(conn)
        ch = await conn.channel()
        await ch.queue_declare(queue)
        received: list[bytes] = []

        async def consume() -> None:
            async with ch.consume(queue, no_ack=True) as messages:
                async for msg in messages:
                    received.append(msg.body)

        task = asyncio.ensure_future(consume())
        await eventually(lambda: bool(ch._consumers), 5, "the consumer")
        proxy.stall()
        proxy.cut()
        await events.wait("disconnected")
        await asyncio.sleep(1.0)  # more than wait_timeout
        assert not task.done(), task  # no RecoveryTimeout for a consumer
        with pytest.raises(RecoveryTimeout):
            await ch.basic_publish(b"x", routing_key=queue)  # but a call times out
        proxy.resume()
        await events.wait("reconnected")
        await ch.basic_publish(b"after", routing_key=queue)
        await eventually(lambda: received == [b"after"], 5, "a message after the outage")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_other_consumers_survive_a_consumer_whose_queue_vanished(
    proxy: Proxy, names: Names, connection: aiorabbit.Connection
) -> None:
    qa, qb = names.queue("a"), names.queue("b")
    plain = await connection.channel()
    await plain.queue_declare(qa)
    await plain.queue_declare(qb)
    async with robust(proxy.url) as conn:
        events = Events(conn)
        ch = await conn.channel()
        received: list[bytes] = []
        gate = asyncio.Event()  # the loops are busy until the loss is known

        async def consume(queue: str) -> None:
            async with ch.consume(queue, no_ack=True) as messages:
                async for msg in messages:
                    received.append(msg.body)
                    await gate.wait()

        task_a = asyncio.ensure_future(consume(qa))
        task_b = asyncio.ensure_future(consume(qb))
        await plain.basic_publish(b"a0", routing_key=qa)
        await plain.basic_publish(b"b0", routing_key=qb)
        await eventually(lambda: sorted(received) == [b"a0", b"b0"], 5, "first messages")
        del received[:]
        proxy.stall()  # the broker's cancel for qb never reaches us
        proxy.cut()
        await events.wait("disconnected")
        gate.set()
        await asyncio.sleep(0.1)
        await plain.queue_delete(qb)
        proxy.resume()
        await events.wait("reconnected")
        assert events.count("recovery_error") == 1
        record, error = events.args("recovery_error")[0]
        assert isinstance(record, aiorabbit.RobustConsumer) and record.queue == qb
        assert isinstance(error, NotFound)
        await asyncio.sleep(0.2)
        assert not task_a.done(), task_a
        assert not task_b.done(), task_b
        await plain.basic_publish(b"to a", routing_key=qa)
        await eventually(lambda: received == [b"to a"], 5, "a message on the surviving consumer")
        # qb's consumer comes back once qb exists again.
        await plain.queue_declare(qb)
        await plain.basic_publish(b"to b", routing_key=qb)
        await eventually(lambda: received == [b"to a", b"to b"], 5, "a message on the parked consumer")
        for task in (task_a, task_b):
            task.cancel()
        await asyncio.gather(task_a, task_b, return_exceptions=True)


async def test_auto_delete_queue_whose_last_consumer_was_cancelled_is_not_recreated(
    proxy: Proxy, names: Names, connection: aiorabbit.Connection
) -> None:
    gone, kept = names.queue("ad-gone"), names.queue("ad-kept")
    gone_x, kept_x = names.exchange("ad-gone"), names.exchange("ad-kept")
    async with robust(proxy.url) as conn:
        events = Events(conn)
        ch = await conn.channel()
        await ch.queue_declare(gone, auto_delete=True)
        await ch.queue_declare(kept, auto_delete=True)
        # An auto-delete exchange goes with its last binding, as on the broker.
        await ch.exchange_declare(gone_x, "direct", auto_delete=True)
        await ch.exchange_declare(kept_x, "direct", auto_delete=True)
        await ch.queue_bind(kept, gone_x, "a")
        await ch.queue_bind(kept, gone_x, "b")
        await ch.queue_bind(kept, kept_x, "k")
        await ch.queue_unbind(kept, gone_x, "a")
        assert gone_x in conn.topology.exchanges
        await ch.queue_unbind(kept, gone_x, "b")
        assert gone_x not in conn.topology.exchanges
        assert not await exchange_exists(connection, gone_x)
        first = await ch.consume(gone, no_ack=True).start()
        second = await ch.consume(gone, no_ack=True).start()
        keeper = await ch.consume(kept, no_ack=True).start()
        await first.cancel()
        assert gone in conn.topology.queues  # one consumer left
        await second.cancel()  # the last one: the broker deletes the queue
        assert gone not in conn.topology.queues
        await eventually_gone(connection, gone)
        proxy.cut()
        await events.wait("reconnected")
        assert await queue_state(connection, gone) is None
        assert not await exchange_exists(connection, gone_x)
        ok = await queue_state(connection, kept)
        assert ok is not None and ok.consumer_count == 1
        await ch.basic_publish(b"k", exchange=kept_x, routing_key="k")
        assert (await keeper.get(5)).body == b"k"


@pytest.mark.slow
async def test_exclusive_queue_resource_locked_is_retried(
    names: Names, connection: aiorabbit.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = names.queue("exclusive")
    locked: list[ResourceLocked] = []
    original = Channel.queue_declare

    async def watch(self: Channel, *args: Any, **kwargs: Any) -> Any:
        try:
            return await original(self, *args, **kwargs)
        except ResourceLocked as exc:
            locked.append(exc)
            raise

    monkeypatch.setattr(Channel, "queue_declare", watch)
    fwd = await Forwarder().start()
    try:
        async with robust(fwd.url, heartbeat=1, wait_timeout=20) as conn:
            events = Events(conn)
            ch = await conn.channel()
            await ch.queue_declare(queue, exclusive=True)
            consumer = await ch.consume(queue, no_ack=True).start()
            # The client's socket dies, but the broker still sees the old
            # connection (and its exclusive queue) until its heartbeat fails.
            fwd.drop_clients()
            await events.wait("reconnected", timeout=20)
            assert locked, "the redeclare never met RESOURCE_LOCKED"
            assert events.count("recovery_error") == 0 and events.count("recovery_failed") == 0
            assert list(conn.topology.queues) == [queue]
            # The queue exists again, exclusive to the new connection, consumed.
            with pytest.raises(ResourceLocked):
                await original(await connection.channel(), queue, passive=True)
            ok = await ch.queue_declare(queue, passive=True)
            assert ok.consumer_count == 1
            await ch.basic_publish(b"mine", routing_key=queue)
            assert (await consumer.get(5)).body == b"mine"
    finally:
        await fwd.close()


async def test_channel_error_reopens_the_channel_and_resumes_consumers(
    proxy: Proxy, names: Names
) -> None:
    queue = names.queue()
    async with robust(proxy.url) as conn:
        events = Events(conn)
        ch = await conn.channel()
        await ch.basic_qos(prefetch_count=1)
        await ch.queue_declare(queue)
        received: list[bytes] = []

        async def consume() -> None:
            async with ch.consume(queue) as messages:
                async for msg in messages:
                    received.append(msg.body)
                    await msg.ack()

        task = asyncio.ensure_future(consume())
        await eventually(lambda: bool(ch._consumers), 5, "the consumer")
        first = ch.channel
        with pytest.raises(NotFound):
            await ch.queue_declare(names.queue("missing"), passive=True)
        assert first is not None and first.is_closed
        assert names.queues[-1] not in conn.topology.queues  # a passive declare is not recorded
        await ch.basic_publish(b"after", routing_key=queue)  # reopens the channel
        await eventually(lambda: received == [b"after"], 5, "a message on the reopened channel")
        assert ch.channel is not first and ch.is_open and not task.done()
        assert ch.channel is not None and ch.channel._conn is conn.connection
        assert events.count("disconnected") == 0
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_callback_consumer_is_recovered_and_a_cancelled_one_is_not(
    proxy: Proxy, names: Names, connection: aiorabbit.Connection
) -> None:
    queue, other = names.queue("cb"), names.queue("cancelled")
    async with robust(proxy.url) as conn:
        events = Events(conn)
        ch = await conn.channel()
        await ch.queue_declare(queue)
        await ch.queue_declare(other)
        got: list[bytes] = []

        async def on_message(msg: aiorabbit.IncomingMessage) -> None:
            got.append(msg.body)
            await msg.ack()

        tag = await ch.basic_consume(queue, on_message)
        cancelled = await ch.basic_consume(other, on_message)
        await ch.basic_cancel(cancelled)
        with pytest.raises(aiorabbit.InvalidArgument):
            await ch.basic_cancel("no-such-tag")
        proxy.cut()
        await events.wait("reconnected")
        await ch.basic_publish(b"cb", routing_key=queue)
        await eventually(lambda: got == [b"cb"], 5, "the callback")
        assert [c.consumer.consumer_tag for c in ch._consumers] == [tag]
        ok = await queue_state(connection, other)
        assert ok is not None and ok.consumer_count == 0  # the cancelled one stays cancelled
        ok = await queue_state(connection, queue)
        assert ok is not None and ok.consumer_count == 1


async def test_failed_redeclare_is_reported_and_the_rest_recovers(
    proxy: Proxy, names: Names, connection: aiorabbit.Connection
) -> None:
    x, clash, fine = names.exchange(), names.queue("clash"), names.queue("fine")
    plain = await connection.channel()
    async with robust(proxy.url) as conn:
        events = Events(conn)
        ch = await conn.channel()
        await ch.exchange_declare(x, "direct")
        await ch.queue_declare(clash)
        await ch.queue_declare(fine)
        await ch.queue_bind(fine, x, "k")
        consumer = await ch.consume(fine, no_ack=True).start()
        proxy.stall()
        proxy.cut()
        await events.wait("disconnected")
        # Meanwhile someone redeclares `clash` with other properties.
        await plain.queue_delete(clash)
        await plain.queue_declare(clash, durable=True)
        proxy.resume()
        await events.wait("reconnected")
        assert events.count("recovery_error") == 1
        record, error = events.args("recovery_error")[0]
        assert record.name == clash and isinstance(error, aiorabbit.PreconditionFailed)
        await ch.basic_publish(b"routed", exchange=x, routing_key="k")
        assert (await consumer.get(5)).body == b"routed"


async def test_blocked_and_unblocked_events_across_reconnects(proxy: Proxy) -> None:
    from aiorabbit.codec import methods as m
    from aiorabbit.codec.frames import encode_method_frame

    blocked = encode_method_frame(0, m.ConnectionBlocked(reason="low on memory"))
    unblocked = encode_method_frame(0, m.ConnectionUnblocked())
    async with robust(proxy.url) as conn:
        events = Events(conn)
        calls: list[str | None] = []
        conn.add_blocked_callback(lambda c, reason: calls.append(reason))
        for round_ in (1, 2):
            proxy.inject(blocked)
            await events.wait("blocked", round_)
            assert conn.is_blocked
            assert events.args("blocked")[-1] == ("low on memory",)
            proxy.inject(unblocked)
            await events.wait("unblocked", round_)
            assert not conn.is_blocked
            if round_ == 1:
                proxy.cut()
                await events.wait("reconnected")
        assert calls == ["low on memory", None, "low on memory", None]


async def test_repeated_cuts(proxy: Proxy) -> None:
    async with robust(proxy.url) as conn:
        events = Events(conn)
        ch = await conn.channel(publisher_confirms=True)
        declared = await ch.queue_declare("", exclusive=True)
        await ch.queue_bind(declared.queue, "amq.direct", "repeat")
        received: list[bytes] = []
        names_seen = {declared.queue}

        async def consume() -> None:
            async with ch.consume(declared.queue, no_ack=True) as messages:
                async for msg in messages:
                    received.append(msg.body)

        task = asyncio.ensure_future(consume())
        await eventually(lambda: bool(ch._consumers), 5, "the consumer")
        for n in range(1, 5):
            proxy.cut()
            await events.wait("reconnected", n)
            names_seen.add(declared.queue)
            await ch.basic_publish(str(n).encode(), exchange="amq.direct", routing_key="repeat")
            await eventually(lambda n=n: len(received) == n, 5, f"message {n}")
        assert received == [b"1", b"2", b"3", b"4"]
        assert len(names_seen) == 5  # a new server-named queue each time
        assert events.count("disconnected") == 4 and events.count("recovery_error") == 0
        assert not task.done()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def test_link_lost_again_during_recovery(
    proxy: Proxy, names: Names, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = names.exchange()
    async with robust(proxy.url) as conn:
        events = Events(conn)
        ch = await conn.channel()
        await ch.exchange_declare(x, "direct")
        declared = await ch.queue_declare("", exclusive=True)
        await ch.queue_bind(declared.queue, x, "k")
        consumer = await ch.consume(declared.queue, no_ack=True).start()
        original = Channel.queue_bind
        binds = 0

        async def cut_once(self: Channel, *args: Any, **kwargs: Any) -> Any:
            nonlocal binds
            binds += 1
            if binds == 1:
                proxy.cut()  # the new connection dies half-way through recovery
            return await original(self, *args, **kwargs)

        monkeypatch.setattr(Channel, "queue_bind", cut_once)
        proxy.cut()
        await events.wait("reconnected")
        assert binds == 2
        assert events.count("disconnected") == 1 and events.count("reconnected") == 1
        await ch.basic_publish(b"k", exchange=x, routing_key="k")
        assert (await consumer.get(5)).body == b"k"


async def test_close_from_a_coroutine_listener(proxy: Proxy) -> None:
    before = asyncio.all_tasks()
    conn = await robust(proxy.url)
    outcome: list[str] = []

    async def on_disconnected(c: aiorabbit.RobustConnection, exc: BaseException) -> None:
        await c.close()
        outcome.append(c.state.value)

    conn.add_listener("disconnected", on_disconnected)
    ch = await conn.channel()
    proxy.cut()
    await eventually(lambda: conn.state is State.CLOSED, 5, "closed")
    await eventually(lambda: outcome == ["closed"], 2, "the listener to finish")
    with pytest.raises((ConnectionClosed, ChannelClosed)):
        await ch.queue_declare("", exclusive=True)
    await asyncio.sleep(0.05)
    assert not conn._tasks and conn._supervisor is None
    assert {t for t in asyncio.all_tasks() - before if "Proxy._pump" not in repr(t)} == set()


async def test_get_cancelled_while_the_consumer_registers_leaves_no_orphan(
    proxy: Proxy, names: Names, connection: aiorabbit.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = names.queue()
    plain = await connection.channel()
    async with robust(proxy.url) as conn:
        ch = await conn.channel()
        await ch.queue_declare(queue)
        consumer = ch.consume(queue, consumer_tag="orphan-check")
        await consumer.start()
        original = aiorabbit.Channel._basic_consume

        async def slow_consume_ok(self: aiorabbit.Channel, inner: Any, *port: Any) -> str:
            proxy.stall(upstream=False, downstream=True)  # the consume-ok is held back
            return await original(self, inner, *port)

        monkeypatch.setattr(aiorabbit.Channel, "_basic_consume", slow_consume_ok)
        with pytest.raises(aiorabbit.NotFound):  # a channel error closes the consumer's channel
            await ch.queue_declare(f"{queue}-missing", passive=True)
        with pytest.raises(asyncio.TimeoutError):
            await consumer.get(timeout=0.5)  # cancelled while basic.consume is in flight
        monkeypatch.setattr(aiorabbit.Channel, "_basic_consume", original)
        proxy.resume()
        for i in range(4):
            await plain.basic_publish(b"%d" % i, routing_key=queue)
        got = [(await consumer.get(timeout=5)).body for _ in range(4)]
        assert got == [b"0", b"1", b"2", b"3"]  # none went to an orphaned consumer
        assert conn.state == "connected"  # the tag was not reused while live (530)
        ok = await queue_state(connection, queue)
        assert ok is not None and ok.consumer_count == 1
        await consumer.cancel()


async def test_a_stream_consumer_runs_an_object_with_an_async_call(amqp_url: str, names: Names) -> None:
    # The stream consumer wraps its callback to track offsets; an object
    # whose __call__ is ``async def`` must be awaited through that wrapper
    # (it used to be called without await: the callback never ran).
    stream = names.queue("stream-async-call")
    got: list[tuple[bytes, int]] = []

    class Handler:
        async def __call__(self, msg: aiorabbit.IncomingMessage) -> None:
            await asyncio.sleep(0)
            got.append((msg.body, msg.headers["x-stream-offset"]))
            await msg.ack()

    async with robust(amqp_url) as conn:
        ch = await conn.channel(publisher_confirms=True)
        await ch.queue_declare(stream, durable=True, arguments={"x-queue-type": "stream"})
        try:
            for i in range(5):
                await ch.basic_publish(b"%d" % i, routing_key=stream)
            await ch.basic_qos(prefetch_count=10)  # streams need a prefetch
            await ch.basic_consume(stream, Handler(), arguments={"x-stream-offset": "first"})
            await eventually(lambda: len(got) == 5, 5, "the five messages")
            assert [body for body, _ in got] == [b"0", b"1", b"2", b"3", b"4"]
        finally:
            await ch.queue_delete(stream)


async def test_a_failed_endpoint_hands_over_to_the_next_at_once() -> None:
    # With a backoff whose smallest delay is far longer than the test, the
    # live third endpoint is reached without waiting: the backoff applies
    # only once every endpoint failed in a row.
    slow = aiorabbit.Backoff(initial=30, maximum=30)
    async with Proxy(*BROKER) as live:
        urls = [url_for(free_port()), url_for(free_port()), live.url]
        started = time.monotonic()
        async with robust(urls, backoff=slow) as conn:
            assert time.monotonic() - started < 2
            assert conn.connection is not None and conn.connection.params.port == live.port
    # Every endpoint refusing: each round ends in a backoff delay, not a storm.
    delays: list[int] = []

    @dataclasses.dataclass(frozen=True)
    class Recorded(aiorabbit.Backoff):
        def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
            delays.append(attempt)
            return 0.01

    with pytest.raises(ConnectionFailed):
        await robust([url_for(free_port()), url_for(free_port())], backoff=Recorded(max_attempts=6))
    # Six attempts are three rounds of two: a delay after the first and the
    # second round (numbered as rounds), none inside a round, none at the end.
    assert delays == [1, 2]
