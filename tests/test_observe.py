"""The observer hooks against the real broker: every way a message travels
tells the observer what happened, with the outcome it really had."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from typing import Any

import pytest

import aiorabbit
from aiorabbit import observe
from aiorabbit.exceptions import ChannelClosed, MessageReturned, PublishNacked
from aiorabbit.message import Settle
from aiorabbit.observe import HOOKS, MultiObserver, Observer, PublishOutcome

from .conftest import Names
from .proxy import Proxy

BROKER = ("127.0.0.1", 5672)
FAST = aiorabbit.Backoff(initial=0.05, maximum=0.3)

#: Set by the recorder while a delivery is being handled (as a tracing
#: observer sets the current span).
CURRENT: contextvars.ContextVar[str | None] = contextvars.ContextVar("current", default=None)


class Recorder(Observer):
    """Records every hook call as (name, args); tokens are numbered."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.changed = asyncio.Event()

    def names(self, *only: str) -> list[str]:
        return [name for name, _ in self.calls if not only or name in only]

    def args(self, name: str) -> list[tuple[Any, ...]]:
        return [args for called, args in self.calls if called == name]

    async def wait(self, name: str, count: int = 1, timeout: float = 10.0) -> None:
        async def until() -> None:
            while len(self.args(name)) < count:
                self.changed.clear()
                await self.changed.wait()

        await asyncio.wait_for(until(), timeout)


def _recording(name: str) -> Any:
    def hook(self: Recorder, *args: Any) -> Any:
        self.calls.append((name, args))
        self.changed.set()
        if name == "delivery_started":
            return (f"token{len(self.calls)}", CURRENT.set(f"msg {args[1].body.decode()}"))
        if name == "delivery_ended" and isinstance(args[2], tuple):
            CURRENT.reset(args[2][1])
        if name == "publish_started":
            return f"token{len(self.calls)}"
        return None

    return hook


for _name in HOOKS:
    setattr(Recorder, _name, _recording(_name))


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


# -- connections and channels ------------------------------------------------


async def test_connection_and_channel_lifecycle(recorder: Recorder) -> None:
    async with aiorabbit.connect(observer=recorder) as conn:
        assert conn.observer is not None
        assert conn.peer is not None and conn.peer[1] == 5672
        ch = await conn.channel()
        await ch.close()
    assert recorder.names() == [
        "connecting", "connection_open", "channel_open", "channel_closed", "connection_closed",
    ]
    (params,) = recorder.args("connecting")[0]
    assert params.host in ("localhost", "127.0.0.1")
    channel, error = recorder.args("channel_closed")[0]
    assert channel is ch and error.by_client
    conn_arg, error = recorder.args("connection_closed")[0]
    assert conn_arg is conn and error.by_client


async def test_a_refused_login_is_a_failed_connection(recorder: Recorder) -> None:
    with pytest.raises(aiorabbit.AuthenticationError):
        await aiorabbit.connect("amqp://guest:wrong@127.0.0.1:5672/%2F", observer=recorder)
    assert recorder.names() == ["connecting", "connection_failed"]
    assert isinstance(recorder.args("connection_failed")[0][1], aiorabbit.AuthenticationError)


async def test_a_channel_error_reports_its_cause(recorder: Recorder, names: Names) -> None:
    async with aiorabbit.connect(observer=recorder) as conn:
        ch = await conn.channel()
        with pytest.raises(aiorabbit.NotFound):
            await ch.queue_declare(names.queue(), passive=True)
        channel, error = recorder.args("channel_closed")[0]
        assert channel is ch and isinstance(error, aiorabbit.NotFound) and error.reply_code == 404


# -- publishing ----------------------------------------------------------------


