"""TLS and the PLAIN / AMQPLAIN / EXTERNAL mechanisms against a node of our own.

The shared broker has no TLS listener, so the module starts an extra node
(:mod:`tests.broker_node`) once, with a throwaway CA, a server certificate
for ``localhost`` / ``127.0.0.1``, ``rabbitmq_auth_mechanism_ssl`` and
``ssl_cert_login_from = common_name``: a client certificate whose CN is
:data:`CLIENT_CN` logs in as that user with EXTERNAL.  The certificates are
made with the ``openssl`` command (the ``cryptography`` package is not a test
dependency).
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import shutil
import ssl
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest

import aiorabbit
from aiorabbit import AuthenticationError, ConnectionFailed

from .broker_node import BrokerNode, TLSFiles, unavailable_reason

pytestmark = [pytest.mark.slow, pytest.mark.extra_node]  # extra broker nodes: tests/broker_node.py

CLIENT_CN = "aiorabbit-tls-client"
TIMEOUT = 10.0

_OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
"""


@dataclasses.dataclass
class TLSSetup:
    node: BrokerNode
    ca: str
    client_cert: str
    client_key: str
    #: A CA nobody trusts, and a client certificate with the right CN from it.
    rogue_ca: str
    rogue_cert: str
    rogue_key: str


class _OpenSSL:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.config = self.dir / "openssl.cnf"
        self.config.write_text(_OPENSSL_CONFIG)
        self.serial = 1

    def run(self, *args: str) -> None:
        proc = subprocess.run(
            ["openssl", *args], cwd=self.dir, capture_output=True, text=True, timeout=30, check=False
        )
        if proc.returncode != 0:
            raise RuntimeError(f"openssl {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")

    def _key_args(self, name: str) -> list[str]:
        return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", f"{name}.key"]

    def ca(self, name: str) -> str:
        self.run("req", "-x509", "-config", str(self.config), "-extensions", "ca",
                 *self._key_args(name), "-out", f"{name}.pem", "-days", "2",
                 "-subj", f"/CN=aiorabbit test CA {name}")
        return str(self.dir / f"{name}.pem")

    def leaf(self, name: str, cn: str, ca: str, extensions: str) -> tuple[str, str]:
        self.run("req", "-new", "-config", str(self.config), *self._key_args(name),
                 "-out", f"{name}.csr", "-subj", f"/CN={cn}")
        self.serial += 1
        self.run("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                 "-set_serial", str(self.serial), "-days", "2", "-out", f"{name}.pem",
                 "-extfile", str(self.config), "-extensions", extensions)
        return str(self.dir / f"{name}.pem"), str(self.dir / f"{name}.key")


@pytest.fixture(scope="module")
def tls() -> Iterator[TLSSetup]:
    reason = unavailable_reason()
    if reason:
        pytest.skip(f"cannot start an extra RabbitMQ node: {reason}")
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make test certificates")
    node = BrokerNode(
        plugins=["rabbitmq_auth_mechanism_ssl"],
        config={
            "auth_mechanisms.1": "PLAIN",
            "auth_mechanisms.2": "AMQPLAIN",
            "auth_mechanisms.3": "EXTERNAL",
            "ssl_cert_login_from": "common_name",
        },
    )
    try:
        # Inside the node's directory: handed to the rabbitmq user on start.
        openssl = _OpenSSL(node.base_dir / "tls")
        ca = openssl.ca("ca")
        server_cert, server_key = openssl.leaf("server", "localhost", "ca", "server")
        client_cert, client_key = openssl.leaf("client", CLIENT_CN, "ca", "client")
        rogue_ca = openssl.ca("rogue-ca")
        rogue_cert, rogue_key = openssl.leaf("rogue", CLIENT_CN, "rogue-ca", "client")
        node.tls = TLSFiles(cacertfile=ca, certfile=server_cert, keyfile=server_key)
        node.start()
        node.add_user(CLIENT_CN, secrets.token_hex(16))  # hex: a leading "-" would read as an option
        yield TLSSetup(node, ca, client_cert, client_key, rogue_ca, rogue_cert, rogue_key)
    finally:
        node.close()


async def _roundtrip(conn: aiorabbit.Connection) -> None:
    """Publish a message and get it back: the connection really works."""
    ch = await conn.channel(publisher_confirms=True)
    queue = (await ch.queue_declare("", exclusive=True)).queue
    body = uuid.uuid4().bytes
    await ch.basic_publish(body, routing_key=queue)
    msg = await ch.basic_get(queue, no_ack=True)
    assert msg is not None and msg.body == body
    await ch.close()


