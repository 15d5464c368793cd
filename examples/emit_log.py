"""Broadcast a log message to every listener through the fanout exchange "logs".

    python examples/emit_log.py                     # "info: Hello World!"
    python examples/emit_log.py Disk almost full

A fanout exchange copies each message to every queue bound to it and ignores
the routing key.  With no ``receive_logs.py`` running the message goes
nowhere: that is the point of publish/subscribe.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import aiorabbit

EXCHANGE = "logs"


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("message", nargs="*", help='the log line (default: "info: Hello World!")')
    args = parser.parse_args()
    text = " ".join(args.message) or "info: Hello World!"

    async with aiorabbit.connect() as conn:
        ch = await conn.channel()
        await ch.exchange_declare(EXCHANGE, "fanout")
        # Publish to the exchange, not to a queue; a fanout exchange ignores
        # the routing key.
        await ch.basic_publish(text.encode(), exchange=EXCHANGE)
        print(f"Sent {text!r}", flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except aiorabbit.AMQPError as exc:
        sys.exit(f"error: {type(exc).__name__}: {exc}")
    except KeyboardInterrupt:
        pass
