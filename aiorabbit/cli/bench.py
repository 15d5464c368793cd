"""``aiorabbit bench``: publish and consume throughput against a broker."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Awaitable, Coroutine
from typing import Any

from ..channel import Channel
from ..connection import Connection
from .common import Formatter, connection, info, int_range, loop_name, messages, number, positive_float
from .errors import CliError, ExitCode
from .progress import Phase, Progress, on_terminal

__all__ = ["add_parsers", "phase_result", "print_results", "results_table"]

EPILOG = """\
publish sends --count messages of --size bytes to the queue (with --confirm,
WINDOW of them at most awaiting a confirm); consume takes --count messages
from it (the queue is filled first if it holds fewer); both runs a publisher
and a consumer at the same time, on two channels of one connection.

The queue is a temporary one, deleted at the end, unless --queue names one
that exists.  A progress bar is drawn on stderr when it is a terminal (or
with --progress); the results go to stdout, as a table or, with --json, as
JSON.  MB/s counts body bytes, in millions.  Ctrl-C stops the benchmark and
prints what it measured so far, the current phase marked as interrupted
(exit code 130).

examples:
  aiorabbit bench
  aiorabbit bench --mode publish --count 1000000 --size 16 --confirm 500
  aiorabbit bench --mode consume --prefetch 50 --json
  aiorabbit declare queue bench-qq --quorum && aiorabbit bench --queue bench-qq --confirm
