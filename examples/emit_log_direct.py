"""Send a log message with a severity to the direct exchange "direct_logs".

    python examples/emit_log_direct.py                          # info: Hello World!
    python examples/emit_log_direct.py error "Run. Run. Or it will explode."

The severity is the routing key: a direct exchange delivers the message to
the queues bound with exactly that key, and to no other.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import aiorabbit

EXCHANGE = "direct_logs"


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("severity", nargs="?", default="info", help="info, warning, error... (default: info)")
    parser.add_argument("message", nargs="*", help='the log line (default: "Hello World!")')
    args = parser.parse_args()
    text = " ".join(args.message) or "Hello World!"

    async with aiorabbit.connect() as conn:
        ch = await conn.channel()
        await ch.exchange_declare(EXCHANGE, "direct")
        await ch.basic_publish(text.encode(), exchange=EXCHANGE, routing_key=args.severity)
        print(f"Sent {args.severity!r}: {text!r}", flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except aiorabbit.AMQPError as exc:
        sys.exit(f"error: {type(exc).__name__}: {exc}")
    except KeyboardInterrupt:
        pass