async def test_publish_without_confirms_is_sent_and_headers_added_are_sent(names: Names) -> None:
    class Injector(Recorder):
        def publish_started(self, channel: Any, event: observe.PublishEvent) -> Any:
            super().publish_started(channel, event)  # type: ignore[safe-super]
            props = event.properties or aiorabbit.Properties()
            event.properties = props.replace(headers={**(props.headers or {}), "traceparent": "00-abc"})
            return "tok"

    injector = Injector()
    queue = names.queue()
    caller_props = aiorabbit.Properties(message_id="m1", headers={"a": 1})
    async with aiorabbit.connect(observer=injector) as conn:
        ch = await conn.channel()
        await ch.queue_declare(queue, auto_delete=True)
        await ch.basic_publish(b"hello", routing_key=queue, properties=caller_props)
        await ch.basic_publish(bytearray(b"bytes"), routing_key=queue)
        got = await ch.basic_get(queue, no_ack=True)
        got2 = await ch.basic_get(queue, no_ack=True)
    assert got is not None and got2 is not None
    assert got.headers == {"a": 1, "traceparent": "00-abc"} and got.properties.message_id == "m1"
    assert got2.headers == {"traceparent": "00-abc"}
    assert caller_props.headers == {"a": 1}  # the caller's properties are never changed
    ended = injector.args("publish_ended")
    assert [(args[2], args[3], args[4]) for args in ended] == [
        ("tok", PublishOutcome.SENT, None), ("tok", PublishOutcome.SENT, None)]
    event = ended[0][1]
    assert (event.exchange, event.routing_key, event.body_size, event.confirm) == ("", queue, 5, False)
    got_args = injector.args("message_got")
    assert [(a[1], a[2] is not None) for a in got_args] == [(queue, True), (queue, True)]
    assert all(a[3] > 0 for a in got_args)


