"""Consuming: async iteration, callbacks, basic.get, settling, cancels."""

from __future__ import annotations

import asyncio

import pytest

import aiorabbit
from aiorabbit import (
    ChannelClosed,
    ConnectionForced,
    ConsumerCancelled,
    IncomingMessage,
    MessageAlreadySettled,
)

from . import ctl


async def _fill(ch: aiorabbit.Channel, count: int, **declare: object) -> str:
    q = (await ch.queue_declare("", exclusive=True, **declare)).queue  # type: ignore[arg-type]
    confirm = await ch.connection.channel(publisher_confirms=True)
    await asyncio.gather(*(confirm.basic_publish(b"%d" % i, routing_key=q) for i in range(count)))
    await confirm.close()
    return q


async def test_async_for_with_manual_ack(channel: aiorabbit.Channel) -> None:
    q = await _fill(channel, 50)
    await channel.basic_qos(prefetch_count=10)
    got = []
    async with channel.consume(q) as messages:
        assert messages.consumer_tag and messages.consumer_tag.startswith("amq.ctag-")
        async for msg in messages:
            assert isinstance(msg, IncomingMessage)
            assert msg.consumer_tag == messages.consumer_tag
            assert msg.routing_key == q and msg.exchange == "" and not msg.redelivered
            got.append(int(msg.body))
            await msg.ack()
            if len(got) == 50:
                break
    assert got == list(range(50))
    assert (await channel.queue_declare(q, passive=True)).message_count == 0


async def test_buffer_is_bounded_by_prefetch(channel: aiorabbit.Channel) -> None:
    q = await _fill(channel, 100)
    await channel.basic_qos(prefetch_count=7)
    async with channel.consume(q) as messages:
        await asyncio.sleep(0.3)
        assert len(messages._buffer) == 7
        first = await messages.get(timeout=5)
        await asyncio.sleep(0.2)
        assert len(messages._buffer) == 6  # not acked yet: no new delivery
        await first.ack()
        await asyncio.sleep(0.2)
        assert len(messages._buffer) == 7


async def test_leaving_early_requeues_undelivered(channel: aiorabbit.Channel) -> None:
    q = await _fill(channel, 10)
    await channel.basic_qos(prefetch_count=10)
    async with channel.consume(q) as messages:
        await asyncio.sleep(0.2)
        taken = 0
        async for msg in messages:
            await msg.ack()
            taken += 1
            if taken == 3:
                break
    await asyncio.sleep(0.1)
    assert (await channel.queue_declare(q, passive=True)).message_count == 7
    rest = []
    while (msg := await channel.basic_get(q, no_ack=True)) is not None:
        rest.append(int(msg.body))
    assert sorted(rest) == list(range(3, 10))


async def test_explicit_consumer_tag_exclusive_and_no_ack(connection: aiorabbit.Connection) -> None:
    ch = await connection.channel()
    q = await _fill(ch, 5)
    async with ch.consume(q, no_ack=True, exclusive=True, consumer_tag="my-tag") as messages:
        assert messages.consumer_tag == "my-tag"
        other = await connection.channel()
        with pytest.raises(aiorabbit.AccessRefused):
            async with other.consume(q):
                pass
        bodies = [(await messages.get(timeout=5)).body for _ in range(5)]
    assert bodies == [b"0", b"1", b"2", b"3", b"4"]


async def test_no_ack_messages_cannot_be_settled(channel: aiorabbit.Channel) -> None:
    q = await _fill(channel, 1)
    async with channel.consume(q, no_ack=True) as messages:
        msg = await messages.get(timeout=5)
        assert msg.settled
        with pytest.raises(MessageAlreadySettled):
            await msg.ack()


async def test_broker_cancel_ends_iteration(connection: aiorabbit.Connection) -> None:
    ch = await connection.channel()
    q = await _fill(ch, 2)
    admin = await connection.channel()
    seen = []
    with pytest.raises(ConsumerCancelled) as info:
        async with ch.consume(q) as messages:
            async for msg in messages:
                seen.append(msg.body)
                await msg.ack()
                if len(seen) == 2:
                    await admin.queue_delete(q)
    assert seen == [b"0", b"1"]
    assert info.value.consumer_tag.startswith("amq.ctag-")
    assert ch.is_open  # a cancelled consumer does not close its channel


