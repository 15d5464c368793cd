"""aiorabbit, the client under test."""

from __future__ import annotations

import asyncio
import time

import aiorabbit
from aiorabbit.rpc import RpcClient

NAME = "aiorabbit"


class Client:
    async def connect(self, url: str) -> None:
        self.conn = await aiorabbit.connect(url, name="bench-aiorabbit")

    async def publish(self, queue: str, body: bytes, count: int, confirms: bool, window: int) -> None:
        ch = await self.conn.channel(publisher_confirms=confirms)
        if not confirms:
            for _ in range(count):
                await ch.basic_publish(body, routing_key=queue)
            await ch.queue_declare(queue, passive=True)
            return

        # ``window`` tasks, each with one publish awaiting its confirm.
        async def worker(share: int) -> None:
            for _ in range(share):
                await ch.basic_publish(body, routing_key=queue)

        await asyncio.gather(*(worker(count // window + (i < count % window)) for i in range(window)))

    async def consume(self, queue: str, count: int, no_ack: bool, prefetch: int) -> int:
        ch = await self.conn.channel()
        if not no_ack:
            await ch.basic_qos(prefetch_count=prefetch)
        received = total = 0
        async with ch.consume(queue, no_ack=no_ack) as messages:
            async for msg in messages:
                if not no_ack:
                    await msg.ack()
                total += len(msg.body_view)  # no copy of a large body (the documented way)
                received += 1
                if received == count:
                    break
        return total

    async def rpc(self, queue: str, body: bytes, count: int) -> list[float]:
        # The library's own RPC client (direct reply-to, correlation ids, a
        # timeout and a mandatory flag per call), as an application uses it.
        latencies = []
        async with RpcClient(self.conn, timeout=30) as rpc:
            for _ in range(count):
                start = time.perf_counter()
                await rpc.call(body, routing_key=queue)
                latencies.append(time.perf_counter() - start)
        return latencies

    async def close(self) -> None:
        await self.conn.close()


CLIENT = Client
