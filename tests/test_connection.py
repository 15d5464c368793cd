"""Connection: handshake, negotiation, errors, heartbeats, close, batching."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

import aiorabbit
from aiorabbit import (
    AuthenticationError,
    ChannelExhausted,
    ConnectionClosed,
    ConnectionFailed,
    HeartbeatTimeout,
    NotAllowed,
)

from . import ctl
from .proxy import Proxy


async def test_connect_await_and_context_manager(amqp_url: str) -> None:
    conn = await aiorabbit.connect(amqp_url)
    assert conn.is_open and not conn.is_closed
    assert conn.server_properties["product"] == "RabbitMQ"
    await conn.close()
    assert conn.is_closed and not conn.is_open
    await conn.close()  # idempotent
    async with aiorabbit.connect() as conn2:  # URL from $AMQP_URL
        assert conn2.is_open
    assert conn2.is_closed


async def test_concurrent_close(connection: aiorabbit.Connection) -> None:
    await asyncio.gather(connection.close(), connection.close(), connection.close())
    assert connection.is_closed
    assert connection.closed_reason is not None and connection.closed_reason.reply_code == 200
    with pytest.raises(ConnectionClosed):
        await connection.channel()


async def test_client_properties_reach_broker(amqp_url: str) -> None:
    async with aiorabbit.connect(amqp_url, name="props-check-1"):
        rows = await ctl.connections()
        names = [r["name"] for r in rows]
        assert "props-check-1" in names
        raw = await ctl.rabbitmqctl("list_connections", "client_properties", "--formatter", "json")
        assert "publisher_confirms" in raw and "consumer_cancel_notify" in raw
        assert "authentication_failure_close" in raw and "connection.blocked" in raw


async def test_bad_password(amqp_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="aiorabbit")
    with pytest.raises(AuthenticationError) as info:
        await aiorabbit.connect(amqp_url, password="Wr0ngPassw0rd!")
    assert "Wr0ngPassw0rd!" not in str(info.value)
    assert "Wr0ngPassw0rd!" not in repr(info.value)
    assert all("Wr0ngPassw0rd!" not in r.getMessage() for r in caplog.records)


async def test_amqplain_login(amqp_url: str) -> None:
    async with aiorabbit.connect(amqp_url, auth_mechanism="AMQPLAIN") as conn:
        ch = await conn.channel()
        assert (await ch.queue_declare("", exclusive=True)).queue.startswith("amq.gen-")


async def test_unknown_vhost(amqp_url: str) -> None:
    with pytest.raises(NotAllowed) as info:
        await aiorabbit.connect(amqp_url, virtual_host="no-such-vhost-xyz")
    assert info.value.reply_code == 530
    assert isinstance(info.value, ConnectionClosed)


async def test_unreachable_host_is_typed_and_fast() -> None:
    started = time.monotonic()
    with pytest.raises(ConnectionFailed) as info:
        await aiorabbit.connect("amqp://guest:guest@127.0.0.1:1/", connection_timeout=3)
    assert "127.0.0.1:1" in str(info.value)
    assert time.monotonic() - started < 3


async def test_silent_server_times_out() -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def silent(_r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        accepted.append(w)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        started = time.monotonic()
        with pytest.raises(ConnectionFailed, match="timed out"):
            await aiorabbit.connect(f"amqp://127.0.0.1:{port}/", connection_timeout=0.5)
        assert 0.4 < time.monotonic() - started < 2.5
    finally:
        for w in accepted:
            w.close()
        server.close()
        await server.wait_closed()


async def test_connection_attempts_retry() -> None:
    started = time.monotonic()
    with pytest.raises(ConnectionFailed):
        await aiorabbit.connect(
            "amqp://127.0.0.1:1/", connection_attempts=3, retry_delay=0.2, connection_timeout=1
        )
    assert time.monotonic() - started >= 0.4


async def test_tune_negotiation(amqp_url: str) -> None:
    async with aiorabbit.connect(amqp_url) as conn:
        # The broker proposes 60 s and frame_max 131072; we accept.
        assert conn.heartbeat == 60 and conn.frame_max == 131072
    async with aiorabbit.connect(amqp_url, heartbeat=5, frame_max=8192, channel_max=3) as conn:
        assert (conn.heartbeat, conn.frame_max, conn.channel_max) == (5, 8192, 3)
    async with aiorabbit.connect(amqp_url, heartbeat=0) as conn:
        assert conn.heartbeat == 0


async def test_channel_numbers_allocated_and_reused(amqp_url: str) -> None:
    async with aiorabbit.connect(amqp_url, channel_max=3) as conn:
        chans = [await conn.channel() for _ in range(3)]
        assert [c.number for c in chans] == [1, 2, 3]
        with pytest.raises(ChannelExhausted):
            await conn.channel()
        await chans[1].close()
        again = await conn.channel()
        assert again.number == 2
        assert again.is_open


@pytest.mark.parametrize("confirms", [False, True])
async def test_an_interrupted_channel_open_keeps_its_number_until_closed(
    amqp_url: str, confirms: bool
) -> None:
    # Reusing the number while channel.open is on the wire would be a second
    # channel.open for it, which the broker answers by closing the connection.
    async with aiorabbit.connect(amqp_url) as conn:
        opening = asyncio.ensure_future(conn.channel(publisher_confirms=confirms))
        for _ in range(2 if confirms else 1):
            await asyncio.sleep(0)  # channel.open (then confirm.select) is sent
        opening.cancel()
        with pytest.raises(asyncio.CancelledError):
            await opening
        assert list(conn._channels) == [1]
        again = await conn.channel()
        assert again.number == 2
        await again.queue_declare("", exclusive=True)
        for _ in range(100):
            if list(conn._channels) == [2]:
                break
            await asyncio.sleep(0.01)
        assert list(conn._channels) == [2]  # the first one was closed and freed
        assert (await conn.channel()).number == 1
        assert conn.is_open


@pytest.mark.slow
async def test_heartbeat_timeout_fails_waiters(amqp_url: str) -> None:
    async with Proxy("127.0.0.1", 5672) as proxy:
        conn = await aiorabbit.connect(proxy.url, heartbeat=1)
        ch = await conn.channel()
        q = await ch.queue_declare("", exclusive=True)
        proxy.stall()
        started = time.monotonic()
        with pytest.raises(HeartbeatTimeout):
            async with ch.consume(q.queue) as messages:
                async for _ in messages:
                    pass
        elapsed = time.monotonic() - started
        assert elapsed < 4.5
        assert conn.is_closed and isinstance(conn.closed_reason, HeartbeatTimeout)
        with pytest.raises(HeartbeatTimeout):
            await ch.queue_declare("", exclusive=True)


@pytest.mark.slow
async def test_heartbeats_keep_an_idle_link_alive(amqp_url: str) -> None:
    async with aiorabbit.connect(amqp_url, heartbeat=1) as conn:
        await asyncio.sleep(3.5)
        assert conn.is_open
        ch = await conn.channel()
        await ch.queue_declare("", exclusive=True)


async def test_server_forced_close_fails_everything(amqp_url: str, names: object) -> None:
    conn = await aiorabbit.connect(amqp_url, name="forced-close-test")
    confirm_ch = await conn.channel(publisher_confirms=True)
    ch = await conn.channel()
    q = await ch.queue_declare("", exclusive=True)

    async def consume() -> None:
        async with ch.consume(q.queue) as messages:
            async for _ in messages:
                pass

    consumer = asyncio.ensure_future(consume())
    getter = asyncio.ensure_future(conn.wait_closed())
    await asyncio.sleep(0.2)
    await ctl.close_connection("forced-close-test", "maintenance")
    with pytest.raises(aiorabbit.ConnectionForced) as info:
        await asyncio.wait_for(consumer, 10)
    assert info.value.reply_code == 320 and "maintenance" in info.value.reply_text
    reason = await asyncio.wait_for(getter, 5)
    assert isinstance(reason, aiorabbit.ConnectionForced)
    with pytest.raises(aiorabbit.ConnectionForced):
        await confirm_ch.basic_publish(b"x", routing_key=q.queue)
    await conn.close()  # still idempotent after a forced close


async def test_update_secret(connection: aiorabbit.Connection) -> None:
    await connection.update_secret("guest", "token refresh")
    ch = await connection.channel()
    await ch.queue_declare("", exclusive=True)


async def test_writes_are_batched_per_loop_turn(connection: aiorabbit.Connection) -> None:
    ch = await connection.channel()
    q = await ch.queue_declare("", exclusive=True)
    transport = connection._transport
    assert transport is not None
    writes: list[int] = []

    class Counting:
        """Forwards to the real transport, counting the write calls."""

        def __getattr__(self, name: str) -> object:
            return getattr(transport, name)

        def write(self, data: bytes) -> None:
            writes.append(1)
            transport.write(data)

        def writelines(self, data: list[bytes]) -> None:
            writes.append(len(data))
            transport.writelines(data)

    connection._outbox.attach(Counting())  # type: ignore[arg-type]
    try:
        await asyncio.gather(*(ch.basic_publish(b"m%d" % i, routing_key=q.queue) for i in range(200)))
        await asyncio.sleep(0.05)
    finally:
        connection._outbox.attach(transport)
    assert len(writes) == 1  # 200 publishes, one write
    assert (await ch.queue_declare(q.queue, passive=True)).message_count == 200


@pytest.mark.slow
async def test_flow_control_makes_publishers_wait(amqp_url: str) -> None:
    async with Proxy("127.0.0.1", 5672) as proxy:
        conn = await aiorabbit.connect(proxy.url)
        ch = await conn.channel()
        q = await ch.queue_declare("", exclusive=True)
        proxy.stall(upstream=True, downstream=False)
        body = b"x" * 1024 * 1024
        sent = 0

        async def publish_forever() -> None:
            nonlocal sent
            while True:
                await ch.basic_publish(body, routing_key=q.queue)
                sent += 1

        task = asyncio.ensure_future(publish_forever())
        await asyncio.sleep(1.0)
        assert not task.done()
        assert conn._outbox.paused
        first = sent
        await asyncio.sleep(0.5)
        assert sent == first  # waiting, not buffering
        transport = conn._transport
        assert transport is not None
        # Bounded: a few MiB of socket buffers at most, not hundreds.
        assert transport.get_write_buffer_size() < 64 * 1024 * 1024
        assert sent < 200
        proxy.resume()
        await asyncio.sleep(0.5)
        assert sent > first
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await conn.close()


async def test_waiting_publishers_take_turns_and_cancelled_ones_pass_theirs_on(amqp_url: str) -> None:
    async with Proxy("127.0.0.1", 5672) as proxy:
        conn = await aiorabbit.connect(proxy.url)
        ch = await conn.channel(publisher_confirms=True)
        q = (await ch.queue_declare("", exclusive=True)).queue
        proxy.stall(upstream=True, downstream=False)
        body = b"x" * 256 * 1024
        done: list[int] = []
        queued: list[asyncio.Task[None]] = []  # waiting for the transport, in order

        async def publish(i: int) -> None:
            if conn._outbox.paused:
                queued.append(tasks[i])
            await ch.basic_publish(body, routing_key=q)
            done.append(i)

        tasks = [asyncio.ensure_future(publish(i)) for i in range(60)]
        await asyncio.sleep(1.0)
        assert conn._outbox.paused and not done
        assert len(queued) >= 40 and len(conn._outbox.waiters) == len(queued)  # queued, not buffered
        for task in queued[:5] + queued[-10:]:  # from the head and the tail of the queue
            task.cancel()
        await asyncio.sleep(0)
        proxy.resume()
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
        # Nobody was left waiting: every task either published (and was
        # confirmed) or was cancelled before it wrote.
        assert all(r is None or isinstance(r, asyncio.CancelledError) for r in results)
        assert sum(isinstance(r, asyncio.CancelledError) for r in results) == 15
        assert len(done) == 45
        assert (await ch.queue_declare(q, passive=True)).message_count == len(done)
        assert not conn._outbox.waiters
        await conn.close()


async def test_repr_and_logs_hide_password(amqp_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="aiorabbit")
    async with aiorabbit.connect(amqp_url) as conn:
        assert "guest:guest" not in repr(conn)
        assert "******" in repr(conn)
    assert all(":guest@" not in r.getMessage() for r in caplog.records)


def test_warnings_reach_stderr_when_the_program_configures_no_logging() -> None:
    # A library NullHandler would swallow them: under uvicorn (which only
    # configures its own loggers) a failing consumer printed nothing.
    import subprocess
    import sys

    code = (
        "import logging, aiorabbit\n"
        "assert not logging.getLogger('aiorabbit').handlers\n"
        "logging.getLogger('aiorabbit').warning('visible warning')\n"
        "logging.getLogger('aiorabbit.fastapi').error('visible error')\n"
        "logging.getLogger('aiorabbit').info('quiet info')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "visible warning" in done.stderr and "visible error" in done.stderr
    assert "quiet info" not in done.stderr


@pytest.mark.parametrize(
    ("garbage", "needle"),
    [
        (b"\x01\x00\x01\x00\x00\x00\x04\x00\x3c\x00\x50\x00", "frame-end"),  # bad end octet
        (b"\x09\x00\x00\x00\x00\x00\x00\xce", "unknown frame type"),
        (b"\x01\x00\x00\x00\x00\x00\x02\x00\x0a\xce", "truncated"),
        (b"\x01\x00\x00\x00\x00\x00\x04\x00\x63\x00\x01\xce", "unknown method"),
        (b"\x03\x00\x00\x01\x00\x00\x00\x00", "frame_max"),  # 16 MiB body frame > frame_max
    ],
)
async def test_malformed_frame_from_server_fails_cleanly(garbage: bytes, needle: str) -> None:
    async with Proxy("127.0.0.1", 5672) as proxy:
        conn = await aiorabbit.connect(proxy.url)
        ch = await conn.channel()
        q = (await ch.queue_declare("", exclusive=True)).queue
        waiter = asyncio.ensure_future(conn.wait_closed())
        proxy.inject(garbage)
        reason = await asyncio.wait_for(waiter, 5)
        # Fatal and typed: the same server would send the same frames again.
        assert isinstance(reason, aiorabbit.ProtocolViolation)
        assert reason.reply_code == 501
        assert isinstance(reason.__cause__, aiorabbit.FrameError)
        assert needle in str(reason)
        with pytest.raises(aiorabbit.ProtocolViolation):
            await ch.basic_get(q)
        await conn.close()


async def test_publishers_write_in_the_order_they_started_across_a_full_socket(amqp_url: str) -> None:
    """While publishers wait for the transport to drain, one that comes
    later queues behind them instead of overtaking them when it resumes:
    messages reach the broker in the order their publishes started."""
    async with Proxy("127.0.0.1", 5672) as proxy:
        conn = await aiorabbit.connect(proxy.url)
        ch = await conn.channel()
        q = (await ch.queue_declare("", exclusive=True)).queue
        proxy.stall(upstream=True, downstream=False)
        pad = b"x" * 256 * 1024

        def publish(i: int) -> asyncio.Future[None]:
            return asyncio.ensure_future(ch.basic_publish(b"%06d" % i + pad, routing_key=q))

        early = [publish(i) for i in range(40)]
        await asyncio.sleep(1.0)
        assert conn._outbox.paused and len(conn._outbox.waiters) >= 10
        proxy.resume()
        late = []
        for i in range(40, 80):  # while the early ones are woken one at a time
            await asyncio.sleep(0)
            late.append(publish(i))
        await asyncio.wait_for(asyncio.gather(*early, *late), 30)
        for _ in range(100):  # the last writes may still fill the transport
            if not conn._outbox.paused:
                break
            await asyncio.sleep(0.05)
        assert not conn._outbox.waiters and not conn._outbox.hold
        order = []
        async with ch.consume(q, no_ack=True) as messages:
            async for msg in messages:
                order.append(int(msg.body[:6]))
                if len(order) == 80:
                    break
        assert order == list(range(80))
        await conn.close()
