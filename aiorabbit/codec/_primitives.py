"""Primitive field codecs shared by the generated method classes."""

from __future__ import annotations

import struct
from typing import Any, ClassVar, Union

from ..exceptions import FrameError, InvalidArgument

Buffer = Union[bytes, bytearray, memoryview]
"""Anything the decoders read from."""

_B = struct.Struct(">B")
_I = struct.Struct(">I")


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


def _pack(fmt: str, names: tuple[str, ...], *values: Any) -> bytes:
    try:
        return struct.pack(fmt, *values)
    except struct.error:
        raise InvalidArgument(
            f"{', '.join(names)}={values!r} out of range for AMQP field(s) {fmt[1:]}"
        ) from None


def _unpack(fmt: str, data: Buffer, offset: int) -> tuple[Any, ...]:
    return struct.unpack_from(fmt, data, offset)


def _shortstr(value: str, name: str) -> bytes:
    if not isinstance(value, str):
        raise InvalidArgument(f"{name} must be a str, not {type(value).__name__}")
    raw = value.encode("utf-8")
    if len(raw) > 255:
        raise InvalidArgument(f"{name} is {len(raw)} bytes long; AMQP allows 255")
    return _B.pack(len(raw)) + raw


def _longstr(value: bytes | str) -> bytes:
    if isinstance(value, str):
        raw = value.encode("utf-8")
    elif isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
    else:
        raise InvalidArgument(f"long string must be str or bytes, not {type(value).__name__}")
    return _I.pack(len(raw)) + raw


def _read_shortstr(data: Buffer, offset: int) -> tuple[str, int]:
    size = data[offset]
    start = offset + 1
    stop = start + size
    if stop > len(data):
        raise FrameError("short string runs past the end of its frame")
    return str(data[start:stop], "utf-8"), stop


def _read_longstr(data: Buffer, offset: int) -> tuple[bytes, int]:
    (size,) = _I.unpack_from(data, offset)
    start = offset + 4
    stop = start + size
    if stop > len(data):
        raise FrameError("long string runs past the end of its frame")
    return bytes(data[start:stop]), stop
