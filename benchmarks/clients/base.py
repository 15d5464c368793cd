"""What every benchmarked client implements.

A client module defines ``CLIENT``: a class with the methods below, either
all ``async`` (run under the default event loop or uvloop) or all plain
(blocking clients: pika, the bare socket).  The worker connects, times only
the scenario call, then closes, so connection set-up is never counted.

Every scenario must leave nothing in flight when it returns:

``publish(queue, body, count, confirms, window)``
    Publish ``count`` copies of ``body`` to ``queue`` through the default
    exchange.  With ``confirms`` keep at most ``window`` unconfirmed and
    return when all are confirmed; without, finish with a synchronous round
    trip on the same channel (a passive ``queue.declare``) so the broker has
    read every publish before the clock stops.
``consume(queue, count, no_ack, prefetch)``
    Consume exactly ``count`` messages from ``queue`` (with ``basic.qos
    prefetch_count=prefetch`` unless ``no_ack``), acking each one
    individually unless ``no_ack``; return the total body bytes received.
    Async clients use the library's ``async for`` iterator where it has one.
``rpc(queue, body, count)``
    Make ``count`` sequential calls to the responder serving ``queue``,
    replies coming back through direct reply-to (``amq.rabbitmq.reply-to``)
    and matched by correlation id; return each call's latency in seconds.
"""

from __future__ import annotations

from typing import Protocol


class AsyncClient(Protocol):
    async def connect(self, url: str) -> None: ...
    async def publish(self, queue: str, body: bytes, count: int, confirms: bool, window: int) -> None: ...
    async def consume(self, queue: str, count: int, no_ack: bool, prefetch: int) -> int: ...
    async def rpc(self, queue: str, body: bytes, count: int) -> list[float]: ...
    async def close(self) -> None: ...


class SyncClient(Protocol):
    def connect(self, url: str) -> None: ...
    def publish(self, queue: str, body: bytes, count: int, confirms: bool, window: int) -> None: ...
    def consume(self, queue: str, count: int, no_ack: bool, prefetch: int) -> int: ...
    def rpc(self, queue: str, body: bytes, count: int) -> list[float]: ...
    def close(self) -> None: ...
