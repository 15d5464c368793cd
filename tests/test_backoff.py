"""Backoff and retry classification: pure unit tests, no event loop."""

from __future__ import annotations

import math

import pytest

from aiorabbit import (
    AuthenticationError,
    Backoff,
    ChannelClosed,
    ConnectionClosed,
    ConnectionFailed,
    ConnectionLost,
    HeartbeatTimeout,
    InvalidArgument,
    NotFound,
    connection_error,
)
from aiorabbit.backoff import RECOVERABLE_REPLY_CODES, is_recoverable

pytestmark = pytest.mark.broker_free

# -- ceiling -----------------------------------------------------------------


def test_ceiling_grows_exponentially_then_caps() -> None:
    b = Backoff(initial=0.5, maximum=4.0, multiplier=2.0)
    assert [b.ceiling(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_ceiling_other_multiplier() -> None:
    b = Backoff(initial=1.0, maximum=100.0, multiplier=3.0)
    assert [b.ceiling(n) for n in range(1, 6)] == [1.0, 3.0, 9.0, 27.0, 81.0]
    assert b.ceiling(6) == 100.0


def test_ceiling_multiplier_one_is_constant() -> None:
    b = Backoff(initial=2.0, maximum=10.0, multiplier=1.0)
    assert {b.ceiling(n) for n in range(1, 50)} == {2.0}


def test_ceiling_zero_initial_never_waits() -> None:
    b = Backoff(initial=0.0, maximum=0.0)
    assert b.ceiling(1) == 0.0 and b.ceiling(10**6) == 0.0
    assert b.delay(5, rand=lambda: 1.0) == 0.0


def test_ceiling_huge_attempt_numbers_do_not_overflow() -> None:
    b = Backoff(initial=0.5, maximum=30.0, multiplier=2.0)
    for attempt in (1_000, 1_025, 10_000, 10**9, 10**30):
        assert b.ceiling(attempt) == 30.0
    # A multiplier so large that even the capped exponent overflows a float.
    big = Backoff(initial=1.0, maximum=60.0, multiplier=1e300)
    assert big.ceiling(3) == 60.0
    assert big.ceiling(10**12) == 60.0
    assert math.isfinite(big.delay(10**12, rand=lambda: 1.0))


def test_ceiling_attempts_are_numbered_from_one() -> None:
    b = Backoff()
    with pytest.raises(InvalidArgument):
        b.ceiling(0)
    with pytest.raises(InvalidArgument):
        b.delay(-1, rand=lambda: 0.5)


# -- delay (full jitter) -------------------------------------------------------


def test_delay_full_jitter_bounds() -> None:
    b = Backoff(initial=1.0, maximum=8.0)
    for attempt, ceiling in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)):
        assert b.delay(attempt, rand=lambda: 0.0) == 0.0
        assert b.delay(attempt, rand=lambda: 0.5) == ceiling / 2
        assert b.delay(attempt, rand=lambda: 1.0) == ceiling


def test_delay_default_rand_stays_within_ceiling() -> None:
    b = Backoff(initial=0.1, maximum=1.0)
    delays = [b.delay(3) for _ in range(500)]
    assert all(0.0 <= d <= b.ceiling(3) for d in delays)
    assert len(set(delays)) > 1  # jittered, not a fixed delay


def test_defaults() -> None:
    b = Backoff()
    assert (b.initial, b.maximum, b.multiplier) == (0.5, 30.0, 2.0)
    assert b.max_attempts is None and b.max_elapsed is None
    assert not b.exhausted(10**9, 1e12)  # retries forever by default


# -- exhausted -------------------------------------------------------------------


def test_exhausted_by_attempts() -> None:
    b = Backoff(max_attempts=3)
    assert not b.exhausted(1, 0.0)
    assert not b.exhausted(2, 1e9)
    assert b.exhausted(3, 0.0)
    assert b.exhausted(4, 0.0)


def test_exhausted_by_elapsed() -> None:
    b = Backoff(max_elapsed=10.0)
    assert not b.exhausted(1000, 9.99)
    assert b.exhausted(1, 10.0)
    assert b.exhausted(1, 11.0)


def test_exhausted_by_whichever_comes_first() -> None:
    b = Backoff(max_attempts=5, max_elapsed=2.0)
    assert not b.exhausted(4, 1.9)
    assert b.exhausted(5, 0.1)
    assert b.exhausted(1, 2.0)


def test_max_elapsed_zero_means_one_try() -> None:
    assert Backoff(max_elapsed=0.0).exhausted(1, 0.0)


# -- validation ------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial": -0.1},
        {"initial": 5.0, "maximum": 1.0},
        {"maximum": -1.0, "initial": 0.0},
        {"multiplier": 0.5},
        {"multiplier": 0.0},
        {"max_attempts": 0},
        {"max_attempts": -3},
        {"max_elapsed": -1.0},
    ],
)
def test_invalid_arguments(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidArgument):
        Backoff(**kwargs)  # type: ignore[arg-type]


def test_invalid_argument_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        Backoff(initial=-1)


def test_valid_edge_values() -> None:
    Backoff(initial=0.0, maximum=0.0, multiplier=1.0, max_attempts=1, max_elapsed=0.0)
    Backoff(initial=3.0, maximum=3.0)


def test_frozen() -> None:
    b = Backoff()
    with pytest.raises(AttributeError):
        b.initial = 1.0  # type: ignore[misc]


# -- is_recoverable ------------------------------------------------------------------


def test_lost_socket_and_heartbeat_are_recoverable() -> None:
    assert is_recoverable(ConnectionLost(0, "reset by peer"))
    assert is_recoverable(HeartbeatTimeout(0, "no frame for 2s"))


def test_connection_failed_follows_retryable() -> None:
    assert is_recoverable(ConnectionFailed("refused"))
    assert is_recoverable(ConnectionFailed("timed out", retryable=True))
    assert not is_recoverable(ConnectionFailed("certificate did not verify", retryable=False))


def test_authentication_error_is_fatal() -> None:
    assert not is_recoverable(AuthenticationError("bad login"))
    # A login refused by connection.close(403) is both kinds at once.
    refused = connection_error(403, "ACCESS_REFUSED - Login was refused")
    assert isinstance(refused, AuthenticationError) and isinstance(refused, ConnectionClosed)
    assert not is_recoverable(refused)


@pytest.mark.parametrize("code", [320, 541, 506])
def test_recoverable_server_close_codes(code: int) -> None:
    assert code in RECOVERABLE_REPLY_CODES
    assert is_recoverable(ConnectionClosed(code, "server closed"))
    assert is_recoverable(connection_error(code, "server closed"))


@pytest.mark.parametrize("code", [403, 530, 501, 502, 503, 504, 505, 540, 402, 200, 0])
def test_fatal_server_close_codes(code: int) -> None:
    assert code not in RECOVERABLE_REPLY_CODES
    assert not is_recoverable(ConnectionClosed(code, "server closed"))
    assert not is_recoverable(connection_error(code, "server closed"))


def test_channel_errors_and_foreign_exceptions_are_not_recoverable() -> None:
    assert not is_recoverable(ChannelClosed(406, "PRECONDITION_FAILED"))
    assert not is_recoverable(NotFound(404, "no queue"))
    # A channel closed because its connection was lost is still a channel error.
    assert not is_recoverable(ChannelClosed(0, "closed", cause=ConnectionLost(0, "gone")))
    assert not is_recoverable(ValueError("boom"))
    assert not is_recoverable(OSError("reset"))
    assert not is_recoverable(TimeoutError())
    assert not is_recoverable(InvalidArgument("bad"))
