"""The ``extra`` fields of aiorabbit's log records.

Every record about a connection, channel or consumer carries the same five
keys (``None`` where they do not apply), so that a formatter or a JSON log
handler can rely on them: ``aiorabbit_connection`` (the connection's name,
else its URL with the password masked), ``aiorabbit_channel``,
``aiorabbit_queue``, ``aiorabbit_consumer_tag`` and ``aiorabbit_reply_code``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .parameters import ConnectionParameters

__all__ = ["FIELDS", "fields", "label"]

FIELDS = ("aiorabbit_connection", "aiorabbit_channel", "aiorabbit_queue", "aiorabbit_consumer_tag",
          "aiorabbit_reply_code")


def label(params: ConnectionParameters) -> str:
    """How log records name a connection: never with its password."""
    return params.name or params.url


def fields(
    params: ConnectionParameters | None = None,
    *,
    channel: int | None = None,
    queue: str | None = None,
    consumer_tag: str | None = None,
    reply_code: int | None = None,
) -> dict[str, Any]:
    """The ``extra`` mapping of one record."""
    return {
        "aiorabbit_connection": label(params) if params is not None else None,
        "aiorabbit_channel": channel,
        "aiorabbit_queue": queue,
        "aiorabbit_consumer_tag": consumer_tag,
        "aiorabbit_reply_code": reply_code or None,
    }
