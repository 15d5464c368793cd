"""Blocking channels, and deliveries settled from the caller's thread."""

from __future__ import annotations

import collections
import logging
import queue as queue_module
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, Concatenate, ParamSpec, TypeVar

from .._inputs import owned_body
from ..channel import Channel
from ..codec import Buffer
from ..codec import methods as m
from ..codec.frames import encode_method_frame
from ..codec.properties import Properties
from ..consumer import Consumer
from ..exceptions import InvalidArgument, MessageAlreadySettled
from ..message import IncomingMessage, Settle, Settler, give_back
from ..robust import RobustChannel, RobustConsumer
from . import _waits
from ._handoff import Handoff
from ._io import IOThread

__all__ = ["BlockingChannel"]

log = logging.getLogger("aiorabbit.blocking")

P = ParamSpec("P")
R = TypeVar("R")

#: Bodies at least this large count toward the queue's byte bound; smaller
#: ones are bounded by its length alone.
_COUNTED_BODY = 4096


class ThreadSettler:
    """The settle function of a delivery handed to a caller's thread.

    It claims the message on that thread, so that a second ``ack()`` raises
    :class:`~aiorabbit.MessageAlreadySettled` at once, and queues the frame
    for the loop, where the channel's own settle function sends it."""

    __slots__ = ("io", "real")

    def __init__(self, io: IOThread, real: Settler) -> None:
        self.io = io
        self.real = real

    def __call__(self, msg: IncomingMessage, kind: Settle, multiple: bool, requeue: bool) -> None:
        if msg.settled:
            raise MessageAlreadySettled(f"delivery tag {msg.delivery_tag} was already settled")
        msg.channel.check_open()
        msg.settled = True
        self.io.post(_settle_on_loop, (self.real, msg, kind, multiple, requeue), _settle_failed)


def _requeue(msg: IncomingMessage) -> None:
    """Requeue a delivery no thread took (on the loop, by its channel)."""
    if msg.settled:
        return
    settler = msg.settler
    if isinstance(settler, ThreadSettler):
        msg.swap_settler(settler.real)
    try:
        give_back(msg)
    except Exception as exc:  # the channel closed: the broker requeues it
        log.debug("not requeued: %s", exc)


def _settle_on_loop(real: Settler, msg: IncomingMessage, kind: Settle, multiple: bool, requeue: bool) -> None:
    msg.settled = False  # claimed on the caller's thread: the channel claims it for real
    real(msg, kind, multiple, requeue)


def _settle_failed(exc: BaseException) -> None:
    # The channel closed between the call and the write: the broker requeues
    # what it had not seen settled.
    log.info("a settle was not sent: %s", exc)


def _blocking(
    method: Callable[Concatenate[Any, P], Awaitable[R]],
) -> Callable[Concatenate[BlockingChannel, P], R]:
    """The blocking form of a channel method: the same arguments, run on the
    connection's loop after what this thread queued before."""
    name = method.__name__

    def call(self: BlockingChannel, /, *args: P.args, **kwargs: P.kwargs) -> R:
        result: R = self._io.run(getattr(self._channel, name), *args, **kwargs)
        return result

    call.__name__ = call.__qualname__ = name
    call.__doc__ = method.__doc__
    return call


