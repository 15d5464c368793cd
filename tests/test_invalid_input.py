"""Bad application input is an ``InvalidArgument`` raised before anything is
sent (never a ``UnicodeEncodeError``, a ``RecursionError`` or a silently
mangled value), and the channel stays usable: against the real broker."""

from __future__ import annotations

import asyncio
import datetime
from typing import Any

import pytest

import aiorabbit
from aiorabbit import InvalidArgument, Properties


def _self_referencing() -> dict[str, Any]:
    table: dict[str, Any] = {"a": 1}
    table["self"] = table
    return table


def _deep_list(depth: int) -> list[Any]:
    items: list[Any] = []
    for _ in range(depth):
        items = [items]
    return items


async def _count_when_settled(channel: aiorabbit.Channel, queue: str, expected: int) -> int:
    """The queue's message count once ``expected`` messages are in it (or 5 s
    passed), read again a moment later: without confirms a publish reaches
    the queue a little after the broker read it."""
    for _ in range(250):
        if (await channel.queue_declare(queue, passive=True)).message_count >= expected:
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.1)
    return (await channel.queue_declare(queue, passive=True)).message_count


# (label, basic_publish keyword arguments, what the error must name)
BAD_PUBLISHES: list[tuple[str, dict[str, Any], str]] = [
    ("routing key", {"routing_key": "key-\ud800"}, "routing_key"),
    ("exchange", {"exchange": "\udfff"}, "exchange"),
    ("message_id", {"properties": Properties(message_id="id-\ud800")}, "message_id"),
    ("reply_to", {"properties": Properties(reply_to="\ud83d")}, "reply_to"),
    ("correlation_id", {"properties": Properties(correlation_id="\udbff")}, "correlation_id"),
    ("header key", {"properties": Properties(headers={"k\ud800": 1})}, "in headers"),
    ("header value", {"properties": Properties(headers={"k": ["ok", "v\ud800"]})}, r"headers\.k\[1\]"),
    ("self-referencing headers", {"properties": Properties(headers=_self_referencing())}, r"headers\.self"),
    ("5000-deep headers", {"properties": Properties(headers={"deep": _deep_list(5000)})}, "more than 100"),
    ("bytes content_type", {"properties": Properties(content_type=b"text/plain")}, "content_type"),  # type: ignore[arg-type]
    ("int message_id", {"properties": Properties(message_id=42)}, "message_id must be a str"),  # type: ignore[arg-type]
    ("bool delivery_mode", {"properties": Properties(delivery_mode=True)}, "delivery_mode"),
    ("NaN timestamp", {"properties": Properties(timestamp=float("nan"))}, "timestamp"),  # type: ignore[arg-type]
    ("str timestamp", {"properties": Properties(timestamp="2024-01-01")}, "timestamp"),  # type: ignore[arg-type]
]


@pytest.mark.parametrize("confirms", [False, True], ids=["plain", "confirms"])
@pytest.mark.parametrize(("label", "kwargs", "match"), BAD_PUBLISHES, ids=[case[0] for case in BAD_PUBLISHES])
async def test_bad_publish_raises_before_sending_and_the_channel_goes_on(
    connection: aiorabbit.Connection,
    names: Any,
    confirms: bool,
    label: str,
    kwargs: dict[str, Any],
    match: str,
) -> None:
    queue = names.queue()
    channel = await connection.channel(publisher_confirms=confirms)
    await channel.queue_declare(queue)
    if "routing_key" not in kwargs and "exchange" not in kwargs:
        kwargs = {**kwargs, "routing_key": queue}
    for _ in range(2):  # twice: the method cache must not keep anything either
        with pytest.raises(InvalidArgument, match=match):
            await channel.basic_publish(b"bad", **kwargs)
        assert channel.is_open
    # A normal publish on the same channel still works (and is confirmed,
    # with confirms: the failed ones took no delivery tag).
    await channel.basic_publish(b"good", routing_key=queue, properties=Properties(message_id="m"))
    await channel.basic_publish(b"good", routing_key=queue)
    assert channel.is_open and connection.is_open
    assert await _count_when_settled(channel, queue, 2) == 2  # nothing of the bad ones reached the broker
    msg = await channel.basic_get(queue, no_ack=True)
    assert msg is not None and msg.body == b"good" and msg.properties.message_id == "m"


async def test_bad_names_and_arguments_in_other_methods(connection: aiorabbit.Connection, names: Any) -> None:
    channel = await connection.channel(publisher_confirms=True)
    queue = names.queue()
    with pytest.raises(InvalidArgument, match="queue"):
        await channel.queue_declare("q-\ud800")
    with pytest.raises(InvalidArgument, match="x-loop"):
        await channel.queue_declare(queue, arguments={"x-loop": _self_referencing()})
    with pytest.raises(InvalidArgument, match=r"x-name.*lone surrogate"):
        await channel.queue_declare(queue, arguments={"x-name": "\ud800"})
    assert channel.is_open
    await channel.queue_declare(queue)
    stamp = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    await channel.basic_publish(b"fine", routing_key=queue, properties=Properties(timestamp=stamp))
    msg = await channel.basic_get(queue, no_ack=True)
    assert msg is not None and msg.properties.timestamp == stamp
