"""Run every program in examples/blocking/ as a subprocess against the real broker.

They are the RabbitMQ tutorials written after pika's, with aiorabbit.blocking,
and print what pika's print.  Like tests/test_examples.py (whose helpers and
file lock this module shares: the programs use the same fixed names), each
test starts the receivers, waits for the "ready" line they print once their
consumer is registered, runs the senders and checks what the receivers
printed and what is left on the broker.  The receivers run until Ctrl-C, as
pika's do, so every test ends them with SIGINT and checks the clean exit:
status 0, "Interrupted", no traceback.
"""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import AsyncIterator

import pytest

import aiorabbit

from . import test_examples as base
from .test_examples import TIMEOUT, Examples, Program, delete, message_count

# test_examples.py's fixtures, under their names here: the runner, the URL
# nobody listens on, and the file lock (module-scoped and autouse) that keeps
# two runs from sharing the broker's "hello", "task_queue"...
examples = base.examples
dead_url = base.dead_url
_one_run_at_a_time = base._one_run_at_a_time  # seam: the lock test_examples.py holds, shared
on_fresh_channel = base._on_fresh_channel  # seam: test_examples.py's helper, shared

BLOCKING = base.EXAMPLES / "blocking"

QUEUES = ("hello", "task_queue", "rpc_queue")
EXCHANGES = ("logs", "direct_logs", "topic_logs")


@pytest.fixture
async def fresh(amqp_url: str) -> AsyncIterator[None]:
    """Remove everything the programs name, before and after the test."""
    await delete(amqp_url, QUEUES, EXCHANGES)
    yield
    await delete(amqp_url, QUEUES, EXCHANGES)


pytestmark = [pytest.mark.usefixtures("fresh"), pytest.mark.slow]  # slow: programs run as subprocesses


# ----------------------------------------------------------------------
# helpers


async def ok(examples: Examples, name: str, *args: str) -> list[str]:
    """Run ``examples/blocking/<name>``, which must succeed; its stdout lines."""
    return await examples.ok(f"blocking/{name}", *args)


async def receiver(examples: Examples, name: str, *args: str) -> Program:
    """Start a receiver and wait until its consumer is registered."""
    program = await examples.receiver(f"blocking/{name}", *args, sigint=True)
    assert program.lines[0] in (
        " [*] Waiting for messages. To exit press CTRL+C",
        " [*] Waiting for logs. To exit press CTRL+C",
        " [x] Awaiting RPC requests",
    ), program.lines
    return program


async def read(program: Program, count: int, timeout: float = TIMEOUT) -> list[str]:
    """The next ``count`` lines ``program`` prints (each within ``timeout``)."""
    lines = []
    for _ in range(count):
        line = await program.readline(timeout)
        assert line is not None, f"{program.name} exited: {program.lines}"
        lines.append(line)
    return lines


async def interrupt(program: Program) -> list[str]:
    """Ctrl-C: the program must print "Interrupted" and exit 0 without a
    traceback.  Returns what it printed meanwhile, before that line."""
    program.proc.send_signal(signal.SIGINT)
    rc, out, err = await program.finish()
    assert (rc, err) == (0, ""), f"{program.name} exited {rc}: {err}"
    assert out[-1:] == ["Interrupted"], out
    return out[:-1]


async def wait_for_count(amqp_url: str, queue: str, expected: int) -> None:
    deadline = time.monotonic() + TIMEOUT
    while await message_count(amqp_url, queue) != expected:
        assert time.monotonic() < deadline, f"{queue} never held {expected} messages"
        await asyncio.sleep(0.05)


async def get_one(amqp_url: str, queue: str) -> aiorabbit.IncomingMessage | None:
    """``basic_get`` one message (acked) from ``queue``."""

    async def get(ch: aiorabbit.Channel) -> aiorabbit.IncomingMessage | None:
        msg = await ch.basic_get(queue)
        if msg is not None:
            await msg.ack()
        return msg

    return await on_fresh_channel(amqp_url, get)


# ----------------------------------------------------------------------
# 1. "Hello World!": send.py, receive.py


