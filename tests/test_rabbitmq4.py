"""RabbitMQ 4.3's refusals of deprecated features, as a scripted server
plays them (only 3.10 runs here).  The codes and texts are RabbitMQ 4.3's:
a queue that is neither durable nor exclusive, or the x-queue-master-locator
argument, closes the connection with 541 INTERNAL_ERROR and a text cut at
255 characters; basic.qos with global=true is applied per consumer,
silently."""

from __future__ import annotations

import asyncio
import logging

import pytest

import aiorabbit
from aiorabbit.codec import methods as m
from aiorabbit.exceptions import channel_error, connection_error

from .amqp_server import DEFAULT_SERVER_PROPERTIES, Peer, ScriptedServer

RABBITMQ_43 = dict(DEFAULT_SERVER_PROPERTIES, product="RabbitMQ", version="4.3.5")


def denied(feature: str) -> str:
    text = (
        f"INTERNAL_ERROR - Feature `{feature}` is deprecated.\n"
        "By default, this feature is not permitted anymore.\n"
        "The feature will be removed from a future major RabbitMQ version, regardless of the "
        "configuration; actual version to be determined.\n"
        "To continue using this feature when it is not permitted by default, set the following "
        f'parameter in your configuration:\n    "deprecated_features.permit.{feature} = true"'
    )
    return text[:252] + "..."  # the broker cuts reply texts at 255 characters


def refuse_deprecated(peer: Peer, channel: int, method: m.QueueDeclare) -> bool:
    if method.passive:
        return False
    if not method.durable and not method.exclusive:
        feature = "transient_nonexcl_queues"
    elif method.arguments and "x-queue-master-locator" in method.arguments:
        feature = "queue_master_locator"
    else:
        return False  # declare-ok
    close = m.ConnectionClose(reply_code=541, reply_text=denied(feature), class_id=50, method_id=10)
    peer.send_method(0, close)
    return True


async def rabbitmq_43(peer: Peer) -> None:
    await peer.handshake(server_properties=RABBITMQ_43)
    await peer.serve({m.QueueDeclare: refuse_deprecated})


@pytest.mark.parametrize(
    ("arguments", "feature"),
    [({"durable": False}, "transient_nonexcl_queues"),
     ({"durable": True, "arguments": {"x-queue-master-locator": "client-local"}}, "queue_master_locator")],
)
async def test_a_refused_deprecated_feature_is_a_typed_error(
    arguments: dict[str, object], feature: str
) -> None:
    async with ScriptedServer(rabbitmq_43) as server:
        conn = await aiorabbit.connect(server.url)
        ch = await conn.channel()
        with pytest.raises(aiorabbit.DeprecatedFeature) as caught:
            await ch.queue_declare("jobs", **arguments)  # type: ignore[arg-type]
        exc = caught.value
        assert exc.feature == feature
        assert isinstance(exc, aiorabbit.ConnectionClosed) and exc.reply_code == 541
        assert feature in str(exc)
        assert conn.is_closed and conn.closed_reason is exc
        await conn.close()


async def test_4x_accepts_what_the_examples_declare() -> None:
    async with ScriptedServer(rabbitmq_43) as server, aiorabbit.connect(server.url) as conn:
        ch = await conn.channel()
        await ch.queue_declare("hello", durable=True)  # hello_send.py / hello_receive.py
        await ch.queue_declare("task_queue", durable=True)  # new_task.py / worker.py
        await ch.queue_declare("", exclusive=True)  # the pub/sub and routing receivers
        assert conn.is_open


async def test_a_robust_connection_raises_and_recovers_once_instead_of_looping() -> None:
    async with ScriptedServer(rabbitmq_43) as server:
        async with aiorabbit.connect_robust(server.url) as conn:
            ch = await conn.channel()
            await ch.queue_declare("kept", durable=True)
            with pytest.raises(aiorabbit.DeprecatedFeature) as caught:
                await ch.queue_declare("transient")
            assert caught.value.feature == "transient_nonexcl_queues"
            await conn.wait_connected(5)
            await asyncio.sleep(0.5)  # time for a loop to show
            assert server.connections == 2, "one reconnect, no redeclare loop"
            assert "transient" not in conn.topology.queues and "kept" in conn.topology.queues
            ok = await ch.queue_declare("other", durable=True)
            assert ok.queue == "other" and conn.is_open


async def test_recorded_topology_the_broker_now_refuses_ends_recovery() -> None:
    # Declared on a 3.x broker, then the broker is upgraded: restoring the
    # transient queue is refused on every reconnect.
    async def upgraded(peer: Peer) -> None:
        if peer.index == 0:
            await peer.handshake()
            await peer.serve()
        else:
            await rabbitmq_43(peer)

    backoff = aiorabbit.Backoff(initial=0.01, maximum=0.05)
    async with ScriptedServer(upgraded) as server:
        conn = await aiorabbit.connect_robust(server.url, backoff=backoff)
        ch = await conn.channel()
        await ch.queue_declare("transient")
        server.peers[0].abort()
        for _ in range(300):
            if conn.is_closed:
                break
            await asyncio.sleep(0.01)
        assert isinstance(conn.closed_reason, aiorabbit.RecoveryFailed)
        assert "transient_nonexcl_queues" in str(conn.closed_reason)
        assert isinstance(conn.closed_reason.__cause__, aiorabbit.DeprecatedFeature)
        assert server.connections == 2
        await conn.close()


async def test_global_qos_on_4_3_is_accepted_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    async with ScriptedServer(rabbitmq_43) as server, aiorabbit.connect(server.url) as conn:
        ch = await conn.channel()
        with caplog.at_level(logging.WARNING, logger="aiorabbit"):
            await ch.basic_qos(prefetch_count=10, global_qos=True)
            await ch.basic_qos(prefetch_count=10)
        warnings = [r for r in caplog.records if "global_qos" in r.getMessage()]
        assert len(warnings) == 1 and "4.3.5" in warnings[0].getMessage()


async def test_no_global_qos_warning_on_3x(amqp_url: str, caplog: pytest.LogCaptureFixture) -> None:
    async with aiorabbit.connect(amqp_url) as conn:
        ch = await conn.channel()
        with caplog.at_level(logging.WARNING, logger="aiorabbit"):
            await ch.basic_qos(prefetch_count=10, global_qos=True)
        assert not [r for r in caplog.records if "global_qos" in r.getMessage()]


def test_refusals_map_to_the_typed_error() -> None:
    exc = connection_error(541, denied("transient_nonexcl_queues"))
    assert isinstance(exc, aiorabbit.DeprecatedFeature) and isinstance(exc, aiorabbit.ConnectionClosed)
    assert exc.feature == "transient_nonexcl_queues"
    channel_exc = channel_error(406, "PRECONDITION_FAILED - Feature `global_qos` is deprecated.")
    assert isinstance(channel_exc, aiorabbit.DeprecatedFeature)
    assert isinstance(channel_exc, aiorabbit.ChannelClosed)
    assert channel_exc.feature == "global_qos"
    # Other 541s stay what they were (and recoverable).
    plain = connection_error(541, "INTERNAL_ERROR - something else")
    assert type(plain) is aiorabbit.InternalError
    inequivalent = channel_error(406, "PRECONDITION_FAILED - inequivalent arg")
    assert not isinstance(inequivalent, aiorabbit.DeprecatedFeature)
