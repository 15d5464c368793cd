"""What the robust connection, its channels and its consumers share.

They reach each other only through the tuples of callables here, handed
over at creation: a :class:`Hub` from the connection to its channels and
consumers, a :class:`ChannelRecovery` from each channel to the connection,
a :class:`ConsumerRecovery` from each consumer to its channel.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from ..channel import Channel
    from ..connection import Connection
    from .channel import RobustChannel
    from .consumer import RobustConsumer

__all__ = [
    "EVENTS", "ChannelAccess", "ChannelRecovery", "ConsumerRecovery", "Hub", "Listener", "State", "stop_task",
]

log = logging.getLogger("aiorabbit.recovery")

# stop_task() cancels a task up to this many times, waiting this long after each.
_STOP_TRIES = 50
_STOP_WAIT = 0.1

Listener = Callable[..., Any]
EVENTS = (
    "disconnected",  # (conn, error): the connection was lost; recovery starts
    "reconnected",  # (conn,): connected again and everything recovered
    "recovery_failed",  # (conn, error): gave up; the connection is closed
    "recovery_error",  # (conn, record, error): one declare or consume failed during recovery
    "consumer_cancelled",  # (conn, consumer): the broker cancelled a consumer
    "blocked",  # (conn, reason)
    "unblocked",  # (conn,)
)


class State(str, enum.Enum):
    """Where a :class:`RobustConnection` is."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    RECONNECTING = "reconnecting"
    CLOSED = "closed"


class ConsumerRecovery(NamedTuple):
    """How a channel recovers one of its consumers."""

    consumer: RobustConsumer
    #: Whether it must consume again on this plain channel.
    needs_resume: Callable[[Channel], bool]
    #: Consume again on this plain channel.
    resume: Callable[[Channel], Awaitable[None]]
    #: Its queue is gone: wait for it in the background.
    park: Callable[[], None]
    #: The channel closed for good: end with this error.
    abort: Callable[[BaseException], None]
    #: Stop waiting for the queue (the connection closes).
    stop_watching: Callable[[], None]
    #: Its server-named queue got this new name.
    rename: Callable[[str], None]


class ChannelRecovery(NamedTuple):
    """How the connection recovers one of its channels."""

    channel: RobustChannel
    #: Open a fresh plain channel on this connection, with QoS and modes.
    reopen: Callable[[Connection], Awaitable[None]]
    #: Consume again with every consumer that needs it.
    recover_consumers: Callable[[Connection], Awaitable[None]]
    #: The channel's consumers (shared: consumers add and remove themselves).
    consumers: list[ConsumerRecovery]
    #: The connection closed for good.
    closed: Callable[[BaseException], None]


class Hub(NamedTuple):
    """What channels and consumers use of their robust connection."""

    #: Report an event to the connection's listeners.
    emit: Callable[..., None]
    #: Run a task the connection cancels when it closes.
    spawn: Callable[[Awaitable[Any]], asyncio.Task[Any]]
    #: The live plain connection, waiting up to the timeout for recovery.
    wait_connected: Callable[[float | None], Awaitable[Connection]]
    #: Whether recovery will repair what raised this error.
    recovers_from: Callable[[BaseException], bool]
    #: Where the connection is now.
    state: Callable[[], State]
    #: The program is closing the connection.
    closing: Callable[[], bool]
    #: The open channels.
    channels: list[ChannelRecovery]


class ChannelAccess(NamedTuple):
    """What a consumer uses of its robust channel."""

    hub: Hub
    #: The plain channel to use now, waiting for recovery or reopening it.
    live: Callable[[], Awaitable[Channel]]
    #: The plain channel in use now, if any.
    current: Callable[[], Channel | None]
    #: The channel's consumers, where a consumer adds itself once started.
    consumers: list[ConsumerRecovery]


async def stop_task(task: asyncio.Task[Any], what: str) -> None:
    """Cancel ``task`` and wait for it to end, for a bounded time: a task
    that swallows a cancellation (``asyncio.wait_for`` on Python 3.10 and
    3.11 can, CPython gh-86296) is cancelled again, and close() never
    waits for ever on one that will not stop."""
    for _ in range(_STOP_TRIES):
        task.cancel()
        await asyncio.wait({task}, timeout=_STOP_WAIT)
        if task.done():
            if not task.cancelled():
                task.exception()  # retrieved: its error was reported where it happened
            return
    log.error("%s did not stop within %.1f s of close(); leaving it", what, _STOP_TRIES * _STOP_WAIT)
