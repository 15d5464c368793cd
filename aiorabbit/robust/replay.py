"""Replaying what recovery restores on a new connection: the channels, the
recorded topology (exchanges, queues, exchange bindings, queue bindings,
in that order) and the consumers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from .._compat import wait_for
from ..backoff import Backoff
from ..channel import Channel
from ..connection import Connection
from ..exceptions import ChannelClosed, ResourceLocked
from ..topology import Topology
from .common import ChannelRecovery, Hub

__all__ = ["replay"]

log = logging.getLogger("aiorabbit.recovery")

T = TypeVar("T")


async def replay(conn: Connection, hub: Hub, topology: Topology, *, timeout: float, wait_timeout: float,
                 backoff: Backoff) -> None:
    """Reopen every channel on ``conn``, declare the topology again, then
    consume again; each step gets ``timeout`` seconds."""
    for port in list(hub.channels):
        await wait_for(port.reopen(conn), timeout)
    await _declare(conn, hub, topology, timeout=timeout, wait_timeout=wait_timeout, backoff=backoff)
    for port in list(hub.channels):
        await port.recover_consumers(conn)


async def _declare(conn: Connection, hub: Hub, topology: Topology, *, timeout: float, wait_timeout: float,
                   backoff: Backoff) -> None:
    # The broker drops a silent connection after two missed heartbeats;
    # until then its exclusive queues stay locked.
    locked_budget = max(wait_timeout, 3.0 * conn.heartbeat)
    ch = await wait_for(conn.channel(), timeout)

    async def run(record: Any, call: Callable[[Channel], Awaitable[T]]) -> T | None:
        nonlocal ch
        started = time.monotonic()
        attempt = 0
        while True:
            try:
                return await wait_for(call(ch), timeout)
            except ChannelClosed as exc:
                ch = await wait_for(conn.channel(), timeout)
                attempt += 1
                # An exclusive queue of the dead connection is still there
                # until the broker notices that connection is gone.
                if isinstance(exc, ResourceLocked) and time.monotonic() - started < locked_budget:
                    await asyncio.sleep(backoff.delay(attempt))
                    continue
                log.warning("recovering %r failed: %s", record, exc)
                hub.emit("recovery_error", record, exc)
                return None

    for ex in list(topology.exchanges.values()):
        await run(ex, lambda c, ex=ex: c.exchange_declare(  # type: ignore[misc]
            ex.name, ex.type, durable=ex.durable, auto_delete=ex.auto_delete, internal=ex.internal,
            arguments=ex.arguments))
    for q in list(topology.queues.values()):
        old = q.name
        ok = await run(q, lambda c, q=q: c.queue_declare(  # type: ignore[misc]
            "" if q.server_named else q.name, durable=q.durable, exclusive=q.exclusive,
            auto_delete=q.auto_delete, arguments=q.arguments))
        if ok is not None and ok.queue != old:
            topology.rename_queue(old, ok.queue)
            _rename_consumers(hub.channels, old, ok.queue)
    for b in topology.exchange_bindings():
        await run(b, lambda c, b=b: c.exchange_bind(  # type: ignore[misc]
            b.destination, b.source, b.routing_key, b.arguments))
    for b in topology.queue_bindings():
        await run(b, lambda c, b=b: c.queue_bind(  # type: ignore[misc]
            b.destination, b.source, b.routing_key, b.arguments))
    await wait_for(ch.close(), timeout)


def _rename_consumers(channels: list[ChannelRecovery], old: str, new: str) -> None:
    """A server-named queue came back under a new name: its consumers follow."""
    for port in channels:
        for consumer in port.consumers:
            if consumer.consumer.queue == old:
                consumer.rename(new)
