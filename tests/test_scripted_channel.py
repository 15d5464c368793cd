"""Channels against the scripted server (tests/amqp_server.py), no broker
needed: publisher confirms acked and nacked one by one or many at once,
returns, content assembly from any framing, basic.get, settling
deliveries, and the server closing a channel or cancelling a consumer.
Only aiorabbit's public API is used on the client side; the wire is read
at the scripted peer."""

from __future__ import annotations

import asyncio
import datetime
import random
from collections.abc import Callable
from typing import Any

import pytest

import aiorabbit
from aiorabbit.codec import methods as m
from aiorabbit.codec.frames import HEARTBEAT_FRAME

from .amqp_server import Peer, ScriptedServer, eventually, serving

pytestmark = pytest.mark.broker_free

_SETTLES = (m.BasicAck, m.BasicNack, m.BasicReject)


def _hold(peer: Peer, channel: int, method: m.BasicPublish) -> bool:
    return True  # no confirm: the test sends it


def _consumer_on(peer: Peer, queue: str) -> tuple[int, str]:
    """``(channel, consumer tag)`` of the client's consumer on ``queue``."""
    for tag, (channel, consumed) in peer.consumers.items():
        if consumed == queue:
            return channel, tag
    raise AssertionError(f"no consumer on {queue!r}: {peer.consumers}")


async def _round_trip(ch: aiorabbit.Channel) -> None:
    """A synchronous call: its reply comes after everything the server sent
    before, so all of that has been handled when it returns."""
    await ch.queue_declare("round-trip")
    for _ in range(3):  # let the tasks woken by those frames run
        await asyncio.sleep(0)


def _settles(peer: Peer, channel: int) -> list[Any]:
    return [x for c, x in peer.received if c == channel and isinstance(x, _SETTLES)]


def _body(size: int) -> bytes:
    return random.Random(size).randbytes(size)


# ---------------------------------------------------------------------------
# publisher confirms

_CONFIRM_CASES: dict[str, tuple[int, list[Any], dict[int, str]]] = {
    # name: (publishes, what the server sends, outcome by tag: ok / nacked / pending)
    "ack one": (3, [m.BasicAck(delivery_tag=2)], {1: "pending", 2: "ok", 3: "pending"}),
    "ack multiple": (
        5,
        [m.BasicAck(delivery_tag=3, multiple=True)],
        {1: "ok", 2: "ok", 3: "ok", 4: "pending", 5: "pending"},
    ),
    "nack one": (4, [m.BasicNack(delivery_tag=2)], {1: "pending", 2: "nacked", 3: "pending", 4: "pending"}),
    "nack multiple": (
        4,
        [m.BasicNack(delivery_tag=3, multiple=True)],
        {1: "nacked", 2: "nacked", 3: "nacked", 4: "pending"},
    ),
    "mixed": (
        6,
        [
            m.BasicAck(delivery_tag=4),
            m.BasicNack(delivery_tag=2),
            m.BasicAck(delivery_tag=3, multiple=True),
            m.BasicNack(delivery_tag=6),
        ],
        {1: "ok", 2: "nacked", 3: "ok", 4: "ok", 5: "pending", 6: "nacked"},
    ),
    "multiple after singles out of order": (
        5,
        [m.BasicAck(delivery_tag=5), m.BasicAck(delivery_tag=1), m.BasicNack(delivery_tag=4, multiple=True)],
        {1: "ok", 2: "nacked", 3: "nacked", 4: "nacked", 5: "ok"},
    ),
    "ack multiple of everything": (
        4,
        [m.BasicAck(delivery_tag=4, multiple=True)],
        {1: "ok", 2: "ok", 3: "ok", 4: "ok"},
    ),
}


