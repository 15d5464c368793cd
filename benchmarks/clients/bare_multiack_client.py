"""The broker's consume ceiling: the bare socket, acking with ``multiple=True``.

``bare`` acks every delivery with a ``basic.ack`` of its own, so its
consume+ack figure includes the broker's cost of one ack per message.  The
true limit of consuming with acks is what the broker delivers when acks cost
it almost nothing: this client sends one ``basic.ack`` with ``multiple=True``
for the highest tag seen whenever ``every`` or more deliveries are unacked
(256 by default, well under the harness's prefetch of 1,000; deliveries are
counted once per ``recv``, so one ack may cover a few more), and one more for
the remainder before ``consume`` returns: every delivery is still acked, and
the clock stops only after the last ack is written.

Everything else is ``bare``'s, unchanged: logging in, publishing (the
harness runs this client for ``consume_ack`` only; the publish ceiling stays
``bare``), ``no_ack`` consuming, and the frame-walking consume loop itself.
That loop is run through a thin stand-in for its socket which passes
everything through except the loop's batches of per-delivery acks: those are
counted, and replaced by a multiple ack whenever ``every`` of them are
pending.  The loop still packs the per-delivery ack frames it thinks it
sends (one ``struct.pack`` per delivery, a join per ``recv``): client CPU
that never reaches the broker.  Against a dedicated multiple-ack loop (not
kept), 64 B, 12 interleaved runs each on the 2-core machine: 2.4 against
2.0 µs of CPU per message, median 121k against 127k msg/s, well inside the
run-to-run spread of both (92-147k msg/s).
"""

from __future__ import annotations

import socket
from typing import Any

from benchmarks.clients.bare_client import _ACK
from benchmarks.clients.bare_client import Client as BareClient

NAME = "bare-multiack"
EVERY = 256
# The first 11 bytes of bare's per-delivery ack: method frame on channel 1,
# 13-byte payload, basic.ack (class 60, method 80); then tag, bits, frame end.
_ACK_HEAD = _ACK.pack(1, 1, 13, 60, 80, 0, 0, 0xCE)[:11]
_ACK_SIZE = _ACK.size


class _Coalescing:
    """The socket as the consume loop sees it: single acks become multiple ones."""

    def __init__(self, sock: socket.socket, every: int) -> None:
        self.sock = sock
        self.recv = sock.recv
        self.recv_into = sock.recv_into
        self.every = every
        self.pending = 0  # deliveries counted but not acked yet
        self.highest = 0  # the highest delivery tag counted
        self.acks = 0  # basic.ack frames actually sent

    def sendall(self, data: bytes) -> None:
        if len(data) % _ACK_SIZE or not data.startswith(_ACK_HEAD):
            self.sock.sendall(data)  # qos, consume: not acks
            return
        # Tags come in order, one ack each: the batch's last frame holds the highest.
        self.pending += len(data) // _ACK_SIZE
        self.highest = int.from_bytes(data[-10:-2], "big")
        if self.pending >= self.every:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.sock.sendall(_ACK.pack(1, 1, 13, 60, 80, self.highest, 1, 0xCE))
            self.pending = 0
            self.acks += 1


class Client(BareClient):
    def __init__(self, every: int = EVERY) -> None:
        self.every = every
        self.acks_sent = 0  # basic.ack frames the last consume sent

    def consume(self, queue: str, count: int, no_ack: bool, prefetch: int) -> int:
        if no_ack:
            return super().consume(queue, count, no_ack, prefetch)
        if self.every > prefetch:
            # The broker would stop at prefetch unacked deliveries, short of the next ack.
            raise ValueError(f"acking every {self.every} needs a prefetch of at least that, not {prefetch}")
        sock: Any = self.sock
        coalescing = _Coalescing(sock, self.every)
        self.sock = coalescing  # type: ignore[assignment]
        try:
            body = super().consume(queue, count, no_ack, prefetch)
            coalescing.flush()  # the remainder: every delivery is acked before the clock stops
        finally:
            self.sock = sock
        self.acks_sent = coalescing.acks
        return body


CLIENT = Client
