"""The I/O thread of a blocking connection and the one queue into it.

Every operation a caller's thread asks of the connection goes, in order,
through one queue (a ``deque``: appends and pops are atomic) that a single
task on the loop, the *pump*, works through.  One queue keeps each thread's
operations in the order it made them (a publish and then ``tx_commit``, an
ack and then a cancel), and lets a thread that publishes without confirms or
acks a delivery go on at once: the pump writes a whole batch in one loop
turn, and the thread wakes the loop only when the pump sleeps.

Operations that wait for the broker (declares, confirmed publishes, RPC
calls) become tasks, so that one thread's wait never holds up another's
publishes; the caller waits on a ``concurrent.futures.Future``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue as queue_module
import threading
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ..exceptions import ConnectionClosed
from . import _waits

log = logging.getLogger("aiorabbit.blocking")

T = TypeVar("T")

#: An operation: ``fn(*args)`` runs on the loop (awaited when it returns an
#: awaitable); its error goes to ``on_error``.
Op = tuple[Callable[..., Any], tuple[Any, ...], Callable[[BaseException], None]]

#: A caller waits once this many operations are queued and not yet run, so
#: that a thread publishing faster than the socket drains cannot fill memory.
HIGH_WATER = 4096
#: ... or once queued bodies hold this many bytes.
HIGH_WATER_BYTES = 16 * 1024 * 1024


class IOThread:
    """An event loop in a daemon thread, and the ordered queue into it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._ops: deque[Op] = deque()
        self._sleeping = True
        self._wake = asyncio.Event()
        self._closed: BaseException | None = None
        # Room to queue more: cleared by a caller over the high-water mark,
        # set by the pump once it caught up.
        self._room = threading.Event()
        self._room.set()
        self._bytes_lock = threading.Lock()
        self._queued_bytes = 0
        #: Consumers' deliveries and callbacks for the thread that processes
        #: events (``start_consuming``, ``process_data_events``).
        self.events: queue_module.SimpleQueue[Any] = queue_module.SimpleQueue()
        self._thread = threading.Thread(target=self.loop.run_forever, name="aiorabbit-io", daemon=True)
        self._thread.start()
        self._pump_task: asyncio.Task[None] | None = None
        self.loop.call_soon_threadsafe(self._start_pump)

    def _start_pump(self) -> None:
        self._pump_task = self.loop.create_task(self._pump(), name="aiorabbit-blocking-pump")

    # -- the caller's side ------------------------------------------------------

    def post(self, fn: Callable[..., Any], args: tuple[Any, ...],
             on_error: Callable[[BaseException], None], size: int = 0) -> None:
        """Queue ``fn(*args)`` to run on the loop after everything queued
        before it; return at once (waiting first while the queue is full)."""
        if self._closed is not None:
            raise self._closed
        ops = self._ops
        ops.append((fn, args, on_error))
        if self._sleeping:
            self._sleeping = False
            self.loop.call_soon_threadsafe(self._wake.set)
        if size:
            with self._bytes_lock:
                self._queued_bytes += size
        if self._closed is not None:  # stop() ran between the check above and the append
            self._fail_queued()
        elif len(ops) >= HIGH_WATER or self._queued_bytes >= HIGH_WATER_BYTES:
            self._wait_for_room()

    def _full(self) -> bool:
        return self._closed is None and (
            len(self._ops) >= HIGH_WATER // 2 or self._queued_bytes >= HIGH_WATER_BYTES // 2)

    def _wait_for_room(self) -> None:
        # Cleared, then checked again: the pump sets it after any operation
        # that leaves the queue below half, so no set is missed.
        while self._full():
            self._room.clear()
            if self._full():
                self._room.wait(_waits.SIGNAL_POLL)

    def submit(
        self, factory: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any
    ) -> concurrent.futures.Future[T]:
        """Queue ``factory(*args, **kwargs)`` to start as a task on the loop,
        in order; its result comes in the future."""
        self._refuse_io_thread()
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        if self._sleeping and not self._ops and self._closed is None:
            # The pump is parked with nothing in flight, so everything this
            # thread queued before has run: start the task straight away (a
            # loop turn sooner: it shows in an RPC call's round trip).
            self.loop.call_soon_threadsafe(_start_now, self.loop, future, factory, args, kwargs)
        else:
            self.post(_start_task, (self.loop, future, factory, args, kwargs), future.set_exception)
        return future

    def run(self, factory: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """``submit`` and wait for the result in this thread.  Interrupted
        (Ctrl-C) here, the task is cancelled there, so nothing it started
        goes on behind the caller's back."""
        return self.wait(self.submit(factory, *args, **kwargs))

    def wait(self, future: concurrent.futures.Future[T], timeout: float | None = None) -> T:
        """The result of ``future``, cancelling its task if the wait is
        interrupted or times out."""
        try:
            return _waits.result(future, timeout)
        except BaseException:
            self.cancel(future)
            raise

    def cancel(self, future: concurrent.futures.Future[Any]) -> None:
        """Cancel the task behind ``future`` (or stop it from starting)."""
        if not future.cancel() and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(_cancel_task, future)

    def direct(self, awaitable: Awaitable[T], timeout: float | None = None) -> T:
        """Await on the loop *now*, not after the queue: for close, which must
        return even while the queue waits on a blocked connection."""
        self._refuse_io_thread()
        future = asyncio.run_coroutine_threadsafe(_awaited(awaitable), self.loop)
        try:
            return _waits.result(future, timeout)
        except BaseException:
            future.cancel()
            raise

    def _refuse_io_thread(self) -> None:
        if threading.current_thread() is self._thread:
            raise RuntimeError("a blocking aiorabbit call from the I/O thread would wait for ever")

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything queued so far has run; False on timeout."""
        if self._closed is not None:
            return True
        done: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.post(done.set_result, (None,), done.set_exception)
        try:
            _waits.result(done, timeout)
        except concurrent.futures.TimeoutError:
            return False
        except BaseException:  # the pump ended: nothing is left to wait for
            return True
        return True

    def process_one(self, timeout: float | None, block: bool = True) -> bool:
        """Run one event on this thread; False if none came within ``timeout``."""
        try:
            item = _waits.get(self.events, timeout) if block else self.events.get_nowait()
        except queue_module.Empty:
            return False
        if item is None:  # stop_consuming's wake-up
            return True
        if isinstance(item, BaseException):
            if getattr(item, "by_client", False):
                return True
            raise item
        if isinstance(item, tuple):
            callback, msg = item
            callback(msg)
        else:
            item()
        return True

    def stop(self, error: BaseException | None = None) -> None:
        """Fail what is still queued, stop the loop and join its thread
        (idempotent)."""
        if self._closed is None:
            self._closed = error or ConnectionClosed(200, "blocking connection closed")
        if not self._thread.is_alive():
            return
        if threading.current_thread() is self._thread:
            raise RuntimeError("close the blocking connection from another thread than its I/O thread")
        self.loop.call_soon_threadsafe(self._shutdown)
        self._thread.join()
        self.loop.close()
        self._fail_queued()  # anything a racing post() added after the shutdown
        self._room.set()

    def _shutdown(self) -> None:
        if self._pump_task is not None:
            self._pump_task.cancel()
        self._fail_queued()
        self.loop.call_soon(self.loop.stop)  # after the pump's cancellation ran

    # -- the loop's side --------------------------------------------------------

    async def _pump(self) -> None:
        ops, wake, room = self._ops, self._wake, self._room
        popleft = ops.popleft
        while True:
            try:
                fn, args, on_error = popleft()
            except IndexError:
                self._sleeping = True
                if ops:  # an append raced the pop: take it
                    self._sleeping = False
                    continue
                room.set()
                wake.clear()
                await wake.wait()
                continue
            try:
                result = fn(*args)
                if result is not None:
                    await result
            except asyncio.CancelledError:
                if self._closed is not None:
                    raise
                _report(on_error, ConnectionClosed(200, "operation cancelled"))
            except Exception as exc:
                _report(on_error, exc)
            if not room.is_set() and len(ops) < HIGH_WATER // 2:
                room.set()

    def sent(self, size: int) -> None:
        """Called on the loop once a queued body of ``size`` bytes was written."""
        with self._bytes_lock:
            self._queued_bytes -= size
        if self._queued_bytes < HIGH_WATER_BYTES // 2 and not self._room.is_set():
            self._room.set()

    def _fail_queued(self) -> None:
        error = self._closed or ConnectionClosed(200, "blocking connection closed")
        while True:
            try:
                _fn, _args, on_error = self._ops.popleft()
            except IndexError:
                return
            _report(on_error, error)


def _report(on_error: Callable[[BaseException], None], error: BaseException) -> None:
    try:
        on_error(error)
    except Exception:  # a future its caller cancelled meanwhile
        log.debug("a queued operation's error went nowhere", exc_info=True)


def _start_task(
    loop: asyncio.AbstractEventLoop, future: concurrent.futures.Future[Any],
    factory: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any],
) -> None:
    if not future.set_running_or_notify_cancel():
        return  # the caller gave up before its turn came
    # The task hands its outcome over itself: a done callback would run a
    # loop turn later, and the caller waits for it.
    future.task = loop.create_task(_into(future, factory(*args, **kwargs)))  # type: ignore[attr-defined]


def _start_now(
    loop: asyncio.AbstractEventLoop, future: concurrent.futures.Future[Any],
    factory: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any],
) -> None:
    try:
        _start_task(loop, future, factory, args, kwargs)
    except Exception as exc:  # the factory refused its arguments
        _report(future.set_exception, exc)


async def _into(future: concurrent.futures.Future[Any], awaitable: Awaitable[Any]) -> None:
    """Await ``awaitable`` and put its outcome in the caller's ``future``."""
    try:
        result = await awaitable
    except asyncio.CancelledError:
        if not future.done():
            future.set_exception(concurrent.futures.CancelledError())
        raise
    except BaseException as exc:
        if not future.done():
            future.set_exception(exc)
        if not isinstance(exc, Exception):
            raise  # KeyboardInterrupt, SystemExit: the loop's business too
    else:
        if not future.done():
            future.set_result(result)


def _cancel_task(future: concurrent.futures.Future[Any]) -> None:
    task = getattr(future, "task", None)
    if task is not None:
        task.cancel()


async def _awaited(awaitable: Awaitable[T]) -> T:
    return await awaitable
