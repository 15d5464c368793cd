"""rabbitmqctl helpers for tests that need the broker's side of things."""

from __future__ import annotations

import asyncio
import json
import shutil
from typing import Any

RABBITMQCTL = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"


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
    """Every connection as {"pid": ..., "name": connection_name or None}."""
    pids = await rabbitmqctl("list_connections", "pid", "-q", "--no-table-headers", node=node)
    props = await rabbitmqctl(
        "list_connections", "client_properties", "--formatter", "json", node=node
    )
    rows = []
    for pid, row in zip(pids.split(), json.loads(props), strict=True):
        rows.append({"pid": pid, "name": _connection_name(row)})
    return rows


def _connection_name(row: dict[str, Any]) -> str | None:
    # rabbitmqctl's JSON shows the table as [name, type, value] triples.
    for item in row.get("client_properties") or []:
        if isinstance(item, list) and item and item[0] == "connection_name":
            return str(item[-1])
    return None


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
