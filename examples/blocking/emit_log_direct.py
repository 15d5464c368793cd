"""Tutorial four, "Routing": send a log line with a severity to the direct exchange "direct_logs".

pika's emit_log_direct.py with aiorabbit.blocking.  The severity is the
routing key: the exchange delivers the message to the queues bound with
exactly that key.

    python examples/blocking/emit_log_direct.py                  # info: Hello World!
    python examples/blocking/emit_log_direct.py error "Run. Run. Or it will explode."
"""

import sys

from aiorabbit import blocking

connection = blocking.connect()
channel = connection.channel()

channel.exchange_declare("direct_logs", "direct")

severity = sys.argv[1] if len(sys.argv) > 1 else "info"
message = " ".join(sys.argv[2:]) or "Hello World!"
channel.basic_publish(message.encode(), exchange="direct_logs", routing_key=severity)
print(f" [x] Sent {severity}:{message}", flush=True)
connection.close()
