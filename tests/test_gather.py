"""Gathered writes of large bodies (``aiorabbit._gather``): every byte
arrives, in order, whether the socket takes all, part or none of it."""

from __future__ import annotations

import asyncio
import os
import socket
import sys

import pytest

from aiorabbit._gather import gather_fd, write_gathered

pytestmark = pytest.mark.broker_free


async def _pair() -> tuple[asyncio.Transport, socket.socket, socket.socket]:
    a, b = socket.socketpair()
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 32 * 1024)  # force partial writes
    b.setblocking(False)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_connection(asyncio.Protocol, sock=a)
    return transport, a, b


async def _read(b: socket.socket, size: int) -> bytes:
    loop = asyncio.get_running_loop()
    got = bytearray()
    while len(got) < size:
        chunk = await asyncio.wait_for(loop.sock_recv(b, 1 << 20), 10)
        assert chunk, "socket closed early"
        got += chunk
    return bytes(got)


def _parts() -> list[bytes | memoryview]:
    big = os.urandom(3 * 1024 * 1024)
    view = memoryview(big)
    return [b"\x01head", view[:131072], b"\xce", view[131072:], b"\xce", bytearray(b"tail") * 3, b""]


async def test_gathered_write_keeps_every_byte_in_order() -> None:
    transport, a, b = await _pair()
    parts = _parts()
    expected = b"".join(parts)
    write_gathered(transport, a.fileno(), list(parts))
    assert await _read(b, len(expected)) == expected
    transport.close()
    b.close()


async def test_gathered_write_after_queued_data_goes_through_the_transport() -> None:
    transport, a, b = await _pair()
    first = os.urandom(2 * 1024 * 1024)
    transport.write(first)  # more than the socket takes: the transport queues the rest
    assert transport.get_write_buffer_size() > 0
    parts = _parts()
    write_gathered(transport, a.fileno(), list(parts))
    expected = first + b"".join(parts)
    assert await _read(b, len(expected)) == expected
    transport.close()
    b.close()


async def test_gather_fd_only_for_the_stdlib_tcp_transport_before_3_12() -> None:
    transport, a, b = await _pair()
    stdlib = type(transport).__module__ == "asyncio.selector_events"
    if sys.version_info < (3, 12) and stdlib:
        assert gather_fd(transport) == a.fileno()
    else:
        assert gather_fd(transport) == -1
    transport.close()
    b.close()


@pytest.mark.parametrize("limit", [1, 2])
async def test_more_buffers_than_iov_max(limit: int, monkeypatch: pytest.MonkeyPatch) -> None:
    import aiorabbit._gather as gather

    monkeypatch.setattr(gather, "_IOV_MAX", limit)
    transport, a, b = await _pair()
    parts: list[bytes | memoryview] = [bytes([i]) * 100_000 for i in range(7)]
    expected = b"".join(parts)
    write_gathered(transport, a.fileno(), list(parts))
    assert await _read(b, len(expected)) == expected
    transport.close()
    b.close()
