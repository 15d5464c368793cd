"""URL and keyword parsing (no broker traffic)."""

from __future__ import annotations

import ssl

import pytest

import aiorabbit
from aiorabbit import ConnectionParameters, InvalidArgument

pytestmark = pytest.mark.broker_free


def test_defaults_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AMQP_URL", raising=False)
    p = ConnectionParameters.from_url()
    assert (p.host, p.port, p.username, p.password, p.virtual_host) == (
        "localhost", 5672, "guest", "guest", "/",
    )
    monkeypatch.setenv("AMQP_URL", "amqp://u:p@h.example:1234/v")
    p = ConnectionParameters.from_url()
    assert (p.host, p.port, p.username, p.password, p.virtual_host) == ("h.example", 1234, "u", "p", "v")


def test_percent_decoding() -> None:
    p = ConnectionParameters.from_url("amqp://us%40er:p%3Aa%2Fss@rabbit/%2Fprod%2Fx")
    assert p.username == "us@er"
    assert p.password == "p:a/ss"
    assert p.virtual_host == "/prod/x"


def test_empty_vhost_is_default() -> None:
    assert ConnectionParameters.from_url("amqp://h").virtual_host == "/"
    assert ConnectionParameters.from_url("amqp://h/").virtual_host == "/"
    assert ConnectionParameters.from_url("amqp://h/%2F").virtual_host == "/"


def test_query_options_and_aliases() -> None:
    p = ConnectionParameters.from_url(
        "amqp://h/?heartbeat=15&channel_max=50&frame_max=8192&connection_attempts=3"
        "&retry_delay=0.5&connection_timeout=2.5&locale=de_DE&auth_mechanism=amqplain"
        "&name=svc-1"
    )
    assert p.heartbeat == 15
    assert p.channel_max == 50
    assert p.frame_max == 8192
    assert p.connection_attempts == 3
    assert p.retry_delay == 0.5
    assert p.connection_timeout == 2.5
    assert p.locale == "de_DE"
    assert p.auth_mechanism == "AMQPLAIN"
    assert p.name == "svc-1"
    q = ConnectionParameters.from_url(
        "amqp://h/?heartbeat_interval=7&socket_timeout=3&connection_name=n"
    )
    assert (q.heartbeat, q.connection_timeout, q.name) == (7, 3.0, "n")


def test_tls_options() -> None:
    p = ConnectionParameters.from_url(
        "amqps://h/?cafile=/ca.pem&certfile=/c.pem&keyfile=/k.pem&verify=verify_none"
        "&server_name_indication=broker.example&auth_mechanism=EXTERNAL"
    )
    assert p.ssl and p.port == 5671
    assert (p.cafile, p.certfile, p.keyfile) == ("/ca.pem", "/c.pem", "/k.pem")
    assert p.verify is False
    assert p.server_hostname == "broker.example"
    assert p.auth_mechanism == "EXTERNAL"
    assert ConnectionParameters.from_url("amqps://h").verify is True


def test_ssl_context_verifies_by_default() -> None:
    context = ConnectionParameters.from_url("amqps://h").make_ssl_context()
    assert context is not None
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    relaxed = ConnectionParameters.from_url("amqps://h?verify=false").make_ssl_context()
    assert relaxed is not None and relaxed.verify_mode == ssl.CERT_NONE
    assert ConnectionParameters.from_url("amqp://h").make_ssl_context() is None
    mine = ssl.create_default_context()
    assert ConnectionParameters.from_url("amqps://h", ssl_context=mine).make_ssl_context() is mine


def test_keywords_override_url() -> None:
    p = ConnectionParameters.from_url("amqp://h/?heartbeat=5", heartbeat=9, name="kw")
    assert p.heartbeat == 9 and p.name == "kw"


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("amqp://h/?hartbeat=5", "'hartbeat'"),
        ("amqp://h/?heartbeat=soon", "'heartbeat'"),
        ("amqp://h/?verify=maybe", "'verify'"),
        ("amqp://h/?frame_max=100", "frame_max"),
        ("amqp://h/?channel_max=70000", "channel_max"),
        ("amqp://h/?auth_mechanism=KERBEROS", "auth_mechanism"),
        ("http://h/", "scheme"),
        ("amqp://h:notaport/", "malformed"),
    ],
)
def test_bad_options_name_the_option(url: str, needle: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        ConnectionParameters.from_url(url)
    assert needle in str(info.value)


def test_unknown_keyword() -> None:
    with pytest.raises(InvalidArgument, match="'heartbeet'"):
        aiorabbit.connect("amqp://h", heartbeet=3)


def test_password_never_in_repr() -> None:
    p = ConnectionParameters.from_url("amqp://user:s3cr3t-pw@h/")
    assert "s3cr3t-pw" not in repr(p)
    assert "s3cr3t-pw" not in p.url
    assert "user" in p.url
