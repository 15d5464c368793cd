"""Run one client through one scenario, in a process of its own.

    python -m benchmarks.worker --client aiorabbit --scenario publish \
        --queue Q --size 64 --count 100000 [--loop default|uvloop]

Connects, times only the scenario (wall clock and this process's CPU), then
prints one JSON line: ``wall``, ``cpu`` (seconds), ``maxrss_kb`` (peak RSS of
the process), ``bytes`` (body bytes consumed) and, for ``rpc``, ``latencies``.
A fresh process per run keeps each client's peak RSS its own.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import json
import resource
import time
from typing import Any

CLIENTS = {
    "aiorabbit": "aiorabbit_client",
    "aiorabbit-blocking": "aiorabbit_blocking_client",
    "aio-pika": "aio_pika_client",
    "aiormq": "aiormq_client",
    "pika": "pika_client",
    "bare": "bare_client",
    "bare-multiack": "bare_multiack_client",
}
SCENARIOS = ("publish", "publish_confirms", "consume_ack", "consume_noack", "rpc")


def load(name: str) -> Any:
    return importlib.import_module(f"benchmarks.clients.{CLIENTS[name]}").CLIENT()


def is_async(client: Any) -> bool:
    return inspect.iscoroutinefunction(client.connect)


def _call(client: Any, args: argparse.Namespace) -> Any:
    body = b"x" * args.size
    if args.scenario in ("publish", "publish_confirms"):
        return client.publish(args.queue, body, args.count, args.scenario == "publish_confirms", args.window)
    if args.scenario in ("consume_ack", "consume_noack"):
        return client.consume(args.queue, args.count, args.scenario == "consume_noack", args.prefetch)
    return client.rpc(args.queue, body, args.count)


def _result(args: argparse.Namespace, wall: float, cpu: float, out: Any) -> dict[str, Any]:
    result: dict[str, Any] = {
        "wall": wall,
        "cpu": cpu,
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
    if args.scenario.startswith("consume"):
        result["bytes"] = out
    elif args.scenario == "rpc":
        result["latencies"] = out
    return result


async def run_async(client: Any, args: argparse.Namespace) -> dict[str, Any]:
    await client.connect(args.url)
    wall, cpu = time.perf_counter(), time.process_time()
    out = await _call(client, args)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    await client.close()
    return _result(args, wall, cpu, out)


def run_sync(client: Any, args: argparse.Namespace) -> dict[str, Any]:
    client.connect(args.url)
    wall, cpu = time.perf_counter(), time.process_time()
    out = _call(client, args)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    client.close()
    return _result(args, wall, cpu, out)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--client", choices=sorted(CLIENTS), required=True)
    parser.add_argument("--scenario", choices=SCENARIOS, required=True)
    parser.add_argument("--queue", required=True)
    parser.add_argument("--url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--window", type=int, default=1000)
    parser.add_argument("--prefetch", type=int, default=1000)
    parser.add_argument("--loop", choices=("default", "uvloop", "none"), default="default")
    args = parser.parse_args()
    client = load(args.client)
    if not is_async(client):
        result = run_sync(client, args)
    elif args.loop == "uvloop":
        import uvloop

        result = uvloop.run(run_async(client, args))
    else:
        result = asyncio.run(run_async(client, args))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
