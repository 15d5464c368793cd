"""The robust layer against the scripted server (tests/amqp_server.py), no
broker needed: what a new connection receives when recovery replays the
channels, QoS, topology and consumers, the same ``async for`` going on
across the reconnect, and the closes that end recovery instead of
retrying.  Only aiorabbit's public API is used on the client side; the wire
is read at the scripted peers (one per connection)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import aiorabbit
from aiorabbit.codec import methods as m

from .amqp_server import Peer, ScriptedServer, eventually

pytestmark = pytest.mark.broker_free

BACKOFF = aiorabbit.Backoff(initial=0.01, maximum=0.05)


def _events(conn: aiorabbit.RobustConnection) -> list[tuple[str, tuple[Any, ...]]]:
    seen: list[tuple[str, tuple[Any, ...]]] = []
    for event in ("disconnected", "reconnected", "recovery_failed", "recovery_error"):
        conn.add_listener(event, lambda c, *args, event=event: seen.append((event, args)))
    return seen


async def _acks_through(peer: Any, channel: int, tag: int) -> list[Any]:
    """The client's acks on ``channel`` once they cover ``tag``."""
    for _ in range(500):
        acks = [x for c, x in peer.received if c == channel and isinstance(x, m.BasicAck)]
        if acks and acks[-1].delivery_tag >= tag:
            return acks
        await asyncio.sleep(0.01)
    raise AssertionError(f"no ack up to {tag}: {acks}")


def _consumer_on(peer: Peer, queue: str) -> tuple[int, str]:
    for tag, (channel, consumed) in peer.consumers.items():
        if consumed == queue:
            return channel, tag
    raise AssertionError(f"no consumer on {queue!r}: {peer.consumers}")


def _names(seen: list[tuple[str, tuple[Any, ...]]]) -> list[str]:
    return [event for event, _ in seen]


async def test_recovery_replays_channel_qos_topology_and_consumer_in_order() -> None:
    async with ScriptedServer() as server:
        conn = await aiorabbit.connect_robust(server.url, backoff=BACKOFF)
        seen = _events(conn)
        ch = await conn.channel(publisher_confirms=True)
        await ch.basic_qos(prefetch_count=10)
        await ch.exchange_declare("events", "topic", durable=True)
        await ch.queue_declare("jobs", durable=True)
        await ch.queue_bind("jobs", "events", "order.*")
        received: asyncio.Queue[aiorabbit.IncomingMessage] = asyncio.Queue()

        async with ch.consume("jobs") as messages:

            async def read() -> None:
                async for msg in messages:
                    received.put_nowait(msg)
                    msg.ack()

            reader = asyncio.ensure_future(read())
            first = server.peers[0]
            channel, tag = _consumer_on(first, "jobs")
            assert tag.startswith("amq.ctag-")  # the server named the consumer
            first.deliver(channel, tag, b"before")
            msg = await asyncio.wait_for(received.get(), 5)
            assert msg.body == b"before"
            await first.wait_received(m.BasicAck)

            first.abort()
            second = await server.wait_for_peer(1)
            await eventually(lambda: "reconnected" in _names(seen), "the recovery")
            assert _names(seen) == ["disconnected", "reconnected"]
            assert isinstance(seen[0][1][0], aiorabbit.ConnectionLost)
            assert conn.is_open and ch.is_open

            # What the new connection received after the handshake, in order.
            # The topology may be declared on a channel of its own (opened
            # and closed around it).
            replayed = [
                (number, method)
                for number, method in second.received
                if number != 0 and not isinstance(method, (m.ChannelClose, m.ChannelCloseOk))
            ]
            kinds = [type(method) for _, method in replayed]
            assert kinds[0] is m.ChannelOpen
            ours = replayed[0][0]  # the robust channel's new number
            assert [type(x) for c, x in replayed if c == ours] == [
                m.ChannelOpen,
                m.ConfirmSelect,
                m.BasicQos,
                m.BasicConsume,
            ]
            assert [k for k in kinds if k is not m.ChannelOpen] == [
                m.ConfirmSelect,
                m.BasicQos,
                m.ExchangeDeclare,
                m.QueueDeclare,
                m.QueueBind,
                m.BasicConsume,
            ]
            # Every method went on a channel opened before it.
            opened: set[int] = set()
            for number, method in replayed:
                if isinstance(method, m.ChannelOpen):
                    opened.add(number)
                else:
                    assert number in opened, (number, method)
            [(_, qos)] = await second.wait_received(m.BasicQos)
            assert (qos.prefetch_count, qos.prefetch_size, qos.global_) == (10, 0, False)
            [(_, exchange)] = await second.wait_received(m.ExchangeDeclare)
            assert (exchange.exchange, exchange.type, exchange.durable, exchange.passive) == (
                "events",
                "topic",
                True,
                False,
            )
            [(_, queue)] = await second.wait_received(m.QueueDeclare)
            assert (queue.queue, queue.durable, queue.passive) == ("jobs", True, False)
            [(_, bind)] = await second.wait_received(m.QueueBind)
            assert (bind.queue, bind.exchange, bind.routing_key) == ("jobs", "events", "order.*")
            [(_, consume)] = await second.wait_received(m.BasicConsume)
            assert (consume.queue, consume.consumer_tag, consume.no_ack) == ("jobs", tag, False)
            assert not second.published

            # The same async for goes on with deliveries on the new connection.
            new_channel, new_tag = _consumer_on(second, "jobs")
            assert (new_channel, new_tag) == (ours, tag)
            for body in (b"after-1", b"after-2"):
                second.deliver(new_channel, tag, body)
            got = [await asyncio.wait_for(received.get(), 5) for _ in range(2)]
            assert [g.body for g in got] == [b"after-1", b"after-2"]
            assert [g.delivery_tag for g in got] == [1, 2]
            # Acked one by one, or in one coalesced frame when the reader
            # acked both in one loop turn (aiorabbit/acks.py): 1 and 2 either way.
            acks = await _acks_through(second, ours, 2)
            assert acks in ([m.BasicAck(delivery_tag=t, multiple=False) for t in (1, 2)],
                            [m.BasicAck(delivery_tag=2, multiple=True)])
            assert not reader.done()

            # The channel is in confirm mode again: a publish is confirmed.
            await asyncio.wait_for(ch.basic_publish(b"confirmed", routing_key="jobs"), 5)
            assert [(p.channel, p.body) for p in second.published] == [(ours, b"confirmed")]

        # Leaving the block ended the iteration cleanly.
        await asyncio.wait_for(reader, 5)
        await conn.close()
        assert server.connections == 2
    assert not server.errors


