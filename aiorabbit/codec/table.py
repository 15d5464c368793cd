"""AMQP field tables and arrays (RabbitMQ's dialect).

Type tags and their Python types (decode -> encode is byte-identical):

====  ==========================  ============================================
tag   wire type                   Python type
====  ==========================  ============================================
t     boolean                     ``bool``
b     signed 8-bit                ``int`` (or :class:`Int8`)
B     unsigned 8-bit              :class:`UInt8`
s     signed 16-bit               ``int`` (or :class:`Int16`)
u     unsigned 16-bit             ``int`` (or :class:`UInt16`)
I     signed 32-bit               ``int`` (or :class:`Int32`)
i     unsigned 32-bit             ``int`` (or :class:`UInt32`)
l     signed 64-bit               ``int`` (or :class:`Int64`)
f     float (32-bit)              :class:`Float32`
d     double                      ``float``
D     decimal                     ``decimal.Decimal``
S     long string                 ``str`` (``bytes`` if not valid UTF-8)
x     byte array                  ``bytearray``
T     timestamp                   ``datetime.datetime`` (UTC)
F     nested table                ``dict``
A     array                       ``list``
V     void                        ``None``
====  ==========================  ============================================

Keys are short strings: one that is not UTF-8 decodes with the
``surrogateescape`` error handler (``key.encode("utf-8", "surrogateescape")``
gives its bytes back, and encoding the key sends those bytes again).  Tables
and arrays nest at most :data:`MAX_DEPTH` deep.

A plain ``int`` is written with the smallest tag that holds it (b, s, u, I,
i, l in that order), so a decoded plain ``int`` always re-encodes to its own
tag; a value whose tag differs from that choice is decoded as the matching
int subclass, which remembers its tag.
"""

from __future__ import annotations

import datetime
import decimal
import struct
from collections.abc import Mapping, Sequence
from typing import Any, Union

from ..exceptions import FrameError, InvalidArgument

__all__ = [
    "FieldValue",
    "FieldTable",
    "MAX_DEPTH",
    "Int8",
    "UInt8",
    "Int16",
    "UInt16",
    "Int32",
    "UInt32",
    "Int64",
    "Float32",
    "encode_table",
    "decode_table",
    "encode_value",
    "decode_value",
]


class _TaggedInt(int):
    """An ``int`` that is written with one fixed field-table tag."""

    tag: bytes = b""
    fmt: struct.Struct = struct.Struct(">b")

    def __new__(cls, value: int = 0) -> _TaggedInt:
        self = super().__new__(cls, value)
        try:
            cls.fmt.pack(self)
        except struct.error:
            raise InvalidArgument(f"{value} does not fit {cls.__name__}") from None
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}({int(self)})"


class Int8(_TaggedInt):
    """Signed 8-bit table integer (tag ``b``)."""

    tag = b"b"
    fmt = struct.Struct(">b")


class UInt8(_TaggedInt):
    """Unsigned 8-bit table integer (tag ``B``)."""

    tag = b"B"
    fmt = struct.Struct(">B")


class Int16(_TaggedInt):
    """Signed 16-bit table integer (tag ``s``)."""

    tag = b"s"
    fmt = struct.Struct(">h")


class UInt16(_TaggedInt):
    """Unsigned 16-bit table integer (tag ``u``)."""

    tag = b"u"
    fmt = struct.Struct(">H")


class Int32(_TaggedInt):
    """Signed 32-bit table integer (tag ``I``)."""

    tag = b"I"
    fmt = struct.Struct(">i")


class UInt32(_TaggedInt):
    """Unsigned 32-bit table integer (tag ``i``)."""

    tag = b"i"
    fmt = struct.Struct(">I")


class Int64(_TaggedInt):
    """Signed 64-bit table integer (tag ``l``)."""

    tag = b"l"
    fmt = struct.Struct(">q")


class Float32(float):
    """A 32-bit float table value (tag ``f``); plain ``float`` is a double."""

    def __repr__(self) -> str:
        return f"Float32({float(self)!r})"


