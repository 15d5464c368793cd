"""Ack coalescing (aiorabbit/acks.py) against a model of the broker's
unacked set, and on the wire against the scripted server.

The model is what RabbitMQ does with a channel's settle frames: it keeps the
delivery tags it sent that need an ack; ``basic.ack``/``nack`` with
``multiple`` settle every such tag up to theirs, without it (and
``basic.reject``) exactly theirs, and a tag it does not count any more is a
channel error (PRECONDITION_FAILED, "unknown delivery tag").  Whatever the
application does, in whatever order and loop turns, the frames the channel
writes must leave every delivery settled the way the application settled
it, and never touch one it did not.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import aiorabbit
from aiorabbit.acks import AckBatch
from aiorabbit.codec import methods as m

from .amqp_server import ScriptedServer
from .test_scripted_channel import _consumer_on, _round_trip, _settles

pytestmark = pytest.mark.broker_free


class UnknownTag(AssertionError):
    """The broker would close the channel."""


@dataclass
class Broker:
    """The broker's view: unacked tags, and how each one ended."""

    unacked: set[int] = field(default_factory=set)
    outcome: dict[int, str] = field(default_factory=dict)

    def settle(self, tag: int, multiple: bool, how: str) -> None:
        if multiple:
            covered = {t for t in self.unacked if t <= tag}
            if tag not in self.unacked and not covered:
                raise UnknownTag(tag)
        else:
            if tag not in self.unacked:
                raise UnknownTag(tag)
            covered = {tag}
        for t in covered:
            self.unacked.discard(t)
            self.outcome[t] = how


@dataclass
class Channel:
    """The channel's side of aiorabbit.channel: settles go through an
    AckBatch exactly as Channel._settle does; ``wire`` is what is written."""

    broker: Broker
    batch: AckBatch = field(default_factory=AckBatch)
    wire: list[tuple[int, bool, str]] = field(default_factory=list)
    through: int = 0

    def deliver(self, tag: int, no_ack: bool) -> None:
        if not no_ack:
            self.broker.unacked.add(tag)
            self.batch.delivered(tag)

    def write_acks(self) -> None:
        for tag, multiple in self.batch.drain():
            self.wire.append((tag, multiple, "ack"))

    def settle(self, tag: int, how: str, multiple: bool) -> None:
        if how == "ack" and not multiple:
            self.batch.ack(tag)
            return
        if multiple:
            if how == "ack":
                self.batch.settled_through(tag)
            else:
                self.write_acks()
                self.batch.settled_through(tag)
            self.through = max(self.through, tag)
        else:
            self.batch.settled(tag)
        self.wire.append((tag, multiple, how))

    def end_of_turn(self) -> None:
        self.write_acks()
        for tag, multiple, how in self.wire:
            self.broker.settle(tag, multiple, how)
        self.wire.clear()


# One step: ("deliver", no_ack), ("settle", index into the unsettled, kind,
# multiple), or ("turn",).
step = st.one_of(
    st.tuples(st.just("deliver"), st.booleans()),
    st.tuples(st.just("settle"), st.integers(0, 50), st.sampled_from(["ack", "nack", "reject"]),
              st.booleans()),
    st.just(("turn",)),
)


@settings(max_examples=600, deadline=None)
@given(st.lists(step, max_size=120))
def test_no_delivery_is_settled_otherwise_than_the_application_said(steps: list[tuple]) -> None:
    broker = Broker()
    ch = Channel(broker)
    expected: dict[int, str] = {}
    unsettled: list[int] = []  # needing an ack, in tag order
    tag = 0
    for s in steps:
        if s[0] == "deliver":
            tag += 1
            ch.deliver(tag, no_ack=s[1])
            if not s[1]:
                unsettled.append(tag)
        elif s[0] == "settle" and unsettled:
            _, index, how, multiple = s
            target = unsettled[index % len(unsettled)]
            if how == "reject":
                multiple = False
            covered = [t for t in unsettled if t <= target] if multiple else [target]
            for t in covered:
                expected[t] = how
                unsettled.remove(t)
            ch.settle(target, how, multiple)
        elif s[0] == "turn":
            ch.end_of_turn()
    ch.end_of_turn()
    assert broker.outcome == expected
    assert broker.unacked == set(unsettled)


def test_contiguous_acks_of_a_turn_are_one_frame_and_a_gap_keeps_the_rest_single() -> None:
    batch = AckBatch()
    for tag in range(1, 11):
        batch.delivered(tag)
    for tag in (1, 2, 3, 5, 6):
        batch.ack(tag)
    # 4 is not settled: 1-3 go as one multiple ack, 5 and 6 one by one.
    assert batch.drain() == [(3, True), (5, False), (6, False)]
    batch.settled(4)  # rejected
    for tag in (7, 8, 9, 10):
        batch.ack(tag)
    assert batch.drain() == [(10, True)]
    assert batch.lowest_unsettled() is None


async def test_a_turn_of_acks_goes_out_as_one_frame_on_the_wire() -> None:
    async with ScriptedServer() as server:
        async with aiorabbit.connect(server.url) as conn:
            ch = await conn.channel()
            async with ch.consume("q") as messages:
                peer = server.peers[0]
                channel, tag = _consumer_on(peer, "q")
                for i in range(1, 101):
                    peer.deliver(channel, tag, b"%d" % i)
                got = [await messages.get(timeout=5) for _ in range(100)]
                for msg in got[:50]:  # one turn
                    await msg.ack()
                got[60].reject()
                for msg in got[70:]:  # 51-60 are not settled: these go one by one
                    await msg.ack()
                await _round_trip(ch)
                assert _settles(peer, channel) == [
                    m.BasicReject(delivery_tag=61, requeue=True),
                    m.BasicAck(delivery_tag=50, multiple=True),
                    *[m.BasicAck(delivery_tag=t, multiple=False) for t in range(71, 101)],
                ]
                for msg in got[50:60]:
                    await msg.ack()
                for msg in got[61:70]:
                    await msg.ack()
                await asyncio.sleep(0)
                await _round_trip(ch)
                assert _settles(peer, channel)[-1] == m.BasicAck(delivery_tag=70, multiple=True)
    assert not server.errors


def test_a_delivery_held_unsettled_does_not_make_the_bookkeeping_grow() -> None:
    # One delivery kept unsettled while 10,000 later ones are acked (they go
    # out one by one): what is kept is the unsettled ones, not the acked.
    batch = AckBatch()
    batch.delivered(1)
    for tag in range(2, 10_002):
        batch.delivered(tag)
        batch.ack(tag)
        if tag % 100 == 0:
            assert all(not multiple for _, multiple in batch.drain())
    batch.drain()
    assert batch.lowest_unsettled() == 1 and len(batch._unsettled) == 1
    batch.ack(1)
    assert batch.drain() == [(1, False)] and batch.lowest_unsettled() is None
