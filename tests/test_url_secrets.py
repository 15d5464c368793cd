"""A URL's password never shows: not in an error, a log line or the CLI's
output (with or without ``--debug``), whatever the URL looks like, in
particular a password holding an unescaped ``/``, ``#``, ``?`` or ``@``."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import traceback

import pytest

from aiorabbit import ConnectionParameters, InvalidArgument, testing
from aiorabbit.parameters import redact_urls

SECRET = "s3cr3t-PW"

# URLs whose password is SECRET (or starts with it), each malformed in its way.
MALFORMED = [
    f"amqp://guest:{SECRET}/x@host/",  # "/" in the password: the port reads as SECRET
    f"amqp://guest:{SECRET}/x@host:5672/vhost",
    f"amqp://guest:{SECRET}?x@host/",  # "?"
    f"amqp://guest:{SECRET}#x@host/",  # "#"
    "amqp://guest:12345/s3cr3t-PW@host/",  # the port part is a number: no urllib error at all
    "amqp://guest:12?name=s3cr3t-PW@host/",  # ... and the rest a valid query option
    "amqp://guest:12?s3cr3t-PW@host/",
    "amqp://guest:12#s3cr3t-PW@host/",
    f"amqps://user:p@ss/{SECRET}@host/",  # "@" and "/"
    f"amqp://guest:{SECRET}\uff03@host/",  # a character NFKC normalization changes
    f"amqp://guest:{SECRET}@[::1/",  # unbalanced IPv6 brackets
    "amqp://guest:123456",  # the host left out: "123456" reads as the port
    f"amqp://guest:{SECRET}",
    f"//guest:{SECRET}/x@host/",  # no scheme
]


def _hidden(text: str) -> bool:
    return SECRET not in text and "123456" not in text and "12345/" not in text


@pytest.mark.parametrize("url", MALFORMED)
def test_a_malformed_url_is_an_invalid_argument_without_the_password(url: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        ConnectionParameters.from_url(url)
    exc = info.value
    message = str(exc)
    assert message.startswith("malformed AMQP URL"), message
    assert _hidden(message), message
    # nothing chained to it carries the password either (not even suppressed)
    assert exc.__cause__ is None and exc.__context__ is None
    assert _hidden("".join(traceback.format_exception(exc)))


def test_the_error_says_what_is_wrong() -> None:
    with pytest.raises(InvalidArgument) as info:
        ConnectionParameters.from_url(f"amqp://guest:{SECRET}/x@host/")
    assert str(info.value) == (
        "malformed AMQP URL amqp://guest:******@host/: the port is not a number; a password "
        "holding '/', '#', '?' or '@' must be percent-encoded (%2F, %23, %3F, %40), as must an "
        "'@' in the virtual host or an option"
    )
    for url, problem in [
        ("amqp://guest:12/x@host/", "an '@' comes after the '/', '?' or '#' that ends the host"),
        ("amqp://u:p@host:99999/", "the port is out of range"),
        ("amqp://u:p@[::1/", "the brackets of an IPv6 address do not match"),
        ("amqp://host/a@b", "percent-encoded"),
        ("amqp://h/?name=me@there", "percent-encoded"),
    ]:
        with pytest.raises(InvalidArgument, match="^malformed AMQP URL .*" + problem.replace("?", r"\?")):
            ConnectionParameters.from_url(url)


def test_percent_encoded_passwords_still_parse() -> None:
    params = ConnectionParameters.from_url("amqp://guest:s3%2Fcr%3F3t%23%40x@host/v%40h?name=a%40b")
    assert params.password == "s3/cr?3t#@x"
    assert (params.host, params.virtual_host, params.name) == ("host", "v@h", "a@b")
    assert ConnectionParameters.from_url("amqp://u:p@ss@host/").password == "p@ss"  # "@" in the netloc


@pytest.mark.parametrize(
    ("field", "value"), [("password", "pw\ud800"), ("username", "\udfff"), ("virtual_host", "/\ud800")]
)
def test_a_lone_surrogate_in_a_credential_is_an_invalid_argument(field: str, value: str) -> None:
    with pytest.raises(InvalidArgument, match=f"^{field} is not encodable as UTF-8") as info:
        ConnectionParameters(**{field: value})  # type: ignore[arg-type]
    assert "pw" not in str(info.value)


def test_a_password_that_is_not_a_str_is_not_quoted() -> None:
    with pytest.raises(InvalidArgument, match=r"^password must be a str, not bytes$"):
        ConnectionParameters(password=b"s3cr3t-PW")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"amqp://guest:{SECRET}/x@host/", "amqp://guest:******@host/"),
        (f"at amqp://guest:{SECRET}/x?y#z@host:5672/v now", "at amqp://guest:******@host:5672/v now"),
        (f"amqps://user:p@ss/{SECRET}@host/", "amqps://user:******@host/"),
        (f"'amqp://u:{SECRET}@h/' and amqp://v:{SECRET}@k", "'amqp://u:******@h/' and amqp://v:******@k"),
        (f"amqp://us/er:{SECRET}@h/", "amqp://us/er:******@h/"),
        ("amqp://host:5672/v and amqp://h", "amqp://host:5672/v and amqp://h"),
    ],
)
def test_redact_urls_masks_up_to_the_last_at(text: str, expected: str) -> None:
    assert redact_urls(text) == expected


@pytest.mark.parametrize("url", MALFORMED)
def test_broker_url_raises_a_typed_error_without_the_password(url: str) -> None:
    with pytest.raises(InvalidArgument) as info, testing.broker_url(url):
        pass  # pragma: no cover - never reached
    assert _hidden(str(info.value))
    assert _hidden("".join(traceback.format_exception(info.value)))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aiorabbit", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
        stdin=subprocess.DEVNULL,
        check=False,
    )


@pytest.mark.parametrize("url", MALFORMED)
@pytest.mark.parametrize("debug", [[], ["--debug"]], ids=["plain", "debug"])
def test_the_cli_never_prints_the_password_of_a_malformed_url(url: str, debug: list[str]) -> None:
    for result in (
        _cli(*debug, "--url", url, "publish", "-k", "q", "x"),
        _cli("consume", "q", *debug, env={"AMQP_URL": url}),  # from the environment
    ):
        output = result.stdout + result.stderr
        assert result.returncode == 2, output
        assert "aiorabbit: error: malformed AMQP URL" in result.stderr
        assert _hidden(output), output
        assert ("Traceback" in result.stderr) == bool(debug)


@pytest.mark.parametrize("debug", [[], ["--debug"]], ids=["plain", "debug"])
def test_the_cli_never_prints_the_password_when_connecting_fails(debug: list[str], amqp_url: str) -> None:
    unreachable = f"amqp://guest:{SECRET}@127.0.0.1:{_closed_port()}/%2F"
    refused = amqp_url.replace("guest:guest@", f"guest:{SECRET}@")
    assert SECRET in refused
    for url, code in [(unreachable, 3), (refused, 4)]:
        result = _cli(*debug, "--url", url, "declare", "queue", "q", "--connect-timeout", "5")
        output = result.stdout + result.stderr
        assert result.returncode == code, output
        assert SECRET not in output, output
        assert "guest:******@127.0.0.1" in output
