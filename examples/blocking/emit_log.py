"""Tutorial three, "Publish/Subscribe": broadcast a log line on the fanout exchange "logs".

pika's emit_log.py with aiorabbit.blocking.  A fanout exchange copies each
message to every queue bound to it and ignores the routing key; with no
receive_logs.py running the message goes nowhere.

    python examples/blocking/emit_log.py
    python examples/blocking/emit_log.py "warning: disk almost full"
"""

import sys

from aiorabbit import blocking

connection = blocking.connect()
channel = connection.channel()

channel.exchange_declare("logs", "fanout")

message = " ".join(sys.argv[1:]) or "info: Hello World!"
channel.basic_publish(message.encode(), exchange="logs", routing_key="")
print(f" [x] Sent {message}", flush=True)
connection.close()
