"""Tutorial one, "Hello World!": print the messages of the queue "hello".

pika's receive.py with aiorabbit.blocking: ``basic_consume`` registers a
callback, ``start_consuming`` runs it on this thread for each delivery until
Ctrl-C.  Once the consumer is registered the program prints a line "ready",
so that scripts (and the tests) know when to send.

    python examples/blocking/receive.py
"""

from aiorabbit import IncomingMessage, blocking


def main() -> None:
    # Leaving the block (Ctrl-C included) closes the connection and joins
    # its I/O thread.
    with blocking.connect() as connection:
        channel = connection.channel()
        # Declared here too: whichever program starts first creates it.
        channel.queue_declare("hello", durable=True)

        # pika's callback takes (ch, method, properties, body); aiorabbit's
        # takes the message, which carries all of them.
        def callback(msg: IncomingMessage) -> None:
            print(f" [x] Received {msg.body!r}", flush=True)

        # no_ack=True is pika's auto_ack=True.
        channel.basic_consume("hello", callback, no_ack=True)

        print(" [*] Waiting for messages. To exit press CTRL+C", flush=True)
        print("ready", flush=True)
        channel.start_consuming()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        # The connection is closed already: no need for pika's os._exit().
        print("Interrupted", flush=True)