@pytest.mark.parametrize("case", list(_CONFIRM_CASES))
async def test_confirms_settle_exactly_the_publishes_they_name(case: str) -> None:
    count, confirms, outcome = _CONFIRM_CASES[case]
    async with ScriptedServer(serving({m.BasicPublish: _hold})) as server:
        async with aiorabbit.connect(server.url) as conn:
            ch = await conn.channel(publisher_confirms=True)
            assert ch.publisher_confirms
            peer = server.peers[0]
            assert (ch.number, m.ConfirmSelect()) in peer.received
            tasks = {
                tag: asyncio.ensure_future(ch.basic_publish(b"message %d" % tag, routing_key="q"))
                for tag in range(1, count + 1)
            }
            await eventually(lambda: peer.confirm_seq.get(ch.number) == count, f"{count} publishes")
            assert [p.body for p in peer.published] == [b"message %d" % tag for tag in tasks]
            for method in confirms:
                peer.send_method(ch.number, method)
            await _round_trip(ch)

            for tag, expected in outcome.items():
                task = tasks[tag]
                if expected == "pending":
                    assert not task.done(), f"publish #{tag} was settled"
                    continue
                assert task.done(), f"publish #{tag} is still waiting"
                if expected == "ok":
                    assert task.result() is None
                else:
                    with pytest.raises(aiorabbit.PublishNacked) as caught:
                        task.result()
                    assert caught.value.delivery_tag == tag

            # A final ack of everything confirms whatever still waits, and
            # changes nothing that was already settled.
            peer.send_method(ch.number, m.BasicAck(delivery_tag=count, multiple=True))
            await asyncio.wait_for(asyncio.gather(*tasks.values(), return_exceptions=True), 5)
            for tag, expected in outcome.items():
                if expected == "nacked":
                    assert isinstance(tasks[tag].exception(), aiorabbit.PublishNacked)
                else:
                    assert tasks[tag].result() is None
            # The channel goes on: the next publish is number count + 1.
            later = asyncio.ensure_future(ch.basic_publish(b"later", routing_key="q"))
            await eventually(lambda: peer.confirm_seq.get(ch.number) == count + 1, "the next publish")
            peer.send_method(ch.number, m.BasicAck(delivery_tag=count + 1))
            await asyncio.wait_for(later, 5)
    assert not server.errors


async def test_publishes_awaiting_confirms_fail_with_the_channel_error_when_the_server_closes_it() -> None:
    text = "NOT_FOUND - no exchange 'missing' in vhost '/'"

    def publish(peer: Peer, channel: int, method: m.BasicPublish) -> bool:
        if method.exchange == "missing":
            peer.send_method(
                channel, m.ChannelClose(reply_code=404, reply_text=text, class_id=60, method_id=40)
            )
        return True  # and no confirms for the others

    async with ScriptedServer(serving({m.BasicPublish: publish})) as server:
        async with aiorabbit.connect(server.url) as conn:
            ch = await conn.channel(publisher_confirms=True)
            number = ch.number
            waiting = [asyncio.ensure_future(ch.basic_publish(b"%d" % i, routing_key="q")) for i in range(3)]
            peer = server.peers[0]
            await eventually(lambda: len(peer.published) == 3, "three publishes")
            doomed = asyncio.ensure_future(ch.basic_publish(b"lost", exchange="missing", routing_key="q"))
            await asyncio.wait_for(asyncio.gather(*waiting, doomed, return_exceptions=True), 5)

            reason = ch.closed_reason
            assert type(reason) is aiorabbit.NotFound
            assert (reason.reply_code, reason.reply_text) == (404, text)
            for task in [*waiting, doomed]:
                assert task.exception() is reason
            assert ch.is_closed
            # The client acknowledged the close on that channel...
            await peer.wait_received(m.ChannelCloseOk)
            assert (number, m.ChannelCloseOk()) in peer.received
            # ...later calls on the channel say why it closed...
            with pytest.raises(aiorabbit.ChannelClosed) as later:
                await ch.basic_publish(b"after", routing_key="q")
            assert later.value.cause is reason
            # ...and the connection is fine.
            assert conn.is_open
            other = await conn.channel(publisher_confirms=True)
            task = asyncio.ensure_future(other.basic_publish(b"fine", routing_key="q"))
            # A new channel in confirm mode numbers its publishes from 1 again.
            await eventually(
                lambda: peer.confirm_seq.get(other.number) == 1, "the publish on the new channel"
            )
            peer.send_method(other.number, m.BasicAck(delivery_tag=1))
            await asyncio.wait_for(task, 5)
    assert not server.errors


