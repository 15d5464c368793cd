"""The connection against the scripted server (tests/amqp_server.py), no
broker needed: the handshake as the server sees it (client properties,
credentials, tune negotiation, the vhost), a refused login, heartbeats and
a close that the server starts.  Only aiorabbit's public API is used on the
client side; the wire is read at the scripted peer."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest

import aiorabbit
from aiorabbit.codec import methods as m
from aiorabbit.codec.frames import HeartbeatFrame, MethodFrame

from .amqp_server import Peer, PeerClosed, ScriptedServer, serving

pytestmark = pytest.mark.broker_free


def _url(server: ScriptedServer, userinfo: str = "guest:guest", vhost: str = "%2F", query: str = "") -> str:
    return f"amqp://{userinfo}@127.0.0.1:{server.port}/{vhost}{query}"


# ---------------------------------------------------------------------------
# the handshake


async def test_the_handshake_sends_client_properties_credentials_and_the_vhost() -> None:
    async with ScriptedServer() as server:
        url = _url(server, "alice:p%40ss%20w0rd", "%2Fprod")
        options = {"name": "billing-worker", "client_properties": {"deployment": "blue"}}
        async with aiorabbit.connect(url, **options) as conn:
            assert conn.is_open
            assert conn.server_properties["product"] == "ScriptedServer"
            peer = server.peers[0]
            assert peer.start_ok is not None and peer.open is not None
            props = peer.start_ok.client_properties
            assert props["product"] == "aiorabbit"
            assert props["version"] == aiorabbit.__version__
            assert props["connection_name"] == "billing-worker"
            assert props["deployment"] == "blue"
            for capability in (
                "publisher_confirms",
                "basic.nack",
                "consumer_cancel_notify",
                "connection.blocked",
                "authentication_failure_close",
                "exchange_exchange_bindings",
                "per_consumer_qos",
            ):
                assert props["capabilities"][capability] is True, capability
            assert peer.start_ok.mechanism == "PLAIN"
            assert peer.start_ok.response == b"\x00alice\x00p@ss w0rd"
            assert peer.start_ok.locale == "en_US"
            assert peer.open.virtual_host == "/prod"
        # close() is the client's connection.close, answered by the server.
        assert isinstance(peer.received[-1][1], m.ConnectionClose)
        assert peer.received[-1][1].reply_code == 200
        assert conn.is_closed
    assert not server.errors


async def test_no_connection_name_is_sent_unless_one_is_given() -> None:
    async with ScriptedServer() as server:
        async with aiorabbit.connect(server.url):
            props = server.peers[0].start_ok.client_properties  # type: ignore[union-attr]
            assert "connection_name" not in props
            assert server.peers[0].open.virtual_host == "/"  # type: ignore[union-attr]
    assert not server.errors


@pytest.mark.parametrize(
    ("client", "server_tune", "expected"),
    [
        # (channel_max, frame_max, heartbeat): the lower non-zero of both sides.
        ({}, (100, 65536, 30), (100, 65536, 30)),
        ({"channel_max": 50, "frame_max": 8192, "heartbeat": 10}, (2047, 131072, 60), (50, 8192, 10)),
        ({"channel_max": 3000, "frame_max": 200000, "heartbeat": 90}, (2047, 131072, 60), (2047, 131072, 60)),
        # 0 from the server means "no limit": the client's value stands.
        ({"channel_max": 10, "frame_max": 4096, "heartbeat": 5}, (0, 0, 0), (10, 4096, 5)),
        # heartbeat=0 from the client disables heartbeats whatever the server proposes.
        ({"heartbeat": 0}, (2047, 131072, 60), (2047, 131072, 0)),
        # No limit on either side: channel numbers still stop at 65535.
        ({"channel_max": 0}, (0, 131072, 0), (65535, 131072, 0)),
    ],
)
async def test_tune_negotiation(
    client: dict[str, Any], server_tune: tuple[int, int, int], expected: tuple[int, int, int]
) -> None:
    channel_max, frame_max, heartbeat = server_tune

    async def script(peer: Peer) -> None:
        await peer.handshake(channel_max=channel_max, frame_max=frame_max, heartbeat=heartbeat)
        await peer.serve()

    async with ScriptedServer(script) as server:
        async with aiorabbit.connect(server.url, **client) as conn:
            tune_ok = server.peers[0].tune_ok
            assert tune_ok is not None
            assert (tune_ok.channel_max, tune_ok.frame_max, tune_ok.heartbeat) == expected
            assert (conn.channel_max, conn.frame_max, conn.heartbeat) == expected
            # The negotiated limits are used: a channel opens, a body larger
            # than frame_max goes out in frames the server accepts.
            ch = await conn.channel(publisher_confirms=True)
            await ch.basic_publish(b"x" * 20000, routing_key="q")
            assert server.peers[0].published[-1].body == b"x" * 20000
    assert not server.errors


async def test_a_channel_beyond_the_negotiated_channel_max_is_refused_locally() -> None:
    async def script(peer: Peer) -> None:
        await peer.handshake(channel_max=2)
        await peer.serve()

    async with ScriptedServer(script) as server:
        async with aiorabbit.connect(server.url) as conn:
            first = await conn.channel()
            second = await conn.channel()
            assert {first.number, second.number} == {1, 2}
            with pytest.raises(aiorabbit.ChannelExhausted):
                await conn.channel()
            opened = [c for c, x in server.peers[0].received if isinstance(x, m.ChannelOpen)]
            assert opened == [1, 2]  # the third never reached the wire
    assert not server.errors


async def test_a_refused_login_raises_login_refused_and_is_not_retried() -> None:
    text = "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN"

    async def refuse(peer: Peer) -> None:
        await peer.refuse_login(403, text)

    async with ScriptedServer(refuse) as server:
        started = time.monotonic()
        with pytest.raises(aiorabbit.AuthenticationError) as caught:
            await aiorabbit.connect(_url(server, "mallory:wrong"), connection_attempts=3, retry_delay=0.05)
        assert time.monotonic() - started < 2
        exc = caught.value
        assert isinstance(exc, aiorabbit.LoginRefused)
        assert isinstance(exc, aiorabbit.ConnectionClosed)
        assert exc.reply_code == 403 and exc.reply_text == text
        assert not exc.retryable
        assert server.connections == 1  # not retried, despite connection_attempts=3
        assert server.peers[0].start_ok is not None
        assert server.peers[0].start_ok.response == b"\x00mallory\x00wrong"
        await server.peers[0].wait_received(m.ConnectionCloseOk)
    assert not server.errors


# ---------------------------------------------------------------------------
# heartbeats


async def test_heartbeats_go_out_every_half_interval_and_a_silent_server_times_out() -> None:
    """The server proposes a 1 s heartbeat and then says nothing at all.  The
    client sends a heartbeat frame every half interval while it has nothing
    else to send, and closes with HeartbeatTimeout after two silent
    intervals.  Meanwhile a second client, with heartbeat=0, on the same
    silent server sends no heartbeat and stays open, and a third one, idle
    as long but on a server that does send heartbeats, stays open too."""
    beats: dict[int, list[float]] = {0: [], 1: []}

    async def silent(peer: Peer) -> None:
        await peer.handshake(heartbeat=1)
        if peer.index == 2:
            await peer.serve()  # the cooperative server heartbeats
            return
        while True:
            try:
                frame = await peer.read_frame(None, heartbeats=True)
            except PeerClosed:
                return
            if isinstance(frame, HeartbeatFrame):
                beats[peer.index].append(time.monotonic())
            elif isinstance(frame, MethodFrame) and isinstance(frame.method, m.ConnectionClose):
                peer.send_method(0, m.ConnectionCloseOk())
                await peer.drain()
                peer.close()
                return
            # anything else (channel.open) goes unanswered

    async with ScriptedServer(silent) as server:
        beating = await aiorabbit.connect(server.url)  # accepts the server's 1 s
        opened = time.monotonic()
        quiet = await aiorabbit.connect(server.url, heartbeat=0)
        idle = await aiorabbit.connect(server.url)
        assert beating.heartbeat == 1 and quiet.heartbeat == 0
        assert server.peers[0].tune_ok.heartbeat == 1  # type: ignore[union-attr]
        assert server.peers[1].tune_ok.heartbeat == 0  # type: ignore[union-attr]

        # A call waiting for a reply fails with the timeout too.
        pending = asyncio.ensure_future(beating.channel())
        reason = await asyncio.wait_for(beating.wait_closed(), 5)
        timed_out_after = time.monotonic() - opened

        assert isinstance(reason, aiorabbit.HeartbeatTimeout), reason
        assert isinstance(reason, aiorabbit.ConnectionLost)
        assert beating.closed_reason is reason
        with pytest.raises(aiorabbit.HeartbeatTimeout):
            await pending
        # Two intervals of silence (the last frame came with the handshake),
        # noticed at the next half-interval tick at the latest.
        assert 1.9 <= timed_out_after <= 3.2, timed_out_after

        sent = beats[0]
        assert len(sent) >= 2, sent
        assert sent[0] - opened <= 1.3, sent[0] - opened
        gaps = [b - a for a, b in itertools.pairwise(sent)]
        assert all(0.3 <= gap <= 0.8 for gap in gaps), gaps

        # The other connection disabled heartbeats: none sent, still open.
        assert beats[1] == []
        assert quiet.is_open
        await asyncio.wait_for(quiet.close(), 5)
        assert isinstance(quiet.closed_reason, aiorabbit.ConnectionClosed)
        assert quiet.closed_reason.by_client

        # Heartbeats from the server count as life: the idle connection is fine.
        assert idle.is_open, idle.closed_reason
        ch = await idle.channel()
        assert (await ch.queue_declare("still-there")).queue == "still-there"
        await asyncio.wait_for(idle.close(), 5)
    assert not server.errors


# ---------------------------------------------------------------------------
# the server closes the connection


async def test_a_server_close_fails_pending_calls_with_the_typed_error_and_is_acknowledged() -> None:
    text = "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"
    declared = asyncio.Event()

    def withhold(peer: Peer, channel: int, method: m.QueueDeclare) -> bool:
        declared.set()
        return True

    async with ScriptedServer(serving({m.QueueDeclare: withhold})) as server:
        conn = await aiorabbit.connect(server.url)
        ch = await conn.channel(publisher_confirms=True)
        waiting = asyncio.ensure_future(ch.queue_declare("jobs"))
        await asyncio.wait_for(declared.wait(), 5)
        peer = server.peers[0]
        peer.send_method(0, m.ConnectionClose(reply_code=320, reply_text=text, class_id=0, method_id=0))

        reason = await asyncio.wait_for(conn.wait_closed(), 5)
        assert type(reason) is aiorabbit.ConnectionForced
        assert (reason.reply_code, reason.reply_text) == (320, text)
        assert not reason.by_client
        with pytest.raises(aiorabbit.ConnectionForced):
            await waiting
        await peer.wait_received(m.ConnectionCloseOk)
        assert conn.is_closed and not conn.is_open
        assert ch.is_closed
        # Every later call raises the same reason.
        with pytest.raises(aiorabbit.ConnectionForced):
            await conn.channel()
        with pytest.raises(aiorabbit.ConnectionForced):
            await ch.basic_publish(b"late", routing_key="jobs")
        await asyncio.wait_for(conn.close(), 2)  # idempotent, returns at once
    assert not server.errors


@pytest.mark.parametrize(
    ("code", "exc_type"),
    [
        (320, aiorabbit.ConnectionForced),
        (530, aiorabbit.NotAllowed),
        (541, aiorabbit.InternalError),
        (506, aiorabbit.ResourceError),
        (403, aiorabbit.LoginRefused),
        (599, aiorabbit.ConnectionClosed),
    ],
)
async def test_server_close_codes_map_to_exception_classes(code: int, exc_type: type[Exception]) -> None:
    async with ScriptedServer() as server:
        conn = await aiorabbit.connect(server.url)
        server.peers[0].send_method(
            0, m.ConnectionClose(reply_code=code, reply_text=f"code {code}", class_id=0, method_id=0)
        )
        reason = await asyncio.wait_for(conn.wait_closed(), 5)
        assert type(reason) is exc_type
        assert reason.reply_code == code
        await server.peers[0].wait_received(m.ConnectionCloseOk)
    assert not server.errors
