"""At-least-once publishing: :class:`Publisher`.

Every message gets a ``message_id`` (unless the caller set one: 32 hex
digits, a random prefix per publisher and a counter), is published on a
channel in confirm mode, and :meth:`Publisher.publish` returns only once
the broker has confirmed it.  If the connection is lost before the confirm
arrives, the message is published again after recovery (on a
:func:`~aiorabbit.connect_robust` connection); it may then arrive twice,
with the same ``message_id``, which is what consumers use to drop
duplicates.  A nack is retried ``nack_retries`` times, each after a
growing delay (a quorum queue nacks while it elects a new leader, which
takes a moment), then raised.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import math
import random
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

from ._compat import wait_for
from .backoff import Backoff
from .codec import Buffer
from .codec.properties import Properties
from .exceptions import (
    AMQPError,
    ChannelClosed,
    ConnectionClosed,
    InvalidArgument,
    PublishNacked,
    PublishTimeout,
)
from .interface import AnyConnection

__all__ = ["Publisher", "OutgoingMessage"]

log = logging.getLogger("aiorabbit.publisher")


@dataclasses.dataclass
class OutgoingMessage:
    """One message for :meth:`Publisher.publish_many`."""

    body: Buffer
    exchange: str = ""
    routing_key: str = ""
    properties: Properties | None = None
    mandatory: bool = False


class Publisher:
    """Publish with confirms, at most ``window`` unconfirmed at a time.

    Use it as ``async with Publisher(conn) as publisher:``; leaving the
    block waits for every publish still in flight.  ``conn`` is a
    :class:`RobustConnection` (messages survive connection loss) or a plain
    :class:`Connection` (a loss raises).  ``timeout`` bounds one publish,
    waiting for recovery and for its confirm included, raising
    :class:`~aiorabbit.PublishTimeout` (``None``: no bound; a robust
    connection's backoff budget still ends the wait for recovery, but a
    confirm a quorum queue without a majority never sends is waited for).
    A nacked message is published again up to ``nack_retries`` times,
    after delays growing along ``nack_backoff``.
    """

    def __init__(
        self,
        conn: AnyConnection,
        *,
        window: int = 1000,
        nack_retries: int = 5,
        nack_backoff: Backoff | None = None,
        timeout: float | None = None,
    ) -> None:
        if window < 1:
            raise InvalidArgument("window must be at least 1")
        if nack_retries < 0:
            raise InvalidArgument("nack_retries must be >= 0")
        self._conn = conn
        self.window = window
        self.nack_retries = nack_retries
        #: Delays before nack retries: retry ``n`` waits between half and
        #: all of ``nack_backoff.ceiling(n)`` (default: 0.2 s doubling up
        #: to 2 s, so five retries span 2.5 to 5 s).
        self.nack_backoff = nack_backoff if nack_backoff is not None else Backoff(initial=0.2, maximum=2.0)
        self.timeout = timeout
        self._room = asyncio.Semaphore(window)
        self._channel: Any = None  # a Channel or a RobustChannel
        self._in_flight = 0
        self._unconfirmed = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False
        #: Messages published again after a connection loss (each may be a duplicate).
        self.republished = 0
        #: Nacked publishes that were retried.
        self.nacks_retried = 0
        #: Channels replaced after a nack (see ``_renew``).
        self.channels_renewed = 0
        self._renew_lock = asyncio.Lock()
        self._uses: dict[Any, int] = {}  # publishes under way per channel
        self._retired: set[Any] = set()  # replaced channels, closed once idle
        self._closing_tasks: set[asyncio.Task[None]] = set()
        # Ids unique without a system call per message (as uuid4 costs): 80
        # random bits per publisher, then a 48-bit counter.
        self._id_prefix = uuid.uuid4().hex[:20]
        self._ids = itertools.count(1)

    @property
    def in_flight(self) -> int:
        """Publishes started and not yet finished (confirmed or failed),
        including those waiting for room in the window."""
        return self._in_flight

    @property
    def unconfirmed(self) -> int:
        """Messages sent (or being sent) and not yet confirmed: at most ``window``."""
        return self._unconfirmed

    async def __aenter__(self) -> Publisher:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> Publisher:
        """Open the confirm-mode channel (done by ``async with``)."""
        if self._channel is None:
            self._channel = await self._conn.channel(publisher_confirms=True)
        return self

    async def close(self) -> None:
        """Wait for every publish in flight, then close the channel."""
        if self._closed:
            return
        self._closed = True
        await self._idle.wait()
        if self._closing_tasks:
            await asyncio.wait(set(self._closing_tasks))
        if self._channel is not None:
            await self._channel.close()

    async def publish(
        self,
        body: Buffer,
        *,
        exchange: str = "",
        routing_key: str = "",
        properties: Properties | None = None,
        mandatory: bool = False,
    ) -> str:
        """Publish one message; return its ``message_id`` once the broker
        confirmed it.

        Raises :class:`~aiorabbit.PublishNacked` after ``nack_retries``
        retries, :class:`~aiorabbit.MessageReturned` for an unroutable
        ``mandatory`` message, and the connection's error when it closes
        for good (or, on a plain connection, is lost)."""
        if self._closed:
            raise InvalidArgument("publish on a closed Publisher")
        if self._channel is None:
            await self.start()
        props = _with_message_id(properties, self._id_prefix, self._ids)
        message_id = props.message_id
        assert message_id is not None
        self._in_flight += 1
        self._idle.clear()
        try:
            async with self._room:
                self._unconfirmed += 1
                try:
                    await wait_for(self._publish(body, exchange, routing_key, props, mandatory), self.timeout)
                except TimeoutError as exc:
                    if isinstance(exc, AMQPError) or self.timeout is None:
                        raise  # a channel call's own timeout, not ours
                    raise PublishTimeout(message_id, self.timeout) from None
                finally:
                    self._unconfirmed -= 1
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._idle.set()
        return message_id

    async def publish_many(self, messages: Iterable[OutgoingMessage | Buffer]) -> list[str]:
        """Publish a batch (bare bodies go to the default exchange with an
        empty routing key); return the message ids once every message is
        confirmed.  If any failed, the first error is raised after all of
        them have settled."""
        batch = [m if isinstance(m, OutgoingMessage) else OutgoingMessage(m) for m in messages]
        ids: list[str] = [""] * len(batch)
        errors: list[tuple[int, Exception]] = []
        todo = iter(enumerate(batch))

        # ``window`` workers, not a task per message: a semaphore with many
        # waiters costs each acquire a walk over them (asyncio, Python 3.11).
        async def worker() -> None:
            for i, m in todo:
                try:
                    ids[i] = await self.publish(m.body, exchange=m.exchange, routing_key=m.routing_key,
                                                properties=m.properties, mandatory=m.mandatory)
                except Exception as exc:
                    errors.append((i, exc))

        await asyncio.gather(*(worker() for _ in range(min(self.window, len(batch)))))
        if errors:
            raise min(errors, key=lambda e: e[0])[1]
        return ids

    async def _publish(
        self, body: Buffer, exchange: str, routing_key: str, props: Properties, mandatory: bool
    ) -> None:
        nacks = 0
        nacked_on = None
        while True:
            channel = self._channel
            assert channel is not None
            uses = self._uses
            uses[channel] = uses.get(channel, 0) + 1
            try:
                if nacked_on is channel:
                    nacked_on = None  # renewed, or not (closing): publish on
                    await self._renew(channel)
                    continue
                await channel.basic_publish(
                    body, exchange=exchange, routing_key=routing_key, properties=props, mandatory=mandatory
                )
                return
            except PublishNacked:
                if nacks >= self.nack_retries:
                    raise
                nacks += 1
                nacked_on = channel
                self.nacks_retried += 1
                delay = self.nack_backoff.ceiling(nacks) * (0.5 + random.random() / 2)
                log.info("message %s nacked; retry %d of %d in %.2f s", props.message_id, nacks,
                         self.nack_retries, delay)
                await asyncio.sleep(delay)
            except (ConnectionClosed, ChannelClosed) as exc:
                conn = self._conn
                if not conn.recovers_from(exc):
                    raise
                # Unconfirmed when the connection went: publish again once
                # it is back.  The first copy may have arrived: same id.
                await conn.wait_usable(math.inf)  # bounded by ``timeout`` around the whole publish
                self.republished += 1
            finally:
                self._done_with(channel)

    async def _renew(self, nacked: Any) -> None:
        """Publish retries through a new channel, once per nacked channel.

        RabbitMQ 3.10 nacks every later publish on a channel that published
        to a quorum queue while the queue had no leader (a node died), for
        as long as the channel lives, where a new channel is confirmed as
        soon as the new leader is elected.  The nacked channel is closed
        once its publishes under way have finished."""
        async with self._renew_lock:
            if self._channel is not nacked or self._closed:
                return
            self._channel = await self._conn.channel(publisher_confirms=True)
            self.channels_renewed += 1
            log.info("publishing through a new channel after a nack")
            self._retired.add(nacked)

    def _done_with(self, channel: Any) -> None:
        left = self._uses[channel] - 1
        if left:
            self._uses[channel] = left
            return
        del self._uses[channel]
        if channel in self._retired:
            self._retired.discard(channel)
            task = asyncio.ensure_future(_close_quietly(channel))
            self._closing_tasks.add(task)
            task.add_done_callback(self._closing_tasks.discard)


async def _close_quietly(channel: Any) -> None:
    try:
        await channel.close()
    except Exception as exc:  # the connection went meanwhile: nothing to close
        log.debug("a replaced channel did not close cleanly: %s", exc)


def _with_message_id(properties: Properties | None, prefix: str, ids: Iterator[int]) -> Properties:
    if properties is None:
        return Properties(message_id=f"{prefix}{next(ids):012x}")
    if not isinstance(properties, Properties):
        raise InvalidArgument("properties must be an aiorabbit.Properties")
    if properties.message_id is not None:
        return properties
    return properties.replace(message_id=f"{prefix}{next(ids):012x}")
