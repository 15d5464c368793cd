"""Tutorial five, "Topics": print the log lines whose key matches a pattern.

pika's receive_logs_topic.py with aiorabbit.blocking.  In a binding key
"*" matches exactly one word and "#" zero or more: "kern.*" takes
"kern.info" but not "kern.disk.info", and a message that matches several
bindings of the queue still arrives once.

    python examples/blocking/receive_logs_topic.py "#"
    python examples/blocking/receive_logs_topic.py "kern.*" "*.critical"
"""

import sys

from aiorabbit import IncomingMessage, blocking


def main() -> None:
    with blocking.connect() as connection:
        channel = connection.channel()
        channel.exchange_declare("topic_logs", "topic")

        result = channel.queue_declare("", exclusive=True)
        queue_name = result.queue

        binding_keys = sys.argv[1:]
        if not binding_keys:
            sys.stderr.write(f"Usage: {sys.argv[0]} [binding_key]...\n")
            sys.exit(1)

        for binding_key in binding_keys:
            channel.queue_bind(queue_name, "topic_logs", routing_key=binding_key)

        print(" [*] Waiting for logs. To exit press CTRL+C", flush=True)

        def callback(msg: IncomingMessage) -> None:
            print(f" [x] {msg.routing_key}:{msg.body!r}", flush=True)

        channel.basic_consume(queue_name, callback, no_ack=True)
        print("ready", flush=True)
        channel.start_consuming()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("Interrupted", flush=True)
