"""A hostile or broken server: typed errors in bounded time, never a hang,
never memory the server did not pay for.  The server is scripted
(tests/amqp_server.py): RabbitMQ does not misbehave on request."""

from __future__ import annotations

import asyncio
import time

import pytest

import aiorabbit
from aiorabbit.backoff import is_recoverable
from aiorabbit.codec import methods as m
from aiorabbit.codec.frames import PROTOCOL_HEADER

from .amqp_server import Peer, ScriptedServer, serving


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


async def _consume_tag(peer: Peer) -> str:
    """Serve until the client starts a consumer; return its tag."""
    tag: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    def on_consume(peer: Peer, channel: int, method: m.BasicConsume) -> bool:
        name = method.consumer_tag or "ctag-1"
        peer.send_method(channel, m.BasicConsumeOk(consumer_tag=name))
        if not tag.done():
            tag.set_result(name)
        return True

    serving = asyncio.ensure_future(peer.serve({m.BasicConsume: on_consume}))
    try:
        done, _ = await asyncio.wait({tag, serving}, timeout=5, return_when=asyncio.FIRST_COMPLETED)
        assert tag in done, "the client never consumed"
        return tag.result()
    finally:
        if not tag.done():
            serving.cancel()
        peer.serving = serving  # type: ignore[attr-defined]


# ---------------------------------------------------------------------------
# item 4: the declared body size is not trusted


@pytest.mark.parametrize("body_size", [2**40, 2**62, 2**64 - 1, 128 * 1024 * 1024 + 1])
async def test_a_body_over_max_body_size_closes_with_a_typed_error(body_size: int) -> None:
    async def script(peer: Peer) -> None:
        await peer.handshake()
        tag = await _consume_tag(peer)
        peer.send_content(
            1,
            m.BasicDeliver(consumer_tag=tag, delivery_tag=1, exchange="", routing_key="q"),
            b"x" * 65536,
            body_size=body_size,
        )
        await peer.serving  # type: ignore[attr-defined]

    async with ScriptedServer(script) as server:
        conn = await aiorabbit.connect(server.url)
        ch = await conn.channel()
        async with ch.consume("q") as messages:
            with pytest.raises(aiorabbit.ProtocolViolation) as caught:
                await messages.get(timeout=5)
        reason = await asyncio.wait_for(conn.wait_closed(), 5)
        assert reason is caught.value
        assert isinstance(reason.__cause__, aiorabbit.BodyTooLarge)
        assert f"{body_size} bytes exceeds max_body_size" in str(reason)
        assert not is_recoverable(reason)
        await conn.close()


async def test_memory_grows_with_what_arrives_not_with_what_the_header_claims() -> None:
    arrived = asyncio.Event()

    async def script(peer: Peer) -> None:
        await peer.handshake()
        tag = await _consume_tag(peer)
        # A gigabyte announced, 64 KiB sent, then silence.
        peer.send_content(
            1,
            m.BasicDeliver(consumer_tag=tag, delivery_tag=1, exchange="", routing_key="q"),
            b"x" * 65536,
            body_size=2**30,
        )
        await peer.drain()
        arrived.set()
        await peer.serving  # type: ignore[attr-defined]

    async with ScriptedServer(script) as server:
        before = _rss()
        conn = await aiorabbit.connect(server.url, max_body_size=2**31)
        ch = await conn.channel()
        async with ch.consume("q"):
            await asyncio.wait_for(arrived.wait(), 5)
            await asyncio.sleep(0.2)
            grown = _rss() - before
            assert conn.is_open
        await conn.close()
    assert grown < 64 * 1024 * 1024, f"RSS grew by {grown} bytes for 64 KiB received"


async def test_max_body_size_is_an_option(amqp_url: str) -> None:
    with pytest.raises(aiorabbit.InvalidArgument, match="max_body_size"):
        aiorabbit.ConnectionParameters(max_body_size=-1)
    params = aiorabbit.ConnectionParameters.from_url("amqp://h/?max_body_size=1024")
    assert params.max_body_size == 1024
    # A body under the limit on a real broker arrives whole; one over it
    # closes the connection with the typed error.
    async with aiorabbit.connect(amqp_url, max_body_size=100_000) as conn:
        ch = await conn.channel(publisher_confirms=True)
        q = (await ch.queue_declare("", exclusive=True)).queue
        await ch.basic_publish(b"a" * 100_000, routing_key=q)
        msg = await ch.basic_get(q, no_ack=True)
        assert msg is not None and msg.body == b"a" * 100_000
        await ch.basic_publish(b"b" * 100_001, routing_key=q)
        with pytest.raises(aiorabbit.ProtocolViolation, match="max_body_size"):
            await ch.basic_get(q)


