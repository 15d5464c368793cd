"""Connection parameters from an ``amqp://`` / ``amqps://`` URL and keywords."""

from __future__ import annotations

import dataclasses
import os
import re
import ssl
from collections.abc import Callable, Mapping
from ssl import SSLContext
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from .exceptions import InvalidArgument
from .observe import Observer

__all__ = ["ConnectionParameters", "DEFAULT_URL", "redact_urls"]

DEFAULT_URL = "amqp://guest:guest@localhost:5672/%2F"
_AUTH_MECHANISMS = ("PLAIN", "AMQPLAIN", "EXTERNAL")


@dataclasses.dataclass
class ConnectionParameters:
    """Everything needed to open a connection.

    Build one with :meth:`from_url`; every field can also be given to
    :func:`aiorabbit.connect` as a keyword argument.  The password is never
    shown by ``repr``.
    """

    host: str = "localhost"
    port: int = 5672
    username: str = "guest"
    password: str = dataclasses.field(default="guest", repr=False)
    virtual_host: str = "/"
    #: Heartbeat interval in seconds; ``None`` accepts the broker's proposal,
    #: 0 disables heartbeats.
    heartbeat: int | None = None
    channel_max: int = 2047
    frame_max: int = 131072
    #: How many times to try to connect (1 = once).
    connection_attempts: int = 1
    #: Seconds to wait between connection attempts.
    retry_delay: float = 2.0
    #: Seconds allowed for TCP connect, TLS and the AMQP handshake together.
    connection_timeout: float = 10.0
    locale: str = "en_US"
    auth_mechanism: str = "PLAIN"
    #: Client-provided connection name shown in the management UI.
    name: str | None = None
    ssl: bool = False
    #: An :class:`ssl.SSLContext` to use instead of one built from the fields below.
    ssl_context: SSLContext | None = dataclasses.field(default=None, repr=False)
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None
    #: Verify the server certificate and host name (the default).
    verify: bool = True
    #: Host name sent with SNI and checked against the certificate.
    server_hostname: str | None = None
    #: Extra client properties merged into those aiorabbit sends.
    client_properties: Mapping[str, Any] | None = None
    #: The largest incoming message body accepted, in bytes (RabbitMQ 3.x's
    #: own largest message size by default).  A larger one closes the
    #: connection with :class:`~aiorabbit.BodyTooLarge` before any of it is
    #: buffered.
    max_body_size: int = 128 * 1024 * 1024
    #: Seconds a synchronous channel method (a declare, a bind, ``basic.get``,
    #: a close...) waits for the broker's reply before it raises
    #: :class:`~aiorabbit.OperationTimeout`; ``None`` waits for ever.  Each
    #: method's ``timeout`` argument overrides it.
    call_timeout: float | None = 600.0
    #: An :class:`aiorabbit.observe.Observer` that sees this connection's
    #: events (default: the one :func:`aiorabbit.observe.install` set).
    observer: Observer | None = dataclasses.field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every field; raise :class:`InvalidArgument` naming a bad one."""
        _check_int("port", self.port, 1, 65535)
        if self.heartbeat is not None:
            _check_int("heartbeat", self.heartbeat, 0, 65535)
        _check_int("channel_max", self.channel_max, 0, 65535)
        _check_int("frame_max", self.frame_max, 0, 2**32 - 1)
        if self.frame_max and self.frame_max < 4096:
            raise InvalidArgument("frame_max must be 0 (no limit) or at least 4096")
        _check_int("connection_attempts", self.connection_attempts, 1, 2**31)
        _check_number("retry_delay", self.retry_delay)
        _check_number("connection_timeout", self.connection_timeout)
        if self.connection_timeout <= 0:
            raise InvalidArgument("connection_timeout must be greater than 0")
        mech = self.auth_mechanism.upper()
        if mech not in _AUTH_MECHANISMS:
            raise InvalidArgument(
                f"auth_mechanism {self.auth_mechanism!r} is not one of "
                f"{', '.join(_AUTH_MECHANISMS)}"
            )
        self.auth_mechanism = mech
        if self.ssl_context is not None:
            self.ssl = True
        if not self.ssl:
            given = [n for n in ("cafile", "certfile", "keyfile") if getattr(self, n)]
            if given:
                raise InvalidArgument(
                    f"{', '.join(given)} given without TLS: use an amqps:// URL or ssl=True"
                )
        _check_int("max_body_size", self.max_body_size, 0, 2**64 - 1)
        if self.call_timeout is not None:
            _check_number("call_timeout", self.call_timeout)
            if self.call_timeout <= 0:
                raise InvalidArgument("call_timeout must be greater than 0 (or None)")
        _check_text("username", self.username)
        _check_text("password", self.password, secret=True)
        _check_text("virtual_host", self.virtual_host)
        _check_text("locale", self.locale)
        if self.name is not None:
            _check_text("name", self.name)
        if len(self.virtual_host.encode()) > 255:
            raise InvalidArgument("virtual_host is longer than 255 bytes")
        if self.observer is not None and not isinstance(self.observer, Observer):
            raise InvalidArgument("observer must be an aiorabbit.observe.Observer")

    def __repr__(self) -> str:
        return (
            f"ConnectionParameters(url={self.url!r}, heartbeat={self.heartbeat}, "
            f"frame_max={self.frame_max}, channel_max={self.channel_max}, "
            f"name={self.name!r})"
        )

    @property
    def url(self) -> str:
        """The URL of these parameters with the password masked."""
        scheme = "amqps" if self.ssl else "amqp"
        vhost = self.virtual_host.replace("%", "%25").replace("/", "%2F")
        return f"{scheme}://{self.username}:******@{self.host}:{self.port}/{vhost}"

    def replace(self, **changes: Any) -> ConnectionParameters:
        """A copy with ``changes`` applied (and validated)."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise InvalidArgument(f"unknown connection option(s): {', '.join(sorted(unknown))}")
        return dataclasses.replace(self, **changes)

    def make_ssl_context(self) -> SSLContext | None:
        """The TLS context to connect with, or ``None`` for plain TCP."""
        if not self.ssl:
            return None
        if self.ssl_context is not None:
            return self.ssl_context
        context = ssl.create_default_context(cafile=self.cafile)
        if not self.verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if self.certfile:
            context.load_cert_chain(self.certfile, self.keyfile)
        return context

    @classmethod
    def from_url(cls, url: str | None = None, **overrides: Any) -> ConnectionParameters:
        """Parse ``url`` (default ``$AMQP_URL``, else :data:`DEFAULT_URL`).

        Query options: ``heartbeat`` (alias ``heartbeat_interval``),
        ``channel_max``, ``frame_max``, ``connection_attempts``,
        ``retry_delay``, ``connection_timeout`` (alias ``socket_timeout``),
        ``locale``, ``auth_mechanism``, ``name`` (alias ``connection_name``),
        ``cafile`` (alias ``ca_certs``), ``certfile``, ``keyfile``,
        ``verify`` (``verify_peer`` / ``verify_none`` or a boolean),
        ``server_name_indication`` (alias ``server_hostname``),
        ``max_body_size``, ``call_timeout``.  Keyword
        arguments override the URL.
        """
        if url is None:
            url = os.environ.get("AMQP_URL") or DEFAULT_URL
        if not isinstance(url, str):
            raise InvalidArgument(f"the URL must be a str, not {type(url).__name__}")
        # Never quote the URL or urllib's message: either may hold the password.
        problem = None
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            problem = _url_problem(str(exc))  # raised below, without this context
        if problem is None and "@" in _after_authority(url):
            problem = "an '@' comes after the '/', '?' or '#' that ends the host"
        if problem is not None:
            raise InvalidArgument(_malformed(url, problem))
        if parts.scheme not in ("amqp", "amqps"):
            raise InvalidArgument(
                f"URL scheme must be amqp or amqps, not {parts.scheme!r}"
            )
        tls = parts.scheme == "amqps"
        values: dict[str, Any] = {
            "host": unquote(parts.hostname or "localhost"),
            "port": port or (5671 if tls else 5672),
            "ssl": tls,
        }
        if parts.username is not None:
            values["username"] = unquote(parts.username)
        if parts.password is not None:
            values["password"] = unquote(parts.password)
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        values["virtual_host"] = unquote(path) if path else "/"
        for key, raw in parse_qsl(parts.query, keep_blank_values=True):
            name = _ALIASES.get(key, key)
            parser = _QUERY_OPTIONS.get(name)
            if parser is None:
                raise InvalidArgument(f"unknown URL option {key!r}")
            try:
                values[name] = parser(raw)
            except (TypeError, ValueError):
                raise InvalidArgument(f"malformed value {raw!r} for URL option {key!r}") from None
        for key, value in overrides.items():
            name = _ALIASES.get(key, key)
            if name not in _FIELD_NAMES:
                raise InvalidArgument(f"unknown connection option {key!r}")
            values[name] = value
        return cls(**values)


