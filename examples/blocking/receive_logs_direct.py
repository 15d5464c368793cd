"""Tutorial four, "Routing": print the log lines of the given severities.

pika's receive_logs_direct.py with aiorabbit.blocking.  The program binds
its own queue to "direct_logs" once per severity named on the command line.

    python examples/blocking/receive_logs_direct.py warning error
    python examples/blocking/receive_logs_direct.py info warning error
"""

import sys

from aiorabbit import IncomingMessage, blocking


def main() -> None:
    with blocking.connect() as connection:
        channel = connection.channel()
        channel.exchange_declare("direct_logs", "direct")

        result = channel.queue_declare("", exclusive=True)
        queue_name = result.queue

        severities = sys.argv[1:]
        if not severities:
            sys.stderr.write(f"Usage: {sys.argv[0]} [info] [warning] [error]\n")
            sys.exit(1)

        # One binding per severity: a queue may have as many as it likes.
        for severity in severities:
            channel.queue_bind(queue_name, "direct_logs", routing_key=severity)

        print(" [*] Waiting for logs. To exit press CTRL+C", flush=True)

        def callback(msg: IncomingMessage) -> None:
            # The routing key the line was published with is its severity.
            print(f" [x] {msg.routing_key}:{msg.body!r}", flush=True)

        channel.basic_consume(queue_name, callback, no_ack=True)
        print("ready", flush=True)
        channel.start_consuming()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("Interrupted", flush=True)
