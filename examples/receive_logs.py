"""Print every message broadcast on the fanout exchange "logs".

    python examples/receive_logs.py               # until Ctrl-C
    python examples/receive_logs.py --count 3     # exit after 3 messages

Each running copy gets its own copy of every message: it binds a fresh,
broker-named, exclusive queue to the exchange.  The queue lives only as long
as this program's connection, so nothing piles up once it exits.
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
    parser.add_argument(
        "--count", type=int, default=0, metavar="N", help="exit after N messages (default: run until Ctrl-C)"
    )
    args = parser.parse_args()

    async with aiorabbit.connect() as conn:
        ch = await conn.channel()
        await ch.exchange_declare(EXCHANGE, "fanout")
        # queue="" asks the broker to make up a unique name (amq.gen-...);
        # exclusive=True: only this connection may use it, and the broker
        # deletes it when the connection closes.
        declared = await ch.queue_declare("", exclusive=True)
        await ch.queue_bind(declared.queue, EXCHANGE)

        received = 0
        # no_ack=True: log lines are disposable, skip acknowledgements.
        async with ch.consume(declared.queue, no_ack=True) as messages:
            print(f"Waiting for logs on {declared.queue!r}. To exit press Ctrl-C", flush=True)
            print("ready", flush=True)
            async for msg in messages:
                print(f"Received {msg.body.decode('utf-8', 'replace')!r}", flush=True)
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