def _check_text(name: str, value: Any, *, secret: bool = False) -> None:
    """``value`` is a ``str`` that UTF-8 can encode (no lone surrogate); a
    ``secret`` is never quoted."""
    if not isinstance(value, str):
        shown = "" if secret else f" ({value!r})"
        raise InvalidArgument(f"{name} must be a str, not {type(value).__name__}{shown}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidArgument(
            f"{name} is not encodable as UTF-8: it holds the lone surrogate "
            f"U+{ord(value[exc.start]):04X} at index {exc.start}"
        ) from None


def _check_int(name: str, value: Any, low: int, high: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidArgument(f"{name} must be an integer from {low} to {high}, not {value!r}")


def _check_number(name: str, value: Any) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise InvalidArgument(f"{name} must be a non-negative number, not {value!r}")


def _bool(raw: str) -> bool:
    lowered = raw.lower()
    if lowered in ("1", "true", "yes", "on", "verify_peer", "cert_required"):
        return True
    if lowered in ("0", "false", "no", "off", "verify_none", "cert_none"):
        return False
    raise ValueError(raw)


_QUERY_OPTIONS: dict[str, Callable[[str], Any]] = {
    "heartbeat": int,
    "channel_max": int,
    "frame_max": int,
    "connection_attempts": int,
    "retry_delay": float,
    "connection_timeout": float,
    "locale": str,
    "auth_mechanism": str,
    "name": str,
    "cafile": str,
    "certfile": str,
    "keyfile": str,
    "verify": _bool,
    "server_hostname": str,
    "max_body_size": int,
    "call_timeout": float,
}
_ALIASES = {
    "heartbeat_interval": "heartbeat",
    "socket_timeout": "connection_timeout",
    "connection_name": "name",
    "ca_certs": "cafile",
    "cacertfile": "cafile",
    "server_name_indication": "server_hostname",
    "server_name": "server_hostname",
    "auth": "auth_mechanism",
}
_FIELD_NAMES = {f.name for f in dataclasses.fields(ConnectionParameters)}


# scheme://user:password@ -> scheme://user:******@, the password running to
# the LAST "@" before white space: a password holding an unescaped "/", "?"
# or "#" puts the end of the authority inside it, and no "@" may legally
# follow the host unescaped.
_CREDENTIALS = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:@\s]*):\S*@")

