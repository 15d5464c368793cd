"""Run every program in examples/ as a subprocess against the real broker.

Each test starts the receivers, waits for the "ready" line they print once
their consumer is registered, runs the senders, and checks what the
receivers printed, their exit status and what is left on the broker.

The examples use fixed names ("hello", "task_queue", "logs"...), so the
tests delete those before and after, and hold a file lock so that two test
runs on one machine do not share them at the same time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

import aiorabbit

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

T = TypeVar("T")

#: The longest any single wait on a subprocess may take.
TIMEOUT = 15.0

try:
    import fcntl
except ImportError:  # pragma: no cover - not on Windows
    fcntl = None  # type: ignore[assignment]


# ----------------------------------------------------------------------
# helpers


class Program:
    """A running example whose stdout is read line by line."""

    def __init__(self, name: str, proc: asyncio.subprocess.Process) -> None:
        self.name = name
        self.proc = proc
        self.lines: list[str] = []

    async def readline(self, timeout: float = TIMEOUT) -> str | None:
        assert self.proc.stdout is not None
        try:
            raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        except asyncio.TimeoutError:
            await self.kill()
            pytest.fail(f"{self.name}: no output for {timeout}s; printed so far: {self.lines}")
        if not raw:
            return None
        line = raw.decode().rstrip("\n")
        self.lines.append(line)
        return line

    async def wait_for(self, expected: str, timeout: float = TIMEOUT) -> None:
        """Read stdout until a line equal to ``expected`` appears."""
        deadline = time.monotonic() + timeout
        while True:
            line = await self.readline(max(0.1, deadline - time.monotonic()))
            if line == expected:
                return
            if line is None:
                rc, _, err = await self.finish()
                pytest.fail(f"{self.name} exited ({rc}) before printing {expected!r}: {self.lines} {err}")

    async def finish(self, timeout: float = TIMEOUT) -> tuple[int, list[str], str]:
        """Wait for the exit; return the exit status, the stdout lines not
        yet read and all of stderr."""
        before = len(self.lines)
        try:
            out, err = await asyncio.wait_for(self.proc.communicate(), timeout)
        except asyncio.TimeoutError:
            await self.kill()
            pytest.fail(f"{self.name} did not exit within {timeout}s; printed: {self.lines}")
        self.lines.extend(out.decode().splitlines())
        assert self.proc.returncode is not None
        return self.proc.returncode, self.lines[before:], err.decode()

    async def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()


_RUN_WITH_SIGINT = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
)


class Examples:
    """Starts examples with ``AMQP_URL`` pointing at the test broker."""

    def __init__(self, amqp_url: str) -> None:
        self.env = {**os.environ, "AMQP_URL": amqp_url}
        self.env.pop("AIORABBIT_EXAMPLES_FAST", None)
        self.env.pop("PYTHONUNBUFFERED", None)  # the examples must flush themselves
        self.started: list[Program] = []

    async def start(
        self, name: str, *args: str, env: dict[str, str] | None = None, sigint: bool = False
    ) -> Program:
        """Start ``examples/<name> args...``; ``sigint``: make sure the
        program gets Python's Ctrl-C handler even if this process ignores
        SIGINT (as shells do to background jobs), since children inherit that."""
        command = [str(EXAMPLES / name), *args]
        if sigint and signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            command = ["-c", _RUN_WITH_SIGINT, *command]
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *command,
            cwd=ROOT,
            env={**self.env, **(env or {})},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        program = Program(name, proc)
        self.started.append(program)
        return program

    async def receiver(self, name: str, *args: str, sigint: bool = False) -> Program:
        """Start a receiver and wait until it says its consumer is ready."""
        program = await self.start(name, *args, sigint=sigint)
        await program.wait_for("ready")
        return program

    async def run(
        self, name: str, *args: str, env: dict[str, str] | None = None
    ) -> tuple[int, list[str], str]:
        program = await self.start(name, *args, env=env)
        return await program.finish()

    async def ok(self, name: str, *args: str) -> list[str]:
        """Run a program that must succeed; return its stdout lines."""
        rc, out, err = await self.run(name, *args)
        assert rc == 0, f"{name} {args} exited {rc}: {err}"
        assert err == ""
        return out


@pytest.fixture(scope="module", autouse=True)
def _one_run_at_a_time() -> Iterator[None]:
    """Serialise test runs on this machine: the examples' names are fixed."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    path = os.path.join(tempfile.gettempdir(), "aiorabbit-test-examples.lock")
    with open(path, "w") as lock:
        deadline = time.monotonic() + 120
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"another test run holds {path} for too long")
                time.sleep(0.2)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture
async def examples(amqp_url: str) -> AsyncIterator[Examples]:
    runner = Examples(amqp_url)
    yield runner
    for program in runner.started:
        await program.kill()


async def _on_fresh_channel(amqp_url: str, action: Callable[[aiorabbit.Channel], Awaitable[T]]) -> T:
    """``await action(channel)`` on a channel of a new connection."""
    async with aiorabbit.connect(amqp_url) as conn:
        ch = await conn.channel()
        return await action(ch)


async def delete(amqp_url: str, queues: tuple[str, ...] = (), exchanges: tuple[str, ...] = ()) -> None:
    async with aiorabbit.connect(amqp_url) as conn:
        for queue in queues:
            ch = await conn.channel()
            await ch.queue_delete(queue)  # deleting a missing queue is fine
            await ch.close()
        for exchange in exchanges:
            ch = await conn.channel()
            await ch.exchange_delete(exchange)
            await ch.close()


async def message_count(amqp_url: str, queue: str) -> int:
    """Ready messages in ``queue`` (raises NotFound if it does not exist)."""

    async def passive(ch: aiorabbit.Channel) -> int:
        return (await ch.queue_declare(queue, passive=True)).message_count

    return await _on_fresh_channel(amqp_url, passive)


async def queue_exists(amqp_url: str, queue: str) -> bool:
    try:
        await message_count(amqp_url, queue)
    except aiorabbit.NotFound:
        return False
    except aiorabbit.ResourceLocked:
        pass  # another connection's exclusive queue
    return True


async def is_exclusive_elsewhere(amqp_url: str, queue: str) -> bool:
    try:
        await message_count(amqp_url, queue)
    except aiorabbit.ResourceLocked:
        return True
    return False


@pytest.fixture
async def fresh(amqp_url: str) -> AsyncIterator[None]:
    """Remove everything the examples name, before and after the test."""
    names = {
        "queues": ("hello", "task_queue", "aiorabbit.quickstart"),
        "exchanges": ("logs", "direct_logs", "topic_logs"),
    }
    await delete(amqp_url, **names)
    yield
    await delete(amqp_url, **names)


def received(lines: list[str]) -> list[str]:
    return [line for line in lines if line.startswith("Received ")]


pytestmark = [pytest.mark.usefixtures("fresh"), pytest.mark.slow]  # slow: programs run as subprocesses


# ----------------------------------------------------------------------
# "Hello World": one queue, one producer, one consumer


async def test_hello(examples: Examples, amqp_url: str) -> None:
    receiver = await examples.receiver("hello_receive.py", "--count", "3")
    assert await examples.ok("hello_send.py") == ["Sent 'Hello World!'"]
    assert await examples.ok("hello_send.py", "second", "message") == ["Sent 'second message'"]
    assert await examples.ok("hello_send.py", "3rd: ünïcode") == ["Sent '3rd: ünïcode'"]

    rc, out, err = await receiver.finish()
    assert (rc, err) == (0, "")
    assert out == ["Received 'Hello World!'", "Received 'second message'", "Received '3rd: ünïcode'"]
    # Every message was acked: nothing is left.
    assert await message_count(amqp_url, "hello") == 0


async def test_hello_messages_wait_for_the_receiver(examples: Examples, amqp_url: str) -> None:
    # The sender declares the queue: messages sent before any receiver
    # starts wait there.
    await examples.ok("hello_send.py", "early", "bird")
    assert await message_count(amqp_url, "hello") == 1
    rc, out, err = await examples.run("hello_receive.py", "--count", "1")
    assert (rc, err) == (0, "")
    assert received(out) == ["Received 'early bird'"]
    assert await message_count(amqp_url, "hello") == 0


