"""``aiorabbit bench``: publish and consume throughput against a broker."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import sys
import time
from collections.abc import Awaitable, Coroutine
from typing import Any, TextIO

from ..channel import Channel
from ..connection import Connection
from .common import Formatter, connection, info, int_range, positive_float
from .errors import CliError, ExitCode

__all__ = ["Phase", "Progress", "add_parsers", "results_table"]

EPILOG = """\
publish sends --count messages of --size bytes to the queue (with --confirm,
WINDOW of them at most awaiting a confirm); consume takes --count messages
from it (the queue is filled first if it holds fewer); both runs a publisher
and a consumer at the same time, on two channels of one connection.

The queue is a temporary one, deleted at the end, unless --queue names one
that exists.  A progress bar is drawn on stderr when it is a terminal (or
with --progress); the results go to stdout, as a table or, with --json, as
JSON.  MB/s counts body bytes, in millions.

examples:
  aiorabbit bench
  aiorabbit bench --mode publish --count 1000000 --size 16 --confirm 500
  aiorabbit bench --mode consume --prefetch 50 --json
  aiorabbit declare queue bench-qq --quorum && aiorabbit bench --queue bench-qq --confirm
"""

#: Seconds without progress after which the benchmark gives up.
DEFAULT_STALL = 15.0
#: Progress bar redraws per second.
_REDRAW = 0.2
_BAR = 30


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


@dataclasses.dataclass
class Phase:
    """One measured side: how far it is, and when it started and ended."""

    name: str
    total: int
    done: int = 0
    started: float | None = None
    ended: float | None = None

    def start(self) -> None:
        self.started = time.perf_counter()

    def stop(self) -> None:
        self.ended = time.perf_counter()

    @property
    def seconds(self) -> float:
        if self.started is None:
            return 0.0
        return (self.ended if self.ended is not None else time.perf_counter()) - self.started

    @property
    def rate(self) -> float:
        """Messages per second so far."""
        seconds = self.seconds
        return self.done / seconds if seconds > 0 else 0.0

    def result(self, size: int) -> dict[str, Any]:
        rate = self.rate
        return {
            "phase": self.name,
            "messages": self.done,
            "bytes": self.done * size,
            "seconds": round(self.seconds, 6),
            "msg_per_s": round(rate, 1),
            "mb_per_s": round(rate * size / 1e6, 3),
        }


class Progress:
    """A one-line progress bar on ``stream``, redrawn a few times a second
    (``async with``); a no-op when not ``enabled``."""

    def __init__(self, phases: list[Phase], stream: TextIO, enabled: bool) -> None:
        self.phases = phases
        self.stream = stream
        self.enabled = enabled
        self._task: asyncio.Task[None] | None = None
        self._width = 0

    async def __aenter__(self) -> Progress:
        if self.enabled:
            self._task = asyncio.ensure_future(self._redraw())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            self.draw()
            self.stream.write("\n")
            self.stream.flush()

    async def _redraw(self) -> None:
        while True:
            self.draw()
            await asyncio.sleep(_REDRAW)

    def line(self) -> str:
        total = sum(p.total for p in self.phases)
        done = sum(min(p.done, p.total) for p in self.phases)
        fraction = done / total if total else 1.0
        filled = int(fraction * _BAR)
        sides = "  ".join(f"{p.name} {p.done:,}/{p.total:,} ({p.rate:,.0f}/s)" for p in self.phases)
        return f"[{'#' * filled}{'-' * (_BAR - filled)}] {fraction:4.0%}  {sides}"

    def draw(self) -> None:
        line = self.line()
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = len(line)


def results_table(results: list[dict[str, Any]]) -> str:
    """The results as an aligned text table."""
    lines = [f"{'phase':<8} {'messages':>12} {'bytes':>15} {'seconds':>9} {'msg/s':>12} {'MB/s':>9}"]
    for row in results:
        lines.append(
            f"{row['phase']:<8} {row['messages']:>12,} {row['bytes']:>15,} {row['seconds']:>9.3f} "
            f"{row['msg_per_s']:>12,.0f} {row['mb_per_s']:>9.2f}"
        )
    return "\n".join(lines)


def command(args: argparse.Namespace) -> Coroutine[Any, Any, int]:
    """Return the benchmark (every option was checked by the parser)."""
    return _bench(args)


async def _bench(args: argparse.Namespace) -> int:
    body = b"x" * args.size
    names = {"publish": ["publish"], "consume": ["consume"], "both": ["publish", "consume"]}[args.mode]
    phases = {name: Phase(name, args.count) for name in names}
    enabled = (sys.stderr.isatty() and not args.quiet) if args.progress is None else args.progress
    async with connection(args) as conn:
        ch = await conn.channel()
        queue = await _queue(ch, args)
        if args.mode == "consume":
            await _fill(ch, queue, body, args)
        work: list[Awaitable[None]] = []
        if "consume" in phases:
            work.append(_consume(conn, queue, args, phases["consume"]))
        if "publish" in phases:
            work.append(_publish(conn, queue, body, args.confirm, phases["publish"]))
        async with Progress(list(phases.values()), sys.stderr, enabled):
            await _watched(_all(work), list(phases.values()), conn, args.stall_timeout)
        if args.queue is None:
            await ch.queue_delete(queue)
    _print(args, queue, [phase.result(args.size) for phase in phases.values()])
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
    info(args, f"filling {queue!r} with {args.count - have:,} messages")
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
    where = ", ".join(f"{p.name} {p.done:,} of {p.total:,}" for p in phases)
    why = f": the broker blocks publishers ({conn.blocked_reason})" if conn.is_blocked else ""
    return f"no progress for {stall:g}s ({where}){why}"


def _print(args: argparse.Namespace, queue: str, results: list[dict[str, Any]]) -> None:
    settings = {
        "mode": args.mode,
        "count": args.count,
        "size": args.size,
        "confirm": args.confirm,
        "prefetch": args.prefetch,
        "no_ack": args.no_ack,
        "queue": args.queue,
    }
    if args.json:
        print(json.dumps({"settings": settings, "results": results}, indent=2))
        return
    sides = []
    if args.mode != "consume":
        sides.append(f"confirms, window {args.confirm:,}" if args.confirm else "no confirms")
    if args.mode != "publish":
        sides.append("no acks" if args.no_ack else f"prefetch {args.prefetch:,}")
    where = f"queue {queue!r}" if args.queue else "a temporary queue"
    print(f"{args.count:,} messages of {args.size:,} bytes, {args.mode}, {', '.join(sides)}, {where}")
    print(results_table(results))
