"""The scripted AMQP server (tests/amqp_server.py) against the real client."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import subprocess
from pathlib import Path

import pytest

import aiorabbit
from aiorabbit.codec import methods as m
from aiorabbit.codec.frames import PROTOCOL_HEADER

from .amqp_server import Peer, Published, ScriptedServer, serving

pytestmark = pytest.mark.broker_free


async def test_handshake_channel_and_declare() -> None:
    async with ScriptedServer() as server:
        async with aiorabbit.connect(server.url) as conn:
            ch = await conn.channel()
            assert (await ch.queue_declare("jobs")).queue == "jobs"
            assert (await ch.queue_declare("")).queue.startswith("amq.gen-")
            await ch.close()
        peer = server.peers[0]
        assert peer.start_ok is not None and peer.start_ok.mechanism == "PLAIN"
        assert peer.start_ok.response == b"\x00guest\x00guest"
        assert peer.open is not None and peer.open.virtual_host == "/"
        assert (ch.number, m.ChannelClose) in [(c, type(x)) for c, x in peer.received]
        assert isinstance(peer.received[-1][1], m.ConnectionClose)
        assert server.connections == 1 and not server.errors


async def test_confirmed_publish_is_recorded() -> None:
    body = bytes(range(256)) * 3
    props = aiorabbit.Properties(content_type="application/octet-stream", headers={"n": 1})
    async with ScriptedServer() as server:
        async with aiorabbit.connect(server.url) as conn:
            ch = await conn.channel(publisher_confirms=True)
            await ch.basic_publish(body, exchange="ex", routing_key="rk", properties=props)
            await ch.basic_publish(b"", routing_key="q")
        peer = server.peers[0]
        assert peer.published == [
            Published(ch.number, "ex", "rk", body, props.encode()),
            Published(ch.number, "", "q", b"", b"\x00\x00"),
        ]
        assert peer.confirm_seq == {ch.number: 2}  # both were acked, tags 1 and 2
        assert not server.errors


async def test_large_publish_spans_frames() -> None:
    body = b"x" * 300_000  # three body frames at frame_max 131072
    async with ScriptedServer() as server:
        async with aiorabbit.connect(server.url) as conn:
            ch = await conn.channel(publisher_confirms=True)
            await ch.basic_publish(body, routing_key="big")
        assert server.peers[0].published[0].body == body
        assert not server.errors


async def test_withheld_reply_leaves_the_call_pending() -> None:
    seen: list[m.QueueDeclare] = []

    def withhold(peer: Peer, channel: int, method: m.QueueDeclare) -> bool:
        seen.append(method)
        return True  # no declare-ok

    script = serving({m.QueueDeclare: withhold})

    async with ScriptedServer(script) as server:
        async with aiorabbit.connect(server.url) as conn:
            ch = await conn.channel()
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(ch.queue_declare("never"), 0.5)
        assert [x.queue for x in seen] == ["never"]
        assert not server.errors


async def test_channel_close_reply_raises_precondition_failed() -> None:
    async def refuse(peer: Peer, channel: int, method: m.QueueDeclare) -> bool:
        if not method.durable:
            return False  # the default answer
        peer.send_method(
            channel,
            m.ChannelClose(
                reply_code=406,
                reply_text="PRECONDITION_FAILED - inequivalent arg 'durable'",
                class_id=method.CLASS_ID,
                method_id=method.METHOD_ID,
            ),
        )
        return True

    script = serving({m.QueueDeclare: refuse})

    async with ScriptedServer(script) as server:
        async with aiorabbit.connect(server.url) as conn:
            ch = await conn.channel()
            with pytest.raises(aiorabbit.PreconditionFailed) as info:
                await ch.queue_declare("q", durable=True)
            assert info.value.reply_code == 406
            assert ch.is_closed
            ch2 = await conn.channel()  # the connection is fine
            assert (await ch2.queue_declare("other")).queue == "other"
        received = [(c, type(x)) for c, x in server.peers[0].received]
        assert (ch.number, m.ChannelCloseOk) in received
        assert not server.errors


async def test_delivery_reaches_a_consumer() -> None:
    props = aiorabbit.Properties(message_id="m-1", headers={"k": "v"})

    def consume(peer: Peer, channel: int, method: m.BasicConsume) -> bool:
        peer.send_method(channel, m.BasicConsumeOk(consumer_tag="ctag-1"))
        peer.deliver(channel, "ctag-1", b"hello", props, exchange="ex", routing_key="rk")
        return True

    script = serving({m.BasicConsume: consume})

    async with ScriptedServer(script) as server:
        async with aiorabbit.connect(server.url) as conn:
            ch = await conn.channel()
            async with ch.consume("q") as it:
                msg = await it.get(timeout=2)
                assert msg.body == b"hello"
                assert (msg.exchange, msg.routing_key, msg.delivery_tag) == ("ex", "rk", 1)
                assert msg.properties == props
                await msg.ack()
        received = [x for _, x in server.peers[0].received]
        assert m.BasicAck(delivery_tag=1) in received
        assert m.BasicCancel(consumer_tag="ctag-1") in received
        assert not server.errors


async def test_stops_with_clients_connected() -> None:
    async def script(peer: Peer) -> None:
        await peer.handshake()
        await asyncio.sleep(3600)  # a script that never ends on its own

    loop = asyncio.get_running_loop()
    server = await ScriptedServer(script).start()
    conn = await aiorabbit.connect(server.url)
    other = await aiorabbit.connect(server.url)
    started = loop.time()
    await server.stop()
    assert loop.time() - started < 1.0
    await asyncio.wait_for(conn.wait_closed(), 2)
    await asyncio.wait_for(other.wait_closed(), 2)
    assert conn.is_closed and other.is_closed
    assert server.connections == 2 and not server.errors
    with pytest.raises(aiorabbit.ConnectionFailed):
        await aiorabbit.connect(server.url, connection_timeout=1)


async def test_protocol_header_reply_refuses_the_connection() -> None:
    async def script(peer: Peer) -> None:
        assert await peer.read_protocol_header() == PROTOCOL_HEADER
        peer.send_raw(b"AMQP\x00\x00\x09\x01")  # "I speak 0-9-1 only", then hang up
        peer.close()

    async with ScriptedServer(script) as server:
        with pytest.raises(aiorabbit.ConnectionFailed) as info:
            await asyncio.wait_for(aiorabbit.connect(server.url, connection_timeout=2), 3)
        assert info.value.retryable is False
        assert isinstance(info.value.__cause__, aiorabbit.ProtocolVersionMismatch)
        assert not server.errors


async def test_scripts_errors_are_collected() -> None:
    async def script(peer: Peer) -> None:
        await peer.handshake()
        await peer.expect(m.QueueDeclare)  # but the client opens a channel

    async with ScriptedServer(script) as server:
        async with aiorabbit.connect(server.url) as conn:
            with pytest.raises(aiorabbit.AMQPError):
                await asyncio.wait_for(conn.channel(), 2)
        assert len(server.errors) == 1
        assert "expected queue.declare" in str(server.errors[0])


async def test_reconnects_are_counted() -> None:
    async with ScriptedServer() as server:
        for _ in range(3):
            async with aiorabbit.connect(server.url):
                pass
        assert server.connections == 3
        assert [peer.index for peer in server.peers] == [0, 1, 2]
        assert not server.errors


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a test certificate")
    where = tmp_path_factory.mktemp("scripted-tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


async def test_tls(self_signed: tuple[Path, Path]) -> None:
    cert, key = self_signed
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    async with ScriptedServer(ssl=server_context) as server:
        assert server.url.startswith("amqps://guest:guest@127.0.0.1:")
        async with aiorabbit.connect(server.url, ssl_context=client_context) as conn:
            ch = await conn.channel()
            assert (await ch.queue_declare("secure")).queue == "secure"
        assert not server.errors
