"""Channel methods against the broker, errors and call serialisation."""

from __future__ import annotations

import asyncio

import pytest

import aiorabbit
from aiorabbit import (
    AccessRefused,
    ChannelClosed,
    InvalidArgument,
    NotFound,
    PreconditionFailed,
    ResourceLocked,
)

from .conftest import Names


async def test_exchange_lifecycle(channel: aiorabbit.Channel, names: Names) -> None:
    src, dst = names.exchange("src"), names.exchange("dst")
    q = names.queue()
    await channel.exchange_declare(src, "topic", durable=False, auto_delete=False)
    await channel.exchange_declare(dst, "fanout", arguments={"alternate-exchange": "amq.fanout"})
    await channel.exchange_declare(src, "topic", passive=True)
    await channel.exchange_bind(dst, src, "a.*")
    await channel.queue_declare(q)
    await channel.queue_bind(q, dst)
    await channel.basic_publish(b"routed", exchange=src, routing_key="a.b")
    await channel.basic_publish(b"not routed", exchange=src, routing_key="b.b")
    await asyncio.sleep(0.1)
    msg = await channel.basic_get(q, no_ack=True)
    assert msg is not None and msg.body == b"routed"
    assert await channel.basic_get(q) is None
    await channel.exchange_unbind(dst, src, "a.*")
    await channel.basic_publish(b"after unbind", exchange=src, routing_key="a.b")
    await asyncio.sleep(0.1)
    assert await channel.basic_get(q) is None
    await channel.exchange_delete(dst)
    await channel.exchange_delete(src, if_unused=True)
    with pytest.raises(NotFound):
        await channel.exchange_declare(src, "topic", passive=True)


async def test_internal_and_auto_delete_exchange(connection: aiorabbit.Connection, names: Names) -> None:
    ch = await connection.channel()
    ex = names.exchange()
    await ch.exchange_declare(ex, "direct", internal=True, auto_delete=True)
    with pytest.raises(AccessRefused):  # publishing to an internal exchange
        await (await connection.channel(publisher_confirms=True)).basic_publish(b"x", exchange=ex)


async def test_queue_lifecycle(channel: aiorabbit.Channel, names: Names) -> None:
    q = names.queue()
    ok = await channel.queue_declare(q, durable=True, arguments={"x-max-length": 100})
    assert ok == aiorabbit.DeclareOk(q, 0, 0)
    await channel.confirm_select()  # so the counts below are settled
    for i in range(5):
        await channel.basic_publish(b"%d" % i, routing_key=q)
    ok = await channel.queue_declare(q, passive=True)
    assert ok.message_count == 5 and ok.consumer_count == 0
    assert await channel.queue_purge(q) == 5
    await channel.queue_bind(q, "amq.direct", "k1")
    await channel.queue_bind(q, "amq.direct", "k2")
    await channel.basic_publish(b"via k2", exchange="amq.direct", routing_key="k2")
    await channel.queue_unbind(q, "amq.direct", "k2")
    await channel.basic_publish(b"dropped", exchange="amq.direct", routing_key="k2")
    await channel.basic_publish(b"via k1", exchange="amq.direct", routing_key="k1")
    assert await channel.queue_delete(q, if_empty=False, if_unused=True) == 2


async def test_server_named_and_exclusive_queue(channel: aiorabbit.Channel) -> None:
    ok = await channel.queue_declare("", exclusive=True, auto_delete=True)
    assert ok.queue.startswith("amq.gen-")


async def test_qos_recover_flow_confirm_tx(channel: aiorabbit.Channel) -> None:
    q = (await channel.queue_declare("", exclusive=True)).queue
    await channel.basic_qos(prefetch_count=10)
    await channel.basic_qos(prefetch_count=5, global_qos=True)
    assert await channel.flow(True) is True
    await channel.basic_publish(b"one", routing_key=q)
    msg = await channel.basic_get(q)
    assert msg is not None and not msg.redelivered
    await channel.basic_recover(requeue=True)
    again = await channel.basic_get(q)
    assert again is not None and again.redelivered and again.body == b"one"
    await again.ack()
    await channel.tx_select()
    await channel.basic_publish(b"rolled back", routing_key=q)
    await channel.tx_rollback()
    await channel.basic_publish(b"committed", routing_key=q)
    await channel.tx_commit()
    got = await channel.basic_get(q, no_ack=True)
    assert got is not None and got.body == b"committed"
    assert await channel.basic_get(q) is None


