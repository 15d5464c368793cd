"""Reconnect policy: exponential backoff with full jitter, and which errors
are worth retrying.  Pure functions and data: no event loop needed."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import Callable

from .exceptions import (
    AMQPError,
    ChannelClosed,
    ConnectionClosed,
    ConnectionFailed,
    ConnectionLost,
    InvalidArgument,
    ProtocolViolation,
)

__all__ = ["Backoff", "is_recoverable", "failure_signature", "RECOVERABLE_REPLY_CODES"]

#: ``connection.close`` reply codes after which reconnecting can help:
#: connection-forced (320: an operator or a node shutdown), resource-error
#: (506) and internal-error (541).  Every other code (403 access-refused,
#: 530 not-allowed, 501-505 and 540 protocol errors) is fatal: reconnecting
#: would fail the same way.
RECOVERABLE_REPLY_CODES = frozenset({320, 506, 541})


@dataclasses.dataclass(frozen=True)
class Backoff:
    """Delays between reconnect attempts.

    Attempt ``n`` (1-based) waits a uniformly random time between 0 and
    ``min(maximum, initial * multiplier ** (n - 1))`` ("full jitter"), so
    many clients cut off together do not reconnect together.  Retrying stops
    after ``max_attempts`` attempts or ``max_elapsed`` seconds, if set.

    The attempt count starts again from 1 only once a connection has stayed
    up for ``reset_after`` seconds: one that fails sooner goes on counting,
    so a flapping link or a broker that drops us right after recovery is
    retried with growing delays, not in a loop.  When recovery fails the
    same way (the same reply from the broker, the same step timing out)
    ``max_same_failures`` times in a row, it stops with
    :class:`~aiorabbit.RecoveryFailed`: retrying would only fail again.
    Lost sockets and refused connections never count as the same failure
    (a broker that is down is waited for).
    """

    initial: float = 0.5
    maximum: float = 30.0
    multiplier: float = 2.0
    max_attempts: int | None = None
    max_elapsed: float | None = None
    reset_after: float = 10.0
    max_same_failures: int | None = 5

    def __post_init__(self) -> None:
        if self.initial < 0 or self.maximum < self.initial:
            raise InvalidArgument("backoff needs 0 <= initial <= maximum")
        if self.multiplier < 1:
            raise InvalidArgument("backoff multiplier must be >= 1")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise InvalidArgument("max_attempts must be at least 1")
        if self.max_elapsed is not None and self.max_elapsed < 0:
            raise InvalidArgument("max_elapsed must be >= 0")
        if self.reset_after < 0:
            raise InvalidArgument("reset_after must be >= 0")
        if self.max_same_failures is not None and self.max_same_failures < 1:
            raise InvalidArgument("max_same_failures must be at least 1")

    def ceiling(self, attempt: int) -> float:
        """The longest delay after failed attempt number ``attempt``."""
        if attempt < 1:
            raise InvalidArgument("attempts are numbered from 1")
        # Cap the exponent: past the maximum it only risks float overflow.
        exponent = min(attempt - 1, 1000)
        try:
            return min(self.maximum, self.initial * self.multiplier**exponent)
        except OverflowError:
            return self.maximum

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """How long to wait after failed attempt number ``attempt``."""
        return rand() * self.ceiling(attempt)

    def exhausted(self, attempts: int, elapsed: float) -> bool:
        """True once ``attempts`` failed attempts over ``elapsed`` seconds
        use up the budget."""
        if self.max_attempts is not None and attempts >= self.max_attempts:
            return True
        return self.max_elapsed is not None and elapsed >= self.max_elapsed


def is_recoverable(exc: BaseException) -> bool:
    """Whether reconnecting after ``exc`` can help.

    Yes for a lost socket, a heartbeat timeout, an unreachable broker and a
    server close with a code in :data:`RECOVERABLE_REPLY_CODES`; no for
    refused credentials, an unknown vhost, TLS verification failures,
    protocol errors and anything that is not an :class:`AMQPError`.
    """
    if not isinstance(exc, AMQPError):
        return False
    if isinstance(exc, ConnectionFailed):
        return exc.retryable
    if isinstance(exc, ConnectionLost):
        return True
    if isinstance(exc, ProtocolViolation):
        return False  # the broker broke the protocol: it would again
    if isinstance(exc, ConnectionClosed):
        return exc.reply_code in RECOVERABLE_REPLY_CODES
    return False


def failure_signature(exc: BaseException) -> tuple[object, ...] | None:
    """What makes two recovery failures "the same": the error class with
    the broker's reply, or the timed-out step.  ``None`` for a lost or
    refused connection, which says nothing about the next try."""
    if isinstance(exc, (ConnectionLost, ConnectionFailed)):
        return None
    if isinstance(exc, (ConnectionClosed, ChannelClosed)):
        return (type(exc).__name__, exc.reply_code, exc.reply_text)
    if isinstance(exc, (TimeoutError, asyncio.TimeoutError, AMQPError)):
        return (type(exc).__name__, str(exc))
    return None
