"""aiorabbit.rpc: RpcClient (direct reply-to) and RpcServer against the real broker.

Links are cut or stalled with :class:`~tests.proxy.Proxy`; the robust
connections use a fast backoff so that each recovery takes a fraction of a
second.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

import aiorabbit
from aiorabbit import (
    AMQPError,
    ChannelClosed,
    ConnectionClosed,
    ConnectionLost,
    ConsumerCancelled,
    IncomingMessage,
    InvalidArgument,
    MessageReturned,
    NotFound,
    Properties,
)
from aiorabbit.codec import methods as m
from aiorabbit.codec.frames import encode_method_frame
from aiorabbit.rpc import (
    ERROR_HEADER,
    ERROR_TYPE_HEADER,
    REPLY_TO,
    RemoteError,
    Reply,
    RpcClient,
    RpcServer,
    RpcTimeout,
)

from .conftest import Names
from .proxy import Proxy

BROKER = ("127.0.0.1", 5672)
FAST = aiorabbit.Backoff(initial=0.05, maximum=0.3)


# ----------------------------------------------------------------------
# helpers


async def until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``predicate()`` is true (fail after ``timeout`` seconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def ready(conn: aiorabbit.Connection, queue: str) -> int:
    """Messages ready (not delivered) in ``queue``."""
    ch = await conn.channel()
    try:
        return (await ch.queue_declare(queue, passive=True)).message_count
    finally:
        await ch.close()


async def eventually_ready(conn: aiorabbit.Connection, queue: str, count: int) -> None:
    """Wait until ``queue`` holds ``count`` ready messages."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while (found := await ready(conn, queue)) != count:
        assert loop.time() < deadline, f"{found} messages ready in {queue}, not {count}"
        await asyncio.sleep(0.02)


async def echo(msg: IncomingMessage) -> bytes:
    return msg.body


#: The longest a Gate holds a request.
HOLD_MAX = 15.0


class Gate:
    """A handler that records its requests and holds them until released."""

    def __init__(self, hold: Callable[[bytes], bool] = lambda body: True) -> None:
        self.hold = hold
        self.released = asyncio.Event()
        self.started: list[bytes] = []
        self.finished: list[bytes] = []
        self.cancelled: list[bytes] = []
        self.running = 0
        self.max_running = 0

    async def __call__(self, msg: IncomingMessage) -> bytes:
        self.started.append(msg.body)
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            if self.hold(msg.body):
                # Bounded: a test that fails while a request is held must fail,
                # not hang in the server's close() waiting for this handler.
                await asyncio.wait_for(self.released.wait(), HOLD_MAX)
        except asyncio.CancelledError:
            self.cancelled.append(msg.body)
            raise
        finally:
            self.running -= 1
        self.finished.append(msg.body)
        return b"done:" + msg.body


@pytest.fixture
async def proxy() -> AsyncIterator[Proxy]:
    async with Proxy(*BROKER) as p:
        yield p


def spawn(coro: Any) -> asyncio.Task[Any]:
    return asyncio.ensure_future(coro)


# ----------------------------------------------------------------------
# calls


async def test_round_trip(connection: aiorabbit.Connection, names: Names) -> None:
    q = names.queue("rpc")

    async def upper(msg: IncomingMessage) -> bytes | bytearray | memoryview:
        if msg.body == b"view":
            return memoryview(b"VIEW")
        if msg.body == b"array":
            return bytearray(b"ARRAY")
        return msg.body.upper()

    async with RpcServer(connection, q, upper) as server, RpcClient(connection) as rpc:
        reply = await rpc.call(b"hello", routing_key=q)
        assert reply.body == b"HELLO"
        assert reply.routing_key.startswith(REPLY_TO)  # it came through direct reply-to
        assert (await rpc.call(bytearray(b"x"), routing_key=q)).body == b"X"
        assert (await rpc.call(memoryview(b"view"), routing_key=q)).body == b"VIEW"
        assert (await rpc.call(b"array", routing_key=q)).body == b"ARRAY"
        assert (await rpc.call(b"", routing_key=q)).body == b""
        assert rpc.pending == 0 and server.in_flight == 0
        assert "RpcClient" in repr(rpc) and "RpcServer" in repr(server)
        assert await rpc.start() is rpc  # started once
    await rpc.close()  # idempotent
    # Every request was acked, and both channels are closed.
    assert await ready(connection, q) == 0
    assert rpc.is_closed and rpc.channel is None and server.channel is None


async def test_properties_and_headers_are_carried(connection: aiorabbit.Connection, names: Names) -> None:
    q = names.queue("rpc")
    seen: list[IncomingMessage] = []

    async def handler(msg: IncomingMessage) -> Reply:
        seen.append(msg)
        props = Properties(content_type="text/plain", headers={"answer": 42}, correlation_id="not this")
        return Reply(b"ok", props)

    async with RpcServer(connection, q, handler), RpcClient(connection, timeout=5) as rpc:
        sent = Properties(content_type="application/json", headers={"a": 1, "b": "two"}, message_id="m1")
        reply = await rpc.call(b"{}", routing_key=q, properties=sent)
        request = seen[0].properties
        assert request.content_type == "application/json"
        assert request.headers == {"a": 1, "b": "two"} and request.message_id == "m1"
        assert request.reply_to is not None and request.reply_to.startswith(REPLY_TO + ".")
        assert request.expiration == "5000"  # the call's timeout, in ms
        assert sent.correlation_id is None and sent.reply_to is None  # not modified
        # The reply: the handler's properties, with the request's correlation id.
        assert reply.body == b"ok"
        assert reply.properties.content_type == "text/plain" and reply.headers == {"answer": 42}
        assert reply.properties.correlation_id == request.correlation_id != "not this"

        # An expiration of the caller's own is kept; without a timeout there is none.
        await rpc.call(b"", routing_key=q, properties=Properties(expiration="60000"))
        assert seen[1].properties.expiration == "60000"
        await rpc.call(b"", routing_key=q, timeout=None)
        assert seen[2].properties.expiration is None
        # Every call has its own correlation id.
        assert len({s.properties.correlation_id for s in seen}) == 3


