"""A small in-test TCP proxy that can cut, stall or slow the link.

It listens on 127.0.0.1 (a free port) and forwards to the broker.  Modes:
``forward`` (default), ``stall`` (keep sockets open, forward nothing, so
heartbeats time out), ``slow`` (forward at most ``rate`` bytes per second)
and ``cut()`` (close every link at once).
"""

from __future__ import annotations

import asyncio
import contextlib


class Proxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target_host = target_host
        self.target_port = target_port
        self.port = 0
        self.stalled = False
        self.stall_upstream = False  # only client -> broker
        self.stall_downstream = False  # only broker -> client
        self.rate: float | None = None
        self._server: asyncio.AbstractServer | None = None
        self._links: set[asyncio.StreamWriter] = set()
        self._clients: list[asyncio.StreamWriter] = []
        self._tasks: set[asyncio.Task[None]] = set()
        self._resumed = asyncio.Event()
        self._resumed.set()

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    async def start(self) -> Proxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(BaseException):
                await task

    async def __aenter__(self) -> Proxy:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def stall(self, upstream: bool = True, downstream: bool = True) -> None:
        """Stop forwarding (the sockets stay open)."""
        self.stall_upstream = upstream
        self.stall_downstream = downstream
        self._resumed.clear()

    def resume(self) -> None:
        self.stall_upstream = self.stall_downstream = False
        self._resumed.set()

    def inject(self, data: bytes) -> None:
        """Send ``data`` to every open client link as if the broker had sent it."""
        self._clients = [w for w in self._clients if not w.transport.is_closing()]
        for writer in self._clients:
            writer.write(data)

    def cut(self) -> None:
        """Close every open link at once (both sides see a reset/EOF)."""
        for writer in list(self._links):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._links.clear()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Registered before the upstream connect: a cut() or close() while it
        # is under way must reach this link too (an open client socket would
        # also hold close() in Server.wait_closed for ever).
        self._links.add(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        if writer not in self._links:  # cut meanwhile
            up_writer.transport.abort()
            return
        self._links.add(up_writer)
        self._clients.append(writer)
        for src, dst, upstream in ((reader, up_writer, True), (up_reader, writer, False)):
            task = asyncio.get_running_loop().create_task(self._pump(src, dst, upstream))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, upstream: bool) -> None:
        try:
            while True:
                while (self.stall_upstream if upstream else self.stall_downstream):
                    await self._resumed.wait()
                data = await src.read(65536 if self.rate is None else max(1, int(self.rate / 20)))
                if not data:
                    break
                while (self.stall_upstream if upstream else self.stall_downstream):
                    await self._resumed.wait()
                dst.write(data)
                await dst.drain()
                if self.rate is not None:
                    await asyncio.sleep(len(data) / self.rate)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            with contextlib.suppress(Exception):
                dst.transport.abort()
