"""Send a log message to the topic exchange "topic_logs".

    python examples/emit_log_topic.py                         # anonymous.info: Hello World!
    python examples/emit_log_topic.py kern.critical "A critical kernel error"

The routing key is a list of words separated by dots, here
"<facility>.<severity>".  Receivers bind with patterns in which "*" stands
for exactly one word and "#" for zero or more words.
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
    parser.add_argument(
        "routing_key", nargs="?", default="anonymous.info", help="e.g. kern.critical (default: %(default)s)"
    )
    parser.add_argument("message", nargs="*", help='the log line (default: "Hello World!")')
    args = parser.parse_args()
    text = " ".join(args.message) or "Hello World!"

    async with aiorabbit.connect() as conn:
        ch = await conn.channel()
        await ch.exchange_declare(EXCHANGE, "topic")
        await ch.basic_publish(text.encode(), exchange=EXCHANGE, routing_key=args.routing_key)
        print(f"Sent {args.routing_key!r}: {text!r}", flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except aiorabbit.AMQPError as exc:
        sys.exit(f"error: {type(exc).__name__}: {exc}")
    except KeyboardInterrupt:
        pass