async def test_a_server_named_queue_and_its_consumer_follow_the_new_name() -> None:
    async with ScriptedServer() as server:
        async with aiorabbit.connect_robust(server.url, backoff=BACKOFF) as conn:
            seen = _events(conn)
            ch = await conn.channel()
            declared = await ch.queue_declare("", exclusive=True)
            old = declared.queue
            assert old.startswith("amq.gen-")
            async with ch.consume(old) as messages:
                server.peers[0].abort()
                second = await server.wait_for_peer(1)
                await eventually(lambda: "reconnected" in _names(seen), "the recovery")
                redeclared = [x for _, x in second.received if isinstance(x, m.QueueDeclare)]
                assert [(q.queue, q.exclusive) for q in redeclared] == [("", True)]
                new = declared.queue
                assert new != old and new.startswith("amq.gen-")
                assert messages.queue == new
                channel, tag = _consumer_on(second, new)
                second.deliver(channel, tag, b"renamed")
                msg = await messages.get(timeout=5)
                assert msg.body == b"renamed"
    assert not server.errors


async def test_a_publish_awaiting_its_confirm_at_the_loss_raises_and_the_next_one_goes_through() -> None:
    async def script(peer: Peer) -> None:
        await peer.handshake()
        if peer.index == 0:
            await peer.serve({m.BasicPublish: lambda peer, channel, method: True})  # never confirms
        else:
            await peer.serve()

    async with ScriptedServer(script) as server:
        async with aiorabbit.connect_robust(server.url, backoff=BACKOFF) as conn:
            seen = _events(conn)
            ch = await conn.channel(publisher_confirms=True)
            waiting = asyncio.ensure_future(ch.basic_publish(b"in flight", routing_key="q"))
            await eventually(lambda: len(server.peers[0].published) == 1, "the publish")
            server.peers[0].abort()
            with pytest.raises(aiorabbit.ConnectionClosed):
                await asyncio.wait_for(waiting, 5)
            # Not retried behind the program's back: a new publish waits for
            # the recovery, then goes out once.
            await asyncio.wait_for(ch.basic_publish(b"next", routing_key="q"), 5)
            second = server.peers[1]
            assert [p.body for p in second.published] == [b"next"]
            assert "reconnected" in _names(seen)
    assert not server.errors


