"""The pytest entry point (``pytest11``) installed with aiorabbit.

pytest loads this module in every project that has aiorabbit installed, so it
does nothing but add options.  The fixtures of :mod:`aiorabbit.testing` are
opt-in; any one of these turns them on:

- ``pytest --aiorabbit``;
- ``aiorabbit_fixtures = true`` in the ``[tool.pytest.ini_options]`` table
  (or ``pytest.ini``);
- ``pytest_plugins = ["aiorabbit.testing"]`` in a ``conftest.py``, or
  ``pytest -p aiorabbit.testing``.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest

FIXTURES_MODULE = "aiorabbit.testing"
FIXTURES = ("amqp_url", "amqp_connection", "amqp_channel", "amqp_names")
OPT_IN_HINT = (
    "aiorabbit's fixtures are opt-in: run 'pytest --aiorabbit', set 'aiorabbit_fixtures = true' "
    "in the pytest ini options ([tool.pytest.ini_options] in pyproject.toml), or add "
    "pytest_plugins = [\"aiorabbit.testing\"] to a conftest.py"
)


def pytest_addoption(parser: Any) -> None:
    """Add ``--aiorabbit``, ``--amqp-url`` and their ini-file settings."""
    group = parser.getgroup("aiorabbit", "aiorabbit RabbitMQ fixtures")
    group.addoption(
        "--aiorabbit",
        action="store_true",
        default=None,
        help="enable aiorabbit's fixtures (amqp_url, amqp_connection, amqp_channel, amqp_names)",
    )
    group.addoption(
        "--amqp-url",
        dest="amqp_url",
        default=None,
        help="broker URL for aiorabbit's fixtures (default: $AMQP_URL, else localhost:5672, "
        "else a testcontainers broker)",
    )
    parser.addini("aiorabbit_fixtures", "enable aiorabbit's fixtures", type="bool", default=False)
    parser.addini("amqp_url", "broker URL for aiorabbit's fixtures", default="")


def pytest_configure(config: Any) -> None:
    """Register the fixtures when the project opted in."""
    enabled = config.getoption("aiorabbit") or config.getini("aiorabbit_fixtures")
    if enabled and not config.pluginmanager.has_plugin(FIXTURES_MODULE):
        config.pluginmanager.import_plugin(FIXTURES_MODULE)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Generator[None, Any, None]:
    """When a test asks for an ``amqp_*`` fixture that is not enabled, say
    how to enable it next to pytest's "fixture not found"."""
    outcome = yield
    report = outcome.get_result()
    if report.when != "setup" or not report.failed:
        return
    if item.config.pluginmanager.has_plugin(FIXTURES_MODULE):
        return
    text = str(report.longrepr)
    if any(f"fixture '{name}' not found" in text for name in FIXTURES):
        report.sections.append(("aiorabbit", OPT_IN_HINT))
