"""The project's fixtures come from its own pytest plugin, ``aiorabbit.testing``
(enabled by ``aiorabbit_fixtures = true`` in pyproject.toml): ``amqp_url``
(``AMQP_URL``, else localhost:5672, else testcontainers, else a clear failure),
``amqp_connection``, ``amqp_channel`` and ``amqp_names``.  The short names the
suite uses (``connection``, ``channel``, ``names``) are those fixtures.

Set ``AIORABBIT_TEST_LOOP=uvloop`` to run the whole suite under uvloop.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import aiorabbit
from aiorabbit.testing import Names

__all__ = ["Names"]

_LOOP = os.environ.get("AIORABBIT_TEST_LOOP", "asyncio")

#: A test still running after this many seconds gets its asyncio tasks'
#: stacks printed (a hang shows where it waits); pytest-timeout fails it
#: later (``timeout`` in pyproject.toml).
DUMP_AFTER = float(os.environ.get("AIORABBIT_TEST_DUMP_AFTER", "100"))


def pytest_asyncio_loop_factories(config: Any, item: Any) -> dict[str, Any]:
    if _LOOP == "uvloop":
        import uvloop

        return {"uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}


@pytest.fixture(autouse=True)
def _env_url(amqp_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # connect() with no URL must reach the test broker too.
    monkeypatch.setenv("AMQP_URL", amqp_url)


@pytest.fixture
def connection(amqp_connection: aiorabbit.Connection) -> aiorabbit.Connection:
    return amqp_connection


@pytest.fixture
def channel(amqp_channel: aiorabbit.Channel) -> aiorabbit.Channel:
    return amqp_channel


@pytest.fixture
def names(amqp_names: Names) -> Names:
    return amqp_names


def pytest_report_header(config: Any) -> str:
    return f"aiorabbit test event loop: {_LOOP}"



def _dump_tasks(signum: int, frame: Any) -> None:
    # Runs in the main thread, inside the event loop it interrupted (if any).
    loop = asyncio._get_running_loop()
    print(f"\n=== asyncio tasks still running after {DUMP_AFTER:g} s ===", file=sys.stderr)
    for task in asyncio.all_tasks(loop) if loop is not None else ():
        task.print_stack(file=sys.stderr)
    sys.stderr.flush()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Print the asyncio tasks of a test that hangs (``kill -USR1`` does too)."""
    previous = signal.signal(signal.SIGUSR1, _dump_tasks)
    timer = threading.Timer(DUMP_AFTER, os.kill, (os.getpid(), signal.SIGUSR1))
    timer.daemon = True
    timer.start()
    try:
        return (yield)
    finally:
        timer.cancel()
        signal.signal(signal.SIGUSR1, previous)