def _connection_rows(node: BrokerNode) -> list[dict[str, object]]:
    out = node.ctl("list_connections", "user", "auth_mechanism", "ssl", "--formatter", "json")
    rows = json.loads(out)
    assert isinstance(rows, list)
    return rows


# ---------------------------------------------------------------------------
# server verification


async def test_amqps_with_cafile_and_plain(tls: TLSSetup) -> None:
    url = f"amqps://guest:guest@localhost:{tls.node.tls_port}/%2F"
    async with aiorabbit.connect(url, cafile=tls.ca, connection_timeout=TIMEOUT) as conn:
        assert conn.params.ssl and conn.params.auth_mechanism == "PLAIN"
        await _roundtrip(conn)


async def test_unknown_ca_fails_with_connection_failed(tls: TLSSetup) -> None:
    # No cafile: the system store does not know the throwaway CA.
    with pytest.raises(ConnectionFailed) as info:
        await aiorabbit.connect(tls.node.tls_url, connection_timeout=TIMEOUT)
    assert type(info.value) is ConnectionFailed
    assert "certificate verify failed" in str(info.value)


async def test_verify_false_connects(tls: TLSSetup) -> None:
    async with aiorabbit.connect(tls.node.tls_url, verify=False, connection_timeout=TIMEOUT) as conn:
        await _roundtrip(conn)


async def test_verify_none_url_option(tls: TLSSetup) -> None:
    url = f"{tls.node.tls_url}?verify=verify_none"
    async with aiorabbit.connect(url, connection_timeout=TIMEOUT) as conn:
        assert conn.is_open


async def test_ssl_context(tls: TLSSetup) -> None:
    context = ssl.create_default_context(cafile=tls.ca)
    async with aiorabbit.connect(tls.node.tls_url, ssl_context=context, connection_timeout=TIMEOUT) as conn:
        await _roundtrip(conn)


async def test_ssl_context_takes_precedence_over_files(tls: TLSSetup) -> None:
    # The context (which trusts the CA) wins over a cafile that does not.
    context = ssl.create_default_context(cafile=tls.ca)
    async with aiorabbit.connect(
        tls.node.tls_url, ssl_context=context, cafile=tls.rogue_ca,
        connection_timeout=TIMEOUT,
    ) as conn:
        assert conn.is_open


async def test_hostname_mismatch_fails(tls: TLSSetup) -> None:
    with pytest.raises(ConnectionFailed) as info:
        await aiorabbit.connect(
            tls.node.tls_url, cafile=tls.ca, server_hostname="not-localhost.example",
            connection_timeout=TIMEOUT,
        )
    assert type(info.value) is ConnectionFailed
    assert "not-localhost.example" in str(info.value) or "mismatch" in str(info.value)


async def test_hostname_mismatch_via_url_option_fails(tls: TLSSetup) -> None:
    query = urlencode({"cafile": tls.ca, "server_name_indication": "wrong.localhost"})
    with pytest.raises(ConnectionFailed) as info:
        await aiorabbit.connect(f"{tls.node.tls_url}?{query}", connection_timeout=TIMEOUT)
    assert type(info.value) is ConnectionFailed


async def test_server_hostname_matching_the_certificate(tls: TLSSetup) -> None:
    # Connect by address, verify the DNS name of the certificate.
    async with aiorabbit.connect(
        tls.node.tls_url, cafile=tls.ca, server_hostname="localhost", connection_timeout=TIMEOUT
    ) as conn:
        assert conn.is_open


async def test_missing_cafile_fails_with_connection_failed(tls: TLSSetup) -> None:
    missing = str(tls.node.base_dir / "no-such-ca.pem")
    with pytest.raises(ConnectionFailed, match="TLS context"):
        await aiorabbit.connect(tls.node.tls_url, cafile=missing, connection_timeout=TIMEOUT)


# ---------------------------------------------------------------------------
# EXTERNAL: the identity is the client certificate's CN


async def test_external_with_client_certificate(tls: TLSSetup) -> None:
    async with aiorabbit.connect(
        tls.node.tls_url,
        cafile=tls.ca,
        certfile=tls.client_cert,
        keyfile=tls.client_key,
        auth_mechanism="EXTERNAL",
        connection_timeout=TIMEOUT,
    ) as conn:
        await _roundtrip(conn)
        rows = _connection_rows(tls.node)
        assert {"user": CLIENT_CN, "auth_mechanism": "EXTERNAL", "ssl": True} in rows


