"""aio-pika, on a plain (not robust) connection."""

from __future__ import annotations

import asyncio
import time
import uuid

import aio_pika

NAME = "aio-pika"
_REPLY_TO = "amq.rabbitmq.reply-to"


class Client:
    async def connect(self, url: str) -> None:
        self.conn = await aio_pika.connect(url, client_properties={"connection_name": "bench-aio-pika"})

    async def publish(self, queue: str, body: bytes, count: int, confirms: bool, window: int) -> None:
        ch = await self.conn.channel(publisher_confirms=confirms)
        exchange = ch.default_exchange
        # mandatory=False, as every other client publishes (aio-pika defaults to True).
        if not confirms:
            for _ in range(count):
                await exchange.publish(aio_pika.Message(body), routing_key=queue, mandatory=False)
            await ch.declare_queue(queue, passive=True)
            return

        # ``window`` tasks, each with one publish awaiting its confirm.
        async def worker(share: int) -> None:
            for _ in range(share):
                await exchange.publish(aio_pika.Message(body), routing_key=queue, mandatory=False)

        await asyncio.gather(*(worker(count // window + (i < count % window)) for i in range(window)))

    async def consume(self, queue: str, count: int, no_ack: bool, prefetch: int) -> int:
        ch = await self.conn.channel(publisher_confirms=False)
        if not no_ack:
            await ch.set_qos(prefetch_count=prefetch)
        q = await ch.get_queue(queue, ensure=False)
        received = total = 0
        async with q.iterator(no_ack=no_ack) as messages:
            async for msg in messages:
                if not no_ack:
                    await msg.ack()
                total += len(msg.body)
                received += 1
                if received == count:
                    break
        return total

    async def rpc(self, queue: str, body: bytes, count: int) -> list[float]:
        ch = await self.conn.channel(publisher_confirms=False)
        waiting: dict[str, asyncio.Future[aio_pika.abc.AbstractIncomingMessage]] = {}

        async def on_reply(msg: aio_pika.abc.AbstractIncomingMessage) -> None:
            fut = waiting.pop(msg.correlation_id or "", None)
            if fut is not None and not fut.done():
                fut.set_result(msg)

        replies = await ch.get_queue(_REPLY_TO, ensure=False)
        await replies.consume(on_reply, no_ack=True)
        exchange = ch.default_exchange
        loop = asyncio.get_running_loop()
        latencies = []
        for _ in range(count):
            cid = uuid.uuid4().hex
            fut = waiting[cid] = loop.create_future()
            start = time.perf_counter()
            msg = aio_pika.Message(body, correlation_id=cid, reply_to=_REPLY_TO)
            await exchange.publish(msg, routing_key=queue, mandatory=False)
            await fut
            latencies.append(time.perf_counter() - start)
        return latencies

    async def close(self) -> None:
        await self.conn.close()


CLIENT = Client