# [scheme:]//authority-and-the-rest
_AUTHORITY = re.compile(r"((?:[a-zA-Z][a-zA-Z0-9+.-]*:)?//)(.*)", re.DOTALL)
# host (a bracketed IPv6 address or a name), then :port, then the rest
_HOST_PORT = re.compile(r"(\[[^\]]*\]?|[^:/?#]*)(:[^/?#]*)?(.*)", re.DOTALL)

_PERCENT_ENCODE = (
    "a password holding '/', '#', '?' or '@' must be percent-encoded "
    "(%2F, %23, %3F, %40), as must an '@' in the virtual host or an option"
)


def redact_urls(text: str) -> str:
    """``text`` with the password of any URL in it masked (for messages
    that quote a URL the user gave): everything from the ``:`` after the
    user name up to the last ``@`` before white space."""
    return _CREDENTIALS.sub(r"\1:******@", text)


def _after_authority(url: str) -> str:
    """The path, query and fragment of ``url`` (what follows ``//host``)."""
    match = _AUTHORITY.match(url)
    if match is None:
        return ""
    rest = match.group(2)
    for index, char in enumerate(rest):
        if char in "/?#":
            return rest[index:]
    return ""


def _masked_url(url: str) -> str:
    """``url`` as an error message may show it, whatever it looks like: the
    user name, then the host and what follows the last ``@``.  Without any
    ``@`` the port is masked too (``amqp://user:password`` with the host
    left out reads as ``host:port``)."""
    match = _AUTHORITY.match(url)
    if match is None:
        return ""
    head, rest = match.groups()
    userinfo, at, after = rest.rpartition("@")
    if at:
        user, colon, _ = userinfo.partition(":")
        return f"{head}{user}:******@{after}" if colon else f"{head}******@{after}"
    host_port = _HOST_PORT.match(rest)
    assert host_port is not None  # every part is optional
    host, port, tail = host_port.groups()
    return f"{head}{host}{':******' if port else ''}{tail}"


def _url_problem(message: str) -> str:
    """What urllib's ``ValueError`` says is wrong, in words that do not
    quote the URL (urllib's own may: the port, the whole netloc)."""
    if message.startswith("Port could not be cast"):
        return "the port is not a number"
    if message.startswith("Port out of range"):
        return "the port is out of range (0-65535)"
    if "IPv6" in message:
        return "the brackets of an IPv6 address do not match"
    if "NFKC" in message:
        return "the user name, password or host holds characters that Unicode NFKC normalization changes"
    return "it cannot be parsed"


def _malformed(url: str, problem: str) -> str:
    """The message of a malformed URL: what is wrong, never the password."""
    shown = _masked_url(url)
    message = f"malformed AMQP URL {shown}: {problem}" if shown else f"malformed AMQP URL: {problem}"
    if "@" in _after_authority(url):
        message += f"; {_PERCENT_ENCODE}"
    return message
