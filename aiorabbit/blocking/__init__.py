"""A blocking API: aiorabbit's async core on a background event-loop thread.

For scripts, threaded web apps and programs written after pika's
``BlockingConnection``::

    from aiorabbit import blocking

    with blocking.connect() as conn:
        ch = conn.channel(publisher_confirms=True)
        ch.queue_declare("hello")
        ch.basic_publish(b"Hello World!", routing_key="hello")   # returns once confirmed
        for msg in ch.consume("hello", inactivity_timeout=1):
            if msg is None:
                break
            print(msg.body)
            msg.ack()

Every connection runs its own event loop in a daemon thread; the standard
library is all it takes (see docs/blocking.md for why not anyio's portal).
Any thread may use a connection at once: what a thread asks goes, in the
order it asked, through one queue into that loop, where heartbeats and
confirms keep flowing while application code blocks.  Callbacks never run
on the I/O thread.  Exceptions are the async API's classes.  ``close()``
closes the connection and joins the thread.
"""

from ..message import IncomingMessage
from ..publisher import OutgoingMessage
from .channel import BlockingChannel
from .connection import BlockingConnection, connect, connect_robust
from .publisher import Publisher, RpcClient

__all__ = [
    "BlockingChannel",
    "BlockingConnection",
    "IncomingMessage",
    "OutgoingMessage",
    "Publisher",
    "RpcClient",
    "connect",
    "connect_robust",
]
