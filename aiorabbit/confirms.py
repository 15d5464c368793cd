"""Publisher confirms: which publishes wait for the broker's ack.

In confirm mode the broker numbers a channel's publishes from 1 and acks or
nacks each number, alone or with every lower one (``multiple``).  A
mandatory message it cannot route comes back (``basic.return``) before its
ack: the publish then fails with :class:`MessageReturned`.
"""

from __future__ import annotations

import asyncio
import collections

from .codec import methods as m
from .exceptions import MessageReturned, PublishNacked
from .message import ReturnedMessage

__all__ = ["Confirms"]


class Confirms:
    """The unconfirmed publishes of one channel, by delivery tag."""

    __slots__ = ("_loop", "_mandatory", "_order", "_seq", "pending")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._seq = 0
        #: Futures of the publishes not yet confirmed, by tag.
        self.pending: dict[int, asyncio.Future[None]] = {}
        self._order: collections.deque[int] = collections.deque()
        self._mandatory: collections.deque[tuple[int, str, str]] = collections.deque()

    def track(self, mandatory: bool, exchange: str, routing_key: str) -> asyncio.Future[None]:
        """The future of the publish about to be sent (the next tag)."""
        self._seq = tag = self._seq + 1
        fut: asyncio.Future[None] = self._loop.create_future()
        self.pending[tag] = fut
        self._order.append(tag)
        if mandatory:
            self._mandatory.append((tag, exchange, routing_key))
        return fut

    def on_ack(self, method: m.BasicAck) -> None:
        """``basic.ack``: the broker took the message(s)."""
        tag = method.delivery_tag
        pending = self.pending
        if method.multiple:
            order = self._order
            while order and order[0] <= tag:
                fut = pending.pop(order.popleft(), None)
                if fut is not None and not fut.done():
                    fut.set_result(None)
        else:
            fut = pending.pop(tag, None)
            if fut is not None and not fut.done():
                fut.set_result(None)
        if not pending:
            self._order.clear()

    def on_nack(self, method: m.BasicNack) -> None:
        """``basic.nack``: the broker could not take the message(s)."""
        tag = method.delivery_tag
        if method.multiple:
            order = self._order
            while order and order[0] <= tag:
                self._nack_one(order.popleft())
        else:
            self._nack_one(tag)

    def _nack_one(self, tag: int) -> None:
        fut = self.pending.pop(tag, None)
        if fut is not None and not fut.done():
            fut.set_exception(PublishNacked(tag))

    def returned(self, returned: ReturnedMessage) -> bool:
        """Fail the publish that ``returned`` answers; False if none waits.

        The broker returns a message before it acks it, and returns arrive
        in publish order: the oldest pending mandatory publish to the same
        exchange and routing key is the one that came back."""
        pending = self._mandatory
        while pending and pending[0][0] not in self.pending:
            pending.popleft()
        for entry in pending:
            tag, exchange, routing_key = entry
            if exchange == returned.exchange and routing_key == returned.routing_key:
                fut = self.pending.get(tag)
                if fut is not None and not fut.done():
                    pending.remove(entry)
                    fut.set_exception(MessageReturned(returned))
                    return True
        return False

    def fail_all(self, exc: BaseException) -> None:
        """Fail every unconfirmed publish (the channel closed)."""
        pending, self.pending = self.pending, {}
        self._order.clear()
        self._mandatory.clear()
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(exc)