async def test_confirmed_nacked_returned_and_failed_publishes(recorder: Recorder, names: Names) -> None:
    queue, full = names.queue(), names.queue("full")
    async with aiorabbit.connect(observer=recorder) as conn:
        ch = await conn.channel(publisher_confirms=True)
        await ch.queue_declare(queue, auto_delete=True)
        await ch.queue_declare(full, auto_delete=True,
                               arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
        await ch.basic_publish(b"1", routing_key=queue)
        await ch.basic_publish(b"2", routing_key=full)
        with pytest.raises(PublishNacked):
            await ch.basic_publish(b"3", routing_key=full)
        with pytest.raises(MessageReturned):
            await ch.basic_publish(b"4", routing_key=names.queue("nowhere"), mandatory=True)
        await ch.close()
        with pytest.raises(ChannelClosed):
            await ch.basic_publish(b"5", routing_key=queue)
    outcomes = [(args[1].body_size, args[3]) for args in recorder.args("publish_ended")]
    assert outcomes == [
        (1, PublishOutcome.CONFIRMED), (1, PublishOutcome.CONFIRMED), (1, PublishOutcome.NACKED),
        (1, PublishOutcome.RETURNED), (1, PublishOutcome.FAILED),
    ]
    errors = [args[4] for args in recorder.args("publish_ended")]
    assert errors[:2] == [None, None]
    assert isinstance(errors[2], PublishNacked) and isinstance(errors[4], ChannelClosed)
    tokens = [args[2] for args in recorder.args("publish_ended")]
    assert tokens == [f"token{i}" for i in _indexes(recorder, "publish_started")]


def _indexes(recorder: Recorder, name: str) -> list[int]:
    return [i + 1 for i, (called, _) in enumerate(recorder.calls) if called == name]


async def test_a_publish_interrupted_by_a_cut_link_is_failed_not_confirmed(
    recorder: Recorder, names: Names
) -> None:
    async with Proxy(*BROKER) as proxy:
        conn = await aiorabbit.connect(proxy.url, observer=recorder)
        ch = await conn.channel(publisher_confirms=True)
        proxy.stall(upstream=False)  # the broker's confirm never arrives
        publish = asyncio.ensure_future(ch.basic_publish(b"x", routing_key=names.queue()))
        await recorder.wait("publish_started")
        proxy.cut()
        with pytest.raises(aiorabbit.ConnectionClosed):
            await publish
        await conn.close()
    (args,) = recorder.args("publish_ended")
    assert args[3] is PublishOutcome.FAILED and isinstance(args[4], aiorabbit.ConnectionClosed)


# -- consuming -----------------------------------------------------------------


async def test_async_for_hands_out_settles_and_ends_each_delivery_in_the_iterating_task(
    recorder: Recorder, names: Names
) -> None:
    queue = names.queue()
    seen: list[str | None] = []
    async with aiorabbit.connect(observer=recorder) as conn:
        ch = await conn.channel()
        await ch.queue_declare(queue, auto_delete=True)
        for body in (b"a", b"b", b"c"):
            await ch.basic_publish(body, routing_key=queue)
        async with ch.consume(queue) as messages:
            assert recorder.names("consumer_started") == ["consumer_started"]
            async for msg in messages:
                seen.append(CURRENT.get())  # the observer's context is current here
                if msg.body == b"a":
                    await msg.ack()
                elif msg.body == b"b":
                    await msg.nack(requeue=False)
                else:
                    last = msg
                    break  # c is in hand, unsettled, when the block is left
        assert CURRENT.get() is None  # reset when the consumer was left
        assert not last.settled  # ended unsettled: the observer sees no settle
    assert seen == ["msg a", "msg b", "msg c"]
    flow = [(name, args[1].body) for name, args in recorder.calls if name.startswith("delivery_")]
    assert flow[:3] == [("delivery_received", b"a"), ("delivery_received", b"b"),
                        ("delivery_received", b"c")]
    assert flow[3:] == [
        ("delivery_started", b"a"), ("delivery_settled", b"a"), ("delivery_ended", b"a"),
        ("delivery_started", b"b"), ("delivery_settled", b"b"), ("delivery_ended", b"b"),
        ("delivery_started", b"c"), ("delivery_ended", b"c"),
    ]
    settles = [(args[1].body, args[2], args[4]) for args in recorder.args("delivery_settled")]
    assert settles == [(b"a", Settle.ACK, False), (b"b", Settle.NACK, False)]
    # Each end carries the token its start returned.
    # Handed out by the iterator: not scoped.
    assert [args[2] for args in recorder.args("delivery_started")] == [False] * 3
    starts = _indexes(recorder, "delivery_started")
    assert [args[2][0] for args in recorder.args("delivery_ended")] == [f"token{i}" for i in starts]


async def test_callbacks_are_wrapped_with_their_errors(recorder: Recorder, names: Names) -> None:
    queue = names.queue()
    done = asyncio.Event()
    inside: list[str | None] = []

    async def handle(msg: aiorabbit.IncomingMessage) -> None:
        inside.append(CURRENT.get())
        if msg.body == b"bad":
            raise ValueError("handler failed")
        await msg.ack()
        done.set()

    def handle_sync(msg: aiorabbit.IncomingMessage) -> None:
        inside.append(CURRENT.get())
        msg.ack()

    async with aiorabbit.connect(observer=recorder) as conn:
        ch = await conn.channel()
        await ch.queue_declare(queue, auto_delete=True)
        sync_queue = names.queue("sync")
        await ch.queue_declare(sync_queue, auto_delete=True)
        await ch.basic_publish(b"bad", routing_key=queue)
        await ch.basic_publish(b"good", routing_key=queue)
        await ch.basic_publish(b"sync", routing_key=sync_queue)
        async with ch.consume(queue, callback=handle), ch.consume(sync_queue, callback=handle_sync):
            await asyncio.wait_for(done.wait(), 10)
            await recorder.wait("delivery_ended", 3)
    assert sorted(inside, key=str) == ["msg bad", "msg good", "msg sync"]
    assert [args[2] for args in recorder.args("delivery_started")] == [True] * 3  # callbacks: scoped
    ended = {args[1].body: args[3] for args in recorder.args("delivery_ended")}
    assert isinstance(ended[b"bad"], ValueError) and ended[b"good"] is None and ended[b"sync"] is None


async def test_deliveries_a_closed_channel_held_are_dropped(recorder: Recorder, names: Names) -> None:
    queue = names.queue()
    async with aiorabbit.connect(observer=recorder) as conn:
        ch = await conn.channel()
        await ch.queue_declare(queue)
        try:
            for body in (b"1", b"2"):
                await ch.basic_publish(body, routing_key=queue)
            consumer = await ch.consume(queue).start()
            await recorder.wait("delivery_received", 2)
            assert consumer.buffered == 2
            other = await conn.channel()
            await other.queue_delete(queue)  # the broker cancels the consumer
            await recorder.wait("consumer_cancelled")
            await ch.close()
        finally:
            ch2 = await conn.channel()
            await ch2.queue_delete(queue)
    cancelled = recorder.args("consumer_cancelled")
    assert cancelled[0][0] is consumer and isinstance(cancelled[0][1], aiorabbit.ConsumerCancelled)
    # Cancelled by the broker: the buffered deliveries are still handed out
    # (their channel is open) -- none is dropped.
    assert recorder.args("delivery_dropped") == []


async def test_a_channel_closed_under_a_consumer_drops_what_it_held(recorder: Recorder, names: Names) -> None:
    queue = names.queue()
    async with aiorabbit.connect(observer=recorder) as conn:
        ch = await conn.channel()
        await ch.queue_declare(queue, auto_delete=True)
        for body in (b"1", b"2"):
            await ch.basic_publish(body, routing_key=queue)
        consumer = await ch.consume(queue).start()
        await recorder.wait("delivery_received", 2)
        with pytest.raises(aiorabbit.NotFound):
            await ch.queue_declare(names.queue("missing"), passive=True)  # closes the channel
    dropped = recorder.args("delivery_dropped")
    assert [(args[0], args[1].body) for args in dropped] == [(consumer, b"1"), (consumer, b"2")]
    assert all(isinstance(args[2], aiorabbit.NotFound) for args in dropped)


# -- robust connections ------------------------------------------------------------


async def test_recovery_is_observed_with_its_duration(recorder: Recorder, names: Names) -> None:
    queue = names.queue()
    async with Proxy(*BROKER) as proxy:
        async with aiorabbit.connect_robust(proxy.url, backoff=FAST, observer=recorder) as conn:
            assert conn.observer is not None
            ch = await conn.channel()
            await ch.queue_declare(queue, auto_delete=True)
            async with ch.consume(queue) as messages:
                proxy.cut()
                await recorder.wait("recovered")
                await recorder.wait("consumer_recovered")
                await ch.basic_publish(b"after", routing_key=queue)
                msg = await messages.get(timeout=10)
                await msg.ack()
    names_seen = recorder.names("connecting", "connection_open", "connection_closed", "recovery_started",
                                "recovered", "consumer_recovered")
    assert names_seen[:6] == ["connecting", "connection_open", "connection_closed", "recovery_started",
                              "connecting", "connection_open"]
    assert "recovered" in names_seen and "consumer_recovered" in names_seen
    (rconn, error), = recorder.args("recovery_started")
    assert rconn is conn and isinstance(error, aiorabbit.ConnectionLost)
    (rconn, duration), = recorder.args("recovered")
    assert 0 < duration < 10
    assert recorder.args("consumer_recovered")[0][0].queue == queue


async def test_failed_reconnects_are_attempts_then_a_failure(recorder: Recorder) -> None:
    proxy = await Proxy(*BROKER).start()
    conn = await aiorabbit.connect_robust(
        proxy.url, backoff=aiorabbit.Backoff(initial=0.02, maximum=0.05, max_attempts=3), observer=recorder)
    await proxy.close()  # the broker is gone for good
    await asyncio.wait_for(conn.wait_closed(), 10)
    attempts = recorder.args("recovery_attempt")
    assert [args[1] for args in attempts] == list(range(1, len(attempts) + 1)) and attempts
    assert all(isinstance(args[2], aiorabbit.ConnectionFailed) and args[3] >= 0 for args in attempts)
    (_, error, duration), = recorder.args("recovery_failed")
    assert isinstance(error, aiorabbit.ConnectionFailed) and duration > 0
    await conn.close()


# -- composition, installation, failures ---------------------------------------------


async def test_a_failing_observer_is_logged_and_changes_nothing(
    names: Names, caplog: pytest.LogCaptureFixture
) -> None:
    class Broken(Observer):
        def publish_started(self, channel: Any, event: Any) -> Any:
            raise RuntimeError("observer bug")

        def delivery_settled(self, *args: Any) -> None:
            raise RuntimeError("observer bug")

    queue = names.queue()
    async with aiorabbit.connect(observer=Broken()) as conn:
        ch = await conn.channel(publisher_confirms=True)
        await ch.queue_declare(queue, auto_delete=True)
        with caplog.at_level(logging.ERROR, logger="aiorabbit.observe"):
            await ch.basic_publish(b"x", routing_key=queue)
            msg = await ch.basic_get(queue)
            assert msg is not None
            await msg.ack()
    failures = [r for r in caplog.records if r.name == "aiorabbit.observe"]
    assert [r.getMessage().split(" of ")[0] for r in failures] == [
        "observer hook publish_started", "observer hook delivery_settled"]


async def test_multi_observer_and_install(names: Names) -> None:
    first, second = Recorder(), Recorder()
    observe.install(MultiObserver(first, second))
    try:
        async with aiorabbit.connect() as conn:
            ch = await conn.channel(publisher_confirms=True)
            await ch.basic_publish(b"x", routing_key=names.queue())
        own = Recorder()
        async with aiorabbit.connect(observer=own) as conn:
            await conn.channel()
    finally:
        observe.uninstall()
    async with aiorabbit.connect() as conn:
        assert conn.observer is None
    for recorder in (first, second):
        assert recorder.names("publish_started", "publish_ended") == ["publish_started", "publish_ended"]
        assert recorder.args("publish_ended")[0][2] == f"token{_indexes(recorder, 'publish_started')[0]}"
    assert "channel_open" in own.names() and len(first.args("channel_open")) == 1


def test_bad_observers_are_refused() -> None:
    with pytest.raises(aiorabbit.InvalidArgument, match="observer must be"):
        aiorabbit.ConnectionParameters(observer=object())  # type: ignore[arg-type]
    with pytest.raises(aiorabbit.InvalidArgument, match="observer must be"):
        observe.install(print)  # type: ignore[arg-type]


def test_every_hook_is_documented_and_a_no_op() -> None:
    base = Observer()
    for name in HOOKS:
        hook = getattr(Observer, name)
        assert hook.__doc__, name
        args = [None] * (hook.__code__.co_argcount - 1)
        assert getattr(base, name)(*args) is None


# -- logs --------------------------------------------------------------------------


def _records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("aiorabbit")]


