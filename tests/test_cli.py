"""The ``aiorabbit`` command line tool, driven as a subprocess against the
real broker (``python -m aiorabbit``, and once the installed console script),
checked on the broker with the test's own connection.  The pure helpers
(typed values, exit-code mapping, JSON output, the progress bar, the number
format) are also tested in-process.  The progress line only shows on a
terminal: the tests that look for it give the command a pseudo-terminal
(``os.openpty``) as stderr.

When the run measures coverage, the subprocesses are measured too
(``patch = ["subprocess"]`` in the coverage settings in pyproject.toml).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import decimal
import importlib
import io
import json
import os
import re
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import aiorabbit
import aiorabbit.cli
from aiorabbit.cli import ExitCode, build_parser
from aiorabbit.cli.app import _runner, _supervised
from aiorabbit.cli.bench import phase_result, print_results, results_table
from aiorabbit.cli.common import loop_name, messages, number, parameters, rate
from aiorabbit.cli.consume import _DirSink, _Plan, jsonable
from aiorabbit.cli.errors import CliError, classify, redact
from aiorabbit.cli.progress import Phase, Progress, is_terminal, on_terminal
from aiorabbit.cli.publish import properties
from aiorabbit.cli.values import ARGUMENT_TYPES, parse_item, parse_items, parse_timestamp
from aiorabbit.codec.table import Float32, Int32, UInt8
from aiorabbit.message import IncomingMessage, ReturnedMessage
from aiorabbit.testing import Names

#: The longest a single command may take.
TIMEOUT = 20.0
SCRIPT = Path(sys.executable).with_name("aiorabbit")


@dataclass
class Result:
    code: int
    out: bytes
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.decode().splitlines()


class Cli:
    """Runs ``python -m aiorabbit`` with ``AMQP_URL`` set to the test broker."""

    def __init__(self, amqp_url: str) -> None:
        self.url = amqp_url
        self.env = {**os.environ, "AMQP_URL": amqp_url}
        self.procs: list[asyncio.subprocess.Process] = []

    async def start(
        self,
        *args: str,
        stdin: bool = False,
        program: list[str] | None = None,
        env: dict[str, str] | None = None,
        stdout: int = asyncio.subprocess.PIPE,
        stderr: int = asyncio.subprocess.PIPE,
    ) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(
            *(program or [sys.executable, "-m", "aiorabbit"]),
            *args,
            stdin=asyncio.subprocess.PIPE if stdin else asyncio.subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env={**self.env, **(env or {})},
        )
        self.procs.append(proc)
        return proc

    async def run(
        self,
        *args: str,
        stdin: bytes | None = None,
        program: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> Result:
        proc = await self.start(*args, stdin=stdin is not None, program=program, env=env)
        out, err = await asyncio.wait_for(proc.communicate(stdin), TIMEOUT)
        assert proc.returncode is not None
        return Result(proc.returncode, out, err.decode())

    async def ok(self, *args: str, stdin: bytes | None = None) -> Result:
        result = await self.run(*args, stdin=stdin)
        assert result.code == 0, f"{args} exited {result.code}: {result.err}"
        return result

    async def fails(self, code: int, *args: str, stdin: bytes | None = None) -> str:
        """Run a command that must exit with ``code``; return its one error line."""
        result = await self.run(*args, stdin=stdin)
        assert result.code == code, f"{args} exited {result.code}, not {code}: {result.err}"
        assert "Traceback" not in result.err
        errors = [line for line in result.err.splitlines() if line.startswith("aiorabbit: error: ")]
        assert len(errors) == 1, result.err
        return errors[0]


class Terminal:
    """A pseudo-terminal to give a command as stderr (or stdout): what the
    command writes there is read as it comes."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        os.set_blocking(self.master, False)
        self.data = b""
        self.ended = False

    @property
    def text(self) -> str:
        return self.data.decode(errors="replace")

    def started(self) -> None:
        """The command has it: only the command's end is left open, so that
        reading sees its end once the command exits."""
        os.close(self.slave)
        self.slave = -1

    async def read(self, until: Callable[[str], bool] | None = None) -> str:
        """Read until ``until(text)`` holds or, without ``until``, until the
        command closed the terminal (it exited); return all that was read."""
        deadline = time.monotonic() + TIMEOUT
        while not self.ended and not (until is not None and until(self.text)):
            try:
                chunk = os.read(self.master, 65536)
            except BlockingIOError:
                assert time.monotonic() < deadline, f"waited {TIMEOUT}s, the terminal shows {self.text!r}"
                await asyncio.sleep(0.02)
                continue
            except OSError:  # EIO (Linux): no process has the terminal open any more
                chunk = b""
            self.ended = not chunk
            self.data += chunk
        return self.text

    def close(self) -> None:
        for fd in (self.master, self.slave):
            if fd >= 0:
                os.close(fd)


@pytest.fixture
def terminal() -> Iterator[Callable[[], Terminal]]:
    """Makes pseudo-terminals, closed after the test."""
    made: list[Terminal] = []

    def make() -> Terminal:
        made.append(Terminal())
        return made[-1]

    yield make
    for term in made:
        term.close()


#: How long a publish or consume took, in a summary.
TOOK = r"in \d+\.\d\ds \([\d,]+ msg/s\)"

#: The progress line: its bar, its percentage, and each phase's count, total and rate.
PROGRESS = re.compile(r"\r\[[#-]{30}\] +\d+%  (\w+) ([\d,]+)/([\d,]+) \(([\d,]+) msg/s\)")


def _progress(text: str) -> list[tuple[str, int, int]]:
    """The (phase, done, total) of each progress line in ``text`` (first phase)."""
    return [(m[1], int(m[2].replace(",", "")), int(m[3].replace(",", ""))) for m in PROGRESS.finditer(text)]


@pytest.fixture
async def cli(amqp_url: str) -> AsyncIterator[Cli]:
    runner = Cli(amqp_url)
    yield runner
    for proc in runner.procs:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


async def _get(ch: aiorabbit.Channel, queue: str) -> aiorabbit.IncomingMessage:
    msg = await ch.basic_get(queue, no_ack=True)
    assert msg is not None, f"no message in {queue}"
    return msg


async def _bodies(ch: aiorabbit.Channel, queue: str) -> list[bytes]:
    bodies = []
    while (msg := await ch.basic_get(queue, no_ack=True)) is not None:
        bodies.append(msg.body)
    return bodies


async def _queue(ch: aiorabbit.Channel, names: Names, *bodies: bytes) -> str:
    queue = names.queue()
    await ch.queue_declare(queue)
    for body in bodies:
        await ch.basic_publish(body, routing_key=queue)
    return queue


