"""AMQP frames: encoders and an incremental, sans-I/O parser.

Wire format of every frame: type (octet), channel (short), payload size
(long), payload, frame-end octet 0xCE.

The parser accepts any chunking of the byte stream.  Body payloads are never
buffered by it: each body frame is handed on as one or more ``memoryview``
slices of the chunks it arrived in (``on_body``), so the receiving side can
copy each body byte exactly once, into the message it belongs to.
"""

from __future__ import annotations

import struct
from typing import Any, NamedTuple, Protocol

from ..exceptions import FrameError, InvalidArgument, ProtocolVersionMismatch
from ._primitives import Buffer, Method
from .deliver import MethodDecoder
from .methods import METHODS, BasicDeliver

__all__ = [
    "FRAME_METHOD",
    "FRAME_HEADER",
    "FRAME_BODY",
    "FRAME_HEARTBEAT",
    "FRAME_END",
    "FRAME_MIN_SIZE",
    "PROTOCOL_HEADER",
    "HEARTBEAT_FRAME",
    "MethodFrame",
    "HeaderFrame",
    "BodyFrame",
    "HeartbeatFrame",
    "Frame",
    "FrameSink",
    "FrameParser",
    "encode_method_frame",
    "encode_content_frames",
    "decode_method",
]

FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8
FRAME_END = 0xCE
FRAME_MIN_SIZE = 4096
PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
HEARTBEAT_FRAME = b"\x08\x00\x00\x00\x00\x00\x00\xce"
_END = b"\xce"

_FRAME_HEAD = struct.Struct(">BHI")
_CONTENT_HEAD = struct.Struct(">BHIHHQ")  # frame head + class, weight, body size
# A content header without properties, its end octet and the head of the
# one body frame after it: one pack for the most common small message.
_BARE_CONTENT_HEAD = struct.Struct(">BHIHHQHBBHI")
_END_AND_BODY_HEAD = struct.Struct(">BBHI")  # a header's end octet, then a body frame head
_NO_PROPERTIES = b"\x00\x00"
_HEADER_ARGS = struct.Struct(">HHQ")
_METHOD_IDS = struct.Struct(">HH")
_UNLIMITED = 0xFFFFFFFF


class MethodFrame(NamedTuple):
    """A decoded method frame."""

    channel: int
    method: Method


class HeaderFrame(NamedTuple):
    """A content header; ``properties`` is the raw property list (decode it
    with :meth:`aiorabbit.Properties.decode`)."""

    channel: int
    class_id: int
    body_size: int
    properties: bytes


class BodyFrame(NamedTuple):
    """A (part of a) body frame's payload."""

    channel: int
    payload: memoryview


class HeartbeatFrame(NamedTuple):
    """A heartbeat frame."""

    channel: int


Frame = MethodFrame | HeaderFrame | BodyFrame | HeartbeatFrame


class FrameSink(Protocol):
    """What :meth:`FrameParser.feed_into` reports parsed frames to."""

    def on_method(self, channel: int, method: Method) -> None:
        """A complete method frame."""

    def on_header(
        self, channel: int, class_id: int, body_size: int, properties: bytes
    ) -> None:
        """A content header frame."""

    def on_body(self, channel: int, chunk: memoryview) -> None:
        """Part or all of a body frame's payload, in order."""

    def on_heartbeat(self) -> None:
        """A heartbeat frame."""

    # Optional: a sink with ``on_delivery(channel, method, properties,
    # body)`` gets a ``basic.deliver`` whose content header and single body
    # frame arrived whole in the same read in one call instead of three
    # (``body`` is empty for an empty body).


class _Collector:
    def __init__(self) -> None:
        self.frames: list[Frame] = []

    def on_method(self, channel: int, method: Method) -> None:
        self.frames.append(MethodFrame(channel, method))

    def on_header(
        self, channel: int, class_id: int, body_size: int, properties: bytes
    ) -> None:
        self.frames.append(HeaderFrame(channel, class_id, body_size, properties))

    def on_body(self, channel: int, chunk: memoryview) -> None:
        self.frames.append(BodyFrame(channel, chunk))

    def on_heartbeat(self) -> None:
        self.frames.append(HeartbeatFrame(0))

    def on_delivery(self, channel: int, method: Method, properties: bytes, body: memoryview) -> None:
        # The three frames, as if they had come one by one.
        frames = self.frames
        frames.append(MethodFrame(channel, method))
        frames.append(HeaderFrame(channel, BasicDeliver.CLASS_ID, len(body), properties))
        if body:
            frames.append(BodyFrame(channel, body))


