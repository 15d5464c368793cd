"""The parser's delivery fast path: a ``basic.deliver`` whose content
header and single body frame arrive whole in one read goes to a sink's
``on_delivery`` in one call.  Whatever the stream (any chunking, multi-frame
and empty bodies, frames on other channels in between, corrupt bytes), a
sink with ``on_delivery`` sees exactly the frames and errors that a sink
without it sees."""

from __future__ import annotations

import itertools
import struct
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiorabbit.codec import Method
from aiorabbit.codec import methods as m
from aiorabbit.codec.frames import (
    FRAME_HEADER,
    HEARTBEAT_FRAME,
    FrameParser,
    encode_content_frames,
    encode_method_frame,
)
from aiorabbit.codec.properties import Properties
from aiorabbit.exceptions import FrameError

pytestmark = pytest.mark.broker_free

FRAME_MAX = 4096


class _Frames:
    """Records frames one by one (no ``on_delivery``: the usual path)."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def on_method(self, channel: int, method: Method) -> None:
        self.events.append(("method", channel, repr(method)))

    def on_header(self, channel: int, class_id: int, body_size: int, properties: bytes) -> None:
        self.events.append(("header", channel, class_id, body_size, properties))

    def on_body(self, channel: int, chunk: memoryview) -> None:
        last = self.events[-1] if self.events else None
        if last is not None and last[0] == "body" and last[1] == channel:  # how it was cut does not matter
            self.events[-1] = ("body", channel, last[2] + bytes(chunk))
        else:
            self.events.append(("body", channel, bytes(chunk)))

    def on_heartbeat(self) -> None:
        self.events.append(("heartbeat",))


class _Fused(_Frames):
    """The same, plus ``on_delivery``, recorded as its three frames."""

    def __init__(self) -> None:
        super().__init__()
        self.fused = 0

    def on_delivery(self, channel: int, method: Method, properties: bytes, body: memoryview) -> None:
        self.fused += 1
        self.on_method(channel, method)
        self.on_header(channel, 60, len(body), properties)
        if body:
            self.on_body(channel, body)


def _deliver(channel: int, tag: int, body: bytes, props: Properties, frame_max: int = FRAME_MAX) -> bytes:
    out: list[Any] = [encode_method_frame(channel, m.BasicDeliver(
        consumer_tag="ctag", delivery_tag=tag, redelivered=False, exchange="ex", routing_key="rk"))]
    encode_content_frames(channel, 60, body, props.encode(), frame_max, out)
    return b"".join(bytes(part) for part in out)


_item = st.one_of(
    st.tuples(st.just("deliver"), st.integers(1, 3), st.integers(0, 6000), st.booleans()),
    st.tuples(st.just("method"), st.integers(0, 3)),
    st.tuples(st.just("heartbeat")),
    # A delivery whose header says another channel, or whose body frame does:
    # the fast path must not take them.
    st.tuples(st.just("crossed"), st.integers(1, 3), st.integers(1, 300)),
)


def _encode(items: list[tuple[Any, ...]]) -> bytes:
    out = []
    for tag, item in enumerate(items, 1):
        kind = item[0]
        if kind == "deliver":
            _, channel, size, with_props = item
            props = Properties(content_type="text/plain", headers={"n": tag}) if with_props else Properties()
            out.append(_deliver(channel, tag, bytes([tag % 251]) * size, props))
        elif kind == "method":
            out.append(encode_method_frame(item[1], m.ChannelFlow(active=True) if item[1] else
                                           m.ConnectionBlocked(reason="low")))
        elif kind == "heartbeat":
            out.append(HEARTBEAT_FRAME)
        else:
            _, channel, size = item
            frames = _deliver(channel, tag, b"x" * size, Properties())
            # Move the content header to channel + 1.
            at = len(encode_method_frame(channel, m.BasicDeliver(
                consumer_tag="ctag", delivery_tag=tag, redelivered=False, exchange="ex", routing_key="rk")))
            assert frames[at] == FRAME_HEADER
            out.append(frames[:at + 1] + struct.pack(">H", channel + 1) + frames[at + 3:])
    return b"".join(out)


def _run(sink: _Frames, chunks: list[bytes]) -> tuple[list[tuple[Any, ...]], str | None]:
    parser = FrameParser(frame_max=FRAME_MAX)
    try:
        for chunk in chunks:
            parser.feed_into(chunk, sink)
    except FrameError as exc:
        return sink.events, str(exc)
    return sink.events, None


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    edges = [0, *sorted({c for c in cuts if 0 <= c <= len(data)}), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


@given(st.lists(_item, min_size=1, max_size=12), st.lists(st.integers(0, 80_000), max_size=8),
       st.lists(st.tuples(st.integers(0, 80_000), st.integers(0, 255)), max_size=2))
@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_the_fast_path_sees_what_the_frames_one_by_one_give(
    items: list[tuple[Any, ...]], cuts: list[int], corruption: list[tuple[int, int]]
) -> None:
    data = bytearray(_encode(items))
    for at, value in corruption:
        if at < len(data):
            data[at] = value
    chunks = _split(bytes(data), cuts)
    fused = _Fused()
    assert _run(fused, chunks) == _run(_Frames(), chunks)


def test_whole_deliveries_in_one_read_take_the_fast_path() -> None:
    small = _deliver(1, 1, b"hello", Properties(content_type="text/plain"))
    empty = _deliver(1, 2, b"", Properties())
    split = _deliver(1, 3, b"y" * 10_000, Properties())  # three body frames: the usual path
    sink = _Fused()
    events, error = _run(sink, [small + empty + split])
    assert error is None and sink.fused == 2
    assert [e[0] for e in events] == ["method", "header", "body", "method", "header",
                                     "method", "header", "body"]
    assert events[2] == ("body", 1, b"hello") and events[-1] == ("body", 1, b"y" * 10_000)
    # Cut inside the header or the body: the usual path for that one.
    sink = _Fused()
    assert _run(sink, [small[:-3], small[-3:]])[1] is None and sink.fused == 0


@pytest.mark.parametrize("oversized", ["header", "body"])
def test_a_frame_over_frame_max_is_refused_on_the_fast_path_too(oversized: str) -> None:
    # Encoded with a larger frame_max than the parser's: one body frame of
    # 5,000 bytes, or a content header of 5,000, against frame_max 4096.
    props = Properties(headers={"pad": "p" * 4900}) if oversized == "header" else Properties()
    body = b"z" * (10 if oversized == "header" else 5000)
    data = _deliver(1, 1, body, props, frame_max=8192)
    for sink in (_Fused(), _Frames()):
        events, error = _run(sink, [data])
        assert error is not None and "exceeds frame_max" in error
        assert [e[0] for e in events] == (["method"] if oversized == "header" else ["method", "header"])
