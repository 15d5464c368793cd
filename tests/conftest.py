"""The project's fixtures come from its own pytest plugin, ``aiorabbit.testing``
(enabled by ``aiorabbit_fixtures = true`` in pyproject.toml): ``amqp_url``
(``AMQP_URL``, else localhost:5672, else testcontainers, else a clear failure),
``amqp_connection``, ``amqp_channel`` and ``amqp_names``.  The short names the
suite uses (``connection``, ``channel``, ``names``) are those fixtures.

Set ``AIORABBIT_TEST_LOOP=uvloop`` to run the whole suite under uvloop
(``asyncio``, the default, is the only other value).

The ``slow`` marker tags the tests that start extra broker nodes, the chaos
run, the benchmarks and the other long tests: ``pytest -m "not slow"`` is the
fast path for contributors (CONTRIBUTING.md).  It is set in the test files,
except for the files listed in :data:`SLOW_ELSEWHERE`.  The ``extra_node``
marker skips a test, saying why, where no extra node can be started.

The ``broker_free`` marker tags the tests that need no broker at all (the
codec, tests against the scripted server of ``tests/amqp_server.py``):
``pytest -m broker_free`` runs with none, since the autouse ``_env_url``
fixture looks for the broker only in the other tests.
"""

from __future__ import annotations

import asyncio
import functools
import os
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import aiorabbit
from aiorabbit.testing import Names

from . import ctl
from .cluster import cluster, running_cluster  # noqa: F401  (the session's three-node cluster)

__all__ = ["Names"]

LOOPS = ("asyncio", "uvloop")
_LOOP = os.environ.get("AIORABBIT_TEST_LOOP") or "asyncio"

#: A test still running after this many seconds is taken for hung: the
#: stacks of its asyncio tasks are printed and the tasks cancelled, so that it
#: fails and the run goes on.  (A plain signal cannot do it: uvloop, idle in
#: libuv, runs no Python signal handler.)  pytest-timeout (``timeout`` in
#: pyproject.toml) is the backstop for everything else.
HANG_AFTER = float(os.environ.get("AIORABBIT_TEST_HANG_AFTER", "100"))

# The test loops created so far that have not been closed yet.
_loops: list[asyncio.AbstractEventLoop] = []


def pytest_asyncio_loop_factories(config: Any, item: Any) -> dict[str, Any]:
    if _LOOP == "uvloop":
        import uvloop

        return {"uvloop": functools.partial(_tracked, uvloop.new_event_loop)}
    return {"asyncio": functools.partial(_tracked, asyncio.new_event_loop)}


def _tracked(factory: Callable[[], asyncio.AbstractEventLoop]) -> asyncio.AbstractEventLoop:
    _loops[:] = [loop for loop in _loops if not loop.is_closed()]
    loop = factory()
    _loops.append(loop)
    return loop


@pytest.fixture(autouse=True)
def _env_url(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    # connect() with no URL must reach the test broker too.  A test marked
    # broker_free never asks for the broker (looking for one fails the test
    # where none answers), so it runs without one.
    if request.node.get_closest_marker("broker_free") is not None:
        return
    monkeypatch.setenv("AMQP_URL", request.getfixturevalue("amqp_url"))


@pytest.fixture
def connection(amqp_connection: aiorabbit.Connection) -> aiorabbit.Connection:
    return amqp_connection


@pytest.fixture
def channel(amqp_channel: aiorabbit.Channel) -> aiorabbit.Channel:
    return amqp_channel


@pytest.fixture
def names(amqp_names: Names) -> Names:
    return amqp_names


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "slow: a long test (extra broker nodes, chaos, benchmarks, subprocesses); "
        'deselect with -m "not slow"',
    )
    config.addinivalue_line(
        "markers",
        "broker_free: needs no RabbitMQ (codec tests, tests against the scripted server in "
        "tests/amqp_server.py); -m broker_free runs them with no broker at all",
    )
    config.addinivalue_line(
        "markers",
        "extra_node: starts RabbitMQ nodes of its own (tests/broker_node.py); skipped, "
        "saying why, where this machine cannot (no rabbitmq-server, no rabbitmq user)",
    )
    if _LOOP not in LOOPS:
        raise pytest.UsageError(
            f"AIORABBIT_TEST_LOOP={_LOOP!r} is not a known event loop: use one of {', '.join(LOOPS)}"
        )
    if _LOOP == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError as exc:
            raise pytest.UsageError(
                f"AIORABBIT_TEST_LOOP=uvloop but uvloop cannot be imported: {exc}"
            ) from None
    ctl._forced()  # an unknown AIORABBIT_TEST_CTL is a usage error too


#: Test files tagged ``slow`` as a whole from here, because their owners
#: keep them free of this conftest's markers (every other file carries its
#: own): file name -> why.
SLOW_ELSEWHERE = {
    "test_cli.py": "runs the aiorabbit command as subprocesses",
    "test_testing_plugin.py": "runs inner pytest sessions as subprocesses",
}


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in SLOW_ELSEWHERE:
            item.add_marker(pytest.mark.slow)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("extra_node") is not None:
        from .broker_node import unavailable_reason

        reason = unavailable_reason()
        if reason:
            pytest.skip(f"cannot start an extra RabbitMQ node: {reason}")


def pytest_report_header(config: Any) -> str:
    return f"aiorabbit test event loop: {_LOOP}"


def _cancel_hung(loop: asyncio.AbstractEventLoop) -> None:
    # Runs in the loop's own thread (call_soon_threadsafe wakes it up).
    print(f"\n=== hung for {HANG_AFTER:g} s: the test's asyncio tasks, then cancelled ===", file=sys.stderr)
    for task in asyncio.all_tasks(loop):
        task.print_stack(file=sys.stderr)
        task.cancel()
    sys.stderr.flush()


def _hung() -> None:
    for loop in list(_loops):
        if loop.is_running():
            loop.call_soon_threadsafe(_cancel_hung, loop)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    """Turn a test hung in its event loop into a failure that shows where it waited."""
    timer = threading.Timer(HANG_AFTER, _hung)
    timer.daemon = True
    timer.start()
    try:
        return (yield)
    finally:
        timer.cancel()