async def test_bad_arguments(connection: aiorabbit.Connection) -> None:
    with pytest.raises(InvalidArgument):
        RpcClient(connection, timeout=0)
    with pytest.raises(InvalidArgument):
        RpcServer(connection, "", echo)
    with pytest.raises(InvalidArgument):
        RpcServer(connection, "q", echo, concurrency=0)
    with pytest.raises(InvalidArgument):
        RpcServer(connection, "q", echo, prefetch=0)
    never_started = RpcServer(connection, "q", echo)
    await never_started.close()
    await never_started.serve_forever()  # returns at once: closed
    async with RpcClient(connection) as rpc:
        for props in (Properties(correlation_id="mine"), Properties(reply_to="elsewhere")):
            with pytest.raises(InvalidArgument, match="correlation_id and reply_to"):
                await rpc.call(b"", routing_key="q", properties=props)
        with pytest.raises(InvalidArgument):
            await rpc.call(b"", routing_key="q", properties={"headers": {}})  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument):
            await rpc.call(b"", routing_key="q", timeout=-1)
        with pytest.raises(InvalidArgument):
            await rpc.call("text", routing_key="q")  # type: ignore[arg-type]
        assert rpc.pending == 0
        assert rpc.channel is not None and rpc.channel.is_open


async def test_many_concurrent_calls_on_one_channel(connection: aiorabbit.Connection, names: Names) -> None:
    q = names.queue("rpc")
    order: list[int] = []

    async def shuffled(msg: IncomingMessage) -> bytes:
        await asyncio.sleep(random.random() * 0.01)
        order.append(int(msg.body))
        return b"reply to %s" % msg.body

    async with RpcServer(connection, q, shuffled, concurrency=200), RpcClient(connection) as rpc:
        channel = rpc.channel
        replies = await asyncio.gather(*(rpc.call(b"%d" % i, routing_key=q) for i in range(1000)))
        assert [r.body for r in replies] == [b"reply to %d" % i for i in range(1000)]
        assert rpc.channel is channel and rpc.pending == 0
    assert sorted(order) == list(range(1000))
    assert order != sorted(order)  # the replies really came back out of order


async def test_timeout_and_a_late_reply(
    connection: aiorabbit.Connection, names: Names, caplog: pytest.LogCaptureFixture
) -> None:
    q = names.queue("rpc")
    gate = Gate(hold=lambda body: body == b"slow")
    loop = asyncio.get_running_loop()
    async with RpcServer(connection, q, gate) as server, RpcClient(connection, timeout=5) as rpc:
        started = loop.time()
        with pytest.raises(RpcTimeout) as info:
            await rpc.call(b"slow", routing_key=q, timeout=0.2)
        # uvloop's timers have millisecond resolution and may fire up to 1 ms early.
        assert 0.199 <= loop.time() - started < 1.5
        exc = info.value
        cid = exc.correlation_id
        assert isinstance(exc, TimeoutError) and isinstance(exc, AMQPError)
        assert exc.timeout == 0.2 and cid is not None and cid in str(exc)
        assert rpc.pending == 0

        # The server finishes late: its reply is dropped, and the client goes on.
        with caplog.at_level(logging.DEBUG, logger="aiorabbit"):
            gate.released.set()
            await until(lambda: cid in caplog.text)
        assert "dropping a reply" in caplog.text
        assert (await rpc.call(b"fast", routing_key=q)).body == b"done:fast"
        assert server.in_flight == 0 and rpc.pending == 0


async def test_the_client_timeout_is_the_default(connection: aiorabbit.Connection, names: Names) -> None:
    q = names.queue("rpc")
    gate = Gate()
    async with RpcServer(connection, q, gate), RpcClient(connection, timeout=0.1) as rpc:
        with pytest.raises(RpcTimeout) as info:
            await rpc.call(b"x", routing_key=q)
        assert info.value.timeout == 0.1
        gate.released.set()


async def test_a_request_expires_with_its_call(connection: aiorabbit.Connection, names: Names) -> None:
    q = names.queue("rpc")
    ch = await connection.channel()
    await ch.queue_declare(q)
    async with RpcClient(connection) as rpc:
        with pytest.raises(RpcTimeout):
            await rpc.call(b"nobody serves", routing_key=q, timeout=0.1)
    # Nobody waits for it any more: the broker drops it instead of handing
    # it to the next server.
    gate = Gate(hold=lambda body: False)
    async with RpcServer(connection, q, gate, declare=False):
        await asyncio.sleep(0.2)
    assert gate.started == []
    assert await ready(connection, q) == 0