async def test_hello_receive_runs_until_ctrl_c(examples: Examples, amqp_url: str) -> None:
    receiver = await examples.receiver("hello_receive.py", sigint=True)
    await examples.ok("hello_send.py", "one")
    await examples.ok("hello_send.py", "two")
    assert await receiver.readline() == "Received 'one'"
    assert await receiver.readline() == "Received 'two'"
    receiver.proc.send_signal(signal.SIGINT)
    rc, out, err = await receiver.finish()
    assert (rc, out, err) == (0, [], "")  # a clean exit, no traceback
    assert await message_count(amqp_url, "hello") == 0


# ----------------------------------------------------------------------
# work queue


def _done_by(lines: list[str]) -> list[str]:
    return [line.removeprefix("Done ") for line in lines if line.startswith("Done ")]


async def test_work_queue_splits_tasks_between_workers(examples: Examples, amqp_url: str) -> None:
    worker_a = await examples.receiver("worker.py", "--count", "3", "--fast")
    worker_b = await examples.receiver("worker.py", "--count", "3", "--fast")
    tasks = [f"task {n}{'.' * n}" for n in range(1, 7)]
    outputs = await asyncio.gather(*(examples.ok("new_task.py", task) for task in tasks))
    assert sorted(line for out in outputs for line in out) == sorted(f"Sent {t!r}" for t in tasks)

    results = [await worker_a.finish(), await worker_b.finish()]
    for rc, _, err in results:
        assert (rc, err) == (0, "")
    done_a, done_b = _done_by(worker_a.lines), _done_by(worker_b.lines)
    # Each worker did its share (prefetch 1 + --count 3), and between them
    # every task exactly once.
    assert len(done_a) == len(done_b) == 3
    assert sorted(done_a + done_b) == sorted(repr(t) for t in tasks)
    # ...and acked it: the durable queue is empty (passive declare).
    assert await message_count(amqp_url, "task_queue") == 0


async def test_new_task_is_persistent_on_a_durable_queue(examples: Examples, amqp_url: str) -> None:
    await examples.ok("new_task.py", "persist me.")

    async def check(ch: aiorabbit.Channel) -> None:
        # Redeclaring as non-durable is refused: the queue is durable.
        with pytest.raises(aiorabbit.PreconditionFailed):
            await ch.queue_declare("task_queue", durable=False)

    await _on_fresh_channel(amqp_url, check)

    async def get(ch: aiorabbit.Channel) -> aiorabbit.IncomingMessage | None:
        msg = await ch.basic_get("task_queue")
        if msg is not None:
            await msg.ack()
        return msg

    msg = await _on_fresh_channel(amqp_url, get)
    assert msg is not None
    assert msg.body == b"persist me."
    assert msg.properties.delivery_mode == aiorabbit.DeliveryMode.PERSISTENT


async def test_worker_sleeps_one_second_per_dot(examples: Examples) -> None:
    worker = await examples.receiver("worker.py", "--count", "1")
    await examples.ok("new_task.py", "one second.")
    assert await worker.readline() == "Received 'one second.'"
    started = time.monotonic()
    rc, out, _ = await worker.finish()
    assert rc == 0 and out == ["Done 'one second.'"]
    assert time.monotonic() - started >= 0.9

    # The environment variable skips the sleeps like --fast does.
    await examples.ok("new_task.py", "five seconds.....")
    started = time.monotonic()
    rc, out, _ = await examples.run("worker.py", "--count", "1", env={"AIORABBIT_EXAMPLES_FAST": "1"})
    assert rc == 0 and _done_by(out) == ["'five seconds.....'"]
    assert time.monotonic() - started < 4


async def test_worker_killed_mid_task_leaves_it_queued(examples: Examples, amqp_url: str) -> None:
    worker = await examples.receiver("worker.py")
    await examples.ok("new_task.py", "long task..........")
    assert await worker.readline() == "Received 'long task..........'"
    assert await message_count(amqp_url, "task_queue") == 0  # delivered, unacked
    await worker.kill()
    # The broker requeues the unacknowledged task once the connection drops.
    deadline = time.monotonic() + TIMEOUT
    while await message_count(amqp_url, "task_queue") != 1:
        assert time.monotonic() < deadline, "the task was not requeued"
        await asyncio.sleep(0.05)
    rc, out, err = await examples.run("worker.py", "--count", "1", "--fast")
    assert (rc, err) == (0, "")
    assert _done_by(out) == ["'long task..........'"]


