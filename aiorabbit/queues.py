"""Arguments for RabbitMQ's replicated queue types: quorum queues and streams.

``queue_declare(name, durable=True, arguments=quorum_queue(...))`` and
``ch.consume(stream, arguments=stream_offset("first"))`` instead of
remembering the ``x-`` names and which combinations the broker accepts.
Each function only builds a ``dict``: what it holds is documented RabbitMQ
behaviour (quorum queues since 3.8, at-least-once dead-lettering and
``x-delivery-limit`` redelivery counting since 3.10, streams since 3.9).
"""

from __future__ import annotations

import datetime
from typing import Any, Literal, Union

from .exceptions import InvalidArgument

__all__ = ["StreamOffset", "quorum_queue", "stream_offset", "stream_queue"]

#: Where a stream consumer starts: ``"first"``, ``"last"`` (the last
#: chunk), ``"next"`` (only what comes after), an offset, or a time.
StreamOffset = Union[Literal["first", "last", "next"], int, datetime.datetime]


def quorum_queue(
    *,
    delivery_limit: int | None = None,
    dead_letter_exchange: str | None = None,
    dead_letter_routing_key: str | None = None,
    at_least_once: bool = False,
    initial_group_size: int | None = None,
) -> dict[str, Any]:
    """Arguments declaring a quorum queue (declare it ``durable=True``).

    ``delivery_limit``: after that many returns (nacks, rejects with
    requeue, consumers lost with it unacked) a message is dead-lettered, or
    dropped without a dead-letter exchange; each redelivery carries the
    count so far (:attr:`IncomingMessage.delivery_count`).

    ``at_least_once``: the queue keeps a dead-lettered message until the
    dead-letter target confirmed it (RabbitMQ 3.10+; it needs the
    ``reject-publish`` overflow, which this sets, and a dead-letter
    exchange).  The default, at-most-once, can lose a dead-lettered message
    when a node fails at that moment.
    """
    args: dict[str, Any] = {"x-queue-type": "quorum"}
    if delivery_limit is not None:
        if delivery_limit < 0:
            raise InvalidArgument("delivery_limit must be >= 0")
        args["x-delivery-limit"] = delivery_limit
    if dead_letter_exchange is not None:
        args["x-dead-letter-exchange"] = dead_letter_exchange
    if dead_letter_routing_key is not None:
        if dead_letter_exchange is None:
            raise InvalidArgument("dead_letter_routing_key needs a dead_letter_exchange ('': the default)")
        args["x-dead-letter-routing-key"] = dead_letter_routing_key
    if at_least_once:
        if dead_letter_exchange is None:
            raise InvalidArgument("at-least-once dead-lettering needs a dead_letter_exchange")
        args["x-dead-letter-strategy"] = "at-least-once"
        args["x-overflow"] = "reject-publish"
    if initial_group_size is not None:
        if initial_group_size < 1:
            raise InvalidArgument("initial_group_size must be at least 1")
        args["x-quorum-initial-group-size"] = initial_group_size
    return args


def stream_queue(
    *,
    max_length_bytes: int | None = None,
    max_age: str | None = None,
    max_segment_size_bytes: int | None = None,
) -> dict[str, Any]:
    """Arguments declaring a stream (declare it ``durable=True``).

    ``max_age`` is RabbitMQ's duration string: ``"7D"``, ``"12h"``,
    ``"30m"``, ``"90s"`` (Y, M, D, h, m, s)."""
    args: dict[str, Any] = {"x-queue-type": "stream"}
    if max_length_bytes is not None:
        args["x-max-length-bytes"] = max_length_bytes
    if max_age is not None:
        if not max_age[:-1].isdigit() or max_age[-1] not in "YMDhms":
            raise InvalidArgument(f"max_age {max_age!r} is not a number followed by Y, M, D, h, m or s")
        args["x-max-age"] = max_age
    if max_segment_size_bytes is not None:
        args["x-stream-max-segment-size-bytes"] = max_segment_size_bytes
    return args


def stream_offset(offset: StreamOffset) -> dict[str, Any]:
    """Consumer arguments starting a stream consumer at ``offset``.

    A stream consumer needs a prefetch (``basic_qos``) and acks (not
    ``no_ack``); each delivery carries its offset
    (:attr:`IncomingMessage.stream_offset`)."""
    if isinstance(offset, bool) or not isinstance(offset, (str, int, datetime.datetime)):
        raise InvalidArgument(f"a stream offset is 'first', 'last', 'next', an int or a datetime: {offset!r}")
    if isinstance(offset, str) and offset not in ("first", "last", "next"):
        raise InvalidArgument(f"a stream offset is 'first', 'last' or 'next', not {offset!r}")
    if isinstance(offset, int) and offset < 0:
        raise InvalidArgument("a stream offset must be >= 0")
    return {"x-stream-offset": offset}
