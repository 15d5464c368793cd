"""The small rules the seams issue put in one place each, and the objects
between the layers, tested without a broker."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
from typing import Any

import pytest

import aiorabbit
from aiorabbit._inputs import copy_arguments, is_async_callable
from aiorabbit.interface import AnyConnection
from aiorabbit.phase import Phase, check_transition

pytestmark = pytest.mark.broker_free


async def _coroutine(msg: object) -> None:
    pass


def _plain(msg: object) -> None:
    pass


class _AsyncCall:
    async def __call__(self, msg: object) -> None:
        pass


class _SyncCall:
    def __call__(self, msg: object) -> None:
        pass


class _Methods:
    async def handle(self, msg: object) -> None:
        pass

    def plain(self, msg: object) -> None:
        pass


@pytest.mark.parametrize(
    ("func", "expected"),
    [
        (_coroutine, True),
        (_plain, False),
        (_AsyncCall(), True),
        (_SyncCall(), False),
        (_Methods().handle, True),
        (_Methods().plain, False),
        (functools.partial(_coroutine), True),
        (functools.partial(functools.partial(_AsyncCall())), True),
        (functools.partial(_plain), False),
        (lambda msg: None, False),
    ],
)
def test_async_callable_detection(func: Any, expected: bool) -> None:
    assert is_async_callable(func) is expected


def test_copy_arguments_copies_and_checks() -> None:
    original = {"x-max-length": 10}
    copied = copy_arguments(original)
    assert copied == original and copied is not original
    assert copy_arguments(None) is None and copy_arguments({}) is None
    with pytest.raises(aiorabbit.InvalidArgument, match="mapping"):
        copy_arguments([("x", 1)])  # type: ignore[arg-type]


def test_every_phase_transition() -> None:
    allowed = {
        (Phase.OPENING, Phase.OPEN), (Phase.OPENING, Phase.CLOSING), (Phase.OPENING, Phase.CLOSED),
        (Phase.OPEN, Phase.CLOSING), (Phase.OPEN, Phase.CLOSED), (Phase.CLOSING, Phase.CLOSED),
    }
    for current in Phase:
        for new in Phase:
            if (current, new) in allowed:
                check_transition(current, new)
            else:
                with pytest.raises(AssertionError, match="no transition"):
                    check_transition(current, new)


def test_both_connections_implement_the_helpers_interface() -> None:
    for cls in (aiorabbit.Connection, aiorabbit.RobustConnection):
        for name in ("is_open", "is_closed", "closed_reason", "channel", "wait_usable", "recovers_from"):
            assert hasattr(cls, name), (cls, name)
        assert inspect.iscoroutinefunction(cls.wait_usable)


def test_the_helpers_take_the_interface_not_a_class() -> None:
    # Publisher and the RPC classes are typed against AnyConnection; none
    # of them names a concrete connection class.
    import aiorabbit.publisher
    import aiorabbit.rpc

    for module in (aiorabbit.publisher, aiorabbit.rpc):
        source = inspect.getsource(module)
        assert "AnyConnection" in source
        assert "isinstance(conn" not in source and "RobustConnection)" not in source
    assert issubclass(aiorabbit.exceptions.RpcTimeout, aiorabbit.AMQPError)
    assert aiorabbit.rpc.RpcTimeout is aiorabbit.RpcTimeout


async def test_a_plain_connection_never_recovers_and_is_usable_only_open() -> None:
    conn = aiorabbit.Connection(aiorabbit.ConnectionParameters())
    assert isinstance(conn, AnyConnection)
    assert conn.state is Phase.OPENING and not conn.is_open and not conn.is_closed
    assert conn.recovers_from(aiorabbit.ConnectionLost(0, "gone")) is False
    with pytest.raises(aiorabbit.ConnectionClosed, match="not open"):
        await conn.wait_usable()
    await asyncio.sleep(0)


# -- the dispatcher under RpcServer and the FastAPI consumers ----------------


class _Settles:
    """Stands for a channel's settle: records (delivery tag, kind, requeue)."""

    def __init__(self) -> None:
        self.log: list[tuple[int, str, bool]] = []

    def __call__(self, msg: aiorabbit.IncomingMessage, kind: Any, multiple: bool, requeue: bool) -> None:
        msg.settled = True
        self.log.append((msg.delivery_tag, kind.name, requeue))


def _messages(settles: _Settles, count: int) -> list[aiorabbit.IncomingMessage]:
    return [
        aiorabbit.IncomingMessage(None, b"%d" % tag, b"\x00\x00", tag, False, "", "q", settle=settles)  # type: ignore[arg-type]
        for tag in range(1, count + 1)
    ]


