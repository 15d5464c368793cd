"""The RPC tutorial's server: answer Fibonacci requests on the queue "rpc_queue".

    python examples/rpc_server.py                  # until Ctrl-C
    python examples/rpc_server.py --count 3        # exit after 3 requests

Each request's body is a number n, the reply fib(n).  aiorabbit.rpc.RpcServer
does the plumbing: it consumes the queue, awaits the handler, sends what it
returns to the caller's reply-to address with the caller's correlation id,
and only then acknowledges the request.  A handler that raises (the body is
not a number from 0 to 10000) makes the server send an error reply instead:
the client raises RemoteError.

Requests are taken one at a time (concurrency=1, so prefetch 1): start
several servers and the broker spreads the calls over them.  Once the
consumer is registered the program prints a line "ready".
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import aiorabbit
from aiorabbit.rpc import RpcServer

QUEUE = "rpc_queue"
MAX_N = 10_000


def fib(n: int) -> int:
    # The tutorial's recursive version takes seconds from n = 30 and would
    # block the event loop meanwhile; this one is instant.
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--count", type=int, default=0, metavar="N", help="exit after N requests (default: run until Ctrl-C)"
    )
    parser.add_argument("--queue", default=QUEUE, help=f"the request queue (default: {QUEUE})")
    args = parser.parse_args()

    handled = 0
    closing: list[asyncio.Task[None]] = []

    async def on_request(request: aiorabbit.IncomingMessage) -> bytes:
        nonlocal handled
        try:
            text = request.body.decode("utf-8", "replace")
            print(f"fib({text})", flush=True)
            n = int(text)  # ValueError: the caller gets RemoteError
            if not 0 <= n <= MAX_N:
                raise ValueError(f"n must be from 0 to {MAX_N}, not {n}")
            return str(fib(n)).encode()
        finally:
            handled += 1
            if handled == args.count:
                # close() waits for this handler's reply (and ack), so it
                # runs beside it, in a task of its own.
                closing.append(asyncio.ensure_future(server.close()))

    async with aiorabbit.connect() as conn:
        server = RpcServer(conn, args.queue, on_request, concurrency=1)
        # Declares the queue (the server may well start first), sets the
        # prefetch and starts consuming.
        async with server:
            print(f"Awaiting RPC requests on {args.queue!r}. To exit press Ctrl-C", flush=True)
            print("ready", flush=True)
            # Returns once close() is done; raises if the connection is lost.
            await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except aiorabbit.AMQPError as exc:
        sys.exit(f"error: {type(exc).__name__}: {exc}")
    except KeyboardInterrupt:
        pass  # Ctrl-C is the normal way to stop a server
