"""AMQP frames: aiorabbit.codec.frames (the incremental parser and encoders)."""

from __future__ import annotations

import array
import itertools
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiorabbit.codec import methods
from aiorabbit.codec.frames import (
    FRAME_BODY,
    FRAME_END,
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
    FRAME_MIN_SIZE,
    HEARTBEAT_FRAME,
    PROTOCOL_HEADER,
    BodyFrame,
    FrameParser,
    HeaderFrame,
    HeartbeatFrame,
    MethodFrame,
    encode_content_frames,
    encode_method_frame,
)
from aiorabbit.codec.properties import Properties
from aiorabbit.exceptions import FrameError, InvalidArgument

pytestmark = pytest.mark.broker_free

FRAME_MAX = 4096


def _frame(kind: int, channel: int, payload: bytes, end: bytes = b"\xce") -> bytes:
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + end


def _content(channel: int, body: bytes, props: Properties, frame_max: int = FRAME_MAX) -> bytes:
    out: list = []
    encode_content_frames(channel, 60, body, props.encode(), frame_max, out)
    return b"".join(bytes(part) for part in out)


def test_constants():
    assert (FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT) == (1, 2, 3, 8)
    assert FRAME_END == 0xCE
    assert FRAME_MIN_SIZE == 4096
    assert PROTOCOL_HEADER == b"AMQP\x00\x00\x09\x01"
    assert HEARTBEAT_FRAME == b"\x08\x00\x00\x00\x00\x00\x00\xce"


def test_method_frame_bytes():
    assert encode_method_frame(0, methods.ConnectionCloseOk()) == (
        b"\x01\x00\x00\x00\x00\x00\x04\x00\x0a\x00\x33\xce"
    )
    assert encode_method_frame(0xFFFF, methods.ChannelFlowOk(active=True)) == (
        b"\x01\xff\xff\x00\x00\x00\x05\x00\x14\x00\x15\x01\xce"
    )


# --------------------------------------------------------------------------
# a stream of many frames, in any chunking

DELIVER_PROPS = Properties(content_type="text/plain", headers={"h": [1, "two"]}, delivery_mode=2)
BIG_BODY = bytes(range(256)) * 40 + b"tail"  # 10244 bytes: three body frames at 4096
SMALL_BODY = b"small body"

STREAM_PARTS: list[bytes] = [
    encode_method_frame(
        0,
        methods.ConnectionStart(server_properties={"product": "RabbitMQ", "capabilities": {"x": True}}),
    ),
    HEARTBEAT_FRAME,
    encode_method_frame(
        1,
        methods.BasicDeliver(consumer_tag="ct", delivery_tag=1, exchange="ex", routing_key="rk"),
    ),
    _content(1, BIG_BODY, DELIVER_PROPS),
    encode_method_frame(2, methods.BasicGetOk(delivery_tag=7, exchange="", routing_key="q", message_count=0)),
    _content(2, SMALL_BODY, Properties()),
    HEARTBEAT_FRAME,
    encode_method_frame(3, methods.BasicReturn(reply_code=312, exchange="ex", routing_key="nowhere")),
    _content(3, b"", Properties(message_id="m")),  # header frame only
    _frame(FRAME_BODY, 4, b""),  # an empty body frame (legal, if unusual)
    encode_method_frame(5, methods.BasicAck(delivery_tag=2**64 - 1, multiple=True)),
    HEARTBEAT_FRAME,
]
STREAM = b"".join(STREAM_PARTS)

EXPECTED_EVENTS = [
    (
        "method",
        0,
        methods.ConnectionStart(server_properties={"product": "RabbitMQ", "capabilities": {"x": True}}),
    ),
    ("heartbeat", 0),
    (
        "method",
        1,
        methods.BasicDeliver(consumer_tag="ct", delivery_tag=1, exchange="ex", routing_key="rk"),
    ),
    ("header", 1, 60, len(BIG_BODY), DELIVER_PROPS.encode()),
    ("body", 1, BIG_BODY),
    (
        "method",
        2,
        methods.BasicGetOk(delivery_tag=7, exchange="", routing_key="q", message_count=0),
    ),
    ("header", 2, 60, len(SMALL_BODY), b"\x00\x00"),
    ("body", 2, SMALL_BODY),
    ("heartbeat", 0),
    ("method", 3, methods.BasicReturn(reply_code=312, exchange="ex", routing_key="nowhere")),
    ("header", 3, 60, 0, Properties(message_id="m").encode()),
    ("method", 5, methods.BasicAck(delivery_tag=2**64 - 1, multiple=True)),
    ("heartbeat", 0),
]