async def test_hello(examples: Examples, amqp_url: str) -> None:
    hello = await receiver(examples, "receive.py")
    assert await ok(examples, "send.py") == [" [x] Sent 'Hello World!'"]
    assert await ok(examples, "send.py") == [" [x] Sent 'Hello World!'"]
    # pika's receive.py prints the body as bytes.
    assert await read(hello, 2) == [" [x] Received b'Hello World!'"] * 2
    assert await interrupt(hello) == []
    assert hello.lines == [
        " [*] Waiting for messages. To exit press CTRL+C",
        "ready",
        " [x] Received b'Hello World!'",
        " [x] Received b'Hello World!'",
        "Interrupted",
    ]
    # Consumed with no_ack: nothing is left.
    assert await message_count(amqp_url, "hello") == 0


async def test_hello_messages_wait_for_the_receiver(examples: Examples, amqp_url: str) -> None:
    # The sender declares the queue: what it sends before any receiver runs
    # waits there (durable, like examples/hello_send.py's).
    await ok(examples, "send.py")
    await ok(examples, "send.py")
    assert await message_count(amqp_url, "hello") == 2
    hello = await receiver(examples, "receive.py")
    assert await read(hello, 2) == [" [x] Received b'Hello World!'"] * 2
    assert await interrupt(hello) == []
    assert await message_count(amqp_url, "hello") == 0


# ----------------------------------------------------------------------
# 2. work queues: new_task.py, worker.py


def _tasks(lines: list[str]) -> list[str]:
    return [line.removeprefix(" [x] Received ") for line in lines if line.startswith(" [x] Received ")]


async def test_work_queue_fair_dispatch(examples: Examples, amqp_url: str) -> None:
    busy = await receiver(examples, "worker.py")
    assert await ok(examples, "new_task.py", "long task...") == [" [x] Sent long task..."]
    assert await read(busy, 1) == [" [x] Received long task..."]
    started = time.monotonic()  # busy now sleeps three seconds, one per dot

    # With prefetch 1 the broker passes over the busy worker: every short
    # task goes to the idle one (round robin would give the busy one some).
    idle = await receiver(examples, "worker.py")
    short = ["short one", "short two", "short three"]
    outputs = await asyncio.gather(*(ok(examples, "new_task.py", task) for task in short))
    assert sorted(line for out in outputs for line in out) == sorted(f" [x] Sent {t}" for t in short)
    # (Without the prefetch limit this fails here: the idle worker prints
    # its share and then nothing.)
    done = await read(idle, 6, timeout=5)
    assert sorted(_tasks(done)) == sorted(short)
    assert done[1::2] == [" [x] Done"] * 3

    await busy.wait_for(" [x] Done")
    assert time.monotonic() - started >= 2.5
    assert await interrupt(busy) == []
    assert await interrupt(idle) == []
    assert _tasks(busy.lines) == ["long task..."]
    # Every task was acked once done: the durable queue is empty.
    assert await message_count(amqp_url, "task_queue") == 0


async def test_new_task_is_persistent_on_a_durable_queue(examples: Examples, amqp_url: str) -> None:
    assert await ok(examples, "new_task.py") == [" [x] Sent Hello World!"]
    assert await ok(examples, "new_task.py", "persist", "me.") == [" [x] Sent persist me."]

    async def redeclare(ch: aiorabbit.Channel) -> None:
        with pytest.raises(aiorabbit.PreconditionFailed):  # it is durable
            await ch.queue_declare("task_queue", durable=False)

    await on_fresh_channel(amqp_url, redeclare)
    for body in (b"Hello World!", b"persist me."):
        msg = await get_one(amqp_url, "task_queue")
        assert msg is not None and msg.body == body
        assert msg.properties.delivery_mode == aiorabbit.DeliveryMode.PERSISTENT


async def test_worker_stopped_mid_task_leaves_it_queued(examples: Examples, amqp_url: str) -> None:
    worker = await receiver(examples, "worker.py")
    await ok(examples, "new_task.py", "long task.....")
    assert await read(worker, 1) == [" [x] Received long task....."]
    assert await message_count(amqp_url, "task_queue") == 0  # delivered, not acked
    # Ctrl-C in the middle of the callback's sleep: no " [x] Done", a clean
    # exit, and the broker requeues the unacknowledged task.
    assert await interrupt(worker) == []
    await wait_for_count(amqp_url, "task_queue", 1)
    msg = await get_one(amqp_url, "task_queue")
    assert msg is not None and msg.body == b"long task....." and msg.redelivered


