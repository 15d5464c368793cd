"""aiorabbit.fastapi against the real broker: apps run with their lifespan
(``app.router.lifespan_context`` and an httpx client on the ASGI app, or
FastAPI's ``TestClient``), and the broker is checked on connections of the
test's own.

No ``from __future__ import annotations`` here: the endpoints take their
dependencies with ``Annotated[..., Depends(rabbit.publisher)]`` on a
test's local ``rabbit``, which FastAPI could not resolve from a string.
"""

import asyncio
import contextlib
import dataclasses
import datetime
import importlib
import importlib.util
import json
import socket
import sys
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI
from pydantic import BaseModel, Field

import aiorabbit
from aiorabbit import (
    ConnectionFailed,
    IncomingMessage,
    InvalidArgument,
    MessageReturned,
    NotFound,
    PreconditionFailed,
    Properties,
)
from aiorabbit.codec import methods as m
from aiorabbit.codec.frames import encode_method_frame
from aiorabbit.fastapi import NotRunning, RabbitMQ, RabbitPublisher, StartupTimeout

from . import ctl
from .conftest import Names
from .proxy import Proxy

FAST = aiorabbit.Backoff(initial=0.05, maximum=0.3)
EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "fastapi_app.py"


class Job(BaseModel):
    id: int
    text: str = ""


class Aliased(BaseModel):
    user_id: int = Field(alias="userId")


# ----------------------------------------------------------------------
# helpers


def make(url: str | None = None, **options: Any) -> RabbitMQ:
    options.setdefault("backoff", FAST)
    options.setdefault("connection_name", f"test-fastapi-{uuid.uuid4().hex[:8]}")
    return RabbitMQ(url, **options)


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run ``app`` with its lifespan and an HTTP client on it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            yield client


