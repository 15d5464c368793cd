"""The RPC tutorial's client: ask rpc_server.py for Fibonacci numbers.

    python examples/rpc_client.py                  # fib(30)
    python examples/rpc_client.py 10 20 30         # three calls at once
    python examples/rpc_client.py --timeout 5 30   # give up after 5 seconds

aiorabbit.rpc.RpcClient sends each request with a correlation id of its own
and the reply-to address "amq.rabbitmq.reply-to" (RabbitMQ's direct
reply-to: no reply queue to declare), then matches each reply to its call.
Any number of calls can be in flight at once on its one channel.

A call fails, and the program prints "error: ..." and exits with status 1,
with RemoteError when the server's handler raised, MessageReturned at once
when no queue takes the request (no server declared "rpc_queue"), and
RpcTimeout when no reply came in time.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import aiorabbit
from aiorabbit.rpc import RpcClient

QUEUE = "rpc_queue"


def positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("n", nargs="*", default=["30"], help="the numbers to ask about (default: 30)")
    parser.add_argument(
        "--timeout", type=positive, default=30.0, help="seconds to wait for each reply (default: 30)"
    )
    parser.add_argument("--queue", default=QUEUE, help=f"the server's queue (default: {QUEUE})")
    args = parser.parse_args()

    async with aiorabbit.connect() as conn, RpcClient(conn, timeout=args.timeout) as rpc:
        for n in args.n:
            print(f"Requesting fib({n})", flush=True)
        # The calls go out together; each reply finds its call by correlation
        # id, whatever order the replies come back in.
        replies = await asyncio.gather(*(rpc.call(n.encode(), routing_key=args.queue) for n in args.n))
        for n, reply in zip(args.n, replies, strict=True):
            print(f"Got fib({n}) = {reply.body.decode()}", flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except aiorabbit.AMQPError as exc:
        sys.exit(f"error: {type(exc).__name__}: {exc}")
    except KeyboardInterrupt:
        pass