async def test_a_cancelled_call_leaves_nothing_behind(connection: aiorabbit.Connection, names: Names) -> None:
    q = names.queue("rpc")
    gate = Gate(hold=lambda body: body == b"slow")
    async with RpcServer(connection, q, gate), RpcClient(connection) as rpc:
        task = spawn(rpc.call(b"slow", routing_key=q))
        await until(lambda: gate.started == [b"slow"])
        assert rpc.pending == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert rpc.pending == 0
        gate.released.set()
        assert (await rpc.call(b"next", routing_key=q)).body == b"done:next"


class Boom(Exception):
    pass


async def test_a_remote_failure_raises_remote_error(
    connection: aiorabbit.Connection, names: Names, caplog: pytest.LogCaptureFixture
) -> None:
    q = names.queue("rpc")
    calls: collections.Counter[bytes] = collections.Counter()

    async def failing(msg: IncomingMessage) -> Any:
        calls[msg.body] += 1
        if msg.body == b"value":
            raise ValueError("bad input")
        if msg.body == b"boom":
            raise Boom()
        if msg.body == b"long":
            raise ValueError("x" * 5000)
        if msg.body == b"str":
            return "not bytes"
        if msg.body == b"props":
            return Reply(b"", {"headers": {}})  # type: ignore[arg-type]
        if msg.body == b"unencodable":
            return Reply(b"", Properties(priority=300))
        return msg.body

    async with RpcServer(connection, q, failing), RpcClient(connection) as rpc:
        with pytest.raises(RemoteError) as info:
            await rpc.call(b"value", routing_key=q)
        exc = info.value
        assert (exc.error_type, exc.message, str(exc)) == ("ValueError", "bad input", "ValueError: bad input")
        assert exc.reply.headers == {ERROR_TYPE_HEADER: "ValueError", ERROR_HEADER: "bad input"}
        assert isinstance(exc, AMQPError)

        with pytest.raises(RemoteError) as info:
            await rpc.call(b"boom", routing_key=q)
        assert info.value.error_type == f"{__name__}.Boom"
        assert str(info.value) == f"{__name__}.Boom"  # no message

        with pytest.raises(RemoteError) as info:
            await rpc.call(b"long", routing_key=q)
        assert info.value.message == "x" * 1000  # cut to fit in a frame

        with pytest.raises(RemoteError, match=r"^TypeError: an RPC handler must return bytes-like"):
            await rpc.call(b"str", routing_key=q)
        with pytest.raises(RemoteError, match=r"^TypeError: Reply\.properties must be"):
            await rpc.call(b"props", routing_key=q)
        with pytest.raises(RemoteError) as info:
            await rpc.call(b"unencodable", routing_key=q)
        assert info.value.error_type == "aiorabbit.exceptions.InvalidArgument"

        # The server is fine, and the failed requests were acked, not redelivered.
        assert (await rpc.call(b"fine", routing_key=q)).body == b"fine"
        await asyncio.sleep(0.1)
    assert await ready(connection, q) == 0
    assert set(calls.values()) == {1}
    assert "RPC handler for" in caplog.text and "bad input" in caplog.text


async def test_an_error_reply_from_another_server(connection: aiorabbit.Connection, names: Names) -> None:
    # A hand-written server, replying with byte strings in the error headers.
    q = names.queue("rpc")
    ch = await connection.channel()
    await ch.queue_declare(q)

    async def serve(msg: IncomingMessage) -> None:
        headers = {ERROR_TYPE_HEADER: b"Bad\xff", ERROR_HEADER: bytearray(b"text")}
        props = Properties(correlation_id=msg.properties.correlation_id, headers=headers)
        await ch.basic_publish(b"", routing_key=msg.properties.reply_to or "", properties=props)

    await ch.basic_consume(q, serve, no_ack=True)
    async with RpcClient(connection) as rpc:
        with pytest.raises(RemoteError) as info:
            await rpc.call(b"", routing_key=q)
    assert (info.value.error_type, info.value.message) == ("Bad\ufffd", "text")


async def test_an_unroutable_request_fails_at_once(connection: aiorabbit.Connection, names: Names) -> None:
    q = names.queue("rpc")
    loop = asyncio.get_running_loop()
    async with RpcClient(connection, timeout=10) as rpc:
        started = loop.time()
        with pytest.raises(MessageReturned) as info:
            await rpc.call(b"lost", routing_key=q)  # no such queue yet
        assert loop.time() - started < 2
        assert info.value.message.routing_key == q and info.value.message.body == b"lost"
        assert rpc.pending == 0
        async with RpcServer(connection, q, echo):
            assert (await rpc.call(b"found", routing_key=q)).body == b"found"


async def test_a_request_returned_after_its_call_ended(
    connection: aiorabbit.Connection, names: Names, caplog: pytest.LogCaptureFixture
) -> None:
    async with RpcClient(connection) as rpc:
        with caplog.at_level(logging.DEBUG, logger="aiorabbit"):
            call = spawn(rpc.call(b"lost", routing_key=names.queue("nowhere")))
            await asyncio.sleep(0)  # sent; the basic.return is on its way
            call.cancel()
            await until(lambda: "dropping a returned request" in caplog.text)
        assert rpc.pending == 0


