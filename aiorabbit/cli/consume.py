"""``aiorabbit consume``: print messages, or write them to files."""

from __future__ import annotations

import argparse
import asyncio
import base64
import dataclasses
import datetime
import decimal
import json
import mimetypes
import sys
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, BinaryIO

from ..consumer import Consumer
from ..message import IncomingMessage
from .common import (
    Formatter,
    add_arguments_option,
    connection,
    info,
    int_range,
    messages,
    positive_float,
    rate,
    table_arguments,
)
from .errors import CliError, ExitCode
from .progress import Phase, Progress, is_terminal, on_terminal

__all__ = ["add_parsers", "jsonable", "message_record"]

EPILOG = """\
Each message is acknowledged once it has been printed or written, so a
message is only removed from the queue once it is safe.  --no-ack removes
messages as they are delivered; --requeue returns every message to the queue
when the command ends (a peek: they come back marked redelivered).  Messages
received but not yet printed when the command stops go back to the queue.

The command runs until --count messages arrived, the queue stayed idle for
--timeout seconds, or Ctrl-C (exit code 130) or SIGTERM (exit code 0).
With --count, a run that lasts shows a progress line on stderr when it is a
terminal and stdout is not (the messages go to a file or a pipe).

--format json prints one object per line: exchange, routing_key,
redelivered, properties, headers and the body (as text when it is UTF-8,
else base64, as body_encoding says).  With --output-dir each body goes to a
file of its own (000001.json, 000002.bin... by content type) whose path is
printed, or with --format json is the "file" field.

examples:
  aiorabbit consume jobs --count 1
  aiorabbit consume jobs --requeue --count 10 --format json   # peek
  aiorabbit consume jobs --timeout 5 --output-dir ./messages
  aiorabbit consume events --no-ack | grep error
  aiorabbit consume my-stream --prefetch 100 -a x-stream-offset=first --count 5
"""

#: The prefetch when --prefetch is not given.
DEFAULT_PREFETCH = 100
_MAX_PREFETCH = 65535


def add_parsers(commands: Any) -> list[argparse.ArgumentParser]:
    parser: argparse.ArgumentParser = commands.add_parser(
        "consume",
        help="consume messages from a queue",
        description="Consume messages from QUEUE and print them, or write them to files.",
        epilog=EPILOG,
        formatter_class=Formatter,
    )
    parser.set_defaults(handler=command, sigterm_code=ExitCode.OK)
    parser.add_argument("queue", metavar="QUEUE", help="the queue to consume from")
    parser.add_argument("-n", "--count", type=int_range(1), metavar="N", help="stop after N messages")
    parser.add_argument(
        "--timeout", type=positive_float, metavar="SECONDS", help="stop once no message came for SECONDS"
    )
    settle = parser.add_mutually_exclusive_group()
    settle.add_argument("--no-ack", action="store_true", help="remove messages from the queue as they arrive")
    settle.add_argument(
        "--requeue", action="store_true", help="return the messages to the queue at the end (peek)"
    )
    parser.add_argument(
        "--prefetch", type=int_range(0, _MAX_PREFETCH), metavar="N",
        help=f"messages delivered ahead of printing (default: {DEFAULT_PREFETCH}, at most --count)",
    )
    output = parser.add_argument_group("output")
    output.add_argument(
        "--format", choices=("body", "json", "raw"), default="body",
        help="body: each body and a newline (default); json: a JSON line per message; "
        "raw: the bodies as they are, nothing in between",
    )
    output.add_argument(
        "-v", "--verbose", dest="format", action="store_const", const="json", help="same as --format json"
    )
    output.add_argument("-o", "--output-dir", metavar="DIR", help="write each body to a file in DIR")
    add_arguments_option(parser, "a consumer argument (e.g. x-stream-offset, x-priority)")
    return [parser]


# ----------------------------------------------------------------------
# output


