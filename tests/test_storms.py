"""Never storm, never hang: how the robust connection retries, gives up and
closes (issue "never lie, never hang, never storm", items 6 and 8)."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest

import aiorabbit
from aiorabbit.codec import methods as m

from .amqp_server import Peer, ScriptedServer, serving
from .proxy import Proxy


def _events(conn: aiorabbit.RobustConnection) -> list[tuple[str, Any]]:
    seen: list[tuple[str, Any]] = []
    for event in ("disconnected", "reconnected", "recovery_failed"):
        conn.add_listener(event, lambda c, *args, event=event: seen.append((event, args)))
    return seen


async def _until(cond: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


# ---------------------------------------------------------------------------
# item 8: protocol errors are fatal; repeated failures back off, then stop


async def test_garbage_after_consume_ok_ends_recovery_instead_of_a_loop() -> None:
    def garbage(peer: Peer, channel: int, method: m.BasicConsume) -> bool:
        peer.send_method(channel, m.BasicConsumeOk(consumer_tag=method.consumer_tag or "ctag"))
        peer.send_raw(b"\x09\x00\x00\x00\x00\x00\x00\xce")  # an unknown frame type
        return True

    script = serving({m.BasicConsume: garbage})

    async with ScriptedServer(script) as server:
        conn = await aiorabbit.connect_robust(server.url)
        seen = _events(conn)
        ch = await conn.channel()
        consumer = ch.consume("q")
        try:
            await consumer.start()
        except aiorabbit.AMQPError:
            pass
        await _until(lambda: conn.is_closed, 3, "the connection to give up")
        await asyncio.sleep(0.5)
        assert server.connections == 1, "a protocol error must not be retried"
        assert isinstance(conn.closed_reason, aiorabbit.ProtocolViolation)
        assert [e for e, _ in seen] == ["recovery_failed"]
        await conn.close()


async def test_a_step_that_fails_the_same_way_every_time_ends_in_recovery_failed() -> None:
    async def script(peer: Peer) -> None:
        await peer.handshake()
        if peer.index == 0:
            await peer.serve()
            return

        def refuse(peer: Peer, channel: int, method: m.QueueDeclare) -> bool:
            peer.send_method(0, m.ConnectionClose(
                reply_code=541, reply_text="INTERNAL_ERROR - boom", class_id=50, method_id=10))
            return True

        await peer.serve({m.QueueDeclare: refuse})

    backoff = aiorabbit.Backoff(initial=0.01, maximum=0.05, max_same_failures=4)
    async with ScriptedServer(script) as server:
        conn = await aiorabbit.connect_robust(server.url, backoff=backoff)
        seen = _events(conn)
        ch = await conn.channel()
        await ch.queue_declare("jobs", durable=True)
        server.peers[0].abort()  # every reconnect now fails redeclaring "jobs"
        await _until(lambda: conn.is_closed, 10, "recovery to give up")
        assert isinstance(conn.closed_reason, aiorabbit.RecoveryFailed)
        assert "4 times in a row" in str(conn.closed_reason)
        assert "INTERNAL_ERROR - boom" in str(conn.closed_reason)
        assert server.connections == 1 + 4
        assert [e for e, _ in seen] == ["disconnected", "recovery_failed"]
        with pytest.raises(aiorabbit.ChannelClosed) as caught:
            await ch.queue_declare("other", durable=True)
        assert isinstance(caught.value.cause, aiorabbit.RecoveryFailed)
        await conn.close()


@pytest.mark.slow
async def test_a_connection_lost_soon_after_each_recovery_backs_off() -> None:
    # Every connection after the first is dropped as soon as it is open.
    # The attempt count used to restart at each recovery: no delay at all,
    # hundreds of reconnects a second.
    async def script(peer: Peer) -> None:
        await peer.handshake()
        if peer.index == 0:
            await peer.serve()
            return
        serving = asyncio.ensure_future(peer.serve())
        await asyncio.sleep(0.01)
        peer.abort()
        await asyncio.gather(serving, return_exceptions=True)

    backoff = aiorabbit.Backoff(initial=0.1, maximum=1.0)
    async with ScriptedServer(script) as server:
        async with aiorabbit.connect_robust(server.url, backoff=backoff) as conn:
            await conn.channel()
            server.peers[0].abort()
            await asyncio.sleep(3)
            # Full jitter from ceilings 0.1, 0.2, 0.4, 0.8, 1, 1...: a handful
            # of reconnects in 3 s, not hundreds, and it does not give up.
            assert 2 <= server.connections <= 16, server.connections
            assert not conn.is_closed


def test_backoff_options_are_checked() -> None:
    with pytest.raises(aiorabbit.InvalidArgument):
        aiorabbit.Backoff(reset_after=-1)
    with pytest.raises(aiorabbit.InvalidArgument):
        aiorabbit.Backoff(max_same_failures=0)
    assert aiorabbit.Backoff(max_same_failures=None).max_same_failures is None


def test_what_counts_as_the_same_failure() -> None:
    from aiorabbit.backoff import failure_signature

    assert failure_signature(aiorabbit.ConnectionLost(0, "reset")) is None
    assert failure_signature(aiorabbit.ConnectionFailed("refused")) is None
    assert failure_signature(aiorabbit.InternalError(541, "x")) == failure_signature(
        aiorabbit.InternalError(541, "x")
    )
    assert failure_signature(aiorabbit.InternalError(541, "x")) != failure_signature(
        aiorabbit.NotFound(404, "x")
    )
    assert failure_signature(asyncio.TimeoutError()) is not None


# ---------------------------------------------------------------------------
# item 6: close() always returns, in bounded time, leaving no task


async def test_close_always_returns_in_a_loop_of_connect_consume_sleep_close(amqp_url: str) -> None:
    rng = random.Random(1)
    async with aiorabbit.connect(amqp_url) as setup:
        ch = await setup.channel()
        q = (await ch.queue_declare("storm-close-loop", auto_delete=False, durable=True)).queue
    try:
        for _ in range(150):
            conn = await aiorabbit.connect_robust(amqp_url)
            ch2 = await conn.channel()
            consumer = ch2.consume(q)
            await consumer.start()
            await asyncio.sleep(rng.random() * 0.01)
            await asyncio.wait_for(conn.close(), 10)
            assert conn.is_closed
            assert not conn._tasks and (conn._supervisor is None or conn._supervisor.done())
    finally:
        async with aiorabbit.connect(amqp_url) as cleanup:
            await (await cleanup.channel()).queue_delete(q)


@pytest.mark.parametrize("delay", [0.0, 0.005, 0.02, 0.05])
async def test_close_while_recovering_returns(delay: float) -> None:
    async with Proxy("127.0.0.1", 5672) as proxy:
        for _ in range(5):
            backoff = aiorabbit.Backoff(initial=0.01, maximum=0.02)
            conn = await aiorabbit.connect_robust(proxy.url, backoff=backoff)
            ch = await conn.channel()
            await ch.queue_declare("", exclusive=True)
            await ch.consume("amq.rabbitmq.reply-to", no_ack=True).start()
            proxy.cut()
            await asyncio.sleep(delay)
            await asyncio.wait_for(conn.close(), 10)
            assert conn.is_closed and not conn._tasks


async def test_a_task_that_swallows_cancellation_does_not_hold_close(monkeypatch: pytest.MonkeyPatch) -> None:
    from aiorabbit import robust

    stubborn_cancels = 0

    async def swallows_twice() -> None:
        nonlocal stubborn_cancels
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                stubborn_cancels += 1
                if stubborn_cancels > 2:
                    raise

    task = asyncio.ensure_future(swallows_twice())
    await asyncio.sleep(0)
    await asyncio.wait_for(robust.stop_task(task, "test task"), 5)
    assert task.cancelled() and stubborn_cancels == 3

    release = False

    async def never_stops() -> None:
        while not release:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                pass

    monkeypatch.setattr(robust.common, "_STOP_TRIES", 3)
    monkeypatch.setattr(robust.common, "_STOP_WAIT", 0.05)
    forever = asyncio.ensure_future(never_stops())
    await asyncio.sleep(0)
    started = time.monotonic()
    await robust.stop_task(forever, "test task")
    assert time.monotonic() - started < 1 and not forever.done()
    release = True
    forever.cancel()
    await forever


@pytest.mark.parametrize("timeout", [10.0, None])
async def test_wait_for_never_swallows_a_cancellation(timeout: float | None) -> None:
    # CPython gh-86296: on 3.10/3.11 asyncio.wait_for returns the result when
    # the cancellation arrives in the loop turn the inner future completes,
    # and the cancelled task runs on.  The recovery loop relies on ours.
    from aiorabbit._compat import wait_for

    fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    task = asyncio.ensure_future(wait_for(fut, timeout))
    await asyncio.sleep(0)  # the task now waits on fut
    fut.set_result(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_wait_for_times_out() -> None:
    from aiorabbit._compat import wait_for

    with pytest.raises(asyncio.TimeoutError):
        await wait_for(asyncio.sleep(5), 0.05)
    assert await wait_for(asyncio.sleep(0, result=7), 1) == 7


async def test_connect_robust_never_shows_a_malformed_urls_password() -> None:
    for url in ("amqp://user:s3cr3t\uff03x@host/", "amqp://user:s3cr3t/x@h1,h2/", "amqp://user:s3cr3t#x@h1,h2/"):
        with pytest.raises(aiorabbit.InvalidArgument) as caught:
            await aiorabbit.connect_robust(url)
        assert "s3cr3t" not in str(caught.value) and caught.value.__cause__ is None