# ---------------------------------------------------------------------------
# returns


def _returning(*unroutable: str) -> Callable[[Peer, int, m.BasicPublish], bool]:
    """A basic.publish handler that returns mandatory messages for the
    routing keys ``unroutable`` (basic.return, then the ack in confirm
    mode, as RabbitMQ does) and acks the rest."""

    def publish(peer: Peer, channel: int, method: m.BasicPublish) -> bool:
        published = peer.published[-1]
        if method.mandatory and method.routing_key in unroutable:
            peer.send_content(
                channel,
                m.BasicReturn(
                    reply_code=312,
                    reply_text="NO_ROUTE",
                    exchange=method.exchange,
                    routing_key=method.routing_key,
                ),
                published.body,
                published.properties,
            )
        if channel in peer.confirm_seq:
            peer.send_method(channel, m.BasicAck(delivery_tag=peer.confirm_seq[channel]))
        return True

    return publish


async def test_an_unroutable_mandatory_publish_with_confirms_raises_message_returned() -> None:
    async with ScriptedServer(serving({m.BasicPublish: _returning("nowhere")})) as server:
        async with aiorabbit.connect(server.url) as conn:
            ch = await conn.channel(publisher_confirms=True)
            props = aiorabbit.Properties(content_type="text/plain", headers={"attempt": 3})
            first = asyncio.ensure_future(
                ch.basic_publish(
                    b"first", exchange="ex", routing_key="nowhere", properties=props, mandatory=True
                )
            )
            routed = asyncio.ensure_future(
                ch.basic_publish(b"routed", exchange="ex", routing_key="somewhere", mandatory=True)
            )
            second = asyncio.ensure_future(
                ch.basic_publish(b"second", exchange="ex", routing_key="nowhere", mandatory=True)
            )
            # Not mandatory: the broker would route or drop it, never return it.
            plain = asyncio.ensure_future(ch.basic_publish(b"plain", exchange="ex", routing_key="nowhere"))
            await asyncio.wait_for(asyncio.gather(first, routed, second, plain, return_exceptions=True), 5)

            assert routed.result() is None and plain.result() is None
            for task, body in ((first, b"first"), (second, b"second")):
                exc = task.exception()
                assert isinstance(exc, aiorabbit.MessageReturned), exc
                returned = exc.message
                assert isinstance(returned, aiorabbit.ReturnedMessage)
                assert returned.body == body  # each publish gets its own message back
                assert (returned.reply_code, returned.reply_text) == (312, "NO_ROUTE")
                assert (returned.exchange, returned.routing_key) == ("ex", "nowhere")
            returned = first.exception().message  # type: ignore[union-attr]
            assert returned.properties.content_type == "text/plain"
            assert returned.headers == {"attempt": 3}
            assert ch.is_open
    assert not server.errors