def _scrape(text: str) -> dict[str, float]:
    """Prometheus text format: each metric's value summed over its labels."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name_labels, value = line.rsplit(" ", 1)
            name = name_labels.split("{", 1)[0]
            values[name] = values.get(name, 0.0) + float(value)
    return values


def app_for(rabbit: RabbitMQ) -> FastAPI:
    app = FastAPI(lifespan=rabbit.lifespan)
    rabbit.add_health_route(app, "/health")
    return app


async def eventually(cond: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


async def drain(
    conn: aiorabbit.Connection, queue: str, expected: int, timeout: float = 10.0
) -> list[IncomingMessage]:
    """Take (and ack) messages from ``queue`` until ``expected`` arrived,
    then whatever else is there."""
    ch = await conn.channel()
    got: list[IncomingMessage] = []
    deadline = time.monotonic() + timeout
    while len(got) < expected:
        msg = await ch.basic_get(queue, no_ack=True)
        if msg is None:
            assert time.monotonic() < deadline, f"{queue}: {len(got)} of {expected} messages"
            await asyncio.sleep(0.02)
            continue
        got.append(msg)
    while (msg := await ch.basic_get(queue, no_ack=True)) is not None:
        got.append(msg)
    await ch.close()
    return got


async def ready(conn: aiorabbit.Connection, queue: str) -> int:
    """Messages ready in ``queue`` (passive declare)."""
    ch = await conn.channel()
    ok = await ch.queue_declare(queue, passive=True)
    await ch.close()
    return ok.message_count


async def settle_count(conn: aiorabbit.Connection, queue: str, expected: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while (count := await ready(conn, queue)) != expected:
        assert time.monotonic() < deadline, f"{queue} has {count} messages ready, not {expected}"
        await asyncio.sleep(0.05)


def bodies(messages: list[IncomingMessage]) -> list[Any]:
    return [json.loads(msg.body) for msg in messages]


def tasks_now() -> set[asyncio.Task[Any]]:
    return {task for task in asyncio.all_tasks() if task is not asyncio.current_task()}


# ----------------------------------------------------------------------
# topology


async def test_topology_is_declared_at_startup(connection: aiorabbit.Connection, names: Names) -> None:
    jobs_x, dlx = names.exchange("jobs"), names.exchange("dlx")
    jobs, dead, other, parked = (names.queue(label) for label in ("jobs", "dead", "other", "dlq"))
    rabbit = make()
    assert rabbit.exchange(jobs_x, "topic") == jobs_x
    rabbit.exchange(dlx, "fanout", durable=False, auto_delete=False)
    bindings = [(jobs_x, "job.*"), (jobs_x, "urgent.#")]
    assert rabbit.queue(jobs, bindings=bindings, dead_letter_queue=dead) == jobs
    rabbit.queue(parked, bindings=[(dlx, "")])
    rabbit.queue(other, dead_letter_exchange=dlx, dead_letter_routing_key="k",
                 arguments={"x-max-length": 100})
    for queue in (jobs, dead):
        with pytest.raises(NotFound):
            await ready(connection, queue)

    async with rabbit.lifespan():
        conn = await rabbit.connection()
        # Recorded, so that recovery declares them again.
        assert {jobs_x, dlx} <= set(conn.topology.exchanges)
        assert {jobs, dead, other, parked} <= set(conn.topology.queues)
        for queue in (jobs, dead, other, parked):
            assert await ready(connection, queue) == 0
        ch = await connection.channel()
        # Durable, with the dead-letter arguments: a plain redeclare is refused.
        with pytest.raises(PreconditionFailed):
            await ch.queue_declare(jobs, durable=False)
        ch = await connection.channel()
        with pytest.raises(PreconditionFailed):
            await ch.queue_declare(jobs, durable=True)
        ch = await connection.channel()
        await ch.queue_declare(jobs, durable=True, arguments={
            "x-dead-letter-exchange": "", "x-dead-letter-routing-key": dead})
        with pytest.raises(PreconditionFailed):
            await ch.exchange_declare(jobs_x, "direct", durable=True)
        ch = await connection.channel()

        # Both bindings route; a rejected message goes to the dead-letter queue.
        await rabbit.publisher.publish(b"a", exchange=jobs_x, routing_key="job.new")
        await rabbit.publisher.publish(b"b", exchange=jobs_x, routing_key="urgent.very.much")
        await rabbit.publisher.publish(b"c", exchange=jobs_x, routing_key="nothing")
        assert await ready(connection, jobs) == 2
        msg = await ch.basic_get(jobs)
        assert msg is not None and msg.body == b"a"
        await msg.reject(requeue=False)
        [dead_msg] = await drain(connection, dead, 1)
        assert dead_msg.body == b"a" and dead_msg.headers["x-death"][0]["reason"] == "rejected"

        # The explicit dead-letter exchange, with its routing key.
        await rabbit.publisher.publish(b"d", routing_key=other)
        msg = await ch.basic_get(other)
        assert msg is not None
        await msg.reject(requeue=False)
        [parked_msg] = await drain(connection, parked, 1)
        assert parked_msg.body == b"d" and parked_msg.routing_key == "k"
        assert await rabbit.publisher() is rabbit.publisher
    # Durable: still there after shutdown.
    assert await ready(connection, jobs) == 1


# ----------------------------------------------------------------------
# publishing from requests, consuming, results


async def test_http_publish_is_confirmed_consumed_and_the_result_published(
    connection: aiorabbit.Connection, names: Names
) -> None:
    jobs, results = names.queue("jobs"), names.queue("results")
    rabbit = make()
    rabbit.queue(jobs)
    rabbit.queue(results)
    seen: list[tuple[Job, IncomingMessage]] = []

    @rabbit.consumer(jobs, model=Job)
    async def square(job: Job, message: IncomingMessage) -> None:
        seen.append((job, message))
        await rabbit.publisher.publish_json({"id": job.id, "square": job.id**2}, routing_key=results,
                                            properties=Properties(correlation_id=message.properties.message_id))

    app = app_for(rabbit)

    @app.post("/jobs")
    async def create(
        job: Job, publisher: Annotated[RabbitPublisher, Depends(rabbit.publisher)]
    ) -> dict[str, str]:
        return {"message_id": await publisher.publish_json(job, routing_key=jobs)}

    async with serve(app) as client:
        responses = [await client.post("/jobs", json={"id": n, "text": f"job {n}"}) for n in range(5)]
        assert [r.status_code for r in responses] == [200] * 5
        ids = [r.json()["message_id"] for r in responses]
        got = await drain(connection, results, 5)
        assert sorted(bodies(got), key=lambda b: b["id"]) == [{"id": n, "square": n * n} for n in range(5)]
        assert sorted(msg.properties.correlation_id or "" for msg in got) == sorted(ids)
        # The job as published: JSON, persistent, with the id the endpoint returned.
        props = seen[0][1].properties
        assert props.content_type == "application/json" and props.delivery_mode == 2
        assert props.message_id == ids[0] and seen[0][0] == Job(id=0, text="job 0")
        # A request that does not validate publishes nothing.
        assert (await client.post("/jobs", json={"id": "x"})).status_code == 422
        health = (await client.get("/health")).json()
        assert health["status"] == "ok" and health["consumers"]["square"]["processed"] == 5
    assert await ready(connection, jobs) == 0
    assert len(seen) == 5


async def test_json_raw_and_message_handlers(connection: aiorabbit.Connection, names: Names) -> None:
    q_json, q_raw, q_both, q_list = (names.queue(label) for label in ("json", "raw", "both", "list"))
    rabbit = make()
    for queue in (q_json, q_raw, q_both, q_list):
        rabbit.queue(queue, durable=False)
    got: dict[str, Any] = {}

    @rabbit.consumer(q_json, json=True)
    async def as_json(body: Any) -> None:
        got["json"] = body

    @rabbit.consumer(q_raw)
    async def raw(message: IncomingMessage) -> None:
        got["raw"] = message

    @rabbit.consumer(q_both, json=True, name="both")
    async def with_message(body: Any, message: IncomingMessage, extra: int = 0) -> None:
        got["both"] = (body, message.routing_key)

    class Handler:  # an object with an async __call__ is a handler too
        async def __call__(self, numbers: list[int]) -> None:
            got["list"] = numbers

    rabbit.consumer(q_list, model=list[int], name="numbers")(Handler())

    async with rabbit.lifespan():
        await rabbit.publisher.publish_json({"a": [1, 2]}, routing_key=q_json)
        await rabbit.publisher.publish("héllo", routing_key=q_raw)
        await rabbit.publisher.publish_json([1, "two"], routing_key=q_both)
        await rabbit.publisher.publish(b"[3, 4]", routing_key=q_list)
        await eventually(lambda: len(got) == 4, what="4 handlers")
        assert set(rabbit.health()["consumers"]) == {"as_json", "raw", "both", "numbers"}
    assert got["json"] == {"a": [1, 2]}
    assert isinstance(got["raw"], IncomingMessage) and got["raw"].body == "héllo".encode()
    assert got["both"] == ([1, "two"], q_both)
    assert got["list"] == [3, 4]
    for queue in (q_json, q_raw, q_both, q_list):
        assert await ready(connection, queue) == 0


async def test_a_body_that_does_not_decode_is_dead_lettered(
    connection: aiorabbit.Connection, channel: aiorabbit.Channel, names: Names
) -> None:
    jobs, jobs_dead, docs, docs_dead = (names.queue(label) for label in ("jobs", "dead", "docs", "dd"))
    rabbit = make()
    rabbit.queue(jobs, dead_letter_queue=jobs_dead)
    rabbit.queue(docs, dead_letter_queue=docs_dead)
    handled: list[Any] = []

    @rabbit.consumer(jobs, model=Job)
    async def job(job: Job) -> None:
        handled.append(job)

    @rabbit.consumer(docs, json=True)
    async def doc(body: Any) -> None:
        handled.append(body)

    async with rabbit.lifespan():
        for body in (b"not json", b'{"id": "not a number"}', b'{"text": "no id"}', b'{"id": 7}'):
            await channel.basic_publish(body, routing_key=jobs)
        for body in (b"{bad", b"\xff\xfe", b'{"ok": true}'):
            await channel.basic_publish(body, routing_key=docs)
        dead = await drain(connection, jobs_dead, 3)
        dead_docs = await drain(connection, docs_dead, 2)
        await eventually(lambda: len(handled) == 2, what="the two good messages")
        health = rabbit.health()["consumers"]
        assert (health["job"]["rejected"], health["job"]["processed"], health["job"]["failed"]) == (3, 1, 0)
        assert (health["doc"]["rejected"], health["doc"]["processed"]) == (2, 1)
    assert [msg.body for msg in dead] == [b"not json", b'{"id": "not a number"}', b'{"text": "no id"}']
    assert all(msg.headers["x-death"][0]["reason"] == "rejected" for msg in dead + dead_docs)
    assert [msg.body for msg in dead_docs] == [b"{bad", b"\xff\xfe"]
    assert handled == [Job(id=7), {"ok": True}] or handled == [{"ok": True}, Job(id=7)]


async def test_every_replica_gets_a_broadcast_through_its_own_queue(
    connection: aiorabbit.Connection, names: Names
) -> None:
    # The documented pattern for per-instance queues: an exclusive queue with
    # a unique name, bound to a fanout exchange.
    events = names.exchange("events")
    got: dict[int, list[bytes]] = {0: [], 1: []}
    replicas = []
    for index in (0, 1):
        rabbit = make()
        rabbit.exchange(events, "fanout")
        mine = rabbit.queue(names.queue(f"replica{index}"), durable=False, exclusive=True,
                            bindings=[(events, "")])

        @rabbit.consumer(mine, name=f"replica{index}")
        async def on_event(message: IncomingMessage, index: int = index) -> None:
            got[index].append(message.body)

        replicas.append(rabbit)
    async with replicas[0].lifespan(), replicas[1].lifespan():
        await replicas[0].publisher.publish(b"invalidate", exchange=events)
        await eventually(lambda: got == {0: [b"invalidate"], 1: [b"invalidate"]}, what="both replicas")


async def test_a_handler_error_dead_letters_the_message(
    connection: aiorabbit.Connection, names: Names
) -> None:
    jobs, dead = names.queue("jobs"), names.queue("dead")
    rabbit = make()
    rabbit.queue(jobs, dead_letter_queue=dead)
    done: list[int] = []

    @rabbit.consumer(jobs, model=Job, concurrency=1)
    async def work(job: Job) -> None:
        if job.id == 2:
            raise RuntimeError("job 2 always fails")
        done.append(job.id)

    async with rabbit.lifespan():
        for n in range(4):
            await rabbit.publisher.publish_json(Job(id=n), routing_key=jobs)
        [failed] = await drain(connection, dead, 1)
        await eventually(lambda: len(done) == 3, what="3 jobs")
        health = rabbit.health()
        assert health["consumers"]["work"]["failed"] == 1 and health["status"] == "ok"
    assert json.loads(failed.body)["id"] == 2 and not failed.redelivered
    assert done == [0, 1, 3]
    assert await ready(connection, jobs) == 0


async def test_a_handler_error_requeues_when_configured(
    connection: aiorabbit.Connection, names: Names
) -> None:
    jobs = names.queue("jobs")
    rabbit = make()
    rabbit.queue(jobs)
    calls: list[tuple[int, bool]] = []

    @rabbit.consumer(jobs, model=Job, requeue_on_error=True)
    async def flaky(job: Job, message: IncomingMessage) -> None:
        calls.append((job.id, message.redelivered))
        if not message.redelivered:
            raise ConnectionError("a transient failure")

    async with rabbit.lifespan():
        await rabbit.publisher.publish_json({"id": 1}, routing_key=jobs)
        await eventually(lambda: len(calls) == 2, what="the redelivery")
        await eventually(lambda: rabbit.health()["consumers"]["flaky"]["processed"] == 1, what="the ack")
        assert rabbit.health()["consumers"]["flaky"]["failed"] == 1
    assert calls == [(1, False), (1, True)]
    assert await ready(connection, jobs) == 0


async def test_a_handler_may_settle_the_message_itself(
    connection: aiorabbit.Connection, names: Names
) -> None:
    jobs, dead = names.queue("jobs"), names.queue("dead")
    rabbit = make()
    rabbit.queue(jobs, dead_letter_queue=dead)
    done: list[int] = []

    @rabbit.consumer(jobs, model=Job, concurrency=1)
    async def picky(job: Job, message: IncomingMessage) -> None:
        if job.id == 0:
            await message.nack(requeue=False)  # not for us: dead-letter it, and say nothing
            return
        if job.id == 1:
            await message.ack()
            raise RuntimeError("after the ack: nothing left to reject")
        done.append(job.id)

    async with rabbit.lifespan():
        for n in range(3):
            await rabbit.publisher.publish_json({"id": n}, routing_key=jobs)
        [dead_msg] = await drain(connection, dead, 1)
        await eventually(lambda: done == [2], what="job 2")
        consumer = rabbit.health()["consumers"]["picky"]
        # No double settle closed the channel: it is still consuming.
        assert consumer["consuming"] and (consumer["processed"], consumer["failed"]) == (2, 1)
    assert json.loads(dead_msg.body) == {"id": 0}
    assert await ready(connection, jobs) == 0
    assert await ready(connection, dead) == 0


# ----------------------------------------------------------------------
# the publisher pool


async def test_requests_share_the_publisher_pool(connection: aiorabbit.Connection, names: Names) -> None:
    jobs = names.queue("jobs")
    rabbit = make(publisher_pool=3)
    rabbit.queue(jobs)
    app = app_for(rabbit)

    @app.post("/jobs/{n}")
    async def create(n: int, publisher: Annotated[RabbitPublisher, Depends(rabbit.publisher)]) -> None:
        await publisher.publish_json({"id": n}, routing_key=jobs)

    async with serve(app) as client:
        conn = await rabbit.connection()
        assert conn.connection is not None
        channels = len(conn.connection._channels)
        assert channels == 3 == len(conn._channels)  # the pool; the declaring channel is closed
        responses = await asyncio.gather(*(client.post(f"/jobs/{n}") for n in range(60)))
        assert {r.status_code for r in responses} == {200}
        assert len(conn.connection._channels) == channels == len(conn._channels)
        assert await ready(connection, jobs) == 60

        # Each publish goes to the least busy channel.
        tasks = [asyncio.ensure_future(rabbit.publisher.publish(b"x", routing_key=jobs)) for _ in range(6)]
        await asyncio.sleep(0)
        assert [p.in_flight for p in rabbit.publisher._pool.publishers] == [2, 2, 2]
        assert rabbit.health()["publishers"] == {"channels": 3, "in_flight": 6}
        await asyncio.gather(*tasks)
        assert rabbit.health()["publishers"] == {"channels": 3, "in_flight": 0}
    got = await drain(connection, jobs, 66)
    assert sorted(json.loads(msg.body)["id"] for msg in got[:60]) == list(range(60))


def test_publishes_go_to_the_least_busy_channel() -> None:
    publisher = RabbitPublisher()
    pool: list[Any] = [SimpleNamespace(in_flight=n) for n in (3, 1, 2, 1)]
    publisher._pool.publishers = pool

    def picked() -> int:
        choice = publisher._pool.pick()
        return next(i for i, candidate in enumerate(pool) if candidate is choice)

    # The least busy; between equals, the next one round the pool.
    assert [picked() for _ in range(4)] == [1, 3, 3, 1]
    pool[2].in_flight = 0
    assert [picked() for _ in range(2)] == [2, 2]


async def test_publish_options(connection: aiorabbit.Connection, names: Names) -> None:
    queue = names.queue("q")
    rabbit = make()
    rabbit.queue(queue, durable=False)

    @dataclasses.dataclass
    class Point:
        x: int
        at: datetime.datetime

    when = datetime.datetime(2024, 5, 1, 12, 0, tzinfo=datetime.timezone.utc)
    async with rabbit.lifespan():
        publisher = rabbit.publisher
        mine = Properties(message_id="mine", headers={"k": 1}, content_type="application/vnd.x+json")
        assert await publisher.publish_json({"a": 1}, routing_key=queue, properties=mine) == "mine"
        await publisher.publish_json(Aliased(userId=5), routing_key=queue, persistent=False)
        await publisher.publish_json(Point(1, when), routing_key=queue,
                                     properties=Properties(delivery_mode=aiorabbit.DeliveryMode.TRANSIENT))
        await publisher.publish(bytearray(b"raw"), routing_key=queue)
        await publisher.publish("text", routing_key=queue, properties=Properties(content_type="text/plain"))
        with pytest.raises(InvalidArgument, match="cannot encode object as JSON"):
            await publisher.publish_json(object(), routing_key=queue)
        with pytest.raises(InvalidArgument, match="properties"):
            await publisher.publish(b"x", properties={"message_id": "x"})  # type: ignore[arg-type]
        with pytest.raises(MessageReturned):
            await publisher.publish(b"nowhere", routing_key=names.queue("missing"), mandatory=True)
    got = await drain(connection, queue, 5)
    first, model, point, raw, text = got
    assert json.loads(first.body) == {"a": 1} and first.properties.message_id == "mine"
    assert first.headers == {"k": 1} and first.properties.content_type == "application/vnd.x+json"
    assert first.properties.delivery_mode == 2
    assert json.loads(model.body) == {"userId": 5}  # by alias: the way the model validates it
    assert model.properties.delivery_mode is None and model.properties.content_type == "application/json"
    assert json.loads(point.body) == {"x": 1, "at": "2024-05-01T12:00:00Z"}
    assert point.properties.delivery_mode == 1
    assert raw.body == b"raw" and raw.properties.delivery_mode == 2 and raw.properties.content_type is None
    assert text.body == b"text" and text.properties.content_type == "text/plain"
    assert all(len(msg.properties.message_id or "") >= 4 for msg in got)


# ----------------------------------------------------------------------
# concurrency


async def test_handlers_run_concurrently_up_to_the_bound(
    connection: aiorabbit.Connection, names: Names
) -> None:
    jobs = names.queue("jobs")
    rabbit = make()
    rabbit.queue(jobs)
    active = peak = 0
    in_flight_seen: list[int] = []

    @rabbit.consumer(jobs, model=Job, prefetch=10, concurrency=3)
    async def slow(job: Job) -> None:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        in_flight_seen.append(rabbit.health()["consumers"]["slow"]["in_flight"])
        await asyncio.sleep(0.03)
        active -= 1

    async with rabbit.lifespan():
        await asyncio.gather(*(rabbit.publisher.publish_json({"id": n}, routing_key=jobs) for n in range(24)))
        await eventually(lambda: rabbit.health()["consumers"]["slow"]["processed"] == 24, what="24 jobs")
    assert peak == 3
    assert max(in_flight_seen) == 3
    assert await ready(connection, jobs) == 0


# ----------------------------------------------------------------------
# health


async def test_health_follows_the_connection(connection: aiorabbit.Connection, names: Names) -> None:
    jobs = names.queue("jobs")
    done: list[int] = []
    async with Proxy("127.0.0.1", 5672) as proxy:
        rabbit = make(proxy.url)
        rabbit.queue(jobs)

        @rabbit.consumer(jobs, model=Job)
        async def work(job: Job) -> None:
            done.append(job.id)

        app = app_for(rabbit)
        assert rabbit.health()["status"] == "unavailable" and rabbit.health()["state"] == "stopped"
        async with serve(app) as client:
            response = await client.get("/health")
            assert response.status_code == 200
            assert response.json() == {
                "status": "ok", "state": "connected", "blocked": False,
                "consumers": {"work": {"queue": jobs, "consuming": True, "in_flight": 0, "processed": 0,
                                       "failed": 0, "rejected": 0, "error": None}},
                "publishers": {"channels": 4, "in_flight": 0},
            }

            # The link is cut, and reconnecting hangs (a stalled proxy).
            proxy.stall()
            proxy.cut()
            await eventually(lambda: rabbit.health()["status"] == "unavailable", what="unavailable")
            response = await client.get("/health")
            assert response.status_code == 503
            assert response.json()["state"] in ("reconnecting", "connecting")
            assert response.json()["consumers"]["work"]["consuming"] is False

            proxy.resume()
            await eventually(lambda: rabbit.health()["status"] == "ok", what="ok again")
            assert (await client.get("/health")).status_code == 200
            # Publishing and consuming work again, on the same pool and consumer.
            await rabbit.publisher.publish_json({"id": 1}, routing_key=jobs)
            await eventually(lambda: done == [1], what="the job after recovery")

            # A broker that blocks publishers (a resource alarm) degrades it.
            proxy.inject(encode_method_frame(0, m.ConnectionBlocked(reason="low on memory")))
            await eventually(lambda: rabbit.health()["status"] == "degraded", what="degraded")
            response = await client.get("/health")
            assert response.status_code == 200 and response.json()["blocked"] is True
            proxy.inject(encode_method_frame(0, m.ConnectionUnblocked()))
            await eventually(lambda: rabbit.health()["status"] == "ok", what="unblocked")
        assert rabbit.health()["status"] == "unavailable" and rabbit.health()["state"] == "stopped"


async def test_health_is_degraded_while_a_consumer_is_not_consuming(
    channel: aiorabbit.Channel, names: Names
) -> None:
    jobs = names.queue("jobs")
    rabbit = make()
    rabbit.queue(jobs, durable=False)

    @rabbit.consumer(jobs)
    async def work(message: IncomingMessage) -> None:
        pass

    async with rabbit.lifespan():
        assert rabbit.health()["status"] == "ok"
        # Someone else deletes the queue: the broker cancels our consumer.
        await channel.queue_delete(jobs)
        await eventually(lambda: rabbit.health()["status"] == "degraded", what="degraded")
        assert rabbit.health()["consumers"]["work"]["consuming"] is False
        # Back once the queue is.
        await channel.queue_declare(jobs)
        await eventually(lambda: rabbit.health()["status"] == "ok", what="consuming again")


async def test_a_consumer_that_ends_is_reported(names: Names) -> None:
    jobs = names.queue("jobs")
    rabbit = make()
    rabbit.queue(jobs, durable=False)

    @rabbit.consumer(jobs)
    async def work(message: IncomingMessage) -> None:
        pass

    async with rabbit.lifespan():
        conn = await rabbit.connection()
        ch = await conn.channel()
        # Deleted by the application itself (same connection): the consumer ends.
        await ch.queue_delete(jobs)
        await eventually(lambda: rabbit.health()["consumers"]["work"]["error"] is not None, what="the error")
        health = rabbit.health()
        assert health["status"] == "degraded"
        assert health["consumers"]["work"]["error"].startswith("ConsumerCancelled")  # type: ignore[union-attr]


# ----------------------------------------------------------------------
# shutdown


@dataclasses.dataclass
class ShutdownRun:
    processed: list[int]  # the ids with a result published
    left: list[int]  # the ids still in the queue afterwards
    started: set[int]  # handlers started...
    finished: set[int]  # ...and finished
    cancelled: list[int]
    at_stop: set[int]  # handlers in flight when the lifespan was left
    stop_took: float


async def _shutdown_run(
    connection: aiorabbit.Connection, names: Names, *, shutdown_timeout: float, work: float | None
) -> ShutdownRun:
    """200 jobs, slow handlers (``work`` seconds each, or forever), and the
    lifespan left mid-way."""
    jobs, results = names.queue("jobs"), names.queue("results")
    rabbit = make(shutdown_timeout=shutdown_timeout)
    rabbit.queue(jobs)
    rabbit.queue(results)
    started: set[int] = set()
    finished: set[int] = set()
    cancelled: list[int] = []
    forever = asyncio.Event()

    @rabbit.consumer(jobs, model=Job, prefetch=20, concurrency=10)
    async def work_on(job: Job) -> None:
        started.add(job.id)
        try:
            if work is None:
                await forever.wait()
            await asyncio.sleep(work or 0)
            # Still usable by the handlers that finish during shutdown.
            assert (await rabbit.connection()).is_open
            await rabbit.publisher.publish_json({"id": job.id}, routing_key=results)
        except asyncio.CancelledError:
            cancelled.append(job.id)
            raise
        finished.add(job.id)

    async with rabbit.lifespan():
        await asyncio.gather(*(rabbit.publisher.publish_json({"id": n}, routing_key=jobs)
                               for n in range(200)))
        # Some done, and (the point of the test) some in flight.
        await eventually(lambda: (len(finished) >= 30 if work is not None else True)
                         and len(started - finished) == 10, what="work")
        at_stop = started - finished
        stop_began = time.monotonic()
    stop_took = time.monotonic() - stop_began
    assert not rabbit.running
    # The connection is closed: whatever it did not ack is back in the queue.
    processed = [body["id"] for body in bodies(await drain(connection, results, len(finished)))]
    left = [body["id"] for body in bodies(await drain(connection, jobs, 200 - len(finished)))]
    return ShutdownRun(processed, left, started, finished, cancelled, at_stop, stop_took)


async def test_shutdown_lets_handlers_in_flight_finish_and_loses_nothing(
    connection: aiorabbit.Connection, names: Names
) -> None:
    run = await _shutdown_run(connection, names, shutdown_timeout=10.0, work=0.02)
    assert run.at_stop and run.at_stop <= run.finished  # in flight at the stop, and they finished
    assert run.started == run.finished and not run.cancelled
    assert len(run.processed) == len(set(run.processed)) == len(run.finished) >= 30
    assert len(run.left) == len(set(run.left))
    assert not set(run.processed) & set(run.left)  # nothing both done and left to do
    assert sorted(run.processed + run.left) == list(range(200))
    assert run.stop_took < 2


async def test_shutdown_timeout_cancels_handlers_and_requeues_their_messages(
    connection: aiorabbit.Connection, names: Names
) -> None:
    run = await _shutdown_run(connection, names, shutdown_timeout=0.2, work=None)
    assert run.processed == [] and not run.finished
    assert sorted(run.cancelled) == sorted(run.started) == sorted(run.at_stop) and len(run.started) == 10
    assert sorted(run.left) == list(range(200))  # every job is still there, those cancelled included
    assert 0.2 <= run.stop_took < 2


async def test_stop_during_recovery_and_unconfirmed_publishes(names: Names) -> None:
    jobs = names.queue("jobs")
    async with Proxy("127.0.0.1", 5672) as proxy:
        rabbit = make(proxy.url, shutdown_timeout=0.1, wait_timeout=5.0)
        rabbit.queue(jobs)

        @rabbit.consumer(jobs)
        async def work(message: IncomingMessage) -> None:
            pass

        await rabbit.start()
        proxy.stall()
        proxy.cut()
        await eventually(lambda: rabbit.health()["status"] == "unavailable", what="unavailable")
        publish = asyncio.ensure_future(rabbit.publisher.publish(b"x", routing_key=jobs))
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await rabbit.stop()
        # The consumer could not be cancelled on the broker nor the publish
        # confirmed: shutdown still ends, and the publish fails (its caller knows).
        assert time.monotonic() - started < 3
        with pytest.raises(aiorabbit.AMQPError):
            await publish
        await rabbit.stop()  # idempotent


@pytest.mark.slow
async def test_stop_on_a_stalled_link_is_bounded_and_loses_nothing(
    connection: aiorabbit.Connection, names: Names
) -> None:
    jobs = names.queue("jobs")
    started: list[int] = []
    async with Proxy("127.0.0.1", 5672) as proxy:
        # connection_timeout bounds the close handshake that cannot complete.
        rabbit = make(proxy.url, shutdown_timeout=0.3, connection_timeout=1)
        rabbit.queue(jobs)

        @rabbit.consumer(jobs, model=Job, prefetch=5, concurrency=2)
        async def stuck(job: Job) -> None:
            started.append(job.id)
            await asyncio.Event().wait()

        await rabbit.start()
        for n in range(10):
            await rabbit.publisher.publish_json({"id": n}, routing_key=jobs)
        await eventually(lambda: len(started) == 2, what="2 handlers")
        proxy.stall()  # the broker answers nothing from now on
        began = time.monotonic()
        await rabbit.stop()
        assert time.monotonic() - began < 3
    # The link is gone: the broker requeued everything, the two started too.
    await settle_count(connection, jobs, 10)


async def test_a_handler_in_flight_when_the_link_is_cut_runs_again(
    connection: aiorabbit.Connection, names: Names
) -> None:
    jobs = names.queue("jobs")
    calls: list[bool] = []
    release = asyncio.Event()
    async with Proxy("127.0.0.1", 5672) as proxy:
        rabbit = make(proxy.url)
        rabbit.queue(jobs)

        @rabbit.consumer(jobs, model=Job)
        async def work(job: Job, message: IncomingMessage) -> None:
            calls.append(message.redelivered)
            await release.wait()

        async with rabbit.lifespan():
            await rabbit.publisher.publish_json({"id": 1}, routing_key=jobs)
            await eventually(lambda: calls == [False], what="the first delivery")
            proxy.cut()
            await eventually(lambda: rabbit.health()["status"] == "ok" and len(calls) == 2, what="redelivery")
            # The first run ends after the loss: its ack cannot be sent (and
            # is not needed: the broker redelivered the message).
            release.set()
            await eventually(lambda: rabbit.health()["consumers"]["work"]["in_flight"] == 0, what="both runs")
            assert rabbit.health()["consumers"]["work"]["processed"] == 2
    assert calls == [False, True]
    assert await ready(connection, jobs) == 0


# ----------------------------------------------------------------------
# startup and the lifecycle


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[aiorabbit.RobustConnection]:
    """Every RobustConnection aiorabbit.fastapi opens."""
    conns: list[aiorabbit.RobustConnection] = []
    real = aiorabbit.connect_robust

    def recording(*args: Any, **kwargs: Any) -> Any:
        pending = real(*args, **kwargs)
        factory = pending._factory

        def make_conn() -> aiorabbit.RobustConnection:
            conns.append(factory())
            return conns[-1]

        pending._factory = make_conn
        return pending

    monkeypatch.setattr("aiorabbit.fastapi.connect_robust", recording)
    return conns


async def test_startup_failures_leave_nothing_running(
    channel: aiorabbit.Channel, names: Names, opened: list[aiorabbit.RobustConnection]
) -> None:
    before = tasks_now()
    with socket.socket() as sock:  # a port on which nothing listens
        sock.bind(("127.0.0.1", 0))
        dead_url = f"amqp://guest:guest@127.0.0.1:{sock.getsockname()[1]}/%2F"

    # Unreachable, beyond the backoff's attempts.
    rabbit = make(dead_url, backoff=aiorabbit.Backoff(initial=0.01, maximum=0.02, max_attempts=2))
    with pytest.raises(ConnectionFailed):
        async with rabbit.lifespan():
            pytest.fail("started")  # pragma: no cover

    # Unreachable, beyond startup_timeout (the backoff would go on forever).
    rabbit = make(dead_url, startup_timeout=0.3)
    with pytest.raises(StartupTimeout, match=r"0\.3 s") as timed_out:
        await rabbit.start()
    # It names the broker (password masked) and why connecting failed.
    assert f"127.0.0.1:{dead_url.split(':')[-1].split('/')[0]}" in str(timed_out.value)
    assert "last error" in str(timed_out.value) and "guest:guest" not in str(timed_out.value)
    assert isinstance(timed_out.value.__cause__, ConnectionFailed)
    assert len(opened) == 2 and all(conn.is_closed for conn in opened)

    # The broker refuses the topology: declared otherwise already.
    queue = names.queue("q")
    await channel.queue_declare(queue, durable=False)
    rabbit = make()
    rabbit.queue(queue, durable=True)
    with pytest.raises(PreconditionFailed):
        await rabbit.start()

    # A consumer on a queue that nobody declared; the consumer before it had started.
    handled: list[bytes] = []
    rabbit = make()
    rabbit.queue(queue, durable=False)

    @rabbit.consumer(queue)
    async def first(message: IncomingMessage) -> None:
        handled.append(message.body)

    @rabbit.consumer(names.queue("missing"))
    async def second(message: IncomingMessage) -> None:  # pragma: no cover - never runs
        pass

    with pytest.raises(NotFound):
        await rabbit.start()

    assert len(opened) == 4 and all(conn.is_closed for conn in opened)
    assert tasks_now() == before
    assert not rabbit.running and rabbit.health()["state"] == "stopped"
    with pytest.raises(NotRunning):
        await rabbit.publisher.publish(b"x")
    # ...nor on the broker.
    ours = {conn._endpoints[0].name for conn in opened}
    assert not [c for c in await ctl.connections() if c["name"] in ours]

    # Fixed, it starts (the same object: start() after a failure is allowed).
    rabbit._specs.pop("second")
    async with rabbit.lifespan():
        await rabbit.publisher.publish(b"now", routing_key=queue)
        await eventually(lambda: handled == [b"now"], what="the message")
    assert tasks_now() == before


async def test_used_outside_the_lifespan(names: Names) -> None:
    queue = names.queue("q")
    rabbit = make()
    rabbit.queue(queue, durable=False)
    app = app_for(rabbit)

    @app.post("/publish")
    async def publish(publisher: Annotated[RabbitPublisher, Depends(rabbit.publisher)]) -> None:
        await publisher.publish(b"x", routing_key=queue)  # pragma: no cover - never reached

    @app.get("/connection")
    async def connection(conn: Annotated[aiorabbit.RobustConnection, Depends(rabbit.connection)]) -> str:
        return conn.state.value

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as client:
        # No lifespan: the dependency refuses, and health says so.
        with pytest.raises(NotRunning, match="inside the app's lifespan"):
            await client.post("/publish")
        with pytest.raises(NotRunning):
            await client.get("/connection")
        response = await client.get("/health")
        assert response.status_code == 503 and response.json()["state"] == "stopped"
    for call in (rabbit.publisher.publish(b"x"), rabbit.publisher.publish_json({}), rabbit.publisher(),
                 rabbit.connection()):
        with pytest.raises(NotRunning):
            await call

    async with serve(app) as client:
        assert (await client.get("/connection")).json() == "connected"
        # Not while running: registering, or starting again.
        with pytest.raises(InvalidArgument, match="before the app starts"):
            rabbit.queue(names.queue("late"))
        with pytest.raises(InvalidArgument, match="already running"):
            await rabbit.start()
        assert "running" in repr(rabbit)
    with pytest.raises(NotRunning):
        await rabbit.publisher.publish(b"x")
    await rabbit.stop()  # stopped already: nothing to do

    # It runs again, inside an application's own lifespan this time.
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with rabbit.lifespan(app):
            yield

    async with serve(FastAPI(lifespan=lifespan, routes=app.routes)) as client:
        assert (await client.get("/connection")).json() == "connected"
        assert (await client.get("/health")).json()["status"] == "ok"


def test_registration_is_checked() -> None:
    rabbit = RabbitMQ()

    async def one(body: Any) -> None:
        pass

    async def two(body: Any, message: IncomingMessage) -> None:
        pass

    async def none() -> None:
        pass

    async def three(a: Any, b: Any, c: Any) -> None:
        pass

    def sync(message: IncomingMessage) -> None:
        pass

    assert rabbit.consumer("q", json=True)(one) is one
    assert rabbit.consumer("q", model=Job)(two) is two
    with pytest.raises(InvalidArgument, match="already registered; pass name="):
        rabbit.consumer("q")(one)
    rabbit.consumer("q", name="other")(one)  # one parameter: the message
    for handler in (none, three):
        with pytest.raises(TypeError, match="must take"):
            rabbit.consumer("q", json=True, name="x")(handler)
    with pytest.raises(TypeError, match="must take the message"):
        rabbit.consumer("q", name="x")(none)
    with pytest.raises(TypeError, match="async function"):
        rabbit.consumer("q", name="x")(sync)  # type: ignore[type-var]
    bad_options: list[dict[str, Any]] = [{"prefetch": 0}, {"concurrency": 0}]
    for bad in bad_options:
        with pytest.raises(InvalidArgument):
            rabbit.consumer("q", **bad)
    with pytest.raises(pydantic_error()):
        rabbit.consumer("q", model=object())

    rabbit.exchange("x")
    with pytest.raises(InvalidArgument, match="already registered"):
        rabbit.exchange("x")
    for name in ("", "amq.direct"):
        with pytest.raises(InvalidArgument, match="exist"):
            rabbit.exchange(name)
    rabbit.queue("q", dead_letter_queue="q.dead")
    with pytest.raises(InvalidArgument, match="already registered"):
        rabbit.queue("q.dead")
    with pytest.raises(InvalidArgument, match="need a name"):
        rabbit.queue("")
    with pytest.raises(InvalidArgument, match="dead_letter_queue"):
        rabbit.queue("r", dead_letter_queue="r.dead", dead_letter_exchange="dlx")

    bad_options = [{"publisher_pool": 0}, {"publisher_window": 0}, {"shutdown_timeout": -1},
                   {"startup_timeout": 0}]
    for options in bad_options:
        with pytest.raises(InvalidArgument):
            RabbitMQ(**options)
    assert RabbitMQ(connection_name=None).connect_options == {}
    assert RabbitMQ("amqp://h", name="mine", heartbeat=5).connect_options == {"name": "mine", "heartbeat": 5}


def pydantic_error() -> type[Exception]:
    import pydantic

    return pydantic.PydanticSchemaGenerationError


def test_import_without_fastapi_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "fastapi", None)
    monkeypatch.delitem(sys.modules, "aiorabbit.fastapi")
    with pytest.raises(ImportError, match=r'pip install "aiorabbit-client\[fastapi\]"'):
        importlib.import_module("aiorabbit.fastapi")


def test_testclient_runs_the_lifespan(amqp_url: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # starlette's TestClient would rather have httpx2
        from fastapi.testclient import TestClient

    names = Names(f"test.fastapi.testclient.{uuid.uuid4().hex[:8]}")
    queue = names.queue("jobs")
    rabbit = make()
    rabbit.queue(queue, durable=False)
    done: list[Job] = []

    @rabbit.consumer(queue, model=Job)
    async def work(job: Job) -> None:
        done.append(job)

    app = app_for(rabbit)

    @app.post("/jobs")
    async def create(job: Job, publisher: Annotated[RabbitPublisher, Depends(rabbit.publisher)]) -> None:
        await publisher.publish_json(job, routing_key=queue)

    try:
        with TestClient(app) as client:
            assert client.post("/jobs", json={"id": 3}).status_code == 200
            deadline = time.monotonic() + 10
            while not done:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            assert client.get("/health").json()["consumers"]["work"]["processed"] == 1
        assert done == [Job(id=3)]
        assert not rabbit.running
    finally:
        asyncio.run(names.cleanup(amqp_url))


# ----------------------------------------------------------------------
# the example


async def test_example_app(
    connection: aiorabbit.Connection, names: Names, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = f"{names.prefix}.{uuid.uuid4().hex[:8]}."
    monkeypatch.setenv("AIORABBIT_EXAMPLES_PREFIX", prefix)
    spec = importlib.util.spec_from_file_location(f"fastapi_app_{uuid.uuid4().hex}", EXAMPLE)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    names.queues += [example.JOBS_QUEUE, example.DEAD_QUEUE, example.RESULTS_QUEUE]
    names.exchanges.append(example.JOBS_EXCHANGE)
    assert example.JOBS_QUEUE == f"{prefix}fastapi.jobs"

    texts = ["hello brave new world", "one", "  spaces   between  words "]
    async with serve(example.app) as client:
        assert (await client.get("/health")).json()["status"] == "ok"
        before = _scrape((await client.get("/metrics")).text)
        responses = [await client.post("/jobs", json={"text": text}) for text in texts]
        assert [r.status_code for r in responses] == [202] * 3
        job_ids = [r.json()["job_id"] for r in responses]
        assert all(r.json()["status"] == "queued" for r in responses)
        assert (await client.post("/jobs", json={"text": ""})).status_code == 422
        results = await drain(connection, example.RESULTS_QUEUE, 3)
        # A malformed job is dead-lettered.
        ch = await connection.channel()
        await ch.basic_publish(b'{"text": "no id"}', exchange=example.JOBS_EXCHANGE,
                               routing_key="count_words")
        [dead] = await drain(connection, example.DEAD_QUEUE, 1)
        assert dead.body == b'{"text": "no id"}'
        after = _scrape((await client.get("/metrics")).text)
    # The counters moved with the work: 3 jobs and 3 results published (and
    # confirmed), 4 deliveries settled (3 acked, 1 dead-lettered).
    assert after["messaging_publish_duration_seconds_count"] - before.get(
        "messaging_publish_duration_seconds_count", 0) == 6
    assert after["aiorabbit_publish_confirm_duration_seconds_count"] - before.get(
        "aiorabbit_publish_confirm_duration_seconds_count", 0) == 6
    assert after["aiorabbit_delivery_settled_total"] - before.get("aiorabbit_delivery_settled_total", 0) == 4
    assert after["aiorabbit_publish_confirms_in_flight"] == 0
    by_id = {json.loads(msg.body)["job_id"]: json.loads(msg.body)["words"] for msg in results}
    assert by_id == dict(zip(job_ids, [4, 1, 3], strict=True))
    assert sorted(msg.properties.correlation_id or "" for msg in results) == sorted(job_ids)
    assert await ready(connection, example.JOBS_QUEUE) == 0