class BlockingChannel:
    """A channel driven from blocking code: the async channel's methods,
    blocking until done (a confirmed publish until the broker's confirm).

    Deliveries are :class:`~aiorabbit.IncomingMessage` objects whose
    ``ack()``, ``nack()`` and ``reject()`` are plain calls from any thread;
    their ``channel`` is the async channel, to be used on the I/O loop only.
    """

    def __init__(self, io: IOThread, channel: Channel | RobustChannel) -> None:
        self._io = io  # the connection's loop thread, shared by its channels
        self._channel = channel
        self._consumers: dict[str, Consumer | RobustConsumer] = {}
        self._consuming = False
        self._settlers: tuple[Settler | None, ThreadSettler | None] = (None, None)
        self._checked_keys: set[tuple[str, str, bool]] = set()
        self._checked_properties: Properties | None = None
        self._publish_error: BaseException | None = None

    @property
    def channel(self) -> Channel | RobustChannel:
        """The async channel underneath (use it on the I/O loop only)."""
        return self._channel

    @property
    def is_open(self) -> bool:
        """True while the channel is usable."""
        return self._channel.is_open

    @property
    def publisher_confirms(self) -> bool:
        """True once the channel is in confirm mode."""
        return self._channel.publisher_confirms

    exchange_declare = _blocking(Channel.exchange_declare)
    exchange_delete = _blocking(Channel.exchange_delete)
    exchange_bind = _blocking(Channel.exchange_bind)
    exchange_unbind = _blocking(Channel.exchange_unbind)
    queue_declare = _blocking(Channel.queue_declare)
    queue_bind = _blocking(Channel.queue_bind)
    queue_unbind = _blocking(Channel.queue_unbind)
    queue_purge = _blocking(Channel.queue_purge)
    queue_delete = _blocking(Channel.queue_delete)
    basic_qos = _blocking(Channel.basic_qos)
    basic_recover = _blocking(Channel.basic_recover)
    confirm_select = _blocking(Channel.confirm_select)
    tx_select = _blocking(Channel.tx_select)
    tx_commit = _blocking(Channel.tx_commit)
    tx_rollback = _blocking(Channel.tx_rollback)
    flow = _blocking(Channel.flow)

    # -- publishing ----------------------------------------------------------------

    def basic_publish(
        self,
        body: Buffer,
        *,
        exchange: str = "",
        routing_key: str = "",
        properties: Properties | None = None,
        mandatory: bool = False,
    ) -> None:
        """Publish a message.

        In confirm mode this returns when the broker confirmed it, raising
        :class:`~aiorabbit.PublishNacked` or :class:`~aiorabbit.MessageReturned`.
        Without confirms it returns once the message is queued for the I/O
        thread, which writes it after everything queued before it (as
        pika's ``basic_publish`` returns once written to its socket): bad
        arguments raise here; a channel that closes before the write makes
        the next call on it raise.  A mutable body is copied here."""
        if self._channel.publisher_confirms:
            self._io.run(self._channel.basic_publish, body, exchange=exchange, routing_key=routing_key,
                         properties=properties, mandatory=mandatory)
            return
        if type(body) is not bytes:
            body = owned_body(body)
        self._check_publish(exchange, routing_key, mandatory, properties)
        size = len(body)
        self._io.post(self._publish_on_loop, (body, exchange, routing_key, properties, mandatory),
                      self._publish_failed, size if size >= _COUNTED_BODY else 0)

    def _check_publish(self, exchange: str, routing_key: str, mandatory: bool,
                       properties: Properties | None) -> None:
        """Raise for what the loop would refuse, on the caller's thread."""
        error = self._publish_error
        if error is not None:
            self._publish_error = None
            raise error
        self._channel.check_open()
        key = (exchange, routing_key, mandatory)
        if key not in self._checked_keys:
            method = m.BasicPublish(exchange=exchange, routing_key=routing_key, mandatory=mandatory)
            encode_method_frame(0, method)
            if len(self._checked_keys) > 1024:
                self._checked_keys.clear()
            self._checked_keys.add(key)
        if properties is not None and properties is not self._checked_properties:
            if not isinstance(properties, Properties):
                raise InvalidArgument("properties must be an aiorabbit.Properties")
            properties.encode()
            self._checked_properties = properties

    def _publish_on_loop(self, body: bytes, exchange: str, routing_key: str, properties: Properties | None,
                         mandatory: bool) -> Awaitable[None]:
        size = len(body)
        if size >= _COUNTED_BODY:
            self._io.sent(size)
        return self._channel.basic_publish(body, exchange=exchange, routing_key=routing_key,
                                           properties=properties, mandatory=mandatory)

    def _publish_failed(self, exc: BaseException) -> None:
        if self._publish_error is None:
            log.warning("a publish without confirms was not sent (%s); the channel's next call raises", exc)
            self._publish_error = exc

    # -- getting and consuming -----------------------------------------------------

    def _thread_settler(self, real: Settler) -> ThreadSettler:
        """The settler for deliveries of ``real``'s channel (on the loop; one
        kept: a robust channel's plain channel changes only on recovery)."""
        last_real, settler = self._settlers
        if real is not last_real or settler is None:
            settler = ThreadSettler(self._io, real)
            self._settlers = (real, settler)
        return settler

    def _to_thread(self, msg: IncomingMessage) -> IncomingMessage:
        # The message's settle function is swapped before any thread sees it.
        msg.swap_settler(self._thread_settler(msg.settler))
        return msg

    def basic_get(
        self, queue: str, *, no_ack: bool = False, timeout: float | None = None
    ) -> IncomingMessage | None:
        """Fetch one message from ``queue``, or ``None`` if it is empty."""
        return self._io.run(self._get, queue, no_ack, timeout)

    async def _get(self, queue: str, no_ack: bool, timeout: float | None) -> IncomingMessage | None:
        msg = await self._channel.basic_get(queue, no_ack=no_ack, timeout=timeout)
        return self._to_thread(msg) if msg is not None else None

    def consume(
        self,
        queue: str,
        *,
        no_ack: bool = False,
        exclusive: bool = False,
        arguments: dict[str, Any] | None = None,
        inactivity_timeout: float | None = None,
    ) -> Iterator[IncomingMessage | None]:
        """Iterate over the deliveries of ``queue``.  With
        ``inactivity_timeout`` it yields ``None`` after that many seconds
        without one (as pika's ``consume`` does).  Leaving the loop (or
        closing the generator) cancels the consumer and requeues what it
        had not handed out; a channel error or a broker cancel is raised."""
        deliveries: queue_module.SimpleQueue[Any] = queue_module.SimpleQueue()
        taken: collections.deque[IncomingMessage] = collections.deque()
        handoff = Handoff(deliveries.put)
        consumer = self._io.run(self._start_consumer, queue, handoff, no_ack, exclusive, arguments)
        try:
            while True:
                if taken:
                    msg = taken.popleft()
                    handoff.taken(msg)
                    yield msg
                    continue
                try:
                    item = _waits.get(deliveries, inactivity_timeout)
                except queue_module.Empty:
                    yield None
                    continue
                if isinstance(item, BaseException):
                    if getattr(item, "by_client", False):
                        return
                    raise item
                taken.extend(item)
        finally:
            if not self._io.loop.is_closed():
                self._io.run(self._end_consumer, consumer, deliveries, list(taken))

    async def _start_consumer(
        self, queue: str, handoff: Handoff, no_ack: bool, exclusive: bool,
        arguments: dict[str, Any] | None,
    ) -> Consumer | RobustConsumer:
        """Start a consumer that hands its deliveries, and its end, to
        ``handoff`` (on the loop)."""
        to_thread, deliver = self._to_thread, handoff.deliver

        def on_message(msg: IncomingMessage) -> None:
            deliver(to_thread(msg))

        def ended(consumer: Any, error: BaseException) -> None:
            if getattr(consumer, "ended", True):  # a robust consumer consumes again after a loss
                handoff.end(error)

        consumer = self._channel.consume(queue, no_ack=no_ack, exclusive=exclusive, arguments=arguments,
                                         callback=on_message, on_end=ended)
        handoff.consumer = consumer  # before it starts: deliveries may follow the consume-ok at once
        await consumer.start()
        return consumer

    async def _end_consumer(self, consumer: Consumer | RobustConsumer,
                            deliveries: queue_module.SimpleQueue[Any], taken: list[IncomingMessage]) -> None:
        """Cancel ``consumer``, then requeue the deliveries not handed out:
        ``taken`` by the generator, then those still queued."""
        await consumer.cancel()
        for msg in taken:
            _requeue(msg)
        while True:
            try:
                item = deliveries.get_nowait()
            except queue_module.Empty:
                return
            if isinstance(item, list):
                for msg in item:
                    _requeue(msg)

    def basic_consume(
        self,
        queue: str,
        callback: Callable[[IncomingMessage], Any],
        *,
        no_ack: bool = False,
        exclusive: bool = False,
        arguments: dict[str, Any] | None = None,
    ) -> str:
        """Register ``callback(message)`` for the deliveries of ``queue``; it
        runs in the thread that calls :meth:`start_consuming` (or the
        connection's ``process_data_events``).  Returns the consumer tag."""
        handoff = Handoff(self._io.events.put, callback)
        consumer = self._io.run(self._start_consumer, queue, handoff, no_ack, exclusive, arguments)
        tag = consumer.consumer_tag or ""
        self._consumers[tag] = consumer
        return tag

    def start_consuming(self, *, timeout: float | None = None) -> None:
        """Run the callbacks here, one message at a time, until
        :meth:`stop_consuming` (from a callback or another thread), every
        consumer of this channel is cancelled, or ``timeout`` seconds pass
        without an event.  A channel or connection error is raised."""
        self._consuming = True
        try:
            while self._consuming and self._consumers:
                if not self._io.process_one(timeout):
                    return
        finally:
            self._consuming = False

    def stop_consuming(self, consumer_tag: str | None = None) -> None:
        """Cancel the consumer with ``consumer_tag`` (by default every one of
        this channel's), as pika does, and make :meth:`start_consuming`
        return after the callback running now."""
        for tag in [consumer_tag] if consumer_tag is not None else list(self._consumers):
            self.basic_cancel(tag)
        self._consuming = False
        self._io.events.put(None)

    def basic_cancel(self, consumer_tag: str) -> None:
        """Cancel the consumer with ``consumer_tag``; its deliveries that no
        callback has taken yet go back to the queue."""
        consumer = self._consumers.pop(consumer_tag, None)
        if consumer is None:
            raise InvalidArgument(f"no consumer {consumer_tag!r} on this channel")
        self._io.run(self._cancel, consumer)

    async def _cancel(self, consumer: Consumer | RobustConsumer) -> None:
        """Cancel on the loop, then requeue the consumer's waiting events
        (the loop is the only thread that adds events, so none slips by)."""
        await consumer.cancel()
        events, kept = self._io.events, []
        while True:
            try:
                item = events.get_nowait()
            except queue_module.Empty:
                break
            # An acking consumer's deliveries go back to the queue; a no_ack
            # one's are the application's already, so its callback still gets them.
            if isinstance(item, tuple) and item[1].consumer_tag == consumer.consumer_tag \
                    and not item[1].settled:
                _requeue(item[1])
            else:
                kept.append(item)
        for item in kept:
            events.put(item)

    def close(self) -> None:
        """Close the channel, after what was queued on it (idempotent)."""
        if not self._io.loop.is_closed():
            self._io.run(self._channel.close)

    def __enter__(self) -> BlockingChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<aiorabbit.blocking.BlockingChannel {self._channel!r}>"

