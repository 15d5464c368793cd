"""The 14 ``basic`` content properties (the content header's property list)."""

from __future__ import annotations

import datetime
import math
import struct
from collections.abc import Mapping
from typing import Any

from ..exceptions import FrameError, InvalidArgument
from ._primitives import Buffer, encode_shortstr, read_shortstr
from .table import decode_table, encode_named_table

__all__ = ["Properties", "DeliveryMode", "NO_PROPERTIES"]

#: The encoded property list of a message without properties (no flag set).
NO_PROPERTIES = b"\x00\x00"

_H = struct.Struct(">H")
OCTET = struct.Struct(">B")
_Q = struct.Struct(">Q")
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


class DeliveryMode:
    """Values of :attr:`Properties.delivery_mode`."""

    TRANSIENT = 1
    PERSISTENT = 2


# (attribute, kind, flag bit) in wire order.
_FIELDS: tuple[tuple[str, str, int], ...] = (
    ("content_type", "shortstr", 1 << 15),
    ("content_encoding", "shortstr", 1 << 14),
    ("headers", "table", 1 << 13),
    ("delivery_mode", "octet", 1 << 12),
    ("priority", "octet", 1 << 11),
    ("correlation_id", "shortstr", 1 << 10),
    ("reply_to", "shortstr", 1 << 9),
    ("expiration", "shortstr", 1 << 8),
    ("message_id", "shortstr", 1 << 7),
    ("timestamp", "timestamp", 1 << 6),
    ("type", "shortstr", 1 << 5),
    ("user_id", "shortstr", 1 << 4),
    ("app_id", "shortstr", 1 << 3),
    ("cluster_id", "shortstr", 1 << 2),
)


