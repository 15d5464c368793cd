"""Typed ``KEY=VALUE`` / ``KEY:TYPE=VALUE`` items for headers and arguments."""

from __future__ import annotations

import datetime
import decimal
import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from ..codec.table import Float32, Int8, Int16, Int32, Int64, UInt8, UInt16, UInt32
from ..exceptions import InvalidArgument
from .errors import CliError

__all__ = ["ARGUMENT_TYPES", "TYPES", "parse_bool", "parse_item", "parse_items", "parse_timestamp"]

Converter = Callable[[str], Any]

_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")


def parse_bool(raw: str) -> bool:
    """``true``/``yes``/``on``/``1`` or ``false``/``no``/``off``/``0``."""
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"not a boolean: {raw!r}")


def parse_timestamp(raw: str) -> datetime.datetime:
    """``now``, seconds since the epoch, or an ISO 8601 date-time (UTC unless
    it says otherwise)."""
    text = raw.strip()
    if text.lower() == "now":
        return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    try:
        return datetime.datetime.fromtimestamp(int(text), datetime.timezone.utc)
    except ValueError:
        pass
    if text.endswith(("z", "Z")):  # Python 3.10's fromisoformat does not know "Z"
        text = text[:-1] + "+00:00"
    value = datetime.datetime.fromisoformat(text)
    return value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)


def _sized(cls: type[int]) -> Converter:
    def convert(raw: str) -> int:
        return cls(int(raw))

    convert.__name__ = cls.__name__.lower()
    return convert


def _null(raw: str) -> None:
    if raw.strip() not in ("", "null", "none"):
        raise ValueError(f"a null takes no value, not {raw!r}")


#: The types of ``KEY:TYPE=VALUE``.  Sized integers and ``float32`` pin the
#: field-table type (for consumers in typed languages); ``int`` takes the
#: smallest that fits.
TYPES: dict[str, Converter] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": parse_bool,
    "json": json.loads,
    "null": _null,
    "timestamp": parse_timestamp,
    "decimal": decimal.Decimal,
    **{cls.__name__.lower(): _sized(cls) for cls in (Int8, UInt8, Int16, UInt16, Int32, UInt32, Int64)},
    "float32": Float32,
}


def _int_or_str(raw: str) -> int | str:
    return int(raw) if raw.strip().lstrip("-").isdigit() else raw


#: Queue, exchange and consumer arguments that RabbitMQ only accepts with a
#: given type: an untyped value for them is converted (``x-message-ttl=60000``).
ARGUMENT_TYPES: dict[str, Converter] = {
    **dict.fromkeys(
        (
            "x-message-ttl",
            "x-expires",
            "x-max-length",
            "x-max-length-bytes",
            "x-max-priority",
            "x-delivery-limit",
            "x-initial-cluster-size",
            "x-quorum-initial-group-size",
            "x-quorum-target-group-size",
            "x-max-in-memory-length",
            "x-max-in-memory-bytes",
            "x-stream-max-segment-size-bytes",
            "x-consumer-timeout",
            "x-priority",
        ),
        int,
    ),
    "x-single-active-consumer": parse_bool,
    "x-stream-match-unfiltered": parse_bool,
    # "first", "last", "next", or an offset number
    "x-stream-offset": _int_or_str,
}


def parse_item(text: str, known: Mapping[str, Converter] | None = None) -> tuple[str, Any]:
    """``KEY=VALUE`` (a string, or the type ``known`` gives the key) or
    ``KEY:TYPE=VALUE``.  The key ends at the first ``=``; its type, if any,
    after its last ``:`` (so ``a:b:str=c`` is the key ``a:b``)."""
    head, sep, raw = text.partition("=")
    if not sep:
        raise CliError(f"{text!r} is not KEY=VALUE or KEY:TYPE=VALUE")
    key, colon, type_name = head.rpartition(":")
    if not colon:
        key, type_name = head, ""
    if not key:
        raise CliError(f"{text!r} has an empty key")
    if colon:
        convert = TYPES.get(type_name.lower())
        if convert is None:
            raise CliError(f"unknown type {type_name!r} in {text!r} (types: {', '.join(TYPES)})")
    else:
        convert = (known or {}).get(key, str)
    try:
        return key, convert(raw)
    except (ValueError, ArithmeticError, InvalidArgument) as exc:  # Decimal raises ArithmeticError
        wanted = type_name or getattr(convert, "__name__", "value").removeprefix("parse_")
        raise CliError(f"bad value in {text!r}: not a valid {wanted} ({exc})") from None


def parse_items(items: Iterable[str] | None, known: Mapping[str, Converter] | None = None) -> dict[str, Any]:
    """A table from repeated ``-H``/``-a`` options (a later key wins)."""
    return dict(parse_item(item, known) for item in items or ())
