"""Bounded concurrent dispatch: a handler task per message, settled by
what the handler does.

Serves :class:`~aiorabbit.rpc.RpcServer` and the FastAPI consumers alike.
A slot is taken before the next message is pulled from the consumer, so a
message waits in the consumer's buffer (bounded by the prefetch, and
requeued when the consumer is cancelled), never in the dispatcher's hands.
A handler that returns gets its message acked, one that raises rejected
(requeued or not, as the caller decides), one cancelled at shutdown
requeued; a message the handler settled itself is left alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .exceptions import AMQPError
from .interface import MessageSource
from .message import IncomingMessage

__all__ = ["Dispatcher", "settle_quietly"]

log = logging.getLogger("aiorabbit.consumer")


class Dispatcher:
    """Runs ``handler(message)`` for each message of ``consumer``, at most
    ``concurrency`` at a time.

    ``requeue_on_error(exc)`` says whether a message whose handler raised
    ``exc`` goes back to the queue (else it is rejected without requeue:
    dead-lettered).  ``on_end(error)`` is called once when the consumer
    ends by itself: ``None`` for a clean end, else the error it raised."""

    def __init__(
        self,
        consumer: MessageSource,
        handler: Callable[[IncomingMessage], Awaitable[Any]],
        *,
        concurrency: int,
        requeue_on_error: Callable[[BaseException], bool],
        name: str,
        on_end: Callable[[BaseException | None], None] | None = None,
    ) -> None:
        self._consumer = consumer
        self._handler = handler
        self._slots = asyncio.Semaphore(concurrency)
        self._requeue_on_error = requeue_on_error
        self._on_end = on_end
        #: The handler tasks running now.
        self.handlers: set[asyncio.Task[None]] = set()
        #: Why the consumer ended, if it ended with an error.
        self.error: BaseException | None = None
        self._task = asyncio.get_running_loop().create_task(self._pull(), name=f"aiorabbit dispatch {name}")

    @property
    def running(self) -> bool:
        """True while messages are being pulled from the consumer."""
        return not self._task.done()

    async def _pull(self) -> None:
        loop = asyncio.get_running_loop()
        consumer = self._consumer
        try:
            while True:
                await self._slots.acquire()
                try:
                    msg = await consumer.take()
                except BaseException:
                    self._slots.release()
                    raise
                task = loop.create_task(self._run(msg))
                self.handlers.add(task)
                task.add_done_callback(functools.partial(self._handled, msg))
        except StopAsyncIteration:
            self._ended(None)
        except Exception as exc:
            self.error = exc
            self._ended(exc)

    def _ended(self, error: BaseException | None) -> None:
        if self._on_end is not None:
            self._on_end(error)

    async def _run(self, msg: IncomingMessage) -> None:
        # Settled inside the processing scope: the observer sees the settle
        # as part of the handling, and the handler's error on it.
        with contextlib.suppress(Exception), self._consumer.processing(msg):
            try:
                await self._handler(msg)
            except Exception as exc:
                settle_quietly(msg, requeue=self._requeue_on_error(exc), ack=False)
                raise
            settle_quietly(msg, ack=True)

    def _handled(self, msg: IncomingMessage, task: asyncio.Task[None]) -> None:
        self.handlers.discard(task)
        self._slots.release()
        if task.cancelled():
            # Cancelled at shutdown (even before it started): the message
            # goes back to the queue now rather than when the connection closes.
            settle_quietly(msg, ack=False, requeue=True)

    async def drain(self, timeout: float | None = None) -> int:
        """Wait up to ``timeout`` seconds for the handlers running, then
        cancel those still running (their messages are requeued); return
        how many were cancelled.  Cancelling ``drain`` cancels them all."""
        if not self.handlers:
            return 0
        try:
            _, pending = await asyncio.wait(set(self.handlers), timeout=timeout)
        except asyncio.CancelledError:
            await self._cancel(set(self.handlers))
            raise
        await self._cancel(pending)
        return len(pending)

    @staticmethod
    async def _cancel(tasks: set[asyncio.Task[None]]) -> None:
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)

    async def stop(self) -> None:
        """Stop pulling messages (idempotent); running handlers go on."""
        self._task.cancel()
        await asyncio.wait([self._task])


def settle_quietly(msg: IncomingMessage, *, ack: bool, requeue: bool = False) -> None:
    """Ack, or reject with ``requeue``, unless the message was settled
    already; a message whose channel is gone cannot be settled, but the
    broker redelivers it anyway, so that is logged, not raised."""
    if msg.settled:
        return
    try:
        if ack:
            msg.ack()
        else:
            msg.reject(requeue=requeue)
    except AMQPError as exc:
        log.info("cannot %s %r (%s); the broker redelivers it", "ack" if ack else "reject", msg, exc)
