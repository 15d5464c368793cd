"""Primitive field codecs shared by the generated method classes."""

from __future__ import annotations

import struct
from typing import Any, ClassVar, Union

from ..exceptions import FrameError, InvalidArgument

Buffer = Union[bytes, bytearray, memoryview]
"""Anything the decoders read from."""

OCTET = struct.Struct(">B")
LONG = struct.Struct(">I")


class Method:
    """Base of every generated AMQP method class."""

    __slots__ = ()
    NAME: ClassVar[str] = ""
    CLASS_ID: ClassVar[int] = 0
    METHOD_ID: ClassVar[int] = 0
    INDEX: ClassVar[int] = 0
    SYNCHRONOUS: ClassVar[bool] = False
    CONTENT: ClassVar[bool] = False
    FIELDS: ClassVar[tuple[str, ...]] = ()
    RESPONSES: ClassVar[tuple[type[Method], ...]] = ()

    def encode(self) -> bytes:  # pragma: no cover - every subclass overrides
        """The method frame payload."""
        raise NotImplementedError

    @classmethod
    def decode(cls, data: Buffer) -> Method:  # pragma: no cover - overridden
        """Decode the arguments that follow the class and method ids."""
        raise NotImplementedError

    def as_dict(self) -> dict[str, Any]:
        """The arguments as a dict (for logs and tests)."""
        return {name: getattr(self, name) for name in self.FIELDS}

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self.as_dict() == other.as_dict()

    def __hash__(self) -> int:
        return hash(self.INDEX)

    def __repr__(self) -> str:
        args = ", ".join(
            f"{name}={'<redacted>' if name in _SECRET else repr(value)}"
            for name, value in self.as_dict().items()
        )
        return f"<{self.NAME} {args}>"


# Fields that may hold a password or a token: never shown in a repr.
_SECRET = frozenset({"response", "new_secret", "challenge"})


def pack_fields(fmt: str, names: tuple[str, ...], *values: Any) -> bytes:
    try:
        return struct.pack(fmt, *values)
    except struct.error:
        raise InvalidArgument(
            f"{', '.join(names)}={values!r} out of range for AMQP field(s) {fmt[1:]}"
        ) from None


def unpack_fields(fmt: str, data: Buffer, offset: int) -> tuple[Any, ...]:
    return struct.unpack_from(fmt, data, offset)


def encode_shortstr(value: str, name: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidArgument(f"{name} must be a str, not {type(value).__name__}")
    try:
        raw = value.encode("utf-8")
    except UnicodeEncodeError:
        raw = _encode_escaped(value, name)
    if len(raw) > 255:
        raise InvalidArgument(f"{name} is {len(raw)} bytes long; AMQP allows 255")
    return OCTET.pack(len(raw)) + raw


def _encode_escaped(value: str, name: str) -> bytes:
    """``value`` encoded as UTF-8 where the strict codec failed: a string
    decoded from non-UTF-8 bytes (see :func:`read_shortstr`) gets its raw
    bytes back; any other lone surrogate is an :class:`InvalidArgument`."""
    try:
        return value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError as exc:
        bad = value[exc.start]
        raise InvalidArgument(
            f"{name} is not encodable as UTF-8: it holds the lone surrogate "
            f"U+{ord(bad):04X} at index {exc.start}"
        ) from None


def encode_longstr(value: bytes | str) -> bytes:
    if isinstance(value, str):
        try:
            raw = value.encode("utf-8")
        except UnicodeEncodeError:
            raw = _encode_escaped(value, "long string")
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
    else:
        raise InvalidArgument(f"long string must be str or bytes, not {type(value).__name__}")
    return LONG.pack(len(raw)) + raw


def read_shortstr(data: Buffer, offset: int) -> tuple[str, int]:
    size = data[offset]
    start = offset + 1
    stop = start + size
    if stop > len(data):
        raise FrameError("short string runs past the end of its frame")
    # Lenient: a name another client wrote as non-UTF-8 bytes must not make a
    # delivery undecodable (it would be redelivered, and fail, for ever).
    # Such bytes decode to lone surrogates U+DC80-U+DCFF, which
    # ``s.encode("utf-8", "surrogateescape")`` (and :func:`encode_shortstr`) turn
    # back into the same bytes.
    return str(data[start:stop], "utf-8", "surrogateescape"), stop


def read_longstr(data: Buffer, offset: int) -> tuple[bytes, int]:
    (size,) = LONG.unpack_from(data, offset)
    start = offset + 4
    stop = start + size
    if stop > len(data):
        raise FrameError("long string runs past the end of its frame")
    return bytes(data[start:stop]), stop
