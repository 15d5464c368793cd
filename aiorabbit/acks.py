"""Ack coalescing: one loop turn's acks in as few ``basic.ack`` frames as the
broker's rules allow.

A ``basic.ack`` with ``multiple`` set acks every delivery of the channel up
to its tag that the broker still counts as unacked.  So the acks the
application gives in one loop turn can go out as one such frame for the
highest of them, provided every delivery needing an ack with a lower tag
has been settled by the application already: then the frame acks nothing
the application did not ack.  Acks above the lowest delivery the
application has not settled go out one by one.

Why the frame is right, given how the channel uses this class:

- tags below the lowest unsettled one were each acked (in this batch or an
  earlier frame), nacked or rejected (their frame written before this
  batch's, so the broker no longer counts them), or delivered with
  ``no_ack`` (never counted);
- a ``multiple`` ack the application asks for drops the batch's acks it
  covers (they would be unknown tags after it); a ``multiple`` nack or any
  other channel method has the batch written first.

Pure bookkeeping: no I/O, no asyncio (tests/test_acks.py checks it against a
model of the broker's unacked set).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

__all__ = ["AckBatch"]


class AckBatch:
    """The deliveries of one channel the application has not settled, and
    this turn's acks."""

    __slots__ = ("_unsettled", "delivered", "pending")

    def __init__(self) -> None:
        # Tags needing an ack the application has not given, in delivery
        # (ascending) order: at most what the broker counts as unacked plus
        # this turn's batch, so prefetch bounds it.
        self._unsettled: OrderedDict[int, None] = OrderedDict()
        #: This turn's acks, not yet written.
        self.pending: list[int] = []
        #: ``delivered(tag)``: a delivery that needs an ack arrived (the
        #: dictionary's own method: one call per delivery, no Python frame).
        self.delivered: Callable[[int], None] = self._unsettled.setdefault

    def settled(self, tag: int) -> None:
        """The application nacked or rejected ``tag`` (its frame is written
        at once)."""
        self._unsettled.pop(tag, None)

    def ack(self, tag: int) -> None:
        """The application acked ``tag``: written with the batch."""
        self._unsettled.pop(tag, None)
        self.pending.append(tag)

    def settled_through(self, tag: int) -> None:
        """The application settled every delivery up to ``tag``
        (``multiple``); the batch's acks at or below it are dropped."""
        unsettled = self._unsettled
        while unsettled:
            first = next(iter(unsettled))
            if first > tag:
                break
            del unsettled[first]
        if self.pending:
            self.pending = [t for t in self.pending if t > tag]

    def lowest_unsettled(self) -> int | None:
        """The lowest tag that needs an ack the application has not given."""
        return next(iter(self._unsettled), None)

    def drain(self) -> list[tuple[int, bool]]:
        """The frames for this turn's acks, as ``(tag, multiple)``; the batch
        is empty afterwards."""
        acks, self.pending = self.pending, []
        if not acks:
            return []
        low = self.lowest_unsettled()
        if low is None:
            below, above = acks, []
        else:
            below = [t for t in acks if t < low]
            above = [t for t in acks if t > low]
        frames: list[tuple[int, bool]] = []
        if len(below) > 1:
            frames.append((max(below), True))
        elif below:
            frames.append((below[0], False))
        frames.extend((t, False) for t in above)
        return frames

    def clear(self) -> None:
        """The channel closed: nothing is outstanding any more."""
        self._unsettled.clear()
        self.pending = []