@pytest.mark.parametrize(
    ("code", "text", "recovers"),
    [
        (320, "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'", True),
        (541, "INTERNAL_ERROR - something broke", True),
        (403, "ACCESS_REFUSED - access to vhost '/' refused for user 'guest'", False),
        (530, "NOT_ALLOWED - vhost / not found", False),
    ],
)
async def test_the_servers_close_code_decides_whether_recovery_starts(
    code: int, text: str, recovers: bool
) -> None:
    async with ScriptedServer() as server:
        conn = await aiorabbit.connect_robust(server.url, backoff=BACKOFF)
        seen = _events(conn)
        ch = await conn.channel()
        await ch.queue_declare("jobs", durable=True)
        async with ch.consume("jobs") as messages:
            first = server.peers[0]
            first.send_method(0, m.ConnectionClose(reply_code=code, reply_text=text, class_id=0, method_id=0))
            await first.wait_received(m.ConnectionCloseOk)  # the client acknowledged the close
            if recovers:
                await eventually(lambda: "reconnected" in _names(seen), "the recovery")
                reason = seen[0][1][0]
                assert isinstance(reason, aiorabbit.ConnectionClosed)
                assert (reason.reply_code, reason.reply_text) == (code, text)
                assert _names(seen) == ["disconnected", "reconnected"]
                assert server.connections == 2 and conn.is_open
                channel, tag = _consumer_on(server.peers[1], "jobs")
                server.peers[1].deliver(channel, tag, b"again")
                assert (await messages.get(timeout=5)).body == b"again"
            else:
                reason = await asyncio.wait_for(conn.wait_closed(), 5)
                assert isinstance(reason, aiorabbit.ConnectionClosed)
                assert (reason.reply_code, reason.reply_text) == (code, text)
                assert conn.is_closed and conn.closed_reason is reason
                assert _names(seen) == ["recovery_failed"]
                assert seen[0][1][0] is reason
                # The consumer and the channel end with it...
                with pytest.raises(aiorabbit.ConnectionClosed) as ended:
                    await messages.get(timeout=5)
                assert ended.value is reason
                assert messages.error is reason
                with pytest.raises(aiorabbit.ChannelClosed) as later:
                    await ch.queue_declare("jobs", durable=True)
                assert later.value.cause is reason
                # ...and nothing tries again.
                await asyncio.sleep(0.2)  # several backoff delays
                assert server.connections == 1
        await conn.close()
    assert not server.errors


async def test_a_login_refused_while_reconnecting_ends_recovery_at_once() -> None:
    async def script(peer: Peer) -> None:
        if peer.index == 0:
            await peer.handshake()
            await peer.serve()
        else:
            await peer.refuse_login(
                403, "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN"
            )

    async with ScriptedServer(script) as server:
        conn = await aiorabbit.connect_robust(server.url, backoff=BACKOFF)
        seen = _events(conn)
        ch = await conn.channel()
        await ch.queue_declare("jobs", durable=True)
        async with ch.consume("jobs") as messages:
            server.peers[0].abort()
            reason = await asyncio.wait_for(conn.wait_closed(), 5)
            assert isinstance(reason, aiorabbit.AuthenticationError), reason
            assert isinstance(reason, aiorabbit.LoginRefused)
            assert reason.reply_code == 403
            assert _names(seen) == ["disconnected", "recovery_failed"]
            assert seen[1][1][0] is reason
            await server.peers[1].wait_received(m.ConnectionCloseOk)
            with pytest.raises(aiorabbit.LoginRefused) as ended:
                await messages.get(timeout=5)
            assert ended.value is reason
            with pytest.raises(aiorabbit.ChannelClosed) as later:
                await ch.queue_declare("jobs", durable=True)
            assert later.value.cause is reason
            await asyncio.sleep(0.2)  # several backoff delays
            assert server.connections == 2  # one refused attempt, not retried
        await conn.close()
    assert not server.errors
