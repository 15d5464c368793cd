"""What the broker tells about itself in ``connection.start``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["server_version"]


def server_version(server_properties: Mapping[str, Any]) -> tuple[int, ...]:
    """The broker's version as numbers (``(0,)`` if it does not say)."""
    raw = server_properties.get("version", "")
    text = raw.decode("utf-8", "replace") if isinstance(raw, (bytes, bytearray)) else str(raw)
    numbers: list[int] = []
    for part in text.split("."):
        digits = "".join(c for c in part if c.isdigit()) if part[:1].isdigit() else ""
        if not digits:
            break
        numbers.append(int(digits))
    return tuple(numbers) or (0,)
