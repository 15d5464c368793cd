"""``aiorabbit publish``: one message, repeated, or one per input line."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import threading
from collections.abc import AsyncIterator, Coroutine
from typing import Any, Protocol

from ..channel import Channel
from ..codec.properties import DeliveryMode, Properties
from ..connection import Connection
from ..exceptions import MessageReturned
from ..message import ReturnedMessage
from ..publisher import Publisher
from .common import Formatter, connection, info, int_range, messages, number, rate
from .errors import CliError, ExitCode
from .progress import Phase, Progress, on_terminal
from .values import parse_items, parse_timestamp

__all__ = ["add_parsers"]

EPILOG = """\
The body comes from BODY, from --file, or from stdin (BODY omitted or "-").
With --lines, each line of the file or stdin is a message of its own (empty
lines are skipped); the messages are published as the lines arrive.

Publisher confirms are on: the command returns once the broker has taken
every message, and each message gets a random message-id unless
--message-id is given.  --mandatory makes an unroutable message an error
(exit code 6).  A run of --count messages that lasts shows a progress line
on stderr when it is a terminal.

examples:
  aiorabbit publish -k jobs 'hello'                    # to the queue "jobs"
  aiorabbit publish -e events -k user.created --file event.json --content-type application/json
  echo '{"n": 1}' | aiorabbit publish -k jobs --persistent -H attempt:int=1 -H source=cli
  aiorabbit publish -e logs -k app.error --lines < errors.txt
  aiorabbit publish -k jobs --mandatory --count 1000 'load test'
