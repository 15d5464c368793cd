"""Print the messages of the topic exchange "topic_logs" matching binding keys.

    python examples/receive_logs_topic.py "#"                      # everything
    python examples/receive_logs_topic.py "kern.*"                 # all kernel logs
    python examples/receive_logs_topic.py "kern.*" "*.critical"    # kernel or critical
    python examples/receive_logs_topic.py --count 3 "*.critical"   # exit after 3

In a binding key "*" matches exactly one word and "#" zero or more words:
"kern.*" matches "kern.info" but not "kern.disk.info"; a message matching
several bindings of one queue still arrives only once.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import aiorabbit

EXCHANGE = "topic_logs"


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("binding_key", nargs="+", help='patterns such as "kern.*" "*.critical" "#"')
    parser.add_argument(
        "--count", type=int, default=0, metavar="N", help="exit after N messages (default: run until Ctrl-C)"
    )
    args = parser.parse_args()

    async with aiorabbit.connect() as conn:
        ch = await conn.channel()
        await ch.exchange_declare(EXCHANGE, "topic")
        declared = await ch.queue_declare("", exclusive=True)
        for binding_key in args.binding_key:
            await ch.queue_bind(declared.queue, EXCHANGE, routing_key=binding_key)

        received = 0
        async with ch.consume(declared.queue, no_ack=True) as messages:
            print(f"Waiting for logs matching {' '.join(args.binding_key)}. To exit press Ctrl-C", flush=True)
            print("ready", flush=True)
            async for msg in messages:
                text = msg.body.decode("utf-8", "replace")
                print(f"Received {msg.routing_key!r}: {text!r}", flush=True)
                received += 1
                if received == args.count:
                    break


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except aiorabbit.AMQPError as exc:
        sys.exit(f"error: {type(exc).__name__}: {exc}")
    except KeyboardInterrupt:
        pass
