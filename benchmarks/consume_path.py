"""The client's consume path alone, against a scripted broker.

    python benchmarks/consume_path.py [--count N] [--size BYTES] [--runs R] [--uvloop]

RabbitMQ shares the CPU with the client and delivers at its own pace, so
client-side changes of a few percent drown in its noise.  Here a scripted
AMQP server (``tests/amqp_server.py``) in a process of its own writes
``count`` pre-encoded deliveries at once as soon as the consumer starts; the
client consumes them with ``async for`` and acks each, and only the client's
CPU time is measured.  Each run is a new connection; the median of ``runs``
is printed.  Uses aiorabbit's public API only, so the same script measures
any version of the client (put its tree first on ``PYTHONPATH``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


async def _serve(count: int, size: int) -> None:
    sys.path.insert(0, str(ROOT))
    from aiorabbit.codec import methods as m
    from tests.amqp_server import Peer, ScriptedServer

    body = b"x" * size

    async def consume(peer: Peer, channel: int, method: m.BasicConsume) -> bool:
        peer.send_method(channel, m.BasicConsumeOk(consumer_tag="bench"))
        frames: list[bytes] = []
        for tag in range(1, count + 1):
            deliver = m.BasicDeliver(consumer_tag="bench", delivery_tag=tag, redelivered=False,
                                     exchange="", routing_key="bench")
            frames.extend(peer.content_frames(channel, deliver, body))
        peer.send_raw(b"".join(frames))
        await peer.drain()
        return True

    async def script(peer: Peer) -> None:
        await peer.handshake()
        await peer.serve({m.BasicConsume: consume})

    async with ScriptedServer(script) as server:
        print(server.url, flush=True)
        await asyncio.Event().wait()


async def _consume(url: str, count: int) -> tuple[float, float]:
    import aiorabbit

    async with aiorabbit.connect(url, heartbeat=0) as conn:
        ch = await conn.channel()
        await ch.basic_qos(prefetch_count=1000)
        received = 0
        wall, cpu = time.perf_counter(), time.process_time()
        async with ch.consume("bench") as messages:
            async for msg in messages:
                msg.ack()
                received += 1
                if received == count:
                    break
        return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(_serve(args.count, args.size))
        return
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # the server: always this tree's
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", "--count", str(args.count), "--size", str(args.size)],
        stdout=subprocess.PIPE, text=True, env=env,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        if args.uvloop:
            import uvloop

            uvloop.install()
        cpus, rates = [], []
        for _ in range(args.runs):
            wall, cpu = asyncio.run(_consume(url, args.count))
            cpus.append(cpu / args.count * 1e6)
            rates.append(args.count / wall)
        import aiorabbit

        loop = "uvloop" if args.uvloop else "asyncio"
        print(f"{aiorabbit.__file__}: consume + ack, {args.size} B, {loop}: "
              f"{statistics.median(rates):,.0f} msg/s, {statistics.median(cpus):.2f} us CPU/msg "
              f"(runs: {', '.join(f'{c:.2f}' for c in cpus)})")
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