async def _count(ch: aiorabbit.Channel, queue: str) -> int:
    # The broker counts a message once it has routed it: a round trip first.
    return (await ch.queue_declare(queue, passive=True)).message_count


async def _missing(conn: aiorabbit.Connection, kind: str, name: str) -> bool:
    ch = await conn.channel()
    try:
        if kind == "queue":
            await ch.queue_declare(name, passive=True)
        else:
            await ch.exchange_declare(name, passive=True)
    except aiorabbit.NotFound:
        return True
    await ch.close()
    return False


# ----------------------------------------------------------------------
# publish


async def test_publish_argument_with_properties_and_typed_headers(
    cli: Cli, channel: aiorabbit.Channel, names: Names
) -> None:
    queue = await _queue(channel, names)
    result = await cli.ok(
        "publish", "-k", queue, "héllo",
        "--content-type", "text/plain", "--content-encoding", "utf-8", "--persistent", "--priority", "7",
        "--correlation-id", "c-1", "--reply-to", "replies", "--expiration", "60000", "--message-id", "m-1",
        "--type", "greeting", "--app-id", "cli-test", "--user-id", "guest",
        "--timestamp", "2024-05-06T07:08:09Z",
        "-H", "plain=text", "-H", "n:int=5", "-H", "ok:bool=yes", "-H", "ratio:float=1.5",
        "-H", "tags:json=[\"a\", 2]", "-H", "gone:null=", "-H", "small:uint8=7", "-H", "url:a:b:str=x=y",
    )  # fmt: skip
    assert result.out == b""
    assert "published 1 message (6 bytes) to queue" in result.err and "confirmed" in result.err
    msg = await _get(channel, queue)
    assert msg.body == "héllo".encode()
    props = msg.properties
    assert (props.content_type, props.content_encoding, props.delivery_mode, props.priority) == (
        "text/plain", "utf-8", 2, 7,
    )
    assert (props.correlation_id, props.reply_to, props.expiration, props.message_id) == (
        "c-1", "replies", "60000", "m-1",
    )
    assert (props.type, props.app_id, props.user_id) == ("greeting", "cli-test", "guest")
    assert props.timestamp == datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc)
    assert msg.headers == {
        "plain": "text", "n": 5, "ok": True, "ratio": 1.5, "tags": ["a", 2], "gone": None, "small": 7,
        "url:a:b": "x=y",
    }
    assert isinstance(msg.headers["small"], UInt8)  # the wire type asked for


async def test_publish_file_stdin_and_dash(
    cli: Cli, channel: aiorabbit.Channel, names: Names, tmp_path: Path
) -> None:
    queue = await _queue(channel, names)
    data = bytes(range(256)) * 3  # not text: published byte for byte
    path = tmp_path / "body.bin"
    path.write_bytes(data)
    await cli.ok("publish", "-k", queue, "--file", str(path), "-q")
    await cli.ok("publish", "-k", queue, stdin=b"from\nstdin\n")
    await cli.ok("publish", "-k", queue, "-", "--no-confirm", stdin=b"dash")
    assert await _bodies(channel, queue) == [data, b"from\nstdin\n", b"dash"]


async def test_publish_lines_from_stdin_and_file_with_count(
    cli: Cli, channel: aiorabbit.Channel, names: Names, tmp_path: Path
) -> None:
    queue = await _queue(channel, names)
    result = await cli.ok("publish", "-k", queue, "--lines", stdin=b"one\r\n\ntwo\nthree")
    assert "published 3 messages" in result.err
    path = tmp_path / "lines.txt"
    path.write_bytes(b'{"n": 1}\n{"n": 2}\n')
    await cli.ok("publish", "-k", queue, "--line-mode", "--file", str(path), "--count", "2", "--window", "1")
    assert await _bodies(channel, queue) == [
        b"one", b"two", b"three", b'{"n": 1}', b'{"n": 1}', b'{"n": 2}', b'{"n": 2}',
    ]
    result = await cli.ok("publish", "-k", queue, "--lines", stdin=b"\n\n")
    assert "published 0 messages" in result.err
    error = await cli.fails(ExitCode.USAGE, "publish", "-k", queue, "--lines", "--file", str(tmp_path))
    assert f"cannot read {tmp_path}: Is a directory" in error
    error = await cli.fails(ExitCode.USAGE, "publish", "--lines", "body")
    assert "give no BODY" in error


async def test_publish_without_confirms_via_an_exchange(
    cli: Cli, channel: aiorabbit.Channel, names: Names
) -> None:
    queue = await _queue(channel, names)
    exchange = names.exchange()
    await channel.exchange_declare(exchange, "topic")
    await channel.queue_bind(queue, exchange, "logs.*")
    result = await cli.ok("publish", "-e", exchange, "-k", "logs.error", "--no-confirm", "-n", "5", "boom")
    assert "published 5 messages (20 bytes) to exchange" in result.err and "not confirmed" in result.err
    assert await _count(channel, queue) == 5
    msg = await _get(channel, queue)
    assert msg.routing_key == "logs.error" and msg.properties.message_id is None  # no Publisher: no id


@pytest.mark.parametrize("confirm", [True, False])
async def test_publish_mandatory_unroutable_is_exit_6(cli: Cli, names: Names, confirm: bool) -> None:
    args = ["publish", "-k", names.queue("nobody"), "--mandatory", "lost"]
    error = await cli.fails(ExitCode.UNCONFIRMED, *args, *([] if confirm else ["--no-confirm"]))
    assert "NO_ROUTE" in error


@pytest.mark.parametrize("confirm", [True, False])
async def test_publish_to_a_missing_exchange_is_exit_5(cli: Cli, names: Names, confirm: bool) -> None:
    # With confirms, the third message waits for room and is never sent.
    args = ["publish", "-e", names.exchange("missing"), "-n", "3", "--window", "2", "body"]
    args += [] if confirm else ["--no-confirm"]
    error = await cli.fails(ExitCode.REFUSED, *args)
    assert "NOT_FOUND - no exchange" in error


# ----------------------------------------------------------------------
# consume


async def test_consume_count_prints_and_acks(cli: Cli, channel: aiorabbit.Channel, names: Names) -> None:
    queue = await _queue(channel, names, b"a", b"b", b"c")
    result = await cli.ok("consume", queue, "--count", "2")
    assert result.out == b"a\nb\n"
    summary = rf"consumed 2 messages from {re.escape(repr(queue))} {TOOK}, acknowledged\n"
    assert re.fullmatch(summary, result.err)
    await channel.basic_publish(b"d", routing_key=queue)
    result = await cli.ok("consume", queue, "--timeout", "0.3", "--format", "raw", "-q")
    assert result.out == b"cd" and result.err == ""  # c was neither taken nor marked redelivered