# ----------------------------------------------------------------------
# 3. publish/subscribe: emit_log.py, receive_logs.py


async def test_fanout_reaches_every_receiver(examples: Examples) -> None:
    # Sent before anyone listens: a fanout with no queue bound drops it.
    assert await ok(examples, "emit_log.py", "nobody") == [" [x] Sent nobody"]
    receivers = [await receiver(examples, "receive_logs.py") for _ in range(2)]
    assert await ok(examples, "emit_log.py") == [" [x] Sent info: Hello World!"]
    assert await ok(examples, "emit_log.py", "warning:", "disk", "full") == [" [x] Sent warning: disk full"]
    for program in receivers:
        assert await read(program, 2) == [" [x] b'info: Hello World!'", " [x] b'warning: disk full'"]
    for program in receivers:
        assert await interrupt(program) == []


# ----------------------------------------------------------------------
# 4. routing: emit_log_direct.py, receive_logs_direct.py


async def test_direct_routes_by_severity(examples: Examples) -> None:
    problems = await receiver(examples, "receive_logs_direct.py", "warning", "error")
    infos = await receiver(examples, "receive_logs_direct.py", "info")
    # The severity defaults to info, the message to "Hello World!".
    assert await ok(examples, "emit_log_direct.py") == [" [x] Sent info:Hello World!"]
    assert await ok(examples, "emit_log_direct.py", "debug", "nobody", "listens") == [
        " [x] Sent debug:nobody listens"
    ]
    await ok(examples, "emit_log_direct.py", "warning", "disk 90% full")
    await ok(examples, "emit_log_direct.py", "error", "disk full")

    assert await read(problems, 2) == [" [x] warning:b'disk 90% full'", " [x] error:b'disk full'"]
    assert await read(infos, 1) == [" [x] info:b'Hello World!'"]
    # Sent in order, so anything else routed to them would have come first
    # (or, for infos, between): nothing did.
    assert await interrupt(problems) == []
    assert await interrupt(infos) == []


@pytest.mark.parametrize(
    ("name", "usage"),
    [("receive_logs_direct.py", "[info] [warning] [error]"), ("receive_logs_topic.py", "[binding_key]...")],
)
async def test_receivers_want_their_keys(examples: Examples, name: str, usage: str) -> None:
    rc, out, err = await examples.run(f"blocking/{name}")
    assert (rc, out) == (1, [])
    assert err == f"Usage: {BLOCKING / name} {usage}\n"


# ----------------------------------------------------------------------
# 5. topics: emit_log_topic.py, receive_logs_topic.py


async def test_topic_routes_by_pattern(examples: Examples) -> None:
    some = await receiver(examples, "receive_logs_topic.py", "kern.*", "*.critical")
    everything = await receiver(examples, "receive_logs_topic.py", "#")
    sent = [
        ("kern.disk.info", "two words after kern"),  # "*" is exactly one word: no match
        ("app.info", "neither"),  # no match
        ("kern.info", "kernel info"),
        ("app.critical", "app critical"),
        ("kern.critical", "matches both bindings"),  # but arrives once
        ("x.critical", "last"),
    ]
    for key, text in sent:
        assert await ok(examples, "emit_log_topic.py", key, text) == [f" [x] Sent {key}:{text}"]

    assert await read(some, 4) == [f" [x] {key}:{text.encode()!r}" for key, text in sent[2:]]
    assert await read(everything, 6) == [f" [x] {key}:{text.encode()!r}" for key, text in sent]
    assert await interrupt(some) == []
    assert await interrupt(everything) == []


async def test_emit_log_topic_defaults(examples: Examples) -> None:
    infos = await receiver(examples, "receive_logs_topic.py", "*.info")
    assert await ok(examples, "emit_log_topic.py") == [" [x] Sent anonymous.info:Hello World!"]
    # A key alone is used with the default message.
    assert await ok(examples, "emit_log_topic.py", "kern.info") == [" [x] Sent kern.info:Hello World!"]
    assert await read(infos, 2) == [" [x] anonymous.info:b'Hello World!'", " [x] kern.info:b'Hello World!'"]
    assert await interrupt(infos) == []