async def test_an_unknown_exchange_closes_the_channel_then_calls_go_on(
    connection: aiorabbit.Connection, names: Names
) -> None:
    q = names.queue("rpc")
    gate = Gate()
    async with RpcServer(connection, q, gate), RpcClient(connection) as rpc:
        first = rpc.channel
        held = spawn(rpc.call(b"held", routing_key=q))
        await until(lambda: gate.started == [b"held"])
        with pytest.raises(NotFound):
            await rpc.call(b"", exchange=names.exchange("missing"), routing_key=q)
        # The call in flight on that channel failed too (its reply has no way back).
        with pytest.raises(NotFound):
            await held
        gate.released.set()
        assert (await rpc.call(b"again", routing_key=q)).body == b"done:again"
        assert rpc.channel is not first and first is not None and first.is_closed


async def test_a_reply_consumer_cancelled_by_the_broker(
    connection: aiorabbit.Connection, names: Names
) -> None:
    q = names.queue("rpc")
    gate = Gate(hold=lambda body: body == b"held")
    async with RpcServer(connection, q, gate), RpcClient(connection) as rpc:
        channel = rpc.channel
        assert channel is not None
        held = spawn(rpc.call(b"held", routing_key=q))
        await until(lambda: gate.started == [b"held"])
        # As if the broker had sent basic.cancel for the reply consumer.
        (tag,) = channel._consumers
        channel._on_server_cancel(m.BasicCancel(consumer_tag=tag, nowait=True))
        with pytest.raises(ConsumerCancelled):
            await held
        await until(lambda: channel.is_closed)  # dropped and closed
        gate.released.set()
        assert (await rpc.call(b"next", routing_key=q)).body == b"done:next"
        assert rpc.channel is not channel

    # Closed while it closes that channel: close() waits for it.
    rpc = await RpcClient(connection).start()
    other = rpc.channel
    assert other is not None
    (tag,) = other._consumers
    other._on_server_cancel(m.BasicCancel(consumer_tag=tag, nowait=True))
    await rpc.close()
    assert other.is_closed


# ----------------------------------------------------------------------
# the server


async def test_prefetch_bounds_the_requests_taken(connection: aiorabbit.Connection, names: Names) -> None:
    q = names.queue("rpc")
    gate = Gate()
    async with RpcServer(connection, q, gate, concurrency=2) as server, RpcClient(connection) as rpc:
        assert server.prefetch == 2
        calls = [spawn(rpc.call(b"%d" % i, routing_key=q)) for i in range(5)]
        await until(lambda: len(gate.started) == 2)
        await asyncio.sleep(0.1)
        # Two are being handled (unacked); the other three wait in the queue.
        assert len(gate.started) == 2 and server.in_flight == 2
        assert await ready(connection, q) == 3
        gate.released.set()
        replies = await asyncio.gather(*calls)
        assert sorted(r.body for r in replies) == sorted(b"done:%d" % i for i in range(5))
    assert await ready(connection, q) == 0


async def test_concurrency_bounds_the_handlers_running(
    connection: aiorabbit.Connection, names: Names
) -> None:
    q = names.queue("rpc")
    gate = Gate()
    async with RpcServer(connection, q, gate, concurrency=3, prefetch=10) as server:
        async with RpcClient(connection) as rpc:
            calls = [spawn(rpc.call(b"%d" % i, routing_key=q)) for i in range(10)]
            await until(lambda: len(gate.started) == 3)
            # All ten were delivered (prefetch 10), three run.
            await asyncio.sleep(0.1)
            assert await ready(connection, q) == 0
            assert server.in_flight == 3 and len(gate.started) == 3
            gate.released.set()
            await asyncio.gather(*calls)
    assert gate.max_running == 3 and len(gate.finished) == 10


async def test_the_request_is_acked_after_its_reply(
    connection: aiorabbit.Connection, names: Names, monkeypatch: pytest.MonkeyPatch
) -> None:
    q = names.queue("rpc")
    events: list[tuple[str, str | None]] = []
    async with RpcServer(connection, q, echo, concurrency=5) as server, RpcClient(connection) as rpc:
        channel = server.channel
        assert channel is not None
        publish, settle = channel.basic_publish, channel._settle_message

        async def recording_publish(body: Any, **kwargs: Any) -> None:
            events.append(("reply", kwargs["properties"].correlation_id))
            await publish(body, **kwargs)

        def recording_settle(msg: IncomingMessage, *args: Any) -> None:
            events.append(("ack", msg.properties.correlation_id))
            settle(msg, *args)

        monkeypatch.setattr(channel, "basic_publish", recording_publish)
        monkeypatch.setattr(channel, "_settle_message", recording_settle)
        await asyncio.gather(*(rpc.call(b"%d" % i, routing_key=q) for i in range(20)))
    assert len(events) == 40
    for cid in {cid for _, cid in events}:
        assert events.index(("reply", cid)) < events.index(("ack", cid))


async def test_a_request_without_reply_to(
    connection: aiorabbit.Connection, names: Names, caplog: pytest.LogCaptureFixture
) -> None:
    q = names.queue("rpc")
    seen: list[bytes] = []

    async def handler(msg: IncomingMessage) -> bytes:
        seen.append(msg.body)
        if msg.body == b"fail":
            raise RuntimeError("no one to tell")
        return b"unused"

    async with RpcServer(connection, q, handler):
        ch = await connection.channel()
        await ch.basic_publish(b"fire", routing_key=q, properties=Properties(correlation_id="c1"))
        await ch.basic_publish(b"fail", routing_key=q)
        await until(lambda: len(seen) == 2)
        await asyncio.sleep(0.1)
        assert await ready(connection, q) == 0
    # Both were acked: nothing comes back once the server is gone.
    await asyncio.sleep(0.1)
    assert await ready(connection, q) == 0 and seen == [b"fire", b"fail"]
    assert "no one to tell" in caplog.text