async def test_consume_json_shows_properties_headers_and_binary_bodies(
    cli: Cli, channel: aiorabbit.Channel, names: Names
) -> None:
    queue = await _queue(channel, names)
    props = aiorabbit.Properties(
        content_type="application/json", headers={"n": Int32(3), "raw": b"\xff", "when": datetime.datetime(
            2024, 1, 2, tzinfo=datetime.timezone.utc)}, timestamp=datetime.datetime(2024, 1, 2, 3, 4, 5),
    )
    await channel.basic_publish(b'{"k": "v"}', routing_key=queue, properties=props)
    await channel.basic_publish(b"\x00\xff", routing_key=queue)
    result = await cli.ok("consume", queue, "-n", "2", "--verbose")
    first, second = (json.loads(line) for line in result.lines)
    assert first == {
        "exchange": "",
        "routing_key": queue,
        "redelivered": False,
        "properties": {"content_type": "application/json", "timestamp": "2024-01-02T03:04:05+00:00"},
        "headers": {"n": 3, "raw": "/w==", "when": "2024-01-02T00:00:00+00:00"},
        "body": '{"k": "v"}',
        "body_encoding": "text",
    }
    assert (second["body"], second["body_encoding"]) == ("AP8=", "base64")


async def test_consume_requeue_is_a_peek(cli: Cli, channel: aiorabbit.Channel, names: Names) -> None:
    queue = await _queue(channel, names, b"1", b"2", b"3")
    result = await cli.ok("consume", queue, "--requeue", "--count", "2", "--prefetch", "1")
    assert result.out == b"1\n2\n" and "returned to the queue" in result.err
    first = await _get(channel, queue)
    assert (first.body, first.redelivered) == (b"1", True)
    assert await _bodies(channel, queue) == [b"2", b"3"]


async def test_consume_no_ack(cli: Cli, channel: aiorabbit.Channel, names: Names) -> None:
    queue = await _queue(channel, names, *(b"%d" % i for i in range(5)))
    # With a count, no more than the count leave the queue.
    result = await cli.ok("consume", queue, "--no-ack", "--count", "2")
    assert result.out == b"0\n1\n" and "removed on delivery" in result.err
    assert await _count(channel, queue) == 3
    result = await cli.ok("consume", queue, "--no-ack", "--timeout", "0.3")
    assert result.lines == ["2", "3", "4"]
    assert await _count(channel, queue) == 0


async def test_consume_output_dir(cli: Cli, channel: aiorabbit.Channel, names: Names, tmp_path: Path) -> None:
    queue = await _queue(channel, names)
    await channel.basic_publish(
        b'{"a": 1}', routing_key=queue, properties=aiorabbit.Properties(content_type="application/json")
    )
    await channel.basic_publish(b"\x01\x02", routing_key=queue)
    await channel.basic_publish(b"third", routing_key=queue)
    out = tmp_path / "new" / "dir"
    result = await cli.ok("consume", queue, "-n", "2", "--output-dir", str(out))
    assert result.lines == [str(out / "000001.json"), str(out / "000002.bin")]
    assert (out / "000001.json").read_bytes() == b'{"a": 1}'
    assert (out / "000002.bin").read_bytes() == b"\x01\x02"
    # A second run never overwrites the first one's files.
    result = await cli.ok("consume", queue, "-n", "1", "-o", str(out), "--format", "json")
    record = json.loads(result.out)
    assert record["file"] == str(out / "000003.bin") and "body" not in record
    assert (out / "000003.bin").read_bytes() == b"third"


async def test_consume_idle_timeout_on_an_empty_queue(
    cli: Cli, channel: aiorabbit.Channel, names: Names
) -> None:
    queue = await _queue(channel, names)
    result = await cli.ok("consume", queue, "--timeout", "0.2", "--count", "5")
    assert result.out == b"" and "consumed 0 messages" in result.err


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 0), (signal.SIGINT, 130)])
async def test_consume_stops_cleanly_on_a_signal(
    cli: Cli, channel: aiorabbit.Channel, names: Names, signum: int, code: int
) -> None:
    queue = await _queue(channel, names, b"first")
    proc = await cli.start("consume", queue)
    assert proc.stdout is not None
    assert await asyncio.wait_for(proc.stdout.readline(), TIMEOUT) == b"first\n"  # consuming
    proc.send_signal(signum)
    _, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode == code, err
    assert f"consumed 1 message from {queue!r}" in err.decode()
    ok = await channel.queue_declare(queue, passive=True)
    assert (ok.message_count, ok.consumer_count) == (0, 0)  # acked, and the consumer is gone


