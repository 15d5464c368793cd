"""Exit codes, and the translation of any exception into one line of stderr."""

from __future__ import annotations

import enum

from ..exceptions import (
    AuthenticationError,
    ChannelClosed,
    ConnectionClosed,
    ConnectionFailed,
    ConnectionForced,
    ConnectionLost,
    ConsumerCancelled,
    InvalidArgument,
    MessageReturned,
    PublishNacked,
)
from ..parameters import redact_urls as redact

__all__ = ["CliError", "ExitCode", "classify", "redact"]


class ExitCode(enum.IntEnum):
    """The exit status of the ``aiorabbit`` command."""

    OK = 0
    #: An unexpected error (a bug, or stdout closed early).
    ERROR = 1
    #: Bad usage or input: arguments, a malformed header, an unreadable file.
    USAGE = 2
    #: The broker cannot be reached: refused, DNS, timeout, TLS, connection lost.
    UNREACHABLE = 3
    #: Login refused, or no access to the virtual host.
    ACCESS = 4
    #: The broker refused the operation (NOT_FOUND, PRECONDITION_FAILED...).
    REFUSED = 5
    #: A publish was not confirmed: nacked, or returned as unroutable.
    UNCONFIRMED = 6
    #: Interrupted (Ctrl-C).
    INTERRUPTED = 130


EXIT_CODES_HELP = """\
exit codes:
  0    success
  1    unexpected error
  2    bad usage or input (arguments, malformed header, unreadable file)
  3    cannot connect to the broker, or the connection was lost
  4    login refused, or no access to the virtual host
  5    the broker refused the operation (NOT_FOUND, PRECONDITION_FAILED, ...)
  6    a publish was not confirmed (nacked, or returned as unroutable)
  130  interrupted (Ctrl-C; also SIGTERM, except for consume where it is a clean stop)"""


class CliError(Exception):
    """An error the command explains itself, with the exit code to use."""

    def __init__(self, message: str, code: ExitCode = ExitCode.USAGE) -> None:
        super().__init__(message)
        self.code = code


def classify(exc: BaseException) -> tuple[ExitCode, str]:
    """The exit code for ``exc`` and the message to print (already redacted)."""
    code, message = _classify(exc)
    return code, redact(message)


def _classify(exc: BaseException) -> tuple[ExitCode, str]:
    if isinstance(exc, CliError):
        return exc.code, str(exc)
    # Before ConnectionFailed and ConnectionClosed: a refused login is both.
    if isinstance(exc, AuthenticationError):
        return ExitCode.ACCESS, f"login refused: {exc}"
    if isinstance(exc, InvalidArgument):
        return ExitCode.USAGE, str(exc)
    if isinstance(exc, ConnectionFailed):
        return ExitCode.UNREACHABLE, str(exc)
    if isinstance(exc, (ConnectionLost, ConnectionForced)):
        return ExitCode.UNREACHABLE, f"connection lost: {exc}"
    if isinstance(exc, ConnectionClosed):
        return ExitCode.REFUSED, f"the broker closed the connection: {exc}"
    if isinstance(exc, (PublishNacked, MessageReturned)):
        return ExitCode.UNCONFIRMED, str(exc)
    if isinstance(exc, ChannelClosed):
        # A later call on a closed channel raises a plain ChannelClosed whose
        # cause is the broker's reply: that reply is the one worth showing.
        cause = exc.cause if isinstance(exc.cause, (ChannelClosed, ConnectionClosed)) else exc
        if cause is not exc:
            return _classify(cause)
        return ExitCode.REFUSED, exc.reply_text or str(exc)
    if isinstance(exc, ConsumerCancelled):
        return ExitCode.REFUSED, f"{exc} (was the queue deleted?)"
    if isinstance(exc, BrokenPipeError):
        return ExitCode.ERROR, ""  # stdout closed early (`| head`): nothing to say
    return ExitCode.ERROR, f"unexpected error: {type(exc).__name__}: {exc} (run with --debug for a traceback)"