async def test_the_server_answers_a_classic_client(connection: aiorabbit.Connection, names: Names) -> None:
    # The RabbitMQ tutorial's first client: an exclusive callback queue.
    q = names.queue("rpc")
    async with RpcServer(connection, q, echo):
        ch = await connection.channel()
        callback = (await ch.queue_declare("", exclusive=True)).queue
        props = Properties(reply_to=callback, correlation_id="abc")
        await ch.basic_publish(b"classic", routing_key=q, properties=props)
        async with ch.consume(callback, no_ack=True) as replies:
            reply = await replies.get(timeout=5)
    assert reply.body == b"classic" and reply.properties.correlation_id == "abc"


async def test_close_waits_for_the_handler_in_flight(connection: aiorabbit.Connection, names: Names) -> None:
    q = names.queue("rpc")
    gate = Gate()
    server = await RpcServer(connection, q, gate).start()
    assert await server.start() is server  # idempotent
    serving = spawn(server.serve_forever())
    async with RpcClient(connection) as rpc:
        call = spawn(rpc.call(b"work", routing_key=q))
        await until(lambda: gate.started == [b"work"])
        closing = spawn(server.close())
        await asyncio.sleep(0.2)
        assert not closing.done() and not serving.done()
        gate.released.set()
        await asyncio.wait_for(closing, 5)
        # The reply went out before the channel closed, and the request was acked.
        assert (await call).body == b"done:work"
        await asyncio.wait_for(serving, 1)  # returns once closed
        assert server.channel is None
        await server.close()  # idempotent
        await server.serve_forever()  # returns at once
        with pytest.raises(InvalidArgument):
            await server.start()
        # Nobody consumes the queue any more.
        with pytest.raises(RpcTimeout):
            await rpc.call(b"late", routing_key=q, timeout=0.2)
    await eventually_ready(connection, q, 0)  # expired


async def test_close_requeues_the_requests_not_started(
    connection: aiorabbit.Connection, names: Names
) -> None:
    q = names.queue("rpc")
    gate = Gate()
    server = await RpcServer(connection, q, gate, concurrency=1, prefetch=3).start()
    async with RpcClient(connection) as rpc:
        calls = [spawn(rpc.call(b"%d" % i, routing_key=q)) for i in range(3)]
        await until(lambda: len(gate.started) == 1)
        await until(lambda: server.in_flight == 1)
        await asyncio.sleep(0.1)
        assert await ready(connection, q) == 0  # all three delivered, one running
        closing = spawn(server.close())
        await asyncio.sleep(0.1)
        assert await ready(connection, q) == 2  # the two waiting went back
        gate.released.set()
        await closing
        assert gate.started == [b"0"]
        # Another server takes the two over.
        async with RpcServer(connection, q, gate):
            replies = await asyncio.gather(*calls)
    assert [r.body for r in replies] == [b"done:0", b"done:1", b"done:2"]


async def test_cancelling_close_cancels_the_handlers(connection: aiorabbit.Connection, names: Names) -> None:
    q = names.queue("rpc")
    gate = Gate()
    server = await RpcServer(connection, q, gate, concurrency=2).start()
    async with RpcClient(connection) as rpc:
        calls = [spawn(rpc.call(b"%d" % i, routing_key=q)) for i in range(2)]
        await until(lambda: len(gate.started) == 2)
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(server.close(), 0.2)
        assert sorted(gate.cancelled) == [b"0", b"1"]
        assert server.channel is None
        # Unacked, so back in the queue for another server.
        await eventually_ready(connection, q, 2)
        gate.released.set()
        async with RpcServer(connection, q, gate):
            assert sorted(r.body for r in await asyncio.gather(*calls)) == [b"done:0", b"done:1"]


async def test_deliveries_racing_close_are_requeued(
    connection: aiorabbit.Connection, names: Names, proxy: Proxy
) -> None:
    q = names.queue("rpc")
    gate = Gate(hold=lambda body: False)
    conn = await aiorabbit.connect(proxy.url)
    try:
        server = await RpcServer(conn, q, gate).start()
        async with RpcClient(connection) as rpc:
            # The delivery is on its way (held in the proxy) when close()
            # sends basic.cancel: it arrives before the cancel-ok.
            proxy.stall(upstream=False, downstream=True)
            call = spawn(rpc.call(b"racing", routing_key=q))
            await asyncio.sleep(0.2)
            closing = spawn(server.close())
            await asyncio.sleep(0.1)
            proxy.resume()
            await asyncio.wait_for(closing, 5)
            assert gate.started == []
            assert await ready(connection, q) == 1
            async with RpcServer(connection, q, gate):
                assert (await call).body == b"done:racing"
    finally:
        await conn.close()


