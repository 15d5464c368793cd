"""The aiorabbit exception tree.

Every error a public call raises derives from :class:`AMQPError`.  Reply codes
the broker sends in ``channel.close`` / ``connection.close`` map to classes
(:func:`channel_error` / :func:`connection_error`), so callers can catch
``aiorabbit.NotFound`` rather than comparing numbers.  Transport failures
(``OSError``, ``ssl.SSLError``, timeouts) are translated once, in the
connection layer, into :class:`ConnectionLost` / :class:`AMQPConnectionError`.

This module is pure: the sans-I/O codec imports it too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar, TypeVar

if TYPE_CHECKING:
    from .message import IncomingMessage, ReturnedMessage

__all__ = [
    "AMQPError",
    "InvalidArgument",
    "ProtocolError",
    "FrameError",
    "ProtocolVersionMismatch",
    "BodyTooLarge",
    "AMQPConnectionError",
    "ConnectionFailed",
    "AuthenticationError",
    "LoginRefused",
    "ConnectionClosed",
    "ConnectionLost",
    "HeartbeatTimeout",
    "ProtocolViolation",
    "ConnectionForced",
    "InvalidPath",
    "FrameErrorReply",
    "SyntaxErrorReply",
    "CommandInvalid",
    "ChannelErrorReply",
    "UnexpectedFrame",
    "ResourceError",
    "NotAllowed",
    "NotImplementedReply",
    "InternalError",
    "ChannelClosed",
    "ContentTooLarge",
    "NoRoute",
    "NoConsumers",
    "AccessRefused",
    "NotFound",
    "ResourceLocked",
    "PreconditionFailed",
    "ChannelExhausted",
    "OperationTimeout",
    "DeprecatedFeature",
    "PublishNacked",
    "PublishTimeout",
    "MessageReturned",
    "ConsumerCancelled",
    "MessageAlreadySettled",
    "RecoveryTimeout",
    "RecoveryFailed",
    "TransactionLost",
    "RpcTimeout",
    "RemoteError",
    "NotRunning",
    "StartupTimeout",
    "channel_error",
    "connection_error",
]


class AMQPError(Exception):
    """Base class of every aiorabbit error."""


class InvalidArgument(AMQPError, ValueError):
    """A value given to aiorabbit cannot be sent: a name too long, an
    unencodable header, an unknown URL option.  Nothing was sent."""


class ProtocolError(AMQPError):
    """The peer broke the AMQP protocol (unexpected method, bad state)."""


class FrameError(ProtocolError):
    """A frame could not be parsed: bad frame-end octet, unknown frame type,
    a truncated or oversized frame, an undecodable field."""


class ProtocolVersionMismatch(FrameError):
    """The server rejected our protocol header and answered with the one it
    speaks (``version``, eight bytes ``AMQP`` + id + major, minor,
    revision): it does not accept an AMQP 0-9-1 connection from us.
    Retrying cannot help."""

    def __init__(self, version: bytes) -> None:
        self.version = version
        tail = version[4:8]
        shown = (
            f"protocol id {tail[0]}, version {tail[1]}-{tail[2]}-{tail[3]}" if len(tail) == 4 else "truncated"
        )
        super().__init__(
            f"protocol version mismatch: the server rejected the AMQP 0-9-1 protocol header and "
            f"answered with {version!r} ({shown})"
        )


class BodyTooLarge(ProtocolError):
    """An incoming message declared a body larger than the connection's
    ``max_body_size``; the connection is closed before any of it is
    buffered (raise ``max_body_size``, or keep such messages out of the
    queue)."""


# --------------------------------------------------------------------------
# connection level


class AMQPConnectionError(AMQPError):
    """Base of every error that concerns the whole connection."""


class ConnectionFailed(AMQPConnectionError):
    """The TCP/TLS connection or the AMQP handshake could not be completed
    (host unreachable, refused, timed out, TLS verification failed).

    ``retryable`` is False where trying again cannot help (a certificate
    that does not verify, a TLS context that cannot be built).
    """

    def __init__(self, *args: object, retryable: bool = True) -> None:
        super().__init__(*args)
        self.retryable = retryable


class AuthenticationError(ConnectionFailed):
    """The broker refused the credentials (ACCESS_REFUSED during login)."""

    def __init__(self, *args: object) -> None:
        super().__init__(*args, retryable=False)


class ConnectionClosed(AMQPConnectionError):
    """The connection is closed; ``reply_code`` / ``reply_text`` say why.

    Raised in every pending call, iterator and confirm when the connection
    closes, and by any call made on a closed connection.
    """

    reply_code_default: ClassVar[int] = 0
    #: True when this client closed the connection (``close()``).
    by_client: bool = False

    def __init__(self, reply_code: int | None = None, reply_text: str = "") -> None:
        self.reply_code: int = (
            self.reply_code_default if reply_code is None else reply_code
        )
        self.reply_text: str = reply_text
        super().__init__(self.reply_code, reply_text)

    def __str__(self) -> str:
        return f"({self.reply_code}) {self.reply_text or _summary(type(self))}"


class ConnectionLost(ConnectionClosed):
    """The socket closed or failed without an AMQP close handshake."""


class HeartbeatTimeout(ConnectionLost):
    """Nothing was received from the broker for two heartbeat intervals."""


class ProtocolViolation(ConnectionClosed):
    """The broker broke the protocol (a malformed or unexpected frame, a
    body over ``max_body_size``): the client closed the connection with
    ``reply_code`` (501 or 505).  Reconnecting would meet the same frames,
    so recovery does not retry it; ``__cause__`` is the
    :class:`ProtocolError` found."""


class ConnectionForced(ConnectionClosed):
    """320 CONNECTION_FORCED: an operator or the broker closed the connection."""

    reply_code_default = 320


class InvalidPath(ConnectionClosed):
    """402 INVALID_PATH: the virtual host name is invalid."""

    reply_code_default = 402


class FrameErrorReply(ConnectionClosed):
    """501 FRAME_ERROR: the broker could not parse a frame we sent."""

    reply_code_default = 501


class SyntaxErrorReply(ConnectionClosed):
    """502 SYNTAX_ERROR: the broker found an illegal field value."""

    reply_code_default = 502


class CommandInvalid(ConnectionClosed):
    """503 COMMAND_INVALID: a method was not allowed in the current state."""

    reply_code_default = 503


class ChannelErrorReply(ConnectionClosed):
    """504 CHANNEL_ERROR: a frame was sent on a channel that is not open."""

    reply_code_default = 504


class UnexpectedFrame(ConnectionClosed):
    """505 UNEXPECTED_FRAME: the broker got a frame it did not expect."""

    reply_code_default = 505


class ResourceError(ConnectionClosed):
    """506 RESOURCE_ERROR: the broker lacks resources (e.g. channel_max)."""

    reply_code_default = 506


class NotAllowed(ConnectionClosed):
    """530 NOT_ALLOWED: for example an unknown or forbidden virtual host."""

    reply_code_default = 530


class NotImplementedReply(ConnectionClosed):
    """540 NOT_IMPLEMENTED: the broker does not implement the method."""

    reply_code_default = 540


class InternalError(ConnectionClosed):
    """541 INTERNAL_ERROR: the broker hit an internal error."""

    reply_code_default = 541


# --------------------------------------------------------------------------
# channel level


class ChannelClosed(AMQPError):
    """The channel is closed.

    The call whose method made the broker close the channel raises the
    specific subclass (``NotFound``, ``PreconditionFailed``...); later calls
    on that channel raise a plain ``ChannelClosed`` whose ``cause`` is it.
    """

    reply_code_default: ClassVar[int] = 0
    #: True when this client closed the channel (``close()``).
    by_client: bool = False

    def __init__(
        self,
        reply_code: int | None = None,
        reply_text: str = "",
        *,
        cause: BaseException | None = None,
    ) -> None:
        self.reply_code: int = (
            self.reply_code_default if reply_code is None else reply_code
        )
        self.reply_text: str = reply_text
        self.cause: BaseException | None = cause
        super().__init__(self.reply_code, reply_text)

    def __str__(self) -> str:
        text = f"({self.reply_code}) {self.reply_text or _summary(type(self))}"
        if self.cause is not None and self.cause is not self:
            text += f" [cause: {self.cause!r}]"
        return text


class ContentTooLarge(ChannelClosed):
    """311 CONTENT_TOO_LARGE."""

    reply_code_default = 311


class NoRoute(ChannelClosed):
    """312 NO_ROUTE."""

    reply_code_default = 312


class NoConsumers(ChannelClosed):
    """313 NO_CONSUMERS."""

    reply_code_default = 313


class AccessRefused(ChannelClosed):
    """403 ACCESS_REFUSED: the user lacks a permission for the resource."""

    reply_code_default = 403


class NotFound(ChannelClosed):
    """404 NOT_FOUND: the exchange or queue does not exist."""

    reply_code_default = 404


class ResourceLocked(ChannelClosed):
    """405 RESOURCE_LOCKED: for example another connection's exclusive queue."""

    reply_code_default = 405