async def test_without_confirms_a_returned_message_goes_to_on_return() -> None:
    returned: asyncio.Queue[aiorabbit.ReturnedMessage] = asyncio.Queue()
    async with ScriptedServer(serving({m.BasicPublish: _returning("nowhere")})) as server:
        async with aiorabbit.connect(server.url) as conn:
            ch = await conn.channel(on_return=returned.put_nowait)
            assert not ch.publisher_confirms
            props = aiorabbit.Properties(message_id="m-1", headers={"k": "v"})
            await ch.basic_publish(
                b"lost", exchange="ex", routing_key="nowhere", properties=props, mandatory=True
            )
            await ch.basic_publish(b"kept", exchange="ex", routing_key="elsewhere", mandatory=True)
            message = await asyncio.wait_for(returned.get(), 5)
            assert isinstance(message, aiorabbit.ReturnedMessage)
            assert message.body == b"lost"
            assert (message.reply_code, message.reply_text) == (312, "NO_ROUTE")
            assert (message.exchange, message.routing_key) == ("ex", "nowhere")
            assert message.properties.message_id == "m-1"
            assert message.headers == {"k": "v"}
            await _round_trip(ch)
            assert returned.empty()  # only the unroutable one came back
            assert [p.body for p in server.peers[0].published] == [b"lost", b"kept"]
    assert not server.errors


# ---------------------------------------------------------------------------
# content assembly

_SHAPES = {
    # name: (body size, body frame size (None: the largest frame_max allows))
    "empty": (0, None),
    "one byte": (1, None),
    "one byte per frame": (1000, 1),
    "exactly one full frame": (4096 - 8, None),
    "one byte into a second frame": (4096 - 7, None),
    "100 KB in 4 KiB frames": (100_000, None),
    "uneven frames": (50_000, 333),
    "3 MiB": (3 * 1024 * 1024 + 7, None),
}


@pytest.mark.parametrize("shape", list(_SHAPES))
async def test_a_delivery_is_assembled_from_any_framing(shape: str) -> None:
    size, chunk = _SHAPES[shape]
    body = _body(size)

    async def script(peer: Peer) -> None:
        await peer.handshake(frame_max=4096)
        await peer.serve()

    async with ScriptedServer(script) as server:
        async with aiorabbit.connect(server.url) as conn:
            assert conn.frame_max == 4096
            ch = await conn.channel()
            async with ch.consume("q") as messages:
                peer = server.peers[0]
                channel, tag = _consumer_on(peer, "q")
                peer.send_content(
                    channel,
                    m.BasicDeliver(consumer_tag=tag, delivery_tag=1, exchange="ex", routing_key="rk"),
                    body,
                    chunk=chunk,
                )
                msg = await messages.get(timeout=10)
                assert len(msg.body) == size
                assert msg.body == body
                assert isinstance(msg.body, bytes)
                assert (msg.delivery_tag, msg.exchange, msg.routing_key) == (1, "ex", "rk")
                assert msg.consumer_tag == tag and not msg.redelivered
                assert msg.properties == aiorabbit.Properties()
                assert msg.headers == {}
                await msg.ack()
                await peer.wait_received(m.BasicAck)
                assert _settles(peer, channel) == [m.BasicAck(delivery_tag=1, multiple=False)]
    assert not server.errors


async def test_bodies_interleaved_with_other_channels_and_heartbeats_are_assembled_per_channel() -> None:
    async with ScriptedServer() as server:
        async with aiorabbit.connect(server.url) as conn:
            ch1, ch2 = await conn.channel(), await conn.channel()
            async with ch1.consume("a") as first, ch2.consume("b") as second:
                peer = server.peers[0]
                bodies = {"a": _body(20_000), "b": _body(30_001)}
                frames = []
                for queue, chunk in (("a", 97), ("b", 131)):
                    channel, tag = _consumer_on(peer, queue)
                    frames.append(
                        peer.content_frames(
                            channel,
                            m.BasicDeliver(consumer_tag=tag, delivery_tag=1, exchange="", routing_key=queue),
                            bodies[queue],
                            aiorabbit.Properties(message_id=queue),
                            chunk=chunk,
                        )
                    )
                # Frame by frame, alternating channels, a heartbeat now and then.
                wire = bytearray()
                for i in range(max(map(len, frames))):
                    for one in frames:
                        if i < len(one):
                            wire += one[i]
                    if i % 50 == 0:
                        wire += HEARTBEAT_FRAME
                peer.send_raw(bytes(wire))
                got_a = await first.get(timeout=5)
                got_b = await second.get(timeout=5)
                assert (got_a.body, got_a.properties.message_id) == (bodies["a"], "a")
                assert (got_b.body, got_b.properties.message_id) == (bodies["b"], "b")
    assert not server.errors