async def test_worker_refuses_a_non_durable_task_queue(examples: Examples, amqp_url: str) -> None:
    async def declare(ch: aiorabbit.Channel) -> None:
        await ch.queue_declare("task_queue", durable=False)

    await _on_fresh_channel(amqp_url, declare)
    for name in ("new_task.py", "worker.py"):
        rc, out, err = await examples.run(name)
        assert rc == 1
        assert not any(line == "ready" for line in out)
        assert err.count("\n") == 1 and err.startswith("error: PreconditionFailed")


# ----------------------------------------------------------------------
# publish/subscribe: fanout


async def test_fanout_reaches_every_receiver(examples: Examples) -> None:
    receivers = [await examples.receiver("receive_logs.py", "--count", "2") for _ in range(2)]
    assert await examples.ok("emit_log.py") == ["Sent 'info: Hello World!'"]
    assert await examples.ok("emit_log.py", "warning:", "disk", "full") == ["Sent 'warning: disk full'"]
    for receiver in receivers:
        rc, out, err = await receiver.finish()
        assert (rc, err) == (0, "")
        assert out == ["Received 'info: Hello World!'", "Received 'warning: disk full'"]


async def test_receive_logs_uses_a_private_queue(examples: Examples, amqp_url: str) -> None:
    receiver = await examples.start("receive_logs.py", "--count", "1")
    first = await receiver.readline()
    assert first is not None
    match = re.fullmatch(r"Waiting for logs on '(amq\.gen-[^']+)'\..*", first)
    assert match, first
    queue = match.group(1)
    await receiver.wait_for("ready")
    # It exists, and it is exclusive: our passive declare is refused.
    assert await is_exclusive_elsewhere(amqp_url, queue)
    await examples.ok("emit_log.py", "bye")
    rc, out, _ = await receiver.finish()
    assert rc == 0 and out == ["Received 'bye'"]
    # Exclusive: gone with the receiver's connection.
    assert not await queue_exists(amqp_url, queue)


# ----------------------------------------------------------------------
# routing: direct


async def test_direct_routes_by_severity(examples: Examples) -> None:
    problems = await examples.receiver("receive_logs_direct.py", "--count", "2", "warning", "error")
    infos = await examples.receiver("receive_logs_direct.py", "--count", "1", "info")
    # Sent first: had "problems" received it, it would be among its 2 lines.
    assert await examples.ok("emit_log_direct.py", "info", "all", "good") == ["Sent 'info': 'all good'"]
    await examples.ok("emit_log_direct.py", "debug", "nobody listens")
    await examples.ok("emit_log_direct.py", "warning", "disk 90% full")
    await examples.ok("emit_log_direct.py", "error", "disk full")

    rc, out, err = await problems.finish()
    assert (rc, err) == (0, "")
    assert out == ["Received 'warning': 'disk 90% full'", "Received 'error': 'disk full'"]
    rc, out, err = await infos.finish()
    assert (rc, err) == (0, "")
    assert out == ["Received 'info': 'all good'"]


async def test_emit_log_direct_defaults_to_info(examples: Examples) -> None:
    receiver = await examples.receiver("receive_logs_direct.py", "--count", "1", "info")
    assert await examples.ok("emit_log_direct.py") == ["Sent 'info': 'Hello World!'"]
    rc, out, _ = await receiver.finish()
    assert rc == 0 and out == ["Received 'info': 'Hello World!'"]


# ----------------------------------------------------------------------
# topics


async def test_topic_routes_by_pattern(examples: Examples) -> None:
    receiver = await examples.receiver("receive_logs_topic.py", "--count", "4", "kern.*", "*.critical")
    everything = await examples.receiver("receive_logs_topic.py", "--count", "6", "#")
    sent = [
        ("kern.disk.info", "two words after kern"),  # "*" is exactly one word: no match
        ("app.info", "neither"),  # no match
        ("kern.info", "kernel info"),
        ("app.critical", "app critical"),
        ("kern.critical", "matches both bindings"),  # but arrives once
        ("x.critical", "last"),
    ]
    for key, text in sent:
        assert await examples.ok("emit_log_topic.py", key, text) == [f"Sent {key!r}: {text!r}"]

    rc, out, err = await receiver.finish()
    assert (rc, err) == (0, "")
    assert out == [f"Received {key!r}: {text!r}" for key, text in sent[2:]]
    rc, out, err = await everything.finish()
    assert (rc, err) == (0, "")
    assert out == [f"Received {key!r}: {text!r}" for key, text in sent]


