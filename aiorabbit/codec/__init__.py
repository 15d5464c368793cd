"""The sans-I/O AMQP 0-9-1 codec: bytes in, frames out.

Nothing in this package imports asyncio, socket or ssl; it can be driven by
any I/O layer (and is, by the tests, with plain bytes).
"""

from __future__ import annotations

from . import methods
from ._primitives import Buffer, Method
from .frames import (
    FRAME_BODY,
    FRAME_END,
    FRAME_HEADER,
    FRAME_HEARTBEAT,
    FRAME_METHOD,
    FRAME_MIN_SIZE,
    HEARTBEAT_FRAME,
    PROTOCOL_HEADER,
    BodyFrame,
    Frame,
    FrameParser,
    FrameSink,
    HeaderFrame,
    HeartbeatFrame,
    MethodFrame,
    decode_method,
    encode_content_frames,
    encode_method_frame,
)
from .properties import NO_PROPERTIES, DeliveryMode, Properties
from .table import (
    Float32,
    Int8,
    Int16,
    Int32,
    Int64,
    UInt8,
    UInt16,
    UInt32,
    decode_table,
    decode_value,
    encode_table,
    encode_value,
)

__all__ = [
    "methods",
    "Buffer",
    "Method",
    "FRAME_BODY",
    "FRAME_END",
    "FRAME_HEADER",
    "FRAME_HEARTBEAT",
    "FRAME_METHOD",
    "FRAME_MIN_SIZE",
    "HEARTBEAT_FRAME",
    "PROTOCOL_HEADER",
    "BodyFrame",
    "Frame",
    "FrameParser",
    "FrameSink",
    "HeaderFrame",
    "HeartbeatFrame",
    "MethodFrame",
    "decode_method",
    "encode_content_frames",
    "encode_method_frame",
    "NO_PROPERTIES",
    "DeliveryMode",
    "Properties",
    "Float32",
    "Int8",
    "Int16",
    "Int32",
    "Int64",
    "UInt8",
    "UInt16",
    "UInt32",
    "decode_table",
    "decode_value",
    "encode_table",
    "encode_value",
]