class PreconditionFailed(ChannelClosed):
    """406 PRECONDITION_FAILED: for example a redeclare with other arguments."""

    reply_code_default = 406


class ChannelExhausted(AMQPError):
    """Every channel number up to the negotiated ``channel_max`` is in use."""


class OperationTimeout(AMQPError, TimeoutError):
    """A synchronous channel method got no reply within its timeout
    (``call_timeout``, or the call's ``timeout`` argument).  The channel
    it was sent on is closed, since a late reply would be taken for the
    answer to the next call; later calls on it raise :class:`ChannelClosed`
    (a robust channel opens a new one)."""


class DeprecatedFeature(AMQPError):
    """The broker refused a deprecated feature it no longer permits.

    RabbitMQ 4.3 denies by default declaring a queue that is neither
    durable nor exclusive (``transient_nonexcl_queues``) and the
    ``x-queue-master-locator`` argument (``queue_master_locator``); it closes
    the connection with 541 INTERNAL_ERROR.  ``feature`` names the feature.
    Retrying cannot help: change the call (declare the queue durable or
    exclusive, drop the argument) or permit the feature in the broker's
    configuration.  The refusal also is a :class:`ConnectionClosed` (or a
    :class:`ChannelClosed`), with the broker's reply code and text.
    """

    feature: str