def jsonable(value: Any) -> Any:
    """``value`` (a property or field-table value) as JSON can hold it."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)  # the table's sized ints are int subclasses
    if isinstance(value, float):
        return float(value)
    if isinstance(value, (bytes, bytearray)):
        return _text(bytes(value))[0]
    if isinstance(value, datetime.datetime):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    return str(value)


def _text(body: bytes) -> tuple[str, str]:
    """The body as text and ``"text"``, or as base64 and ``"base64"``."""
    try:
        return body.decode("utf-8"), "text"
    except UnicodeDecodeError:
        return base64.b64encode(body).decode("ascii"), "base64"


def message_record(msg: IncomingMessage, file: Path | None = None) -> dict[str, Any]:
    """The JSON object printed for ``msg`` (``file``: where its body went)."""
    props = msg.properties.as_dict()
    headers = props.pop("headers", None) or {}
    record: dict[str, Any] = {
        "exchange": msg.exchange,
        "routing_key": msg.routing_key,
        "redelivered": msg.redelivered,
        "properties": jsonable(props),
        "headers": jsonable(headers),
    }
    if file is not None:
        record["file"] = str(file)
    else:
        record["body"], record["body_encoding"] = _text(msg.body)
    return record


class _Sink:
    """Writes each message to stdout, as the format says."""

    def __init__(self, fmt: str, out: BinaryIO) -> None:
        self.fmt = fmt
        self.out = out

    def write(self, msg: IncomingMessage) -> None:
        if self.fmt == "json":
            self.emit(_json_line(message_record(msg)))
        elif self.fmt == "raw":
            self.emit(msg.body)
        else:
            self.emit(msg.body + b"\n")

    def emit(self, data: bytes) -> None:
        """Write all of ``data`` to stdout before the message is acked.  A
        buffered write can stop short when the reader goes away (``| head``):
        writing the rest raises BrokenPipeError instead of losing the message."""
        view = memoryview(data)
        while view:
            view = view[self.out.write(view) :]
        self.out.flush()


class _DirSink(_Sink):
    """Writes each body to a new file in a directory, and prints its path."""

    def __init__(self, fmt: str, out: BinaryIO, directory: Path) -> None:
        super().__init__(fmt, out)
        self.directory = directory
        # Number on from an earlier run's files, whatever their suffix.
        self.number = max((int(p.name[:6]) for p in directory.iterdir() if p.name[:6].isdigit()), default=0)

    def write(self, msg: IncomingMessage) -> None:
        path = self._new_file(msg)
        if self.fmt == "json":
            self.emit(_json_line(message_record(msg, path)))
        else:
            self.emit(str(path).encode() + b"\n")

    def _new_file(self, msg: IncomingMessage) -> Path:
        suffix = _suffix(msg.properties.content_type)
        while True:  # never overwrite a file (another consume may write there too)
            self.number += 1
            path = self.directory / f"{self.number:06d}{suffix}"
            try:
                with path.open("xb") as file:
                    file.write(msg.body)
                return path
            except FileExistsError:
                continue
            except OSError as exc:
                raise CliError(f"cannot write {path}: {exc.strerror or exc}", ExitCode.ERROR) from None


def _suffix(content_type: str | None) -> str:
    if content_type:
        guessed = mimetypes.guess_extension(content_type.split(";")[0].strip())
        if guessed:
            return guessed
    return ".bin"


def _sink(args: argparse.Namespace) -> _Sink:
    out = sys.stdout.buffer
    if args.output_dir is None:
        return _Sink(args.format, out)
    directory = Path(args.output_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot create {directory}: {exc.strerror or exc}") from None
    return _DirSink(args.format, out, directory)


# ----------------------------------------------------------------------
# consuming


@dataclasses.dataclass
class _Plan:
    """How the options translate into consuming and settling."""

    prefetch: int
    no_ack: bool  # a no-ack consumer
    ack_first: bool  # ack on arrival, before printing (--no-ack with --count)
    hold: bool  # settle nothing until the end, then requeue (--requeue)

    @classmethod
    def of(cls, args: argparse.Namespace) -> _Plan:
        prefetch = DEFAULT_PREFETCH if args.prefetch is None else args.prefetch
        if args.requeue:
            # Held messages count against the prefetch: it must hold them all
            # (0 is no limit, also past the largest prefetch AMQP can carry).
            prefetch = 0 if args.count is None or args.count > _MAX_PREFETCH else max(prefetch, args.count)
        elif args.count is not None and prefetch:
            prefetch = min(prefetch, args.count)  # take no more than needed
        # A no-ack consumer gets everything the queue has (the broker ignores
        # the prefetch), more than --count wants: ack on arrival instead.
        ack_first = args.no_ack and args.count is not None
        return cls(prefetch, args.no_ack and not ack_first, ack_first, args.requeue)


def command(args: argparse.Namespace) -> Coroutine[Any, Any, int]:
    """Check the options (and create --output-dir); return the consuming."""
    arguments = table_arguments(args)
    return _consume(args, _Plan.of(args), _sink(args), arguments)


async def _consume(
    args: argparse.Namespace, plan: _Plan, sink: _Sink, arguments: dict[str, Any] | None
) -> int:
    phase = Phase("consume", args.count or 0)
    last = 0.0  # when the last message was handled: the idle --timeout is not counted
    held: IncomingMessage | None = None
    report = False
    async with connection(args) as conn:
        ch = await conn.channel()
        await ch.basic_qos(prefetch_count=plan.prefetch)
        try:
            async with (
                ch.consume(args.queue, no_ack=plan.no_ack, arguments=arguments) as consumer,
                Progress([phase], sys.stderr, _progress_wanted(args)),
            ):
                report = True
                phase.start()
                while args.count is None or phase.done < args.count:
                    msg = await _next(consumer, args.timeout)
                    if msg is None:
                        break
                    if plan.ack_first:
                        msg.ack()
                    sink.write(msg)
                    phase.done += 1
                    last = time.perf_counter()
                    if plan.hold:
                        held = msg
                    elif not plan.no_ack and not plan.ack_first:
                        msg.ack()
                phase.ended = last or None
        except asyncio.CancelledError:
            phase.ended = last or None
            raise  # interrupted (Ctrl-C, SIGTERM): still a summary
        except BaseException:
            report = False  # the error says it all
            raise
        finally:
            # After the consumer is cancelled, so that they are not redelivered to it.
            if held is not None and ch.is_open:
                held.nack(multiple=True, requeue=True)
            if report:
                info(args, _summary(args, plan, phase))
    return ExitCode.OK


def _progress_wanted(args: argparse.Namespace) -> bool:
    """A progress line for --count on a terminal, unless the messages are
    printed on that terminal too (stdout): they are the progress there."""
    return args.count is not None and on_terminal(args) and not is_terminal(sys.stdout)


async def _next(messages: Consumer, timeout: float | None) -> IncomingMessage | None:
    """The next message, or ``None`` once the queue was idle for ``timeout``."""
    try:
        if timeout is None:
            return await messages.__anext__()
        return await messages.get(timeout)
    except (asyncio.TimeoutError, StopAsyncIteration):
        return None


def _summary(args: argparse.Namespace, plan: _Plan, phase: Phase) -> str:
    """``consumed 12,345 messages from 'jobs' in 0.52s (23,740 msg/s),
    acknowledged``: the time from the start of the consumer to the last message."""
    if plan.hold:
        settled = "returned to the queue"
    elif args.no_ack:
        settled = "removed on delivery"
    else:
        settled = "acknowledged"
    took = f" in {phase.seconds:.2f}s ({rate(phase.done, phase.seconds)})" if phase.done else ""
    return f"consumed {messages(phase.done)} from {args.queue!r}{took}, {settled}"


def _json_line(record: dict[str, Any]) -> bytes:
    """One JSON line.  A routing key or header another client wrote as
    non-UTF-8 bytes holds lone surrogates: they become ``\\udcXX`` escapes,
    which a JSON reader turns back into the same string."""
    return json.dumps(record, ensure_ascii=False).encode("utf-8", "backslashreplace") + b"\n"
