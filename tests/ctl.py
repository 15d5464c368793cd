"""rabbitmqctl helpers for tests that need the broker's side of things."""

from __future__ import annotations

import asyncio
import re
import shutil
from typing import Any

RABBITMQCTL = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
# How the text formatter shows the connection_name client property.
_NAME = re.compile(r'\{"connection_name","((?:[^"\\]|\\.)*)"\}')


async def rabbitmqctl(*args: str, node: str | None = None, timeout: float = 60) -> str:
    cmd = [RABBITMQCTL, *(["-n", node] if node else []), *args]
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {err.decode()} {out.decode()}")
    return out.decode()


async def connections(node: str | None = None) -> list[dict[str, Any]]:
    """Every connection as {"pid": ..., "name": connection_name or None}.

    Both columns come from one rabbitmqctl call (two calls could disagree
    when another test opens or closes a connection in between), as text: the
    JSON formatter shows pids in a form ``close_connection`` rejects."""
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
    await rabbitmqctl("close_connection", row["pid"], reason, node=node)
