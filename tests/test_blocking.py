"""aiorabbit.blocking against the real broker: plain functions, no event
loop in the test's thread."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest

import aiorabbit
from aiorabbit import blocking
from aiorabbit.rpc import RpcTimeout

from .proxy import Proxy


@pytest.fixture
def queue_name() -> Iterator[str]:
    name = f"aiorabbit.test.blocking.{uuid.uuid4().hex[:10]}"
    yield name
    with blocking.connect() as conn:
        conn.channel().queue_delete(name)


def _count_reaches(ch: blocking.BlockingChannel, queue: str, expected: int) -> bool:
    """Whether the queue's count reaches ``expected`` within 5 s (the broker
    counts a requeued message a moment after the reject)."""
    for _ in range(100):
        if ch.queue_declare(queue, passive=True).message_count == expected:
            return True
        time.sleep(0.05)
    return False


def _io_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "aiorabbit-io"]


def test_publish_get_consume_and_close_joins_the_thread(queue_name: str) -> None:
    before = len(_io_threads())
    with blocking.connect(name="blocking-test") as conn:
        assert conn.is_open and len(_io_threads()) == before + 1
        ch = conn.channel(publisher_confirms=True)
        ok = ch.queue_declare(queue_name)
        assert ok.queue == queue_name and ok.message_count == 0
        for i in range(5):
            ch.basic_publish(b"%d" % i, routing_key=queue_name)  # returns once confirmed
        got = ch.basic_get(queue_name)
        assert got is not None and got.body == b"0" and got.delivery_tag == 1
        got.ack()
        seen = []
        for msg in ch.consume(queue_name, inactivity_timeout=0.5):
            if msg is None:
                break
            seen.append(msg.body)
            msg.ack()
        assert seen == [b"1", b"2", b"3", b"4"]
        assert ch.queue_declare(queue_name, passive=True).message_count == 0
    assert conn.is_closed
    assert len(_io_threads()) == before  # joined


def test_leaving_consume_requeues_what_was_not_handed_out(queue_name: str) -> None:
    with blocking.connect() as conn:
        ch = conn.channel(publisher_confirms=True)
        ch.queue_declare(queue_name)
        for i in range(10):
            ch.basic_publish(b"%d" % i, routing_key=queue_name)
        ch.basic_qos(prefetch_count=10)
        for msg in ch.consume(queue_name):
            assert msg is not None
            msg.ack()
            break
        time.sleep(0.1)
        assert ch.queue_declare(queue_name, passive=True).message_count == 9


def test_errors_are_the_async_classes(queue_name: str) -> None:
    with blocking.connect() as conn:
        ch = conn.channel(publisher_confirms=True)
        with pytest.raises(aiorabbit.NotFound):
            ch.queue_declare(queue_name, passive=True)
        ch = conn.channel(publisher_confirms=True)
        with pytest.raises(aiorabbit.MessageReturned):
            ch.basic_publish(b"x", routing_key=queue_name, mandatory=True)
        msg_ch = conn.channel()
        msg_ch.queue_declare(queue_name)
        msg_ch.basic_publish(b"x", routing_key=queue_name)
        time.sleep(0.1)
        msg = msg_ch.basic_get(queue_name)
        assert msg is not None
        msg.ack()
        with pytest.raises(aiorabbit.MessageAlreadySettled):
            msg.ack()
    with pytest.raises(aiorabbit.ConnectionFailed):
        blocking.connect("amqp://guest:guest@127.0.0.1:1/%2F")


def test_callbacks_run_on_the_consuming_thread_and_stop_consuming(queue_name: str) -> None:
    with blocking.connect() as conn:
        ch = conn.channel()
        ch.queue_declare(queue_name)
        for i in range(3):
            ch.basic_publish(b"%d" % i, routing_key=queue_name)
        threads: set[str] = set()
        bodies: list[bytes] = []

        def on_message(msg: aiorabbit.IncomingMessage) -> None:
            threads.add(threading.current_thread().name)
            bodies.append(msg.body)
            msg.ack()
            if len(bodies) == 3:
                ch.stop_consuming()

        tag = ch.basic_consume(queue_name, on_message)
        ch.start_consuming(timeout=10)
        assert bodies == [b"0", b"1", b"2"]
        assert threads == {threading.current_thread().name}  # never the I/O thread
        with pytest.raises(aiorabbit.InvalidArgument):  # stop_consuming cancelled it, as pika's does
            ch.basic_cancel(tag)
        ch.basic_publish(b"3", routing_key=queue_name)
        assert _count_reaches(ch, queue_name, 1)  # nobody consumes any more


def test_many_threads_publish_on_one_connection(queue_name: str) -> None:
    with blocking.connect() as conn:
        ch = conn.channel(publisher_confirms=True)
        ch.queue_declare(queue_name)

        def publish(k: int) -> None:
            for i in range(50):
                ch.basic_publish(b"%d-%d" % (k, i), routing_key=queue_name)

        workers = [threading.Thread(target=publish, args=(k,)) for k in range(8)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert ch.queue_declare(queue_name, passive=True).message_count == 400


@pytest.mark.slow
def test_a_callback_blocking_for_10_s_keeps_the_connection_with_heartbeat_1(queue_name: str) -> None:
    # pika's BlockingConnection misses heartbeats here and the broker drops it.
    with blocking.connect(heartbeat=1) as conn:
        ch = conn.channel()
        ch.queue_declare(queue_name)
        ch.basic_publish(b"slow", routing_key=queue_name)

        def slow(msg: aiorabbit.IncomingMessage) -> None:
            time.sleep(10)  # blocks this thread only
            msg.ack()
            ch.stop_consuming()  # cancels the consumer too: the link is alive

        ch.basic_consume(queue_name, slow)
        started = time.monotonic()
        ch.start_consuming(timeout=20)
        assert time.monotonic() - started >= 10
        assert conn.is_open  # ten missed heartbeat intervals later
        ch.basic_publish(b"after", routing_key=queue_name)
        assert _count_reaches(ch, queue_name, 1)


def test_a_robust_blocking_connection_rides_out_a_cut(queue_name: str) -> None:
    import asyncio

    loop = asyncio.new_event_loop()
    proxy = Proxy("127.0.0.1", 5672)
    loop_thread = threading.Thread(target=loop.run_forever, daemon=True)
    loop_thread.start()
    asyncio.run_coroutine_threadsafe(proxy.start(), loop).result(5)
    try:
        with blocking.connect_robust(proxy.url, backoff=aiorabbit.Backoff(initial=0.05, maximum=0.2)) as conn:
            ch = conn.channel(publisher_confirms=True)
            ch.queue_declare(queue_name)
            ch.basic_publish(b"before", routing_key=queue_name)
            loop.call_soon_threadsafe(proxy.cut)
            time.sleep(0.1)
            ch.basic_publish(b"after", routing_key=queue_name)  # waits for the recovery
            assert ch.queue_declare(queue_name, passive=True).message_count == 2
    finally:
        asyncio.run_coroutine_threadsafe(proxy.close(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        loop_thread.join()
        loop.close()


INTERRUPTED = r"""
import signal, sys, threading
from aiorabbit import blocking
mode, queue, target = sys.argv[1:]
try:
    with blocking.connect() as conn:
        ch = conn.channel()
        ch.queue_declare(queue, auto_delete=True)
        if target == "io":
            # The kernel may hand a process's SIGINT to any thread: here, for
            # sure, to the I/O thread, whose handling cannot wake a wait on
            # the main thread.
            io = next(t for t in threading.enumerate() if t.name == "aiorabbit-io")
            threading.Timer(0.5, signal.pthread_kill, (io.ident, signal.SIGINT)).start()
        print("ready", flush=True)
        if mode == "start_consuming":
            ch.basic_consume(queue, lambda msg: None)
            ch.start_consuming()
        elif mode == "consume":
            for msg in ch.consume(queue):
                pass
        else:  # a call waiting for a reply that never comes
            with blocking.RpcClient(conn, timeout=None) as rpc:
                rpc.call(b"ping", routing_key=queue)
