"""The seam between a connection and its channels.

A channel never reaches into its connection: it gets a
:class:`ChannelLink` at creation (the outbox it writes to, the read gate,
and callables for what only the connection can do) and hands back a
:class:`ChannelPort` through which the connection's frame router and
lifecycle reach it.  Both are plain tuples of callables: no attribute of
the other side is read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import NamedTuple

from .codec import Method
from .exceptions import AMQPError
from .outbox import Outbox
from .reading import ReadGate

__all__ = ["ChannelLink", "ChannelPort"]


class ChannelPort(NamedTuple):
    """How the connection reaches one channel."""

    #: A method frame for the channel.
    on_method: Callable[[Method], None]
    #: A content header frame: ``(body_size, raw_properties)``.
    on_header: Callable[[int, bytes], None]
    #: A body frame (a view of the read buffer).
    on_body: Callable[[memoryview], None]
    #: Where the next ``n`` body bytes may be read to directly, if anywhere.
    body_target: Callable[[int], memoryview | None]
    #: True while a large body is arriving (read frame by frame).
    receiving_large_body: Callable[[], bool]
    #: ``n`` bytes were read into the body target.
    body_placed: Callable[[int], None]
    #: A delivery with its header and whole body (the parser's fast path).
    on_delivery: Callable[[Method, bytes, memoryview], None]
    #: True while a reply or a confirm is due on the channel.
    awaits_frame: Callable[[], bool]
    #: Send ``channel.open`` and wait for open-ok.
    open: Callable[[], Awaitable[None]]
    #: The connection is gone: fail everything waiting with the error.
    closed: Callable[[BaseException], None]


class ChannelLink(NamedTuple):
    """What a channel gets from its connection."""

    outbox: Outbox
    reading: ReadGate
    #: Register (or replace) the channel's port under its number.
    attach: Callable[[int, ChannelPort], None]
    #: The channel is closed at both ends: its number is free again.
    release: Callable[[int], None]
    #: The broker broke the protocol: the connection closes.
    protocol_failure: Callable[[AMQPError], None]