async def test_consume_into_a_closed_pipe_acks_nothing(
    cli: Cli, channel: aiorabbit.Channel, names: Names
) -> None:
    big = b"x" * 300_000  # more than a pipe holds: the write fails once head is gone
    queue = await _queue(channel, names, big, big, big)
    script = '"$0" -m aiorabbit consume "$1" | head -c 10 > /dev/null; echo "exit ${PIPESTATUS[0]}" >&2'
    proc = await asyncio.create_subprocess_exec(
        "bash", "-c", script, sys.executable, queue, env=cli.env,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert err.decode() == "exit 1\n"  # quietly, without "Exception ignored" noise
    assert await _count(channel, queue) == 3


async def test_consume_a_missing_queue_is_exit_5(cli: Cli, names: Names) -> None:
    error = await cli.fails(ExitCode.REFUSED, "consume", names.queue("missing"))
    assert "NOT_FOUND - no queue" in error


# ----------------------------------------------------------------------
# declare / delete


async def test_declare_and_delete_an_exchange(
    cli: Cli, connection: aiorabbit.Connection, channel: aiorabbit.Channel, names: Names
) -> None:
    exchange = names.exchange()
    result = await cli.ok("declare", "exchange", exchange, "--type", "topic", "-a", "alternate-exchange=alt")
    assert f"exchange {exchange!r} declared (topic)" in result.err
    # The same declaration is accepted, so it is topic, durable, with that argument.
    await channel.exchange_declare(exchange, "topic", durable=True, arguments={"alternate-exchange": "alt"})
    await cli.ok("declare", "exchange", exchange, "--passive")
    error = await cli.fails(ExitCode.REFUSED, "declare", "exchange", exchange, "--type", "fanout")
    assert "PRECONDITION_FAILED" in error
    await cli.ok("delete", "exchange", exchange, "--if-unused")
    assert await _missing(connection, "exchange", exchange)


async def test_declare_and_delete_a_queue(
    cli: Cli, connection: aiorabbit.Connection, channel: aiorabbit.Channel, names: Names
) -> None:
    queue = names.queue()
    result = await cli.ok(
        "declare", "queue", queue, "-a", "x-message-ttl=60000", "-a", "x-max-priority:int=5", "--no-durable"
    )
    assert result.out == f"{queue}\t0\t0\n".encode()
    # Accepted again only with the same (integer) arguments: they were sent as integers.
    await channel.queue_declare(queue, arguments={"x-message-ttl": 60000, "x-max-priority": 5})
    await channel.basic_publish(b"x", routing_key=queue)
    await channel.basic_publish(b"y", routing_key=queue)
    result = await cli.ok("declare", "queue", queue, "--passive", "--json")
    assert json.loads(result.out) == {"queue": queue, "messages": 2, "consumers": 0}
    error = await cli.fails(ExitCode.REFUSED, "delete", "queue", queue, "--if-empty")
    assert "PRECONDITION_FAILED" in error
    result = await cli.ok("delete", "queue", queue)
    assert result.out == b"2\n" and "(2 messages)" in result.err
    assert await _missing(connection, "queue", queue)


async def test_declare_a_quorum_queue_and_a_server_named_one(
    cli: Cli, channel: aiorabbit.Channel, names: Names
) -> None:
    queue = names.queue()
    await cli.ok("declare", "queue", queue, "--quorum", "-a", "x-delivery-limit=3")
    arguments = {"x-queue-type": "quorum", "x-delivery-limit": 3}
    await channel.queue_declare(queue, durable=True, arguments=arguments)
    result = await cli.ok("declare", "queue", "", "--json", "--no-durable", "--auto-delete")
    named = json.loads(result.out)["queue"]
    names.queues.append(named)  # deleted after the test
    assert named.startswith("amq.gen-")
    await channel.queue_declare(named, passive=True)


async def test_declare_and_delete_bindings(cli: Cli, channel: aiorabbit.Channel, names: Names) -> None:
    queue = await _queue(channel, names)
    source, middle = names.exchange("source"), names.exchange("middle")
    await channel.exchange_declare(source, "direct")
    await channel.exchange_declare(middle, "fanout")
    await cli.ok("declare", "binding", "--exchange", source, "--destination", middle, "-k", "k")
    result = await cli.ok("declare", "binding", "-e", middle, "--queue", queue)
    assert f"bound queue {queue!r} from exchange {middle!r}" in result.err
    await channel.basic_publish(b"routed", exchange=source, routing_key="k")
    assert await _bodies(channel, queue) == [b"routed"]
    await cli.ok("delete", "binding", "--exchange", source, "--destination", middle, "-k", "k")
    await cli.ok("delete", "binding", "-e", middle, "--queue", queue)
    await channel.basic_publish(b"dropped", exchange=source, routing_key="k")
    await channel.basic_publish(b"dropped", exchange=middle)
    assert await _count(channel, queue) == 0


# ----------------------------------------------------------------------
# bad input and connection errors


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["publish", "-H", "novalue", "x"], "'novalue' is not KEY=VALUE"),
        (["publish", "-H", "n:integer=5", "x"], "unknown type 'integer'"),
        (["publish", "-H", "n:int=five", "x"], "not a valid int"),
        (["declare", "queue", "q", "-a", "x-max-length=lots"], "not a valid int"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "required: COMMAND"),
        (["publish", "--file", "/no/such/file"], "cannot read /no/such/file: No such file or directory"),
        (["publish", "--lines", "--file", "/no/such/file"], "cannot read /no/such/file"),
        (["publish", "--priority", "300", "x"], "300 is not from 0 to 255"),
        (["publish", "--file", "f", "body"], "not both"),
        (["consume", "q", "-o", "/dev/null/dir"], "cannot create /dev/null/dir"),
        (["--url", "http://localhost/", "declare", "queue", "q"], "scheme must be amqp or amqps"),
        (["declare", "exchange", ""], "the default exchange cannot be declared"),
        (["--connect-timeout", "0", "declare", "queue", "q"], "0 is not greater than 0"),
        (["declare", "queue", "q", "--connect-timeout", "soon"], "'soon' is not a number"),
    ],
)
async def test_bad_input_is_exit_2(cli: Cli, args: list[str], expected: str) -> None:
    error = await cli.fails(ExitCode.USAGE, *args)
    assert expected in error


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_unreachable_broker_is_exit_3_with_the_password_hidden(cli: Cli) -> None:
    url = f"amqp://guest:s3cret-pw@127.0.0.1:{_closed_port()}/%2F"
    started = asyncio.get_running_loop().time()
    args = ["--url", url, "publish", "-k", "q", "x", "--connect-timeout", "3"]
    error = await cli.fails(ExitCode.UNREACHABLE, *args)
    assert asyncio.get_running_loop().time() - started < 5
    assert "s3cret-pw" not in error and "guest:******@127.0.0.1" in error and "cannot connect" in error
    result = await cli.run("consume", "q", "--debug", env={"AMQP_URL": url})  # the URL from the environment
    assert result.code == ExitCode.UNREACHABLE and "Traceback" in result.err and "s3cret-pw" not in result.err


async def test_refused_login_and_unknown_vhost_are_exit_4(cli: Cli) -> None:
    bad = cli.url.replace("guest:guest@", "guest:wrong-pw@")
    assert bad != cli.url
    error = await cli.fails(ExitCode.ACCESS, "--url", bad, "declare", "queue", "q")
    assert "login refused" in error and "wrong-pw" not in error
    vhost = cli.url.rsplit("/", 1)[0] + "/no-such-vhost"
    error = await cli.fails(ExitCode.ACCESS, "publish", "--url", vhost, "x")  # --url after the command
    assert "no access to virtual host 'no-such-vhost'" in error


# ----------------------------------------------------------------------
# bench


async def test_bench_both_json(cli: Cli) -> None:
    result = await cli.ok(
        "bench", "--count", "300", "--size", "10", "--confirm", "20", "--json", "--progress"
    )
    report = json.loads(result.out)
    assert report["settings"]["confirm"] == 20
    assert [row["phase"] for row in report["results"]] == ["publish", "consume"]
    assert (report["settings"]["loop"], report["interrupted"]) == ("asyncio", False)
    for row in report["results"]:
        assert (row["messages"], row["bytes"], row["complete"]) == (300, 3000, True)
        assert row["seconds"] > 0 and row["msg_per_s"] > 0
    assert "100%" in result.err and "publish 300/300" in result.err  # --progress: even in a pipe
    assert _progress(result.err)[-1] == ("publish", 300, 300)