def _events(frames) -> list:
    """Frames as comparable tuples, consecutive body chunks of a channel joined."""
    events: list = []
    for frame in frames:
        if isinstance(frame, BodyFrame):
            assert isinstance(frame.payload, memoryview)
            assert len(frame.payload) > 0  # no empty chunks are reported
            if events and events[-1][0] == "body" and events[-1][1] == frame.channel:
                events[-1] = ("body", frame.channel, events[-1][2] + bytes(frame.payload))
            else:
                events.append(("body", frame.channel, bytes(frame.payload)))
        elif isinstance(frame, MethodFrame):
            events.append(("method", frame.channel, frame.method))
        elif isinstance(frame, HeaderFrame):
            assert type(frame.properties) is bytes
            events.append(("header", frame.channel, frame.class_id, frame.body_size, frame.properties))
        else:
            assert isinstance(frame, HeartbeatFrame)
            events.append(("heartbeat", frame.channel))
    return events


def _split(data: bytes, cuts) -> list[bytes]:
    """``data`` cut at the given offsets (any order, duplicates allowed)."""
    edges = [0, *sorted({c for c in cuts if 0 <= c <= len(data)}), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(edges)]


def _feed_chunks(chunks, parser: FrameParser | None = None) -> list:
    parser = parser or FrameParser(frame_max=FRAME_MAX)
    frames = []
    for chunk in chunks:
        frames.extend(parser.feed(chunk))
    return frames


def test_stream_is_well_formed():
    # the content helper split the big body over three frames
    assert STREAM.count(b"\x03\x00\x01\x00\x00\x0f\xf8") == 2  # two full 4088-byte chunks
    assert len(STREAM) == sum(map(len, STREAM_PARTS))


def test_stream_all_at_once():
    frames = FrameParser(frame_max=FRAME_MAX).feed(STREAM)
    assert _events(frames) == EXPECTED_EVENTS
    # whole body frames arriving in one chunk are reported one chunk each
    assert [len(f.payload) for f in frames if isinstance(f, BodyFrame) and f.channel == 1] == [
        4088,
        4088,
        10244 - 2 * 4088,
    ]


def test_stream_one_byte_at_a_time():
    frames = _feed_chunks(STREAM[i : i + 1] for i in range(len(STREAM)))
    assert _events(frames) == EXPECTED_EVENTS


@pytest.mark.parametrize("buffer_type", [bytes, bytearray, memoryview])
def test_stream_buffer_types(buffer_type):
    frames = _feed_chunks([buffer_type(STREAM[:1000]), buffer_type(STREAM[1000:])])
    assert _events(frames) == EXPECTED_EVENTS


@given(st.lists(st.integers(0, len(STREAM)), max_size=40))
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_stream_any_chunking(cuts):
    chunks = _split(STREAM, cuts)
    assert b"".join(chunks) == STREAM
    assert _events(_feed_chunks(chunks)) == EXPECTED_EVENTS


@given(st.lists(st.integers(0, len(STREAM)), min_size=1, max_size=20))
@settings(deadline=None)
def test_stream_any_chunking_via_sink(cuts):
    class Sink:
        def __init__(self) -> None:
            self.events: list = []

        def on_method(self, channel, method):
            self.events.append(("method", channel, method))

        def on_header(self, channel, class_id, body_size, properties):
            self.events.append(("header", channel, class_id, body_size, properties))

        def on_body(self, channel, chunk):
            if self.events and self.events[-1][:2] == ("body", channel):
                self.events[-1] = ("body", channel, self.events[-1][2] + bytes(chunk))
            else:
                self.events.append(("body", channel, bytes(chunk)))

        def on_heartbeat(self):
            self.events.append(("heartbeat", 0))

    sink = Sink()
    parser = FrameParser(frame_max=FRAME_MAX)
    for chunk in _split(STREAM, cuts):
        parser.feed_into(chunk, sink)
    assert sink.events == EXPECTED_EVENTS