async def test_connection_loss_raises_in_the_loop(amqp_url: str) -> None:
    conn = await aiorabbit.connect(amqp_url, name="consume-loss-test")
    ch = await conn.channel()
    q = (await ch.queue_declare("", exclusive=True)).queue

    async def run() -> None:
        async with ch.consume(q) as messages:
            async for _ in messages:
                pass

    task = asyncio.ensure_future(run())
    await asyncio.sleep(0.3)
    await ctl.close_connection("consume-loss-test")
    with pytest.raises(ConnectionForced):
        await asyncio.wait_for(task, 10)
    await conn.close()


async def test_callback_consumers(channel: aiorabbit.Channel) -> None:
    q = await _fill(channel, 20)
    sync_seen: list[bytes] = []
    async_seen: list[bytes] = []
    done = asyncio.Event()

    def on_sync(msg: IncomingMessage) -> None:
        sync_seen.append(msg.body)
        msg.ack()

    async def on_async(msg: IncomingMessage) -> None:
        await asyncio.sleep(0)
        async_seen.append(msg.body)
        await msg.ack()
        if len(async_seen) + len(sync_seen) == 20:
            done.set()

    await channel.basic_qos(prefetch_count=1)
    tag1 = await channel.basic_consume(q, on_sync)
    tag2 = await channel.basic_consume(q, on_async, consumer_tag="async-consumer")
    assert tag2 == "async-consumer" and tag1 != tag2
    for _ in range(100):
        if len(async_seen) + len(sync_seen) == 20:
            break
        await asyncio.sleep(0.05)
    assert sorted(int(b) for b in sync_seen + async_seen) == list(range(20))
    await channel.basic_cancel(tag1)
    await channel.basic_cancel(tag2)
    with pytest.raises(aiorabbit.InvalidArgument):
        await channel.basic_cancel(tag1)


async def test_basic_get_fields_and_empty(channel: aiorabbit.Channel) -> None:
    q = await _fill(channel, 3)
    msg = await channel.basic_get(q)
    assert msg is not None
    assert msg.body == b"0" and msg.message_count == 2 and msg.consumer_tag is None
    assert not msg.settled
    await msg.ack()
    assert msg.settled
    while await channel.basic_get(q, no_ack=True):
        pass
    assert await channel.basic_get(q) is None


async def test_settle_twice_raises(channel: aiorabbit.Channel) -> None:
    q = await _fill(channel, 3)
    msg = await channel.basic_get(q)
    assert msg is not None
    await msg.ack()
    with pytest.raises(MessageAlreadySettled):
        await msg.ack()
    with pytest.raises(MessageAlreadySettled):
        msg.nack()
    a = await channel.basic_get(q)
    b = await channel.basic_get(q)
    assert a is not None and b is not None
    await b.ack(multiple=True)  # settles a too
    with pytest.raises(MessageAlreadySettled):
        a.reject()
    assert channel.is_open
    assert (await channel.queue_declare(q, passive=True)).message_count == 0


async def test_nack_requeue_and_reject_drop(channel: aiorabbit.Channel) -> None:
    q = await _fill(channel, 2)
    first = await channel.basic_get(q)
    assert first is not None
    await first.nack(requeue=True)
    again = await channel.basic_get(q)
    assert again is not None and again.body == b"0" and again.redelivered
    await again.reject(requeue=False)
    second = await channel.basic_get(q)
    assert second is not None and second.body == b"1"
    await second.reject(requeue=False)
    assert await channel.basic_get(q) is None


async def test_settle_on_closed_channel_raises(connection: aiorabbit.Connection) -> None:
    ch = await connection.channel()
    q = await _fill(ch, 1)
    msg = await ch.basic_get(q)
    assert msg is not None
    await ch.close()
    with pytest.raises(ChannelClosed):
        await msg.ack()


async def test_dead_lettering_on_reject(channel: aiorabbit.Channel) -> None:
    dlq = (await channel.queue_declare("", exclusive=True)).queue
    q = await _fill(
        channel, 1, arguments={"x-dead-letter-exchange": "", "x-dead-letter-routing-key": dlq}
    )
    msg = await channel.basic_get(q)
    assert msg is not None
    await msg.reject(requeue=False)
    for _ in range(50):
        dead = await channel.basic_get(dlq, no_ack=True)
        if dead is not None:
            break
        await asyncio.sleep(0.02)
    assert dead is not None and dead.body == b"0"
    assert dead.headers["x-death"][0]["reason"] == "rejected"


