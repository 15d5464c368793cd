"""Process tasks from the work queue "task_queue", one at a time.

Start several workers: the broker hands each task to exactly one of them,
never giving a worker a new task before it acknowledged the previous one
(prefetch 1), so a busy worker is passed over for an idle one.

    python examples/worker.py                  # until Ctrl-C
    python examples/worker.py --count 5        # exit after 5 tasks
    python examples/worker.py --fast           # don't sleep (also: AIORABBIT_EXAMPLES_FAST=1)

"Work" is one second of asyncio.sleep() per dot in the task's text.  The task
is acknowledged only after the work is done: kill a worker mid-task and the
broker gives the task to another worker.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import aiorabbit

QUEUE = "task_queue"


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--count", type=int, default=0, metavar="N", help="exit after N tasks (default: run until Ctrl-C)"
    )
    parser.add_argument(
        "--fast",
        action="store_true",
        default=os.environ.get("AIORABBIT_EXAMPLES_FAST", "") not in ("", "0"),
        help="skip the one-second-per-dot sleeps (or set AIORABBIT_EXAMPLES_FAST=1)",
    )
    args = parser.parse_args()

    async with aiorabbit.connect() as conn:
        ch = await conn.channel()
        # Same arguments as new_task.py's declaration, or the broker refuses.
        await ch.queue_declare(QUEUE, durable=True)
        # Fair dispatch: at most one unacknowledged task per worker.
        await ch.basic_qos(prefetch_count=1)

        done = 0
        async with ch.consume(QUEUE) as tasks:
            print("Waiting for tasks. To exit press Ctrl-C", flush=True)
            print("ready", flush=True)
            async for task in tasks:
                text = task.body.decode("utf-8", "replace")
                print(f"Received {text!r}", flush=True)
                if not args.fast:
                    # Natively async "work": the event loop stays free (and
                    # heartbeats keep flowing) while we wait.
                    await asyncio.sleep(text.count("."))
                print(f"Done {text!r}", flush=True)
                # Manual acknowledgement, after the work: only now does the
                # broker delete the task and send us the next one.
                await task.ack()
                done += 1
                if done == args.count:
                    break


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except aiorabbit.AMQPError as exc:
        sys.exit(f"error: {type(exc).__name__}: {exc}")
    except KeyboardInterrupt:
        pass
