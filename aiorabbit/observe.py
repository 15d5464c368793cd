"""Observers: one typed interface that sees what connections do.

Tracing, metrics and logs all stand on it (``aiorabbit.otel`` is one
observer).  Install one per connection with ``connect(url,
observer=obs)`` (``connect_robust`` too), or for every connection opened
afterwards with :func:`install`.  With none installed, the hot paths pay
one ``is None`` test per publish, delivery and settle.

Every hook is a no-op on :class:`Observer`: subclass it and override what
you need.  Hooks run on the event loop, inside the client's own code
paths: keep them short and never block.  A hook that raises is logged
and otherwise ignored: an observer cannot break a connection.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .exceptions import InvalidArgument

if TYPE_CHECKING:
    from .channel import Channel
    from .codec.properties import Properties
    from .connection import Connection
    from .consumer import Consumer
    from .message import IncomingMessage, Settle
    from .parameters import ConnectionParameters
    from .robust.connection import RobustConnection

__all__ = [
    "MultiObserver",
    "Observer",
    "PublishEvent",
    "PublishOutcome",
    "guarded",
    "install",
    "installed",
    "processing",
    "uninstall",
]

log = logging.getLogger("aiorabbit.observe")


class PublishOutcome(enum.Enum):
    """How a publish ended."""

    #: Written to the socket (the channel is not in confirm mode).
    SENT = "sent"
    #: The broker confirmed it (``basic.ack``).
    CONFIRMED = "confirmed"
    #: The broker refused it (``basic.nack``).
    NACKED = "nacked"
    #: A mandatory message the broker could not route (``basic.return``).
    RETURNED = "returned"
    #: It failed before an outcome: bad input, the channel or connection
    #: closed, the caller cancelled.
    FAILED = "failed"


class PublishEvent:
    """A publish about to be written.

    An observer may replace :attr:`properties` in ``publish_started`` (to
    add trace headers, say: build a new :class:`~aiorabbit.Properties`, for
    example with ``replace(headers=...)``, and never change the caller's):
    what it leaves there is what is sent."""

    __slots__ = ("body_size", "confirm", "exchange", "mandatory", "properties", "routing_key", "started")

    def __init__(
        self,
        exchange: str,
        routing_key: str,
        properties: Properties | None,
        body_size: int,
        mandatory: bool,
        confirm: bool,
    ) -> None:
        self.exchange = exchange
        self.routing_key = routing_key
        self.properties = properties
        self.body_size = body_size
        self.mandatory = mandatory
        #: True when the publish waits for the broker's confirm.
        self.confirm = confirm
        #: ``time.perf_counter()`` when the publish began.
        self.started = time.perf_counter()

    def __repr__(self) -> str:
        return (f"<PublishEvent exchange={self.exchange!r} routing_key={self.routing_key!r} "
                f"{self.body_size} B>")


class Observer:
    """Sees what connections, channels, publishes and consumers do.

    Tokens: ``publish_started`` and ``delivery_started`` may return any
    object; it is handed back to the matching ``..._ended`` hook (``None``
    if the hook returned nothing).  For a consumer iterated with ``async
    for``, ``delivery_started`` runs in the iterating task when a message
    is handed out and ``delivery_ended`` in the same task when the next one
    is asked for (or the consumer is left): a hook may set context
    variables there (the current trace span) and reset them at the end.
    """

    # -- connections -------------------------------------------------------

    def connecting(self, params: ConnectionParameters) -> None:
        """A connection attempt to ``params.host``:``params.port`` begins."""

    def connection_failed(self, params: ConnectionParameters, error: BaseException) -> None:
        """A connection attempt failed with ``error``."""

    def connection_open(self, connection: Connection) -> None:
        """The handshake finished (``connection.peer``, ``server_properties``)."""

    def connection_blocked(self, connection: Connection, reason: str) -> None:
        """The broker blocked publishing (``connection.blocked``)."""

    def connection_unblocked(self, connection: Connection, blocked_for: float) -> None:
        """The broker unblocked publishing after ``blocked_for`` seconds."""

    def connection_closed(self, connection: Connection, error: BaseException) -> None:
        """The connection closed: by the program when ``error.by_client``."""

    # -- recovery (connect_robust) -----------------------------------------

    def recovery_started(self, connection: RobustConnection, error: BaseException) -> None:
        """The connection was lost with ``error``; recovery begins."""

    def recovery_attempt(
        self, connection: RobustConnection, attempt: int, error: BaseException, delay: float
    ) -> None:
        """Attempt number ``attempt`` failed with ``error``; the next one
        comes in ``delay`` seconds."""

    def recovered(self, connection: RobustConnection, duration: float) -> None:
        """Connected again, topology and consumers restored, ``duration``
        seconds after the loss."""

    def recovery_failed(self, connection: RobustConnection, error: BaseException, duration: float) -> None:
        """Recovery gave up: the connection is closed for good."""

    # -- channels ----------------------------------------------------------

    def channel_open(self, channel: Channel) -> None:
        """A channel opened."""

    def channel_closed(self, channel: Channel, error: BaseException) -> None:
        """A channel closed: by the program when ``error.by_client``."""

    # -- publishing --------------------------------------------------------

    def publish_started(self, channel: Channel, event: PublishEvent) -> Any:
        """A publish is about to be written; the token returned goes to
        ``publish_ended``.  ``event.properties`` may be replaced."""

    def publish_ended(
        self,
        channel: Channel,
        event: PublishEvent,
        token: Any,
        outcome: PublishOutcome,
        error: BaseException | None,
    ) -> None:
        """The publish ended (``time.perf_counter() - event.started`` is its
        duration: with confirms, the confirm latency)."""

    # -- consuming ---------------------------------------------------------

    def consumer_started(self, consumer: Consumer) -> None:
        """The broker accepted ``basic.consume`` (the tag is known)."""

    def consumer_cancelled(self, consumer: Consumer, error: BaseException) -> None:
        """The broker cancelled the consumer (``basic.cancel``)."""

    def consumer_recovered(self, consumer: Any) -> None:
        """A robust consumer consumes again after a recovery or a cancel."""

    def delivery_received(self, consumer: Consumer, message: IncomingMessage) -> None:
        """A delivery arrived for ``consumer`` (not yet handed out)."""

    def delivery_started(self, consumer: Consumer, message: IncomingMessage, scoped: bool) -> Any:
        """The message is handed to the application; the token returned goes
        to ``delivery_ended``.  ``scoped``: its handling is a callback or a
        ``processing()`` block, which ends it; else the iterator handed it
        out, and settling it (or asking for the next one) ends it."""

    def delivery_ended(
        self, consumer: Consumer, message: IncomingMessage, token: Any, error: BaseException | None
    ) -> None:
        """The application is done with the message: its callback or
        handler returned (``error``: what it raised), or the iterator was
        asked for the next message or left."""

    def delivery_settled(
        self, channel: Channel, message: IncomingMessage, kind: Settle, multiple: bool, requeue: bool
    ) -> None:
        """The message was acked, nacked or rejected (``kind``)."""

    def delivery_dropped(self, consumer: Consumer, message: IncomingMessage, error: BaseException) -> None:
        """A delivery the consumer held was never handed out and cannot be
        settled: its channel closed (the broker requeues it)."""

    def message_got(
        self, channel: Channel, queue: str, message: IncomingMessage | None, duration: float
    ) -> None:
        """``basic.get`` on ``queue`` returned ``message`` (``None``: empty)."""


#: Every hook's name, in the order above.
HOOKS: tuple[str, ...] = tuple(
    name for name, value in vars(Observer).items() if callable(value) and not name.startswith("_")
)


class MultiObserver(Observer):
    """Several observers as one: each hook calls each observer in turn;
    the token is the tuple of their tokens."""

    def __init__(self, *observers: Observer) -> None:
        self.observers = observers


def _fan_out(name: str) -> Callable[..., Any]:
    token_hook = name in ("publish_started", "delivery_started")
    ended_hook = name in ("publish_ended", "delivery_ended")
    token_at = 2  # publish_ended(channel, event, token, ...), delivery_ended(consumer, message, token, ...)

    def hook(self: MultiObserver, *args: Any) -> Any:
        if token_hook:
            return tuple(getattr(obs, name)(*args) for obs in self.observers)
        if ended_hook:
            tokens = args[token_at] or (None,) * len(self.observers)
            for obs, token in zip(self.observers, tokens, strict=True):
                getattr(obs, name)(*args[:token_at], token, *args[token_at + 1:])
            return None
        for obs in self.observers:
            getattr(obs, name)(*args)
        return None

    hook.__name__ = name
    hook.__doc__ = getattr(Observer, name).__doc__
    return hook


class _Guarded(Observer):
    """Forwards every hook, logging (not raising) what a hook raises."""

    def __init__(self, observer: Observer) -> None:
        self.observer = observer


def _guard(name: str) -> Callable[..., Any]:
    def hook(self: _Guarded, *args: Any) -> Any:
        try:
            return getattr(self.observer, name)(*args)
        except Exception:
            log.exception("observer hook %s of %r failed", name, self.observer)
            return None

    hook.__name__ = name
    return hook


for _name in HOOKS:
    setattr(MultiObserver, _name, _fan_out(_name))
    setattr(_Guarded, _name, _guard(_name))


def guarded(observer: Observer | None) -> Observer | None:
    """``observer`` wrapped so that its failures are logged, not raised."""
    if observer is None or isinstance(observer, _Guarded):
        return observer
    return _Guarded(observer)


_installed: Observer | None = None


def install(observer: Observer) -> None:
    """Observe every connection opened from now on that was not given an
    ``observer`` of its own.  Installing again replaces the observer (wrap
    several in a :class:`MultiObserver`)."""
    global _installed
    if not isinstance(observer, Observer):
        raise InvalidArgument("observer must be an aiorabbit.observe.Observer")
    _installed = observer


def uninstall() -> None:
    """Connections opened from now on are not observed (unless given one)."""
    global _installed
    _installed = None


def installed() -> Observer | None:
    """The observer :func:`install` set, if any."""
    return _installed


def resolve(observer: Observer | None) -> Observer | None:
    """The observer a new connection uses: its own, else the installed one,
    guarded."""
    return guarded(observer if observer is not None else _installed)


@contextmanager
def processing(observer: Observer | None, consumer: Any, message: IncomingMessage) -> Iterator[None]:
    """Report the handling of ``message`` inside the block: started on
    entry, ended on exit with what the block raised."""
    if observer is None:
        yield
        return
    token = observer.delivery_started(consumer, message, True)
    try:
        yield
    except BaseException as exc:
        observer.delivery_ended(consumer, message, token, exc)
        raise
    observer.delivery_ended(consumer, message, token, None)

