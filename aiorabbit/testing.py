"""pytest fixtures for tests that talk to a real RabbitMQ.

Opt in with ``pytest --aiorabbit``, ``aiorabbit_fixtures = true`` in the
pytest ini options, or ``pytest_plugins = ["aiorabbit.testing"]`` in a
``conftest.py`` (the ``aiorabbit-client[pytest]`` extra brings pytest,
pytest-asyncio, and testcontainers for the Docker fallback).  The fixtures:

``amqp_url`` (session)
    A broker URL: ``--amqp-url``, the ``amqp_url`` ini option or
    ``$AMQP_URL`` when set (it must answer), else the broker on
    localhost:5672 when one answers (guest/guest), else a RabbitMQ container
    started with testcontainers for the session.  With none of them the tests
    that use it fail, saying how to start a broker.
``amqp_connection``
    An open :class:`~aiorabbit.Connection`, closed after the test.
``amqp_channel``
    An open :class:`~aiorabbit.Channel` on ``amqp_connection``.
``amqp_names``
    A :class:`Names`: unique queue and exchange names; whatever the test
    declared under them is deleted after it.

The async ones run on the test's own event loop under either async plugin:
pytest-asyncio (``@pytest.mark.asyncio`` or ``asyncio_mode = auto``) or
anyio's (``@pytest.mark.anyio`` with the ``asyncio`` backend, as FastAPI's
documentation shows).  This module does not need pytest-asyncio: see
:func:`pytest_fixture_setup` for how each test's plugin is picked.

:func:`aiorabbit.discovery.broker_url` is the same discovery as a context
manager, for scripts and other test runners (that module does not import
pytest).

pytest-asyncio warns while ``asyncio_default_fixture_loop_scope`` is unset:
set it (``asyncio_default_fixture_loop_scope = "function"``) in the pytest
ini options.
"""

from __future__ import annotations

import contextlib
import importlib
import re
import sys
import types
import uuid
from collections.abc import AsyncIterator, Callable, Generator, Iterator
from typing import Any

import pytest

from .channel import Channel
from .connection import Connection, connect
from .discovery import BrokerUnavailable, broker_url
from .exceptions import AMQPError, InvalidArgument

__all__ = ["BrokerUnavailable", "Names", "broker_url"]

