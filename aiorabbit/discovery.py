"""Find a running RabbitMQ broker, for tests, scripts and other test runners.

This module does not import pytest: ``with broker_url() as url:`` works in
any program.  (:mod:`aiorabbit.testing`, the pytest fixtures, uses it.)
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator

from .parameters import ConnectionParameters, redact_urls

__all__ = ["BrokerUnavailable", "broker_url", "LOCAL_URL", "HOW_TO_START"]

LOCAL_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"
CONTAINER_IMAGE = "rabbitmq:3-management"
HOW_TO_START = (
    "set AMQP_URL (or --amqp-url), start RabbitMQ on localhost:5672 "
    "('rabbitmq-server -detached', or 'docker compose up -d' with aiorabbit's docker-compose.yml), "
    "or run a Docker engine so that testcontainers can start one"
)


class BrokerUnavailable(RuntimeError):
    """No broker answers and none could be started."""


def _answers(url: str, timeout: float = 1.0) -> bool:
    # A malformed URL raises InvalidArgument, whose message never holds the
    # password (urllib's ValueError may: "Port could not be cast ... 's3cr3t'").
    params = ConnectionParameters.from_url(url)
    try:
        with socket.create_connection((params.host, params.port), timeout):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def broker_url(url: str | None = None) -> Iterator[str]:
    """Yield the URL of a running broker.

    ``url`` (else ``$AMQP_URL``) is used when given and must answer; else the
    broker on localhost:5672; else a container started with testcontainers,
    stopped when the block ends.  Raises :class:`BrokerUnavailable`, or
    :class:`~aiorabbit.InvalidArgument` for a malformed URL (neither
    message holds the URL's password).
    """
    url = url or os.environ.get("AMQP_URL") or None
    if url is not None:
        if not _answers(url):
            raise BrokerUnavailable(f"the broker at {redact_urls(url)} does not answer")
        yield url
        return
    if _answers(LOCAL_URL):
        yield LOCAL_URL
        return
    try:
        from testcontainers.rabbitmq import RabbitMqContainer

        container = RabbitMqContainer(CONTAINER_IMAGE)
        container.start()
    except Exception as exc:  # not installed, no Docker engine, no image...
        raise BrokerUnavailable(f"no RabbitMQ broker: {HOW_TO_START} ({exc})") from exc
    try:
        host = container.get_container_host_ip()
        port = container.get_exposed_port(5672)
        yield f"amqp://guest:guest@{host}:{port}/%2F"
    finally:
        container.stop()