def test_a_message_built_by_hand_keeps_the_old_constructor_and_refuses_to_settle() -> None:
    # The constructor's positional order is the one from before the seams
    # work (test doubles build messages this way); settle comes last.
    msg = aiorabbit.IncomingMessage(None, b"x", b"\x00\x00", 7, True, "ex", "rk", "ctag")  # type: ignore[arg-type]
    assert (msg.delivery_tag, msg.redelivered, msg.exchange, msg.routing_key, msg.consumer_tag) == (
        7, True, "ex", "rk", "ctag",
    )
    with pytest.raises(RuntimeError, match="without a settle function: it cannot be acked"):
        msg.ack()
    with pytest.raises(RuntimeError, match="cannot be rejected"):
        msg.reject()
    assert not msg.settled


class _Feed:
    """An async iterator over a list, then waiting (like a live consumer)
    until ``end()``."""

    def __init__(self, items: list[aiorabbit.IncomingMessage]) -> None:
        self.items = list(items)
        self.ended: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        self.pulled = 0

    def processing(self, message: aiorabbit.IncomingMessage) -> contextlib.nullcontext[None]:
        return contextlib.nullcontext()

    async def take(self) -> aiorabbit.IncomingMessage:
        if self.items:
            self.pulled += 1
            return self.items.pop(0)
        error = await self.ended
        if error is None:
            raise StopAsyncIteration
        raise error


async def test_dispatcher_bounds_concurrency_and_settles_by_outcome() -> None:
    from aiorabbit.dispatch import Dispatcher

    settles = _Settles()
    feed = _Feed(_messages(settles, 6))
    running = 0
    peak = 0
    release = asyncio.Event()

    async def handler(msg: aiorabbit.IncomingMessage) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            await release.wait()
            if msg.body == b"2":
                raise ValueError("handler failed")
            if msg.body == b"3":
                msg.reject(requeue=False)  # settled by the handler itself: left alone
        finally:
            running -= 1

    ends: list[BaseException | None] = []
    dispatcher = Dispatcher(feed, handler, concurrency=2, requeue_on_error=lambda exc: True, name="t",
                            on_end=ends.append)
    await asyncio.sleep(0.05)
    # Two slots: only two messages were taken from the consumer.
    assert feed.pulled == 2 and len(dispatcher.handlers) == 2 and dispatcher.running
    release.set()
    await asyncio.sleep(0.05)
    assert peak == 2
    assert sorted(settles.log) == [
        (1, "ACK", False), (2, "REJECT", True), (3, "REJECT", False), (4, "ACK", False), (5, "ACK", False),
        (6, "ACK", False),
    ]
    feed.ended.set_result(None)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert ends == [None] and not dispatcher.running and dispatcher.error is None


async def test_dispatcher_reports_the_consumers_error_and_drain_requeues_the_rest() -> None:
    from aiorabbit.dispatch import Dispatcher

    settles = _Settles()
    feed = _Feed(_messages(settles, 3))

    async def forever(msg: aiorabbit.IncomingMessage) -> None:
        await asyncio.Event().wait()

    ends: list[BaseException | None] = []
    dispatcher = Dispatcher(feed, forever, concurrency=5, requeue_on_error=lambda exc: False, name="t",
                            on_end=ends.append)
    await asyncio.sleep(0.01)
    lost = aiorabbit.ConnectionLost(0, "gone")
    feed.ended.set_result(lost)
    await asyncio.sleep(0.01)
    assert ends == [lost] and dispatcher.error is lost and not dispatcher.running
    # The handlers still run; drain gives them 0.05 s, then cancels them:
    # their messages go back to the queue.
    assert await dispatcher.drain(0.05) == 3
    assert sorted(settles.log) == [(1, "REJECT", True), (2, "REJECT", True), (3, "REJECT", True)]
    assert not dispatcher.handlers
    await dispatcher.stop()  # idempotent after the end


def test_robust_consumer_has_the_consumers_api() -> None:
    plain, robust = aiorabbit.Consumer, aiorabbit.RobustConsumer
    for name in (n for n in dir(plain) if not n.startswith("_")):
        assert hasattr(robust, name), name
        ours = getattr(plain, name)
        if callable(ours):
            assert inspect.signature(ours) == inspect.signature(getattr(robust, name)) or name in {
                "start", "__aenter__"  # return the robust consumer
            }, name
