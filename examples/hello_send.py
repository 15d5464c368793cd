"""Send one message to the queue "hello".

The simplest possible producer: connect, make sure the queue exists, publish
to the default exchange (whose routing key is the queue name) and disconnect.

    python examples/hello_send.py                  # sends "Hello World!"
    python examples/hello_send.py Hi there         # sends "Hi there"

Run ``hello_receive.py`` in another terminal to see the message arrive.  The
broker is taken from ``$AMQP_URL`` (default: the guest account on localhost).
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
    parser.add_argument("message", nargs="*", help='the text to send (default: "Hello World!")')
    args = parser.parse_args()
    text = " ".join(args.message) or "Hello World!"

    # connect() with no URL reads $AMQP_URL; leaving the block closes the
    # connection cleanly, which also flushes the publish below.
    async with aiorabbit.connect() as conn:
        ch = await conn.channel()
        # Declaring is idempotent: whichever of sender and receiver starts
        # first creates the queue.  Durable: RabbitMQ 4.3 refuses by default
        # a queue that is neither durable nor exclusive.
        await ch.queue_declare(QUEUE, durable=True)
        # The default exchange ("") routes a message to the queue named by
        # its routing key.
        await ch.basic_publish(text.encode(), exchange="", routing_key=QUEUE)
        print(f"Sent {text!r}", flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except aiorabbit.AMQPError as exc:
        sys.exit(f"error: {type(exc).__name__}: {exc}")
    except KeyboardInterrupt:
        pass