class _DeprecatedFeatureClosed(DeprecatedFeature, ConnectionClosed):
    """A deprecated feature refused with ``connection.close``."""

    def __init__(self, reply_code: int | None = None, reply_text: str = "", *, feature: str = "") -> None:
        ConnectionClosed.__init__(self, reply_code, reply_text)
        self.feature = feature


class _DeprecatedFeatureChannelClosed(DeprecatedFeature, ChannelClosed):
    """A deprecated feature refused with ``channel.close``."""

    def __init__(self, reply_code: int | None = None, reply_text: str = "", *, feature: str = "") -> None:
        ChannelClosed.__init__(self, reply_code, reply_text)
        self.feature = feature


# --------------------------------------------------------------------------
# publishing and consuming


class PublishNacked(AMQPError):
    """The broker answered a confirmed publish with ``basic.nack``."""

    def __init__(self, delivery_tag: int) -> None:
        self.delivery_tag = delivery_tag
        super().__init__(f"broker nacked publish #{delivery_tag}")


class PublishTimeout(AMQPError, TimeoutError):
    """A :class:`~aiorabbit.Publisher` publish was not confirmed within the
    publisher's ``timeout`` (waiting for recovery included): the broker may
    have it or not, so publishing it again may make a duplicate, with the
    same ``message_id``.  A quorum queue without a majority of its nodes
    answers neither ack nor nack, so this is what a publish to it raises."""

    def __init__(self, message_id: str, timeout: float) -> None:
        self.message_id = message_id
        self.timeout = timeout
        super().__init__(f"message {message_id} was not confirmed within {timeout:g} s")


class MessageReturned(AMQPError):
    """A mandatory publish could not be routed; ``message`` is what came back."""

    def __init__(self, message: ReturnedMessage) -> None:
        self.message = message
        super().__init__(
            f"message returned ({message.reply_code} {message.reply_text}) "
            f"exchange={message.exchange!r} routing_key={message.routing_key!r}"
        )


class ConsumerCancelled(AMQPError):
    """The broker cancelled the consumer (for example, its queue was deleted)."""

    def __init__(self, consumer_tag: str) -> None:
        self.consumer_tag = consumer_tag
        super().__init__(f"consumer {consumer_tag!r} was cancelled by the broker")


class MessageAlreadySettled(AMQPError):
    """A message was acked, nacked or rejected twice, or after an earlier
    ``multiple=True`` settle covered it.  (Settling after the channel closed
    raises :class:`ChannelClosed`: its delivery tag would mean nothing, or
    another message, on any other channel.)"""


class RecoveryFailed(AMQPConnectionError):
    """Recovery gave up: a step failed the same way after every reconnect
    (``__cause__`` is the last failure), so trying again would only storm
    the broker."""


class TransactionLost(AMQPError):
    """A robust channel's transaction was cut off by a lost connection or
    channel: the broker discarded its publishes and acks (``tx_commit``
    raises it; publish again in the new transaction)."""


class RecoveryTimeout(AMQPConnectionError):
    """A call on a recovering connection (:func:`aiorabbit.connect_robust`)
    waited ``wait_timeout`` seconds for the connection to come back."""


# -- raised by the helpers (RPC, FastAPI) ---------------------------------