class Names:
    """Unique queue and exchange names for one test.

    ``names.queue("orders")`` returns ``"<prefix>.orders.<8 hex digits>"`` and
    remembers it; :meth:`cleanup` deletes every queue and exchange it handed
    out (missing ones are fine).
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.queues: list[str] = []
        self.exchanges: list[str] = []

    def queue(self, label: str = "q") -> str:
        """A new unique queue name."""
        name = self._new(label)
        self.queues.append(name)
        return name

    def exchange(self, label: str = "x") -> str:
        """A new unique exchange name."""
        name = self._new(label)
        self.exchanges.append(name)
        return name

    def _new(self, label: str) -> str:
        return f"{self.prefix}.{label}.{uuid.uuid4().hex[:8]}"

    async def cleanup(self, url: str) -> None:
        """Delete every queue and exchange named so far."""
        if not (self.queues or self.exchanges):
            return
        async with connect(url, name="aiorabbit-testing-cleanup") as conn:
            ch = await conn.channel()
            for delete, name in [(Channel.queue_delete, q) for q in self.queues] + [
                (Channel.exchange_delete, x) for x in self.exchanges
            ]:
                if not ch.is_open:  # an error closes the channel: take a new one
                    ch = await conn.channel()
                with contextlib.suppress(AMQPError):
                    await delete(ch, name)


def _safe_name(nodeid: str) -> str:
    # Queue names are at most 255 bytes; keep room for the label and suffix.
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", nodeid)[-80:].lstrip("-.") or "test"


@pytest.fixture(scope="session")
def amqp_url(pytestconfig: pytest.Config) -> Iterator[str]:
    """The URL of a running broker, for the whole session."""
    given = pytestconfig.getoption("amqp_url", None) or _ini(pytestconfig, "amqp_url") or None
    try:
        with broker_url(given) as url:
            yield url
    except (BrokerUnavailable, InvalidArgument) as exc:
        # pytrace=False: a traceback would show the URL among the arguments.
        pytest.fail(str(exc), pytrace=False)


def _ini(config: pytest.Config, name: str) -> str:
    try:
        return str(config.getini(name) or "")
    except ValueError:  # the ini option is only declared by the entry point
        return ""


async def _connection(amqp_url: str, request: pytest.FixtureRequest) -> AsyncIterator[Connection]:
    """An open connection (named after the test), closed after it."""
    conn = await connect(amqp_url, name=f"pytest:{request.node.nodeid}"[:255])
    try:
        yield conn
    finally:
        await conn.close()


async def _channel(amqp_connection: Connection) -> AsyncIterator[Channel]:
    """An open channel on ``amqp_connection``."""
    ch = await amqp_connection.channel()
    yield ch
    if ch.is_open:
        await ch.close()


async def _names(amqp_url: str, request: pytest.FixtureRequest) -> AsyncIterator[Names]:
    """Unique names; what the test declared under them is deleted after it."""
    names = Names(f"test.{_safe_name(request.node.name)}")
    try:
        yield names
    finally:
        await names.cleanup(amqp_url)


# Which plugin runs an async fixture (pytest-asyncio 1.x, anyio 4.x):
#
# - pytest-asyncio: in strict mode only the fixtures made with
#   pytest_asyncio.fixture (which marks the function), in auto mode any async
#   one; on its runner's loop, the one its own tests (is_async_test) run on.
# - anyio's plugin: any async fixture of a test that asks for anyio_backend
#   (@pytest.mark.anyio adds it), on the runner that test runs on.
#
# Each takes a fixture by swapping FixtureDef.func in a pytest_fixture_setup
# wrapper, and which wrapper is the outer one depends on the order the plugins
# were loaded in.  So, when pytest-asyncio can be imported, the fixtures are
# registered marked for it (its strict mode runs them, and does not warn about
# an unmarked async fixture, as before); and pytest_fixture_setup below, a
# wrapper outside both, hands anyio's plugin an unmarked copy of the function
# when anyio runs the test, which pytest-asyncio's strict mode leaves alone.

_pytest_asyncio: Any
try:
    _pytest_asyncio = importlib.import_module("pytest_asyncio")
except ImportError:  # anyio's plugin alone: the fixtures are plain async ones
    _pytest_asyncio = None

#: registered fixture function -> the unmarked function anyio's plugin gets
_UNMARKED: dict[Callable[..., Any], Callable[..., Any]] = {}


def _fixture(func: Callable[..., Any], name: str) -> Any:
    registered = _copy(func)
    _UNMARKED[registered] = func
    if _pytest_asyncio is not None:
        return _pytest_asyncio.fixture(registered, name=name)
    return pytest.fixture(registered, name=name)


def _copy(func: Callable[..., Any]) -> Callable[..., Any]:
    # A second function object with the same code: pytest-asyncio marks the
    # function itself, so the unmarked one has to be another object.
    assert isinstance(func, types.FunctionType)
    twin = types.FunctionType(func.__code__, func.__globals__, func.__name__, func.__defaults__)
    twin.__qualname__, twin.__doc__, twin.__module__ = func.__qualname__, func.__doc__, func.__module__
    twin.__annotations__ = dict(func.__annotations__)
    return twin


amqp_connection = _fixture(_connection, "amqp_connection")
amqp_channel = _fixture(_channel, "amqp_channel")
amqp_names = _fixture(_names, "amqp_names")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_fixture_setup(fixturedef: Any, request: pytest.FixtureRequest) -> Generator[None, object, object]:
    """Set up an async ``amqp_*`` fixture through the plugin that runs its test.

    tryfirst: this wrapper is outside pytest-asyncio's and anyio's, so it
    decides before either of them looks at ``fixturedef.func``.
    """
    registered = fixturedef.func
    unmarked = _UNMARKED.get(registered)
    if unmarked is None or not _anyio_runs_it(fixturedef.argname, request):
        return (yield)
    fixturedef.func = unmarked
    try:
        return (yield)
    finally:
        fixturedef.func = registered


def _anyio_runs_it(argname: str, request: pytest.FixtureRequest) -> bool:
    """Whether anyio's plugin runs fixture *argname* for this test (else
    pytest-asyncio does); fails the test when neither can, or when they would
    put the fixture and the test on two event loops."""
    config = request.config
    asyncio_plugin = _plugin(config, "pytest_asyncio.plugin")
    anyio_plugin = _plugin(config, "anyio.pytest_plugin")
    wants_anyio = anyio_plugin is not None and "anyio_backend" in request.fixturenames
    if asyncio_plugin is not None and (asyncio_plugin.is_async_test(request.node) or not wants_anyio):
        if wants_anyio and _wraps(config, anyio_plugin, asyncio_plugin):
            pytest.fail(_TWO_LOOPS.format(test=request.node.nodeid, fixture=argname), pytrace=False)
        return False
    if not wants_anyio:
        pytest.fail(_NO_PLUGIN.format(fixture=argname), pytrace=False)
    backend = request.getfixturevalue("anyio_backend")
    name = backend if isinstance(backend, str) else backend[0]
    if name != "asyncio":
        pytest.fail(_NOT_ASYNCIO.format(fixture=argname, backend=name), pytrace=False)
    return True


def _plugin(config: pytest.Config, module: str) -> Any:
    """The plugin module *module* when it is registered (``-p no:asyncio``
    leaves pytest-asyncio importable but not registered)."""
    plugin = sys.modules.get(module)
    return plugin if plugin is not None and config.pluginmanager.is_registered(plugin) else None


def _wraps(config: pytest.Config, outer: object, inner: object) -> bool:
    """Whether plugin *outer*'s pytest_fixture_setup wrapper runs before (so
    around) *inner*'s: pluggy calls the implementations from the end of this list."""
    plugins = [impl.plugin for impl in config.hook.pytest_fixture_setup.get_hookimpls()]
    return outer in plugins and inner in plugins and plugins.index(outer) > plugins.index(inner)


_NO_PLUGIN = (
    "aiorabbit's fixture {fixture!r} is async, and no plugin runs it for this test: mark the test "
    '@pytest.mark.anyio (anyio\'s plugin, with an anyio_backend fixture returning "asyncio"), or '
    "install pytest-asyncio and mark it @pytest.mark.asyncio (or set asyncio_mode = auto)"
)
_NOT_ASYNCIO = (
    "aiorabbit's fixture {fixture!r} needs anyio's asyncio backend, and this test runs on {backend!r}: "
    'return "asyncio" from the anyio_backend fixture'
)
_TWO_LOOPS = (
    "{test} is run by pytest-asyncio (asyncio_mode = auto, or @pytest.mark.asyncio) and also asks for "
    "anyio_backend (@pytest.mark.anyio): anyio's plugin would run aiorabbit's fixture {fixture!r} on "
    "another event loop than the test's. Use one plugin for the test: with @pytest.mark.anyio, keep "
    "pytest-asyncio in strict mode (asyncio_mode = strict, its default)"
)
