"""The ceiling: a bare blocking socket, no client library on the hot path.

It speaks just enough AMQP to log in (the frames come from aiorabbit's
sans-I/O codec, outside the timed part), then:

* publishes by writing one pre-encoded message over and over, in large
  ``sendall`` batches, so the only limit is the broker and the socket;
* consumes by walking frame headers only, never decoding a method or a
  property: method frames are counted (the first is ``consume-ok``, every
  later one a ``basic.deliver`` whose tag is its rank), header frames give
  the body size, body frames are only measured; with acks it sends one
  pre-packed ``basic.ack`` per delivery, batched per ``recv``.

Whatever this reaches is what the broker allows on this machine; every
client's figure is reported as a fraction of it.
"""

from __future__ import annotations

import socket
import struct
from typing import Any
from urllib.parse import unquote, urlsplit

from aiorabbit.codec import PROTOCOL_HEADER, FrameParser, encode_content_frames, encode_method_frame
from aiorabbit.codec import methods as m

NAME = "bare"
_FRAME_MAX = 131072
_HEAD = struct.Struct(">BHI")
# basic.ack on channel 1: frame head, class 60, method 80, tag, multiple=0, frame end.
_ACK = struct.Struct(">BHIHHQBB")
_BATCH = 256 * 1024


class Client:
    def connect(self, url: str) -> None:
        parts = urlsplit(url)
        self.sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.parser = FrameParser()
        self.sock.sendall(PROTOCOL_HEADER)
        self._expect(m.ConnectionStart)
        auth = f"\0{unquote(parts.username or 'guest')}\0{unquote(parts.password or 'guest')}".encode()
        self._send(0, m.ConnectionStartOk(client_properties={"product": "bare"}, mechanism="PLAIN",
                                          response=auth, locale="en_US"))
        tune = self._expect(m.ConnectionTune)
        self._send(0, m.ConnectionTuneOk(channel_max=tune.channel_max, frame_max=_FRAME_MAX, heartbeat=0))
        vhost = unquote(parts.path[1:]) if len(parts.path) > 1 else "/"
        self._send(0, m.ConnectionOpen(virtual_host=vhost))
        self._expect(m.ConnectionOpenOk)
        self._send(1, m.ChannelOpen())
        self._expect(m.ChannelOpenOk)

    def _send(self, channel: int, method: Any) -> None:
        self.sock.sendall(encode_method_frame(channel, method))

    def _expect(self, kind: type[Any]) -> Any:
        while True:
            for frame in self.parser.feed(self.sock.recv(65536)):
                method = getattr(frame, "method", None)
                if isinstance(method, kind):
                    return method
                if method is not None:
                    raise RuntimeError(f"expected {kind.NAME}, got {method!r}")

    def publish(self, queue: str, body: bytes, count: int, confirms: bool, window: int) -> None:
        if confirms:
            raise NotImplementedError("the bare socket measures publishing without confirms only")
        out: list[Any] = [encode_method_frame(1, m.BasicPublish(routing_key=queue))]
        encode_content_frames(1, 60, body, b"\x00\x00", _FRAME_MAX, out)
        one = b"".join(out)
        per_batch = max(1, _BATCH // len(one))
        batch = one * per_batch
        sent = 0
        while count - sent >= per_batch:
            self.sock.sendall(batch)
            sent += per_batch
        self.sock.sendall(one * (count - sent))
        self._send(1, m.QueueDeclare(queue=queue, passive=True))
        self._expect(m.QueueDeclareOk)

    def consume(self, queue: str, count: int, no_ack: bool, prefetch: int) -> int:
        if not no_ack:
            self._send(1, m.BasicQos(prefetch_count=prefetch))
            self._expect(m.BasicQosOk)
        self._send(1, m.BasicConsume(queue=queue, no_ack=no_ack))
        sock, ack = self.sock, _ACK.pack
        buf = bytearray(4 << 20)  # received straight into, never copied out
        view = memoryview(buf)
        have = skip = 0  # valid bytes in buf; body bytes (and end octet) still to pass over
        methods = headers = body = expected = 0
        while not (methods > count and headers == count and body == expected and not skip):
            received = sock.recv_into(view[have:])
            if not received:
                raise ConnectionError("the broker closed the connection")
            have += received
            pos, first = 0, methods
            if skip:
                pos = min(skip, have)
                skip -= pos
            while not skip and have - pos >= 7:
                kind, _, size = _HEAD.unpack_from(buf, pos)
                if kind == 3:
                    body += size
                    take = min(size + 1, have - pos - 7)
                    skip = size + 1 - take
                    pos += 7 + take
                    continue
                if have - pos < size + 8:
                    break
                if kind == 1:
                    methods += 1
                elif kind == 2:
                    headers += 1
                    expected += int.from_bytes(buf[pos + 11 : pos + 19], "big")
                pos += size + 8
            # Keep only an incomplete method or header frame (small) for the next recv.
            buf[: have - pos] = view[pos:have]
            have -= pos
            if not no_ack and methods > max(first, 1):
                # Deliveries are tagged 1, 2, ... in order; method frame n+1 is tag n.
                sock.sendall(b"".join(ack(1, 1, 13, 60, 80, tag, 0, 0xCE)
                                      for tag in range(max(first, 1), methods)))
        return body

    def rpc(self, queue: str, body: bytes, count: int) -> list[float]:
        raise NotImplementedError("the bare socket has no RPC ceiling")

    def close(self) -> None:
        self._send(0, m.ConnectionClose(reply_code=200, reply_text="bye", class_id=0, method_id=0))
        self.sock.settimeout(5)
        try:
            while True:
                for frame in self.parser.feed(self.sock.recv(65536)):
                    if isinstance(getattr(frame, "method", None), m.ConnectionCloseOk):
                        return
        finally:
            self.sock.close()


CLIENT = Client
