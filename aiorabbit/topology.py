"""What a recovering connection re-declares: exchanges, queues and bindings
the application declared, minus what it deleted.  Pure data, no I/O.

Records follow the broker's own rules so that recovery recreates exactly
what would still exist had the connection not dropped: deleting a queue
drops its bindings; an auto-delete queue goes with its last consumer; an
auto-delete exchange goes with its last binding; a server-named queue is
renamed when the broker names it anew.
"""

from __future__ import annotations

import dataclasses
from typing import Any

__all__ = ["ExchangeRecord", "QueueRecord", "BindingRecord", "Topology"]


@dataclasses.dataclass
class ExchangeRecord:
    name: str
    type: str
    durable: bool
    auto_delete: bool
    internal: bool
    arguments: dict[str, Any] | None


@dataclasses.dataclass
class QueueRecord:
    #: The current name (a server-named queue's changes on each recovery).
    name: str
    #: Declared with an empty name: the broker picks the name.
    server_named: bool
    durable: bool
    exclusive: bool
    auto_delete: bool
    arguments: dict[str, Any] | None


@dataclasses.dataclass
class BindingRecord:
    #: ``"queue"`` (queue.bind) or ``"exchange"`` (exchange.bind).
    kind: str
    destination: str
    source: str
    routing_key: str
    arguments: dict[str, Any] | None


class Topology:
    """Declared exchanges, queues and bindings, in declaration order."""

    def __init__(self) -> None:
        self.exchanges: dict[str, ExchangeRecord] = {}
        self.queues: dict[str, QueueRecord] = {}
        self.bindings: list[BindingRecord] = []

    # -- exchanges -----------------------------------------------------------

    def add_exchange(self, record: ExchangeRecord) -> None:
        self.exchanges.pop(record.name, None)  # a redeclare moves it last
        self.exchanges[record.name] = record

    def remove_exchange(self, name: str) -> None:
        self.exchanges.pop(name, None)
        # The broker drops the bindings it is source or destination of.
        gone = [
            b for b in self.bindings if b.source == name or (b.kind == "exchange" and b.destination == name)
        ]
        for binding in gone:
            self._drop_binding(binding)

    # -- queues ----------------------------------------------------------------

    def add_queue(self, record: QueueRecord) -> None:
        self.queues.pop(record.name, None)
        self.queues[record.name] = record

    def remove_queue(self, name: str) -> None:
        self.queues.pop(name, None)
        for binding in [b for b in self.bindings if b.kind == "queue" and b.destination == name]:
            self._drop_binding(binding)

    def rename_queue(self, old: str, new: str) -> None:
        """The broker gave a server-named queue ``new`` in place of ``old``."""
        if old == new:
            return
        record = self.queues.get(old)
        if record is not None:
            record.name = new
            # Keep its place in the declaration order.
            items = [(new if name == old else name, q) for name, q in self.queues.items()]
            self.queues.clear()
            self.queues.update(items)
        for binding in self.bindings:
            if binding.kind == "queue" and binding.destination == old:
                binding.destination = new

    def last_consumer_gone(self, queue: str) -> None:
        """The application cancelled the last consumer of ``queue``: an
        auto-delete queue is gone from the broker, so from the record too."""
        record = self.queues.get(queue)
        if record is not None and record.auto_delete:
            self.remove_queue(queue)

    # -- bindings --------------------------------------------------------------

    def add_binding(self, record: BindingRecord) -> None:
        if self._find(record) is None:
            self.bindings.append(record)

    def remove_binding(self, record: BindingRecord) -> None:
        found = self._find(record)
        if found is not None:
            self._drop_binding(found)

    def _find(self, record: BindingRecord) -> BindingRecord | None:
        # Every routing key and argument set is its own binding.
        for binding in self.bindings:
            if binding == record:
                return binding
        return None

    def _drop_binding(self, binding: BindingRecord) -> None:
        if binding not in self.bindings:
            return  # already gone with an auto-delete exchange it depended on
        self.bindings.remove(binding)
        source = self.exchanges.get(binding.source)
        if source is None or not source.auto_delete:
            return
        if not any(b.source == source.name for b in self.bindings):
            self.remove_exchange(source.name)  # its last binding went, so did it

    # -- recovery order ----------------------------------------------------------

    def exchange_bindings(self) -> list[BindingRecord]:
        return [b for b in self.bindings if b.kind == "exchange"]

    def queue_bindings(self) -> list[BindingRecord]:
        return [b for b in self.bindings if b.kind == "queue"]
