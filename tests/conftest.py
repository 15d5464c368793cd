"""Shared fixtures: a real broker, connections, channels, unique names.

The broker comes from ``AMQP_URL`` when set, else the broker answering on
localhost:5672, else one started with testcontainers where a Docker engine
runs; otherwise the run stops with a message saying how to start one.
Set ``AIORABBIT_TEST_LOOP=uvloop`` to run the whole suite under uvloop.
"""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

import aiorabbit

_LOOP = os.environ.get("AIORABBIT_TEST_LOOP", "asyncio")


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def pytest_asyncio_loop_factories(config: Any, item: Any) -> dict[str, Any]:
    if _LOOP == "uvloop":
        import uvloop

        return {"uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """The URL of a running broker for the whole session."""
    url = os.environ.get("AMQP_URL")
    if url:
        parts = urlsplit(url)
        if not _answers(parts.hostname or "localhost", parts.port or 5672):
            pytest.exit(f"AMQP_URL={url!r} does not answer", returncode=3)
        yield url
        return
    if _answers("127.0.0.1", 5672):
        yield "amqp://guest:guest@127.0.0.1:5672/%2F"
        return
    try:
        from testcontainers.rabbitmq import RabbitMqContainer

        container = RabbitMqContainer("rabbitmq:3-management")
        container.start()
    except Exception as exc:  # no Docker engine, no image...
        pytest.exit(
            "No RabbitMQ broker: set AMQP_URL, start one on localhost:5672 "
            "('rabbitmq-server -detached' or 'docker compose up -d'), or run a "
            f"Docker engine for testcontainers ({exc})",
            returncode=3,
        )
    try:
        host = container.get_container_host_ip()
        port = container.get_exposed_port(5672)
        yield f"amqp://guest:guest@{host}:{port}/%2F"
    finally:
        container.stop()


@pytest.fixture(autouse=True)
def _env_url(amqp_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # connect() with no URL must reach the test broker too.
    monkeypatch.setenv("AMQP_URL", amqp_url)


@pytest.fixture
async def connection(amqp_url: str) -> AsyncIterator[aiorabbit.Connection]:
    conn = await aiorabbit.connect(amqp_url, name="aiorabbit-tests")
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def channel(connection: aiorabbit.Connection) -> AsyncIterator[aiorabbit.Channel]:
    ch = await connection.channel()
    yield ch
    if ch.is_open:
        await ch.close()


class Names:
    """Unique queue/exchange names, deleted after the test."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.queues: list[str] = []
        self.exchanges: list[str] = []

    def queue(self, label: str = "q") -> str:
        name = f"{self.prefix}.{label}.{uuid.uuid4().hex[:8]}"
        self.queues.append(name)
        return name

    def exchange(self, label: str = "x") -> str:
        name = f"{self.prefix}.{label}.{uuid.uuid4().hex[:8]}"
        self.exchanges.append(name)
        return name


@pytest.fixture
async def names(request: pytest.FixtureRequest, amqp_url: str) -> AsyncIterator[Names]:
    result = Names(f"test.{request.node.name[:60]}")
    yield result
    if not (result.queues or result.exchanges):
        return
    async with aiorabbit.connect(amqp_url) as conn:
        ch = await conn.channel()
        for queue in result.queues:
            if not ch.is_open:
                ch = await conn.channel()
            try:
                await ch.queue_delete(queue)
            except aiorabbit.AMQPError:
                pass
        for exchange in result.exchanges:
            if not ch.is_open:
                ch = await conn.channel()
            try:
                await ch.exchange_delete(exchange)
            except aiorabbit.AMQPError:
                pass


def pytest_report_header(config: Any) -> str:
    return f"aiorabbit test event loop: {_LOOP}"