FieldValue = Union[
    bool,
    int,
    float,
    decimal.Decimal,
    str,
    bytes,
    bytearray,
    datetime.datetime,
    "FieldTable",
    "list[Any]",
    None,
]
FieldTable = Mapping[str, Any]

#: The most tables and arrays that may nest inside one another (the
#: outermost table counts as one), encoding or decoding: a deeper one is an
#: :class:`~aiorabbit.InvalidArgument` (encoding: a table that contains
#: itself ends here) or a :class:`~aiorabbit.FrameError` (decoding), never a
#: ``RecursionError``.
MAX_DEPTH = 100

OCTET = struct.Struct(">B")
_b = struct.Struct(">b")
_h = struct.Struct(">h")
_H = struct.Struct(">H")
_i = struct.Struct(">i")
LONG = struct.Struct(">I")
_q = struct.Struct(">q")
_Q = struct.Struct(">Q")
_f = struct.Struct(">f")
_d = struct.Struct(">d")
_DEC = struct.Struct(">Bi")
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)

# Integer tags in the order a plain int picks them: the smallest that fits.
_INT_CHOICE = (
    (-(2**7), 2**7 - 1, b"b", _b),
    (-(2**15), 2**15 - 1, b"s", _h),
    (0, 2**16 - 1, b"u", _H),
    (-(2**31), 2**31 - 1, b"I", _i),
    (0, 2**32 - 1, b"i", LONG),
    (-(2**63), 2**63 - 1, b"l", _q),
)
_INT_TAG_CLASS: dict[bytes, type[_TaggedInt]] = {
    b"b": Int8,
    b"B": UInt8,
    b"s": Int16,
    b"u": UInt16,
    b"I": Int32,
    b"i": UInt32,
    b"l": Int64,
}


def _int_tag(value: int) -> bytes:
    for low, high, tag, _ in _INT_CHOICE:
        if low <= value <= high:
            return tag
    raise InvalidArgument(f"integer {value} does not fit a 64-bit table field")


def _encode_int(value: int, out: list[bytes]) -> None:
    for low, high, tag, fmt in _INT_CHOICE:
        if low <= value <= high:
            out.append(tag)
            out.append(fmt.pack(value))
            return
    raise InvalidArgument(f"integer {value} does not fit a 64-bit table field")


def _encode_decimal(value: decimal.Decimal, out: list[bytes]) -> None:
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise InvalidArgument(f"cannot encode {value} as an AMQP decimal")
    mantissa = int("".join(map(str, digits)) or "0")
    if exponent > 0:
        mantissa *= 10 ** min(exponent, 10)  # more overflows anyway; 10**1e9 hangs
        exponent = 0
    scale = -exponent
    if sign:
        mantissa = -mantissa
    if scale > 255 or not -(2**31) <= mantissa < 2**31:
        raise InvalidArgument(f"decimal {value} does not fit scale:8 value:32")
    out.append(b"D")
    out.append(_DEC.pack(scale, mantissa))


def _encode_timestamp(value: datetime.datetime, out: list[bytes]) -> None:
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    seconds = int((value - _EPOCH).total_seconds())
    if seconds < 0:
        raise InvalidArgument(f"timestamp {value} is before 1970 (AMQP stores unsigned)")
    out.append(b"T")
    out.append(_Q.pack(seconds))


def _encode_str(value: str, what: str) -> bytes:
    """``value`` as UTF-8, where the strict codec failed."""
    try:
        # A name decoded from non-UTF-8 bytes (its raw bytes are escaped as
        # U+DC80-U+DCFF) is sent back as those bytes.
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as exc:
        raise InvalidArgument(
            f"{what} is not encodable as UTF-8: it holds the lone surrogate "
            f"U+{ord(value[exc.start]):04X} at index {exc.start}"
        ) from None