class RpcTimeout(AMQPError, TimeoutError):
    """No reply came within the call's timeout.

    The request may still be processed (or be processing): a reply that
    arrives later is dropped.  Also raised when the channel could not be
    opened (or the connection recover) within the timeout.
    """

    def __init__(self, timeout: float, correlation_id: str | None = None) -> None:
        self.timeout = timeout
        #: The call's correlation id (``None`` if the request was not sent).
        self.correlation_id = correlation_id
        text = f"no reply within {timeout:g} s"
        super().__init__(text if correlation_id is None else f"{text} (correlation_id={correlation_id})")


class RemoteError(AMQPError):
    """An RPC server's handler raised: ``error_type`` is the name of its
    exception's class, ``message`` its text, ``reply`` the error reply."""

    def __init__(self, error_type: str, message: str, reply: IncomingMessage) -> None:
        self.error_type = error_type
        self.message = message
        self.reply = reply
        super().__init__(f"{error_type}: {message}" if message else error_type)


class NotRunning(AMQPError):
    """The :class:`aiorabbit.fastapi.RabbitMQ` is not running: it is used before its lifespan
    started it, after it stopped, or while it stops."""


class StartupTimeout(AMQPConnectionError):
    """Startup (connecting, declaring, starting the consumers) took longer
    than ``startup_timeout``; nothing was left running."""


_CHANNEL_ERRORS: dict[int, type[ChannelClosed]] = {
    cls.reply_code_default: cls
    for cls in (
        ContentTooLarge,
        NoRoute,
        NoConsumers,
        AccessRefused,
        NotFound,
        ResourceLocked,
        PreconditionFailed,
    )
}

_CONNECTION_ERRORS: dict[int, type[ConnectionClosed]] = {
    cls.reply_code_default: cls
    for cls in (
        ConnectionForced,
        InvalidPath,
        FrameErrorReply,
        SyntaxErrorReply,
        CommandInvalid,
        ChannelErrorReply,
        UnexpectedFrame,
        ResourceError,
        NotAllowed,
        NotImplementedReply,
        InternalError,
    )
}


def _summary(cls: type) -> str:
    """The first sentence of an error class's docstring: what a reply
    without a text means (an error never reads as a bare code)."""
    doc = (cls.__doc__ or cls.__name__).strip()
    return doc.split(".", 1)[0].replace("\n", " ").replace("    ", "")


def deprecated_feature(reply_text: str) -> str | None:
    """The feature named by RabbitMQ's refusal of a deprecated feature
    (``Feature `global_qos` is deprecated...``), else ``None``."""
    if "deprecated" not in reply_text.lower():
        return None
    start = reply_text.find("`")
    end = reply_text.find("`", start + 1)
    if start < 0 or end < 0:
        return None
    return reply_text[start + 1 : end] or None


_Closed = TypeVar("_Closed", ConnectionClosed, ChannelClosed)


def closed_by_client(exc: _Closed) -> _Closed:
    """``exc``, marked as the close this client asked for (``close()``):
    consumers then end their iteration cleanly instead of raising."""
    exc.by_client = True
    return exc


def channel_error(reply_code: int, reply_text: str) -> ChannelClosed:
    """The exception for a ``channel.close`` carrying ``reply_code``."""
    feature = deprecated_feature(reply_text)
    if feature is not None:
        return _DeprecatedFeatureChannelClosed(reply_code, reply_text, feature=feature)
    cls = _CHANNEL_ERRORS.get(reply_code, ChannelClosed)
    return cls(reply_code, reply_text)


def connection_error(reply_code: int, reply_text: str) -> ConnectionClosed:
    """The exception for a ``connection.close`` carrying ``reply_code``."""
    if reply_code == 403:
        # ACCESS_REFUSED on the connection means a failed login.
        return LoginRefused(reply_code, reply_text)
    feature = deprecated_feature(reply_text)
    if feature is not None:
        return _DeprecatedFeatureClosed(reply_code, reply_text, feature=feature)
    cls = _CONNECTION_ERRORS.get(reply_code, ConnectionClosed)
    return cls(reply_code, reply_text)


class LoginRefused(AuthenticationError, ConnectionClosed):
    """The broker refused the login with 403 ACCESS_REFUSED (a wrong user
    name or password, or a user without access): both an
    :class:`AuthenticationError` and a :class:`ConnectionClosed`, never
    retried."""

    reply_code_default = 403

    def __init__(self, reply_code: int | None = None, reply_text: str = "") -> None:
        ConnectionClosed.__init__(self, reply_code, reply_text)
        self.retryable = False
