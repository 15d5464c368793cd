"""The progress line that ``publish -n``, ``consume --count`` and ``bench``
draw on stderr while they run, when it is a terminal."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import time
from typing import Any, TextIO

from .common import number, rate

__all__ = ["DELAY", "Phase", "Progress", "is_terminal", "on_terminal"]

#: Seconds a run lasts before its progress line appears on its own: a short
#: run shows none (``bench --progress`` draws it from the start).
DELAY = 0.5
#: Seconds between redraws.
REDRAW = 0.2
#: Width of the bar, in characters.
BAR = 30


def is_terminal(stream: Any) -> bool:
    """Whether ``stream`` is a terminal (``False`` when there is none)."""
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or closed
        return False


def on_terminal(args: argparse.Namespace, stream: Any = None) -> bool:
    """Whether to draw a progress line without being asked: ``stream``
    (default stderr) is a terminal and ``--quiet`` was not given.  In a pipe or
    a file, never: scripts and logs get the summary line alone."""
    return not args.quiet and is_terminal(sys.stderr if stream is None else stream)


@dataclasses.dataclass
class Phase:
    """One measured side (publish, consume...): how far it is, and when it
    started and ended (``time.perf_counter``)."""

    name: str
    total: int
    done: int = 0
    started: float | None = None
    ended: float | None = None

    def start(self) -> None:
        self.started = time.perf_counter()

    def stop(self) -> None:
        self.ended = time.perf_counter()

    @property
    def seconds(self) -> float:
        """Seconds from the start to the end, or to now while it runs."""
        if self.started is None:
            return 0.0
        return (self.ended if self.ended is not None else time.perf_counter()) - self.started

    @property
    def rate(self) -> float:
        """Messages per second so far."""
        seconds = self.seconds
        return self.done / seconds if seconds > 0 else 0.0

    @property
    def complete(self) -> bool:
        return self.done >= self.total


class Progress:
    """A one-line progress bar on ``stream`` (``async with``), redrawn a few
    times a second; a no-op unless ``enabled``.

    It appears once the run has lasted ``delay`` seconds (0: at once), and
    once it has appeared it is drawn a last time, complete or not, and ended
    with a newline when the block ends (normally, by an error or by Ctrl-C).
    """

    def __init__(self, phases: list[Phase], stream: TextIO, enabled: bool, *, delay: float = DELAY) -> None:
        self.phases = phases
        self.stream = stream
        self.enabled = enabled
        self.delay = delay
        self.drawn = False
        self._task: asyncio.Task[None] | None = None
        self._width = 0

    async def __aenter__(self) -> Progress:
        if self.enabled:
            self._task = asyncio.ensure_future(self._redraw())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.finish()

    def finish(self) -> None:
        """Stop redrawing; draw the line a last time and end it, if it has
        appeared (or is drawn from the start).  Only the first call counts."""
        if self._task is None:
            return
        self._task.cancel()
        self._task = None
        if self.drawn or self.delay <= 0:
            self.draw()
            self.stream.write("\n")
            self.stream.flush()

    async def _redraw(self) -> None:
        if self.delay > 0:
            await asyncio.sleep(self.delay)
        while True:
            self.draw()
            await asyncio.sleep(REDRAW)

    def line(self) -> str:
        total = sum(p.total for p in self.phases)
        done = sum(min(p.done, p.total) for p in self.phases)
        fraction = done / total if total else 1.0
        filled = int(fraction * BAR)
        sides = "  ".join(
            f"{p.name} {number(p.done)}/{number(p.total)} ({rate(p.done, p.seconds)})" for p in self.phases
        )
        return f"[{'#' * filled}{'-' * (BAR - filled)}] {fraction:4.0%}  {sides}"

    def draw(self) -> None:
        line = self.line()
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = len(line)
        self.drawn = True