async def test_properties_and_headers_are_decoded() -> None:
    stamp = datetime.datetime(2024, 5, 17, 12, 30, 15, tzinfo=datetime.timezone.utc)
    headers = {
        "x-int": 42,
        "x-negative": -7,
        "x-big": 2**40,
        "x-str": "value",
        "x-float": 1.5,
        "x-bool": True,
        "x-none": None,
        "x-list": [1, "two", False],
        "x-nested": {"inner": {"deep": "yes"}},
        "x-time": stamp,
    }
    props = aiorabbit.Properties(
        content_type="application/json",
        content_encoding="gzip",
        headers=headers,
        delivery_mode=aiorabbit.DeliveryMode.PERSISTENT,
        priority=7,
        correlation_id="corr-1",
        reply_to="amq.rabbitmq.reply-to",
        expiration="60000",
        message_id="msg-1",
        timestamp=stamp,
        type="order.created",
        user_id="guest",
        app_id="billing",
    )
    async with ScriptedServer() as server:
        async with aiorabbit.connect(server.url) as conn:
            ch = await conn.channel()
            async with ch.consume("q") as messages:
                peer = server.peers[0]
                channel, tag = _consumer_on(peer, "q")
                peer.deliver(
                    channel, tag, b"{}", props, exchange="orders", routing_key="new", redelivered=True
                )
                msg = await messages.get(timeout=5)
    got = msg.properties
    assert got.content_type == "application/json"
    assert got.content_encoding == "gzip"
    assert got.delivery_mode == 2
    assert got.priority == 7
    assert got.correlation_id == "corr-1"
    assert got.reply_to == "amq.rabbitmq.reply-to"
    assert got.expiration == "60000"
    assert got.message_id == "msg-1"
    assert got.timestamp == stamp
    assert got.type == "order.created"
    assert got.user_id == "guest"
    assert got.app_id == "billing"
    assert got.cluster_id is None
    assert msg.headers == headers
    assert got.headers == headers
    assert msg.redelivered and (msg.exchange, msg.routing_key) == ("orders", "new")
    assert not server.errors


# ---------------------------------------------------------------------------
# basic.get


async def test_basic_get_returns_a_message_or_none() -> None:
    def get(peer: Peer, channel: int, method: m.BasicGet) -> bool:
        if method.queue != "full":
            return False  # the default: get-empty
        peer.send_content(
            channel,
            m.BasicGetOk(delivery_tag=7, redelivered=True, exchange="ex", routing_key="rk", message_count=41),
            _body(300_000),
            aiorabbit.Properties(content_type="application/octet-stream", headers={"n": 1}),
        )
        return True

    async with ScriptedServer(serving({m.BasicGet: get})) as server:
        async with aiorabbit.connect(server.url) as conn:
            ch = await conn.channel()
            peer = server.peers[0]
            assert await ch.basic_get("empty") is None

            msg = await ch.basic_get("full")
            assert msg is not None
            assert msg.body == _body(300_000)
            assert (msg.delivery_tag, msg.redelivered, msg.exchange, msg.routing_key) == (7, True, "ex", "rk")
            assert msg.message_count == 41
            assert msg.consumer_tag is None
            assert msg.properties.content_type == "application/octet-stream"
            assert msg.headers == {"n": 1}
            assert not msg.settled
            msg.ack()
            assert msg.settled
            await peer.wait_received(m.BasicAck)
            assert _settles(peer, ch.number) == [m.BasicAck(delivery_tag=7, multiple=False)]

            auto = await ch.basic_get("full", no_ack=True)
            assert auto is not None and auto.settled
            with pytest.raises(aiorabbit.MessageAlreadySettled):
                auto.ack()
            gets = [x for _, x in peer.received if isinstance(x, m.BasicGet)]
            assert [(g.queue, g.no_ack) for g in gets] == [("empty", False), ("full", False), ("full", True)]
            await _round_trip(ch)
            assert len(_settles(peer, ch.number)) == 1  # nothing for the no_ack message
    assert not server.errors


