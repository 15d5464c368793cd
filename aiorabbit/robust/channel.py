"""Robust channels: reopened, with QoS, confirm mode and consumers,
whenever their connection recovers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from .._compat import wait_for
from .._inputs import copy_arguments
from ..channel import Channel, DeclareOk
from ..codec import Buffer
from ..codec.properties import Properties
from ..connection import Connection
from ..exceptions import (
    ChannelClosed,
    ConnectionClosed,
    ConsumerCancelled,
    InvalidArgument,
    RecoveryTimeout,
    TransactionLost,
    closed_by_client,
)
from ..message import IncomingMessage
from ..phase import Phase
from ..topology import BindingRecord, ExchangeRecord, QueueRecord
from .common import ChannelAccess, ChannelRecovery, ConsumerRecovery, Hub, State
from .consumer import RobustConsumer

if TYPE_CHECKING:
    from .connection import RobustConnection

__all__ = ["DeclaredQueue", "RobustChannel"]

log = logging.getLogger("aiorabbit.recovery")

T = TypeVar("T")
#: ``on_end(consumer, error)``: a consumer ended for good.
ConsumerEnded = Callable[[Any, BaseException], None]


class DeclaredQueue(DeclareOk):
    """What :meth:`RobustChannel.queue_declare` returns: a
    :class:`~aiorabbit.DeclareOk` whose ``queue`` attribute is always the
    queue's current name (a server-named queue gets a new name from the
    broker on each recovery).  Unpacking or indexing gives the name at
    declare time."""

    _record: QueueRecord

    def __new__(cls, ok: DeclareOk, record: QueueRecord) -> DeclaredQueue:
        self = super().__new__(cls, *ok)
        self._record = record
        return self

    @property
    def queue(self) -> str:
        """The queue's current name."""
        return self._record.name


