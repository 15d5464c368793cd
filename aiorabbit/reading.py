"""The read side's one switch: stop reading while a consumer is backlogged.

With ``no_ack`` the broker applies no prefetch limit, so a consumer whose
buffer fills asks the connection to stop reading from the socket.  Reading
goes on regardless while anything awaits a frame (a reply, a confirm, a
close-ok): it would otherwise arrive behind the backlog and never be read.
Consumers get this gate at creation; they never reach for the connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

__all__ = ["ReadGate"]


class ReadGate:
    """Pauses and resumes the transport's reading for backlogged consumers."""

    __slots__ = ("_awaits_frame", "_backlogged", "_transport", "_turn_full", "paused")

    def __init__(self, awaits_frame: Callable[[], bool]) -> None:
        self._awaits_frame = awaits_frame
        self._backlogged = 0
        self._turn_full = False
        self._transport: asyncio.Transport | None = None
        #: Reading is paused now.
        self.paused = False

    def attach(self, transport: asyncio.Transport) -> None:
        """Control ``transport``'s reading."""
        self._transport = transport

    def backlog_full(self) -> None:
        """A consumer's backlog is full: stop reading if we can."""
        self._backlogged += 1
        self.update()

    def backlog_drained(self) -> None:
        """A consumer's backlog drained (or it ended)."""
        self._backlogged = max(0, self._backlogged - 1)
        self.update()

    def turn_full(self) -> None:
        """This loop turn read enough: stop until the next one (see
        :class:`~aiorabbit.protocol.Protocol`)."""
        self._turn_full = True
        self.update()

    def turn_over(self) -> None:
        """A new loop turn: read again (unless a backlog says otherwise)."""
        if self._turn_full:
            self._turn_full = False
            self.update()

    def frame_awaited(self) -> None:
        """Someone now waits for a frame from the broker: read again."""
        if self.paused:
            self.update()

    def update(self) -> None:
        """Pause reading while this loop turn read enough, or while a
        consumer is backlogged and nothing awaits a frame; read otherwise."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        pause = self._turn_full or (self._backlogged > 0 and not self._awaits_frame())
        if pause != self.paused:
            self.paused = pause
            if pause:
                transport.pause_reading()
            else:
                transport.resume_reading()
