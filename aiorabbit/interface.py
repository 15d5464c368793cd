"""The seam between the core and the helpers above it.

:class:`~aiorabbit.Publisher`, the RPC client and server and the FastAPI
integration depend on this interface only, never on which connection they
got: :class:`~aiorabbit.Connection` and :class:`~aiorabbit.RobustConnection`
both implement it.  A helper asks the connection whether an error will be
recovered from instead of checking its type.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from ._opening import Opening
    from .connection import Connection
    from .message import IncomingMessage

__all__ = ["AnyConnection", "MessageSource"]


@runtime_checkable
class AnyConnection(Protocol):
    """A plain or a robust connection, as the helpers see it."""

    @property
    def is_open(self) -> bool:
        """True while usable now."""

    @property
    def is_closed(self) -> bool:
        """True once closed for good."""

    @property
    def closed_reason(self) -> BaseException | None:
        """Why it closed for good, once it has."""

    def channel(
        self, *, publisher_confirms: bool = False, on_return: Callable[[Any], Any] | None = None
    ) -> Opening[Any]:
        """Open a channel (a robust one on a robust connection)."""

    async def wait_usable(self, timeout: float | None = None) -> Connection:
        """The plain connection to use now, once there is one: a robust
        connection waits for recovery up to ``timeout`` (default: its
        ``wait_timeout``; ``math.inf``: for ever), a plain one raises at
        once unless it is open."""

    def recovers_from(self, exc: BaseException) -> bool:
        """Whether the connection will come back by itself after ``exc``
        (an error a call raised): never for a plain connection."""


class MessageSource(Protocol):
    """A plain or a robust consumer, as a dispatcher of concurrent handlers
    sees it."""

    async def take(self) -> IncomingMessage:
        """The next message; raises ``StopAsyncIteration`` at the end."""

    def processing(self, message: IncomingMessage) -> AbstractContextManager[None]:
        """Report the handling of ``message`` to the observer."""
