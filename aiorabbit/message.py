"""Messages handed to consumers and returned by the broker."""

from __future__ import annotations

import enum
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from .codec.properties import NO_PROPERTIES, Properties

if TYPE_CHECKING:
    from .channel import Channel

__all__ = ["AssembledMessage", "IncomingMessage", "ReturnedMessage", "Settle", "Settler", "give_back"]


class Settle(enum.IntEnum):
    """How a delivery is settled."""

    ACK = 0
    NACK = 1
    REJECT = 2


_ACK, _NACK, _REJECT = Settle.ACK, Settle.NACK, Settle.REJECT

#: How a message settles: ``settle(message, kind, multiple, requeue)``,
#: given by its channel at creation.
Settler = Callable[["IncomingMessage", Settle, bool, bool], None]


class _Done:
    """An already-finished awaitable: settling never waits, but reads as
    ``await msg.ack()`` in async code (and works without the ``await``)."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return iter(())  # type: ignore[return-value]


DONE = _Done()


class _Content:
    """Shared by delivered and returned messages: body plus lazy properties."""

    __slots__ = ("_properties", "_raw_properties", "body")

    body: bytes
    _raw_properties: bytes
    _properties: Properties | None

    @property
    def properties(self) -> Properties:
        """The message properties (decoded on first access)."""
        props = self._properties
        if props is None:
            raw = self._raw_properties
            props = Properties() if raw == NO_PROPERTIES else Properties.decode(raw)
            self._properties = props
        return props

    @property
    def headers(self) -> dict[str, Any]:
        """The ``headers`` property, or an empty dict."""
        return self.properties.headers or {}


def _cannot_settle(message: IncomingMessage, kind: Settle, multiple: bool, requeue: bool) -> None:
    raise RuntimeError(f"{message!r} was built without a settle function: it cannot be {kind.name.lower()}ed")


class IncomingMessage(_Content):
    """A message delivered by ``basic.deliver`` or ``basic.get``.

    Settle it exactly once with :meth:`ack`, :meth:`nack` or :meth:`reject`
    (unless it was consumed with ``no_ack=True``).

    ``routing_key`` (like every short string: ``exchange``,
    ``consumer_tag``, header keys, string properties) is decoded leniently:
    bytes that are not UTF-8, such as a routing key another client
    published with, become lone surrogates U+DC80-U+DCFF instead of failing
    the delivery.  ``msg.routing_key.encode("utf-8", "surrogateescape")``
    gives the raw bytes back, and handing the string back to aiorabbit
    (republishing to ``msg.exchange`` / ``msg.routing_key``) sends those same
    bytes.
    """

    __slots__ = (
        "_channel",
        "_settle",
        "consumer_tag",
        "delivery_tag",
        "exchange",
        "message_count",
        "redelivered",
        "routing_key",
        "settled",
    )

    _channel: Channel
    _settle: Settler
    delivery_tag: int
    redelivered: bool
    exchange: str
    routing_key: str
    #: The consumer's tag (``None`` for ``basic.get``).
    consumer_tag: str | None
    #: Messages left in the queue (``basic.get`` only).
    message_count: int | None
    #: True once acked, nacked or rejected (always True with ``no_ack``).
    settled: bool

    def __init__(
        self,
        channel: Channel,
        body: bytes,
        raw_properties: bytes,
        delivery_tag: int,
        redelivered: bool,
        exchange: str,
        routing_key: str,
        consumer_tag: str | None = None,
        message_count: int | None = None,
        settled: bool = False,
        settle: Settler | None = None,
    ) -> None:
        self._channel = channel
        # The channel hands its settle function in; a message built by hand
        # (a test double) has none and says so when settled.
        self._settle = settle if settle is not None else _cannot_settle
        self.body = body
        self._raw_properties = raw_properties
        self._properties = None
        self.delivery_tag = delivery_tag
        self.redelivered = redelivered
        self.exchange = exchange
        self.routing_key = routing_key
        self.consumer_tag = consumer_tag
        self.message_count = message_count
        self.settled = settled

    @property
    def channel(self) -> Channel:
        """The channel the message arrived on."""
        return self._channel

    @property
    def body_view(self) -> bytes | memoryview:
        """The body without a copy, for ``len()``, slicing, writing to a
        file or a socket, or ``bytes()``: ``body`` itself, or, for a body
        that arrived in several frames (larger than the connection's
        ``frame_max``, 128 KiB by default), a read-only view of the buffer
        it was read into, which ``body`` copies on first use.  At several
        MB a message that copy costs about as much as receiving it."""
        return self.body

    @property
    def body_size(self) -> int:
        """The body's length in bytes (without copying a large body)."""
        return len(self.body)

    @property
    def delivery_count(self) -> int:
        """How many times a quorum queue delivered this message before and
        got it back (its ``x-delivery-count`` header): 0 on a first
        delivery, and from queues that do not count."""
        value = self.headers.get("x-delivery-count") if self._raw_properties != NO_PROPERTIES else None
        return int(value) if isinstance(value, int) and not isinstance(value, bool) else 0

    @property
    def stream_offset(self) -> int | None:
        """The message's offset in a stream (its ``x-stream-offset``
        header), ``None`` from other queues."""
        value = self.headers.get("x-stream-offset") if self._raw_properties != NO_PROPERTIES else None
        return int(value) if isinstance(value, int) and not isinstance(value, bool) else None

    @property
    def settler(self) -> Settler:
        """The function that acks, nacks and rejects this message."""
        return self._settle

    def swap_settler(self, settle: Settler) -> Settler:
        """Make ``settle`` the function that acks, nacks and rejects this
        message; return the one it replaces (``aiorabbit.blocking`` settles
        from other threads this way)."""
        previous, self._settle = self._settle, settle
        return previous

    def ack(self, *, multiple: bool = False) -> _Done:
        """Acknowledge the message (``multiple``: and every earlier one).

        Raises :class:`~aiorabbit.MessageAlreadySettled` if it was settled
        already and :class:`~aiorabbit.ChannelClosed` if its channel closed.
        """
        self._settle(self, _ACK, multiple, False)
        return DONE

    def nack(self, *, requeue: bool = True, multiple: bool = False) -> _Done:
        """Negatively acknowledge the message (RabbitMQ's ``basic.nack``)."""
        self._settle(self, _NACK, multiple, requeue)
        return DONE

    def reject(self, *, requeue: bool = True) -> _Done:
        """Reject the message; ``requeue=False`` dead-letters or drops it."""
        self._settle(self, _REJECT, False, requeue)
        return DONE

    def __repr__(self) -> str:
        return (
            f"<IncomingMessage tag={self.delivery_tag} exchange={self.exchange!r} "
            f"routing_key={self.routing_key!r} body={self.body_size} bytes>"
        )


