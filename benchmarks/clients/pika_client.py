"""pika's BlockingConnection: a blocking client, one outstanding confirm."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pika

NAME = "pika"
_REPLY_TO = "amq.rabbitmq.reply-to"


class Client:
    def connect(self, url: str) -> None:
        params = pika.URLParameters(url)
        params.client_properties = {"connection_name": "bench-pika"}
        self.conn = pika.BlockingConnection(params)

    def publish(self, queue: str, body: bytes, count: int, confirms: bool, window: int) -> None:
        # ``window`` is ignored: with confirms each basic_publish blocks until its confirm.
        ch = self.conn.channel()
        if confirms:
            ch.confirm_delivery()
        for _ in range(count):
            ch.basic_publish(exchange="", routing_key=queue, body=body)
        if not confirms:
            ch.queue_declare(queue, passive=True)

    def consume(self, queue: str, count: int, no_ack: bool, prefetch: int) -> int:
        ch = self.conn.channel()
        if not no_ack:
            ch.basic_qos(prefetch_count=prefetch)
        received = total = 0

        def on_message(ch: Any, method: Any, properties: Any, body: bytes) -> None:
            nonlocal received, total
            if received == count:
                return  # beyond ``count``: left unacked, requeued when the channel closes
            received += 1
            total += len(body)
            if not no_ack:
                ch.basic_ack(method.delivery_tag)

        tag = ch.basic_consume(queue, on_message, auto_ack=no_ack)
        while received < count:
            self.conn.process_data_events(time_limit=1)
        ch.basic_cancel(tag)
        return total

    def rpc(self, queue: str, body: bytes, count: int) -> list[float]:
        ch = self.conn.channel()
        waiting: dict[str, bytes | None] = {}

        def on_reply(ch: Any, method: Any, properties: Any, reply: bytes) -> None:
            if properties.correlation_id in waiting:
                waiting[properties.correlation_id] = reply

        ch.basic_consume(_REPLY_TO, on_reply, auto_ack=True)
        latencies = []
        for _ in range(count):
            cid = uuid.uuid4().hex
            waiting[cid] = None
            start = time.perf_counter()
            props = pika.BasicProperties(correlation_id=cid, reply_to=_REPLY_TO)
            ch.basic_publish(exchange="", routing_key=queue, body=body, properties=props)
            while waiting[cid] is None:
                self.conn.process_data_events(time_limit=1)
            latencies.append(time.perf_counter() - start)
            del waiting[cid]
        return latencies

    def close(self) -> None:
        self.conn.close()


CLIENT = Client
