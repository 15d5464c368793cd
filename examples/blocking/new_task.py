"""Tutorial two, "Work Queues": queue a task on the durable queue "task_queue".

pika's new_task.py with aiorabbit.blocking.  Each dot in the task stands
for one second of work for worker.py:

    python examples/blocking/new_task.py First message.
    python examples/blocking/new_task.py Second message..
    python examples/blocking/new_task.py Third message...

The queue is durable and the message persistent, so a queued task survives
a broker restart.
"""

import sys

import aiorabbit
from aiorabbit import blocking

connection = blocking.connect()
channel = connection.channel()

# durable=True: the queue survives a broker restart.  Every declaration of
# it must say so, the workers' included.
channel.queue_declare("task_queue", durable=True)

message = " ".join(sys.argv[1:]) or "Hello World!"
channel.basic_publish(
    message.encode(),
    exchange="",
    routing_key="task_queue",
    # delivery_mode=2: the broker writes the message to disk.
    properties=aiorabbit.Properties(delivery_mode=aiorabbit.DeliveryMode.PERSISTENT),
)
print(f" [x] Sent {message}", flush=True)
connection.close()