async def test_confirm_select(channel: aiorabbit.Channel) -> None:
    assert not channel.publisher_confirms
    await channel.confirm_select()
    assert channel.publisher_confirms
    q = (await channel.queue_declare("", exclusive=True)).queue
    await channel.basic_publish(b"x", routing_key=q)  # returns after the ack


async def test_precondition_failed_then_channel_closed(channel: aiorabbit.Channel, names: Names) -> None:
    q = names.queue()
    await channel.queue_declare(q, durable=True)
    with pytest.raises(PreconditionFailed) as info:
        await channel.queue_declare(q, durable=False)
    assert info.value.reply_code == 406 and "durable" in info.value.reply_text
    assert channel.is_closed
    with pytest.raises(ChannelClosed) as later:
        await channel.queue_declare(q, durable=True)
    assert type(later.value) is ChannelClosed
    assert isinstance(later.value.cause, PreconditionFailed)
    with pytest.raises(ChannelClosed):
        await channel.basic_publish(b"x", routing_key=q)


async def test_not_found(channel: aiorabbit.Channel) -> None:
    with pytest.raises(NotFound) as info:
        await channel.queue_declare("aiorabbit-no-such-queue", passive=True)
    assert info.value.reply_code == 404


async def test_resource_locked(amqp_url: str, channel: aiorabbit.Channel) -> None:
    q = (await channel.queue_declare("", exclusive=True)).queue
    async with aiorabbit.connect(amqp_url) as other:
        ch = await other.channel()
        with pytest.raises(ResourceLocked) as info:
            await ch.queue_declare(q, passive=True)
        assert info.value.reply_code == 405


async def test_access_refused(channel: aiorabbit.Channel) -> None:
    with pytest.raises(AccessRefused) as info:
        await channel.exchange_declare("amq.aiorabbit-reserved", "direct")
    assert info.value.reply_code == 403


async def test_channel_close_is_idempotent_and_context_manager(connection: aiorabbit.Connection) -> None:
    async with await connection.channel() as ch:
        assert ch.is_open
    assert ch.is_closed
    await ch.close()
    with pytest.raises(ChannelClosed):
        await ch.queue_declare("", exclusive=True)
    # The connection and other channels are unaffected.
    other = await connection.channel()
    await other.queue_declare("", exclusive=True)


async def test_calls_are_serialised_in_order(channel: aiorabbit.Channel, names: Names) -> None:
    queues = [names.queue(str(i)) for i in range(20)]
    results = await asyncio.gather(*(channel.queue_declare(q) for q in queues))
    assert [r.queue for r in results] == queues


async def test_cancelling_a_waiting_call_keeps_the_channel(channel: aiorabbit.Channel, names: Names) -> None:
    qs = [names.queue(str(i)) for i in range(3)]
    first = asyncio.ensure_future(channel.queue_declare(qs[0]))
    second = asyncio.ensure_future(channel.queue_declare(qs[1]))
    await asyncio.sleep(0)
    second.cancel()  # still waiting for its turn
    assert (await first).queue == qs[0]
    with pytest.raises(asyncio.CancelledError):
        await second
    assert (await channel.queue_declare(qs[2])).queue == qs[2]


async def test_cancelling_an_in_flight_call_keeps_replies_aligned(
    channel: aiorabbit.Channel, names: Names
) -> None:
    for _ in range(10):
        q1, q2 = names.queue("a"), names.queue("b")
        task = asyncio.ensure_future(channel.queue_declare(q1))
        await asyncio.sleep(0)  # sent, reply not yet in
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # The next call must get its own reply, not q1's declare-ok.
        assert (await channel.queue_declare(q2)).queue == q2


async def test_invalid_names_raise_before_sending(channel: aiorabbit.Channel) -> None:
    with pytest.raises(InvalidArgument, match="255"):
        await channel.queue_declare("q" * 256)
    with pytest.raises(InvalidArgument, match="arguments"):
        await channel.queue_declare("", arguments=[("x", 1)])  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="x-weird"):
        await channel.queue_declare("", arguments={"x-weird": object()})
    assert channel.is_open
    await channel.queue_declare("", exclusive=True)