async def test_bench_publish_then_consume_an_existing_queue(
    cli: Cli, channel: aiorabbit.Channel, names: Names
) -> None:
    queue = await _queue(channel, names)
    result = await cli.ok("bench", "--mode", "publish", "--count", "2000", "--queue", queue, "--no-progress")
    settings = f"2,000 messages of 64 bytes, publish, no confirms, queue {queue!r}, asyncio loop"
    assert result.lines[0] == settings
    assert result.lines[1].split() == ["phase", "messages", "bytes", "seconds", "msg/s", "MB/s"]
    publish, messages_, size, _, per_second, _ = result.lines[2].split()
    assert (publish, messages_, size) == ("publish", "2,000", "128,000")
    assert re.fullmatch(r"\d{1,3}(,\d{3})*", per_second)  # 12,345 msg/s
    assert "%" not in result.err  # no progress bar
    assert await _count(channel, queue) == 2000
    result = await cli.ok("bench", "--mode", "consume", "--count", "1950", "--queue", queue, "--json")
    assert json.loads(result.out)["results"][0]["messages"] == 1950
    assert "filling" not in result.err
    # consume tops the queue up to --count first
    result = await cli.ok(
        "bench", "--mode", "consume", "--count", "1100", "--queue", queue, "--no-ack", "--json"
    )
    assert json.loads(result.out)["results"][0]["messages"] == 1100
    assert f"filling {queue!r} with 1,050 messages" in result.err
    error = await cli.fails(ExitCode.REFUSED, "bench", "--queue", names.queue("missing"), "--count", "1")
    assert "NOT_FOUND" in error


async def test_bench_gives_up_when_stalled(cli: Cli, channel: aiorabbit.Channel, names: Names) -> None:
    queue = names.queue()
    await channel.queue_declare(queue, arguments={"x-max-length": 5})  # can never hold 10
    args = ["bench", "--mode", "consume", "--queue", queue, "--count", "10", "--stall-timeout", "0.2"]
    error = await cli.fails(ExitCode.ERROR, *args)
    assert "no progress for 0.2s (fill 5 of 10)" in error


# ----------------------------------------------------------------------
# progress on a terminal, the number format, Ctrl-C in bench


async def test_summaries_share_one_number_format(cli: Cli, channel: aiorabbit.Channel, names: Names) -> None:
    queue = await _queue(channel, names)
    name = re.escape(repr(queue))
    result = await cli.ok("publish", "-k", queue, "-n", "1500", "--window", "300", "body")
    # One line: in a pipe (not a terminal), no progress line, however long the run.
    assert re.fullmatch(
        rf"published 1,500 messages \(6,000 bytes\) to queue {name} \(default exchange\) {TOOK}, confirmed\n",
        result.err,
    )
    result = await cli.ok("consume", queue, "--count", "1200", "--format", "raw")
    assert result.out == b"body" * 1200
    assert re.fullmatch(rf"consumed 1,200 messages from {name} {TOOK}, acknowledged\n", result.err)
    result = await cli.ok("declare", "queue", queue, "--passive")
    assert result.out == f"{queue}\t300\t0\n".encode()  # stdout is for programs: plain numbers
    assert f"queue {queue!r}: 300 messages, 0 consumers" in result.err
    await cli.ok("publish", "-k", queue, "-n", "3000", "x", "-q")  # confirmed: the queue has them
    result = await cli.ok("delete", "queue", queue)
    assert result.out == b"3300\n" and f"deleted queue {queue!r} (3,300 messages)" in result.err


async def test_consume_count_shows_progress_on_a_terminal(
    cli: Cli, channel: aiorabbit.Channel, names: Names, terminal: Callable[[], Terminal]
) -> None:
    queue = await _queue(channel, names, b"a", b"b", b"c")
    err = terminal()
    args = ["consume", queue, "--count", "10", "--timeout", "1.5", "--requeue"]  # lasts 1.5 s
    proc = await cli.start(*args, stderr=err.slave)
    err.started()
    text = await err.read()
    assert proc.stdout is not None
    out = await proc.stdout.read()
    assert await proc.wait() == 0, text
    assert out == b"a\nb\nc\n"  # stdout has the messages alone
    assert _progress(text)[-1] == ("consume", 3, 10)
    # Drawn over itself, and ended by a newline before the summary.
    last = rf"  30%  consume 3/10 \([\d,]+ msg/s\) *\r\nconsumed 3 messages from {re.escape(repr(queue))} "
    assert re.search(last, text), text
    # stdout on the terminal too: the messages show there, no progress line among them.
    both = terminal()
    args[args.index("1.5")] = "1"  # still longer than the progress line's delay
    proc = await cli.start(*args, stdout=both.slave, stderr=both.slave)
    both.started()
    text = await both.read()
    assert await proc.wait() == 0
    assert text.startswith("a\r\nb\r\nc\r\nconsumed 3 messages") and not _progress(text), text


async def test_publish_count_shows_progress_on_a_terminal(
    cli: Cli, channel: aiorabbit.Channel, names: Names, terminal: Callable[[], Terminal]
) -> None:
    exchange = names.exchange()
    await channel.exchange_declare(exchange, "fanout")  # bound to no queue: the messages go nowhere
    short = terminal()
    proc = await cli.start("publish", "-e", exchange, "-n", "3", "x", stderr=short.slave)
    short.started()
    text = await short.read()
    assert await proc.wait() == 0
    assert text.startswith("published 3 messages") and "\r[" not in text  # a short run: no progress line
    err = terminal()
    proc = await cli.start("publish", "-e", exchange, "-n", "100000000", "x", stderr=err.slave)
    err.started()
    await err.read(until=lambda text: any(done > 0 for _, done, _ in _progress(text)))
    proc.send_signal(signal.SIGINT)
    text = await err.read()
    assert await proc.wait() == ExitCode.INTERRUPTED
    name, done, total = _progress(text)[-1]
    assert (name, total) == ("publish", 100_000_000) and done > 0
    assert text.endswith("\r\n") and "Traceback" not in text  # the line ended, no error