# ----------------------------------------------------------------------
# 6. RPC: rpc_server.py, rpc_client.py (FibonacciRpcClient)


async def test_rpc(examples: Examples, amqp_url: str) -> None:
    server = await receiver(examples, "rpc_server.py")
    assert await ok(examples, "rpc_client.py") == [" [x] Requesting fib(30)", " [.] Got 832040"]
    assert await read(server, 1) == [" [.] fib(30)"]
    # Two clients at once: each reply reaches its own client's reply queue
    # with its correlation id.
    outputs = await asyncio.gather(ok(examples, "rpc_client.py", "10"), ok(examples, "rpc_client.py", "25"))
    assert list(outputs) == [
        [" [x] Requesting fib(10)", " [.] Got 55"],
        [" [x] Requesting fib(25)", " [.] Got 75025"],
    ]
    assert sorted(await read(server, 2)) == [" [.] fib(10)", " [.] fib(25)"]
    assert await interrupt(server) == []
    # Each request was acked once answered.
    assert await message_count(amqp_url, "rpc_queue") == 0


async def test_rpc_requests_wait_for_the_server(examples: Examples, amqp_url: str) -> None:
    server = await receiver(examples, "rpc_server.py")
    assert await interrupt(server) == []  # the durable queue stays
    client = await examples.start("blocking/rpc_client.py", "12")
    assert await read(client, 1) == [" [x] Requesting fib(12)"]
    await wait_for_count(amqp_url, "rpc_queue", 1)
    # The client waits in process_data_events until a server answers.
    server = await receiver(examples, "rpc_server.py")
    rc, out, err = await client.finish()
    assert (rc, out, err) == (0, [" [.] Got 144"], "")
    assert await read(server, 1) == [" [.] fib(12)"]
    assert await interrupt(server) == []


# ----------------------------------------------------------------------
# 7. publisher confirms: publisher_confirms.py


async def test_publisher_confirms(examples: Examples) -> None:
    # 1,234: the thousands separator, and a last batch of 34.
    out = await ok(examples, "publisher_confirms.py", "1234")
    strategies = ["individually", "in batch", "and handled confirms asynchronously"]
    assert len(out) == len(strategies), out
    for line, strategy in zip(out, strategies, strict=True):
        assert re.fullmatch(rf"Published 1,234 messages {strategy} in \d[\d,]* ms", line), line


# ----------------------------------------------------------------------
# every program: covered here, in the README, and failing fast without a broker

#: The arguments each program needs to get as far as connecting.
ARGS = {
    "send.py": (),
    "receive.py": (),
    "new_task.py": (),
    "worker.py": (),
    "emit_log.py": (),
    "receive_logs.py": (),
    "emit_log_direct.py": (),
    "receive_logs_direct.py": ("info",),
    "emit_log_topic.py": (),
    "receive_logs_topic.py": ("#",),
    "rpc_server.py": (),
    "rpc_client.py": (),
    "publisher_confirms.py": ("10",),
}


def test_every_example_is_covered() -> None:
    programs = sorted(path.name for path in BLOCKING.glob("*.py"))
    assert programs == sorted(ARGS)
    readme = (BLOCKING / "README.md").read_text()
    assert [name for name in programs if f"`{name}`" not in readme] == []


@pytest.mark.parametrize("name", sorted(ARGS))
async def test_unreachable_broker(examples: Examples, name: str, dead_url: str) -> None:
    # No error handling beyond pika's: the connection error's traceback.
    started = time.monotonic()
    rc, out, err = await examples.run(f"blocking/{name}", *ARGS[name], env={"AMQP_URL": dead_url})
    assert time.monotonic() - started < TIMEOUT
    assert (rc, out) == (1, [])
    assert err.startswith("Traceback (most recent call last):\n")
    assert err.splitlines()[-1].startswith(
        "aiorabbit.exceptions.ConnectionFailed: cannot connect to 127.0.0.1:"
    ), err