# ---------------------------------------------------------------------------
# settling


async def test_ack_nack_and_reject_send_their_frames_and_a_second_settle_raises() -> None:
    async with ScriptedServer() as server:
        async with aiorabbit.connect(server.url) as conn:
            ch = await conn.channel()
            async with ch.consume("q") as messages:
                peer = server.peers[0]
                channel, tag = _consumer_on(peer, "q")
                for i in range(1, 10):
                    assert peer.deliver(channel, tag, b"%d" % i) == i
                got = {}
                async for msg in messages:
                    got[msg.delivery_tag] = msg
                    if len(got) == 9:
                        break
                assert [got[t].body for t in range(1, 10)] == [b"%d" % t for t in range(1, 10)]

                await got[1].ack()
                got[2].nack(requeue=False)
                got[3].reject()
                got[4].reject(requeue=False)
                got[6].ack(multiple=True)  # and 5
                await got[9].nack(multiple=True)  # 7, 8 and 9, requeued
                assert all(got[t].settled for t in (1, 2, 3, 4, 6, 9))

                # Settled already, or covered by a multiple: each raises, and
                # sends nothing.
                settle_again: list[Callable[[], object]] = [
                    got[1].ack,
                    got[2].reject,
                    lambda: got[3].nack(),
                    got[5].ack,
                    got[7].ack,
                    lambda: got[8].reject(requeue=False),
                    lambda: got[9].ack(multiple=True),
                ]
                for again in settle_again:
                    with pytest.raises(aiorabbit.MessageAlreadySettled):
                        again()

                await peer.wait_received(m.BasicNack, count=2)
                await _round_trip(ch)
                # The ack of 1 joined the loop turn's batch (aiorabbit/acks.py)
                # and the multiple ack of 6 covers it: it is not written alone.
                assert _settles(peer, channel) == [
                    m.BasicNack(delivery_tag=2, multiple=False, requeue=False),
                    m.BasicReject(delivery_tag=3, requeue=True),
                    m.BasicReject(delivery_tag=4, requeue=False),
                    m.BasicAck(delivery_tag=6, multiple=True),
                    m.BasicNack(delivery_tag=9, multiple=True, requeue=True),
                ]
    assert not server.errors


async def test_leaving_the_consumer_requeues_what_was_not_handed_out() -> None:
    async with ScriptedServer() as server:
        async with aiorabbit.connect(server.url) as conn:
            ch = await conn.channel()
            peer = server.peers[0]
            async with ch.consume("q") as messages:
                channel, tag = _consumer_on(peer, "q")
                for i in range(1, 5):
                    peer.deliver(channel, tag, b"%d" % i)
                first = await messages.get(timeout=5)
                await _round_trip(ch)  # the other three have arrived
            assert first.delivery_tag == 1
            await peer.wait_received(m.BasicCancel)
            await _round_trip(ch)
            cancels = [x for c, x in peer.received if c == channel and isinstance(x, m.BasicCancel)]
            assert cancels == [m.BasicCancel(consumer_tag=tag, nowait=False)]
            assert _settles(peer, channel) == [m.BasicReject(delivery_tag=t, requeue=True) for t in (2, 3, 4)]
            first.ack()  # the message handed out is still the program's to settle
            await _round_trip(ch)
            assert _settles(peer, channel)[-1] == m.BasicAck(delivery_tag=1, multiple=False)
    assert not server.errors