def _too_deep(path: str) -> InvalidArgument:
    if len(path) > 120:  # a table that contains itself: "a.a.a.a..."
        path = f"{path[:60]}...{path[-40:]}"
    return InvalidArgument(
        f"field table value {path or '(the table itself)'} is nested too deeply "
        f"(more than {MAX_DEPTH} tables/arrays: does a table or list contain itself?)"
    )


def _encode_value(value: Any, out: list[bytes], path: str, depth: int) -> None:
    """Append the tagged encoding of ``value`` to ``out``; ``depth`` is the
    number of tables and arrays around it."""
    cls = type(value)
    if cls is str:
        try:
            raw = value.encode("utf-8")
        except UnicodeEncodeError:
            raw = _encode_str(value, f"field table value {path or 'value'}")
        out.append(b"S")
        out.append(LONG.pack(len(raw)))
        out.append(raw)
    elif cls is bool:
        out.append(b"t\x01" if value else b"t\x00")
    elif cls is int:
        _encode_int(value, out)
    elif value is None:
        out.append(b"V")
    elif isinstance(value, _TaggedInt):
        out.append(value.tag)
        out.append(value.fmt.pack(value))
    elif cls is Float32:
        try:
            packed = _f.pack(value)
        except OverflowError:
            raise InvalidArgument(f"{path or 'value'}={value!r} does not fit a 32-bit float") from None
        out.append(b"f")
        out.append(packed)
    elif isinstance(value, float):
        out.append(b"d")
        out.append(_d.pack(value))
    elif isinstance(value, Mapping):
        if depth >= MAX_DEPTH:
            raise _too_deep(path)
        out.append(b"F")
        _encode_table(value, out, path, depth + 1)
    elif isinstance(value, (list, tuple)):
        if depth >= MAX_DEPTH:
            raise _too_deep(path)
        out.append(b"A")
        _encode_array(value, out, path, depth + 1)
    else:
        _encode_other(value, out, path, depth)


def _encode_other(value: Any, out: list[bytes], path: str, depth: int) -> None:
    """The rarer value types (byte arrays, timestamps, decimals, subclasses)."""
    if isinstance(value, bytearray):
        out.append(b"x")
        out.append(LONG.pack(len(value)))
        out.append(bytes(value))
    elif isinstance(value, (bytes, memoryview)):
        raw = bytes(value)  # len() of a memoryview counts items, not bytes
        out.append(b"S")
        out.append(LONG.pack(len(raw)))
        out.append(raw)
    elif isinstance(value, datetime.datetime):
        _encode_timestamp(value, out)
    elif isinstance(value, decimal.Decimal):
        _encode_decimal(value, out)
    elif isinstance(value, str):
        _encode_value(str(value), out, path, depth)
    elif isinstance(value, int):  # bool already handled; IntEnum and friends
        _encode_int(int(value), out)
    else:
        raise InvalidArgument(
            f"cannot encode {path or 'value'} of type {type(value).__name__} in an AMQP "
            "field table"
        )


def _encode_table(table: Mapping[str, Any], out: list[bytes], path: str, depth: int) -> None:
    size_at = len(out)
    out.append(b"")  # placeholder for the length prefix
    for key, value in table.items():
        if not isinstance(key, str):
            raise InvalidArgument(f"field table key {key!r} in {path or 'the table'} is not a str")
        try:
            raw = key.encode("utf-8")
        except UnicodeEncodeError:
            raw = _encode_str(key, f"field table key {key!r} in {path or 'the table'}")
        if len(raw) > 255:
            raise InvalidArgument(f"table key {path + '.' if path else ''}{key[:40]!r}... exceeds 255 bytes")
        out.append(OCTET.pack(len(raw)))
        out.append(raw)
        _encode_value(value, out, f"{path}.{key}" if path else key, depth)
    size = sum(len(part) for part in out[size_at + 1 :])
    out[size_at] = LONG.pack(size)


def _encode_array(items: Sequence[Any], out: list[bytes], path: str, depth: int) -> None:
    size_at = len(out)
    out.append(b"")
    for index, value in enumerate(items):
        _encode_value(value, out, f"{path}[{index}]", depth)
    size = sum(len(part) for part in out[size_at + 1 :])
    out[size_at] = LONG.pack(size)