class RobustChannel:
    """A channel that is reopened, with its QoS, confirm mode and consumers,
    whenever its connection recovers (or after a channel error closed it).

    It has :class:`~aiorabbit.Channel`'s methods.  Declares, binds, unbinds
    and deletes are recorded in the connection's topology.  A call made
    while the connection is down waits for it (up to the connection's
    ``wait_timeout``, then :class:`RecoveryTimeout`); declares, binds and
    QoS interrupted by a loss are retried after recovery.  A publish that
    the loss interrupts raises: use :class:`aiorabbit.Publisher` for
    at-least-once delivery.
    """

    def __init__(
        self,
        rconn: RobustConnection,
        *,
        publisher_confirms: bool,
        on_return: Callable[[Any], Any] | None,
        hub: Hub,
    ) -> None:
        self._rconn = rconn
        self._hub = hub
        self._confirms = publisher_confirms
        self._on_return = on_return
        self._inner: Channel | None = None
        self._qos: dict[bool, tuple[int, int]] = {}  # global flag -> (count, size)
        self._consumers: list[ConsumerRecovery] = []
        self._closed_exc: BaseException | None = None
        self._reopen_lock = asyncio.Lock()
        # Done once closed for good: ends the calls waiting for recovery.
        self._closed_for_good: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._tx = False
        # The plain channel the current transaction runs on.
        self._tx_channel: Channel | None = None
        self._recovery = ChannelRecovery(self, self._reopen, self._recover_consumers, self._consumers,
                                         self._set_closed)
        self._access = ChannelAccess(hub, self._live, self._current, self._consumers)

    @property
    def connection(self) -> RobustConnection:
        """The robust connection this channel belongs to."""
        return self._rconn

    @property
    def channel(self) -> Channel | None:
        """The plain channel in use right now (replaced on recovery)."""
        return self._inner

    @property
    def is_open(self) -> bool:
        """True while usable now (not while the connection recovers)."""
        return self._closed_exc is None and self._inner is not None and self._inner.is_open

    @property
    def is_closed(self) -> bool:
        """True once closed by :meth:`close` or by the connection giving up."""
        return self._closed_exc is not None

    @property
    def publisher_confirms(self) -> bool:
        """Whether publishes wait for the broker's confirm."""
        return self._confirms

    @property
    def closed_reason(self) -> BaseException | None:
        """Why the channel closed for good (``None`` while it is usable)."""
        return self._closed_exc

    def check_open(self) -> None:
        """Raise what a call on this channel would raise, if it is closed for
        good (while the connection recovers, calls wait instead)."""
        if self._closed_exc is not None:
            raise ChannelClosed(0, "channel is closed", cause=self._closed_exc)

    @property
    def number(self) -> int | None:
        """The channel number in use now (it may change on recovery)."""
        return self._inner.number if self._inner is not None else None

    @property
    def state(self) -> Phase:
        """``open`` while usable now, ``opening`` while it is (re)opened (the
        connection recovers), ``closed`` once closed for good."""
        if self._closed_exc is not None:
            return Phase.CLOSED
        return Phase.OPEN if self.is_open else Phase.OPENING

    def __repr__(self) -> str:
        return f"<aiorabbit.RobustChannel {self._inner!r}>"

    async def __aenter__(self) -> RobustChannel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- recovery ----------------------------------------------------------

    async def _open(self, conn: Connection) -> None:
        """The first open; from then on the connection recovers the channel."""
        await self._reopen(conn)
        self._hub.channels.append(self._recovery)

    def _current(self) -> Channel | None:
        return self._inner

    async def _reopen(self, conn: Connection) -> None:
        inner = await conn.channel(publisher_confirms=self._confirms, on_return=self._on_return)
        for global_qos, (count, size) in self._qos.items():
            await inner.basic_qos(prefetch_count=count, prefetch_size=size, global_qos=global_qos)
        if self._tx:
            await inner.tx_select()
        self._inner = inner

    async def _recover_consumers(self, conn: Connection) -> None:
        timeout = self._rconn.recovery_timeout
        while True:
            inner = self._inner
            assert inner is not None
            for port in list(self._consumers):
                if not port.needs_resume(inner):
                    continue
                try:
                    await wait_for(port.resume(inner), timeout)
                except ChannelClosed as exc:
                    # Its queue is gone (and was not declared by us): report
                    # it, watch for the queue, and go on with the others on
                    # a fresh channel (the error closed this one).
                    log.warning("recovering consumer %r failed: %s", port.consumer, exc)
                    self._hub.emit("recovery_error", port.consumer, exc)
                    port.park()
                    await wait_for(self._reopen(conn), timeout)
                    break
            else:
                return

    async def _live(self) -> Channel:
        """The plain channel to use now, waiting while the connection
        recovers, reopening it if a channel error closed it."""
        rconn = self._rconn
        while True:
            if self._closed_exc is not None:
                raise ChannelClosed(0, "channel is closed", cause=self._closed_exc)
            inner = self._inner
            if inner is not None and inner.is_open and self._hub.state() is State.CONNECTED:
                return inner
            conn = await self._wait_connected()
            async with self._reopen_lock:
                if self._inner is inner and (inner is None or inner.is_closed) and self._closed_exc is None:
                    try:
                        await wait_for(self._reopen(conn), rconn.recovery_timeout)
                        await self._recover_consumers(conn)
                    except (ConnectionClosed, ChannelClosed) as exc:
                        if not self._hub.recovers_from(exc):
                            raise
                    except asyncio.TimeoutError:
                        raise RecoveryTimeout(
                            f"reopening the channel took more than {rconn.recovery_timeout} s"
                        ) from None

    async def _run(self, call: Callable[[Channel], Awaitable[T]], *, retry: bool) -> T:
        while True:
            inner = await self._live()
            try:
                return await call(inner)
            except (ConnectionClosed, ChannelClosed) as exc:
                if not retry or not self._hub.recovers_from(exc):
                    raise

    async def _wait_connected(self) -> Connection:
        """The live connection (waiting up to ``wait_timeout`` for
        recovery), unless the channel is closed first."""
        waiting = asyncio.ensure_future(self._hub.wait_connected(self._rconn.wait_timeout))
        either: set[asyncio.Future[Any]] = {waiting, self._closed_for_good}
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not waiting.done():
                waiting.cancel()
                await asyncio.wait({waiting})
            if waiting.done() and not waiting.cancelled():
                # Retrieved even when this call is cancelled: an unretrieved
                # error is logged from the garbage collector, at any moment.
                waiting.exception()
        if waiting.done() and not waiting.cancelled():
            return waiting.result()  # the connection, or why there is none
        reason = self._closed_exc
        if isinstance(reason, ConnectionClosed):  # the connection closed for good
            raise ConnectionClosed(0, f"connection closed: {reason}")
        raise ChannelClosed(0, "channel is closed", cause=reason)

    def _set_closed(self, exc: BaseException) -> None:
        if self._closed_exc is None:
            self._closed_exc = exc
            self._closed_for_good.set_result(None)
        for port in list(self._consumers):
            port.abort(exc)

    # -- channel methods ---------------------------------------------------

    async def close(self, *, timeout: float | None = None) -> None:
        """Close the channel for good (idempotent); its consumers end.  It
        returns within ``timeout`` (default: ``call_timeout``) whatever
        the broker does."""
        if self._closed_exc is not None:
            return
        self._set_closed(closed_by_client(ChannelClosed(200, "closed by client")))
        for port in list(self._consumers):
            await port.consumer.cancel()
        if self._recovery in self._hub.channels:
            self._hub.channels.remove(self._recovery)
        if self._inner is not None:
            await self._inner.close(timeout=timeout)

    async def exchange_declare(
        self,
        exchange: str,
        exchange_type: str = "direct",
        *,
        passive: bool = False,
        durable: bool = False,
        auto_delete: bool = False,
        internal: bool = False,
        arguments: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> None:
        """Declare an exchange and record it for recovery (not when passive)."""
        await self._run(lambda ch: ch.exchange_declare(
            exchange, exchange_type, passive=passive, durable=durable, auto_delete=auto_delete,
            internal=internal, arguments=arguments, timeout=timeout), retry=True)
        if not passive and exchange and not exchange.startswith("amq."):
            self._rconn.topology.add_exchange(ExchangeRecord(
                exchange, exchange_type, durable, auto_delete, internal, copy_arguments(arguments)))

    async def exchange_delete(
        self,
        exchange: str,
        *,
        if_unused: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Delete an exchange and forget it."""
        await self._run(
            lambda ch: ch.exchange_delete(exchange, if_unused=if_unused, timeout=timeout),
            retry=False,
        )
        self._rconn.topology.remove_exchange(exchange)

    async def exchange_bind(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        """Bind exchange ``destination`` to ``source``; recorded for recovery."""
        await self._run(
            lambda ch: ch.exchange_bind(destination, source, routing_key, arguments, timeout=timeout),
            retry=True,
        )
        self._rconn.topology.add_binding(
            BindingRecord("exchange", destination, source, routing_key, copy_arguments(arguments)))

    async def exchange_unbind(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        """Remove an exchange-to-exchange binding and forget it."""
        await self._run(
            lambda ch: ch.exchange_unbind(destination, source, routing_key, arguments, timeout=timeout),
            retry=True)
        self._rconn.topology.remove_binding(
            BindingRecord("exchange", destination, source, routing_key, copy_arguments(arguments)))

    async def queue_declare(
        self,
        queue: str = "",
        *,
        passive: bool = False,
        durable: bool = False,
        exclusive: bool = False,
        auto_delete: bool = False,
        arguments: Mapping[str, Any] | None = None,
        timeout: float | None = None,
    ) -> DeclaredQueue:
        """Declare a queue and record it for recovery (not when passive).

        The result's ``queue`` follows a server-named queue's new name
        after each recovery."""
        ok = await self._run(lambda ch: ch.queue_declare(
            queue, passive=passive, durable=durable, exclusive=exclusive, auto_delete=auto_delete,
            arguments=arguments, timeout=timeout), retry=True)
        topology = self._rconn.topology
        record = topology.queues.get(ok.queue)
        if not passive or record is None:
            record = QueueRecord(ok.queue, queue == "", durable, exclusive, auto_delete,
                                 copy_arguments(arguments))
            if not passive:
                topology.add_queue(record)
        return DeclaredQueue(ok, record)

    async def queue_bind(
        self,
        queue: str,
        exchange: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        """Bind a queue to an exchange; recorded for recovery (every routing
        key and argument set is its own binding)."""
        await self._run(
            lambda ch: ch.queue_bind(queue, exchange, routing_key, arguments, timeout=timeout),
            retry=True,
        )
        self._rconn.topology.add_binding(
            BindingRecord("queue", queue, exchange, routing_key, copy_arguments(arguments)))

    async def queue_unbind(
        self,
        queue: str,
        exchange: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        """Remove a queue binding and forget it."""
        await self._run(
            lambda ch: ch.queue_unbind(queue, exchange, routing_key, arguments, timeout=timeout),
            retry=True,
        )
        self._rconn.topology.remove_binding(
            BindingRecord("queue", queue, exchange, routing_key, copy_arguments(arguments)))

    async def queue_purge(
        self,
        queue: str,
        *,
        timeout: float | None = None,
    ) -> int:
        """Remove every ready message from ``queue``; return how many."""
        return await self._run(lambda ch: ch.queue_purge(queue, timeout=timeout), retry=False)

    async def queue_delete(
        self,
        queue: str,
        *,
        if_unused: bool = False,
        if_empty: bool = False,
        timeout: float | None = None,
    ) -> int:
        """Delete a queue and forget it (and its bindings)."""
        count = await self._run(
            lambda ch: ch.queue_delete(queue, if_unused=if_unused, if_empty=if_empty, timeout=timeout),
            retry=False)
        rconn = self._rconn
        rconn.topology.remove_queue(queue)
        # Its consumers end (the broker cancelled them) instead of waiting
        # for a queue the application meant to remove.
        for channel in self._hub.channels:
            for port in list(channel.consumers):
                if port.consumer.queue == queue:
                    channel.consumers.remove(port)
                    port.abort(ConsumerCancelled(port.consumer.consumer_tag or ""))
        return count

    async def basic_qos(
        self,
        prefetch_count: int = 0,
        prefetch_size: int = 0,
        global_qos: bool = False,
        *,
        timeout: float | None = None,
    ) -> None:
        """Set the prefetch limits; reapplied on every recovery."""
        await self._run(
            lambda ch: ch.basic_qos(prefetch_count, prefetch_size, global_qos, timeout=timeout),
            retry=True,
        )
        self._qos[global_qos] = (prefetch_count, prefetch_size)

    async def confirm_select(self, *, timeout: float | None = None) -> None:
        """Enable publisher confirms, now and on every channel recovery
        opens."""
        self._confirms = True
        await self._run(lambda ch: ch.confirm_select(timeout=timeout), retry=True)

    async def tx_select(self, *, timeout: float | None = None) -> None:
        """Put the channel in transaction mode, now and after recovery."""
        self._tx = True
        self._tx_channel = await self._run(lambda ch: _selected(ch, timeout), retry=True)

    async def tx_commit(self, *, timeout: float | None = None) -> None:
        """Commit the current transaction.

        Raises :class:`~aiorabbit.TransactionLost` if the channel was lost
        since the transaction began: the broker discarded its publishes and
        acks (publish them again; a new transaction has begun).  A commit
        cut off by a loss raises the connection's error: whether the broker
        committed is then unknown."""
        inner = await self._tx_live()
        await inner.tx_commit(timeout=timeout)

    async def tx_rollback(self, *, timeout: float | None = None) -> None:
        """Roll back the current transaction.  After a loss there is nothing
        to roll back (the broker discarded it), so this only starts anew."""
        inner = await self._live()
        if inner is not self._tx_channel:
            self._tx_channel = inner
            return
        await inner.tx_rollback(timeout=timeout)

    async def _tx_live(self) -> Channel:
        if not self._tx:
            raise InvalidArgument("tx_select() first: the channel is not in transaction mode")
        inner = await self._live()
        if inner is not self._tx_channel:
            self._tx_channel = inner
            raise TransactionLost(
                "the channel was lost during the transaction: the broker discarded its publishes "
                "and acks; a new transaction has begun"
            )
        return inner

    async def basic_recover(
        self,
        requeue: bool = True,
        *,
        timeout: float | None = None,
    ) -> None:
        """Redeliver every unacknowledged message on this channel."""
        await self._run(lambda ch: ch.basic_recover(requeue, timeout=timeout), retry=False)

    async def flow(
        self,
        active: bool,
        *,
        timeout: float | None = None,
    ) -> bool:
        """Ask the broker to pause (``False``) or resume deliveries."""
        return await self._run(lambda ch: ch.flow(active, timeout=timeout), retry=False)

    async def basic_get(
        self,
        queue: str,
        *,
        no_ack: bool = False,
        timeout: float | None = None,
    ) -> IncomingMessage | None:
        """Fetch one message from ``queue``, or ``None`` if it is empty."""
        return await self._run(lambda ch: ch.basic_get(queue, no_ack=no_ack, timeout=timeout), retry=False)

    async def basic_publish(
        self,
        body: Buffer,
        *,
        exchange: str = "",
        routing_key: str = "",
        properties: Properties | None = None,
        mandatory: bool = False,
    ) -> None:
        """Publish a message (see :meth:`Channel.basic_publish`).  While the
        connection is down this waits for it, up to ``wait_timeout``."""
        inner = self._inner
        if inner is None or not inner.is_open or self._hub.state() is not State.CONNECTED:
            inner = await self._live()
        await inner.basic_publish(
            body, exchange=exchange, routing_key=routing_key, properties=properties, mandatory=mandatory
        )

    def consume(
        self,
        queue: str,
        *,
        no_ack: bool = False,
        exclusive: bool = False,
        arguments: Mapping[str, Any] | None = None,
        consumer_tag: str | None = None,
        callback: Callable[[IncomingMessage], Any] | None = None,
        on_end: ConsumerEnded | None = None,
    ) -> RobustConsumer:
        """A consumer that survives recovery: ``async with ch.consume(q) as
        messages: async for msg in messages:`` keeps yielding across
        reconnects (messages unacked at the loss come again, redelivered).

        ``callback`` as for :meth:`Channel.consume`.  ``on_end(consumer,
        error)`` is called at once whenever the broker stops delivering to
        the consumer: on a loss (it consumes again after recovery: replies
        and deliveries in flight are gone) and when it ends for good (its
        channel or connection closed for good, by the program too);
        ``consumer.ended`` tells which.  Not when the consumer is cancelled."""
        return RobustConsumer(self, queue, no_ack=no_ack, exclusive=exclusive, arguments=arguments,
                              consumer_tag=consumer_tag, callback=callback, on_end=on_end,
                              access=self._access)

    async def basic_consume(
        self,
        queue: str,
        callback: Callable[[IncomingMessage], Any],
        *,
        no_ack: bool = False,
        exclusive: bool = False,
        arguments: Mapping[str, Any] | None = None,
        consumer_tag: str | None = None,
    ) -> str:
        """Start a callback consumer that survives recovery; return its tag."""
        consumer = self.consume(queue, no_ack=no_ack, exclusive=exclusive, arguments=arguments,
                                consumer_tag=consumer_tag, callback=callback)
        await consumer.start()
        assert consumer.consumer_tag is not None
        return consumer.consumer_tag

    async def basic_cancel(self, consumer_tag: str) -> None:
        """Cancel the consumer with ``consumer_tag`` (it is not recovered)."""
        for port in self._consumers:
            if port.consumer.consumer_tag == consumer_tag:
                await port.consumer.cancel()
                return
        raise InvalidArgument(f"no consumer {consumer_tag!r} on this channel")


async def _selected(channel: Channel, timeout: float | None) -> Channel:
    await channel.tx_select(timeout=timeout)
    return channel

