"""pytest fixtures for tests that talk to a real RabbitMQ.

Opt in with ``pytest --aiorabbit``, ``aiorabbit_fixtures = true`` in the
pytest ini options, or ``pytest_plugins = ["aiorabbit.testing"]`` in a
``conftest.py`` (needs the ``aiorabbit-client[pytest]`` extra: pytest-asyncio, and
testcontainers for the Docker fallback).  The fixtures:

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

:func:`aiorabbit.discovery.broker_url` is the same discovery as a context
manager, for scripts and other test runners (that module does not import
pytest).

pytest-asyncio warns while ``asyncio_default_fixture_loop_scope`` is unset:
set it (``asyncio_default_fixture_loop_scope = "function"``) in the pytest
ini options.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

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


@pytest_asyncio.fixture
async def amqp_connection(amqp_url: str, request: pytest.FixtureRequest) -> AsyncIterator[Connection]:
    """An open connection (named after the test), closed after it."""
    conn = await connect(amqp_url, name=f"pytest:{request.node.nodeid}"[:255])
    try:
        yield conn
    finally:
        await conn.close()


@pytest_asyncio.fixture
async def amqp_channel(amqp_connection: Connection) -> AsyncIterator[Channel]:
    """An open channel on ``amqp_connection``."""
    ch = await amqp_connection.channel()
    yield ch
    if ch.is_open:
        await ch.close()


@pytest_asyncio.fixture
async def amqp_names(amqp_url: str, request: pytest.FixtureRequest) -> AsyncIterator[Names]:
    """Unique names; what the test declared under them is deleted after it."""
    names = Names(f"test.{_safe_name(request.node.name)}")
    try:
        yield names
    finally:
        await names.cleanup(amqp_url)
