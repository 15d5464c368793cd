"""Tutorial one, "Hello World!": send one message to the queue "hello".

pika's send.py with aiorabbit.blocking: connect, declare the queue, publish
through the default exchange and close.  Run receive.py in another terminal
to see the message arrive.  The broker is taken from ``$AMQP_URL`` (default:
the guest account on localhost).

    python examples/blocking/send.py
"""

from aiorabbit import blocking

# blocking.connect() with no URL reads $AMQP_URL.
connection = blocking.connect()
channel = connection.channel()

# Durable, unlike pika's tutorial: RabbitMQ 4.3 refuses by default a queue
# that is neither durable nor exclusive (and examples/hello_send.py declares
# "hello" the same way).  Sender and receiver declare it alike.
channel.queue_declare("hello", durable=True)

# The default exchange ("") routes a message to the queue its routing key
# names.  Bodies are bytes.
channel.basic_publish(b"Hello World!", exchange="", routing_key="hello")
print(" [x] Sent 'Hello World!'", flush=True)

# Writes what is still queued (a publish without confirms returns at once),
# then closes the connection.
connection.close()
