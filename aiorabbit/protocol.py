"""The asyncio side of the wire: bytes in through the frame parser, frames
out to the channels' ports.

:class:`Protocol` moves bytes between the transport and the sans-I/O
:class:`~aiorabbit.codec.frames.FrameParser`; :class:`Router` is the
parser's frame sink and hands each frame to channel 0 or to a channel's
:class:`~aiorabbit.link.ChannelPort`.  What the connection must hear of
(made, lost, a protocol failure) goes through the :class:`Events` it gave.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import NamedTuple

from .assembly import DIRECT_READ_MIN
from .codec import Method
from .codec.frames import FrameParser
from .exceptions import AMQPError, ProtocolError
from .link import ChannelPort
from .outbox import Outbox
from .reading import ReadGate

__all__ = ["Events", "Protocol", "Router"]

log = logging.getLogger("aiorabbit.connection")

# Each read takes up to this much (what the stdlib transport reads too) ...
_READ_SIZE = 256 * 1024
# ... or, while reads keep filling that, this much: a stream of large
# messages then arrives in a quarter of the loop turns (and of the blocking
# API's hand-offs between threads).
_READ_SIZE_LARGE = 1024 * 1024
# Reads short of ``_READ_SIZE`` in a row that give the large buffer back.
_SHRINK_AFTER = 64
# Reading stops for the rest of a loop turn past this many bytes.  The
# stdlib loop reads once per turn (at most ``_READ_SIZE_LARGE``); uvloop reads
# up to 32 times in a row, and tens of megabytes of large messages then pile
# up before the consumer runs: their memory is given back to the system and
# faulted in again for the next pile (200,000 page faults against 6,500 for
# 20,000 messages of 64 KiB, and twice the CPU per message).
_TURN_MAX = _READ_SIZE_LARGE + 1


class Events(NamedTuple):
    """What the protocol reports to its connection."""

    made: Callable[[asyncio.Transport], None]
    lost: Callable[[Exception | None], None]
    protocol_failure: Callable[[AMQPError], None]
    internal_failure: Callable[[Exception], None]
    outbox: Outbox
    reading: ReadGate


class Protocol(asyncio.BufferedProtocol):
    """Moves bytes between the transport and the connection.

    Reads land in one reused buffer, parsed in place, so no ``bytes`` is
    allocated per read (nor, under uvloop, copied out of its own buffer).
    While a large body frame is being received, the read goes straight into
    that body's assembly buffer instead: its bytes are then copied once in
    all, into the message's ``bytes``.
    """

    __slots__ = ("_direct", "_direct_due", "_direct_view", "_short_reads", "_turn_bytes", "_view", "events",
                 "feed", "parser", "received", "router")

    def __init__(self, events: Events, parser: FrameParser, router: Router) -> None:
        self.events = events
        #: Bytes arrived since the heartbeat last looked.
        self.received = False
        self.parser = parser
        self.router = router
        self.feed = parser.feed_into
        self._view = memoryview(bytearray(_READ_SIZE))
        self._direct = -1  # the channel whose body the pending read fills, if any
        self._direct_due = 0  # the payload bytes of that read; past them, the next frame's head
        self._direct_view: memoryview | None = None
        self._short_reads = 0
        self._turn_bytes = 0  # read since this loop turn began

    @property
    def read_size(self) -> int:
        """How much the next read into the protocol's own buffer can take."""
        return len(self._view)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.events.made(transport)  # type: ignore[arg-type]

    def get_buffer(self, sizehint: int) -> memoryview:
        self._direct = -1
        self._direct_view = None
        try:
            return self._next_buffer()
        except Exception as exc:  # never out of a transport callback
            self.events.internal_failure(exc)
            return self._view

    def _next_buffer(self) -> memoryview:
        parser = self.parser
        channel, due = parser.pending_body()
        port = self.router.ports.get(channel) if channel else None
        if port is None:
            return self._view
        if due:
            # The rest of a large frame, or a short rest of one frame of a
            # large body (read alone, or the next frame would follow it here).
            large = due >= DIRECT_READ_MIN or port.receiving_large_body()
            target = port.body_target(due) if large else None
            if target is not None:
                # The target has room for the frame's end octet and the
                # next frame's head after the payload: one read, not two.
                self._direct = channel
                self._direct_due = due
                self._direct_view = target
                return target
        elif parser.frame_max >= DIRECT_READ_MIN + 8 and port.receiving_large_body():
            # Between two frames of a large body: read just up to the next
            # payload, so that payload can go straight into the body.
            head = parser.head_due()
            if head:
                return self._view[:head]
        return self._view

    def buffer_updated(self, nbytes: int) -> None:
        self.received = True
        if not self._turn_bytes:
            asyncio.get_running_loop().call_soon(self._turn_over)
        self._turn_bytes += nbytes
        if self._turn_bytes >= _TURN_MAX:
            self.events.reading.turn_full()
        try:
            channel = self._direct
            if channel < 0:
                view = self._view
                self.feed(view[:nbytes], self.router)
                if nbytes == len(view) or len(view) > _READ_SIZE:
                    self._resize(nbytes)
                return
            self._direct = -1
            due, target = self._direct_due, self._direct_view
            self._direct_view = None  # a view would keep the body's buffer from being reused
            head = b""
            if nbytes > due and target is not None:
                head = bytes(target[due:nbytes])
                nbytes = due
            self.parser.body_placed(nbytes)
            port = self.router.ports.get(channel)
            if port is not None:
                port.body_placed(nbytes)
            if head:
                self.feed(head, self.router)
        except ProtocolError as exc:  # FrameError included
            self.events.protocol_failure(exc)
        except Exception as exc:  # never out of a transport callback
            self.events.internal_failure(exc)

    def _turn_over(self) -> None:
        self._turn_bytes = 0
        self.events.reading.turn_over()

    def _resize(self, nbytes: int) -> None:
        """Grow the read buffer when a read filled it; shrink it back after
        a run of reads that the small one would have held."""
        if nbytes == len(self._view) == _READ_SIZE:
            self._view = memoryview(bytearray(_READ_SIZE_LARGE))
        elif nbytes >= _READ_SIZE:
            self._short_reads = 0
        else:
            self._short_reads += 1
            if self._short_reads >= _SHRINK_AFTER:
                self._short_reads = 0
                self._view = memoryview(bytearray(_READ_SIZE))

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.lost(exc)

    def pause_writing(self) -> None:
        self.events.outbox.pause()

    def resume_writing(self) -> None:
        self.events.outbox.resume()


class Router:
    """The parser's frame sink: routes frames to channel 0 or a channel."""

    __slots__ = ("on_channel0", "ports")

    def __init__(self, ports: dict[int, ChannelPort], on_channel0: Callable[[Method], None]) -> None:
        self.ports = ports
        self.on_channel0 = on_channel0

    def on_method(self, channel: int, method: Method) -> None:
        if channel == 0:
            self.on_channel0(method)
            return
        port = self.ports.get(channel)
        if port is None:
            log.debug("dropping %r for unknown channel %d", method, channel)
            return
        port.on_method(method)

    def on_header(self, channel: int, class_id: int, body_size: int, props: bytes) -> None:
        port = self.ports.get(channel)
        if port is not None:
            port.on_header(body_size, props)

    def on_body(self, channel: int, chunk: memoryview) -> None:
        port = self.ports.get(channel)
        if port is not None:
            port.on_body(chunk)

    def on_delivery(self, channel: int, method: Method, props: bytes, body: memoryview) -> None:
        port = self.ports.get(channel)
        if port is not None:
            port.on_delivery(method, props, body)

    def on_heartbeat(self) -> None:
        pass  # any received byte already counts as life
