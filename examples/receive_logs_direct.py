"""Print the log messages of the given severities from the exchange "direct_logs".

    python examples/receive_logs_direct.py warning error            # until Ctrl-C
    python examples/receive_logs_direct.py --count 2 info warning error

The program binds its own exclusive queue once per severity: the direct
exchange then routes to it exactly the messages whose routing key is one of
them.
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
    parser.add_argument("severity", nargs="+", help="the severities to receive (info, warning, error...)")
    parser.add_argument(
        "--count", type=int, default=0, metavar="N", help="exit after N messages (default: run until Ctrl-C)"
    )
    args = parser.parse_args()

    async with aiorabbit.connect() as conn:
        ch = await conn.channel()
        await ch.exchange_declare(EXCHANGE, "direct")
        declared = await ch.queue_declare("", exclusive=True)
        # One binding per severity: a queue may have as many as it likes.
        for severity in args.severity:
            await ch.queue_bind(declared.queue, EXCHANGE, routing_key=severity)

        received = 0
        async with ch.consume(declared.queue, no_ack=True) as messages:
            print(f"Waiting for {', '.join(args.severity)} logs. To exit press Ctrl-C", flush=True)
            print("ready", flush=True)
            async for msg in messages:
                # The routing key the message was published with is its severity.
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