def decode_method(payload: Buffer) -> Method:
    """Decode a method frame payload (ids and arguments)."""
    if len(payload) < 4:
        raise FrameError(f"method frame payload of {len(payload)} bytes is truncated")
    class_id, method_id = _METHOD_IDS.unpack_from(payload, 0)
    cls = METHODS.get((class_id << 16) | method_id)
    if cls is None:
        raise FrameError(f"unknown method ({class_id}, {method_id})")
    view = payload if isinstance(payload, memoryview) else memoryview(payload)
    try:
        return cls.decode(view[4:])
    except (IndexError, struct.error, UnicodeDecodeError) as exc:
        raise FrameError(f"truncated or malformed {cls.NAME}: {exc}") from None


class FrameParser:
    """Incremental frame parser.

    ``frame_max`` is the largest whole frame (header and end octet included)
    accepted; set it after ``connection.tune`` (0 means no limit).
    """

    __slots__ = ("_body_channel", "_body_left", "_buf", "_decode", "_frame_max", "_fresh", "_need_end",
                 "first_bytes")

    def __init__(self, frame_max: int = 131072) -> None:
        self._frame_max = frame_max or _UNLIMITED
        self._decode = MethodDecoder(decode_method)
        # Nothing parsed yet: the server may answer our protocol header with
        # its own instead of a frame.
        self._fresh = True
        #: The first bytes received (up to 32), to show when a peer that is
        #: not an AMQP 0-9-1 broker answers.
        self.first_bytes = b""
        self._buf = bytearray()  # an incomplete non-body frame (or frame head)
        self._body_left = 0  # payload bytes still due for the current body frame
        self._body_channel = 0
        self._need_end = False  # the end octet of a streamed body frame is due

    @property
    def frame_max(self) -> int:
        """The largest frame size accepted."""
        return self._frame_max

    @frame_max.setter
    def frame_max(self, value: int) -> None:
        self._frame_max = value or _UNLIMITED

    def pending_body(self) -> tuple[int, int]:
        """``(channel, bytes)``: the payload still due for the body frame
        being read, ``(channel, 0)`` between frames.  An I/O layer may read
        those bytes straight into the body's own buffer, then report them
        with :meth:`body_placed` instead of feeding them."""
        return self._body_channel, self._body_left

    def body_placed(self, size: int) -> None:
        """``size`` bytes of the current body frame's payload were received
        directly into their destination (see :meth:`pending_body`)."""
        if not 0 < size <= self._body_left:
            raise FrameError(f"{size} body bytes placed, {self._body_left} were due")
        self._body_left -= size
        if not self._body_left:
            self._need_end = True

    def head_due(self) -> int:
        """Bytes still to read before the next frame's payload starts (a
        pending end octet and the rest of the next frame head); 0 inside a
        payload."""
        if self._body_left:
            return 0
        have = len(self._buf)
        if have >= 7:
            return 0
        return (1 if self._need_end else 0) + 7 - have

    def feed(self, data: Buffer) -> list[Frame]:
        """Parse ``data``; return every frame it completes, in order."""
        sink = _Collector()
        self.feed_into(data, sink)
        return sink.frames

    def feed_into(self, data: Buffer, sink: FrameSink | Any) -> None:
        """Parse ``data`` and report each frame to ``sink`` as it completes."""
        view = data if isinstance(data, memoryview) else memoryview(data)
        if self._fresh and not self._stream_starts_with_frame(view):
            return
        end = len(view)
        pos = 0
        if self._body_left or self._need_end:
            pos = self._continue_body(view, 0, end, sink)
        if self._buf and pos < end:
            pos = self._continue_buffered(view, pos, end, sink)
        frame_max = self._frame_max
        unpack_head = _FRAME_HEAD.unpack_from
        decode = self._decode
        on_delivery = getattr(sink, "on_delivery", None)
        while pos + 7 <= end and not self._buf:
            kind, channel, size = unpack_head(view, pos)
            if size + 8 > frame_max:
                raise FrameError(f"frame of {size + 8} bytes exceeds frame_max {frame_max}")
            stop = pos + 7 + size
            if kind == FRAME_BODY:
                if size and stop < end and view[stop] == FRAME_END:  # whole, here: no state kept
                    sink.on_body(channel, view[pos + 7 : stop])
                    pos = stop + 1
                    continue
                self._body_channel = channel
                self._body_left = size
                pos = self._continue_body(view, pos + 7, end, sink)
                continue
            if stop >= end:  # incomplete (the end octet is at ``stop``)
                break
            if view[stop] != FRAME_END:
                raise FrameError(f"bad frame-end octet {view[stop]:#04x}")
            # The two frames of every delivery before its body, inlined: a
            # call per frame shows at a hundred thousand messages a second.
            if kind == FRAME_METHOD:
                method = decode(view[pos + 7 : stop])
                if on_delivery is not None and type(method) is BasicDeliver:
                    after = self._whole_delivery(view, stop + 1, end, channel, method, on_delivery)
                    if after:
                        pos = after
                        continue
                sink.on_method(channel, method)
            elif kind == FRAME_HEADER and size >= 14:
                class_id, _weight, body_size = _HEADER_ARGS.unpack_from(view, pos + 7)
                sink.on_header(channel, class_id, body_size, bytes(view[pos + 19 : stop]))
            else:
                self._dispatch(kind, channel, view[pos + 7 : stop], sink)
            pos = stop + 1
        if pos < end:
            self._buf += view[pos:]

    def _whole_delivery(
        self, view: memoryview, pos: int, end: int, channel: int, method: Method, on_delivery: Any
    ) -> int:
        """If the content header of the delivery ``method`` and its body,
        in one frame, follow at ``pos``, whole and valid: hand the three
        over in one call and return where the next frame starts.  Else 0:
        they take the usual way, which also reports what is wrong with them."""
        if pos + 7 > end:
            return 0
        kind, to, size = _FRAME_HEAD.unpack_from(view, pos)
        stop = pos + 7 + size
        if (kind != FRAME_HEADER or to != channel or size < 14 or stop >= end
                or size + 8 > self._frame_max or view[stop] != FRAME_END):
            return 0
        class_id, _weight, body_size = _HEADER_ARGS.unpack_from(view, pos + 7)
        if class_id != BasicDeliver.CLASS_ID:  # reported as is by the usual way
            return 0
        props_at, props_end = pos + 19, stop
        pos = stop + 1
        if body_size:
            if pos + 7 > end:
                return 0
            kind, to, size = _FRAME_HEAD.unpack_from(view, pos)
            stop = pos + 7 + size
            if (kind != FRAME_BODY or to != channel or size != body_size or stop >= end
                    or size + 8 > self._frame_max or view[stop] != FRAME_END):
                return 0
            body = view[pos + 7 : stop]
            pos = stop + 1
        else:
            body = view[pos:pos]
        on_delivery(channel, method, bytes(view[props_at:props_end]), body)
        return pos

    def _stream_starts_with_frame(self, view: memoryview) -> bool:
        """Check the first bytes of the stream for a protocol header: the
        server's way to refuse ours (RabbitMQ sends ``AMQP\\x00\\x00\\x09\\x01``).
        False while too few bytes have come to tell (they are kept)."""
        if len(self.first_bytes) < 32:
            self.first_bytes += bytes(view[: 32 - len(self.first_bytes)])
        seen = bytes(self._buf) + bytes(view[:8])
        if seen[:4] != PROTOCOL_HEADER[: min(4, len(seen))]:
            self._fresh = False
            return True
        if len(seen) >= 8:
            raise ProtocolVersionMismatch(seen[:8])
        self._buf += view
        return False

    def _continue_body(self, view: memoryview, pos: int, end: int, sink: Any) -> int:
        left = self._body_left
        if left:
            take = min(left, end - pos)
            if take:
                sink.on_body(self._body_channel, view[pos : pos + take])
                pos += take
                left -= take
                self._body_left = left
            if left:
                return pos
        self._need_end = True  # also for a 0-byte body frame
        if pos < end:
            if view[pos] != FRAME_END:
                raise FrameError(f"bad frame-end octet {view[pos]:#04x}")
            self._need_end = False
            pos += 1
        return pos

    def _continue_buffered(self, view: memoryview, pos: int, end: int, sink: Any) -> int:
        buf = self._buf
        if len(buf) < 7:
            take = min(7 - len(buf), end - pos)
            buf += view[pos : pos + take]
            pos += take
            if len(buf) < 7:
                return pos
        kind, channel, size = _FRAME_HEAD.unpack_from(buf, 0)
        if size + 8 > self._frame_max:
            raise FrameError(
                f"frame of {size + 8} bytes exceeds frame_max {self._frame_max}"
            )
        if kind == FRAME_BODY:
            # Streamed: the head was buffered, the payload never is.
            del buf[:7]
            if buf:  # cannot happen: only the head was buffered
                raise FrameError("internal: body payload buffered")
            self._body_channel = channel
            self._body_left = size
            return self._continue_body(view, pos, end, sink)
        want = 7 + size + 1 - len(buf)
        take = min(want, end - pos)
        buf += view[pos : pos + take]
        pos += take
        if take < want:
            return pos
        self._buf = bytearray()  # hand ``buf`` over: views of it stay valid
        if buf[-1] != FRAME_END:
            raise FrameError(f"bad frame-end octet {buf[-1]:#04x}")
        self._dispatch(kind, channel, memoryview(buf)[7:-1], sink)
        return pos

    def _dispatch(self, kind: int, channel: int, payload: memoryview, sink: Any) -> None:
        if kind == FRAME_METHOD:
            sink.on_method(channel, self._decode(payload))
        elif kind == FRAME_HEADER:
            if len(payload) < 14:
                raise FrameError("content header frame is truncated")
            class_id, _weight, body_size = _HEADER_ARGS.unpack_from(payload, 0)
            sink.on_header(channel, class_id, body_size, bytes(payload[12:]))
        elif kind == FRAME_HEARTBEAT:
            if channel != 0 or len(payload):
                raise FrameError("heartbeat frame on a channel or with a payload")
            sink.on_heartbeat()
        else:
            raise FrameError(f"unknown frame type {kind}")


