"""The test helpers themselves: :mod:`tests.ctl` (rabbitmqctl, else the
management HTTP API, else a skip saying why), the ``slow`` and
``extra_node`` markers and the settings ``tests/conftest.py`` checks when
pytest starts."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

import aiorabbit
from aiorabbit import ConnectionForced

from . import broker_node, conftest, ctl

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def _fresh_backend(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test chooses the backend anew; the session's choice is back after."""
    monkeypatch.setattr(ctl, "_backend", None)
    monkeypatch.setattr(ctl, "_unavailable", None)
    monkeypatch.setattr(ctl, "_why", {})
    monkeypatch.delenv("AIORABBIT_TEST_CTL", raising=False)
    yield


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unique(label: str) -> str:
    return f"test_ctl.{label}.{uuid.uuid4().hex[:8]}"


async def test_neither_rabbitmqctl_nor_the_api_skips_saying_why(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    missing = str(tmp_path / "rabbitmqctl")
    url = f"http://127.0.0.1:{closed_port()}/"
    monkeypatch.setattr(ctl, "RABBITMQCTL", missing)
    monkeypatch.setenv("AIORABBIT_MANAGEMENT_URL", url)

    with pytest.raises(pytest.skip.Exception) as info:
        await ctl.connections()
    reason = str(info.value)
    assert reason.startswith(f"needs rabbitmqctl or the management API at {url} ("), reason
    assert f"rabbitmqctl: {missing} is not installed" in reason
    assert f"http: {url} does not answer" in reason
    # The other helpers skip the same way; the choice is made only once.
    with pytest.raises(pytest.skip.Exception, match="needs rabbitmqctl or the management API"):
        await ctl.close_connection("anything")
    with pytest.raises(pytest.skip.Exception, match="needs rabbitmqctl or the management API"):
        await ctl.rabbitmqctl("list_connections")
    with pytest.raises(pytest.skip.Exception) as info:
        await ctl.connections(node="other@localhost")
    assert str(info.value) == f"needs rabbitmqctl: {missing} is not installed"


async def test_a_rabbitmqctl_that_does_not_answer_is_passed_over(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Installed, but for another broker (a Docker one, say): it fails.
    fake = tmp_path / "rabbitmqctl"
    fake.write_text("#!/bin/sh\necho 'Error: unable to perform an operation on node' >&2\nexit 69\n")
    fake.chmod(0o755)
    url = f"http://127.0.0.1:{closed_port()}/"
    monkeypatch.setattr(ctl, "RABBITMQCTL", str(fake))
    monkeypatch.setenv("AIORABBIT_MANAGEMENT_URL", url)
    with pytest.raises(pytest.skip.Exception) as info:
        await ctl.connections()
    assert "rabbitmqctl: does not answer: " in str(info.value)
    assert "unable to perform an operation on node" in str(info.value)


async def test_rabbitmqctl_is_preferred_where_it_works() -> None:
    if not os.access(ctl.RABBITMQCTL, os.X_OK):
        pytest.skip(f"rabbitmqctl is not installed ({ctl.RABBITMQCTL})")
    assert await ctl.backend() == "rabbitmqctl"


@pytest.mark.slow  # up to 10 s: the API lists a connection only with its statistics
async def test_the_management_api_lists_and_closes_connections_by_name(
    monkeypatch: pytest.MonkeyPatch, amqp_url: str
) -> None:
    monkeypatch.setenv("AIORABBIT_TEST_CTL", "http")
    assert await ctl.backend() == "http"  # skips here when the API does not answer
    name = unique("http")
    async with aiorabbit.connect(amqp_url, name=name) as conn:
        row = await ctl.find_connection(name)
        assert " -> " in row["pid"]  # the API's name for it
        assert row in await ctl.http_connections()
        await ctl.close_connection(name, "maintenance over http")
        reason = await conn.wait_closed()
    assert isinstance(reason, ConnectionForced) and reason.reply_code == 320
    assert "maintenance over http" in reason.reply_text
    assert name not in [r["name"] for r in await ctl.connections()]
    # Forced to the API, commands that only rabbitmqctl can run skip.
    with pytest.raises(pytest.skip.Exception, match="AIORABBIT_TEST_CTL=http"):
        await ctl.rabbitmqctl("list_connections")


def test_management_url_follows_amqp_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIORABBIT_MANAGEMENT_URL", raising=False)
    monkeypatch.setenv("AMQP_URL", "amqp://bob:s%40cret@rabbit.example:5673/%2F")
    assert ctl.management_url() == "http://rabbit.example:15672/"
    assert ctl._credentials(ctl.management_url()) == ("bob", "s@cret")
    monkeypatch.setenv("AMQP_URL", "amqp://[::1]:5672/")
    assert ctl.management_url() == "http://[::1]:15672/"
    assert ctl._credentials(ctl.management_url()) == ("guest", "guest")
    monkeypatch.setenv("AIORABBIT_MANAGEMENT_URL", "https://admin:pw@mgmt.example:443/rabbit")
    assert ctl.management_url() == "https://admin:pw@mgmt.example:443/rabbit/"
    assert ctl._credentials(ctl.management_url()) == ("admin", "pw")
    assert ctl._shown(ctl.management_url()) == "https://mgmt.example:443/rabbit/"


def test_an_unknown_backend_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIORABBIT_TEST_CTL", "docker")
    with pytest.raises(pytest.UsageError, match="AIORABBIT_TEST_CTL='docker'"):
        ctl._forced()


@pytest.mark.parametrize(
    ("variable", "message"),
    [
        ("AIORABBIT_TEST_LOOP", "AIORABBIT_TEST_LOOP='tokio' is not a known event loop"),
        ("AIORABBIT_TEST_CTL", "AIORABBIT_TEST_CTL='tokio': expected one of"),
    ],
)
def test_an_unknown_setting_stops_pytest_at_once(variable: str, message: str) -> None:
    env = {**os.environ, variable: "tokio"}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q",
         "tests/test_backoff.py"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == pytest.ExitCode.USAGE_ERROR, proc.stdout + proc.stderr
    assert message in proc.stderr


def test_the_markers_are_registered(pytestconfig: pytest.Config) -> None:
    markers = pytestconfig.getini("markers")
    assert any(line.startswith("slow:") for line in markers)
    assert any(line.startswith("extra_node:") for line in markers)


def test_extra_node_tests_skip_where_rabbitmq_is_not_installed(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    monkeypatch.setattr(broker_node, "_SCRIPT_DIRS", ())
    monkeypatch.setattr(shutil, "which", lambda *args, **kwargs: None)
    request.node.add_marker(pytest.mark.extra_node)
    with pytest.raises(pytest.skip.Exception) as info:
        conftest.pytest_runtest_setup(request.node)
    assert str(info.value) == "cannot start an extra RabbitMQ node: rabbitmq-server is not installed"


def test_extra_node_tests_skip_without_the_rabbitmq_user(
    monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
) -> None:
    if broker_node.unavailable_reason() == "rabbitmq-server is not installed":
        pytest.skip("rabbitmq-server is not installed: the skip is tested above")
    monkeypatch.setattr(broker_node, "RABBITMQ_USER", "no-such-user-for-aiorabbit")
    request.node.add_marker(pytest.mark.extra_node)
    with pytest.raises(pytest.skip.Exception, match="there is no 'no-such-user-for-aiorabbit' user"):
        conftest.pytest_runtest_setup(request.node)
