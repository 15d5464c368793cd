"""What the commands share: connecting, reporting on stderr, option types."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator, Callable
from typing import Any

from ..connection import Connection, connect
from ..exceptions import (
    AuthenticationError,
    ConnectionClosed,
    ConnectionFailed,
    InvalidPath,
    NotAllowed,
)
from ..parameters import ConnectionParameters
from .errors import CliError, ExitCode
from .values import ARGUMENT_TYPES, parse_items

__all__ = [
    "Formatter",
    "add_arguments_option",
    "connection",
    "info",
    "int_range",
    "loop_name",
    "messages",
    "number",
    "parameters",
    "positive_float",
    "rate",
    "table_arguments",
]


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples in the epilogs as they are written."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)


def info(args: argparse.Namespace, message: str) -> None:
    """A progress or summary line on stderr, unless ``--quiet``."""
    if not args.quiet:
        print(message, file=sys.stderr, flush=True)


# The one number format of what the commands write for people (summaries,
# progress, the bench table): thousands separated by commas, rates in msg/s.
# What they write for programs (declare/delete on stdout, --json) stays plain.


def number(value: float) -> str:
    """``12,345``: a count, or a rate rounded to a whole number."""
    return f"{round(value):,}"


def messages(count: int) -> str:
    """``1 message``, ``12,345 messages``."""
    return f"{number(count)} message{'' if count == 1 else 's'}"


def rate(count: int, seconds: float) -> str:
    """``12,345 msg/s``: ``count`` messages in ``seconds``."""
    return f"{number(count / seconds if seconds > 0 else 0)} msg/s"


def loop_name(loop: asyncio.AbstractEventLoop | None = None) -> str:
    """The package of the event loop (default: the running one): ``asyncio``,
    ``uvloop``..."""
    loop = asyncio.get_running_loop() if loop is None else loop
    return type(loop).__module__.partition(".")[0]


def parameters(args: argparse.Namespace) -> ConnectionParameters:
    """The connection parameters of ``--url`` (else ``$AMQP_URL``, else the
    library default), named after the command for the management UI."""
    params = ConnectionParameters.from_url(args.url)
    changes: dict[str, Any] = {}
    if params.name is None:
        changes["name"] = f"aiorabbit-cli {args.command}"
    if args.connect_timeout is not None:
        changes["connection_timeout"] = args.connect_timeout
    return params.replace(**changes) if changes else params


@contextlib.asynccontextmanager
async def connection(args: argparse.Namespace) -> AsyncIterator[Connection]:
    """An open connection for the command, closed when it ends.  Failing to
    connect raises a :class:`CliError` that names the (masked) URL."""
    params: ConnectionParameters = args.params
    try:
        conn = await connect(params=params)
    except AuthenticationError as exc:  # before ConnectionFailed: it is one
        raise CliError(f"{params.url}: login refused: {exc}", ExitCode.ACCESS) from exc
    except (NotAllowed, InvalidPath) as exc:
        raise CliError(
            f"{params.url}: no access to virtual host {params.virtual_host!r}: {exc}", ExitCode.ACCESS
        ) from exc
    except (ConnectionFailed, ConnectionClosed) as exc:
        raise CliError(f"{params.url}: {exc}", ExitCode.UNREACHABLE) from exc
    try:
        yield conn
    finally:
        await conn.close()


def int_range(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: an integer from ``low`` to ``high``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low or (high is not None and value > high):
            bounds = f"from {low} to {high}" if high is not None else f"at least {low}"
            raise argparse.ArgumentTypeError(f"{value} is not {bounds}")
        return value

    return parse


def positive_float(text: str) -> float:
    """An argparse ``type``: a number of seconds greater than 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not greater than 0")
    return value


def add_arguments_option(parser: argparse.ArgumentParser, what: str) -> None:
    """The repeatable ``-a/--argument KEY[:TYPE]=VALUE`` option."""
    parser.add_argument(
        "-a",
        "--argument",
        dest="arguments",
        action="append",
        metavar="KEY[:TYPE]=VALUE",
        help=f"{what}, repeatable (x-message-ttl and the other integer x- arguments "
        "are converted; see 'typed values' in 'aiorabbit --help')",
    )


def table_arguments(args: argparse.Namespace) -> dict[str, Any] | None:
    """The ``-a`` options as an arguments table (``None`` when there are none)."""
    return parse_items(args.arguments, ARGUMENT_TYPES) or None
