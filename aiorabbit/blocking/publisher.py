"""The :class:`~aiorabbit.Publisher` and :class:`~aiorabbit.RpcClient` for
blocking code."""

from __future__ import annotations

import concurrent.futures
import dataclasses
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING

from .._inputs import owned_body
from ..backoff import Backoff
from ..codec import Buffer
from ..codec.properties import Properties
from ..message import IncomingMessage
from ..publisher import OutgoingMessage
from ..publisher import Publisher as AsyncPublisher
from ..rpc import CLIENT_TIMEOUT, CallTimeout
from ..rpc import RpcClient as AsyncRpcClient
from ._waits import SIGNAL_POLL

if TYPE_CHECKING:
    from .connection import BlockingConnection

__all__ = ["Publisher", "RpcClient"]


class Publisher:
    """At-least-once publishing from blocking code: the async
    :class:`~aiorabbit.Publisher` (same guarantees: a ``message_id`` on
    every message, confirms, nack retries, republishing after recovery on a
    robust connection) driven from any number of threads.

    :meth:`publish` returns once the broker confirmed the message.  To keep
    many in flight from one thread, :meth:`submit` returns a
    ``concurrent.futures.Future`` at once (it waits only while ``window``
    messages are unconfirmed), and :meth:`publish_many` publishes a batch.
    """

    def __init__(
        self,
        conn: BlockingConnection,
        *,
        window: int = 1000,
        nack_retries: int = 5,
        nack_backoff: Backoff | None = None,
        timeout: float | None = None,
    ) -> None:
        self._io = conn._io  # seam: the connection's loop thread
        self._publisher = AsyncPublisher(conn.connection, window=window, nack_retries=nack_retries,
                                         nack_backoff=nack_backoff, timeout=timeout)
        # The window, held on the callers' side: a caller waits here, not
        # the loop.
        self._room = _Window(window)
        self._release = self._room.release

    @property
    def publisher(self) -> AsyncPublisher:
        """The async publisher underneath (use it on the I/O loop only)."""
        return self._publisher

    @property
    def in_flight(self) -> int:
        """Publishes started and not yet confirmed or failed."""
        return self._publisher.in_flight

    @property
    def republished(self) -> int:
        """Messages published again after a connection loss."""
        return self._publisher.republished

    @property
    def nacks_retried(self) -> int:
        """Nacked publishes that were retried."""
        return self._publisher.nacks_retried

    def start(self) -> Publisher:
        """Open the confirm-mode channel (done by ``with`` or the first publish)."""
        self._io.run(self._publisher.start)
        return self

    def close(self) -> None:
        """Wait for every publish in flight, then close the channel."""
        if not self._io.loop.is_closed():
            self._io.run(self._publisher.close)

    def __enter__(self) -> Publisher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit(
        self,
        body: Buffer,
        *,
        exchange: str = "",
        routing_key: str = "",
        properties: Properties | None = None,
        mandatory: bool = False,
    ) -> concurrent.futures.Future[str]:
        """Start publishing one message; the future gives its
        ``message_id`` once confirmed, or the error :meth:`publish` raises.
        Waits first while ``window`` publishes are unconfirmed.  A mutable
        body is copied here."""
        if type(body) is not bytes:
            body = owned_body(body)
        self._room.acquire()
        try:
            future = self._io.submit(self._publisher.publish, body, exchange=exchange,
                                     routing_key=routing_key, properties=properties, mandatory=mandatory)
        except BaseException:
            self._room.release()
            raise
        future.add_done_callback(self._release)
        return future

    def publish(
        self,
        body: Buffer,
        *,
        exchange: str = "",
        routing_key: str = "",
        properties: Properties | None = None,
        mandatory: bool = False,
    ) -> str:
        """Publish one message; return its ``message_id`` once the broker
        confirmed it.  Raises what :meth:`aiorabbit.Publisher.publish`
        raises."""
        return self._io.wait(self.submit(body, exchange=exchange, routing_key=routing_key,
                                         properties=properties, mandatory=mandatory))

    def publish_many(self, messages: Iterable[OutgoingMessage | Buffer]) -> list[str]:
        """Publish a batch, up to ``window`` at a time in flight; return the
        message ids once every one is confirmed.  If any failed, the first
        error is raised after all of them have settled."""
        batch = [_owned(m) for m in messages]  # copied now: the caller may reuse its buffers
        return self._io.run(self._publisher.publish_many, batch)


def _owned(m: OutgoingMessage | Buffer) -> OutgoingMessage:
    if not isinstance(m, OutgoingMessage):
        return OutgoingMessage(m if type(m) is bytes else owned_body(m))
    if type(m.body) is not bytes:
        return dataclasses.replace(m, body=owned_body(m.body))
    return m


class _Window:
    """At most ``size`` publishes in flight, counted on the callers' side.

    A caller that found it full is woken only once a quarter of it is free
    again: waking it for every confirm would hand the GIL back and forth
    once per message."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._low = size - max(1, size // 4)
        self._used = 0
        self._waiting = False
        self._cond = threading.Condition(threading.Lock())

    def acquire(self) -> None:
        with self._cond:
            while self._used >= self._size:
                self._waiting = True
                self._cond.wait(SIGNAL_POLL)  # a Ctrl-C gets its chance (see _waits)
            self._used += 1

    def release(self, _future: object = None) -> None:
        with self._cond:
            self._used -= 1
            if self._waiting and self._used <= self._low:
                self._waiting = False
                self._cond.notify_all()


class RpcClient:
    """RPC calls from blocking code: the async :class:`~aiorabbit.RpcClient`
    (direct reply-to, many calls at a time on one channel) driven from any
    number of threads at once."""

    def __init__(self, conn: BlockingConnection, *, timeout: float | None = 30.0) -> None:
        self._io = conn._io  # seam: the connection's loop thread
        self._rpc = AsyncRpcClient(conn.connection, timeout=timeout)

    @property
    def client(self) -> AsyncRpcClient:
        """The async client underneath (use it on the I/O loop only)."""
        return self._rpc

    @property
    def pending(self) -> int:
        """Calls waiting for their reply."""
        return self._rpc.pending

    def start(self) -> RpcClient:
        """Open the channel and start consuming replies (done by ``with`` or
        the first call)."""
        self._io.run(self._rpc.start)
        return self

    def close(self) -> None:
        """Close the client: pending calls fail with
        :class:`~aiorabbit.ChannelClosed`."""
        if not self._io.loop.is_closed():
            self._io.run(self._rpc.close)

    def __enter__(self) -> RpcClient:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(
        self,
        body: Buffer,
        *,
        routing_key: str,
        exchange: str = "",
        properties: Properties | None = None,
        timeout: CallTimeout = CLIENT_TIMEOUT,
    ) -> IncomingMessage:
        """Send a request and return the reply (see
        :meth:`aiorabbit.RpcClient.call`: the same arguments, the same
        errors)."""
        return self._io.run(self._rpc.call, body, routing_key=routing_key, exchange=exchange,
                            properties=properties, timeout=timeout)

    def submit(
        self,
        body: Buffer,
        *,
        routing_key: str,
        exchange: str = "",
        properties: Properties | None = None,
        timeout: CallTimeout = CLIENT_TIMEOUT,
    ) -> concurrent.futures.Future[IncomingMessage]:
        """Start a call; the future gives the reply."""
        return self._io.submit(self._rpc.call, body, routing_key=routing_key, exchange=exchange,
                               properties=properties, timeout=timeout)