async def test_emit_log_topic_default_key(examples: Examples) -> None:
    receiver = await examples.receiver("receive_logs_topic.py", "--count", "1", "*.info")
    assert await examples.ok("emit_log_topic.py") == ["Sent 'anonymous.info': 'Hello World!'"]
    rc, out, _ = await receiver.finish()
    assert rc == 0 and out == ["Received 'anonymous.info': 'Hello World!'"]


# ----------------------------------------------------------------------
# publisher confirms


async def test_publish_confirm_into_a_named_queue(examples: Examples, amqp_url: str, names: Any) -> None:
    queue = names.queue("confirm")
    out = await examples.ok(
        "publish_confirm.py", "--count", "500", "--batch-size", "120", "--size", "10", "--queue", queue
    )
    assert len(out) == 2
    assert re.fullmatch(
        rf"Published 500 messages of 10 bytes to '{re.escape(queue)}' in \d+\.\d+ s: [\d,]+ msg/s", out[0]
    ), out[0]
    assert out[1] == "Confirmed 500 of 500 messages"
    assert await message_count(amqp_url, queue) == 500


async def test_publish_confirm_default_temporary_queue(examples: Examples, amqp_url: str) -> None:
    out = await examples.ok("publish_confirm.py", "--count", "300")
    match = re.fullmatch(r"Published 300 messages of 128 bytes to '(amq\.gen-[^']+)' in .*", out[0])
    assert match, out
    assert out[1] == "Confirmed 300 of 300 messages"
    assert not await queue_exists(amqp_url, match.group(1))


async def test_publish_confirm_rejects_bad_arguments(examples: Examples) -> None:
    rc, out, err = await examples.run("publish_confirm.py", "--count", "0")
    assert rc == 2 and out == []
    assert "--count: must be at least 1" in err


# ----------------------------------------------------------------------
# quickstart


async def test_quickstart(examples: Examples, amqp_url: str) -> None:
    out = await examples.ok("quickstart.py")
    assert out[0].startswith("Connected to ")
    assert out[1] == "Declared queue 'aiorabbit.quickstart'"
    assert out[2] == "Published 10 messages, all confirmed by the broker"
    assert out[3:13] == [f"Received and acked 'message {n}' (message_id={n})" for n in range(1, 11)]
    assert out[13:] == ["Done: 10 messages published, consumed and acked"]
    # The queue was exclusive: nothing is left behind.
    assert not await queue_exists(amqp_url, "aiorabbit.quickstart")


# ----------------------------------------------------------------------
# every program: --help, and a one-line error when the broker is unreachable

ARGS = {
    "hello_send.py": (),
    "hello_receive.py": (),
    "new_task.py": (),
    "worker.py": (),
    "emit_log.py": (),
    "receive_logs.py": (),
    "emit_log_direct.py": (),
    "receive_logs_direct.py": ("info",),
    "emit_log_topic.py": (),
    "receive_logs_topic.py": ("#",),
    "publish_confirm.py": (),
    "quickstart.py": (),
    "rpc_server.py": (),
    "rpc_client.py": (),
}


def test_every_example_is_covered() -> None:
    # fastapi_app.py is an ASGI app (run by uvicorn): tests/test_fastapi.py runs it.
    programs = [path.name for path in EXAMPLES.glob("*.py") if path.name != "fastapi_app.py"]
    assert sorted(programs) == sorted(ARGS)


@pytest.fixture(scope="module")
def dead_url() -> str:
    """A URL on which nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"amqp://guest:guest@127.0.0.1:{port}/%2F"


@pytest.mark.parametrize("name", sorted(ARGS))
async def test_help_and_unreachable_broker(examples: Examples, name: str, dead_url: str) -> None:
    rc, out, err = await examples.run(name, "--help")
    assert rc == 0 and err == ""
    assert out[0].startswith(f"usage: {name}")

    rc, out, err = await examples.run(name, *ARGS[name], env={"AMQP_URL": dead_url})
    assert rc == 1
    assert "ready" not in out
    assert err.count("\n") == 1, err
    assert err.startswith("error: ConnectionFailed: cannot connect to 127.0.0.1:")


# ----------------------------------------------------------------------
# RPC (aiorabbit.rpc): Fibonacci numbers on "rpc_queue"


@pytest.fixture
async def rpc_queue(amqp_url: str) -> AsyncIterator[str]:
    """The tutorial's fixed queue, deleted before and after the test."""
    await delete(amqp_url, queues=("rpc_queue",))
    yield "rpc_queue"
    await delete(amqp_url, queues=("rpc_queue",))