@pytest.mark.parametrize("multiple", [False, True])
@pytest.mark.parametrize("requeue", [False, True])
def test_prebuilt_settle_frames_match_the_codec(multiple: bool, requeue: bool) -> None:
    from aiorabbit.channel import _SETTLE_FRAME
    from aiorabbit.codec import methods as m
    from aiorabbit.codec.frames import encode_method_frame

    def frame(method_id: int, bits: int) -> bytes:
        return _SETTLE_FRAME.pack(1, 7, 13, 60, method_id, 2**40 + 5, bits, 0xCE)

    tag = 2**40 + 5
    assert frame(80, int(multiple)) == encode_method_frame(7, m.BasicAck(delivery_tag=tag, multiple=multiple))
    assert frame(120, int(multiple) | 2 * int(requeue)) == encode_method_frame(
        7, m.BasicNack(delivery_tag=tag, multiple=multiple, requeue=requeue)
    )
    assert frame(90, int(requeue)) == encode_method_frame(7, m.BasicReject(delivery_tag=tag, requeue=requeue))


async def test_no_ack_buffer_is_bounded_and_nothing_lost(channel: aiorabbit.Channel) -> None:
    from aiorabbit.consumer import NO_ACK_HIGH_WATER

    total = 3 * NO_ACK_HIGH_WATER + 500
    q = await _fill(channel, total)
    connection = channel.connection
    async with channel.consume(q, no_ack=True) as messages:
        await asyncio.sleep(0.5)  # not reading: deliveries pile up, then reading stops
        assert connection._reading.paused
        buffered = len(messages._buffer)
        # Bounded: the high-water mark plus what one socket read can carry.
        assert NO_ACK_HIGH_WATER <= buffered < total
        got = [int((await messages.get(timeout=5)).body) for _ in range(total)]
    assert got == list(range(total))
    assert not connection._reading.paused


async def test_a_no_ack_backlog_never_blocks_replies_confirms_or_close(amqp_url: str) -> None:
    # Past the high-water mark the connection stops reading for a slow
    # no_ack consumer; what others wait for on the connection (a cancel-ok,
    # a confirm, close-ok) must still be read.
    from aiorabbit.consumer import NO_ACK_HIGH_WATER

    total = 3 * NO_ACK_HIGH_WATER
    conn = await aiorabbit.connect(amqp_url)
    ch = await conn.channel()
    q = await _fill(ch, total)
    other = await conn.channel(publisher_confirms=True)
    side = (await other.queue_declare("", exclusive=True)).queue
    messages = ch.consume(q, no_ack=True)
    await messages.start()
    await asyncio.sleep(0.5)  # nobody iterates: the backlog fills, reading stops
    assert conn._reading.paused
    # A confirmed publish on another channel completes...
    await asyncio.wait_for(other.basic_publish(b"side", routing_key=side), 5)
    # ...and so does a declare on it.
    await asyncio.wait_for(other.queue_declare(side, passive=True), 5)
    # Leaving the consumer returns (the cancel-ok is read).
    await asyncio.wait_for(messages.cancel(), 5)
    # close() is graceful, not the timeout and an abort.
    started = asyncio.get_running_loop().time()
    await asyncio.wait_for(conn.close(), 5)
    assert asyncio.get_running_loop().time() - started < 2
    assert conn.closed_reason is not None and conn.closed_reason.reply_code == 200
    assert not isinstance(conn.closed_reason, aiorabbit.ConnectionLost)


async def test_close_with_a_no_ack_backlog_is_graceful(amqp_url: str) -> None:
    from aiorabbit.consumer import NO_ACK_HIGH_WATER

    conn = await aiorabbit.connect(amqp_url, connection_timeout=30)
    ch = await conn.channel()
    q = await _fill(ch, 3 * NO_ACK_HIGH_WATER)
    async with ch.consume(q, no_ack=True):
        await asyncio.sleep(0.5)
        assert conn._reading.paused
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(conn.close(), 10)
        assert asyncio.get_running_loop().time() - started < 2
    assert conn.closed_reason is not None and conn.closed_reason.reply_code == 200