@pytest.mark.parametrize("output", ["table", "json"])
async def test_bench_interrupted_prints_what_it_measured(cli: Cli, output: str) -> None:
    # With confirms: no flood of publishes for the broker to take in before it closes.
    args = ["bench", "--count", "100000000", "--progress", "--confirm"]
    args += ["--mode", "publish", "--json"] if output == "json" else []
    proc = await cli.start(*args)
    assert proc.stderr is not None
    seen = ""
    while not any(done > 0 for _, done, _ in _progress(seen)):  # measuring
        chunk = await asyncio.wait_for(proc.stderr.read(4096), TIMEOUT)
        assert chunk, seen
        seen += chunk.decode()
    proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode == ExitCode.INTERRUPTED, err
    assert "Traceback" not in err.decode() and "error" not in err.decode()
    if output == "json":
        report = json.loads(out)
        assert report["interrupted"] is True
        (row,) = report["results"]
        assert (row["phase"], row["complete"]) == ("publish", False)
        assert row["messages"] > 0 and row["seconds"] > 0 and row["msg_per_s"] > 0
        return
    lines = out.decode().splitlines()
    assert lines[0].startswith("100,000,000 messages of 64 bytes, both, confirms, window 1,000, prefetch")
    assert lines[1].split() == ["phase", "messages", "bytes", "seconds", "msg/s", "MB/s"]
    publish, consume = lines[2].split(), lines[3].split()
    assert publish[0] == "publish" and int(publish[1].replace(",", "")) > 0 and float(publish[3]) > 0
    assert publish[6:9] == ["interrupted", "(0%", "of"] and publish[9] == "100,000,000)"
    assert consume[0] == "consume" and "interrupted" in consume


# ----------------------------------------------------------------------
# --uvloop


async def test_uvloop_runs_the_command_on_uvloop(cli: Cli, channel: aiorabbit.Channel, names: Names) -> None:
    pytest.importorskip("uvloop")
    result = await cli.ok("bench", "--uvloop", "--mode", "publish", "-n", "100", "--json")
    assert json.loads(result.out)["settings"]["loop"] == "uvloop"
    result = await cli.ok("bench", "--mode", "publish", "-n", "100", "--json")
    assert json.loads(result.out)["settings"]["loop"] == "asyncio"
    queue = await _queue(channel, names)
    result = await cli.ok("--uvloop", "publish", "-k", queue, "--debug", "on uvloop")
    assert "aiorabbit.cli DEBUG event loop: uvloop.Loop" in result.err
    result = await cli.ok("publish", "-k", queue, "--debug", "on asyncio")
    assert "aiorabbit.cli DEBUG event loop: asyncio." in result.err
    assert await _bodies(channel, queue) == [b"on uvloop", b"on asyncio"]


async def test_uvloop_not_installed_is_exit_2(cli: Cli) -> None:
    without = "import sys; sys.modules['uvloop'] = None; from aiorabbit.cli import main; sys.exit(main())"
    url = f"amqp://guest:guest@127.0.0.1:{_closed_port()}/"  # never reached: exit 3 if it were
    result = await cli.run("--uvloop", "--url", url, "publish", "x", program=[sys.executable, "-c", without])
    assert result.code == ExitCode.USAGE
    assert result.err == (
        "aiorabbit: error: --uvloop needs uvloop, which is not installed: "
        'pip install "aiorabbit-client[uvloop]"\n'
    )


# ----------------------------------------------------------------------
# the console script, help and version


async def test_console_script(cli: Cli, channel: aiorabbit.Channel, names: Names) -> None:
    assert SCRIPT.exists(), "pip install -e . installs the console script"
    result = await cli.run("--version", program=[str(SCRIPT)])
    assert result.code == 0 and result.out.decode().startswith(f"aiorabbit {aiorabbit.__version__} ")
    assert "distribution aiorabbit-client" in result.out.decode()
    queue = await _queue(channel, names)
    result = await cli.run("publish", "-k", queue, "via the script", program=[str(SCRIPT)])
    assert result.code == 0, result.err
    assert await _bodies(channel, queue) == [b"via the script"]


async def test_help(cli: Cli) -> None:
    result = await cli.ok("--help")
    text = result.out.decode()
    for word in ("publish", "consume", "declare", "delete", "bench", "exit codes:", "130", "KEY:TYPE=VALUE"):
        assert word in text
    for command in (["publish"], ["consume"], ["declare", "queue"], ["delete", "binding"], ["bench"]):
        assert "examples:" in (await cli.ok(*command, "--help")).out.decode()


# ----------------------------------------------------------------------
# in-process: the pure helpers


def test_parse_item_types() -> None:
    assert parse_item("k=v") == ("k", "v")
    assert parse_item("k=a=b") == ("k", "a=b")
    assert parse_item("k:str=5") == ("k", "5")
    assert parse_item("k:INT=-5") == ("k", -5)
    assert parse_item("k:float32=1.5") == ("k", Float32(1.5))
    assert parse_item("k:bool=off") == ("k", False)
    assert parse_item("k:json={\"a\": [1]}") == ("k", {"a": [1]})
    assert parse_item("k:null=") == ("k", None)
    assert parse_item("k:decimal=1.25") == ("k", decimal.Decimal("1.25"))
    assert parse_item("k:timestamp=0") == ("k", datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc))
    _, value = parse_item("k:int32=7")
    assert type(value) is Int32 and value == 7
    assert parse_item("a:b:str=c") == ("a:b", "c")
    assert parse_items(["x-message-ttl=100", "x-queue-type=quorum"], ARGUMENT_TYPES) == {
        "x-message-ttl": 100, "x-queue-type": "quorum",
    }
    assert parse_items(["x-single-active-consumer=true", "x-stream-offset=first"], ARGUMENT_TYPES) == {
        "x-single-active-consumer": True, "x-stream-offset": "first",
    }
    assert parse_items(["x-stream-offset=-5"], ARGUMENT_TYPES) == {"x-stream-offset": -5}
    assert parse_items(None) == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("novalue", "is not KEY=VALUE"),
        ("=v", "empty key"),
        ("k:=v", "unknown type ''"),
        ("k:bool=maybe", "not a valid bool"),
        ("k:null=x", "not a valid null"),
        ("k:uint8=256", "not a valid uint8"),
        ("k:decimal=x", "not a valid decimal"),
        ("k:json={", "not a valid json"),
    ],
)
def test_parse_item_errors(text: str, message: str) -> None:
    with pytest.raises(CliError, match=message) as info:
        parse_item(text)
    assert info.value.code == ExitCode.USAGE


def test_parse_timestamp() -> None:
    utc = datetime.timezone.utc
    assert parse_timestamp("2024-01-02T03:04:05") == datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=utc)
    assert parse_timestamp("2024-01-02T03:04:05+02:00").utcoffset() == datetime.timedelta(hours=2)
    assert parse_timestamp("2024-01-02T03:04:05z").tzinfo is not None
    now = parse_timestamp("now")
    assert abs((datetime.datetime.now(utc) - now).total_seconds()) < 5
    with pytest.raises(ValueError):
        parse_timestamp("yesterday")


def _publish_args(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["publish", *argv])