def encode_table(table: Mapping[str, Any] | None) -> bytes:
    """Encode a field table with its 32-bit length prefix.

    Raises :class:`~aiorabbit.InvalidArgument` naming the offending key for a
    value that has no AMQP encoding, a string that is not UTF-8 (a lone
    surrogate), or tables and arrays nested more than :data:`MAX_DEPTH` deep
    (a table that contains itself among them).
    """
    if not table:
        return b"\x00\x00\x00\x00"
    out: list[bytes] = []
    try:
        _encode_table(table, out, "", 1)
    except AttributeError:  # no .items()
        if not isinstance(table, Mapping):
            raise InvalidArgument(f"a field table must be a dict, not {type(table).__name__}") from None
        raise
    return b"".join(out)


def encode_named_table(table: Mapping[str, Any], name: str) -> bytes:
    """:func:`encode_table` of a non-empty table whose keys are reported as
    ``name.key`` in errors (the properties name theirs ``headers``)."""
    out: list[bytes] = []
    try:
        _encode_table(table, out, "", 1)
        return b"".join(out)
    except InvalidArgument:
        pass
    except AttributeError:  # no .items()
        if not isinstance(table, Mapping):
            raise InvalidArgument(f"{name} must be a dict, not {type(table).__name__}") from None
        raise
    # Again with the key paths under ``name`` (not built on the way to
    # success: an f-string per key is a cost on every publish), outside the
    # handler so that one error shows: it fails the same way, naming the key
    # as name.key.
    _encode_table(table, [], name, 1)
    raise InvalidArgument(f"{name} cannot be encoded")  # pragma: no cover - raised above


def encode_value(value: Any) -> bytes:
    """Encode one tagged field value (tag octet followed by the value)."""
    out: list[bytes] = []
    _encode_value(value, out, "", 0)
    return b"".join(out)


# --------------------------------------------------------------------------
# decoding


def _need(data: bytes | bytearray | memoryview, offset: int, size: int, end: int) -> None:
    if offset + size > end:
        raise FrameError("field table truncated")


def decode_value(data: bytes | bytearray | memoryview, offset: int, end: int) -> tuple[Any, int]:
    """Decode one tagged value at ``offset``; return ``(value, new_offset)``.

    Malformed input, including tables and arrays nested more than
    :data:`MAX_DEPTH` deep, raises :class:`~aiorabbit.FrameError`.
    """
    try:
        return _decode_value(data, offset, end, 0)
    except (IndexError, struct.error):
        raise FrameError("field value truncated") from None
    except RecursionError:  # MAX_DEPTH is checked; this is a backstop
        raise FrameError("field tables nested too deeply") from None


def _too_deep_frame() -> FrameError:
    return FrameError(f"field tables nested too deeply (more than {MAX_DEPTH} tables/arrays)")


def _decode_value(
    data: bytes | bytearray | memoryview, offset: int, end: int, depth: int
) -> tuple[Any, int]:
    _need(data, offset, 1, end)
    tag = data[offset]
    offset += 1
    if tag == 0x53:  # S
        _need(data, offset, 4, end)
        (size,) = LONG.unpack_from(data, offset)
        offset += 4
        _need(data, offset, size, end)
        raw = bytes(data[offset : offset + size])
        try:
            return raw.decode("utf-8"), offset + size
        except UnicodeDecodeError:
            return raw, offset + size
    if tag == 0x74:  # t
        _need(data, offset, 1, end)
        return data[offset] != 0, offset + 1
    if tag == 0x46:  # F
        if depth >= MAX_DEPTH:
            raise _too_deep_frame()
        return _decode_table(data, offset, end, depth + 1)
    if tag == 0x41:  # A
        if depth >= MAX_DEPTH:
            raise _too_deep_frame()
        return _decode_array(data, offset, end, depth + 1)
    if tag == 0x56:  # V
        return None, offset
    int_cls = _INT_TAG_CLASS.get(bytes((tag,)))
    if int_cls is not None:
        fmt = int_cls.fmt
        _need(data, offset, fmt.size, end)
        (number,) = fmt.unpack_from(data, offset)
        offset += fmt.size
        if _int_tag(number) == int_cls.tag:
            return number, offset
        return int_cls(number), offset
    return _decode_other(tag, data, offset, end)


