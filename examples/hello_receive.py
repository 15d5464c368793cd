"""Receive messages from the queue "hello" and print them.

    python examples/hello_receive.py               # until Ctrl-C
    python examples/hello_receive.py --count 3     # exit after 3 messages

Once the consumer is registered with the broker the program prints a line
"ready", so scripts (and the tests) know when to start sending.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import aiorabbit

QUEUE = "hello"


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--count", type=int, default=0, metavar="N", help="exit after N messages (default: run until Ctrl-C)"
    )
    args = parser.parse_args()

    async with aiorabbit.connect() as conn:
        ch = await conn.channel()
        # Declare the queue here too (the same way): the receiver may well
        # start first.
        await ch.queue_declare(QUEUE, durable=True)

        received = 0
        # consume() registers a consumer (basic.consume) on entering the
        # block and cancels it on leaving; the deliveries come out of
        # ``async for`` one at a time.
        async with ch.consume(QUEUE) as messages:
            print(f"Waiting for messages on {QUEUE!r}. To exit press Ctrl-C", flush=True)
            print("ready", flush=True)
            async for msg in messages:
                print(f"Received {msg.body.decode('utf-8', 'replace')!r}", flush=True)
                # Tell the broker it may forget the message.  (Had we
                # consumed with no_ack=True, a message delivered but not yet
                # printed when we exit would be lost.)
                await msg.ack()
                received += 1
                if received == args.count:
                    break
        # Leaving the block cancelled the consumer and handed back to the
        # queue anything delivered to us but never taken out of ``messages``.


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except aiorabbit.AMQPError as exc:
        sys.exit(f"error: {type(exc).__name__}: {exc}")
    except KeyboardInterrupt:
        pass  # Ctrl-C is the normal way to stop a receiver
