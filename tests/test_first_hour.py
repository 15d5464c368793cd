"""What a newcomer meets first (issue "a newcomer's first hour"): channels
as context managers, a robust connection that is a drop-in, errors that say
what went wrong, loops that end when the program closes."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import traceback

import pytest

import aiorabbit
from aiorabbit.codec import methods as m

from .amqp_server import Peer, ScriptedServer, serving
from .proxy import Proxy

FAST = aiorabbit.Backoff(initial=0.05, maximum=0.2)


async def _cut_and_recover(proxy: Proxy, conn: aiorabbit.RobustConnection) -> None:
    recovered = asyncio.Event()
    conn.add_listener("reconnected", lambda c: recovered.set())
    proxy.cut()
    await asyncio.wait_for(recovered.wait(), 10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------
# item 3: async with conn.channel() as ch


async def test_async_with_channel_on_a_plain_connection(amqp_url: str) -> None:
    async with aiorabbit.connect(amqp_url) as conn:
        async with conn.channel() as ch:
            assert isinstance(ch, aiorabbit.Channel) and ch.is_open
            await ch.queue_declare("", exclusive=True)
        assert ch.is_closed
        async with conn.channel(publisher_confirms=True) as confirmed:
            assert confirmed.publisher_confirms
        plain = await conn.channel()  # awaiting still works
        assert plain.is_open


async def test_async_with_channel_on_a_robust_connection(amqp_url: str) -> None:
    async with aiorabbit.connect_robust(amqp_url) as conn:
        async with conn.channel() as ch:
            assert isinstance(ch, aiorabbit.RobustChannel) and ch.is_open
            await ch.queue_declare("", exclusive=True)
        assert ch.is_closed
        assert ch not in conn._channels


# ---------------------------------------------------------------------------
# item 4: the robust connection is a drop-in


async def test_robust_connection_has_the_plain_connections_api(amqp_url: str) -> None:
    plain = {n for n in dir(aiorabbit.Connection) if not n.startswith("_")}
    robust = {n for n in dir(aiorabbit.RobustConnection) if not n.startswith("_")}
    assert plain <= robust, plain - robust
    plain_ch = {n for n in dir(aiorabbit.Channel) if not n.startswith("_")}
    robust_ch = {n for n in dir(aiorabbit.RobustChannel) if not n.startswith("_")}
    assert plain_ch <= robust_ch, plain_ch - robust_ch

    conn = await aiorabbit.connect_robust(amqp_url)
    assert conn.blocked_reason is None and conn.params.port == 5672
    await asyncio.wait_for(conn.wait_unblocked(), 1)

    def callback(c: object, reason: str | None) -> None:
        pass

    conn.add_blocked_callback(callback)
    conn.remove_blocked_callback(callback)
    ch = await conn.channel()
    assert ch.number is not None and ch.closed_reason is None
    waiting = asyncio.ensure_future(conn.wait_closed())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await conn.close()
    reason = await asyncio.wait_for(waiting, 5)
    assert isinstance(reason, aiorabbit.ConnectionClosed) and reason.by_client
    assert ch.closed_reason is reason


async def test_robust_confirm_select_survives_recovery() -> None:
    async with Proxy("127.0.0.1", 5672) as proxy:
        async with aiorabbit.connect_robust(proxy.url, backoff=FAST) as conn:
            ch = await conn.channel()
            q = (await ch.queue_declare("", exclusive=True)).queue
            await ch.confirm_select()
            assert ch.publisher_confirms and ch.channel is not None and ch.channel.publisher_confirms
            await _cut_and_recover(proxy, conn)
            await ch.basic_publish(b"confirmed", routing_key=q)
            assert ch.channel.publisher_confirms


async def test_robust_transactions_and_a_transaction_lost_to_a_cut() -> None:
    async with Proxy("127.0.0.1", 5672) as proxy:
        async with aiorabbit.connect_robust(proxy.url, backoff=FAST) as conn:
            ch = await conn.channel()
            declared = await ch.queue_declare("", exclusive=True)
            with pytest.raises(aiorabbit.InvalidArgument):
                await ch.tx_commit()
            await ch.tx_select()
            await ch.basic_publish(b"committed", routing_key=declared.queue)
            await ch.tx_commit()
            await ch.basic_publish(b"rolled back", routing_key=declared.queue)
            await ch.tx_rollback()
            got = await ch.basic_get(declared.queue, no_ack=True)
            assert got is not None and got.body == b"committed"
            assert await ch.basic_get(declared.queue, no_ack=True) is None
            # A cut in the middle of a transaction: its publish is gone and
            # the commit says so, then a new transaction works.
            await ch.basic_publish(b"lost", routing_key=declared.queue)
            await _cut_and_recover(proxy, conn)
            with pytest.raises(aiorabbit.TransactionLost):
                await ch.tx_commit()
            await ch.basic_publish(b"again", routing_key=declared.queue)
            await ch.tx_commit()
            got = await ch.basic_get(declared.queue, no_ack=True)
            assert got is not None and got.body == b"again"


# ---------------------------------------------------------------------------
# item 5: failures are visible


async def test_a_wrong_port_under_connect_robust_fails_visibly(caplog: pytest.LogCaptureFixture) -> None:
    port = _free_port()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="aiorabbit"):
        with pytest.raises(aiorabbit.ConnectionFailed) as caught:
            await aiorabbit.connect_robust(
                f"amqp://guest:s3cret@127.0.0.1:{port}/", backoff=FAST, first_connect_timeout=0.5
            )
    assert time.monotonic() - started < 3
    text = str(caught.value)
    assert f"127.0.0.1:{port}" in text and "last error" in text and "s3cret" not in text
    assert isinstance(caught.value.__cause__, aiorabbit.ConnectionFailed)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings and all("s3cret" not in w for w in warnings)
    assert any(f"127.0.0.1:{port}" in w and "failed" in w for w in warnings)


async def test_recovery_timeout_names_the_url_and_the_last_error() -> None:
    async with Proxy("127.0.0.1", 5672) as proxy:
        conn = await aiorabbit.connect_robust(proxy.url, backoff=FAST, wait_timeout=0.3)
        ch = await conn.channel()
        proxy.stall()
        proxy.cut()
        await asyncio.sleep(0.1)
        with pytest.raises(aiorabbit.RecoveryTimeout) as caught:
            await ch.queue_declare("", exclusive=True)
        text = str(caught.value)
        assert f"127.0.0.1:{proxy.port}" in text and "last error" in text and "guest:guest" not in text
        assert isinstance(caught.value.__cause__, aiorabbit.AMQPError)
        proxy.resume()
        await conn.close()


# ---------------------------------------------------------------------------
# item 9: a refused login shows a public class


async def test_a_refused_login_is_a_public_class(amqp_url: str) -> None:
    url = amqp_url.replace("guest:guest", "guest:wrong")
    with pytest.raises(aiorabbit.AuthenticationError) as caught:
        await aiorabbit.connect(url)
    exc = caught.value
    assert type(exc) is aiorabbit.LoginRefused
    assert isinstance(exc, aiorabbit.ConnectionClosed) and exc.reply_code == 403
    shown = "".join(traceback.format_exception(exc))
    assert "._" not in shown.splitlines()[-1] and "LoginRefused" in shown.splitlines()[-1]


# ---------------------------------------------------------------------------
# item 10: a port that is not AMQP


@pytest.mark.parametrize(
    "greeting",
    [
        b'INFO {"server_id":"NATS","version":"2.9"}\r\n',  # NATS speaks first
        b"J\x00\x00\x00\n5.5.5-10.11.6-MariaDB\x00",  # a MySQL greeting
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",  # an HTTP proxy
    ],
)
async def test_a_port_that_is_not_amqp_says_so(greeting: bytes) -> None:
    async def script(peer: Peer) -> None:
        peer.send_raw(greeting)
        await peer.drain()
        await asyncio.sleep(1)

    async with ScriptedServer(script) as server:
        with pytest.raises(aiorabbit.ConnectionFailed) as caught:
            await aiorabbit.connect(server.url, connection_attempts=3, retry_delay=0.05)
        text = str(caught.value)
        assert "did not answer as an AMQP 0-9-1 broker" in text
        assert "is the port right" in text and repr(greeting[:8])[2:-1] in text
        assert "frame_max" not in text
        assert not caught.value.retryable and server.connections == 1


# ---------------------------------------------------------------------------
# item 14: a loop whose connection the program closed ends cleanly


async def test_async_for_ends_cleanly_when_the_program_closes(amqp_url: str) -> None:
    for closing in ("connection", "channel"):
        conn = await aiorabbit.connect(amqp_url)
        ch = await conn.channel()
        q = (await ch.queue_declare("", exclusive=True)).queue
        got: list[bytes] = []
        first = asyncio.Event()

        async def consume(ch: aiorabbit.Channel = ch, q: str = q, got: list[bytes] = got,
                          first: asyncio.Event = first) -> None:
            async with ch.consume(q, no_ack=True) as messages:
                async for msg in messages:
                    got.append(msg.body)
                    first.set()

        task = asyncio.ensure_future(consume())
        await ch.basic_publish(b"one", routing_key=q)
        await asyncio.wait_for(first.wait(), 5)
        await (conn.close() if closing == "connection" else ch.close())
        await asyncio.wait_for(task, 5)  # returns, no ConnectionClosed (200)
        assert got == [b"one"]
        await conn.close()


async def test_async_for_ends_cleanly_when_the_program_closes_a_robust_connection(amqp_url: str) -> None:
    conn = await aiorabbit.connect_robust(amqp_url)
    ch = await conn.channel()
    q = (await ch.queue_declare("", exclusive=True)).queue

    async def consume() -> None:
        async with ch.consume(q, no_ack=True) as messages:
            async for _ in messages:
                pass

    task = asyncio.ensure_future(consume())
    await asyncio.sleep(0.1)
    await conn.close()
    await asyncio.wait_for(task, 5)


async def test_a_connection_lost_still_raises_in_the_loop() -> None:
    async with Proxy("127.0.0.1", 5672) as proxy:
        conn = await aiorabbit.connect(proxy.url)
        ch = await conn.channel()
        q = (await ch.queue_declare("", exclusive=True)).queue
        async with ch.consume(q, no_ack=True) as messages:
            proxy.cut()
            with pytest.raises(aiorabbit.ConnectionLost):
                async for _ in messages:
                    pass
        await conn.close()


async def test_a_broker_close_still_raises_in_the_loop() -> None:
    def closing(peer: Peer, channel: int, method: m.BasicConsume) -> bool:
        peer.send_method(channel, m.BasicConsumeOk(consumer_tag="c"))
        forced = m.ConnectionClose(reply_code=320, reply_text="CONNECTION_FORCED", class_id=0, method_id=0)
        peer.send_method(0, forced)
        return True

    script = serving({m.BasicConsume: closing})

    async with ScriptedServer(script) as server:
        conn = await aiorabbit.connect(server.url)
        ch = await conn.channel()
        async with ch.consume("q") as messages:
            with pytest.raises(aiorabbit.ConnectionForced):
                async for _ in messages:
                    pass
        await conn.close()