class Properties:
    """Message properties; every field is optional (``None`` = absent).

    ``headers`` is a dict of field-table values (see :mod:`aiorabbit.codec.table`),
    ``timestamp`` a :class:`datetime.datetime` (naive values are taken as UTC),
    ``delivery_mode`` 1 (transient) or 2 (persistent), ``priority`` 0-255 and
    ``expiration`` a per-message TTL in milliseconds, as a string (an
    ``int`` is converted).  Every other string property must be a ``str``:
    anything else (``bytes`` included) is an :class:`~aiorabbit.InvalidArgument`
    naming the property when it is encoded.

    A received string property (or header key) that is not UTF-8 decodes
    with the ``surrogateescape`` error handler, so that such a message never
    fails to decode: ``value.encode("utf-8", "surrogateescape")`` gives the
    raw bytes back, and the value is sent as those same bytes again.
    """

    __slots__ = tuple(name for name, _, _ in _FIELDS)

    content_type: str | None
    content_encoding: str | None
    headers: dict[str, Any] | None
    delivery_mode: int | None
    priority: int | None
    correlation_id: str | None
    reply_to: str | None
    expiration: str | None
    message_id: str | None
    timestamp: datetime.datetime | None
    type: str | None
    user_id: str | None
    app_id: str | None
    cluster_id: str | None

    def __init__(
        self,
        *,
        content_type: str | None = None,
        content_encoding: str | None = None,
        headers: Mapping[str, Any] | None = None,
        delivery_mode: int | None = None,
        priority: int | None = None,
        correlation_id: str | None = None,
        reply_to: str | None = None,
        expiration: str | None = None,
        message_id: str | None = None,
        timestamp: datetime.datetime | None = None,
        type: str | None = None,  # noqa: A002 - the AMQP property name
        user_id: str | None = None,
        app_id: str | None = None,
        cluster_id: str | None = None,
    ) -> None:
        self.content_type = content_type
        self.content_encoding = content_encoding
        if headers is None:
            self.headers = None
        else:
            try:
                self.headers = dict(headers)
            except (TypeError, ValueError):
                raise InvalidArgument(
                    f"headers must be a dict, not {headers.__class__.__name__}"
                ) from None
        self.delivery_mode = delivery_mode
        self.priority = priority
        self.correlation_id = correlation_id
        self.reply_to = reply_to
        self.expiration = expiration
        self.message_id = message_id
        self.timestamp = timestamp
        self.type = type
        self.user_id = user_id
        self.app_id = app_id
        self.cluster_id = cluster_id

    def as_dict(self) -> dict[str, Any]:
        """The fields that are set, by name."""
        return {
            name: getattr(self, name)
            for name, _, _ in _FIELDS
            if getattr(self, name) is not None
        }

    def replace(self, **changes: Any) -> Properties:
        """A copy with ``changes`` applied (``None`` unsets a field); an
        unknown field name raises ``TypeError``."""
        fields = self.as_dict()
        fields.update(changes)
        return Properties(**fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Properties):
            return NotImplemented
        return self.as_dict() == other.as_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items())
        return f"Properties({fields})"

    def encode(self) -> bytes:
        """The property flags and values, as they follow a content header."""
        flags = 0
        out: list[bytes] = [b""]
        for name, kind, bit in _FIELDS:
            value = getattr(self, name)
            if value is None:
                continue
            flags |= bit
            if kind == "shortstr":
                if type(value) is not str:
                    value = _not_a_str(name, value)
                out.append(encode_shortstr(value, name))
            elif kind == "octet":
                if type(value) is not int or not 0 <= value <= 255:
                    value = _octet(name, value)
                out.append(OCTET.pack(value))
            elif kind == "table":
                out.append(encode_named_table(value, name) if value else b"\x00\x00\x00\x00")
            else:
                out.append(_encode_timestamp(value))
        out[0] = _H.pack(flags)
        return b"".join(out)

    @classmethod
    def decode(cls, data: Buffer) -> Properties:
        """Decode the property flags and values from ``data``."""
        try:
            return cls._decode(data)
        except (IndexError, struct.error, UnicodeDecodeError) as exc:
            raise FrameError(f"malformed content properties: {exc}") from None

    @classmethod
    def _decode(cls, data: Buffer) -> Properties:
        self = cls.__new__(cls)
        (flags,) = _H.unpack_from(data, 0)
        offset = 2
        if flags & 1:
            raise FrameError("property flags continuation is not used by basic")
        for name, kind, bit in _FIELDS:
            if not flags & bit:
                setattr(self, name, None)
                continue
            value: Any
            if kind == "shortstr":
                value, offset = read_shortstr(data, offset)
            elif kind == "octet":
                value = data[offset]
                offset += 1
            elif kind == "table":
                value, offset = decode_table(data, offset)
            else:
                (seconds,) = _Q.unpack_from(data, offset)
                offset += 8
                try:
                    value = _EPOCH + datetime.timedelta(seconds=seconds)
                except OverflowError:
                    raise FrameError(f"timestamp {seconds} out of range") from None
            setattr(self, name, value)
        if offset != len(data):
            raise FrameError(f"{len(data) - offset} trailing bytes after properties")
        return self


def _not_a_str(name: str, value: Any) -> str:
    """A string property that is not exactly a ``str``: a ``str`` subclass
    as is, an ``int`` expiration (a common slip) as its decimal digits; any
    other type is an error (``bytes`` would otherwise be sent as ``"b'...'"``)."""
    if isinstance(value, str):
        return value
    if name == "expiration" and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    hint = " (decode it first)" if isinstance(value, (bytes, bytearray, memoryview)) else ""
    raise InvalidArgument(f"{name} must be a str, not {type(value).__name__}{hint}")


def _octet(name: str, value: Any) -> int:
    """An octet property that is not a plain ``int`` 0-255: an ``int``
    subclass (``IntEnum``) in range is fine, ``bool`` and the rest are not."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 255:
        return int(value)
    raise InvalidArgument(f"{name} must be an int 0-255, not {value!r}")


def _encode_timestamp(value: Any) -> bytes:
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        seconds = int((value - _EPOCH).total_seconds())
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidArgument(f"timestamp must be a finite number, not {value!r}")
        seconds = int(value)
    else:
        raise InvalidArgument(f"timestamp must be a datetime, not {value!r}")
    if not 0 <= seconds < 2**64:
        raise InvalidArgument(f"timestamp {value!r} is outside the AMQP range (1970 onwards)")
    return _Q.pack(seconds)


EMPTY_PROPERTIES = b"\x00\x00"
"""Encoded :class:`Properties` with no field set."""
