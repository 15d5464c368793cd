"""Connections that come back: :func:`connect_robust`.

The recovery layer, one module per idea: :mod:`.connection` (the
supervisor that reconnects), :mod:`.replay` (what is restored, in which
order), :mod:`.channel` and :mod:`.consumer` (what survives a loss),
:mod:`.endpoints` (broker addresses) and :mod:`.common` (the tuples through
which they reach each other).  Everything is importable from here, as
from the single ``aiorabbit.robust`` module it replaces.
"""

from __future__ import annotations

from .channel import DeclaredQueue, RobustChannel
from .common import EVENTS, State, stop_task
from .connection import RobustConnection, connect_robust
from .consumer import RobustConsumer
from .endpoints import endpoints

__all__ = [
    "connect_robust",
    "RobustConnection",
    "RobustChannel",
    "RobustConsumer",
    "DeclaredQueue",
    "State",
    "EVENTS",
    "endpoints",
    "stop_task",
]