async def test_rpc(examples: Examples, amqp_url: str, rpc_queue: str) -> None:
    server = await examples.receiver("rpc_server.py", "--count", "5")
    assert await examples.ok("rpc_client.py") == ["Requesting fib(30)", "Got fib(30) = 832040"]
    # Four calls in flight at once, each reply matched to its call.
    assert await examples.ok("rpc_client.py", "0", "1", "10", "90") == [
        "Requesting fib(0)",
        "Requesting fib(1)",
        "Requesting fib(10)",
        "Requesting fib(90)",
        "Got fib(0) = 0",
        "Got fib(1) = 1",
        "Got fib(10) = 55",
        "Got fib(90) = 2880067194370816120",
    ]
    rc, out, err = await server.finish()
    assert (rc, err) == (0, "")
    # One request at a time (prefetch 1), in the order they were sent.
    assert out == ["fib(30)", "fib(0)", "fib(1)", "fib(10)", "fib(90)"]
    # Each request was acked once answered.
    assert await message_count(amqp_url, rpc_queue) == 0


async def test_rpc_errors(examples: Examples, amqp_url: str, names: Any) -> None:
    queue = names.queue("rpc")
    server = await examples.receiver("rpc_server.py", "--queue", queue, "--count", "2")
    # The server's handler raises: the client raises RemoteError.
    rc, out, err = await examples.run("rpc_client.py", "--queue", queue, "seven")
    assert (rc, out) == (1, ["Requesting fib(seven)"])
    assert err == "error: RemoteError: ValueError: invalid literal for int() with base 10: 'seven'\n"
    rc, out, err = await examples.run("rpc_client.py", "--queue", queue, "-1")
    assert rc == 1 and err == "error: RemoteError: ValueError: n must be from 0 to 10000, not -1\n"
    rc, out, err = await server.finish()
    assert (rc, out) == (0, ["fib(seven)", "fib(-1)"])
    # The server's log shows each failure (aiorabbit's errors reach stderr
    # when the program configures no logging).
    assert err.count("RPC handler for") == 2 and "ValueError" in err

    # The queue is there, but nobody serves it: the call times out, and its
    # request expires with it.
    started = time.monotonic()
    rc, out, err = await examples.run("rpc_client.py", "--queue", queue, "--timeout", "0.3", "5")
    assert rc == 1 and err.startswith("error: RpcTimeout: no reply within 0.3 s (correlation_id=")
    assert time.monotonic() - started < TIMEOUT
    deadline = time.monotonic() + TIMEOUT
    while await message_count(amqp_url, queue) != 0:
        assert time.monotonic() < deadline, "the request did not expire"
        await asyncio.sleep(0.05)

    # No queue at all: the request comes back at once.
    rc, out, err = await examples.run("rpc_client.py", "--queue", names.queue("none"), "5")
    assert rc == 1 and err.startswith("error: MessageReturned: message returned (312 NO_ROUTE)")

    rc, out, err = await examples.run("rpc_client.py", "--timeout", "0")
    assert rc == 2 and "--timeout: must be positive, not 0" in err


async def test_rpc_server_runs_until_ctrl_c(examples: Examples, amqp_url: str, rpc_queue: str) -> None:
    server = await examples.receiver("rpc_server.py", sigint=True)
    assert await examples.ok("rpc_client.py", "7") == ["Requesting fib(7)", "Got fib(7) = 13"]
    assert await server.readline() == "fib(7)"
    server.proc.send_signal(signal.SIGINT)
    rc, out, err = await server.finish()
    assert (rc, out, err) == (0, [], "")  # a clean exit, no traceback
    assert await message_count(amqp_url, rpc_queue) == 0