async def test_log_records_carry_stable_fields_and_no_secret(
    names: Names, caplog: pytest.LogCaptureFixture
) -> None:
    from aiorabbit._logging import FIELDS

    caplog.set_level(logging.DEBUG, logger="aiorabbit")
    queue = names.queue()
    with pytest.raises(aiorabbit.AuthenticationError):
        await aiorabbit.connect("amqp://guest:Not-The-Pw-7e3a@127.0.0.1:5672/%2F")
    async with aiorabbit.connect(name="billing") as conn:
        ch = await conn.channel()
        await ch.queue_declare(queue)
        consumer = await ch.consume(queue).start()
        other = await conn.channel()
        await other.queue_delete(queue)  # the broker cancels the consumer
        with pytest.raises(aiorabbit.NotFound):
            await other.queue_declare(queue, passive=True)
        await ch.close()
    records = _records(caplog)
    for record in records:
        assert "Not-The-Pw-7e3a" not in record.getMessage()
        assert all("Not-The-Pw-7e3a" not in str(getattr(record, key, "")) for key in FIELDS)
    by_message = {r.getMessage().split(":")[0]: r for r in records if hasattr(r, "aiorabbit_connection")}
    connected = by_message["connected to amqp"]
    assert connected.name == "aiorabbit.connection" and connected.levelno == logging.INFO
    assert connected.aiorabbit_connection == "billing"  # type: ignore[attr-defined]
    cancelled = next(r for m, r in by_message.items() if m.startswith("broker cancelled consumer"))
    assert cancelled.name == "aiorabbit.channel"
    assert (cancelled.aiorabbit_queue, cancelled.aiorabbit_consumer_tag, cancelled.aiorabbit_channel) == (  # type: ignore[attr-defined]
        queue, consumer.consumer_tag, ch.number)
    closed_channel = next(r for m, r in by_message.items() if m.startswith("broker closed channel"))
    assert closed_channel.levelno == logging.INFO  # the caller gets the error itself
    assert (closed_channel.aiorabbit_reply_code, closed_channel.aiorabbit_channel) == (404, other.number)  # type: ignore[attr-defined]
    closed = by_message["connection closed"]
    assert closed.aiorabbit_reply_code == 200  # type: ignore[attr-defined]
    for record in (connected, cancelled, closed_channel, closed):
        assert all(hasattr(record, key) for key in FIELDS)


async def test_recovery_logs_name_the_connection(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="aiorabbit")
    async with Proxy(*BROKER) as proxy:
        async with aiorabbit.connect_robust(proxy.url, backoff=FAST, name="worker-7") as conn:
            await conn.channel()
            proxy.cut()
            await asyncio.sleep(0.05)
            await conn.wait_connected(10)
    recovery = [r for r in _records(caplog) if r.name == "aiorabbit.recovery"]
    messages = [r.getMessage() for r in recovery]
    assert any(m.startswith("connection lost") and m.endswith("recovering") for m in messages), messages
    assert "connection recovered" in messages
    assert {r.aiorabbit_connection for r in recovery} == {"worker-7"}  # type: ignore[attr-defined]
