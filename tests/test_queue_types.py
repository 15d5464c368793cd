"""Quorum queues and streams on the shared (single) node: the argument
helpers of aiorabbit.queues, delivery counts, dead-lettering after the
delivery limit, stream offsets, and leaving a stream consumer (tests on a
cluster, across node failures, are in test_cluster*.py)."""

from __future__ import annotations

import asyncio
import datetime

import pytest

import aiorabbit
from aiorabbit.queues import quorum_queue, stream_offset, stream_queue

from .conftest import Names


async def test_a_poison_message_ends_in_the_dead_letter_queue_after_the_limit(
    connection: aiorabbit.Connection, names: Names
) -> None:
    work, dead = names.queue("work"), names.queue("dead")
    ch = await connection.channel(publisher_confirms=True)
    await ch.queue_declare(dead, durable=True)
    args = quorum_queue(delivery_limit=2, dead_letter_exchange="", dead_letter_routing_key=dead,
                        at_least_once=True)
    assert args["x-overflow"] == "reject-publish" and args["x-dead-letter-strategy"] == "at-least-once"
    await ch.queue_declare(work, durable=True, arguments=args)
    await ch.basic_publish(b"poison", routing_key=work)
    consumer_ch = await connection.channel()
    await consumer_ch.basic_qos(prefetch_count=10)
    counts = []
    async with consumer_ch.consume(work) as messages:
        for _ in range(3):  # the first delivery and two returns: the limit
            msg = await messages.get(5)
            counts.append((msg.delivery_count, msg.redelivered))
            await msg.nack(requeue=True)  # always fails
        with pytest.raises(asyncio.TimeoutError):
            await messages.get(0.5)  # not delivered a fourth time
    assert counts == [(0, False), (1, True), (2, True)]
    for _ in range(50):
        got = await ch.basic_get(dead, no_ack=True)
        if got is not None:
            break
        await asyncio.sleep(0.05)
    assert got is not None and got.body == b"poison"
    assert got.headers["x-first-death-reason"] == "delivery_limit"


async def test_stream_offsets(connection: aiorabbit.Connection, names: Names) -> None:
    stream = names.queue("stream")
    ch = await connection.channel(publisher_confirms=True)
    await ch.queue_declare(stream, durable=True, arguments=stream_queue(max_age="1h"))
    before = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=5)
    for i in range(5):
        await ch.basic_publish(b"s%d" % i, routing_key=stream)
    reader = await connection.channel()
    await reader.basic_qos(prefetch_count=10)

    async def first_from(offset: object) -> tuple[bytes, int | None] | None:
        async with reader.consume(stream, arguments=stream_offset(offset)) as messages:  # type: ignore[arg-type]
            try:
                msg = await messages.get(1)
            except asyncio.TimeoutError:
                return None
            await msg.ack()
            return msg.body, msg.stream_offset

    assert await first_from("first") == (b"s0", 0)
    assert await first_from(3) == (b"s3", 3)
    assert await first_from(before) == (b"s0", 0)
    assert await first_from("next") is None
    # Leaving the blocks above handed back buffered deliveries; a stream
    # refuses rejects with a connection error, so they were acked instead.
    assert reader.is_open and connection.is_open


async def test_leaving_a_stream_consumer_with_buffered_messages_keeps_the_connection(
    connection: aiorabbit.Connection, names: Names
) -> None:
    stream = names.queue("stream")
    ch = await connection.channel(publisher_confirms=True)
    await ch.queue_declare(stream, durable=True, arguments=stream_queue())
    for i in range(50):
        await ch.basic_publish(b"%d" % i, routing_key=stream)
    reader = await connection.channel()
    await reader.basic_qos(prefetch_count=50)
    async with reader.consume(stream, arguments=stream_offset("first")) as messages:
        msg = await messages.get(5)
        await msg.ack()
        await asyncio.sleep(0.2)  # the rest arrive and wait in the buffer
        assert messages.buffered > 0
    await asyncio.sleep(0.2)
    assert connection.is_open and reader.is_open
    await reader.queue_declare(stream, passive=True)  # the channel still answers


def test_argument_helpers_refuse_what_the_broker_would() -> None:
    assert quorum_queue() == {"x-queue-type": "quorum"}
    assert quorum_queue(initial_group_size=3)["x-quorum-initial-group-size"] == 3
    for bad in (
        lambda: quorum_queue(delivery_limit=-1),
        lambda: quorum_queue(dead_letter_routing_key="dlq"),
        lambda: quorum_queue(at_least_once=True),
        lambda: quorum_queue(initial_group_size=0),
        lambda: stream_queue(max_age="7 days"),
        lambda: stream_offset("middle"),  # type: ignore[arg-type]
        lambda: stream_offset(-1),
        lambda: stream_offset(True),
    ):
        with pytest.raises(aiorabbit.InvalidArgument):
            bad()
    assert stream_queue(max_age="7D", max_length_bytes=10**9) == {
        "x-queue-type": "stream", "x-max-age": "7D", "x-max-length-bytes": 10**9}


@pytest.mark.parametrize("start", ["first", None])
async def test_a_robust_stream_consumer_resumes_after_its_last_offset(
    amqp_url: str, connection: aiorabbit.Connection, names: Names, start: str | None
) -> None:
    # Cut mid-stream: after recovery it consumes again from the offset after
    # the last one it handed out, with or without an offset argument at the
    # start (the broker's default is "next"): no gap, no duplicate.
    from .proxy import Proxy
    from .test_robust import BROKER, FAST, Events

    stream = names.queue("stream")
    writer = await connection.channel(publisher_confirms=True)
    await writer.queue_declare(stream, durable=True, arguments=stream_queue())
    if start is not None:
        for i in range(10):
            await writer.basic_publish(b"%d" % i, routing_key=stream)
    async with Proxy(*BROKER) as proxy:
        conn = await aiorabbit.connect_robust(proxy.url, backoff=FAST, heartbeat=0)
        try:
            events = Events(conn)
            ch = await conn.channel()
            await ch.basic_qos(prefetch_count=5)
            arguments = stream_offset(start) if start is not None else None  # type: ignore[arg-type]
            seen: list[int] = []
            async with ch.consume(stream, arguments=arguments) as messages:
                if start is None:
                    await asyncio.sleep(0.2)  # consuming from "next": publish after
                    for i in range(10):
                        await writer.basic_publish(b"%d" % i, routing_key=stream)
                for _ in range(4):
                    msg = await messages.get(5)
                    seen.append(int(msg.body))
                    await msg.ack()
                proxy.cut()
                await events.wait("reconnected")
                for i in range(10, 15):
                    await writer.basic_publish(b"%d" % i, routing_key=stream)
                while len(seen) < 15:
                    msg = await messages.get(5)
                    seen.append(int(msg.body))
                    await msg.ack()
            assert seen == list(range(15))
        finally:
            await conn.close()
