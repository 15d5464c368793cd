"""Interoperability with pika (the reference Python client), both ways.

pika's ``BlockingConnection`` blocks, so every pika call runs in a thread
(``asyncio.to_thread``) while aiorabbit runs on the event loop.

What pika can write in a field table (``pika/data.py``): ``str`` as ``S``,
``bytes`` as ``x``, ``bool`` as ``t``, ``pika.compat.long`` as ``l``, other
``int`` as ``I`` (``l`` when it does not fit 32 bits signed), ``Decimal`` as
``D``, ``datetime`` as ``T``, ``dict`` as ``F``, ``list`` as ``A`` and
``None`` as ``V``.  It cannot write floats at all.

How pika reads one: every integer tag as ``int`` (``l``/``L`` as
``pika.compat.long``), ``f`` and ``d`` as ``pika.compat.long(value)`` (the
float truncated to an int), ``D`` as ``Decimal``, ``S`` as ``str`` (``bytes``
when not UTF-8), ``x`` as ``bytes``, ``T`` as an aware UTC ``datetime``;
the ``timestamp`` property is an ``int`` of seconds.
"""

from __future__ import annotations

import asyncio
import datetime
import os
from decimal import Decimal
from typing import Any

import pika
import pika.data
import pytest
from pika.compat import long as pika_long

import aiorabbit
from aiorabbit.codec.table import encode_table as aio_encode_table

UTC = datetime.timezone.utc
STAMP = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)
STAMP_SECONDS = int(STAMP.timestamp())
MiB = 1024 * 1024


# --------------------------------------------------------------------------
# helpers


def assert_same(actual: Any, expected: Any, path: str = "value") -> None:
    """Equal value AND equal type, recursively (5 != Int32(5) here, nor
    bytes != bytearray, nor True != 1)."""
    assert type(actual) is type(expected), (
        f"{path}: type {type(actual).__name__} ({actual!r}) != "
        f"{type(expected).__name__} ({expected!r})"
    )
    if isinstance(expected, dict):
        assert list(actual) == list(expected), f"{path}: keys {list(actual)} != {list(expected)}"
        for key in expected:
            assert_same(actual[key], expected[key], f"{path}[{key!r}]")
    elif isinstance(expected, list):
        assert len(actual) == len(expected), f"{path}: length {len(actual)} != {len(expected)}"
        for index, (got, want) in enumerate(zip(actual, expected, strict=True)):
            assert_same(got, want, f"{path}[{index}]")
    elif isinstance(expected, Decimal):
        assert actual == expected and actual.as_tuple() == expected.as_tuple(), (
            f"{path}: {actual!r} != {expected!r}"
        )
    elif isinstance(expected, datetime.datetime):
        assert actual == expected and actual.utcoffset() == expected.utcoffset(), (
            f"{path}: {actual!r} != {expected!r}"
        )
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


def pika_table_bytes(table: dict[str, Any]) -> bytes:
    pieces: list[bytes] = []
    pika.data.encode_table(pieces, table)
    return b"".join(pieces)