async def test_external_with_ssl_context_holding_the_certificate(tls: TLSSetup) -> None:
    context = ssl.create_default_context(cafile=tls.ca)
    context.load_cert_chain(tls.client_cert, tls.client_key)
    async with aiorabbit.connect(
        tls.node.tls_url, ssl_context=context, auth_mechanism="EXTERNAL", connection_timeout=TIMEOUT
    ) as conn:
        await _roundtrip(conn)


async def test_external_via_url_query_options(tls: TLSSetup) -> None:
    query = urlencode(
        {
            "cafile": tls.ca,
            "certfile": tls.client_cert,
            "keyfile": tls.client_key,
            "auth_mechanism": "EXTERNAL",
            "server_name_indication": "localhost",
        },
        quote_via=quote,
    )
    url = f"amqps://127.0.0.1:{tls.node.tls_port}/%2F?{query}"
    params = aiorabbit.ConnectionParameters.from_url(url)
    assert (params.server_hostname, params.auth_mechanism, params.keyfile) == (
        "localhost", "EXTERNAL", tls.client_key
    )
    async with aiorabbit.connect(url, connection_timeout=TIMEOUT) as conn:
        await _roundtrip(conn)


async def test_external_without_client_certificate_is_refused(tls: TLSSetup) -> None:
    # The broker offers EXTERNAL on TLS connections without a peer
    # certificate, then refuses the login with ACCESS_REFUSED.
    with pytest.raises(AuthenticationError) as info:
        await aiorabbit.connect(
            tls.node.tls_url, cafile=tls.ca, auth_mechanism="EXTERNAL", connection_timeout=TIMEOUT
        )
    assert isinstance(info.value, aiorabbit.ConnectionClosed)
    assert info.value.reply_code == 403
    assert "EXTERNAL" in info.value.reply_text


async def test_external_over_plain_tcp_is_not_offered(tls: TLSSetup) -> None:
    with pytest.raises(AuthenticationError, match="does not offer the EXTERNAL mechanism"):
        await aiorabbit.connect(tls.node.url, auth_mechanism="EXTERNAL", connection_timeout=TIMEOUT)


async def test_client_certificate_from_untrusted_ca_fails(tls: TLSSetup) -> None:
    # The broker (verify_peer) aborts the TLS handshake; with TLS 1.3 the
    # client only learns it on its first read, after its own handshake.
    with pytest.raises(ConnectionFailed) as info:
        await aiorabbit.connect(
            tls.node.tls_url,
            cafile=tls.ca,
            certfile=tls.rogue_cert,
            keyfile=tls.rogue_key,
            auth_mechanism="EXTERNAL",
            connection_timeout=TIMEOUT,
        )
    assert not isinstance(info.value, AuthenticationError)


async def test_mismatched_key_fails_with_connection_failed(tls: TLSSetup) -> None:
    with pytest.raises(ConnectionFailed, match="TLS context"):
        await aiorabbit.connect(
            tls.node.tls_url, cafile=tls.ca, certfile=tls.client_cert, keyfile=tls.rogue_key,
            auth_mechanism="EXTERNAL", connection_timeout=TIMEOUT,
        )


# ---------------------------------------------------------------------------
# PLAIN and AMQPLAIN over plain TCP to the same node


async def test_amqplain_over_tcp(tls: TLSSetup) -> None:
    async with aiorabbit.connect(tls.node.url, auth_mechanism="AMQPLAIN", connection_timeout=TIMEOUT) as conn:
        await _roundtrip(conn)
        rows = _connection_rows(tls.node)
        assert {"user": "guest", "auth_mechanism": "AMQPLAIN", "ssl": False} in rows


async def test_amqplain_wrong_password_is_refused(tls: TLSSetup) -> None:
    with pytest.raises(AuthenticationError):
        await aiorabbit.connect(
            tls.node.url_for("guest", "wrong"), auth_mechanism="AMQPLAIN", connection_timeout=TIMEOUT
        )


async def test_plain_over_tcp_to_the_extra_node(tls: TLSSetup) -> None:
    async with aiorabbit.connect(tls.node.url, connection_timeout=TIMEOUT) as conn:
        await _roundtrip(conn)
