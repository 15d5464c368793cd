"""aiorabbit.Publisher: confirmed, windowed, at-least-once publishing."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

import aiorabbit
from aiorabbit import InvalidArgument, MessageReturned, OutgoingMessage, Properties, Publisher, PublishNacked

from .proxy import Proxy

FAST = aiorabbit.Backoff(initial=0.05, maximum=0.3)


@pytest.fixture
async def durable_queue(connection: aiorabbit.Connection) -> AsyncIterator[str]:
    ch = await connection.channel()
    name = f"test-publisher-{uuid.uuid4().hex[:8]}"
    await ch.queue_declare(name, durable=True)
    yield name
    await ch.queue_delete(name)


async def _drain_ids(conn: aiorabbit.Connection, queue: str, expected: int) -> list[str]:
    """Every message_id in ``queue`` (acked), waiting for ``expected`` of them."""
    ch = await conn.channel()
    ids: list[str] = []
    while len(ids) < expected:
        msg = await ch.basic_get(queue, no_ack=True)
        if msg is None:
            await asyncio.sleep(0.05)
            continue
        ids.append(msg.properties.message_id or "")
    await asyncio.sleep(0.2)
    while (msg := await ch.basic_get(queue, no_ack=True)) is not None:
        ids.append(msg.properties.message_id or "")
    await ch.close()
    return ids


async def test_publish_returns_the_message_id_once_confirmed(
    connection: aiorabbit.Connection, durable_queue: str
) -> None:
    async with Publisher(connection) as publisher:
        generated = await publisher.publish(b"one", routing_key=durable_queue)
        props = Properties(message_id="mine", content_type="text/plain", headers={"k": 1})
        kept = await publisher.publish(b"two", routing_key=durable_queue, properties=props)
        other = Properties(app_id="tests")
        third = await publisher.publish(b"three", routing_key=durable_queue, properties=other)
    assert len(generated) == 32 and kept == "mine" and third not in (generated, kept)
    assert other.message_id is None  # the caller's properties are not modified
    ch = await connection.channel()
    got = []
    for _ in range(3):
        msg = await ch.basic_get(durable_queue, no_ack=True)
        assert msg is not None
        got.append(msg)
    assert [m.body for m in got] == [b"one", b"two", b"three"]
    assert [m.properties.message_id for m in got] == [generated, "mine", third]
    assert got[1].properties.content_type == "text/plain" and got[1].headers == {"k": 1}
    assert got[2].properties.app_id == "tests"


async def test_window_bounds_what_is_unconfirmed(
    connection: aiorabbit.Connection, durable_queue: str
) -> None:
    seen = 0
    async with Publisher(connection, window=10) as publisher:

        async def one(i: int) -> None:
            nonlocal seen
            seen = max(seen, publisher.unconfirmed)
            await publisher.publish(b"%d" % i, routing_key=durable_queue)
            seen = max(seen, publisher.unconfirmed)

        await asyncio.gather(*(one(i) for i in range(300)))
        assert publisher.in_flight == 0
    assert 1 < seen <= 10
    ch = await connection.channel()
    assert (await ch.queue_declare(durable_queue, passive=True)).message_count == 300


async def test_a_nack_is_retried_then_raised(connection: aiorabbit.Connection) -> None:
    ch = await connection.channel()
    # A queue that rejects every publish: the broker nacks each one.
    reject_all = {"x-max-length": 0, "x-overflow": "reject-publish"}
    q = await ch.queue_declare("", exclusive=True, arguments=reject_all)
    async with Publisher(connection, nack_retries=2) as publisher:
        with pytest.raises(PublishNacked):
            await publisher.publish(b"x", routing_key=q.queue)
        assert publisher.nacks_retried == 2


async def test_unroutable_mandatory_message_raises_returned(connection: aiorabbit.Connection) -> None:
    async with Publisher(connection) as publisher:
        with pytest.raises(MessageReturned):
            await publisher.publish(b"x", routing_key=f"nowhere-{uuid.uuid4().hex}", mandatory=True)
        # The publisher goes on working after a return.
        ch = await connection.channel()
        q = await ch.queue_declare("", exclusive=True)
        await publisher.publish(b"y", routing_key=q.queue, mandatory=True)


async def test_publish_many_confirms_a_batch(connection: aiorabbit.Connection, durable_queue: str) -> None:
    async with Publisher(connection) as publisher:
        batch = [OutgoingMessage(body, routing_key=durable_queue) for body in (b"a", b"b")]
        ids = await publisher.publish_many(batch)
        assert len(set(ids)) == 2
        with pytest.raises(MessageReturned):
            await publisher.publish_many([
                OutgoingMessage(b"c", routing_key=durable_queue),
                OutgoingMessage(b"d", routing_key=f"nowhere-{uuid.uuid4().hex}", mandatory=True),
            ])
    found = await _drain_ids(connection, durable_queue, 3)
    assert set(ids) <= set(found) and len(found) == 3


async def test_leaving_the_block_waits_for_publishes_in_flight(
    connection: aiorabbit.Connection, durable_queue: str
) -> None:
    async with Publisher(connection, window=50) as publisher:
        tasks = [
            asyncio.ensure_future(publisher.publish(b"x", routing_key=durable_queue)) for _ in range(500)
        ]
        await asyncio.sleep(0)
    assert all(t.done() and t.exception() is None for t in tasks)
    with pytest.raises(InvalidArgument):
        await publisher.publish(b"late", routing_key=durable_queue)


def test_bad_arguments() -> None:
    with pytest.raises(InvalidArgument):
        Publisher(None, window=0)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        Publisher(None, nack_retries=-1)  # type: ignore[arg-type]


async def test_unconfirmed_messages_are_published_again_after_recovery(
    connection: aiorabbit.Connection, durable_queue: str
) -> None:
    async with Proxy("127.0.0.1", 5672) as proxy:
        conn = await aiorabbit.connect_robust(proxy.url, backoff=FAST, heartbeat=0)
        try:
            async with Publisher(conn, window=100) as publisher:
                # Acks stop coming back; then the link drops with them pending.
                proxy.stall(upstream=False, downstream=True)
                tasks = [
                    asyncio.ensure_future(publisher.publish(b"%d" % i, routing_key=durable_queue))
                    for i in range(200)
                ]
                await asyncio.sleep(0.5)
                assert not any(t.done() for t in tasks)
                proxy.resume()
                proxy.cut()
                ids = await asyncio.wait_for(asyncio.gather(*tasks), 30)
                assert publisher.republished >= 100  # the whole window was unconfirmed
        finally:
            await conn.close()
    found = await _drain_ids(connection, durable_queue, 200)
    assert set(found) == set(ids)  # none lost
    assert len(found) - len(set(found)) <= publisher.republished  # duplicates only from republishing


async def test_on_a_plain_connection_a_loss_raises(durable_queue: str) -> None:
    async with Proxy("127.0.0.1", 5672) as proxy:
        conn = await aiorabbit.connect(proxy.url)
        async with Publisher(conn) as publisher:
            proxy.stall(upstream=False, downstream=True)
            task = asyncio.ensure_future(publisher.publish(b"x", routing_key=durable_queue))
            await asyncio.sleep(0.3)
            proxy.cut()
            with pytest.raises(aiorabbit.ConnectionClosed):
                await task


@pytest.mark.slow
async def test_slow_link_with_a_cut_loses_nothing(
    connection: aiorabbit.Connection, durable_queue: str
) -> None:
    async with Proxy("127.0.0.1", 5672) as proxy:
        proxy.rate = 400_000  # bytes per second, both ways
        conn = await aiorabbit.connect_robust(proxy.url, backoff=FAST, heartbeat=0)
        try:
            async with Publisher(conn, window=20) as publisher:
                body = b"s" * 16 * 1024
                publish = publisher.publish
                tasks = [asyncio.ensure_future(publish(body, routing_key=durable_queue)) for _ in range(60)]
                await asyncio.sleep(0.6)  # part of them through the slow link
                assert 0 < sum(t.done() for t in tasks) < 60
                proxy.cut()
                ids = await asyncio.wait_for(asyncio.gather(*tasks), 60)
        finally:
            await conn.close()
    found = await _drain_ids(connection, durable_queue, 60)
    assert set(found) == set(ids)


async def test_a_nack_is_retried_after_a_delay_so_a_passing_refusal_passes(
    connection: aiorabbit.Connection,
) -> None:
    # A full queue (one message, reject-publish) nacks; once a consumer makes
    # room the retry goes through.  Retries without delays would all be spent
    # before the room is made, as they were during a quorum queue's leader
    # election (issue 16).
    ch = await connection.channel()
    full_at_one = {"x-max-length": 1, "x-overflow": "reject-publish"}
    q = await ch.queue_declare("", exclusive=True, arguments=full_at_one)
    await ch.basic_publish(b"first", routing_key=q.queue)
    async with Publisher(connection, nack_retries=3) as publisher:
        publishing = asyncio.ensure_future(publisher.publish(b"second", routing_key=q.queue))
        await asyncio.sleep(0.05)
        assert not publishing.done() and publisher.nacks_retried >= 1  # nacked, waiting to retry
        nacked_channel = publisher._channel
        first = await ch.basic_get(q.queue, no_ack=True)
        assert first is not None and first.body == b"first"
        await asyncio.wait_for(publishing, 10)
        assert 1 <= publisher.nacks_retried <= 3
        # The retry went through a new channel (RabbitMQ 3.10 keeps nacking on
        # a channel that published to a leaderless quorum queue), and the
        # nacked one is closed once idle.
        assert publisher.channels_renewed == publisher.nacks_retried
        assert publisher._channel is not nacked_channel
        await asyncio.sleep(0.1)
        assert nacked_channel.is_closed
    got = await ch.basic_get(q.queue, no_ack=True)
    assert got is not None and got.body == b"second"


def test_nack_delays_grow_and_keep_a_floor() -> None:
    publisher = Publisher(None)  # type: ignore[arg-type]  # the defaults
    assert publisher.nack_retries == 5
    ceilings = [publisher.nack_backoff.ceiling(n) for n in range(1, 6)]
    assert ceilings == [0.2, 0.4, 0.8, 1.6, 2.0]
    assert sum(ceilings) / 2 >= 2.5  # the least five retries can span: longer than a leader election


async def test_an_unconfirmed_publish_raises_publish_timeout_then_the_next_succeeds(
    connection: aiorabbit.Connection,
) -> None:
    # The broker's answers held back (as a quorum queue without a majority
    # never answers): the publish raises PublishTimeout after the
    # publisher's timeout, neither hanging nor reporting success.
    ch = await connection.channel()
    q = await ch.queue_declare("", exclusive=True)
    async with Proxy("127.0.0.1", 5672) as proxy:
        conn = await aiorabbit.connect(proxy.url, heartbeat=0)
        try:
            async with Publisher(conn, timeout=0.5) as publisher:
                proxy.stall(upstream=False, downstream=True)
                started = asyncio.get_running_loop().time()
                with pytest.raises(aiorabbit.PublishTimeout) as caught:
                    await publisher.publish(b"held", routing_key=q.queue)
                assert 0.45 <= asyncio.get_running_loop().time() - started < 2
                assert len(caught.value.message_id) == 32 and caught.value.timeout == 0.5
                assert isinstance(caught.value, TimeoutError)
                proxy.resume()  # answers flow again: the next publish is confirmed
                await publisher.publish(b"after", routing_key=q.queue)
        finally:
            await conn.close()
    bodies = {m.body for m in [await ch.basic_get(q.queue, no_ack=True) for _ in range(2)] if m is not None}
    assert bodies == {b"held", b"after"}  # the held one was sent: a timeout is not a loss
