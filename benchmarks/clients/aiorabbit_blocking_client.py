"""aiorabbit.blocking: the async core on an I/O thread, behind blocking calls
(the same work as pika's BlockingConnection in pika_client.py)."""

from __future__ import annotations

import time

from aiorabbit import blocking

NAME = "aiorabbit-blocking"


class Client:
    def connect(self, url: str) -> None:
        self.conn = blocking.connect(url, name="bench-aiorabbit-blocking")

    def publish(self, queue: str, body: bytes, count: int, confirms: bool, window: int) -> None:
        if confirms:
            # What a blocking program does with a batch to publish safely: the
            # Publisher keeps ``window`` unconfirmed, where pika waits for each.
            with blocking.Publisher(self.conn, window=window) as publisher:
                message = blocking.OutgoingMessage(body, routing_key=queue)
                publisher.publish_many([message] * count)
            return
        ch = self.conn.channel()
        for _ in range(count):
            ch.basic_publish(body, routing_key=queue)
        ch.queue_declare(queue, passive=True)  # after every publish: they were written

    def consume(self, queue: str, count: int, no_ack: bool, prefetch: int) -> int:
        ch = self.conn.channel()
        if not no_ack:
            ch.basic_qos(prefetch_count=prefetch)
        received = total = 0
        for msg in ch.consume(queue, no_ack=no_ack):
            assert msg is not None
            if not no_ack:
                msg.ack()
            total += len(msg.body_view)  # no copy of a large body (the documented way)
            received += 1
            if received == count:
                break
        return total

    def rpc(self, queue: str, body: bytes, count: int) -> list[float]:
        latencies = []
        with blocking.RpcClient(self.conn, timeout=30) as rpc:
            for _ in range(count):
                start = time.perf_counter()
                rpc.call(body, routing_key=queue)
                latencies.append(time.perf_counter() - start)
        return latencies

    def close(self) -> None:
        self.conn.close()


CLIENT = Client