async def test_the_read_buffer_grows_for_a_stream_of_large_messages_and_shrinks_after(
    connection: aiorabbit.Connection,
) -> None:
    """Reads that fill the buffer make it four times larger (fewer loop
    turns for large messages); a run of short reads gives it back.  Every
    body arrives intact across both sizes and the switch between them."""
    from aiorabbit import protocol as protocol_module

    ch = await connection.channel()
    q = (await ch.queue_declare("", exclusive=True)).queue
    bodies = [bytes([i % 251]) * (70_000 + i) if i % 3 else b"small %d" % i for i in range(120)]
    await _publish_in_order(connection, q, bodies)
    proto = connection._protocol  # seam: the read size is the protocol's
    assert proto is not None and proto.read_size == protocol_module._READ_SIZE
    assert await _consume_no_ack(ch, q, len(bodies)) == bodies
    assert proto.read_size == protocol_module._READ_SIZE_LARGE  # the backlog filled reads
    for _ in range(protocol_module._SHRINK_AFTER + 1):  # short reads: one round trip each
        await ch.queue_declare(q, passive=True)
    assert proto.read_size == protocol_module._READ_SIZE


async def test_no_loop_turn_reads_much_more_than_a_megabyte(
    amqp_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvloop reads up to 32 times per readiness event: without a cap, tens
    of megabytes of large messages pile up before the consumer runs.  Reading
    stops for the rest of a turn once it passed ``_TURN_MAX``, and resumes
    in the next one (the suite runs this under both loops)."""
    from aiorabbit import protocol as protocol_module

    loop = asyncio.get_running_loop()
    turns: list[int] = []
    counted = protocol_module.Protocol.buffer_updated

    def counting(proto: protocol_module.Protocol, nbytes: int) -> None:
        if not turns or turns[-1] < 0:  # the first read of a turn
            turns.append(0)
            loop.call_soon(turns.append, -1)  # runs once this turn's reads are done
        turns[-1] += nbytes
        counted(proto, nbytes)

    # Before connecting: uvloop takes the protocol's method once, at connect.
    monkeypatch.setattr(protocol_module.Protocol, "buffer_updated", counting)
    async with aiorabbit.connect(amqp_url) as connection:
        ch = await connection.channel()
        q = (await ch.queue_declare("", exclusive=True)).queue
        bodies = [bytes([i]) * 200_000 for i in range(60)]  # 12 MB
        await _publish_in_order(connection, q, bodies)
        turns.clear()
        got = await _consume_no_ack(ch, q, len(bodies))
        assert not connection._reading.paused  # seam: the gate opened again
    assert got == bodies
    per_turn = [n for n in turns if n >= 0]
    assert sum(per_turn) >= 12_000_000
    # One read past the cap at most: a read takes up to the large buffer.
    assert max(per_turn) < protocol_module._TURN_MAX + protocol_module._READ_SIZE_LARGE


def test_a_turn_pause_and_a_backlog_pause_hold_reading_together() -> None:
    """Reading resumes only once neither the turn cap nor a backlog holds it."""
    from aiorabbit.reading import ReadGate

    class Transport:
        reading = True

        def is_closing(self) -> bool:
            return False

        def pause_reading(self) -> None:
            self.reading = False

        def resume_reading(self) -> None:
            self.reading = True

    transport = Transport()
    gate = ReadGate(lambda: False)
    gate.attach(transport)  # type: ignore[arg-type]
    gate.turn_full()
    assert not transport.reading and gate.paused
    gate.backlog_full()
    gate.turn_over()
    assert not transport.reading  # the backlog still holds it
    gate.turn_full()
    gate.backlog_drained()
    assert not transport.reading  # the turn still holds it
    gate.turn_over()
    assert transport.reading and not gate.paused


async def _publish_in_order(connection: aiorabbit.Connection, queue: str, bodies: list[bytes]) -> None:
    """Publish ``bodies`` confirmed, one at a time: publishes started
    concurrently may overtake each other while the socket is full."""
    confirm = await connection.channel(publisher_confirms=True)
    for body in bodies:
        await confirm.basic_publish(body, routing_key=queue)
    await confirm.close()


async def _consume_no_ack(ch: aiorabbit.Channel, queue: str, count: int) -> list[bytes]:
    got: list[bytes] = []
    async with ch.consume(queue, no_ack=True) as messages:
        async for msg in messages:
            got.append(msg.body)
            if len(got) == count:
                break
    return got


async def test_a_no_ack_backlog_of_large_bodies_is_bounded_by_its_bytes(
    channel: aiorabbit.Channel, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Counting messages alone would let 2,000 bodies of 4 MiB pile up: past
    NO_ACK_HIGH_BYTES of bodies reading stops too, and nothing is lost."""
    from aiorabbit import consumer as consumer_module

    monkeypatch.setattr(consumer_module, "NO_ACK_HIGH_BYTES", 2 * 1024 * 1024)
    bodies = [bytes([i]) * 65536 for i in range(120)]  # 7.5 MiB
    q = (await channel.queue_declare("", exclusive=True)).queue
    await _publish_in_order(channel.connection, q, bodies)
    async with channel.consume(q, no_ack=True) as messages:
        await asyncio.sleep(0.5)  # nobody iterates
        assert channel.connection._reading.paused
        # 2 MiB is 32 such bodies; one loop turn reads at most about 1 MiB more.
        assert 32 <= messages.buffered <= 32 + 17
        got = [(await messages.get(timeout=5)).body for _ in bodies]
    assert got == bodies
    assert not channel.connection._reading.paused


async def test_a_large_body_stays_in_its_buffer_until_it_is_asked_for(
    channel: aiorabbit.Channel, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A body of several frames arrives as a read-only view of the buffer it
    was read into (``body_view``); ``body`` copies it once.  A buffer is
    used again only when nothing refers to it: bodies held by the
    application never change under it."""
    from aiorabbit import assembly
    from aiorabbit.message import AssembledMessage

    allocated: list[int] = []

    def counted(size: int) -> bytearray:
        allocated.append(size)
        return bytearray(size)

    monkeypatch.setattr(assembly, "bytearray", counted, raising=False)  # the module's allocations only

    q = (await channel.queue_declare("", exclusive=True)).queue
    bodies = [bytes([i]) * 1_000_000 for i in range(12)]  # one size: any free buffer fits
    await _publish_in_order(channel.connection, q, bodies)
    held: list[aiorabbit.IncomingMessage] = []
    async with channel.consume(q, no_ack=True) as messages:
        for i, expected in enumerate(bodies):
            msg = await messages.get(timeout=10)
            assert isinstance(msg, AssembledMessage)
            view = msg.body_view
            assert isinstance(view, memoryview) and view.readonly and msg.body_size == len(expected)
            with pytest.raises(TypeError):
                view[0] = 0  # type: ignore[index]
            if i % 3 == 0:
                held.append(msg)  # kept: its buffer must never be reused
            else:
                assert view == expected
                assert msg.body == expected and type(msg.body) is bytes and msg.body is msg.body
            del msg, view
    for msg in held:
        assert msg.body_view == bodies[msg.delivery_tag - 1]
        assert msg.body == bodies[msg.delivery_tag - 1]
    # Buffers were used again: one for each held message, and a couple
    # that the others took in turn...
    assert len(held) == 4 and len(allocated) <= len(held) + 3
    # ...but never one a held message still had (checked above: their
    # bodies did not change while later ones arrived).
    assert len({id(msg.body_view.obj) for msg in held}) == len(held)


async def test_large_bodies_of_get_and_return_are_whole(channel: aiorabbit.Channel) -> None:
    from aiorabbit.message import AssembledMessage

    q = (await channel.queue_declare("", exclusive=True)).queue
    body = bytes(range(256)) * 2000  # 512,000 bytes: four frames
    await _publish_in_order(channel.connection, q, [body])
    got = await channel.basic_get(q, no_ack=True)
    assert isinstance(got, AssembledMessage) and got.body == body and bytes(got.body_view) == body
    returned: list[aiorabbit.ReturnedMessage] = []
    ch = await channel.connection.channel(on_return=returned.append)
    await ch.basic_publish(body, routing_key=f"nowhere-{q}", mandatory=True)
    for _ in range(100):
        if returned:
            break
        await asyncio.sleep(0.05)
    assert len(returned) == 1 and type(returned[0].body) is bytes and returned[0].body == body
    await ch.close()