# ---------------------------------------------------------------------------
# the server closes a channel or cancels a consumer


async def test_a_channel_closed_by_the_server_raises_the_typed_error_and_the_connection_stays_usable() -> (
    None
):
    text = "NOT_FOUND - no queue 'nope' in vhost '/'"

    def declare(peer: Peer, channel: int, method: m.QueueDeclare) -> bool:
        if method.passive and method.queue == "nope":
            peer.send_method(
                channel, m.ChannelClose(reply_code=404, reply_text=text, class_id=50, method_id=10)
            )
            return True
        return False

    async with ScriptedServer(serving({m.QueueDeclare: declare})) as server:
        async with aiorabbit.connect(server.url) as conn:
            ch = await conn.channel()
            number = ch.number
            async with ch.consume("work") as messages:
                peer = server.peers[0]
                channel, tag = _consumer_on(peer, "work")
                peer.deliver(channel, tag, b"unsettled")
                delivered = await messages.get(timeout=5)

                with pytest.raises(aiorabbit.NotFound) as caught:
                    await ch.queue_declare("nope", passive=True)
                exc = caught.value
                assert (exc.reply_code, exc.reply_text) == (404, text)
                assert ch.is_closed and ch.closed_reason is exc
                # The consumer on that channel ends with the channel's error.
                with pytest.raises(aiorabbit.NotFound):
                    await messages.get(timeout=5)
                assert messages.error is exc
                # The delivery tag died with the channel.
                with pytest.raises(aiorabbit.ChannelClosed) as settle:
                    delivered.ack()
                assert settle.value.cause is exc
                with pytest.raises(aiorabbit.ChannelClosed) as later:
                    await ch.queue_declare("work")
                assert later.value.cause is exc

            await peer.wait_received(m.ChannelCloseOk)
            assert conn.is_open
            again = await conn.channel()
            assert (await again.queue_declare("work")).queue == "work"
            # The number was free once the close was acknowledged: the new
            # channel took it, and close-ok went out before its channel.open.
            assert again.number == number
            on_number = [type(x) for c, x in peer.received if c == number]
            assert on_number[-3:] == [m.ChannelCloseOk, m.ChannelOpen, m.QueueDeclare]
            assert not _settles(peer, number)
    assert not server.errors


@pytest.mark.parametrize("nowait", [False, True])
async def test_a_consumer_cancelled_by_the_server_raises_consumer_cancelled(nowait: bool) -> None:
    async with ScriptedServer() as server:
        async with aiorabbit.connect(server.url) as conn:
            ch = await conn.channel()
            got: list[bytes] = []
            async with ch.consume("doomed") as messages:
                peer = server.peers[0]
                channel, tag = _consumer_on(peer, "doomed")
                peer.deliver(channel, tag, b"one")
                peer.deliver(channel, tag, b"two")
                peer.send_method(channel, m.BasicCancel(consumer_tag=tag, nowait=nowait))
                with pytest.raises(aiorabbit.ConsumerCancelled) as caught:
                    async for msg in messages:
                        got.append(msg.body)
                        msg.ack()
                assert caught.value.consumer_tag == tag
                assert messages.error is caught.value
                assert messages.ended
            # Messages delivered before the cancel were handed out first.
            assert got == [b"one", b"two"]
            assert ch.is_open and conn.is_open
            await _round_trip(ch)
            replies = [x for c, x in peer.received if c == channel and isinstance(x, m.BasicCancelOk)]
            assert replies == ([] if nowait else [m.BasicCancelOk(consumer_tag=tag)])
            # Leaving the block sends no basic.cancel for a consumer the server ended.
            assert not [x for _, x in peer.received if isinstance(x, m.BasicCancel)]
            # Both acked in one loop turn: one coalesced frame (aiorabbit/acks.py).
            assert _settles(peer, channel) == [m.BasicAck(delivery_tag=2, multiple=True)]
    assert not server.errors
