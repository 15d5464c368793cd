"""The one state of a connection or a channel, and its legal transitions."""

from __future__ import annotations

import enum

__all__ = ["Phase", "check_transition"]


class Phase(str, enum.Enum):
    """Where a :class:`~aiorabbit.Connection` or a :class:`~aiorabbit.Channel` is."""

    #: Being opened (the handshake, or ``channel.open``).
    OPENING = "opening"
    #: Usable.
    OPEN = "open"
    #: ``close()`` was called; the broker's close-ok is due.
    CLOSING = "closing"
    #: Closed, by either side, or lost.  Final.
    CLOSED = "closed"


_NEXT = {
    Phase.OPENING: frozenset({Phase.OPEN, Phase.CLOSING, Phase.CLOSED}),
    Phase.OPEN: frozenset({Phase.CLOSING, Phase.CLOSED}),
    Phase.CLOSING: frozenset({Phase.CLOSED}),
    Phase.CLOSED: frozenset(),
}


def check_transition(current: Phase, new: Phase) -> None:
    """Raise ``AssertionError`` for a transition that must not happen (a bug)."""
    if new not in _NEXT[current]:
        raise AssertionError(f"no transition from {current.value} to {new.value}")
