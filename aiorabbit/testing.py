"""pytest fixtures for tests that talk to a real RabbitMQ.

Opt in with ``pytest --aiorabbit``, ``aiorabbit_fixtures = true`` in the
pytest ini options, or ``pytest_plugins = ["aiorabbit.testing"]`` in a
``conftest.py`` (needs the ``aiorabbit[pytest]`` extra: pytest-asyncio, and
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

:func:`broker_url` is the same discovery as a context manager, for scripts
and other test runners.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio

from .channel import Channel
from .connection import Connection, connect
from .exceptions import AMQPError, InvalidArgument
from .parameters import ConnectionParameters, redact_urls

__all__ = ["BrokerUnavailable", "Names", "broker_url"]

LOCAL_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
CONTAINER_IMAGE = "rabbitmq:3-management"
HOW_TO_START = (
    "set AMQP_URL (or --amqp-url), start RabbitMQ on localhost:5672 "
    "('rabbitmq-server -detached', or 'docker compose up -d' with aiorabbit's docker-compose.yml), "
    "or run a Docker engine so that testcontainers can start one"
)


class BrokerUnavailable(RuntimeError):
    """No broker answers and none could be started."""


def _answers(url: str, timeout: float = 1.0) -> bool:
    # A malformed URL raises InvalidArgument, whose message never holds the
    # password (urllib's ValueError may: "Port could not be cast ... 's3cr3t'").
    params = ConnectionParameters.from_url(url)
    try:
        with socket.create_connection((params.host, params.port), timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def broker_url(url: str | None = None) -> Iterator[str]:
    """Yield the URL of a running broker.

    ``url`` (else ``$AMQP_URL``) is used when given and must answer; else the
    broker on localhost:5672; else a container started with testcontainers,
    stopped when the block ends.  Raises :class:`BrokerUnavailable`, or
    :class:`~aiorabbit.InvalidArgument` for a malformed URL (neither
    message holds the URL's password).
    """
    url = url or os.environ.get("AMQP_URL") or None
    if url is not None:
        if not _answers(url):
            raise BrokerUnavailable(f"the broker at {redact_urls(url)} does not answer")
        yield url
        return
    if _answers(LOCAL_URL):
        yield LOCAL_URL
        return
    try:
        from testcontainers.rabbitmq import RabbitMqContainer

        container = RabbitMqContainer(CONTAINER_IMAGE)
        container.start()
    except Exception as exc:  # not installed, no Docker engine, no image...
        raise BrokerUnavailable(f"no RabbitMQ broker: {HOW_TO_START} ({exc})") from exc
    try:
        host = container.get_container_host_ip()
        port = container.get_exposed_port(5672)
        yield f"amqp://guest:guest@{host}:{port}/%2F"
    finally:
        container.stop()


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
