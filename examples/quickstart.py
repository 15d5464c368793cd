"""aiorabbit end to end: declare a queue, publish, consume, acknowledge.

    python examples/quickstart.py

Connects to ``$AMQP_URL`` (default: amqp://guest:guest@localhost:5672/%2F,
e.g. the broker of ``docker compose up -d``), then:

1. declares a queue,
2. publishes 10 messages with publisher confirms, all at once,
3. consumes them with ``async for`` and acknowledges each one,

prints what it did, and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import aiorabbit

COUNT = 10


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--queue", default="aiorabbit.quickstart", help="queue name (default: %(default)s)")
    args = parser.parse_args()

    # connect() is awaitable and an async context manager; the block closes
    # the connection gracefully, however it is left.
    async with aiorabbit.connect() as conn:
        params = conn.params
        print(f"Connected to {params.host}:{params.port} vhost {params.virtual_host!r}")

        # A channel with publisher confirms: basic_publish() returns once the
        # broker has acked the message, and raises if it nacks it.
        ch = await conn.channel(publisher_confirms=True)

        # exclusive=True: the queue belongs to this connection and the broker
        # deletes it when we disconnect, so the quickstart leaves nothing
        # behind.  A queue shared by several programs would not be exclusive
        # (and would usually be durable=True).
        await ch.queue_declare(args.queue, exclusive=True)
        print(f"Declared queue {args.queue!r}")

        # Publish all 10 concurrently: each publish waits for its own
        # confirm, gather() waits for all of them.
        bodies = [f"message {n}" for n in range(1, COUNT + 1)]
        await asyncio.gather(
            *(
                ch.basic_publish(
                    body.encode(),
                    routing_key=args.queue,  # the default exchange routes by queue name
                    properties=aiorabbit.Properties(content_type="text/plain", message_id=str(n)),
                )
                for n, body in enumerate(bodies, 1)
            )
        )
        print(f"Published {COUNT} messages, all confirmed by the broker")

        # Consume: entering the block starts the consumer, leaving it cancels
        # the consumer.  Every message must be settled once: ack() tells the
        # broker it can delete it.
        received = 0
        async with ch.consume(args.queue) as messages:
            async for msg in messages:
                await msg.ack()
                received += 1
                print(f"Received and acked {msg.body.decode()!r} (message_id={msg.properties.message_id})")
                if received == COUNT:
                    break
        print(f"Done: {received} messages published, consumed and acked")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except aiorabbit.AMQPError as exc:
        sys.exit(f"error: {type(exc).__name__}: {exc}")
    except KeyboardInterrupt:
        sys.exit("interrupted")
