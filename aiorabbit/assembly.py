"""Content assembly: a method, its content header and its body frames
become one message body.

A channel owns one :class:`Assembler`; the connection's frame router hands
it the header and body frames of that channel.  A body that arrives in one
frame is copied once, into the ``bytes`` the application gets.  A larger
one is assembled in a buffer, or read straight into it by the protocol
(see :class:`~aiorabbit.protocol.Protocol`), and handed over in that
buffer, not copied: an :class:`~aiorabbit.message.AssembledMessage` gives
it as a view, and copies it into ``bytes`` only if the application asks.
Buffers come from a small pool: one is used again once nothing refers to
it any more (the message that held it and any view of its body are gone),
which keeps a stream of large bodies from paying for fresh memory each.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from .codec import Method
from .codec.properties import NO_PROPERTIES
from .exceptions import AMQPError, BodyTooLarge, ProtocolError
from .message import AssembledMessage

__all__ = ["Assembler", "DIRECT_READ_MIN", "HEAD_ROOM"]

#: A body whose frame still has this much to come is read straight into its
#: assembly buffer; less is not worth a read of its own.
DIRECT_READ_MIN = 32 * 1024
#: Bytes past a frame's payload that a direct read may take too: the frame's
#: end octet and the next frame's head, read with the payload instead of
#: by a read of their own.  Buffers have this much room after the body.
HEAD_ROOM = 8
# Assembly buffers up to this size are kept for the channel's next bodies ...
_SCRATCH_MAX = 8 * 1024 * 1024
# ... at most this many of them.
_POOL_MAX = 4
# ``sys.getrefcount`` of a pooled buffer nothing else refers to, seen from
# the loop over the pool: the pool's reference, the loop variable's and the
# call's own.  (No reuse where refcounts do not exist.)
_FREE_REFS = 3
_refcount: Callable[[Any], int] | None = getattr(sys, "getrefcount", None)
# ``size`` while the content header is due.
_HEADER_DUE = -1

#: ``(method, body, raw_properties, message_class)``: ``body`` is ``bytes``,
#: or a read-only ``memoryview`` of the buffer a large body was assembled in
#: (then ``message_class`` is :class:`~aiorabbit.message.AssembledMessage`).
ContentCallback = Callable[..., None]


class Assembler:
    """Turns one channel's content frames into ``(method, body, properties)``."""

    __slots__ = ("_buf", "_error", "_got", "_number", "_on_content", "_pool", "_props",
                 "max_body", "method", "size")

    def __init__(
        self, number: int, max_body: int, on_content: ContentCallback, on_error: Callable[[AMQPError], None]
    ) -> None:
        self._number = number
        #: The largest body accepted (``max_body_size``).
        self.max_body = max_body
        self._on_content = on_content
        self._error = on_error
        #: The method whose content is being received, or ``None``.
        self.method: Method | None = None
        #: The body's size (``-1`` while its header is due).
        self.size = 0
        self._props = NO_PROPERTIES
        self._buf: bytearray | None = None  # a body arriving in parts
        self._got = 0
        self._pool: list[bytearray] = []  # buffers handed over before, for reuse

    def start(self, method: Method) -> None:
        """``method`` (deliver, get-ok, return) has content to come."""
        self.method = method
        self.size = _HEADER_DUE

    def reset(self) -> None:
        """Forget the content in progress (the channel closed)."""
        self.method = None
        self._buf = None

    def header(self, body_size: int, props: bytes) -> None:
        """A content header frame."""
        if self.method is None or self.size != _HEADER_DUE:
            self._fail("unexpected content header")
            return
        if body_size > self.max_body:
            self._error(BodyTooLarge(
                f"channel {self._number}: a message of {body_size} bytes exceeds "
                f"max_body_size ({self.max_body} bytes)"
            ))
            return
        self._props = props
        self.size = body_size
        self._got = 0
        if body_size == 0:
            self._finish(b"")

    def body(self, chunk: memoryview) -> None:
        """A body frame.  ``chunk`` views the read buffer, reused by the next
        read: its bytes are copied now."""
        size = self.size
        if self.method is None or size < 0:
            self._fail("unexpected content body")
            return
        got = self._got
        end = got + len(chunk)
        if end > size:
            self._fail("content body longer than its header said")
            return
        if not got and end == size:  # the whole body in one frame: the common case, inlined
            method = self.method
            self.method = None
            self.size = 0
            self._on_content(method, bytes(chunk), self._props)  # the one copy of the body
            return
        self._assembly(end)[got:end] = chunk
        self._got = end
        if end == size:
            self._finish_assembled()

    def body_target(self, size: int) -> memoryview | None:
        """Where the next ``size`` bytes of the body being received should
        go (``None`` if they do not belong to a body in progress), followed
        by up to ``HEAD_ROOM`` bytes of room that the body does not use."""
        got = self._got
        if self.method is None or self.size < 0 or got + size > self.size:
            return None
        buf = self._assembly(got + size)
        return memoryview(buf)[got : min(len(buf), got + size + HEAD_ROOM)]

    def receiving_large_body(self) -> bool:
        """True between the frames of a body with a direct read's worth to come."""
        return self.method is not None and self.size - self._got >= DIRECT_READ_MIN

    def body_placed(self, size: int) -> None:
        """``size`` bytes were read into the :meth:`body_target`."""
        self._got += size
        if self._got == self.size:
            self._finish_assembled()

    def _assembly(self, need: int) -> bytearray:
        """The body's assembly buffer, at least ``need`` bytes long.  Past
        ``_SCRATCH_MAX`` it grows as the body arrives, not as its header
        claims: a header announcing a gigabyte costs what was really sent."""
        buf = self._buf
        if buf is None:
            size = self.size
            buf = self._free_buffer(size) if size <= _SCRATCH_MAX else bytearray(max(need, _SCRATCH_MAX))
            self._buf = buf
        if len(buf) < need:
            got = self._got
            grown = bytearray(min(self.size, max(need, 2 * len(buf))))
            grown[:got] = memoryview(buf)[:got]
            self._buf = buf = grown
        return buf

    def _free_buffer(self, size: int) -> bytearray:
        """A pooled buffer of at least ``size`` bytes that nothing refers to
        any more, else a new one (pooled if there is room)."""
        pool = self._pool
        if _refcount is not None:
            for buf in pool:
                if len(buf) >= size + HEAD_ROOM and _refcount(buf) == _FREE_REFS:
                    return buf
        buf = bytearray(size + HEAD_ROOM)
        if len(pool) >= _POOL_MAX:
            # Make room: the smallest buffer goes (it is freed once its
            # message is).
            pool.remove(min(pool, key=len))
        pool.append(buf)
        return buf

    def _finish_assembled(self) -> None:
        buf, size = self._buf, self.size
        assert buf is not None
        self._buf = None
        method = self.method
        assert method is not None
        self.method = None
        self.size = 0
        # Handed over in its buffer: no copy (see the module's docstring).
        self._on_content(method, memoryview(buf)[:size].toreadonly(), self._props, AssembledMessage)

    def _finish(self, body: bytes) -> None:
        method = self.method
        assert method is not None
        self.method = None
        self.size = 0
        self._on_content(method, body, self._props)

    def _fail(self, text: str) -> None:
        self._error(ProtocolError(f"channel {self._number}: {text}"))