async def test_no_exception_escapes_the_protocol_callbacks_untyped(
    amqp_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whatever goes wrong while handling received bytes (here: an allocation
    # that fails), the caller gets a typed error, not ConnectionLost(0, '').
    from aiorabbit import assembly

    async with aiorabbit.connect(amqp_url) as conn:
        ch = await conn.channel(publisher_confirms=True)
        q = (await ch.queue_declare("", exclusive=True)).queue
        await ch.basic_publish(b"z" * 300_000, routing_key=q)  # assembled from frames

        def no_memory(self: object, need: int) -> bytearray:
            raise MemoryError("injected")

        monkeypatch.setattr(assembly.Assembler, "_assembly", no_memory)
        with pytest.raises(aiorabbit.ProtocolViolation) as caught:
            await ch.basic_get(q)
        assert "MemoryError" in str(caught.value)
        assert conn.is_closed


# ---------------------------------------------------------------------------
# item 12: a protocol header in answer to ours


async def test_a_protocol_header_reply_is_a_version_mismatch_not_retried() -> None:
    async def script(peer: Peer) -> None:
        await peer.read_protocol_header()
        peer.send_raw(PROTOCOL_HEADER)  # RabbitMQ's "unsupported version" answer
        await peer.drain()
        peer.close()

    async with ScriptedServer(script) as server:
        started = time.monotonic()
        with pytest.raises(aiorabbit.ConnectionFailed) as caught:
            await aiorabbit.connect(server.url, connection_attempts=3, retry_delay=0.1)
        assert time.monotonic() - started < 3
        assert not caught.value.retryable
        assert "protocol version mismatch" in str(caught.value)
        assert "frame_max" not in str(caught.value)
        assert isinstance(caught.value.__cause__, aiorabbit.ProtocolVersionMismatch)
        assert server.connections == 1  # not retried
        assert not is_recoverable(caught.value)


def test_errors_never_read_as_a_bare_code() -> None:
    for exc in (
        aiorabbit.ConnectionLost(0, ""),
        aiorabbit.ConnectionClosed(0, ""),
        aiorabbit.ChannelClosed(0, ""),
        aiorabbit.NotFound(),
    ):
        text = str(exc)
        assert text.strip() not in ("(0)", "(404)") and len(text) > 8, text


# ---------------------------------------------------------------------------
# item 7: a reply that never comes


def _withhold(peer: Peer, channel: int, method: object) -> bool:
    return True  # no declare-ok, ever


async def test_a_withheld_reply_times_out_and_closes_the_channel() -> None:
    script = serving({m.QueueDeclare: _withhold})

    async with ScriptedServer(script) as server:
        async with aiorabbit.connect(server.url) as conn:
            ch = await conn.channel()
            number = ch.number
            started = time.monotonic()
            with pytest.raises(aiorabbit.OperationTimeout, match=r"queue\.declare") as caught:
                await ch.queue_declare("q", timeout=0.3)
            assert 0.25 < time.monotonic() - started < 2
            assert isinstance(caught.value, TimeoutError)
            assert ch.is_closed
            with pytest.raises(aiorabbit.ChannelClosed) as later:
                await ch.queue_purge("q")
            assert later.value.cause is caught.value
            # The broker answered our channel.close: the number is free again
            # and the connection is healthy.
            for _ in range(100):
                if number not in conn._channels:
                    break
                await asyncio.sleep(0.01)
            assert number not in conn._channels
            other = await conn.channel()
            await other.exchange_declare("x", "fanout")
            assert conn.is_open
        assert not server.errors


async def test_call_timeout_is_a_connection_default_and_a_late_reply_is_dropped() -> None:
    late: list[tuple[Peer, int, m.QueueDeclare]] = []

    def remember(peer: Peer, channel: int, method: m.QueueDeclare) -> bool:
        late.append((peer, channel, method))
        return True

    script = serving({m.QueueDeclare: remember, m.ChannelClose: _withhold})

    async with ScriptedServer(script) as server:
        conn = await aiorabbit.connect(server.url, call_timeout=0.2)
        ch = await conn.channel()
        with pytest.raises(aiorabbit.OperationTimeout):
            await ch.queue_declare("q")
        # The reply and deliveries for the abandoned channel arrive late:
        # they are dropped, nothing breaks.
        peer, channel, _ = late[0]
        peer.send_method(channel, m.QueueDeclareOk(queue="q", message_count=0, consumer_count=0))
        peer.deliver(channel, "ctag", b"late body")
        await asyncio.sleep(0.1)
        assert conn.is_open
        assert channel in conn._channels  # no close-ok yet: the number stays taken
        second = await conn.channel()
        assert second.number != channel
        # close() returns even though the broker never answers channel.close.
        started = time.monotonic()
        await second.close()
        assert time.monotonic() - started < 1
        await conn.close()


async def test_a_robust_channel_opens_a_new_channel_after_a_timeout() -> None:
    withheld = 0

    def once(peer: Peer, channel: int, method: m.QueueDeclare) -> bool:
        nonlocal withheld
        withheld += 1
        return withheld == 1  # only the first declare goes unanswered

    script = serving({m.QueueDeclare: once})

    async with ScriptedServer(script) as server:
        async with aiorabbit.connect_robust(server.url) as conn:
            ch = await conn.channel()
            first = ch.channel
            with pytest.raises(aiorabbit.OperationTimeout):
                await ch.queue_declare("q", durable=True, timeout=0.2)
            ok = await ch.queue_declare("q", durable=True, timeout=2)
            assert ok.queue == "q"
            assert ch.channel is not first and conn.is_open
            assert server.connections == 1


async def test_update_secret_without_a_reply_times_out_and_closes() -> None:
    script = serving({m.ConnectionUpdateSecret: _withhold})

    async with ScriptedServer(script) as server:
        conn = await aiorabbit.connect(server.url, call_timeout=0.2)
        with pytest.raises(aiorabbit.OperationTimeout, match="update-secret"):
            await conn.update_secret("new-token")
        assert conn.is_closed
        await asyncio.wait_for(conn.close(), 2)
