"""The ``aiorabbit`` command: its parser, and running a command to an exit code."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import signal
import sys
import traceback
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, NoReturn

from .._version import __version__
from . import bench, consume, publish, topology
from .common import Formatter, parameters, positive_float
from .errors import EXIT_CODES_HELP, CliError, ExitCode, classify

__all__ = ["build_parser", "main"]

log = logging.getLogger("aiorabbit.cli")

#: How to get uvloop, in the error of --uvloop without it.
UVLOOP_HINT = 'pip install "aiorabbit-client[uvloop]"'

#: Runs a command's coroutine on an event loop of its own, to the end.
Runner = Callable[[Coroutine[Any, Any, int]], int]

DESCRIPTION = """\
Publish, consume and benchmark RabbitMQ messages, and declare or delete
exchanges, queues and bindings (AMQP 0-9-1, with the aiorabbit client)."""

EPILOG = f"""\
examples:
  aiorabbit publish -k jobs 'hello'              # to the queue "jobs" via the default exchange
  aiorabbit publish -e logs -k app.error --lines < errors.txt
  aiorabbit consume jobs --count 10 --format json
  aiorabbit declare queue jobs -a x-message-ttl=60000
  aiorabbit declare binding --exchange logs --queue jobs -k 'app.*'
  aiorabbit bench --count 100000 --confirm

connection:
  --url, else $AMQP_URL, else amqp://guest:guest@localhost:5672/%2F.  The URL
  takes options such as ?heartbeat=30&connection_timeout=5; amqps:// is TLS.

event loop:
  --uvloop runs the command on uvloop's event loop (pip install
  "aiorabbit-client[uvloop]"; not on Windows).  --debug logs which loop runs.

typed values (-H headers, -a arguments):
  KEY=VALUE is a string; KEY:TYPE=VALUE converts VALUE to TYPE, one of str,
  int, float, bool, json, null, timestamp, decimal, int8, uint8, int16,
  uint16, int32, uint32, int64, float32 (e.g. -H retries:int=3,
  -H tags:json='["a","b"]').  Integer x- arguments such as x-message-ttl
  are converted without a type.

{EXIT_CODES_HELP}
"""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line, with exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(ExitCode.USAGE, f"aiorabbit: error: {message} (see '{self.prog} --help')\n")


def _global_options(parser: argparse.ArgumentParser, *, in_command: bool) -> None:
    # The same options are accepted after the command; there they default to
    # "not given", so that they do not overwrite what came before it.
    default: Any = argparse.SUPPRESS if in_command else None
    group = parser.add_argument_group("global options")
    group.add_argument(
        "--url", default=default, help="the broker's URL (default: $AMQP_URL, else amqp://localhost)"
    )
    group.add_argument(
        "--connect-timeout",
        type=positive_float,
        default=default,
        metavar="SECONDS",
        help="give up connecting after this long (default: 10, or the URL's connection_timeout)",
    )
    group.add_argument(
        "-q", "--quiet", action="store_true", default=default if in_command else False,
        help="no summary or progress on stderr (errors are still shown)",
    )
    group.add_argument(
        "--debug", action="store_true", default=default if in_command else False,
        help="log the protocol and show tracebacks",
    )
    group.add_argument(
        "--uvloop", action="store_true", default=default if in_command else False,
        help=f"run on uvloop's event loop ({UVLOOP_HINT})",
    )


def build_parser() -> argparse.ArgumentParser:
    """The parser of the whole command line."""
    parser = Parser(prog="aiorabbit", description=DESCRIPTION, epilog=EPILOG, formatter_class=Formatter)
    parser.add_argument(
        "--version",
        action="version",
        version=f"aiorabbit {__version__} (distribution aiorabbit-client, "
        f"Python {platform.python_version()})",
    )
    _global_options(parser, in_command=False)
    commands = parser.add_subparsers(
        dest="command", metavar="COMMAND", title="commands", required=True, parser_class=Parser
    )
    for module in (publish, consume, topology, bench):
        for sub in module.add_parsers(commands):
            _global_options(sub, in_command=True)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    try:
        args = build_parser().parse_args(argv)
    except KeyboardInterrupt:  # pragma: no cover - only while the parser runs
        return ExitCode.INTERRUPTED
    if args.debug:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        runner = _runner(uvloop=args.uvloop)  # before anything else: the loop is how it all runs
        args.params = parameters(args)
        command = args.handler(args)  # may read stdin, before the event loop
        return runner(_supervised(command, args.sigterm_code))
    except KeyboardInterrupt:  # before the event loop started (reading stdin)
        return ExitCode.INTERRUPTED
    except Exception as exc:
        return _report(exc, debug=args.debug)


def _report(exc: BaseException, *, debug: bool) -> int:
    code, message = classify(exc)
    if isinstance(exc, BrokenPipeError):
        # Nobody reads stdout any more: keep the interpreter's final flush quiet.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if debug:
        traceback.print_exception(exc)
    if message:
        print(f"aiorabbit: error: {message}", file=sys.stderr, flush=True)
    return int(code)


def _runner(*, uvloop: bool) -> Runner:
    """``asyncio.run``, or with ``--uvloop`` ``uvloop.run`` (a usage error,
    exit code 2, when uvloop cannot be imported)."""
    if not uvloop:
        return asyncio.run
    try:
        import uvloop as module
    except ModuleNotFoundError as exc:
        if exc.name != "uvloop":  # installed, but something it needs is missing
            raise CliError(f"--uvloop: cannot import uvloop: {exc} ({UVLOOP_HINT})") from None
        raise CliError(f"--uvloop needs uvloop, which is not installed: {UVLOOP_HINT}") from None
    except ImportError as exc:
        raise CliError(f"--uvloop: cannot import uvloop: {exc} ({UVLOOP_HINT})") from None
    run: Runner = module.run
    return run


async def _supervised(command: Coroutine[Any, Any, int], sigterm_code: int) -> int:
    """Run ``command``; SIGINT and SIGTERM cancel it, so that it cleans up
    (consumers cancelled, connection closed) before the process exits."""
    loop = asyncio.get_running_loop()
    log.debug("event loop: %s.%s", type(loop).__module__, type(loop).__qualname__)
    task = asyncio.current_task()
    assert task is not None
    received: list[int] = []

    def stop(signum: int) -> None:
        received.append(signum)
        task.cancel()  # a second signal interrupts the cleanup too

    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop, signum)
            installed.append(signum)
        except (ValueError, RuntimeError, NotImplementedError):  # pragma: no cover - not the main thread
            pass
    try:
        return await command
    except asyncio.CancelledError:
        if not received:
            raise
        return sigterm_code if received[0] == signal.SIGTERM else int(ExitCode.INTERRUPTED)
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
