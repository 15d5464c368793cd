"""aiormq, the protocol layer under aio-pika (no async iterator: callbacks)."""

from __future__ import annotations

import asyncio
import time
import uuid

import aiormq
from aiormq.abc import DeliveredMessage

NAME = "aiormq"
_REPLY_TO = "amq.rabbitmq.reply-to"


class Client:
    async def connect(self, url: str) -> None:
        self.conn = await aiormq.connect(url, client_properties={"connection_name": "bench-aiormq"})

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
        ch = await self.conn.channel(publisher_confirms=False)
        if not no_ack:
            await ch.basic_qos(prefetch_count=prefetch)
        done = asyncio.get_running_loop().create_future()
        received = total = 0

        async def on_message(message: DeliveredMessage) -> None:
            nonlocal received, total
            if received == count:
                return  # beyond ``count``: left unacked, requeued when the channel closes
            received += 1
            total += len(message.body)
            if not no_ack:
                await message.channel.basic_ack(message.delivery.delivery_tag)
            if received == count and not done.done():
                done.set_result(None)

        ok = await ch.basic_consume(queue, on_message, no_ack=no_ack)
        await done
        await ch.basic_cancel(ok.consumer_tag)
        return total

    async def rpc(self, queue: str, body: bytes, count: int) -> list[float]:
        ch = await self.conn.channel(publisher_confirms=False)
        waiting: dict[str, asyncio.Future[DeliveredMessage]] = {}

        async def on_reply(message: DeliveredMessage) -> None:
            fut = waiting.pop(message.header.properties.correlation_id or "", None)
            if fut is not None and not fut.done():
                fut.set_result(message)

        await ch.basic_consume(_REPLY_TO, on_reply, no_ack=True)
        loop = asyncio.get_running_loop()
        latencies = []
        for _ in range(count):
            cid = uuid.uuid4().hex
            fut = waiting[cid] = loop.create_future()
            start = time.perf_counter()
            props = aiormq.spec.Basic.Properties(correlation_id=cid, reply_to=_REPLY_TO)
            await ch.basic_publish(body, routing_key=queue, properties=props)
            await fut
            latencies.append(time.perf_counter() - start)
        return latencies

    async def close(self) -> None:
        await self.conn.close()


CLIENT = Client
