"""aiorabbit: a fast, asyncio-native RabbitMQ (AMQP 0-9-1) client.

Quick start::

    import aiorabbit

    async with aiorabbit.connect() as conn:
        ch = await conn.channel(publisher_confirms=True)
        await ch.queue_declare("jobs", durable=True)
        await ch.basic_publish(b"hello", routing_key="jobs")
        async with ch.consume("jobs") as messages:
            async for msg in messages:
                print(msg.body)
                await msg.ack()
                break
"""

from __future__ import annotations

from . import blocking as blocking  # aiorabbit.blocking.connect()
from . import observe as observe  # aiorabbit.observe.install()
from ._version import __version__
from .backoff import Backoff
from .channel import Channel, DeclareOk
from .codec.properties import DeliveryMode, Properties
from .codec.table import (
    Float32,
    Int8,
    Int16,
    Int32,
    Int64,
    UInt8,
    UInt16,
    UInt32,
)
from .connection import Connection, connect
from .consumer import Consumer
from .exceptions import *  # noqa: F403
from .exceptions import __all__ as _exception_names
from .message import AssembledMessage, IncomingMessage, ReturnedMessage
from .parameters import ConnectionParameters
from .publisher import OutgoingMessage, Publisher
from .robust import DeclaredQueue, RobustChannel, RobustConnection, RobustConsumer, connect_robust

# No handler of our own (not even a NullHandler): in a program that
# configures no logging, Python's last-resort handler prints our warnings
# and errors to stderr, so failures are never invisible (under uvicorn
# too).  Configure the "aiorabbit" logger to route or silence them.

__all__ = [
    "__version__",
    "connect",
    "connect_robust",
    "Backoff",
    "Connection",
    "RobustConnection",
    "RobustChannel",
    "RobustConsumer",
    "DeclaredQueue",
    "Publisher",
    "OutgoingMessage",
    "ConnectionParameters",
    "Channel",
    "Consumer",
    "DeclareOk",
    "DeliveryMode",
    "Properties",
    "IncomingMessage",
    "AssembledMessage",
    "ReturnedMessage",
    "Float32",
    "Int8",
    "Int16",
    "Int32",
    "Int64",
    "UInt8",
    "UInt16",
    "UInt32",
    *_exception_names,
]