async def test_start_without_declaring(connection: aiorabbit.Connection, names: Names) -> None:
    q = names.queue("rpc")
    with pytest.raises(NotFound):
        await RpcServer(connection, q, echo, declare=False).start()
    ch = await connection.channel()
    await ch.queue_declare(q, durable=True)
    # Declaring it again with other arguments would fail; not declaring works.
    with pytest.raises(aiorabbit.PreconditionFailed):
        await RpcServer(connection, q, echo, durable=False).start()
    async with RpcServer(connection, q, echo, declare=False), RpcClient(connection) as rpc:
        assert (await rpc.call(b"x", routing_key=q)).body == b"x"
    # The same queue options, then.
    async with RpcServer(connection, q, echo, durable=True, arguments={}), RpcClient(connection) as rpc:
        assert (await rpc.call(b"y", routing_key=q)).body == b"y"


async def test_a_queue_that_cannot_be_declared(connection: aiorabbit.Connection, names: Names) -> None:
    q = names.queue("rpc")
    server = RpcServer(connection, q, echo, auto_delete=True, arguments={"x-bad": object()})
    with pytest.raises(InvalidArgument):
        await server.start()
    # The channel it had opened is closed again.
    assert server.channel is None
    assert all(not ch.is_open for ch in connection._channels.values())


async def test_the_server_stops_when_its_queue_is_deleted(
    connection: aiorabbit.Connection, names: Names
) -> None:
    q = names.queue("rpc")
    gate = Gate()
    async with RpcServer(connection, q, gate, concurrency=1, prefetch=3) as server:
        serving = spawn(server.serve_forever())
        async with RpcClient(connection) as rpc:
            calls = [spawn(rpc.call(b"%d" % i, routing_key=q, timeout=1)) for i in range(3)]
            await until(lambda: len(gate.started) == 1)
            await asyncio.sleep(0.1)
            ch = await connection.channel()
            await ch.queue_delete(q)
            with pytest.raises(ConsumerCancelled):
                await asyncio.wait_for(serving, 5)
            gate.released.set()
            results = await asyncio.gather(*calls, return_exceptions=True)
            # The one running still replies; the waiting ones had nowhere to go.
            assert results[0].body == b"done:0"  # type: ignore[union-attr]
            assert all(isinstance(r, RpcTimeout) for r in results[1:])


# ----------------------------------------------------------------------
# connection loss


async def test_a_lost_connection_fails_pending_calls_at_once(
    connection: aiorabbit.Connection, names: Names, proxy: Proxy
) -> None:
    q = names.queue("rpc")
    gate = Gate()
    loop = asyncio.get_running_loop()
    async with RpcServer(connection, q, gate, concurrency=20):
        conn = await aiorabbit.connect(proxy.url)
        try:
            rpc = await RpcClient(conn, timeout=30).start()
            calls = [spawn(rpc.call(b"%d" % i, routing_key=q)) for i in range(20)]
            await until(lambda: len(gate.started) == 20)
            cut = loop.time()
            proxy.cut()
            results = await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), 2)
            assert loop.time() - cut < 1
            assert all(isinstance(r, ConnectionLost) for r in results), results
            assert rpc.pending == 0 and rpc.channel is None
            # A plain connection does not come back.
            with pytest.raises(ConnectionClosed):
                await rpc.call(b"after", routing_key=q)
            await rpc.close()
        finally:
            await conn.close()
        gate.released.set()  # the server's replies go nowhere; it acks all the same
        await until(lambda: len(gate.finished) == 20)


async def test_a_robust_client_calls_again_after_a_cut(
    connection: aiorabbit.Connection, names: Names, proxy: Proxy
) -> None:
    q = names.queue("rpc")
    gate = Gate(hold=lambda body: body == b"held")
    async with RpcServer(connection, q, gate):
        async with aiorabbit.connect_robust(proxy.url, backoff=FAST, heartbeat=0) as rconn:
            async with RpcClient(rconn, timeout=10) as rpc:
                assert (await rpc.call(b"before", routing_key=q)).body == b"done:before"
                first = rpc.channel
                held = spawn(rpc.call(b"held", routing_key=q))
                await until(lambda: b"held" in gate.started)
                proxy.cut()
                # The call in flight fails at once: its reply could not reach us.
                with pytest.raises(ConnectionLost):
                    await asyncio.wait_for(held, 1)
                # New calls wait for recovery, then go through.
                assert (await rpc.call(b"after", routing_key=q)).body == b"done:after"
                second = rpc.channel
                assert second is not first
                proxy.cut()
                # Lost (None) or already replaced: recovery may be that quick.
                await until(lambda: rpc.channel is not second)
                replies = await asyncio.gather(*(rpc.call(b"%d" % i, routing_key=q) for i in range(50)))
                assert [r.body for r in replies] == [b"done:%d" % i for i in range(50)]
            gate.released.set()
        # Closed for good: a call fails (the client is closed too).
        rpc2 = RpcClient(rconn)
        with pytest.raises(ConnectionClosed):
            await rpc2.call(b"", routing_key=q)


async def test_a_publish_that_meets_a_dead_connection_is_retried(
    connection: aiorabbit.Connection, names: Names, proxy: Proxy
) -> None:
    q = names.queue("rpc")
    async with RpcServer(connection, q, echo):
        async with aiorabbit.connect_robust(proxy.url, backoff=FAST, heartbeat=0) as rconn:
            async with RpcClient(rconn, timeout=10) as rpc:
                channel = rpc.channel
                assert channel is not None
                # The channel dies without the client noticing (the loss it
                # would have been told about is simulated away).  (The client
                # stands on a robust channel, which reopens it by itself.)
                channel._consumers.clear()
                proxy.cut()
                await until(lambda: channel.is_closed)
                assert (await rpc.call(b"retried", routing_key=q)).body == b"retried"
                assert rpc.channel is not channel


