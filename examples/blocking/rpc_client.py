"""Tutorial six, "RPC": ask rpc_server.py for a Fibonacci number.

pika's rpc_client.py with aiorabbit.blocking.  FibonacciRpcClient declares
an exclusive reply queue and consumes it; ``call`` publishes the request
with ``reply_to`` set to that queue and a fresh ``correlation_id``, then
runs the connection's events (``process_data_events``) until the reply with
that id has come.

    python examples/blocking/rpc_client.py          # fib(30)
    python examples/blocking/rpc_client.py 10       # fib(10)

(aiorabbit.blocking.RpcClient does all of this in one ``call``, with
RabbitMQ's direct reply-to, timeouts and any number of calls at once.)
"""

from __future__ import annotations

import sys
import uuid

import aiorabbit
from aiorabbit import IncomingMessage, blocking


class FibonacciRpcClient:
    def __init__(self) -> None:
        self.connection = blocking.connect()

        self.channel = self.connection.channel()

        result = self.channel.queue_declare("", exclusive=True)
        self.callback_queue = result.queue

        self.channel.basic_consume(self.callback_queue, self.on_response, no_ack=True)

        self.response: bytes | None = None
        self.corr_id: str | None = None

    def on_response(self, msg: IncomingMessage) -> None:
        if self.corr_id == msg.properties.correlation_id:
            self.response = msg.body

    def call(self, n: int) -> int:
        self.response = None
        self.corr_id = str(uuid.uuid4())
        self.channel.basic_publish(
            str(n).encode(),
            exchange="",
            routing_key="rpc_queue",
            properties=aiorabbit.Properties(reply_to=self.callback_queue, correlation_id=self.corr_id),
        )
        while self.response is None:
            # Runs on_response here once a reply has come (time_limit=None:
            # waits for at least one).
            self.connection.process_data_events(time_limit=None)
        return int(self.response)


fibonacci_rpc = FibonacciRpcClient()

n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
print(f" [x] Requesting fib({n})", flush=True)
response = fibonacci_rpc.call(n)
print(f" [.] Got {response}", flush=True)

# Not in pika's tutorial: a clean close, rather than the TCP connection
# dropping as the program exits.
fibonacci_rpc.connection.close()
