"""The broker's side of things for tests: list its connections (with their
client-provided ``connection_name``) and close one by name, with a reason.

Two ways to reach the broker, chosen once per test session at first use:

``rabbitmqctl``
    When it is installed and answers (``rabbitmqctl await_startup``): a
    broker on this machine, as in CI.
the management HTTP API
    Otherwise (a broker in Docker, as the README suggests; macOS without a
    local RabbitMQ): ``$AIORABBIT_MANAGEMENT_URL``, else
    ``http://<host of $AMQP_URL>:15672/``, with the credentials of that URL,
    else those of ``$AMQP_URL``, else guest/guest.  Only the standard library
    is used (``urllib`` in a thread, short timeouts).  The API lists a new
    connection with its client properties only once the broker has
    collected its statistics (every 5 s by default), so listing
    connections can take that long (:func:`http_connections`).

When neither answers, the test is skipped, saying why.  Set
``AIORABBIT_TEST_CTL=rabbitmqctl`` or ``=http`` to use only one of them.

Each row of :func:`connections` is ``{"pid": ..., "name": ...}``: ``name`` is
the ``connection_name`` client property (or ``None``) and ``pid`` identifies
the connection on the broker (the Erlang pid from ``rabbitmqctl``, the API's
own connection name such as ``"127.0.0.1:50123 -> 127.0.0.1:5672"`` over
HTTP): a reconnected client has a new one.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import shutil
import time
import urllib.parse
import urllib.request
from typing import Any

import pytest

RABBITMQCTL = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
#: How long a management API request may take.
HTTP_TIMEOUT = 5.0
#: How long :func:`http_connections` waits for new connections' statistics.
STATS_WAIT = 10.0
#: How long ``rabbitmqctl await_startup`` may take to tell whether it works.
PROBE_TIMEOUT = 30.0
BACKENDS = ("rabbitmqctl", "http")

# How the text formatter shows the connection_name client property.
_NAME = re.compile(r'\{"connection_name","((?:[^"\\]|\\.)*)"\}')

# The backend found by the first call ("rabbitmqctl" or "http"), or why
# there is none; reset by tests that change the environment.
_backend: str | None = None
_unavailable: str | None = None
_why: dict[str, str] = {}  # backend -> why it is not used
# When http_connections() first saw each connection the API names.
_first_seen: dict[str, float] = {}


class Unavailable(Exception):
    """One way of reaching the broker does not work here."""


# --------------------------------------------------------------------------
# choosing the backend


def management_url() -> str:
    """The management API's base URL (credentials left in, if given)."""
    explicit = os.environ.get("AIORABBIT_MANAGEMENT_URL")
    if explicit:
        return explicit.rstrip("/") + "/"
    amqp = urllib.parse.urlsplit(os.environ.get("AMQP_URL") or "amqp://localhost")
    host = amqp.hostname or "localhost"
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    return f"http://{host}:15672/"


def _shown(url: str) -> str:
    """``url`` without its credentials, for messages."""
    parts = urllib.parse.urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _credentials(url: str) -> tuple[str, str]:
    for candidate in (url, os.environ.get("AMQP_URL") or ""):
        parts = urllib.parse.urlsplit(candidate)
        if parts.username:
            return urllib.parse.unquote(parts.username), urllib.parse.unquote(parts.password or "")
    return "guest", "guest"


def _forced() -> str | None:
    value = os.environ.get("AIORABBIT_TEST_CTL") or None
    if value is not None and value not in BACKENDS:
        raise pytest.UsageError(
            f"AIORABBIT_TEST_CTL={value!r}: expected one of {', '.join(BACKENDS)} (or unset)"
        )
    return value


async def backend() -> str:
    """``"rabbitmqctl"`` or ``"http"``; skips the test when neither works."""
    global _backend, _unavailable
    if _backend is None and _unavailable is None:
        forced = _forced()
        for candidate in BACKENDS:
            if forced not in (None, candidate):
                _why[candidate] = f"not used with AIORABBIT_TEST_CTL={forced}"
                continue
            try:
                await (_probe_rabbitmqctl() if candidate == "rabbitmqctl" else _probe_http())
            except Unavailable as exc:
                _why[candidate] = str(exc)
            else:
                _backend = candidate
                break
        else:
            reasons = "; ".join(f"{name}: {why}" for name, why in _why.items())
            _unavailable = (
                f"needs rabbitmqctl or the management API at {_shown(management_url())} ({reasons})"
            )
    if _backend is None:
        pytest.skip(_unavailable or "needs rabbitmqctl or the management API")
    return _backend


def reset() -> None:
    """Forget the backend chosen, so that the next call chooses again."""
    global _backend, _unavailable
    _backend = _unavailable = None
    _why.clear()


async def _probe_rabbitmqctl() -> None:
    if not os.access(RABBITMQCTL, os.X_OK):
        raise Unavailable(f"{RABBITMQCTL} is not installed")
    try:
        await _run_rabbitmqctl("await_startup", "--timeout", "10", timeout=PROBE_TIMEOUT)
    except (OSError, RuntimeError, asyncio.TimeoutError) as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise Unavailable(f"does not answer: {first_line}") from exc