def test_body_chunks_are_views_of_the_fed_data():
    frame = _frame(FRAME_BODY, 1, b"0123456789")
    first, second = frame[:12], frame[12:]  # split inside the payload
    parser = FrameParser()
    (part1,) = parser.feed(first)
    (part2,) = parser.feed(second)
    assert bytes(part1.payload) + bytes(part2.payload) == b"0123456789"
    assert part1.payload.obj is first
    assert part2.payload.obj is second


def test_body_bytes_placed_directly_are_skipped_by_the_parser():
    # An I/O layer reads the rest of a body frame's payload straight into the
    # body (pending_body/body_placed) and feeds only what follows.
    payload = bytes(range(200))
    stream = _frame(FRAME_BODY, 3, payload) + _frame(FRAME_BODY, 3, b"next") + HEARTBEAT_FRAME
    parser = FrameParser()
    assert parser.pending_body() == (0, 0) and parser.head_due() == 7
    (first,) = parser.feed(stream[:7 + 50])  # the head and 50 payload bytes
    assert bytes(first.payload) == payload[:50]
    assert parser.pending_body() == (3, 150) and parser.head_due() == 0
    parser.body_placed(100)
    assert parser.pending_body() == (3, 50)
    parser.body_placed(50)
    assert parser.pending_body() == (3, 0)
    assert parser.head_due() == 8  # the end octet, then the next frame's head
    rest = stream[7 + 200 :]
    assert parser.feed(rest[:3]) == [] and parser.head_due() == 5
    frames = parser.feed(rest[3:])
    assert [bytes(f.payload) for f in frames[:1]] == [b"next"] and frames[1] == HeartbeatFrame(0)
    with pytest.raises(FrameError):
        parser.body_placed(1)  # nothing is due


def test_head_due_inside_a_buffered_frame_is_zero():
    parser = FrameParser()
    parser.feed(_frame(FRAME_METHOD, 1, b"\x00\x14\x00\x0b")[:9])  # a method frame, cut in its payload
    assert parser.pending_body() == (0, 0) and parser.head_due() == 0


def test_zero_byte_body_frame_split_before_its_end_octet():
    empty = _frame(FRAME_BODY, 1, b"")
    parser = FrameParser()
    assert parser.feed(empty[:7]) == []
    assert parser.feed(empty[7:] + HEARTBEAT_FRAME) == [HeartbeatFrame(0)]
    parser = FrameParser()
    for i in range(len(empty)):
        assert parser.feed(empty[i : i + 1]) == []
    assert parser.feed(HEARTBEAT_FRAME) == [HeartbeatFrame(0)]


def test_incomplete_frames_wait():
    frame = encode_method_frame(1, methods.BasicAck(delivery_tag=1))
    parser = FrameParser()
    assert parser.feed(frame[:-1]) == []
    assert parser.feed(b"") == []
    assert parser.feed(frame[-1:]) == [MethodFrame(1, methods.BasicAck(delivery_tag=1))]


# --------------------------------------------------------------------------
# malformed streams


def _parse_all(data: bytes, frame_max: int = FRAME_MAX) -> None:
    FrameParser(frame_max=frame_max).feed(data)


def _parse_bytewise(data: bytes, frame_max: int = FRAME_MAX) -> None:
    parser = FrameParser(frame_max=frame_max)
    for i in range(len(data)):
        parser.feed(data[i : i + 1])


PARSE_MODES = [_parse_all, _parse_bytewise]
ACK = methods.BasicAck(delivery_tag=1).encode()