def test_properties_from_options() -> None:
    assert properties(_publish_args("x")) is None
    props = properties(_publish_args("--delivery-mode", "transient", "--timestamp", "-H", "a=1", "x"))
    assert props is not None and props.delivery_mode == 1 and props.headers == {"a": "1"}
    assert props.timestamp is not None
    with pytest.raises(aiorabbit.InvalidArgument):  # too long for a short string: exit 2
        properties(_publish_args("--type", "t" * 256, "x"))
    for bad in (["--delivery-mode", "3"], ["--timestamp", "soon"], ["--window", "x"], ["--expiration", "-1"]):
        with pytest.raises(SystemExit) as exited:
            _publish_args(*bad, "x")
        assert exited.value.code == ExitCode.USAGE


def test_consume_plan() -> None:
    def plan(*argv: str) -> _Plan:
        return _Plan.of(build_parser().parse_args(["consume", "q", *argv]))

    assert plan() == _Plan(prefetch=100, no_ack=False, ack_first=False, hold=False)
    assert plan("-n", "3").prefetch == 3
    assert plan("-n", "3", "--prefetch", "0").prefetch == 0
    assert plan("--requeue").prefetch == 0
    assert plan("--requeue", "-n", "500").prefetch == 500
    assert plan("--requeue", "-n", "70000").prefetch == 0  # more than a prefetch can say
    assert plan("--no-ack") == _Plan(prefetch=100, no_ack=True, ack_first=False, hold=False)
    assert plan("--no-ack", "-n", "2") == _Plan(prefetch=2, no_ack=False, ack_first=True, hold=False)


def test_connection_parameters() -> None:
    args = build_parser().parse_args(["--url", "amqp://u:p@h/v?name=mine", "--connect-timeout", "2", "bench"])
    params = parameters(args)
    assert (params.name, params.connection_timeout, params.virtual_host) == ("mine", 2.0, "v")
    params = parameters(build_parser().parse_args(["--url", "amqp://h", "declare", "queue", "q"]))
    assert (params.name, params.connection_timeout) == ("aiorabbit-cli declare", 10.0)


def test_global_options_anywhere() -> None:
    for argv in (
        ["-q", "--url", "amqp://a", "declare", "queue", "q"],
        ["declare", "-q", "--url", "amqp://a", "queue", "q"],
        ["declare", "queue", "q", "-q", "--url", "amqp://a"],
    ):
        args = build_parser().parse_args(argv)
        assert (args.quiet, args.url, args.kind, args.name) == (True, "amqp://a", "queue", "q"), argv
    # Given once before the command, not undone by the defaults after it.
    args = build_parser().parse_args(["--debug", "delete", "queue", "q"])
    assert args.debug and not args.quiet and args.url is None and not args.uvloop
    assert build_parser().parse_args(["--uvloop", "bench"]).uvloop
    assert build_parser().parse_args(["bench", "--uvloop"]).uvloop


def test_uvloop_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _runner(uvloop=False) is asyncio.run
    monkeypatch.setitem(sys.modules, "uvloop", None)  # as if it were not installed
    with pytest.raises(CliError, match=r'not installed: pip install "aiorabbit-client\[uvloop\]"') as info:
        _runner(uvloop=True)
    assert info.value.code == ExitCode.USAGE


def test_dir_sink_never_overwrites(tmp_path: Path) -> None:
    def message(body: bytes, content_type: str | None = None) -> IncomingMessage:
        props = aiorabbit.Properties(content_type=content_type).encode()
        return IncomingMessage(None, body, props, 1, False, "", "k")  # type: ignore[arg-type]

    out = io.BytesIO()
    sink = _DirSink("body", out, tmp_path)
    (tmp_path / "000001.bin").write_bytes(b"another consumer's")  # written in the meantime
    sink.write(message(b"mine"))
    sink.write(message(b"text", "text/plain; charset=utf-8"))
    sink.write(message(b"?", "application/x-unheard-of"))
    expected = [str(tmp_path / name) for name in ("000002.bin", "000003.txt", "000004.bin")]
    assert out.getvalue().decode().splitlines() == expected
    assert (tmp_path / "000002.bin").read_bytes() == b"mine"
    sink.directory = tmp_path / "removed"
    with pytest.raises(CliError, match="cannot write") as info:
        sink.write(message(b"lost"))
    assert info.value.code == ExitCode.ERROR


def test_module_entry_point_and_cancellation() -> None:
    module = importlib.import_module("aiorabbit.__main__")  # importing it runs nothing
    assert module.main is aiorabbit.cli.main

    async def cancelled() -> int:
        raise asyncio.CancelledError

    # Cancelled by something else than a signal: not an exit code, the error goes on.
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(_supervised(cancelled(), 0))


def test_jsonable() -> None:
    when = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    items = [UInt8(1), 1.5, b"text", bytearray(b"\xff"), decimal.Decimal("2.50"), when, None, (1,)]
    value = {"a": items, 3: object}
    converted = jsonable(value)
    assert converted["a"] == [1, 1.5, "text", "/w==", "2.50", "2024-01-01T00:00:00+00:00", None, [1]]
    assert converted["3"] == str(object)
    json.dumps(converted)


def test_classify_and_redact() -> None:
    returned = ReturnedMessage(b"", b"\x00\x00", 312, "NO_ROUTE", "x", "k")
    not_found = aiorabbit.NotFound(404, "NOT_FOUND - no queue 'q'")
    cases: list[tuple[BaseException, int, str]] = [
        (CliError("bad", ExitCode.ACCESS), ExitCode.ACCESS, "bad"),
        (aiorabbit.exceptions.connection_error(403, "ACCESS_REFUSED"), ExitCode.ACCESS, "login refused"),
        (aiorabbit.InvalidArgument("too long"), ExitCode.USAGE, "too long"),
        (aiorabbit.ConnectionFailed("refused"), ExitCode.UNREACHABLE, "refused"),
        (aiorabbit.ConnectionLost(0, "reset"), ExitCode.UNREACHABLE, "connection lost: (0) reset"),
        (aiorabbit.ConnectionForced(320, "shutdown"), ExitCode.UNREACHABLE, "connection lost"),
        (aiorabbit.NotAllowed(530, "nope"), ExitCode.REFUSED, "the broker closed the connection"),
        (aiorabbit.PublishNacked(3), ExitCode.UNCONFIRMED, "nacked publish #3"),
        (aiorabbit.MessageReturned(returned), ExitCode.UNCONFIRMED, "NO_ROUTE"),
        (not_found, ExitCode.REFUSED, "NOT_FOUND - no queue 'q'"),
        (aiorabbit.ChannelClosed(404, "x", cause=not_found), ExitCode.REFUSED, "NOT_FOUND - no queue 'q'"),
        (aiorabbit.ChannelClosed(0, ""), ExitCode.REFUSED, "(0) "),
        (aiorabbit.ConsumerCancelled("ctag"), ExitCode.REFUSED, "was the queue deleted?"),
        (BrokenPipeError(), ExitCode.ERROR, ""),
        (RuntimeError("amqp://u:pw@h/ failed"), ExitCode.ERROR, "RuntimeError: amqp://u:******@h/ failed"),
    ]
    for exc, code, text in cases:
        got_code, message = classify(exc)
        assert got_code == code and text in message, (exc, got_code, message)
    assert redact("amqps://user:p%40ss@host:5671/v and x://a:b@c") == "amqps://user:******@host:5671/v and x://a:******@c"
    assert redact("no url here: a:b@c") == "no url here: a:b@c"


