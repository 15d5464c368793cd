"""Tutorial five, "Topics": send a log line to the topic exchange "topic_logs".

pika's emit_log_topic.py with aiorabbit.blocking.  The routing key is a
list of words separated by dots, here "<facility>.<severity>"; receivers
bind with patterns in which "*" stands for one word and "#" for any number.

    python examples/blocking/emit_log_topic.py                   # anonymous.info: Hello World!
    python examples/blocking/emit_log_topic.py kern.critical "A critical kernel error"
"""

import sys

from aiorabbit import blocking

connection = blocking.connect()
channel = connection.channel()

channel.exchange_declare("topic_logs", "topic")

# pika's tutorial takes the key only when a message follows it (len > 2);
# here a lone key is used too, with the default message.
routing_key = sys.argv[1] if len(sys.argv) > 1 else "anonymous.info"
message = " ".join(sys.argv[2:]) or "Hello World!"
channel.basic_publish(message.encode(), exchange="topic_logs", routing_key=routing_key)
print(f" [x] Sent {routing_key}:{message}", flush=True)
connection.close()
