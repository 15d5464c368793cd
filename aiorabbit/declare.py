"""Exchange and queue methods: declare, bind, unbind, purge and delete.

:class:`~aiorabbit.Channel` gets them from :class:`Declarations`; each is
one synchronous method sent through the channel's ``_call``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from ._inputs import copy_arguments
from .codec import Method
from .codec import methods as m

__all__ = ["DeclareOk", "Declarations"]


class DeclareOk(NamedTuple):
    """Result of :meth:`Channel.queue_declare`."""

    queue: str
    message_count: int
    consumer_count: int


class Declarations:
    """The exchange and queue methods of a channel."""

    if TYPE_CHECKING:  # the channel's own: one call at a time, with its timeout

        async def _call(self, method: Method, on_reply: Any = None, timeout: float | None = None) -> Any: ...

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
        """Declare an exchange (``passive``: only check that it exists)."""
        await self._call(
            m.ExchangeDeclare(
                exchange=exchange,
                type=exchange_type,
                passive=passive,
                durable=durable,
                auto_delete=auto_delete,
                internal=internal,
                arguments=copy_arguments(arguments),
            ),
            timeout=timeout,
        )

    async def exchange_delete(
        self, exchange: str, *, if_unused: bool = False, timeout: float | None = None
    ) -> None:
        """Delete an exchange."""
        await self._call(m.ExchangeDelete(exchange=exchange, if_unused=if_unused), timeout=timeout)

    async def exchange_bind(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        """Bind exchange ``destination`` to exchange ``source``."""
        await self._call(
            m.ExchangeBind(
                destination=destination, source=source, routing_key=routing_key,
                arguments=copy_arguments(arguments),
            ),
            timeout=timeout,
        )

    async def exchange_unbind(
        self,
        destination: str,
        source: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        """Remove an exchange-to-exchange binding."""
        await self._call(
            m.ExchangeUnbind(
                destination=destination, source=source, routing_key=routing_key,
                arguments=copy_arguments(arguments),
            ),
            timeout=timeout,
        )

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
    ) -> DeclareOk:
        """Declare a queue; ``queue=""`` lets the broker name it."""
        reply = await self._call(
            m.QueueDeclare(
                queue=queue,
                passive=passive,
                durable=durable,
                exclusive=exclusive,
                auto_delete=auto_delete,
                arguments=copy_arguments(arguments),
            ),
            timeout=timeout,
        )
        return DeclareOk(reply.queue, reply.message_count, reply.consumer_count)

    async def queue_bind(
        self,
        queue: str,
        exchange: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        """Bind a queue to an exchange."""
        await self._call(
            m.QueueBind(
                queue=queue, exchange=exchange, routing_key=routing_key, arguments=copy_arguments(arguments)
            ),
            timeout=timeout,
        )

    async def queue_unbind(
        self,
        queue: str,
        exchange: str,
        routing_key: str = "",
        arguments: Mapping[str, Any] | None = None,
        *,
        timeout: float | None = None,
    ) -> None:
        """Remove a queue binding."""
        await self._call(
            m.QueueUnbind(
                queue=queue, exchange=exchange, routing_key=routing_key, arguments=copy_arguments(arguments)
            ),
            timeout=timeout,
        )

    async def queue_purge(self, queue: str, *, timeout: float | None = None) -> int:
        """Remove every ready message from ``queue``; return how many."""
        reply = await self._call(m.QueuePurge(queue=queue), timeout=timeout)
        return int(reply.message_count)

    async def queue_delete(
        self, queue: str, *, if_unused: bool = False, if_empty: bool = False, timeout: float | None = None
    ) -> int:
        """Delete a queue; return how many messages it held."""
        delete = m.QueueDelete(queue=queue, if_unused=if_unused, if_empty=if_empty)
        reply = await self._call(delete, timeout=timeout)
        return int(reply.message_count)