"""

_STRING_PROPERTIES = (
    "content_type",
    "content_encoding",
    "correlation_id",
    "reply_to",
    "message_id",
    "type",
    "app_id",
    "user_id",
)
_READ_SIZE = 64 * 1024


def add_parsers(commands: Any) -> list[argparse.ArgumentParser]:
    parser: argparse.ArgumentParser = commands.add_parser(
        "publish",
        help="publish messages",
        description="Publish a message, repeated with --count, or one message per line with --lines.",
        epilog=EPILOG,
        formatter_class=Formatter,
    )
    parser.set_defaults(handler=command, sigterm_code=ExitCode.INTERRUPTED)
    source = parser.add_argument_group("body")
    source.add_argument("body", nargs="?", metavar="BODY", help='the message body (omitted or "-": stdin)')
    source.add_argument("-f", "--file", metavar="PATH", help="read the body from a file")
    source.add_argument(
        "-l", "--lines", "--line-mode", action="store_true",
        help="publish each line of the input as a message",
    )
    where = parser.add_argument_group("routing and delivery")
    where.add_argument("-e", "--exchange", default="", help="the exchange (default: the default exchange)")
    where.add_argument("-k", "--routing-key", default="", metavar="KEY", help="the routing key")
    where.add_argument(
        "-n", "--count", type=int_range(1), default=1, metavar="N", help="publish each message N times"
    )
    where.add_argument(
        "--mandatory", action="store_true", help="an unroutable message is an error (exit code 6)"
    )
    where.add_argument(
        "--no-confirm", dest="confirm", action="store_false", help="do not wait for publisher confirms"
    )
    where.add_argument(
        "--window", type=int_range(1), default=1000, metavar="N",
        help="at most N messages awaiting a confirm (default: %(default)s)",
    )
    _property_options(parser.add_argument_group("message properties"))
    return [parser]


def _property_options(group: Any) -> None:  # an argparse argument group
    group.add_argument(
        "-H", "--header", dest="headers", action="append", metavar="KEY[:TYPE]=VALUE",
        help="a header, repeatable; typed with int, bool, float, json... (see 'aiorabbit --help')",
    )
    group.add_argument("--content-type", metavar="MIME", help="e.g. application/json")
    group.add_argument("--content-encoding", metavar="ENCODING", help="e.g. gzip")
    mode = group.add_mutually_exclusive_group()
    mode.add_argument(
        "--persistent", dest="delivery_mode", action="store_const", const=DeliveryMode.PERSISTENT,
        help="delivery mode 2: written to disk by durable queues",
    )
    mode.add_argument(
        "--delivery-mode", type=_delivery_mode, metavar="{1,2,transient,persistent}",
        help="the delivery mode",
    )
    group.add_argument("--priority", type=int_range(0, 255), metavar="0-255", help="the message priority")
    group.add_argument("--correlation-id", metavar="ID")
    group.add_argument("--reply-to", metavar="QUEUE")
    group.add_argument(
        "--expiration", type=int_range(0), metavar="MS", help="per-message TTL in milliseconds"
    )
    group.add_argument("--message-id", metavar="ID")
    group.add_argument("--type", metavar="TYPE", help="the message type name")
    group.add_argument("--app-id", metavar="APP")
    group.add_argument("--user-id", metavar="USER", help="must be the connection's user (RabbitMQ checks it)")
    group.add_argument(
        "--timestamp", nargs="?", const="now", type=_timestamp, metavar="WHEN",
        help="now (without WHEN), seconds since the epoch, or ISO 8601 (UTC unless it says otherwise)",
    )


def _delivery_mode(text: str) -> int:
    names = {"1": 1, "2": 2, "transient": 1, "persistent": 2}
    if text.lower() not in names:
        raise argparse.ArgumentTypeError(f"{text!r} is not 1, 2, transient or persistent")
    return names[text.lower()]


def _timestamp(text: str) -> Any:
    try:
        return parse_timestamp(text)
    except (ValueError, OverflowError, OSError):
        raise argparse.ArgumentTypeError(f"{text!r} is not now, seconds or an ISO 8601 date-time") from None


# ----------------------------------------------------------------------
# before connecting: what to publish


def properties(args: argparse.Namespace) -> Properties | None:
    """The message properties the options ask for (``None``: none)."""
    fields: dict[str, Any] = {name: getattr(args, name) for name in _STRING_PROPERTIES}
    fields.update(delivery_mode=args.delivery_mode, priority=args.priority, timestamp=args.timestamp)
    if args.expiration is not None:
        fields["expiration"] = str(args.expiration)
    fields["headers"] = parse_items(args.headers) or None
    fields = {name: value for name, value in fields.items() if value is not None}
    if not fields:
        return None
    props = Properties(**fields)
    props.encode()  # a value too long for AMQP is a usage error, found before connecting
    return props


def command(args: argparse.Namespace) -> Coroutine[Any, Any, int]:
    """Check the options and read a whole body now (before the event loop,
    so that Ctrl-C interrupts a read from a terminal); return the publishing."""
    if args.body is not None and args.file is not None:
        raise CliError("give the body as an argument or with --file, not both")
    if args.lines and args.body not in (None, "-"):
        raise CliError("--lines reads the file or stdin: give no BODY")
    props = properties(args)
    if args.lines:
        bodies = _lines(_open(args.file), args.file or "stdin")
    else:
        bodies = _once(_read_body(args))
    return _publish(args, props, bodies)


def _read_body(args: argparse.Namespace) -> bytes:
    if args.file is not None:
        try:
            with open(args.file, "rb") as file:
                return file.read()
        except OSError as exc:
            raise CliError(f"cannot read {args.file}: {exc.strerror or exc}") from None
    if args.body not in (None, "-"):
        return os.fsencode(args.body)  # the argument's own bytes, even if not UTF-8
    if sys.stdin.isatty():
        info(args, "aiorabbit: reading the body from stdin (end it with Ctrl-D)")
    return sys.stdin.buffer.read()


def _open(path: str | None) -> int:
    if path is None:
        return sys.stdin.fileno()
    try:
        return os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


async def _lines(fd: int, name: str) -> AsyncIterator[bytes]:
    """The non-empty lines read from ``fd``, as they arrive."""
    pending = b""
    async for chunk in _chunks(fd, name):
        lines = (pending + chunk).split(b"\n")
        pending = lines.pop()
        for line in lines:
            if line.rstrip(b"\r"):
                yield line.rstrip(b"\r")
    if pending.rstrip(b"\r"):
        yield pending.rstrip(b"\r")


async def _chunks(fd: int, name: str) -> AsyncIterator[bytes]:
    """Chunks of ``fd`` read by a thread, so that a slow pipe or a terminal
    never blocks the event loop (and confirms keep flowing meanwhile).

    The thread uses ``os.read`` rather than ``sys.stdin``: a daemon thread
    blocked inside a buffered stream would hold its lock at exit."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[bytes | OSError] = asyncio.Queue(maxsize=16)

    def pump() -> None:
        while True:
            try:
                chunk: bytes | OSError = os.read(fd, _READ_SIZE)
            except OSError as exc:
                chunk = exc
            try:
                asyncio.run_coroutine_threadsafe(queue.put(chunk), loop).result()
            except (RuntimeError, asyncio.CancelledError):  # the loop is gone: nobody reads
                return
            if not chunk or isinstance(chunk, OSError):
                return

    threading.Thread(target=pump, name="aiorabbit-cli-reader", daemon=True).start()
    while True:
        chunk = await queue.get()
        if isinstance(chunk, OSError):
            raise CliError(f"cannot read {name}: {chunk.strerror or chunk}")
        if not chunk:
            return
        yield chunk