# --------------------------------------------------------------------------
# encoding


def encode_method_frame(channel: int, method: Method) -> bytes:
    """One complete method frame."""
    payload = method.encode()
    return _FRAME_HEAD.pack(FRAME_METHOD, channel, len(payload)) + payload + _END


def encode_content_frames(
    channel: int,
    class_id: int,
    body: Buffer,
    properties: bytes,
    frame_max: int,
    out: list[Buffer],
) -> None:
    """Append the content header and body frames for ``body`` to ``out``.

    Bodies larger than a frame are split into ``memoryview`` slices of the
    caller's buffer: nothing is copied here.
    """
    # Bytes, not items, for array-like buffers.
    size = len(body) if type(body) is bytes else memoryview(body).nbytes
    limit = frame_max or _UNLIMITED
    if 12 + len(properties) + 8 > limit:
        raise InvalidArgument(
            f"message properties ({len(properties)} bytes) do not fit in frame_max {frame_max}"
        )
    if limit <= 8:
        raise InvalidArgument(f"frame_max {frame_max} is too small")
    chunk = limit - 8
    if 0 < size <= chunk:  # one body frame: its head goes with the header
        if properties == _NO_PROPERTIES:
            out.append(_BARE_CONTENT_HEAD.pack(FRAME_HEADER, channel, 14, class_id, 0, size, 0,
                                               FRAME_END, FRAME_BODY, channel, size))
        else:
            out.append(_CONTENT_HEAD.pack(FRAME_HEADER, channel, 12 + len(properties), class_id, 0, size)
                       + properties + _END_AND_BODY_HEAD.pack(FRAME_END, FRAME_BODY, channel, size))
        out.append(body)
        out.append(_END)
        return
    out.append(
        _CONTENT_HEAD.pack(FRAME_HEADER, channel, 12 + len(properties), class_id, 0, size)
        + properties
        + _END
    )
    if not size:
        return
    view = body if isinstance(body, memoryview) else memoryview(body)
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    head = _FRAME_HEAD.pack(FRAME_BODY, channel, chunk)
    for start in range(0, size, chunk):
        piece = view[start : start + chunk]
        out.append(
            head if len(piece) == chunk else _FRAME_HEAD.pack(FRAME_BODY, channel, len(piece))
        )
        out.append(piece)
        out.append(_END)
