"""Tutorial three, "Publish/Subscribe": print every log line broadcast on "logs".

pika's receive_logs.py with aiorabbit.blocking.  Each running copy binds a
fresh queue of its own to the fanout exchange, so each gets every message:
the broker names the queue, and deletes it when this connection closes
(exclusive).

    python examples/blocking/receive_logs.py
"""

from aiorabbit import IncomingMessage, blocking


def main() -> None:
    with blocking.connect() as connection:
        channel = connection.channel()
        channel.exchange_declare("logs", "fanout")

        # queue="" asks the broker for a unique name (amq.gen-...); pika's
        # result.method.queue is result.queue here.
        result = channel.queue_declare("", exclusive=True)
        queue_name = result.queue

        channel.queue_bind(queue_name, "logs")

        print(" [*] Waiting for logs. To exit press CTRL+C", flush=True)

        def callback(msg: IncomingMessage) -> None:
            print(f" [x] {msg.body!r}", flush=True)

        channel.basic_consume(queue_name, callback, no_ack=True)
        print("ready", flush=True)
        channel.start_consuming()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("Interrupted", flush=True)
