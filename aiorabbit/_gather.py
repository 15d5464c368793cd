"""Gathered writes of large messages, without copying their bodies.

On Python before 3.12 the stdlib's plain-TCP transport has no vectored
write: ``writelines`` joins its buffers (a copy of every body byte) and a
``write`` per part costs a ``send`` per part.  While that transport's own
buffer is empty, nothing is queued ahead of us, so :func:`write_gathered`
hands all parts to one ``os.writev`` on the socket and gives the transport
only what the socket did not take (copied once, into its buffer).  uvloop,
TLS transports and Python 3.12+ gather on their own and are left alone.
"""

from __future__ import annotations

import asyncio
import os
import sys

from .codec import Buffer

__all__ = ["gather_fd", "write_gathered"]

_IOV_MAX = 1024  # Linux's limit on buffers per writev


def gather_fd(transport: asyncio.BaseTransport) -> int:
    """The socket's file descriptor if ``transport`` needs our gathered
    writes, else -1."""
    if sys.version_info >= (3, 12) or not hasattr(os, "writev"):
        return -1
    selector_transport = getattr(asyncio.selector_events, "_SelectorSocketTransport", None)
    if selector_transport is None or type(transport) is not selector_transport:
        return -1
    sock = transport.get_extra_info("socket")
    return -1 if sock is None else int(sock.fileno())


def write_gathered(transport: asyncio.WriteTransport, fd: int, parts: list[Buffer]) -> None:
    """Write ``parts`` in order: straight to the socket while nothing is
    queued in the transport, the rest through the transport."""
    done = 0
    if not transport.get_write_buffer_size():
        while done < len(parts):
            batch = parts[done : done + _IOV_MAX]
            try:
                sent = os.writev(fd, batch)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break  # the transport's own write meets the error and reports it
            for part in batch:
                size = memoryview(part).nbytes
                if sent < size:
                    if sent:
                        parts[done] = memoryview(part).cast("B")[sent:]
                    break
                sent -= size
                done += 1
            else:
                continue
            break
    for part in parts[done:]:
        transport.write(part)