async def test_a_call_waiting_for_recovery_times_out(names: Names, proxy: Proxy) -> None:
    q = names.queue("rpc")
    rconn = await aiorabbit.connect_robust(proxy.url, backoff=FAST, heartbeat=0, wait_timeout=30)
    try:
        rpc = await RpcClient(rconn).start()
        await proxy.close()  # cut, and no reconnect succeeds
        await until(lambda: rpc.channel is None)
        with pytest.raises(RpcTimeout) as info:
            await rpc.call(b"", routing_key=q, timeout=0.2)
        assert info.value.correlation_id is None  # never sent
        # close() stops the wait of the calls still waiting.
        waiting = spawn(rpc.call(b"", routing_key=q, timeout=None))
        await asyncio.sleep(0.1)
        await rpc.close()
        with pytest.raises(ChannelClosed, match="closed"):
            await waiting
        with pytest.raises(ChannelClosed):
            await rpc.call(b"", routing_key=q)
    finally:
        await rconn.close()


async def test_close_while_the_reply_consumer_starts(
    connection: aiorabbit.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aiorabbit.rpc

    never = asyncio.Event()

    async def stuck(self: Any) -> None:
        await never.wait()

    monkeypatch.setattr(aiorabbit.rpc.Consumer, "start", stuck)  # only the reply consumer starts here
    rpc = RpcClient(connection)
    starting = spawn(rpc.start())
    await until(lambda: any(ch.is_open for ch in connection._channels.values()))
    await rpc.close()
    with pytest.raises(ChannelClosed):
        await starting
    # The half-opened channel was closed.
    assert not any(ch.is_open for ch in connection._channels.values())


async def test_a_blocked_connection_does_not_hold_a_call_past_its_timeout(
    names: Names, proxy: Proxy
) -> None:
    q = names.queue("rpc")
    conn = await aiorabbit.connect(proxy.url, heartbeat=0)
    try:
        async with RpcServer(conn, q, echo), RpcClient(conn) as rpc:
            proxy.inject(encode_method_frame(0, m.ConnectionBlocked(reason="low on memory")))
            await until(lambda: conn.is_blocked)
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(RpcTimeout):
                await rpc.call(b"held back", routing_key=q, timeout=0.2)
            assert loop.time() - started < 1
            proxy.inject(encode_method_frame(0, m.ConnectionUnblocked()))
            await until(lambda: not conn.is_blocked)
            assert (await rpc.call(b"free", routing_key=q, timeout=5)).body == b"free"
    finally:
        await conn.close()


async def test_a_robust_server_resumes_after_a_cut(
    connection: aiorabbit.Connection, names: Names, proxy: Proxy
) -> None:
    q = names.queue("rpc")
    calls: collections.Counter[bytes] = collections.Counter()
    release = asyncio.Event()

    async def handler(msg: IncomingMessage) -> bytes:
        calls[msg.body] += 1
        if msg.body == b"during":
            await release.wait()
        return msg.body

    async with aiorabbit.connect_robust(proxy.url, backoff=FAST, heartbeat=0) as rconn:
        async with RpcServer(rconn, q, handler) as server, RpcClient(connection, timeout=10) as rpc:
            serving = spawn(server.serve_forever())
            assert (await rpc.call(b"before", routing_key=q)).body == b"before"
            during = spawn(rpc.call(b"during", routing_key=q))
            await until(lambda: calls[b"during"] == 1)
            proxy.cut()
            await asyncio.sleep(0.1)
            # The first attempt's reply cannot be sent (its channel died with
            # the link); the broker redelivers the request to the resumed server.
            release.set()
            assert (await during).body == b"during"
            assert calls[b"during"] == 2
            assert (await rpc.call(b"after", routing_key=q)).body == b"after"
            assert not serving.done()
        await asyncio.wait_for(serving, 1)


async def test_a_server_on_a_plain_connection_stops_when_it_is_lost(
    names: Names, proxy: Proxy
) -> None:
    q = names.queue("rpc")
    conn = await aiorabbit.connect(proxy.url)
    try:
        gate = Gate()
        async with RpcServer(conn, q, gate, concurrency=1, prefetch=2) as server:
            serving = spawn(server.serve_forever())
            # Requests waiting for a handler when the link goes.
            ch = await conn.channel()
            for body in (b"a", b"b"):
                await ch.basic_publish(body, routing_key=q, properties=Properties(reply_to="nowhere"))
            await until(lambda: gate.started == [b"a"])
            await asyncio.sleep(0.1)
            proxy.cut()
            with pytest.raises(ConnectionLost):
                await asyncio.wait_for(serving, 2)
            gate.released.set()  # the reply fails; logged, not raised
            await until(lambda: server.in_flight == 0)
    finally:
        await conn.close()


async def test_a_robust_server_stops_when_its_connection_closes(names: Names, proxy: Proxy) -> None:
    q = names.queue("rpc")
    rconn = await aiorabbit.connect_robust(proxy.url, backoff=FAST, heartbeat=0)
    server = await RpcServer(rconn, q, echo).start()
    serving = spawn(server.serve_forever())
    await rconn.close()
    with pytest.raises(ConnectionClosed):
        await asyncio.wait_for(serving, 2)
    await server.close()


async def test_a_robust_server_waiting_for_recovery(names: Names) -> None:
    q = names.queue("rpc")
    for closing in ("connection", "server"):
        async with Proxy(*BROKER) as link:
            rconn = await aiorabbit.connect_robust(link.url, backoff=FAST, heartbeat=0)
            server = await RpcServer(rconn, q, echo).start()
            serving = spawn(server.serve_forever())
            await link.close()  # cut, and no reconnect succeeds
            await asyncio.sleep(0.2)
            assert not serving.done()
            if closing == "connection":
                # It gives up waiting once the connection is closed for good.
                await rconn.close()
                with pytest.raises(ConnectionClosed):
                    await asyncio.wait_for(serving, 2)
                await server.close()
            else:
                await asyncio.wait_for(server.close(), 2)
                await asyncio.wait_for(serving, 1)
                await rconn.close()


async def test_channels_opening_when_the_link_is_cut(names: Names, proxy: Proxy) -> None:
    # The first channel open never gets its answer: recovery, then a second try.
    q = names.queue("rpc")
    async with aiorabbit.connect_robust(proxy.url, backoff=FAST, heartbeat=0) as rconn:
        for make in (lambda: RpcServer(rconn, q, echo), lambda: RpcClient(rconn)):
            proxy.stall(upstream=False, downstream=True)
            starting = spawn(make().start())
            await asyncio.sleep(0.2)
            assert not starting.done()
            proxy.cut()
            proxy.resume()
            started = await asyncio.wait_for(starting, 5)
            assert started.channel is not None and started.channel.is_open
            await started.close()


async def test_closing_while_the_channel_opens(names: Names, proxy: Proxy) -> None:
    q = names.queue("rpc")
    for make in (lambda c: RpcServer(c, q, echo), lambda c: RpcClient(c)):
        conn = await aiorabbit.connect(proxy.url, heartbeat=0)
        try:
            proxy.stall(upstream=False, downstream=True)
            endpoint = make(conn)
            starting = spawn(endpoint.start())
            await asyncio.sleep(0.2)
            if isinstance(endpoint, RpcServer):
                starting.cancel()  # the server's start is cancelled
                with pytest.raises(asyncio.CancelledError):
                    await starting
            else:
                await endpoint.close()  # the client's start is stopped by close()
                with pytest.raises(ChannelClosed):
                    await starting
            assert endpoint.channel is None
        finally:
            proxy.resume()
            await conn.close()


async def test_a_call_held_back_when_the_link_is_cut(
    connection: aiorabbit.Connection, names: Names, proxy: Proxy
) -> None:
    # The publish itself waits (blocked connection) when the link goes: the
    # request was never sent, so a robust client sends it after recovery.
    q = names.queue("rpc")
    blocked = encode_method_frame(0, m.ConnectionBlocked(reason="low on memory"))
    async with RpcServer(connection, q, echo):
        plain = await aiorabbit.connect(proxy.url, heartbeat=0)
        rconn = await aiorabbit.connect_robust(proxy.url, backoff=FAST, heartbeat=0)
        try:
            clients = [await RpcClient(plain).start(), await RpcClient(rconn).start()]
            proxy.inject(blocked)
            await until(lambda: plain.is_blocked and rconn.is_blocked)
            calls = [spawn(c.call(b"held", routing_key=q, timeout=10)) for c in clients]
            await asyncio.sleep(0.1)
            assert not any(call.done() for call in calls)
            proxy.cut()
            with pytest.raises(ConnectionLost):
                await asyncio.wait_for(calls[0], 2)
            assert (await asyncio.wait_for(calls[1], 5)).body == b"held"
        finally:
            await plain.close()
            await rconn.close()


async def test_closed_while_starting(connection: aiorabbit.Connection, names: Names) -> None:
    q = names.queue("rpc")
    # The server: close() comes before start() is done.
    server = RpcServer(connection, q, echo)
    serving = spawn(server.serve_forever())
    await asyncio.sleep(0)
    await server.close()
    await asyncio.wait_for(serving, 5)
    await until(lambda: not connection._channels)  # nothing left consuming
    assert server.channel is None
    # The client: a call waiting for the channel, which opens just as
    # close() runs (before the call resumes).
    rpc = RpcClient(connection)
    starting = spawn(rpc.start())
    await asyncio.sleep(0)
    opening = rpc._opening
    assert opening is not None and not opening.done()
    opened = asyncio.get_running_loop().create_future()
    opening.add_done_callback(lambda _: opened.set_result(None))
    call = spawn(rpc.call(b"", routing_key=q))
    await opened  # woken before the call is
    await rpc.close()
    with pytest.raises(ChannelClosed, match="RPC client is closed"):
        await asyncio.wait_for(call, 1)
    assert await starting is rpc and rpc.pending == 0


async def test_a_link_cut_while_the_server_closes(names: Names, proxy: Proxy) -> None:
    q = names.queue("rpc")
    conn = await aiorabbit.connect(proxy.url, heartbeat=0)
    try:
        server = await RpcServer(conn, q, echo).start()
        proxy.stall(upstream=False, downstream=True)
        closing = spawn(server.close())  # waits for the cancel-ok
        await asyncio.sleep(0.2)
        proxy.cut()
        await asyncio.wait_for(closing, 2)
        assert server.channel is None
        await server.serve_forever()  # closed: returns
    finally:
        proxy.resume()
        await conn.close()
