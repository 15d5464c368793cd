"""The protocol's reads, without a socket: whatever the socket hands over at
each read, large bodies read straight into their buffers (with the next
frame's head in the same read) and frames of other channels between their
body frames come out whole and in order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiorabbit.assembly import Assembler
from aiorabbit.codec import Method
from aiorabbit.codec import methods as m
from aiorabbit.codec.frames import FrameParser, encode_content_frames, encode_method_frame
from aiorabbit.codec.properties import Properties
from aiorabbit.link import ChannelPort
from aiorabbit.outbox import Outbox
from aiorabbit.protocol import Events, Protocol, Router
from aiorabbit.reading import ReadGate

pytestmark = pytest.mark.broker_free

FRAME_MAX = 131072


def _deliver(channel: int, tag: int, body: bytes) -> list[bytes]:
    """The frames of one delivery, each as its own bytes."""
    out: list[Any] = [encode_method_frame(channel, m.BasicDeliver(
        consumer_tag="c", delivery_tag=tag, redelivered=False, exchange="", routing_key="q"))]
    encode_content_frames(channel, 60, body, Properties().encode(), FRAME_MAX, out)
    frames = [out[0], out[1]]
    frames += [b"".join(bytes(p) for p in out[i:i + 3]) for i in range(2, len(out), 3)]
    return frames


def _port(got: list[tuple[int, int, bytes]], channel: int) -> ChannelPort:
    def on_content(method: Method, body: Any, props: bytes, message: Any = None) -> None:
        assert isinstance(method, m.BasicDeliver)
        got.append((channel, method.delivery_tag, bytes(body)))

    def failed(exc: BaseException) -> None:
        raise exc

    content = Assembler(channel, 1 << 30, on_content, failed)

    def on_method(method: Method) -> None:
        content.start(method)

    def on_delivery(method: Method, props: bytes, body: memoryview) -> None:
        on_content(method, bytes(body), props)

    async def open_() -> None:
        pass

    return ChannelPort(on_method, content.header, content.body, content.body_target,
                       content.receiving_large_body, content.body_placed, on_delivery,
                       lambda: False, open_, failed)


@given(st.lists(st.integers(1, 300_000), min_size=1, max_size=60), st.booleans())
@settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.too_slow])
def test_any_read_sizes_give_every_body_whole(read_sizes: list[int], interleave: bool) -> None:
    big = [bytes([i + 1]) * size for i, size in enumerate((600_000, 131_064, 131_065, 70_000))]
    small = b"between"
    stream: list[bytes] = []
    for tag, body in enumerate(big, 1):
        frames = _deliver(1, tag, body)
        if interleave:  # a delivery on channel 2 between two body frames of channel 1
            frames[3:3] = [b"".join(_deliver(2, 100 + tag, small))]
        stream += frames
    data = b"".join(stream)

    async def run() -> list[tuple[int, int, bytes]]:
        got: list[tuple[int, int, bytes]] = []

        def failure(exc: BaseException) -> None:
            raise exc

        gate = ReadGate(lambda: False)
        events = Events(lambda t: None, lambda e: None, failure, failure,
                        Outbox(asyncio.get_running_loop(), failure), gate)
        proto = Protocol(events, FrameParser(FRAME_MAX), Router({1: _port(got, 1), 2: _port(got, 2)},
                                                                lambda method: None))
        pos, i = 0, 0
        while pos < len(data):
            buf = proto.get_buffer(-1)
            n = min(len(buf), read_sizes[i % len(read_sizes)], len(data) - pos)
            i += 1
            buf[:n] = data[pos:pos + n]
            pos += n
            proto.buffer_updated(n)
            await asyncio.sleep(0)  # a loop turn: the turn cap resets
        return got

    got = asyncio.run(run())
    expected = [(1, tag, body) for tag, body in enumerate(big, 1)]
    if interleave:
        assert sorted(g for g in got if g[0] == 2) == [(2, 100 + t, small) for t in range(1, 5)]
    assert [g for g in got if g[0] == 1] == expected
