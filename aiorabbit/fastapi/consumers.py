"""The registered consumers while the app runs: each a robust channel, a
:class:`~aiorabbit.RobustConsumer` and a :class:`~aiorabbit.dispatch.Dispatcher`."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import json as jsonlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pydantic

from ..dispatch import Dispatcher
from ..exceptions import AMQPError
from ..message import IncomingMessage
from ..robust import RobustChannel, RobustConnection, RobustConsumer
from .health import ConsumerHealth

__all__ = ["ConsumerSpec", "Runner", "Undecodable", "one_line", "takes"]

log = logging.getLogger("aiorabbit.fastapi")


@dataclasses.dataclass(frozen=True)
class ConsumerSpec:
    name: str
    queue: str
    handler: Callable[..., Awaitable[Any]]
    prefetch: int
    concurrency: int
    adapter: pydantic.TypeAdapter[Any] | None
    decode_json: bool
    pass_message: bool
    requeue_on_error: bool
    arguments: dict[str, Any] | None


class Undecodable(Exception):
    """A body the consumer's model or JSON decoding refused."""


class Runner:
    """One registered consumer while the app runs: a channel with its QoS,
    a :class:`RobustConsumer` and the :class:`Dispatcher` of its handler."""

    def __init__(self, spec: ConsumerSpec, channel: RobustChannel, consumer: RobustConsumer) -> None:
        self.spec = spec
        self.channel = channel
        self.consumer = consumer
        self.processed = 0
        self.failed = 0
        self.rejected = 0
        self.dispatcher = Dispatcher(
            consumer, self._handle, concurrency=spec.concurrency, requeue_on_error=self._requeue,
            name=f"aiorabbit.fastapi consumer {spec.name}", on_end=self._ended,
        )

    @classmethod
    async def start(cls, spec: ConsumerSpec, conn: RobustConnection) -> Runner:
        channel = await conn.channel()
        try:
            await channel.basic_qos(prefetch_count=spec.prefetch)
            consumer = channel.consume(spec.queue, arguments=spec.arguments)
            await consumer.start()
        except BaseException:
            with contextlib.suppress(AMQPError):
                await channel.close()
            raise
        return cls(spec, channel, consumer)

    @property
    def handlers(self) -> set[asyncio.Task[None]]:
        return self.dispatcher.handlers

    @property
    def consuming(self) -> bool:
        return self.dispatcher.running and self.consumer.is_consuming

    def health(self) -> ConsumerHealth:
        error = self.dispatcher.error
        return {
            "queue": self.spec.queue,
            "consuming": self.consuming,
            "in_flight": len(self.handlers),
            "processed": self.processed,
            "failed": self.failed,
            "rejected": self.rejected,
            "error": None if error is None else one_line(error),
        }

    def _ended(self, error: BaseException | None) -> None:
        # The connection closed for good, or the application deleted the
        # queue: health() reports it.  (None: cancelled at shutdown.)
        if error is not None:
            log.error("consumer %s stopped: %s", self.spec.name, one_line(error),
                      exc_info=not isinstance(error, AMQPError))

    def _requeue(self, exc: BaseException) -> bool:
        return self.spec.requeue_on_error and not isinstance(exc, Undecodable)

    async def _handle(self, msg: IncomingMessage) -> None:
        """Decode and call the handler; the dispatcher acks on return and
        rejects on raise (an undecodable body without requeue)."""
        spec = self.spec
        try:
            args = self._arguments(msg)
        except Exception as exc:
            self.rejected += 1
            log.warning("consumer %s: cannot decode %r (%s); rejected without requeue (dead-lettered)",
                        spec.name, msg, one_line(exc))
            raise Undecodable(exc) from exc
        try:
            await spec.handler(*args)
        except Exception:
            self.failed += 1
            fate = "requeued" if spec.requeue_on_error else "rejected without requeue (dead-lettered)"
            log.exception("consumer %s: handler failed on %r; %s", spec.name, msg, fate)
            raise
        self.processed += 1

    def _arguments(self, msg: IncomingMessage) -> tuple[Any, ...]:
        spec = self.spec
        if spec.adapter is not None:
            body: Any = spec.adapter.validate_json(msg.body)
        elif spec.decode_json:
            body = jsonlib.loads(msg.body)
        else:
            return (msg,)
        return (body, msg) if spec.pass_message else (body,)

    async def stop_consuming(self) -> None:
        """Cancel the consumer: the broker sends no more, and what it sent
        that was not handed to a handler yet goes back to the queue.  The
        handlers in flight go on (a message handed out while the cancel
        was under way is one of them)."""
        await self.consumer.cancel()

    async def stop_dispatching(self) -> None:
        await self.dispatcher.stop()


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def takes(signature: inspect.Signature, count: int) -> bool:
    try:
        signature.bind(*([None] * count))
    except TypeError:
        return False
    return True
