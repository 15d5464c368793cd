"""A FastAPI service that queues jobs on RabbitMQ and works on them.

    pip install "aiorabbit-client[fastapi]" uvicorn
    uvicorn examples.fastapi_app:app            # $AMQP_URL selects the broker

    curl -X POST localhost:8000/jobs -H 'content-type: application/json' \\
         -d '{"text": "hello brave new world"}'
    curl localhost:8000/health
    curl localhost:8000/metrics       # with the OpenTelemetry Prometheus exporter installed

POST /jobs publishes the job to the "fastapi.jobs" exchange with publisher
confirms: the 202 answer means the broker has the job, persistent, in the
durable "fastapi.jobs" queue.  The worker (a consumer in the same app; run
more replicas to share the work) counts the job's words and publishes the
result to the "fastapi.results" queue, then acks the job.  A job that does
not decode ends in "fastapi.jobs.dead".  Stopping the app (Ctrl-C, SIGTERM)
lets the jobs in progress finish; the others stay queued.

With ``pip install "aiorabbit-client[otel]" opentelemetry-sdk
opentelemetry-exporter-prometheus`` the app also serves its metrics (messages
published and consumed, confirm latency, consumer buffers, recoveries...) at
/metrics for Prometheus to scrape (docs/observability.md).

Every name starts with $AIORABBIT_EXAMPLES_PREFIX (the tests set it).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import uuid
from typing import Annotated

from fastapi import Depends, FastAPI, HTTPException, Response
from pydantic import BaseModel, Field

import aiorabbit
from aiorabbit.fastapi import RabbitMQ, RabbitPublisher

# uvicorn configures only its own loggers: give aiorabbit's (a handler that
# failed, a job that could not be decoded, a reconnect) a format and a level
# too.  See docs/logging.md for a uvicorn --log-config file instead.
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

PREFIX = os.environ.get("AIORABBIT_EXAMPLES_PREFIX", "")
JOBS_EXCHANGE = f"{PREFIX}fastapi.jobs"
JOBS_QUEUE = f"{PREFIX}fastapi.jobs"
DEAD_QUEUE = f"{PREFIX}fastapi.jobs.dead"
RESULTS_QUEUE = f"{PREFIX}fastapi.results"


class NewJob(BaseModel):
    text: str = Field(min_length=1, max_length=100_000)


class Job(BaseModel):
    id: str
    text: str


class Queued(BaseModel):
    job_id: str
    status: str = "queued"


class Result(BaseModel):
    job_id: str
    words: int


# -- Metrics: OpenTelemetry, exported for Prometheus (when installed) --------

try:
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

    from aiorabbit.otel import OpenTelemetryObserver
except ImportError:
    observer = None
else:
    observer = OpenTelemetryObserver(meter_provider=MeterProvider(metric_readers=[PrometheusMetricReader()]))

# -- RabbitMQ: connection, topology and the worker ------------------------

rabbit = RabbitMQ(connection_name="aiorabbit-fastapi-example", shutdown_timeout=10, observer=observer)
rabbit.exchange(JOBS_EXCHANGE, "direct")
rabbit.queue(JOBS_QUEUE, bindings=[(JOBS_EXCHANGE, "count_words")], dead_letter_queue=DEAD_QUEUE)
rabbit.queue(RESULTS_QUEUE)


@rabbit.consumer(JOBS_QUEUE, model=Job, prefetch=20, concurrency=10)
async def count_words(job: Job) -> None:
    """Acked when this returns; a job redelivered after a crash is counted
    again, which is harmless here (the result carries the job's id)."""
    result = Result(job_id=job.id, words=len(job.text.split()))
    await rabbit.publisher.publish_json(
        result, routing_key=RESULTS_QUEUE, mandatory=True,
        properties=aiorabbit.Properties(correlation_id=job.id),
    )


# -- HTTP ---------------------------------------------------------------------

app = FastAPI(title="aiorabbit FastAPI example", lifespan=rabbit.lifespan)
rabbit.add_health_route(app, "/health")

if observer is not None:

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


@app.post("/jobs", status_code=202)
async def create_job(
    new: NewJob, publisher: Annotated[RabbitPublisher, Depends(rabbit.publisher)]
) -> Queued:
    job = Job(id=uuid.uuid4().hex, text=new.text)
    try:
        # Returns once the broker confirmed the job; the job's id is the
        # message_id, so a consumer can tell a republished copy.
        await publisher.publish_json(
            job, exchange=JOBS_EXCHANGE, routing_key="count_words", mandatory=True,
            properties=aiorabbit.Properties(message_id=job.id),
        )
    except aiorabbit.AMQPError as exc:  # unroutable, nacked, broker unreachable for too long
        raise HTTPException(503, f"the job was not queued: {type(exc).__name__}") from exc
    return Queued(job_id=job.id)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    try:
        import uvicorn
    except ImportError:
        sys.exit("error: this example runs under uvicorn: pip install uvicorn")
    uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
