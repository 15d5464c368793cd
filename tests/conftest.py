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
from typing import Any

import pytest

import aiorabbit
from aiorabbit.testing import Names

__all__ = ["Names"]

_LOOP = os.environ.get("AIORABBIT_TEST_LOOP", "asyncio")


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
