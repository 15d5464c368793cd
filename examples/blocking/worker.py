"""Tutorial two, "Work Queues": do the tasks of "task_queue", one at a time.

pika's worker.py with aiorabbit.blocking.  Start several: the broker hands
each task to one of them, and never a new one to a worker that has not
acknowledged its last (prefetch 1), so a busy worker is passed over for an
idle one.  The "work" is one second of sleep per dot in the task.  A task
is acknowledged once done: stop a worker mid-task (Ctrl-C) and the broker
gives the task to another.

    python examples/blocking/worker.py
"""

import time

from aiorabbit import IncomingMessage, blocking


def main() -> None:
    with blocking.connect() as connection:
        channel = connection.channel()
        channel.queue_declare("task_queue", durable=True)
        print(" [*] Waiting for messages. To exit press CTRL+C", flush=True)

        def callback(msg: IncomingMessage) -> None:
            print(f" [x] Received {msg.body.decode()}", flush=True)
            # Blocking here is fine: heartbeats go on on the connection's
            # I/O thread.
            time.sleep(msg.body.count(b"."))
            print(" [x] Done", flush=True)
            # pika's ch.basic_ack(delivery_tag=method.delivery_tag).
            msg.ack()

        # Fair dispatch: at most one unacknowledged task per worker.
        channel.basic_qos(prefetch_count=1)
        channel.basic_consume("task_queue", callback)
        print("ready", flush=True)
        channel.start_consuming()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        print("Interrupted", flush=True)