def _decode_other(tag: int, data: bytes | bytearray | memoryview, offset: int, end: int) -> tuple[Any, int]:
    """The rarer value types (floats, decimals, timestamps, byte arrays)."""
    if tag == 0x64:  # d
        _need(data, offset, 8, end)
        return _d.unpack_from(data, offset)[0], offset + 8
    if tag == 0x66:  # f
        _need(data, offset, 4, end)
        return Float32(_f.unpack_from(data, offset)[0]), offset + 4
    if tag == 0x44:  # D
        _need(data, offset, 5, end)
        scale, mantissa = _DEC.unpack_from(data, offset)
        sign = 1 if mantissa < 0 else 0
        digits = tuple(int(c) for c in str(abs(mantissa)))
        return decimal.Decimal((sign, digits, -scale)), offset + 5
    if tag == 0x54:  # T
        _need(data, offset, 8, end)
        (seconds,) = _Q.unpack_from(data, offset)
        try:
            stamp = _EPOCH + datetime.timedelta(seconds=seconds)
        except OverflowError:
            raise FrameError(f"timestamp {seconds} out of range") from None
        return stamp, offset + 8
    if tag == 0x78:  # x
        _need(data, offset, 4, end)
        (size,) = LONG.unpack_from(data, offset)
        offset += 4
        _need(data, offset, size, end)
        return bytearray(data[offset : offset + size]), offset + size
    raise FrameError(f"unknown field table type tag {bytes((tag,))!r}")


def _decode_table(
    data: bytes | bytearray | memoryview, offset: int, end: int, depth: int
) -> tuple[dict[str, Any], int]:
    _need(data, offset, 4, end)
    (size,) = LONG.unpack_from(data, offset)
    offset += 4
    stop = offset + size
    if stop > end:
        raise FrameError("field table longer than its frame")
    table: dict[str, Any] = {}
    while offset < stop:
        key_len = data[offset]
        offset += 1
        _need(data, offset, key_len, stop)
        # Lenient, like every short string: bytes that are not UTF-8 decode
        # to lone surrogates that encode back to the same bytes.
        key = str(data[offset : offset + key_len], "utf-8", "surrogateescape")
        offset += key_len
        table[key], offset = _decode_value(data, offset, stop, depth)
    return table, stop


def _decode_array(
    data: bytes | bytearray | memoryview, offset: int, end: int, depth: int
) -> tuple[list[Any], int]:
    _need(data, offset, 4, end)
    (size,) = LONG.unpack_from(data, offset)
    offset += 4
    stop = offset + size
    if stop > end:
        raise FrameError("field array longer than its frame")
    items: list[Any] = []
    while offset < stop:
        value, offset = _decode_value(data, offset, stop, depth)
        items.append(value)
    return items, stop


def decode_table(
    data: bytes | bytearray | memoryview, offset: int = 0, end: int | None = None
) -> tuple[dict[str, Any], int]:
    """Decode a length-prefixed field table; return ``(table, new_offset)``.

    Malformed input, including tables and arrays nested more than
    :data:`MAX_DEPTH` deep, raises :class:`~aiorabbit.FrameError`.  A key
    that is not UTF-8 decodes with the ``surrogateescape`` error handler:
    ``key.encode("utf-8", "surrogateescape")`` gives its bytes back.
    """
    try:
        return _decode_table(data, offset, len(data) if end is None else end, 1)
    except (IndexError, struct.error):
        raise FrameError("field table truncated") from None
    except RecursionError:  # MAX_DEPTH is checked; this is a backstop
        raise FrameError("field tables nested too deeply") from None
