"""Tutorial six, "RPC": answer Fibonacci requests on the queue "rpc_queue".

pika's rpc_server.py with aiorabbit.blocking.  Each request's body is a
number n; the reply, fib(n), goes to the request's ``reply_to`` queue with
the request's ``correlation_id``, and only then is the request
acknowledged.  One request at a time (prefetch 1): start several servers
and the broker spreads the calls over them.

    python examples/blocking/rpc_server.py
"""

import aiorabbit
from aiorabbit import IncomingMessage, blocking


def fib(n: int) -> int:
    # The tutorial's deliberately slow recursive version: the "work".
    if n == 0:
        return 0
    elif n == 1:
        return 1
    else:
        return fib(n - 1) + fib(n - 2)


def main() -> None:
    with blocking.connect() as connection:
        channel = connection.channel()
        # Durable, like the queue examples/rpc_server.py declares (and
        # because RabbitMQ 4.3 refuses a queue neither durable nor exclusive).
        channel.queue_declare("rpc_queue", durable=True)

        # pika hands the callback its channel; aiorabbit's callback gets the
        # message only, and replies on the blocking channel from here.
        def on_request(msg: IncomingMessage) -> None:
            n = int(msg.body)

            print(f" [.] fib({n})", flush=True)
            response = fib(n)

            channel.basic_publish(
                str(response).encode(),
                exchange="",
                routing_key=msg.properties.reply_to or "",
                properties=aiorabbit.Properties(correlation_id=msg.properties.correlation_id),
            )
            # Written after the reply: the request is gone only once answered.
            msg.ack()

        channel.basic_qos(prefetch_count=1)
        channel.basic_consume("rpc_queue", on_request)

        print(" [x] Awaiting RPC requests", flush=True)
        print("ready", flush=True)
        channel.start_consuming()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("Interrupted", flush=True)
