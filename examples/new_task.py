"""Queue a task on the durable work queue "task_queue".

Each dot in the task stands for one second of work for ``worker.py``:

    python examples/new_task.py First message.
    python examples/new_task.py Second message..
    python examples/new_task.py Third message...

The queue is durable and the messages persistent (delivery_mode=2), so
queued tasks survive a broker restart; the channel uses publisher confirms,
so when this program says "Sent" the broker has taken responsibility for
the task.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import aiorabbit

QUEUE = "task_queue"


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("task", nargs="*", help='the task text (default: "Hello World!")')
    args = parser.parse_args()
    text = " ".join(args.task) or "Hello World!"

    async with aiorabbit.connect() as conn:
        # With publisher confirms, basic_publish() returns only once the
        # broker has acked the message (for a persistent message on a
        # durable queue: once it is safely stored).
        ch = await conn.channel(publisher_confirms=True)
        # durable=True: the queue itself survives a broker restart.  Every
        # declaration of a queue must agree on this, workers included.
        await ch.queue_declare(QUEUE, durable=True)
        await ch.basic_publish(
            text.encode(),
            routing_key=QUEUE,
            # delivery_mode=2 (DeliveryMode.PERSISTENT): write it to disk.
            properties=aiorabbit.Properties(delivery_mode=aiorabbit.DeliveryMode.PERSISTENT),
        )
        print(f"Sent {text!r}", flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except aiorabbit.AMQPError as exc:
        sys.exit(f"error: {type(exc).__name__}: {exc}")
    except KeyboardInterrupt:
        pass