"""

#: Seconds without progress after which the benchmark gives up.
DEFAULT_STALL = 15.0


def add_parsers(commands: Any) -> list[argparse.ArgumentParser]:
    parser: argparse.ArgumentParser = commands.add_parser(
        "bench",
        help="measure publish and consume throughput",
        description="Measure publish and consume throughput against the broker.",
        epilog=EPILOG,
        formatter_class=Formatter,
    )
    parser.set_defaults(handler=command, sigterm_code=ExitCode.INTERRUPTED)
    parser.add_argument(
        "--mode", choices=("publish", "consume", "both"), default="both",
        help="what to measure (default: both)",
    )
    parser.add_argument(
        "-n", "--count", type=int_range(1), default=100_000, metavar="N", help="messages (default: 100,000)"
    )
    parser.add_argument(
        "--size", type=int_range(0), default=64, metavar="BYTES", help="body size (default: 64)"
    )
    parser.add_argument(
        "--confirm", nargs="?", type=int_range(0), const=1000, default=0, metavar="WINDOW",
        help="publish with confirms, WINDOW awaiting at most (default without WINDOW: 1000)",
    )
    parser.add_argument(
        "--prefetch", type=int_range(0, 65535), default=1000, metavar="N",
        help="consumer prefetch (default: 1000)",
    )
    parser.add_argument("--no-ack", action="store_true", help="consume without acknowledgements")
    parser.add_argument(
        "--queue", metavar="QUEUE", help="an existing queue to use (default: a temporary one)"
    )
    parser.add_argument(
        "--progress", action=argparse.BooleanOptionalAction, default=None,
        help="draw a progress bar on stderr (default: when stderr is a terminal)",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--stall-timeout", type=positive_float, default=DEFAULT_STALL, metavar="SECONDS",
        help=f"give up after this long without progress (default: {DEFAULT_STALL:g})",
    )
    return [parser]


def phase_result(phase: Phase, size: int) -> dict[str, Any]:
    """One row of the results: what ``phase`` measured (so far)."""
    rate = phase.rate
    return {
        "phase": phase.name,
        "messages": phase.done,
        "bytes": phase.done * size,
        "seconds": round(phase.seconds, 6),
        "msg_per_s": round(rate, 1),
        "mb_per_s": round(rate * size / 1e6, 3),
        "complete": phase.complete,
    }


def results_table(results: list[dict[str, Any]], totals: dict[str, int] | None = None) -> str:
    """The results as an aligned text table; a phase that is not complete is
    marked as interrupted (``totals``: the messages each phase was to move)."""
    lines = [f"{'phase':<8} {'messages':>12} {'bytes':>15} {'seconds':>9} {'msg/s':>12} {'MB/s':>9}"]
    for row in results:
        line = (
            f"{row['phase']:<8} {number(row['messages']):>12} {number(row['bytes']):>15} "
            f"{row['seconds']:>9.3f} {number(row['msg_per_s']):>12} {row['mb_per_s']:>9.2f}"
        )
        if not row.get("complete", True):
            total = (totals or {}).get(row["phase"])
            line += "  interrupted"
            if total:  # rounded down: 99.9% is not done
                line += f" ({100 * row['messages'] // total}% of {number(total)})"
        lines.append(line)
    return "\n".join(lines)


def command(args: argparse.Namespace) -> Coroutine[Any, Any, int]:
    """Return the benchmark (every option was checked by the parser)."""
    return _bench(args)


async def _bench(args: argparse.Namespace) -> int:
    body = b"x" * args.size
    names = {"publish": ["publish"], "consume": ["consume"], "both": ["publish", "consume"]}[args.mode]
    phases = [Phase(name, args.count) for name in names]
    loop = loop_name()
    if args.progress is None:
        progress = Progress(phases, sys.stderr, on_terminal(args))
    else:
        progress = Progress(phases, sys.stderr, args.progress, delay=0)  # from the start
    printed = False
    try:
        async with connection(args) as conn:
            ch = await conn.channel()
            queue = await _queue(ch, args)
            if args.mode == "consume":
                await _fill(ch, queue, body, args)
            work: list[Awaitable[None]] = []  # the consumer first: it is there when messages come
            for phase in reversed(phases):
                if phase.name == "consume":
                    work.append(_consume(conn, queue, args, phase))
                else:
                    work.append(_publish(conn, queue, body, args.confirm, phase))
            async with progress:
                try:
                    await _watched(_all(work), phases, conn, args.stall_timeout)
                except asyncio.CancelledError:
                    # Ctrl-C (or SIGTERM): what was measured so far, at once (closing
                    # the connection can take seconds after a flood of publishes).
                    for phase in phases:
                        if phase.started is not None and phase.ended is None:
                            phase.stop()
                    progress.finish()
                    print_results(args, phases, loop, interrupted=True)
                    printed = True
                    raise
            if args.queue is None:
                await ch.queue_delete(queue)
    except asyncio.CancelledError:  # then exit code 130
        if printed:
            raise
        if any(phase.started is not None for phase in phases):  # while deleting the queue
            print_results(args, phases, loop, interrupted=True)
        else:  # while connecting, or filling the queue
            info(args, "bench: interrupted before anything was measured")
        raise
    print_results(args, phases, loop)
    return ExitCode.OK


async def _all(work: list[Awaitable[None]]) -> None:
    await asyncio.gather(*work)


async def _queue(ch: Channel, args: argparse.Namespace) -> str:
    if args.queue is not None:
        await ch.queue_declare(args.queue, passive=True)  # it must exist
        return str(args.queue)
    # Exclusive: the broker deletes it even if the benchmark dies.
    return (await ch.queue_declare("", exclusive=True)).queue


async def _fill(ch: Channel, queue: str, body: bytes, args: argparse.Namespace) -> None:
    """Make sure ``queue`` holds ``--count`` messages (not measured)."""
    have = (await ch.queue_declare(queue, passive=True)).message_count
    if have >= args.count:
        return
    info(args, f"filling {queue!r} with {messages(args.count - have)}")
    filling = Phase("fill", args.count, have)
    for _ in range(args.count - have):
        await ch.basic_publish(body, routing_key=queue)
    await _watched(_until_ready(ch, queue, filling), [filling], ch.connection, args.stall_timeout)


async def _until_ready(ch: Channel, queue: str, filling: Phase) -> None:
    # The broker's count lags the socket: poll it (there is nothing to wait on).
    while filling.done < filling.total:
        await asyncio.sleep(0.05)
        filling.done = (await ch.queue_declare(queue, passive=True)).message_count


async def _publish(conn: Connection, queue: str, body: bytes, window: int, phase: Phase) -> None:
    ch = await conn.channel(publisher_confirms=bool(window))
    phase.start()
    if window:
        # ``window`` publishers with one confirm awaited each: a full window.
        shares = [phase.total // window + (i < phase.total % window) for i in range(min(window, phase.total))]
        await asyncio.gather(*(_publish_some(ch, queue, body, share, phase) for share in shares))
    else:
        await _publish_some(ch, queue, body, phase.total, phase)
        await ch.basic_qos(prefetch_count=0)  # a round trip: the broker has them all
    phase.stop()
    await ch.close()


async def _publish_some(ch: Channel, queue: str, body: bytes, count: int, phase: Phase) -> None:
    for _ in range(count):
        await ch.basic_publish(body, routing_key=queue)
        phase.done += 1


async def _consume(conn: Connection, queue: str, args: argparse.Namespace, phase: Phase) -> None:
    ch = await conn.channel()
    await ch.basic_qos(prefetch_count=args.prefetch)
    async with ch.consume(queue, no_ack=args.no_ack) as messages:
        phase.start()
        async for msg in messages:
            if not args.no_ack:
                msg.ack()
            phase.done += 1
            if phase.done >= phase.total:
                break
        phase.stop()
    await ch.close()


async def _watched(work: Awaitable[None], phases: list[Phase], conn: Connection, stall: float) -> None:
    """Await ``work``, giving up once ``phases`` made no progress for ``stall`` seconds."""
    task = asyncio.ensure_future(work)
    last, since = -1, time.monotonic()
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=0.5)
            progress = sum(p.done for p in phases)
            if progress != last:
                last, since = progress, time.monotonic()
            elif time.monotonic() - since > stall and not task.done():
                raise CliError(_stalled(phases, conn, stall), ExitCode.ERROR)
        task.result()
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def _stalled(phases: list[Phase], conn: Connection, stall: float) -> str:
    where = ", ".join(f"{p.name} {number(p.done)} of {number(p.total)}" for p in phases)
    why = f": the broker blocks publishers ({conn.blocked_reason})" if conn.is_blocked else ""
    return f"no progress for {stall:g}s ({where}){why}"


def print_results(
    args: argparse.Namespace, phases: list[Phase], loop: str, *, interrupted: bool = False
) -> None:
    """Print the settings and what ``phases`` measured, as a table or as JSON;
    after an interruption, a phase that did not finish is marked as such."""
    results = [phase_result(phase, args.size) for phase in phases]
    settings = {
        "mode": args.mode,
        "count": args.count,
        "size": args.size,
        "confirm": args.confirm,
        "prefetch": args.prefetch,
        "no_ack": args.no_ack,
        "queue": args.queue,
        "loop": loop,
    }
    if args.json:
        report = {"settings": settings, "results": results, "interrupted": interrupted}
        print(json.dumps(report, indent=2), flush=True)
        return
    sides = []
    if args.mode != "consume":
        sides.append(f"confirms, window {number(args.confirm)}" if args.confirm else "no confirms")
    if args.mode != "publish":
        sides.append("no acks" if args.no_ack else f"prefetch {number(args.prefetch)}")
    where = f"queue {args.queue!r}" if args.queue else "a temporary queue"
    print(
        f"{messages(args.count)} of {number(args.size)} bytes, {args.mode}, {', '.join(sides)}, {where}, "
        f"{loop} loop"
    )
    print(results_table(results, {phase.name: phase.total for phase in phases}), flush=True)