class AssembledMessage(IncomingMessage):
    """An :class:`IncomingMessage` whose body arrived in several frames and
    stays in the buffer it was read into: :attr:`body_view` gives it
    without a copy, ``body`` copies it into ``bytes`` on first use.  The
    buffer is the message's own: the connection reuses it only once nothing
    refers to it any more (the message, or a view of its body)."""

    __slots__ = ("_copy", "_view")

    _view: memoryview
    _copy: bytes | None

    @property
    def body(self) -> bytes:
        """The body as ``bytes`` (copied from its buffer the first time)."""
        copy = self._copy
        if copy is None:
            copy = self._copy = self._view.tobytes()
        return copy

    @body.setter
    def body(self, value: bytes | memoryview) -> None:
        if type(value) is memoryview:
            self._view, self._copy = value, None
        else:
            self._view, self._copy = memoryview(value), bytes(value)

    @property
    def body_view(self) -> memoryview:
        """The body, a read-only view of its buffer (no copy)."""
        return self._view

    @property
    def body_size(self) -> int:
        """The body's length in bytes."""
        return self._view.nbytes


class ReturnedMessage(_Content):
    """A mandatory message the broker could not route (``basic.return``)."""

    __slots__ = ("exchange", "reply_code", "reply_text", "routing_key")

    def __init__(
        self,
        body: bytes,
        raw_properties: bytes,
        reply_code: int,
        reply_text: str,
        exchange: str,
        routing_key: str,
    ) -> None:
        self.body = body
        self._raw_properties = raw_properties
        self._properties = None
        self.reply_code = reply_code
        self.reply_text = reply_text
        self.exchange = exchange
        self.routing_key = routing_key

    def __repr__(self) -> str:
        return (
            f"<ReturnedMessage {self.reply_code} {self.reply_text} "
            f"exchange={self.exchange!r} routing_key={self.routing_key!r}>"
        )


def give_back(msg: IncomingMessage) -> None:
    """Hand back a delivery nobody took: requeue it, or from a stream, which
    keeps every message and refuses rejects (it closes the connection with
    540), ack it, which only returns the consumer's credit."""
    if msg.stream_offset is not None:
        msg.ack()
    else:
        msg.reject(requeue=True)
