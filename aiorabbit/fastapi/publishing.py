"""Confirmed publishing for the whole application: :class:`RabbitPublisher`
over a pool of confirm-mode publishers."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pydantic

from .._compat import wait_for
from ..codec import Buffer
from ..codec.properties import DeliveryMode, Properties
from ..exceptions import InvalidArgument, NotRunning
from ..publisher import Publisher
from ..robust import RobustConnection

__all__ = ["PublisherPool", "RabbitPublisher", "merge_properties", "to_json"]

log = logging.getLogger("aiorabbit.fastapi")


class RabbitPublisher:
    """Confirmed publishing for the whole application, over a pool of
    confirm-mode channels opened at startup (each publish goes to the least
    busy one): not a channel per request.

    Get it in a request handler with ``Depends(rabbit.publisher)``, or use
    ``rabbit.publisher`` directly (in a consumer, a background task).
    Every publish returns once the broker confirmed the message, and is
    published again if the connection is lost before that (so it may
    arrive twice, with the same ``message_id``).  While the connection is
    down a publish waits for it, up to the connection's ``wait_timeout``,
    then raises :class:`~aiorabbit.RecoveryTimeout`.
    """

    def __init__(self, pool: PublisherPool | None = None) -> None:
        self._pool = pool if pool is not None else PublisherPool()

    async def __call__(self) -> RabbitPublisher:
        """The dependency: ``Depends(rabbit.publisher)`` gives this object."""
        self._check()
        return self

    def _check(self) -> None:
        if not self._pool.publishers:
            raise NotRunning("RabbitMQ is not running: publish inside the app's lifespan")

    @property
    def in_flight(self) -> int:
        """Publishes started and not yet confirmed (or failed)."""
        return self._pool.in_flight

    async def publish(
        self,
        body: Buffer | str,
        *,
        exchange: str = "",
        routing_key: str = "",
        properties: Properties | None = None,
        mandatory: bool = False,
        persistent: bool = True,
    ) -> str:
        """Publish ``body`` (a ``str`` is sent as UTF-8) and return its
        ``message_id`` once the broker confirmed it.

        ``persistent`` sets ``delivery_mode`` 2 unless ``properties`` sets
        one.  With ``mandatory``, a message no queue takes raises
        :class:`~aiorabbit.MessageReturned` instead of vanishing.  Raises
        :class:`NotRunning` outside the lifespan."""
        data = body.encode() if isinstance(body, str) else body
        return await self._send(data, exchange, routing_key, properties, mandatory, persistent, None)

    async def publish_json(
        self,
        data: Any,
        *,
        exchange: str = "",
        routing_key: str = "",
        properties: Properties | None = None,
        mandatory: bool = False,
        persistent: bool = True,
    ) -> str:
        """Publish ``data`` as JSON, like :meth:`publish`.

        ``data`` is a pydantic model (dumped by alias, the way it is
        validated back) or anything pydantic can serialize: dicts, lists,
        dataclasses, datetimes, UUIDs.  ``content_type`` is
        ``application/json`` unless ``properties`` sets one.  Raises
        :class:`~aiorabbit.InvalidArgument` for what cannot be encoded."""
        self._check()
        return await self._send(
            to_json(data), exchange, routing_key, properties, mandatory, persistent, "application/json"
        )

    async def _send(
        self,
        body: Buffer,
        exchange: str,
        routing_key: str,
        properties: Properties | None,
        mandatory: bool,
        persistent: bool,
        content_type: str | None,
    ) -> str:
        self._check()
        props = merge_properties(properties, persistent=persistent, content_type=content_type)
        return await self._pool.pick().publish(
            body, exchange=exchange, routing_key=routing_key, properties=props, mandatory=mandatory
        )


class PublisherPool:
    """The confirm-mode publishers behind :class:`RabbitPublisher`, started
    and closed by the :class:`RabbitMQ` that owns them."""

    def __init__(self) -> None:
        self.publishers: list[Publisher] = []
        self._turn = 0

    @property
    def in_flight(self) -> int:
        return sum(p.in_flight for p in self.publishers)

    def pick(self) -> Publisher:
        """The publisher with the fewest publishes in flight; ties go round
        the pool so that the channels share the load."""
        pool = self.publishers
        self._turn = start = (self._turn + 1) % len(pool)
        return min(pool[start:] + pool[:start], key=lambda publisher: publisher.in_flight)

    async def start(self, conn: RobustConnection, size: int, window: int) -> None:
        for _ in range(size):
            # timeout: a publish republished after a loss waits for the
            # connection as long as a first attempt would, not forever.
            publisher = Publisher(conn, window=window, timeout=conn.wait_timeout)
            await publisher.start()
            self.publishers.append(publisher)

    async def close(self, timeout: float) -> None:
        """Wait (up to ``timeout``) for the publishes in flight; new ones
        raise :class:`NotRunning` from now on."""
        pool, self.publishers = self.publishers, []
        if not pool:
            return
        try:
            closing = asyncio.gather(*(p.close() for p in pool), return_exceptions=True)
            await wait_for(closing, timeout)
        except asyncio.TimeoutError:
            left = sum(p.in_flight for p in pool)
            log.warning("%d publishes still unconfirmed after %.1f s; they fail with the connection", left,
                        timeout)


def merge_properties(
    properties: Properties | None, *, persistent: bool, content_type: str | None
) -> Properties:
    if properties is not None and not isinstance(properties, Properties):
        raise InvalidArgument("properties must be an aiorabbit.Properties")
    props = properties if properties is not None else Properties()
    defaults: dict[str, Any] = {}
    if persistent and props.delivery_mode is None:
        defaults["delivery_mode"] = DeliveryMode.PERSISTENT
    if content_type is not None and props.content_type is None:
        defaults["content_type"] = content_type
    return props.replace(**defaults)


ANY_TYPE: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(Any)


def to_json(data: Any) -> bytes:
    try:
        if isinstance(data, pydantic.BaseModel):
            return data.model_dump_json(by_alias=True).encode()
        return ANY_TYPE.dump_json(data, by_alias=True)
    except (ValueError, TypeError) as exc:  # pydantic's PydanticSerializationError is a ValueError
        raise InvalidArgument(f"cannot encode {type(data).__name__} as JSON: {exc}") from exc


# ----------------------------------------------------------------------