def test_progress_and_results_table() -> None:
    publish = Phase("publish", 10, done=5)
    assert publish.seconds == 0.0 and publish.rate == 0.0
    publish.started = 1.0
    publish.ended = 3.0
    stream = io.StringIO()
    progress = Progress([publish, Phase("consume", 10)], stream, enabled=True)
    progress.draw()
    progress.draw()
    bar = "[" + "#" * 7 + "-" * 23 + "]"
    assert stream.getvalue().startswith(f"\r{bar}  25%  publish 5/10 (2 msg/s)  consume 0/10 (0 msg/s)")
    assert Progress([], stream, enabled=True).line().startswith("[" + "#" * 30 + "] 100%")
    row: dict[str, Any] = phase_result(publish, size=1_000_000)
    assert row == {"phase": "publish", "messages": 5, "bytes": 5_000_000, "seconds": 2.0, "msg_per_s": 2.5,
                   "mb_per_s": 2.5, "complete": False}
    table = results_table([row], {"publish": 10}).splitlines()
    assert table[1].split() == [
        "publish", "5", "5,000,000", "2.000", "2", "2.50", "interrupted", "(50%", "of", "10)",
    ]
    publish.done = 10
    assert results_table([phase_result(publish, 1)]).splitlines()[1].split() == [
        "publish", "10", "10", "2.000", "5", "0.00",
    ]


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_progress_only_on_a_terminal() -> None:
    loud, quiet = argparse.Namespace(quiet=False), argparse.Namespace(quiet=True)
    assert on_terminal(loud, _Stream(tty=True))
    assert not on_terminal(loud, _Stream(tty=False))  # a pipe or a file: scripts see the summary alone
    assert not on_terminal(quiet, _Stream(tty=True))
    closed = io.StringIO()
    closed.close()
    assert not is_terminal(None) and not is_terminal(object()) and not is_terminal(closed)


async def test_progress_appears_once_the_run_lasts() -> None:
    phase = Phase("publish", 4)
    phase.start()
    quick = _Stream(tty=True)
    async with Progress([phase], quick, enabled=True, delay=0.5):
        phase.done = 4
    assert quick.getvalue() == ""  # a short run: no line at all
    slow = _Stream(tty=True)
    async with Progress([phase], slow, enabled=True, delay=0.05):
        phase.done = 1
        await asyncio.sleep(0.35)
        phase.done = 3
    text = slow.getvalue()
    assert text.count("\r") >= 2 and text.endswith("\n")  # redrawn, and ended by a newline
    assert "publish 1/4" in text and "75%  publish 3/4 (" in text.rsplit("\r", 1)[1]  # the last draw
    at_once = _Stream(tty=False)
    async with Progress([phase], at_once, enabled=True, delay=0):  # bench --progress
        pass
    assert at_once.getvalue().startswith("\r[") and at_once.getvalue().endswith("\n")
    off = _Stream(tty=True)
    async with Progress([phase], off, enabled=False, delay=0):
        await asyncio.sleep(0.05)
    assert off.getvalue() == ""


def test_one_number_format() -> None:
    assert (number(0), number(999), number(1234567), number(12345.6)) == ("0", "999", "1,234,567", "12,346")
    assert (messages(0), messages(1), messages(12345)) == ("0 messages", "1 message", "12,345 messages")
    assert (rate(24690, 2.0), rate(5, 0)) == ("12,345 msg/s", "0 msg/s")


def test_bench_results_after_an_interruption(capsys: pytest.CaptureFixture[str]) -> None:
    args = build_parser().parse_args(["bench", "-n", "10", "--size", "2"])
    done = Phase("publish", 10, done=10, started=1.0, ended=2.0)
    partial = Phase("consume", 10, done=4, started=1.0, ended=3.0)
    print_results(args, [done, partial], "asyncio", interrupted=True)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (
        "10 messages of 2 bytes, both, no confirms, prefetch 1,000, a temporary queue, asyncio loop"
    )
    assert lines[2].split() == ["publish", "10", "20", "1.000", "10", "0.00"]  # complete
    assert lines[3].split() == ["consume", "4", "8", "2.000", "2", "0.00", "interrupted", "(40%", "of", "10)"]
    args.json = True
    print_results(args, [done, partial], "uvloop", interrupted=True)
    report = json.loads(capsys.readouterr().out)
    assert report["interrupted"] is True and report["settings"]["loop"] == "uvloop"
    rows = [(row["phase"], row["messages"], row["seconds"], row["complete"]) for row in report["results"]]
    assert rows == [("publish", 10, 1.0, True), ("consume", 4, 2.0, False)]


def test_loop_name() -> None:
    loop = asyncio.SelectorEventLoop()
    try:
        assert loop_name(loop) == "asyncio"
    finally:
        loop.close()
    uvloop = pytest.importorskip("uvloop")
    loop = uvloop.new_event_loop()
    try:
        assert loop_name(loop) == "uvloop"
    finally:
        loop.close()


async def test_consume_json_with_a_routing_key_that_is_not_utf8(
    cli: Cli, channel: aiorabbit.Channel, names: Names
) -> None:
    # Another client published with routing key b"\xff\xfe-key": the JSON
    # line escapes it (and the message is acked) instead of crashing.
    import pika

    queue = await _queue(channel, names)
    await channel.queue_bind(queue, "amq.fanout")
    params = pika.URLParameters(cli.url)
    blocking = pika.BlockingConnection(params)
    try:
        raw_key = b"\xff\xfe-key"
        blocking.channel().basic_publish(exchange="amq.fanout", routing_key=raw_key, body=b"raw")  # type: ignore[arg-type]
    finally:
        blocking.close()
    result = await cli.ok("consume", queue, "-n", "1", "--format", "json")
    record = json.loads(result.out)
    assert record["routing_key"].encode("utf-8", "surrogateescape") == b"\xff\xfe-key"
    assert (await channel.queue_declare(queue, passive=True)).message_count == 0