# ----------------------------------------------------------------------
# publishing


class _Sender(Protocol):
    #: ``done`` counts the messages published (confirmed, with confirms).
    phase: Phase

    async def send(self, body: bytes, props: Properties | None) -> None: ...

    async def finish(self) -> None: ...


class _Confirmed:
    """Publishes through a :class:`Publisher`, up to ``window`` at a time."""

    def __init__(self, publisher: Publisher, args: argparse.Namespace, phase: Phase) -> None:
        self._publisher = publisher
        self._args = args
        self._slots = asyncio.Semaphore(args.window)
        self._tasks: set[asyncio.Task[str]] = set()
        self._error: BaseException | None = None
        self.phase = phase

    async def send(self, body: bytes, props: Properties | None) -> None:
        await self._slots.acquire()
        if self._error is not None:  # stop at the first failure
            self._slots.release()
            raise self._error
        args = self._args
        task = asyncio.ensure_future(
            self._publisher.publish(
                body, exchange=args.exchange, routing_key=args.routing_key, properties=props,
                mandatory=args.mandatory,
            )
        )
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[str]) -> None:
        self._tasks.discard(task)
        self._slots.release()
        if task.cancelled():
            return
        error = task.exception()  # (retrieved, even when it is not the first)
        if error is None:
            self.phase.done += 1
        elif self._error is None:
            self._error = error

    async def finish(self) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        if self._error is not None:
            raise self._error


class _Unconfirmed:
    """Publishes on a plain channel; a round trip at the end makes sure the
    broker got everything (and has sent back what it could not route)."""

    def __init__(self, channel: Channel, args: argparse.Namespace, phase: Phase) -> None:
        self._channel = channel
        self._args = args
        self._returned: list[ReturnedMessage] = []
        channel.on_return = self._returned.append
        self.phase = phase

    async def send(self, body: bytes, props: Properties | None) -> None:
        args = self._args
        await self._channel.basic_publish(
            body, exchange=args.exchange, routing_key=args.routing_key, properties=props,
            mandatory=args.mandatory,
        )
        self.phase.done += 1

    async def finish(self) -> None:
        # Returns and channel errors come before the reply to a later method.
        await self._channel.basic_qos(prefetch_count=0)
        if self._returned:
            self.phase.done -= len(self._returned)
            raise MessageReturned(self._returned[0])


async def _publish(args: argparse.Namespace, props: Properties | None, bodies: AsyncIterator[bytes]) -> int:
    # The total is known for one body (with --lines, the lines are still to come).
    phase = Phase("publish", 0 if args.lines else args.count)
    size = 0
    async with connection(args) as conn:
        sender = await _sender(conn, args, phase)
        phase.start()
        async with Progress([phase], sys.stderr, not args.lines and on_terminal(args)):
            async for body in bodies:
                for _ in range(args.count):
                    await sender.send(body, props)
                    size += len(body)
            await sender.finish()
            phase.stop()
    info(args, _summary(args, phase, size))
    return ExitCode.OK


async def _sender(conn: Connection, args: argparse.Namespace, phase: Phase) -> _Sender:
    if args.confirm:
        return _Confirmed(await Publisher(conn, window=args.window).start(), args, phase)
    return _Unconfirmed(await conn.channel(), args, phase)


def _summary(args: argparse.Namespace, phase: Phase, size: int) -> str:
    """``published 12,345 messages (790,080 bytes) to ... in 0.52s (23,740
    msg/s), confirmed``: the time from the first publish to the last confirm."""
    if args.exchange:
        target = f"exchange {args.exchange!r} with routing key {args.routing_key!r}"
    else:
        target = f"queue {args.routing_key!r} (default exchange)"
    confirmed = "confirmed" if args.confirm else "not confirmed"
    return (
        f"published {messages(phase.done)} ({number(size)} bytes) to {target} "
        f"in {phase.seconds:.2f}s ({rate(phase.done, phase.seconds)}), {confirmed}"
    )
