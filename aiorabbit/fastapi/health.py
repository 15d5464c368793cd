"""What :meth:`RabbitMQ.health` reports."""

from __future__ import annotations

from typing import Literal, TypedDict

__all__ = ["ConsumerHealth", "Health", "PublisherHealth", "Status"]

Status = Literal["ok", "degraded", "unavailable"]


class ConsumerHealth(TypedDict):
    """One consumer in :meth:`RabbitMQ.health`."""

    queue: str
    #: Registered with the broker and taking messages right now.
    consuming: bool
    #: Handlers running now.
    in_flight: int
    #: Messages whose handler returned (then acked) since startup.
    processed: int
    #: Messages whose handler raised (dead-lettered, or requeued).
    failed: int
    #: Messages whose body did not decode (dead-lettered without a handler call).
    rejected: int
    #: Why the consumer stopped, if it stopped on its own.
    error: str | None


class PublisherHealth(TypedDict):
    """The publisher pool in :meth:`RabbitMQ.health`."""

    channels: int
    #: Publishes waiting for their confirm (or for room in a window).
    in_flight: int


class Health(TypedDict):
    """What :meth:`RabbitMQ.health` returns."""

    #: ``ok``; ``degraded``: connected, but a consumer is not consuming or
    #: the broker blocks publishers; ``unavailable``: not connected.
    status: Status
    #: The connection's state (``connected``, ``reconnecting``...), or
    #: ``stopped`` / ``starting`` / ``stopping``.
    state: str
    #: The broker blocks publishers on this connection (a resource alarm).
    blocked: bool
    consumers: dict[str, ConsumerHealth]
    publishers: PublisherHealth
