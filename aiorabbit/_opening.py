"""What ``connect()``, ``connect_robust()`` and ``channel()`` return: await
it, or open it and close it with ``async with``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, Generic, Protocol, TypeVar

__all__ = ["Opening"]


class _Closable(Protocol):
    async def close(self) -> Any: ...


T = TypeVar("T", bound=_Closable)


class Opening(Generic[T]):
    """``await opening`` opens the thing (a connection, a channel);
    ``async with opening as it:`` opens it and closes it when the block
    ends."""

    __slots__ = ("_open", "_opened")

    def __init__(self, open_: Callable[[], Awaitable[T]]) -> None:
        self._open = open_
        self._opened: T | None = None

    def __await__(self) -> Generator[Any, None, T]:
        return self._open().__await__()

    async def __aenter__(self) -> T:
        self._opened = await self._open()
        return self._opened

    async def __aexit__(self, *exc: object) -> None:
        if self._opened is not None:
            await self._opened.close()