async def _probe_http() -> None:
    try:
        await _http("GET", "api/overview")
    except (OSError, ValueError) as exc:  # urllib.error.URLError is an OSError
        raise Unavailable(f"{_shown(management_url())} does not answer: {exc}") from exc


# --------------------------------------------------------------------------
# rabbitmqctl


async def _run_rabbitmqctl(*args: str, node: str | None = None, timeout: float = 60) -> str:
    cmd = [RABBITMQCTL, *(["-n", node] if node else []), *args]
    proc = await asyncio.create_subprocess_exec(
        *cmd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()
        raise
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {err.decode()} {out.decode()}")
    return out.decode()


async def rabbitmqctl(*args: str, node: str | None = None, timeout: float = 60) -> str:
    """Run ``rabbitmqctl ARGS...``; skips the test where it does not work
    (the management API cannot stand in for an arbitrary command)."""
    if node is None:
        if await backend() != "rabbitmqctl":
            pytest.skip(f"needs rabbitmqctl: {_why.get('rabbitmqctl')}")
    elif not os.access(RABBITMQCTL, os.X_OK):
        pytest.skip(f"needs rabbitmqctl: {RABBITMQCTL} is not installed")
    return await _run_rabbitmqctl(*args, node=node, timeout=timeout)


# --------------------------------------------------------------------------
# the management HTTP API

# No proxy: $http_proxy must not catch requests to the broker next door.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _http_sync(method: str, path: str, headers: dict[str, str]) -> Any:
    base = management_url()
    parts = urllib.parse.urlsplit(base)
    url = urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2])) + path
    user, password = _credentials(base)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    request = urllib.request.Request(
        url,
        method=method,
        headers={"Authorization": f"Basic {token}", "Accept": "application/json", **headers},
    )
    with _opener.open(request, timeout=HTTP_TIMEOUT) as response:
        body = response.read()
    return json.loads(body) if body else None


async def _http(method: str, path: str, headers: dict[str, str] | None = None) -> Any:
    return await asyncio.to_thread(_http_sync, method, path, headers or {})


async def http_connections() -> list[dict[str, Any]]:
    """:func:`connections` through the management API.

    The API lists a connection with its client properties only once the
    broker has collected its statistics (``collect_statistics_interval``,
    5 s by default), but names it at once with ``disable_stats=true``: the
    call waits until the connections opened in the last :data:`STATS_WAIT`
    seconds are listed with their properties, as ``rabbitmqctl`` would list
    them.  (Older ones are not waited for: the broker keeps naming some
    connections that failed during their handshake, and never lists them.)"""
    deadline = time.monotonic() + STATS_WAIT
    while True:
        rows = await _http("GET", "api/connections?columns=name,client_properties")
        now = time.monotonic()
        named = await _http("GET", "api/connections?disable_stats=true")
        seen = {row["name"]: _first_seen.get(row["name"], now) for row in named}
        _first_seen.clear()
        _first_seen.update(seen)
        listed = {row["name"] for row in rows}
        new = [name for name, first in seen.items() if name not in listed and now - first < STATS_WAIT]
        if not new or now >= deadline:
            break
        await asyncio.sleep(0.2)
    found = []
    for row in rows:
        props = row.get("client_properties") or {}
        name = props.get("connection_name")
        found.append({"pid": row["name"], "name": name if isinstance(name, str) else None})
    return found


async def http_close(pid: str, reason: str) -> None:
    """Close the connection the API calls ``pid``, with ``reason``."""
    await _http(
        "DELETE",
        "api/connections/" + urllib.parse.quote(pid, safe=""),
        # Sent as HTTP header: keep it to what a header can carry.
        {"X-Reason": reason.encode("ascii", "replace").decode()},
    )


# --------------------------------------------------------------------------
# what the tests use


async def connections(node: str | None = None) -> list[dict[str, Any]]:
    """Every connection as {"pid": ..., "name": connection_name or None}.

    With ``rabbitmqctl``, both columns come from one call (two calls could
    disagree when another test opens or closes a connection in between), as
    text: the JSON formatter shows pids in a form ``close_connection``
    rejects.  ``node`` (an extra node) needs ``rabbitmqctl``."""
    if node is None and await backend() == "http":
        return await http_connections()
    out = await rabbitmqctl(
        "list_connections", "pid", "client_properties", "-q", "--no-table-headers", node=node
    )
    rows = []
    for line in out.splitlines():
        pid, _, props = line.partition("\t")
        if pid.strip():
            found = _NAME.search(props)
            rows.append({"pid": pid.strip(), "name": found.group(1) if found else None})
    return rows


async def find_connection(name: str, node: str | None = None, wait: float = 10) -> dict[str, Any]:
    """The row of the connection named ``name``, waiting up to ``wait``
    seconds for it to show up."""
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        for row in await connections(node):
            if row["name"] == name:
                return row
        if asyncio.get_running_loop().time() > deadline:
            raise LookupError(f"no connection named {name!r} on the broker")
        await asyncio.sleep(0.2)


async def close_connection(name: str, reason: str = "closed by test", node: str | None = None) -> None:
    row = await find_connection(name, node)
    if node is None and await backend() == "http":
        await http_close(row["pid"], reason)
    else:
        await rabbitmqctl("close_connection", row["pid"], reason, node=node)