except KeyboardInterrupt:
    print("interrupted", conn.is_closed, [t.name for t in threading.enumerate() if t.name == "aiorabbit-io"])
"""


@pytest.mark.parametrize(("mode", "target"), [
    ("start_consuming", "process"), ("start_consuming", "io"), ("consume", "io"), ("call", "io"),
])
def test_ctrl_c_closes_cleanly_and_joins_the_io_thread(queue_name: str, mode: str, target: str) -> None:
    """Ctrl-C ends a blocking wait (within ``SIGNAL_POLL``), closes the
    connection and joins the I/O thread, whichever thread the signal hit."""
    import os
    import signal
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", INTERRUPTED, mode, queue_name, target],
                             stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert child.stdout is not None
    assert child.stdout.readline() == "ready\n"
    if target == "process":
        child.send_signal(signal.SIGINT)
    out, _ = child.communicate(timeout=20)
    assert out == "interrupted True []\n"
    assert child.returncode == 0


def test_a_broker_cancel_ends_start_consuming_with_its_error(queue_name: str) -> None:
    with blocking.connect() as conn:
        ch = conn.channel()
        ch.queue_declare(queue_name)
        ch.basic_consume(queue_name, lambda msg: None)
        conn.channel().queue_delete(queue_name)
        with pytest.raises(aiorabbit.ConsumerCancelled):
            ch.start_consuming(timeout=10)


def test_a_blocking_call_from_the_io_thread_is_refused(queue_name: str) -> None:
    import concurrent.futures

    with blocking.connect() as conn:
        ch = conn.channel()
        done: concurrent.futures.Future[BaseException] = concurrent.futures.Future()

        def on_io_thread() -> None:
            try:
                ch.basic_qos(prefetch_count=1)
            except BaseException as exc:
                done.set_result(exc)

        conn.connection._loop.call_soon_threadsafe(on_io_thread)  # type: ignore[union-attr]
        error = done.result(5)
        assert isinstance(error, RuntimeError) and "would wait for ever" in str(error)
        ch.basic_qos(prefetch_count=1)  # from here it works


def test_publishes_without_confirms_keep_their_order_with_later_calls(queue_name: str) -> None:
    # Publishes return at once, queued for the I/O thread; a later call of
    # the same thread (here tx_commit, then a passive declare) comes after them.
    with blocking.connect() as conn:
        ch = conn.channel()
        ch.queue_declare(queue_name)
        ch.tx_select()
        body = bytearray(b"A" * 10)
        for _ in range(3000):
            ch.basic_publish(body, routing_key=queue_name)
            body[:] = b"B" * 10  # copied at the call: what was sent is what was passed
        ch.tx_commit()
        assert ch.queue_declare(queue_name, passive=True).message_count == 3000
        first = ch.basic_get(queue_name, no_ack=True)
        second = ch.basic_get(queue_name, no_ack=True)
        assert first is not None and first.body == b"A" * 10
        assert second is not None and second.body == b"B" * 10


def test_close_writes_what_was_queued(queue_name: str) -> None:
    with blocking.connect() as conn:
        conn.channel().queue_declare(queue_name)
    with blocking.connect() as conn:
        ch = conn.channel()
        for i in range(20_000):  # beyond the queue's high-water mark: the caller waits, nothing is lost
            ch.basic_publish(b"%d" % i, routing_key=queue_name)
    with blocking.connect() as conn:
        ch = conn.channel()
        assert _count_reaches(ch, queue_name, 20_000)


def test_bad_publish_arguments_raise_at_the_call(queue_name: str) -> None:
    with blocking.connect() as conn:
        ch = conn.channel()
        with pytest.raises(aiorabbit.InvalidArgument):
            ch.basic_publish(b"x", routing_key="k" * 256)
        with pytest.raises(aiorabbit.InvalidArgument):
            bad = aiorabbit.Properties(headers={"h": object()})
            ch.basic_publish(b"x", routing_key=queue_name, properties=bad)
        with pytest.raises(aiorabbit.InvalidArgument):
            ch.basic_publish("text", routing_key=queue_name)  # type: ignore[arg-type]
        ch.queue_declare(queue_name)  # the channel is still usable
        ch.basic_publish(b"ok", routing_key=queue_name)
        got = ch.basic_get(queue_name, no_ack=True)
        assert got is not None and got.body == b"ok"


def test_a_publish_on_a_channel_closed_meanwhile_is_reported_by_the_next_call(queue_name: str) -> None:
    with blocking.connect() as conn:
        ch = conn.channel()
        ch.basic_publish(b"x", exchange="aiorabbit.test.no-such-exchange")  # the broker closes the channel
        for _ in range(50):
            if not ch.is_open:
                break
            time.sleep(0.05)
        with pytest.raises(aiorabbit.ChannelClosed) as caught:
            ch.basic_publish(b"y", routing_key=queue_name)
        assert "no-such-exchange" in str(caught.value) or caught.value.reply_code == 404


def test_messages_settle_from_any_thread_and_a_second_settle_raises(queue_name: str) -> None:
    with blocking.connect() as conn:
        ch = conn.channel()
        ch.queue_declare(queue_name)
        for i in range(4):
            ch.basic_publish(b"%d" % i, routing_key=queue_name)
        msgs = []
        for msg in ch.consume(queue_name, inactivity_timeout=2):
            assert msg is not None
            msgs.append(msg)
            if len(msgs) == 4:
                break
        workers = [threading.Thread(target=m.ack) for m in msgs[:2]]
        workers += [threading.Thread(target=msgs[2].nack, kwargs={"requeue": False})]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        msgs[3].reject(requeue=True)
        with pytest.raises(aiorabbit.MessageAlreadySettled):
            msgs[0].ack()
        assert _count_reaches(ch, queue_name, 1)  # the rejected one is back; the rest are gone
        again = ch.basic_get(queue_name)
        assert again is not None and again.body == b"3" and again.redelivered
        again.ack()


def test_process_data_events_and_add_callback_threadsafe(queue_name: str) -> None:
    with blocking.connect() as conn:
        ch = conn.channel()
        ch.queue_declare(queue_name)
        got: list[tuple[str, bytes]] = []
        ch.basic_consume(queue_name, lambda msg: (got.append((threading.current_thread().name, msg.body)),
                                                  msg.ack()))
        conn.process_data_events(time_limit=0)  # nothing due: returns at once
        assert got == []
        ch.basic_publish(b"one", routing_key=queue_name)
        conn.process_data_events(time_limit=None)  # until one ran
        assert got == [(threading.current_thread().name, b"one")]
        ran: list[str] = []
        threading.Thread(target=conn.add_callback_threadsafe,
                         args=(lambda: ran.append(threading.current_thread().name),)).start()
        conn.sleep(0.3)
        assert ran == [threading.current_thread().name]


def test_publisher_confirms_each_way_and_copies_mutable_bodies(queue_name: str) -> None:
    with blocking.connect() as conn:
        conn.channel().queue_declare(queue_name)
        with blocking.Publisher(conn, window=50) as publisher:
            first = publisher.publish(b"one", routing_key=queue_name)
            body = bytearray(b"two")
            future = publisher.submit(body, routing_key=queue_name)
            body[:] = b"XXX"
            second = future.result(10)
            batch = publisher.publish_many([b"m%d" % i for i in range(500)] +
                                           [blocking.OutgoingMessage(b"last", routing_key=queue_name)])
            assert len(batch) == 501 and len(set(batch) | {first, second}) == 503
            with pytest.raises(aiorabbit.MessageReturned):
                publisher.publish(b"lost", routing_key=queue_name + ".nobody", mandatory=True)
        ch = conn.channel()
        assert ch.queue_declare(queue_name, passive=True).message_count == 3
        bodies = [m.body for m in (ch.basic_get(queue_name, no_ack=True) for _ in range(3)) if m is not None]
        assert bodies == [b"one", b"two", b"last"]


def test_publisher_from_many_threads_keeps_the_window(queue_name: str) -> None:
    with blocking.connect() as conn:
        conn.channel().queue_declare(queue_name)
        with blocking.Publisher(conn, window=20) as publisher:
            peak = 0

            def publish(k: int) -> None:
                nonlocal peak
                for i in range(100):
                    publisher.publish(b"%d-%d" % (k, i), routing_key=queue_name)
                    peak = max(peak, publisher.in_flight)

            workers = [threading.Thread(target=publish, args=(k,)) for k in range(6)]
            for w in workers:
                w.start()
            for w in workers:
                w.join()
            futures = [publisher.submit(b"f", routing_key=queue_name) for _ in range(200)]
            assert publisher.in_flight <= 20
            assert all(len(f.result(10)) == 32 for f in futures)
        assert conn.channel().queue_declare(queue_name, passive=True).message_count == 800


def test_rpc_client_calls_a_blocking_server(queue_name: str) -> None:
    with blocking.connect() as server_conn, blocking.connect() as conn:
        sch = server_conn.channel()
        sch.queue_declare(queue_name)

        def on_request(msg: aiorabbit.IncomingMessage) -> None:
            reply = aiorabbit.Properties(correlation_id=msg.properties.correlation_id)
            sch.basic_publish(msg.body.upper(), routing_key=msg.properties.reply_to or "", properties=reply)
            msg.ack()

        sch.basic_consume(queue_name, on_request)
        server = threading.Thread(target=sch.start_consuming, kwargs={"timeout": 10})
        server.start()
        try:
            with blocking.RpcClient(conn, timeout=5) as rpc:
                assert rpc.call(b"ping", routing_key=queue_name).body == b"PING"
                futures = [rpc.submit(b"n%d" % i, routing_key=queue_name) for i in range(20)]
                assert [f.result(10).body for f in futures] == [b"N%d" % i for i in range(20)]
                idle = sch.queue_declare("", exclusive=True).queue  # nobody serves it
                with pytest.raises(RpcTimeout):
                    rpc.call(b"x", routing_key=idle, timeout=0.2)
        finally:
            server_conn.add_callback_threadsafe(sch.stop_consuming)
            server.join(10)
        assert not server.is_alive()


def test_basic_cancel_requeues_deliveries_no_callback_took(queue_name: str) -> None:
    with blocking.connect() as conn:
        ch = conn.channel()
        ch.queue_declare(queue_name)
        for i in range(20):
            ch.basic_publish(b"%d" % i, routing_key=queue_name)
        seen: list[bytes] = []
        tags: list[str] = []

        def first_only(msg: aiorabbit.IncomingMessage) -> None:
            seen.append(msg.body)
            msg.ack()
            ch.basic_cancel(tags[0])  # the other 19 are waiting as events by now

        tags.append(ch.basic_consume(queue_name, first_only))
        time.sleep(0.3)  # let every delivery arrive
        conn.process_data_events(time_limit=0.3)
        assert seen == [b"0"]
        assert _count_reaches(ch, queue_name, 19)


@pytest.mark.parametrize("style", ["consume", "basic_consume"])
def test_a_slow_no_ack_consumer_stops_the_reading_and_loses_nothing(
    queue_name: str, style: str, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The broker does not bound no_ack deliveries: past the hand-off's
    bound the I/O thread stops reading until the application's thread
    takes half of it, instead of buffering the whole queue."""
    from aiorabbit.blocking import _handoff

    monkeypatch.setattr(_handoff, "HIGH_BYTES", 2 * 1024 * 1024)
    bodies = [bytes([i]) * 65536 for i in range(120)]  # 7.5 MiB
    with blocking.connect() as conn:
        ch = conn.channel(publisher_confirms=True)
        ch.queue_declare(queue_name)
        for body in bodies:
            ch.basic_publish(body, routing_key=queue_name)
        reading = conn.connection._reading  # seam: the read gate of the connection
        got: list[bytes] = []
        held: list[bool] = []

        def take(msg: aiorabbit.IncomingMessage) -> None:
            if not got:
                time.sleep(0.5)  # slow: the I/O thread reads up to the bound, then stops
                held.append(reading.paused)
            got.append(msg.body)

        if style == "consume":
            for msg in ch.consume(queue_name, no_ack=True):
                assert msg is not None
                take(msg)
                if len(got) == len(bodies):
                    break
        else:
            def callback(msg: aiorabbit.IncomingMessage) -> None:
                take(msg)
                if len(got) == len(bodies):
                    ch.stop_consuming()

            ch.basic_consume(queue_name, callback, no_ack=True)
            ch.start_consuming(timeout=10)
        assert held == [True]
        assert got == bodies
        assert not reading.paused