@pytest.mark.parametrize("parse", PARSE_MODES)
@pytest.mark.parametrize(
    ("data", "match"),
    [
        (_frame(FRAME_METHOD, 1, ACK, end=b"\x00"), "frame-end"),
        (_frame(FRAME_HEADER, 1, b"\x00\x3c\x00\x00" + bytes(8) + b"\x00\x00", end=b"\xcf"), "frame-end"),
        (_frame(FRAME_BODY, 1, b"abc", end=b"\x00"), "frame-end"),
        (_frame(FRAME_BODY, 1, b"", end=b"\x01"), "frame-end"),
        (HEARTBEAT_FRAME[:-1] + b"\x00", "frame-end"),
        (_frame(4, 1, b"x"), "unknown frame type"),
        (_frame(0, 0, b""), "unknown frame type"),
        (_frame(0xCE, 0, b""), "unknown frame type"),
        (_frame(FRAME_METHOD, 1, ACK[:-1]), "basic.ack"),  # bits octet missing
        (_frame(FRAME_METHOD, 1, ACK[:6]), "basic.ack"),
        (_frame(FRAME_METHOD, 1, ACK + b"\x00"), "trailing"),
        (_frame(FRAME_METHOD, 1, b"\x00\x3c"), "truncated"),
        (_frame(FRAME_METHOD, 1, b""), "truncated"),
        (_frame(FRAME_METHOD, 1, b"\x00\x3c\x03\xe7"), "unknown method"),
        (_frame(FRAME_METHOD, 1, b"\x00\x07\x00\x0a"), "unknown method"),
        (_frame(FRAME_METHOD, 1, b"\x00\x3c\x00\x15"), "basic.consume-ok"),  # consumer tag missing
        (_frame(FRAME_HEARTBEAT, 1, b""), "heartbeat"),
        (_frame(FRAME_HEARTBEAT, 0, b"\x00"), "heartbeat"),
        (_frame(FRAME_HEADER, 1, b"\x00\x3c\x00\x00" + bytes(8) + b"\x00"), "header"),
        (_frame(FRAME_HEADER, 1, b""), "header"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_malformed_frames(parse, data, match):
    with pytest.raises(FrameError, match=match):
        parse(data)


@pytest.mark.parametrize("parse", PARSE_MODES)
@pytest.mark.parametrize("kind", [FRAME_METHOD, FRAME_HEADER, FRAME_BODY, FRAME_HEARTBEAT, 9])
def test_frame_larger_than_frame_max(parse, kind):
    # 4089 + 8 = 4097 bytes: one more than frame_max
    head = struct.pack(">BHI", kind, 1, FRAME_MAX - 7)
    with pytest.raises(FrameError, match="exceeds frame_max"):
        parse(head + bytes(FRAME_MAX - 7) + b"\xce")
    # the head alone is enough to refuse it: nothing is buffered
    with pytest.raises(FrameError, match="exceeds frame_max"):
        parse(head)


def test_frame_of_exactly_frame_max():
    body = bytes(FRAME_MAX - 8)
    frames = FrameParser(frame_max=FRAME_MAX).feed(_frame(FRAME_BODY, 1, body))
    assert b"".join(bytes(f.payload) for f in frames) == body
    frames = _feed_chunks([_frame(FRAME_BODY, 1, body)[i : i + 1000] for i in range(0, FRAME_MAX, 1000)])
    assert b"".join(bytes(f.payload) for f in frames) == body


def test_frame_max_applies_after_earlier_frames_in_the_same_chunk():
    too_big = _frame(FRAME_METHOD, 1, bytes(FRAME_MAX))
    with pytest.raises(FrameError, match="exceeds frame_max"):
        FrameParser(frame_max=FRAME_MAX).feed(HEARTBEAT_FRAME + too_big)
    parser = FrameParser(frame_max=FRAME_MAX)
    assert parser.feed(HEARTBEAT_FRAME + too_big[:3]) == [HeartbeatFrame(0)]
    with pytest.raises(FrameError, match="exceeds frame_max"):
        parser.feed(too_big[3:9])


def test_frame_max_setter():
    parser = FrameParser()
    assert parser.frame_max == 131072
    body_frame = _frame(FRAME_BODY, 1, bytes(5000))
    assert len(parser.feed(body_frame)) == 1
    parser.frame_max = FRAME_MAX
    assert parser.frame_max == FRAME_MAX
    with pytest.raises(FrameError, match="exceeds frame_max 4096"):
        parser.feed(body_frame)
    # 0 means no limit
    parser = FrameParser(frame_max=FRAME_MAX)
    parser.frame_max = 0
    assert parser.frame_max == 0xFFFFFFFF
    huge = _frame(FRAME_BODY, 1, bytes(200_000))
    assert sum(len(f.payload) for f in parser.feed(huge)) == 200_000
    assert FrameParser(frame_max=0).frame_max == 0xFFFFFFFF


# --------------------------------------------------------------------------
# encode_content_frames


def test_content_header_bytes():
    out: list = []
    encode_content_frames(7, 60, b"hello", Properties(delivery_mode=2).encode(), FRAME_MAX, out)
    assert out[0] == (
        b"\x02\x00\x07\x00\x00\x00\x0f"  # header frame, channel 7, 15 bytes
        b"\x00\x3c\x00\x00"  # class 60, weight 0
        b"\x00\x00\x00\x00\x00\x00\x00\x05"  # body size
        b"\x10\x00\x02"  # delivery_mode 2
        b"\xce"
        b"\x03\x00\x07\x00\x00\x00\x05"  # a body that fits one frame: its head goes with the header
    )
    assert out[1:] == [b"hello", b"\xce"]


def test_a_small_body_without_properties_takes_one_pack_and_reads_back():
    out: list = []
    encode_content_frames(3, 60, b"abc", b"\x00\x00", FRAME_MAX, out)
    assert out == [b"\x02\x00\x03\x00\x00\x00\x0e\x00\x3c\x00\x00" + struct.pack(">Q", 3) + b"\x00\x00\xce"
                   + b"\x03\x00\x03\x00\x00\x00\x03", b"abc", b"\xce"]
    assert _events(FrameParser(frame_max=FRAME_MAX).feed(b"".join(out))) == [
        ("header", 3, 60, 3, b"\x00\x00"),
        ("body", 3, b"abc"),
    ]


def test_small_body_is_not_copied():
    body = b"x" * (FRAME_MAX - 8)  # exactly one full frame
    out: list = []
    encode_content_frames(1, 60, body, b"\x00\x00", FRAME_MAX, out)
    assert len(out) == 3
    assert out[1] is body
    assert out[0].endswith(b"\xce\x03\x00\x01\x00\x00\x0f\xf8")


def test_empty_body_gives_only_a_header():
    out: list = []
    encode_content_frames(1, 60, b"", b"\x00\x00", FRAME_MAX, out)
    assert out == [b"\x02\x00\x01\x00\x00\x00\x0e\x00\x3c\x00\x00" + bytes(8) + b"\x00\x00\xce"]


@pytest.mark.parametrize(
    "make_body",
    [
        lambda data: data,
        bytearray,
        memoryview,
        lambda data: memoryview(bytearray(data)),
    ],
    ids=["bytes", "bytearray", "memoryview", "memoryview-of-bytearray"],
)
def test_large_body_is_split_into_views(make_body):
    data = bytes(range(256)) * 40 + b"tail"  # 10244 bytes
    body = make_body(data)
    out: list = []
    encode_content_frames(9, 60, body, b"\x00\x00", FRAME_MAX, out)
    assert len(out) == 1 + 3 * 3
    heads, pieces, ends = out[1::3], out[2::3], out[3::3]
    assert heads == [
        b"\x03\x00\x09\x00\x00\x0f\xf8",
        b"\x03\x00\x09\x00\x00\x0f\xf8",
        b"\x03\x00\x09\x00\x00\x08\x14",  # 10244 - 8176 = 2068
    ]
    assert ends == [b"\xce"] * 3
    owner = body.obj if isinstance(body, memoryview) else body
    for piece in pieces:
        assert isinstance(piece, memoryview)
        assert piece.obj is owner  # a slice of the caller's buffer, not a copy
    assert b"".join(bytes(p) for p in pieces) == data
    # and it parses back
    stream = b"".join(bytes(part) for part in out)
    assert _events(FrameParser(frame_max=FRAME_MAX).feed(stream)) == [
        ("header", 9, 60, len(data), b"\x00\x00"),
        ("body", 9, data),
    ]


def test_body_one_byte_over_a_frame():
    body = bytes(FRAME_MAX - 7)
    out: list = []
    encode_content_frames(1, 60, body, b"\x00\x00", FRAME_MAX, out)
    assert [len(p) for p in out[2::3]] == [FRAME_MAX - 8, 1]


@pytest.mark.parametrize("wrap", [lambda a: a, memoryview], ids=["array", "memoryview"])
def test_non_byte_buffer_is_cast_not_copied(wrap):
    numbers = array.array("i", range(3000))  # 3000 items, 12000 bytes
    body = wrap(numbers)
    out: list = []
    encode_content_frames(1, 60, body, b"\x00\x00", FRAME_MAX, out)
    assert out[0][11:19] == struct.pack(">Q", 12000)  # the size is in bytes
    pieces = out[2::3]
    assert [len(p) for p in pieces] == [4088, 4088, 12000 - 8176]
    assert all(isinstance(p, memoryview) and p.obj is numbers for p in pieces)
    assert all(p.format == "B" for p in pieces)
    assert b"".join(bytes(p) for p in pieces) == numbers.tobytes()
    stream = b"".join(bytes(part) for part in out)
    assert _events(FrameParser(frame_max=FRAME_MAX).feed(stream)) == [
        ("header", 1, 60, 12000, b"\x00\x00"),
        ("body", 1, numbers.tobytes()),
    ]


def test_small_non_byte_buffer_frame_size_is_in_bytes():
    numbers = array.array("i", range(10))  # 40 bytes
    out: list = []
    encode_content_frames(1, 60, numbers, b"\x00\x00", FRAME_MAX, out)
    assert out[0].endswith(b"\x03\x00\x01\x00\x00\x00\x28")
    assert out[1] is numbers
    stream = b"".join(bytes(part) for part in out)
    assert _events(FrameParser(frame_max=FRAME_MAX).feed(stream)) == [
        ("header", 1, 60, 40, b"\x00\x00"),
        ("body", 1, numbers.tobytes()),
    ]


def test_unlimited_frame_max_sends_one_body_frame():
    body = bytes(300_000)
    out: list = []
    encode_content_frames(1, 60, body, b"\x00\x00", 0, out)
    assert len(out) == 3
    assert out[0].endswith(b"\x03\x00\x01\x00\x04\x93\xe0")
    assert out[1] is body


@pytest.mark.parametrize("frame_max", [1, 8])
def test_frame_max_too_small(frame_max):
    with pytest.raises(InvalidArgument, match="frame_max"):
        encode_content_frames(1, 60, b"x", b"\x00\x00", frame_max, [])


@given(st.binary(max_size=3000), st.integers(22, 1000), st.integers(0, 65535))
@settings(deadline=None)
def test_content_round_trip(body, frame_max, channel):
    # (22: the header frame with an empty property list must fit, too)
    out: list = []
    encode_content_frames(channel, 60, body, b"\x00\x00", frame_max, out)
    stream = b"".join(bytes(part) for part in out)
    assert all(len(bytes(out[i])) + 8 <= frame_max for i in range(2, len(out), 3))
    events = _events(FrameParser(frame_max=frame_max).feed(stream))
    expected = [("header", channel, 60, len(body), b"\x00\x00")]
    if body:
        expected.append(("body", channel, body))
    assert events == expected


# --------------------------------------------------------------------------
# fuzz: only FrameError


@given(st.binary(max_size=300), st.lists(st.integers(0, 300), max_size=10))
@settings(deadline=None)
def test_fuzz_random_bytes(data, cuts):
    parser = FrameParser(frame_max=FRAME_MAX)
    try:
        for chunk in _split(data, cuts):
            parser.feed(chunk)
    except FrameError:
        pass


@given(st.binary(max_size=120), st.integers(0, 9), st.integers(0, 65535))
@settings(deadline=None)
def test_fuzz_frames_with_plausible_heads(payload, kind, channel):
    try:
        FrameParser().feed(_frame(kind, channel, payload))
    except FrameError:
        pass


@given(st.data())
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_fuzz_mutated_stream(data):
    stream = bytearray(STREAM)
    for _ in range(data.draw(st.integers(1, 4))):
        stream[data.draw(st.integers(0, len(stream) - 1))] = data.draw(st.integers(0, 255))
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=10))
    parser = FrameParser(frame_max=FRAME_MAX)
    try:
        for chunk in _split(bytes(stream), cuts):
            parser.feed(chunk)
    except FrameError:
        pass
