"""Tutorial seven, "Publisher Confirms": three ways to wait for the broker's confirms.

With publisher confirms the broker acknowledges each message once it has
taken responsibility for it.  The program publishes MESSAGE_COUNT messages
(the first argument, default 50,000) three times, each time to a new
exclusive queue, and prints how long each strategy took:

1. individually: a confirm-mode channel's ``basic_publish`` returns once the
   broker confirmed that one message, a round trip per message;
2. in batches: ``Publisher.publish_many`` publishes a batch of BATCH_SIZE
   and returns once all of it is confirmed;
3. asynchronously: ``Publisher.submit`` returns a future at once; a done
   callback settles each message's entry in ``outstanding_confirms``, and
   the program waits until none is left.

    python examples/blocking/publisher_confirms.py
    python examples/blocking/publisher_confirms.py 1000
"""

from __future__ import annotations

import concurrent.futures
import functools
import sys
import threading
import time

from aiorabbit import blocking

MESSAGE_COUNT = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000
BATCH_SIZE = 100


def elapsed_ms(start: float) -> int:
    return round((time.perf_counter() - start) * 1000)


def publish_messages_individually(connection: blocking.BlockingConnection) -> None:
    channel = connection.channel(publisher_confirms=True)
    queue = channel.queue_declare("", exclusive=True).queue

    start = time.perf_counter()
    for i in range(MESSAGE_COUNT):
        # Returns once confirmed; raises PublishNacked if the broker refused.
        channel.basic_publish(str(i).encode(), routing_key=queue)
    print(f"Published {MESSAGE_COUNT:,} messages individually in {elapsed_ms(start):,} ms", flush=True)
    channel.close()


def publish_messages_in_batch(connection: blocking.BlockingConnection) -> None:
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).queue

    with blocking.Publisher(connection) as publisher:
        start = time.perf_counter()
        batch: list[blocking.OutgoingMessage] = []
        for i in range(MESSAGE_COUNT):
            batch.append(blocking.OutgoingMessage(str(i).encode(), routing_key=queue))
            if len(batch) == BATCH_SIZE:
                # Returns once the whole batch is confirmed (raises if any
                # message of it was refused).
                publisher.publish_many(batch)
                batch = []
        if batch:
            publisher.publish_many(batch)
        print(f"Published {MESSAGE_COUNT:,} messages in batch in {elapsed_ms(start):,} ms", flush=True)
    channel.close()


def handle_publish_confirms_asynchronously(connection: blocking.BlockingConnection) -> None:
    channel = connection.channel()
    queue = channel.queue_declare("", exclusive=True).queue

    # Sequence number -> body, until the broker confirmed the message.  The
    # done callbacks run on the connection's I/O thread: hence the lock.
    outstanding_confirms: dict[int, bytes] = {}
    settled = threading.Condition()

    def on_confirm(sequence_number: int, future: concurrent.futures.Future[str]) -> None:
        with settled:
            body = outstanding_confirms.pop(sequence_number)
            error = future.exception()
            if error is not None:
                print(f"Message with body {body!r} has been nack-ed: {error}", flush=True)
            if not outstanding_confirms:
                settled.notify_all()

    with blocking.Publisher(connection) as publisher:
        start = time.perf_counter()
        for i in range(MESSAGE_COUNT):
            body = str(i).encode()
            with settled:
                outstanding_confirms[i] = body
            # Returns at once (or once fewer than the publisher's window of
            # messages are unconfirmed).
            future = publisher.submit(body, routing_key=queue)
            future.add_done_callback(functools.partial(on_confirm, i))
        with settled:
            if not settled.wait_for(lambda: not outstanding_confirms, timeout=60):
                raise RuntimeError("All messages could not be confirmed in 60 seconds")
        print(
            f"Published {MESSAGE_COUNT:,} messages and handled confirms asynchronously "
            f"in {elapsed_ms(start):,} ms",
            flush=True,
        )
    channel.close()


def main() -> None:
    with blocking.connect() as connection:
        publish_messages_individually(connection)
        publish_messages_in_batch(connection)
        handle_publish_confirms_asynchronously(connection)


if __name__ == "__main__":
    main()
