"""The RPC server every client calls in the ``rpc`` scenario (the same one
for all, so only the caller differs): it echoes each request's body to its
``reply_to`` with the request's correlation id, acking after the reply.

    python -m benchmarks.responder --queue Q [--url URL]
"""

from __future__ import annotations

import argparse
import asyncio

import aiorabbit


async def serve(url: str, queue: str) -> None:
    async with aiorabbit.connect(url, name="bench-responder") as conn:
        ch = await conn.channel()
        await ch.basic_qos(prefetch_count=100)
        async with ch.consume(queue) as requests:
            async for request in requests:
                props = request.properties
                await ch.basic_publish(
                    request.body,
                    routing_key=props.reply_to or "",
                    properties=aiorabbit.Properties(correlation_id=props.correlation_id),
                )
                await request.ack()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    parser.add_argument("--queue", required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.url, args.queue))


if __name__ == "__main__":
    main()
