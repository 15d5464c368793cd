"""Publish a batch of messages with publisher confirms and report the rate.

    python examples/publish_confirm.py                         # 10000 messages
    python examples/publish_confirm.py --count 50000 --size 1024 --batch-size 5000
    python examples/publish_confirm.py --queue bench           # keep them in "bench"

With publisher confirms each ``basic_publish()`` waits for the broker's ack.
Awaiting them one after the other would cost a network round trip per
message; starting a whole batch with ``asyncio.gather`` keeps many publishes
in flight and the broker acks them in bulk.  The batch size bounds how many
are in flight (and in memory) at once.

By default the messages go to a temporary exclusive queue that disappears
when the program exits; with ``--queue`` they stay in that queue.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import aiorabbit


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=positive, default=10_000, help="messages to publish (default: 10000)")
    parser.add_argument("--size", type=int, default=128, help="body size in bytes (default: 128)")
    parser.add_argument(
        "--batch-size", type=positive, default=1_000, help="publishes in flight at once (default: 1000)"
    )
    parser.add_argument("--queue", default="", help="publish to this queue (default: a temporary one)")
    args = parser.parse_args()

    async with aiorabbit.connect() as conn:
        ch = await conn.channel(publisher_confirms=True)
        if args.queue:
            queue = (await ch.queue_declare(args.queue, durable=True)).queue
        else:
            queue = (await ch.queue_declare("", exclusive=True)).queue
        body = b"x" * args.size

        failures: list[aiorabbit.AMQPError] = []
        started = time.perf_counter()
        for offset in range(0, args.count, args.batch_size):
            size = min(args.batch_size, args.count - offset)
            # mandatory=True: a message no queue takes comes back as
            # MessageReturned instead of being silently dropped.
            results = await asyncio.gather(
                *(ch.basic_publish(body, routing_key=queue, mandatory=True) for _ in range(size)),
                return_exceptions=True,
            )
            for result in results:
                if isinstance(result, (aiorabbit.PublishNacked, aiorabbit.MessageReturned)):
                    failures.append(result)  # this one message was refused: keep counting
                elif isinstance(result, BaseException):
                    raise result  # the channel or connection is gone: give up
        elapsed = time.perf_counter() - started

        confirmed = args.count - len(failures)
        rate = args.count / elapsed if elapsed > 0 else float("inf")
        print(
            f"Published {args.count} messages of {args.size} bytes to {queue!r} "
            f"in {elapsed:.3f} s: {rate:,.0f} msg/s",
            flush=True,
        )
        print(f"Confirmed {confirmed} of {args.count} messages", flush=True)
        if failures:
            raise failures[0]


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except aiorabbit.AMQPError as exc:
        sys.exit(f"error: {type(exc).__name__}: {exc}")
    except KeyboardInterrupt:
        pass