class PikaPeer:
    """A blocking pika connection driven from a worker thread."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.conn: pika.BlockingConnection | None = None
        self.ch: Any = None

    def _open(self) -> None:
        self.conn = pika.BlockingConnection(pika.URLParameters(self.url))
        self.ch = self.conn.channel()

    def _close(self) -> None:
        if self.conn is not None and self.conn.is_open:
            self.conn.close()

    async def __aenter__(self) -> PikaPeer:
        await asyncio.to_thread(self._open)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self._close)

    async def run(self, func: Any, *args: Any, **kwargs: Any) -> Any:
        return await asyncio.to_thread(func, *args, **kwargs)

    # -- blocking operations (run through ``run``) ----------------------

    def publish_confirmed(
        self, queue: str, bodies: list[bytes], properties: pika.BasicProperties | None = None
    ) -> None:
        """Publish with confirms so the broker holds every message on return."""
        self.ch.confirm_delivery()
        for body in bodies:
            self.ch.basic_publish(
                exchange="", routing_key=queue, body=body, properties=properties, mandatory=True
            )

    def get(self, queue: str) -> tuple[Any, pika.BasicProperties, bytes]:
        method, props, body = self.ch.basic_get(queue, auto_ack=False)
        assert method is not None, f"pika basic_get: queue {queue} is empty"
        self.ch.basic_ack(method.delivery_tag)
        return method, props, body

    def consume_with_properties(
        self, queue: str, count: int, timeout: float = 30.0
    ) -> list[tuple[pika.BasicProperties, bytes]]:
        self.ch.basic_qos(prefetch_count=200)
        got: list[tuple[pika.BasicProperties, bytes]] = []
        for method, props, body in self.ch.consume(queue, inactivity_timeout=timeout):
            assert method is not None, f"pika consumer idle {timeout}s after {len(got)} messages"
            got.append((props, body))
            self.ch.basic_ack(method.delivery_tag)
            if len(got) == count:
                break
        requeued = self.ch.cancel()
        assert requeued == 0
        return got

    def consume(self, queue: str, count: int, timeout: float = 30.0) -> list[bytes]:
        return [body for _, body in self.consume_with_properties(queue, count, timeout)]


async def aio_get(channel: aiorabbit.Channel, queue: str) -> aiorabbit.IncomingMessage:
    msg = await channel.basic_get(queue)
    assert msg is not None, f"aiorabbit basic_get: queue {queue} is empty"
    await msg.ack()
    return msg


async def aio_consume_one(channel: aiorabbit.Channel, queue: str) -> aiorabbit.IncomingMessage:
    async with asyncio.timeout(30):
        async with channel.consume(queue) as messages:
            async for msg in messages:
                await msg.ack()
                return msg
    raise AssertionError("consumer ended without a message")  # pragma: no cover


# --------------------------------------------------------------------------
# 1. pika -> aiorabbit: every property, every header type pika writes


# What pika is given, and what aiorabbit must decode it to (with types).
PIKA_HEADERS: dict[str, Any] = {
    "int_small": 5,  # 'I' (aiorabbit alone would pick 'b')
    "int_negative": -7,  # 'I'
    "int_16": 1000,  # 'I' ('s')
    "int_neg_16": -1000,  # 'I' ('s')
    "int_u16": 40000,  # 'I' ('u')
    "int_zero": 0,  # 'I' ('b')
    "int_max32": 2**31 - 1,  # 'I' (also aiorabbit's choice)
    "int_min32": -(2**31),  # 'I'
    "int_u32": 3_000_000_000,  # 'l' (does not fit 'I'; aiorabbit: 'i')
    "int_big": 2**40,  # 'l'
    "int_max64": 2**63 - 1,  # 'l'
    "int_min64": -(2**63),  # 'l'
    "long_small": pika_long(3),  # 'l' ('b')
    "long_negative": pika_long(-70000),  # 'l' ('I')
    "bool_true": True,
    "bool_false": False,
    "str": "h\u00e9llo \u2713 world",
    "str_empty": "",
    "bytes": b"\x00\x01\xfe\xff raw",  # 'x'
    "bytes_empty": b"",
    "decimal": Decimal("3.14"),
    "decimal_negative": Decimal("-12.345"),
    "decimal_integral": Decimal("100"),
    "decimal_zero": Decimal("0"),
    "decimal_tiny": Decimal("0.0000000001"),
    "datetime": STAMP,
    "none": None,
    "table": {
        "a": 1,
        "b": "x",
        "nested": {"deeper": [1, "two", None, True]},
        "empty": {},
    },
    "array": [
        1,
        -2,
        2**40,
        "two",
        True,
        None,
        Decimal("1.5"),
        STAMP,
        b"\xff",
        {"k": "v", "n": 70000},
        [1, [2, []]],
        [],
    ],
    "table_empty": {},
    "array_empty": [],
}

AIO_EXPECTED_FROM_PIKA: dict[str, Any] = {
    "int_small": aiorabbit.Int32(5),
    "int_negative": aiorabbit.Int32(-7),
    "int_16": aiorabbit.Int32(1000),
    "int_neg_16": aiorabbit.Int32(-1000),
    "int_u16": aiorabbit.Int32(40000),
    "int_zero": aiorabbit.Int32(0),
    "int_max32": 2**31 - 1,
    "int_min32": -(2**31),
    "int_u32": aiorabbit.Int64(3_000_000_000),
    "int_big": 2**40,
    "int_max64": 2**63 - 1,
    "int_min64": -(2**63),
    "long_small": aiorabbit.Int64(3),
    "long_negative": aiorabbit.Int64(-70000),
    "bool_true": True,
    "bool_false": False,
    "str": "h\u00e9llo \u2713 world",
    "str_empty": "",
    "bytes": bytearray(b"\x00\x01\xfe\xff raw"),
    "bytes_empty": bytearray(),
    "decimal": Decimal("3.14"),
    "decimal_negative": Decimal("-12.345"),
    "decimal_integral": Decimal("100"),
    "decimal_zero": Decimal("0"),
    "decimal_tiny": Decimal("1E-10"),
    "datetime": STAMP,
    "none": None,
    "table": {
        "a": aiorabbit.Int32(1),
        "b": "x",
        "nested": {"deeper": [aiorabbit.Int32(1), "two", None, True]},
        "empty": {},
    },
    "array": [
        aiorabbit.Int32(1),
        aiorabbit.Int32(-2),
        2**40,
        "two",
        True,
        None,
        Decimal("1.5"),
        STAMP,
        bytearray(b"\xff"),
        {"k": "v", "n": 70000},
        [aiorabbit.Int32(1), [aiorabbit.Int32(2), []]],
        [],
    ],
    "table_empty": {},
    "array_empty": [],
}


def pika_full_properties() -> pika.BasicProperties:
    return pika.BasicProperties(
        content_type="application/x-interop",
        content_encoding="identity",
        headers=PIKA_HEADERS,
        delivery_mode=2,
        priority=7,
        correlation_id="corr-\u00e9-42",
        reply_to="amq.rabbitmq.reply-to-ish",
        expiration="600000",
        message_id="msg-0001",
        timestamp=STAMP_SECONDS,
        type="interop.test",
        user_id="guest",
        app_id="pika-interop",
        cluster_id="cluster-x",
    )


def assert_pika_properties(props: aiorabbit.Properties) -> None:
    expected = {
        "content_type": "application/x-interop",
        "content_encoding": "identity",
        "delivery_mode": 2,
        "priority": 7,
        "correlation_id": "corr-\u00e9-42",
        "reply_to": "amq.rabbitmq.reply-to-ish",
        "expiration": "600000",
        "message_id": "msg-0001",
        "timestamp": STAMP,
        "type": "interop.test",
        "user_id": "guest",
        "app_id": "pika-interop",
        "cluster_id": "cluster-x",
    }
    for name, value in expected.items():
        assert_same(getattr(props, name), value, name)
    assert props.headers is not None
    assert_same(props.headers, AIO_EXPECTED_FROM_PIKA, "headers")
    # Every one of the 14 properties is set.
    assert len(props.as_dict()) == 14


def assert_reencodes_like_pika(props: aiorabbit.Properties) -> None:
    """The decoded headers (and whole property list) re-encode to exactly
    the bytes pika wrote: tags survive the round trip."""
    assert props.headers is not None
    assert aio_encode_table(props.headers) == pika_table_bytes(PIKA_HEADERS)
    assert props.encode() == b"".join(pika_full_properties().encode())


async def test_pika_to_aiorabbit_all_properties_and_header_types(
    amqp_url: str, channel: aiorabbit.Channel, names: Any
) -> None:
    queue = names.queue()
    await channel.queue_declare(queue)
    body = "pika \u2192 aiorabbit \u2713".encode()
    async with PikaPeer(amqp_url) as peer:
        await peer.run(peer.publish_confirmed, queue, [body, body], pika_full_properties())

    got = await aio_get(channel, queue)
    assert_same(got.body, body, "body")
    assert got.routing_key == queue and got.exchange == ""
    assert got.message_count == 1
    assert_pika_properties(got.properties)
    assert_reencodes_like_pika(got.properties)

    delivered = await aio_consume_one(channel, queue)
    assert_same(delivered.body, body, "body")
    assert delivered.consumer_tag
    assert_pika_properties(delivered.properties)
    assert_reencodes_like_pika(delivered.properties)


def test_pika_header_tags_are_what_this_test_assumes() -> None:
    """Guard for the expectations above: pika writes these exact tags."""
    raw = pika_table_bytes(
        {"i": 5, "big": 3_000_000_000, "L": pika_long(3), "x": b"a", "s": "a", "t": True}
    )
    assert raw == (
        b"\x00\x00\x00\x33"
        b"\x01iI\x00\x00\x00\x05"
        b"\x03bigl\x00\x00\x00\x00\xb2\xd0\x5e\x00"
        b"\x01Ll\x00\x00\x00\x00\x00\x00\x00\x03"
        b"\x01xx\x00\x00\x00\x01a"
        b"\x01sS\x00\x00\x00\x01a"
        b"\x01tt\x01"
    )


# --------------------------------------------------------------------------
# 2. aiorabbit -> pika: every property, every header type aiorabbit writes


AIO_HEADERS: dict[str, Any] = {
    "int8": aiorabbit.Int8(-5),
    "int8_max": aiorabbit.Int8(127),
    "uint8": aiorabbit.UInt8(200),
    "int16": aiorabbit.Int16(-300),
    "uint16": aiorabbit.UInt16(60000),
    "int32": aiorabbit.Int32(-70000),
    "int32_small": aiorabbit.Int32(1),
    "uint32": aiorabbit.UInt32(4_000_000_000),
    "int64": aiorabbit.Int64(-(2**40)),
    "int64_small": aiorabbit.Int64(2),
    "plain_b": 1,
    "plain_s": 300,
    "plain_u": 50000,
    "plain_I": 2**31 - 1,
    "plain_i": 2**32 - 1,
    "plain_l": 2**62,
    "plain_l_min": -(2**63),
    "float32": aiorabbit.Float32(1.5),
    "float32_negative": aiorabbit.Float32(-3.75),
    "double": 2.75,
    "double_negative": -0.5,
    "double_big": 12345.678,
    "decimal": Decimal("3.14"),
    "decimal_negative": Decimal("-0.001"),
    "decimal_integral": Decimal("42"),
    "str": "h\u00e9llo \u2713",
    "str_empty": "",
    "bytes_utf8": b"ascii bytes",  # written as 'S'
    "bytes_binary": b"\xff\x00\xfe",  # 'S', not UTF-8
    "bytearray": bytearray(b"\x00\x01\x02\xff"),  # 'x'
    "bytearray_empty": bytearray(),
    "datetime_aware": STAMP,
    "datetime_naive": STAMP.replace(tzinfo=None),  # taken as UTC
    "true": True,
    "false": False,
    "none": None,
    "table": {
        "a": aiorabbit.Int8(1),
        "b": "x",
        "c": {"d": [aiorabbit.UInt16(7), "e", None, aiorabbit.Float32(0.25)]},
        "empty": {},
    },
    "array": [
        aiorabbit.Int8(-1),
        aiorabbit.UInt8(255),
        aiorabbit.Int16(-2),
        aiorabbit.UInt16(3),
        aiorabbit.Int32(4),
        aiorabbit.UInt32(5),
        aiorabbit.Int64(6),
        7,
        aiorabbit.Float32(8.5),
        9.25,
        Decimal("10.01"),
        "eleven",
        b"twelve",
        bytearray(b"13"),
        STAMP,
        None,
        False,
        {"k": "v"},
        [[], [1]],
    ],
    "table_empty": {},
    "array_empty": [],
}

PIKA_EXPECTED_FROM_AIO: dict[str, Any] = {
    "int8": -5,
    "int8_max": 127,
    "uint8": 200,
    "int16": -300,
    "uint16": 60000,
    "int32": -70000,
    "int32_small": 1,
    "uint32": 4_000_000_000,
    "int64": pika_long(-(2**40)),
    "int64_small": pika_long(2),
    "plain_b": 1,
    "plain_s": 300,
    "plain_u": 50000,
    "plain_I": 2**31 - 1,
    "plain_i": 2**32 - 1,
    "plain_l": pika_long(2**62),
    "plain_l_min": pika_long(-(2**63)),
    # pika decodes 'f' and 'd' as long(value): the float truncated.
    "float32": pika_long(1),
    "float32_negative": pika_long(-3),
    "double": pika_long(2),
    "double_negative": pika_long(0),
    "double_big": pika_long(12345),
    "decimal": Decimal("3.14"),
    "decimal_negative": Decimal("-0.001"),
    "decimal_integral": Decimal("42"),
    "str": "h\u00e9llo \u2713",
    "str_empty": "",
    "bytes_utf8": "ascii bytes",
    "bytes_binary": b"\xff\x00\xfe",
    "bytearray": b"\x00\x01\x02\xff",
    "bytearray_empty": b"",
    "datetime_aware": STAMP,
    "datetime_naive": STAMP,
    "true": True,
    "false": False,
    "none": None,
    "table": {
        "a": 1,
        "b": "x",
        "c": {"d": [7, "e", None, pika_long(0)]},
        "empty": {},
    },
    "array": [
        -1,
        255,
        -2,
        3,
        4,
        5,
        pika_long(6),
        7,
        pika_long(8),
        pika_long(9),
        Decimal("10.01"),
        "eleven",
        "twelve",
        b"13",
        STAMP,
        None,
        False,
        {"k": "v"},
        [[], [1]],
    ],
    "table_empty": {},
    "array_empty": [],
}


def aio_full_properties() -> aiorabbit.Properties:
    return aiorabbit.Properties(
        content_type="application/json",
        content_encoding="gzip",
        headers=AIO_HEADERS,
        delivery_mode=aiorabbit.DeliveryMode.PERSISTENT,
        priority=9,
        correlation_id="corr-\u2713",
        reply_to="replies",
        expiration="300000",
        message_id="aio-msg-1",
        timestamp=STAMP,
        type="aio.type",
        user_id="guest",
        app_id="aiorabbit-interop",
        cluster_id="cluster-y",
    )


async def test_aiorabbit_to_pika_all_properties_and_header_types(
    amqp_url: str, connection: aiorabbit.Connection, names: Any
) -> None:
    queue = names.queue()
    channel = await connection.channel(publisher_confirms=True)
    await channel.queue_declare(queue)
    body = "aiorabbit \u2192 pika \u2713".encode()
    await channel.basic_publish(body, routing_key=queue, properties=aio_full_properties())

    async with PikaPeer(amqp_url) as peer:
        method, props, got_body = await peer.run(peer.get, queue)

    assert_same(got_body, body, "body")
    assert method.routing_key == queue
    expected = {
        "content_type": "application/json",
        "content_encoding": "gzip",
        "delivery_mode": 2,
        "priority": 9,
        "correlation_id": "corr-\u2713",
        "reply_to": "replies",
        "expiration": "300000",
        "message_id": "aio-msg-1",
        "timestamp": STAMP_SECONDS,
        "type": "aio.type",
        "user_id": "guest",
        "app_id": "aiorabbit-interop",
        "cluster_id": "cluster-y",
    }
    for name, value in expected.items():
        assert_same(getattr(props, name), value, name)
    assert_same(props.headers, PIKA_EXPECTED_FROM_AIO, "headers")
    # What pika received is exactly what pika's decoder makes of the table
    # aiorabbit encodes: the bytes crossed the broker intact.
    raw = aio_encode_table(AIO_HEADERS)
    decoded, end = pika.data.decode_table(raw, 0)
    assert end == len(raw)
    assert_same(props.headers, decoded, "headers")
    assert len(raw) > 400  # the table really carries all of the above


def test_aiorabbit_header_tags_are_what_this_test_assumes() -> None:
    """Guard for the expectations above: aiorabbit writes these exact tags."""
    raw = aio_encode_table(
        {
            "b": aiorabbit.Int8(1),
            "B": aiorabbit.UInt8(1),
            "s": aiorabbit.Int16(1),
            "u": aiorabbit.UInt16(1),
            "I": aiorabbit.Int32(1),
            "i": aiorabbit.UInt32(1),
            "l": aiorabbit.Int64(1),
            "f": aiorabbit.Float32(1.0),
            "d": 1.0,
            "x": bytearray(b"a"),
            "S": b"a",
        }
    )
    offset = 4
    tags = []
    while offset < len(raw):
        key, offset = pika.data.decode_short_string(raw, offset)
        tags.append((key, raw[offset : offset + 1].decode()))
        _, offset = pika.data.decode_value(raw, offset)
    # pika walked the whole table and every value carries the expected tag.
    assert offset == len(raw)
    assert tags == [(key, key) for key in ("b", "B", "s", "u", "I", "i", "l", "f", "d", "x", "S")]


# --------------------------------------------------------------------------
# 3. bodies: empty, 1 MiB, 3 MiB of random bytes (many frames), both ways


BODY_SIZES = (0, 1, 131072 - 8, 131072 - 7, MiB, 3 * MiB)


def make_bodies() -> list[bytes]:
    return [os.urandom(size) for size in BODY_SIZES]


async def test_bodies_pika_to_aiorabbit(amqp_url: str, channel: aiorabbit.Channel, names: Any) -> None:
    queue = names.queue()
    await channel.queue_declare(queue)
    bodies = make_bodies()
    # With the negotiated frame_max of 128 KiB, 3 MiB spans 25 body frames.
    assert channel.connection.frame_max <= 131072
    async with PikaPeer(amqp_url) as peer:
        await peer.run(peer.publish_confirmed, queue, bodies)

    # The first half by basic_get, the rest by a consumer.
    half = len(bodies) // 2
    for index, want in enumerate(bodies[:half]):
        got = await aio_get(channel, queue)
        assert len(got.body) == len(want), f"body {index}"
        assert got.body == want, f"body {index} corrupted"
        assert type(got.body) is bytes
    received: list[bytes] = []
    async with asyncio.timeout(60):
        async with channel.consume(queue) as messages:
            async for msg in messages:
                received.append(msg.body)
                await msg.ack()
                if len(received) == len(bodies) - half:
                    break
    assert [len(b) for b in received] == [len(b) for b in bodies[half:]]
    assert received == bodies[half:]
    assert await channel.basic_get(queue) is None


async def test_bodies_aiorabbit_to_pika(
    amqp_url: str, connection: aiorabbit.Connection, names: Any
) -> None:
    queue = names.queue()
    channel = await connection.channel(publisher_confirms=True)
    await channel.queue_declare(queue)
    bodies = make_bodies()
    for body in bodies:
        await channel.basic_publish(body, routing_key=queue)
    # bytearray and memoryview bodies arrive as the same bytes.
    await channel.basic_publish(bytearray(bodies[-1]), routing_key=queue)
    await channel.basic_publish(memoryview(bodies[-2]), routing_key=queue)
    expected = [*bodies, bodies[-1], bodies[-2]]

    async with PikaPeer(amqp_url) as peer:
        got = [await peer.run(peer.get, queue) for _ in range(3)]
        rest = await peer.run(peer.consume, queue, len(expected) - 3)
    received = [body for _, _, body in got] + rest
    assert [len(b) for b in received] == [len(b) for b in expected]
    assert received == expected
    ok = await channel.queue_declare(queue, passive=True)
    assert ok.message_count == 0


# --------------------------------------------------------------------------
# 4. publisher confirms: 1000 concurrent confirmed publishes, pika consumes


async def test_concurrent_confirmed_publishes_consumed_by_pika_in_order(
    amqp_url: str, connection: aiorabbit.Connection, names: Any
) -> None:
    queue = names.queue()
    channel = await connection.channel(publisher_confirms=True)
    assert channel.publisher_confirms
    await channel.queue_declare(queue)
    count = 1000
    bodies = [f"message {i:04d}".encode() for i in range(count)]
    props = aiorabbit.Properties(message_id="batch", headers={"n": aiorabbit.UInt16(count)})

    async with asyncio.timeout(60):
        results = await asyncio.gather(
            *(channel.basic_publish(body, routing_key=queue, properties=props) for body in bodies)
        )
    assert results == [None] * count
    # Every publish was confirmed, so the broker holds all of them now.
    ok = await channel.queue_declare(queue, passive=True)
    assert ok.message_count == count

    async with PikaPeer(amqp_url) as peer:
        deliveries = await peer.run(peer.consume_with_properties, queue, count)
    assert len(deliveries) == count
    assert [body for _, body in deliveries] == bodies  # same bodies, same order
    for pika_props, _ in deliveries:
        assert pika_props.message_id == "batch"
        assert pika_props.headers == {"n": count}
    ok = await channel.queue_declare(queue, passive=True)
    assert ok.message_count == 0


# --------------------------------------------------------------------------
# 5. names and strings that are not UTF-8 (written by pika as raw bytes)

RAW_KEY = b"\xff\xfe-key"


def _raw(text: str) -> bytes:
    """The bytes a leniently decoded short string stands for."""
    return text.encode("utf-8", "surrogateescape")


# (RabbitMQ itself refuses exchange and queue names and consumer tags that
# are not UTF-8, with a connection error "Malformed UTF-8 in shortstr"; it
# passes routing keys and properties through as they are.  Decoding any
# short string leniently is tested in test_codec_methods.py.)


def _publish_raw_names(exchange: str, count: int) -> Any:
    """A pika job: ``count`` confirmed messages to ``exchange`` whose routing
    key, content_type, message_id and a header key are not UTF-8 (pika sends
    ``bytes`` as they are; the broker routes them as they are)."""

    def job(peer: PikaPeer) -> None:
        peer.ch.confirm_delivery()
        props = pika.BasicProperties(
            content_type=b"\xff/json",
            message_id=b"\xfe-id",
            headers={b"\xff-h": "v", "ok": b"\xfe"},
        )
        for index in range(count):
            peer.ch.basic_publish(exchange, RAW_KEY, f"m{index}".encode(), props, mandatory=True)

    return job


def _check_raw(msg: aiorabbit.IncomingMessage, exchange: str) -> None:
    assert msg.exchange == exchange
    assert _raw(msg.routing_key) == RAW_KEY
    assert msg.routing_key == "\udcff\udcfe-key"
    props = msg.properties  # never raises
    assert _raw(props.content_type or "") == b"\xff/json"
    assert _raw(props.message_id or "") == b"\xfe-id"
    assert props.headers is not None
    assert [_raw(key) for key in props.headers] == [b"\xff-h", b"ok"]
    assert props.headers["ok"] == bytearray(b"\xfe")
    assert repr(msg)  # printable


@pytest.mark.parametrize(
    ("kind", "binding", "get_first"), [("fanout", "", True), ("topic", "#", False)]
)
async def test_a_non_utf8_routing_key_neither_closes_the_connection_nor_blocks_the_queue(
    amqp_url: str,
    connection: aiorabbit.Connection,
    channel: aiorabbit.Channel,
    names: Any,
    kind: str,
    binding: str,
    get_first: bool,
) -> None:
    exchange, queue = names.exchange(kind), names.queue()
    await channel.exchange_declare(exchange, kind, auto_delete=True)
    await channel.queue_declare(queue)
    await channel.queue_bind(queue, exchange, binding)
    async with PikaPeer(amqp_url) as peer:
        await peer.run(_publish_raw_names(exchange, 3), peer)

    async def get() -> aiorabbit.IncomingMessage:
        msg = await channel.basic_get(queue)
        assert msg is not None
        _check_raw(msg, exchange)
        await msg.ack()
        return msg

    async def consume(count: int) -> list[aiorabbit.IncomingMessage]:
        out: list[aiorabbit.IncomingMessage] = []
        async with asyncio.timeout(30):
            async with channel.consume(queue) as messages:
                async for msg in messages:
                    out.append(msg)
                    _check_raw(msg, exchange)
                    await msg.ack()
                    if len(out) == count:
                        break
        return out

    if get_first:
        received = [await get(), *await consume(2)]
    else:
        received = [*await consume(2), await get()]
    assert [msg.body for msg in received] == [b"m0", b"m1", b"m2"]

    # The connection stayed open and the queue is drained.
    assert connection.is_open and channel.is_open
    assert (await channel.queue_declare(queue, passive=True)).message_count == 0

    # Republishing to what the broker named sends the very same bytes: pika
    # (which reads a non-UTF-8 short string as bytes) sees them.
    confirmed = await connection.channel(publisher_confirms=True)
    last = received[-1]
    await confirmed.basic_publish(
        b"again", exchange=last.exchange, routing_key=last.routing_key, properties=last.properties
    )
    async with PikaPeer(amqp_url) as peer:
        method, props, body = await peer.run(peer.get, queue)
    assert (method.routing_key, body) == (RAW_KEY, b"again")
    assert (props.content_type, props.message_id) == (b"\xff/json", b"\xfe-id")
    assert props.headers == {b"\xff-h": "v", "ok": b"\xfe"}
