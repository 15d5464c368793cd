"""Topology records: pure unit tests, no event loop, no broker."""

from __future__ import annotations

import pytest

from aiorabbit.topology import BindingRecord, ExchangeRecord, QueueRecord, Topology

pytestmark = pytest.mark.broker_free


def ex(name: str, *, auto_delete: bool = False, kind: str = "direct") -> ExchangeRecord:
    return ExchangeRecord(name, kind, durable=False, auto_delete=auto_delete, internal=False, arguments=None)


def q(name: str, *, auto_delete: bool = False, server_named: bool = False) -> QueueRecord:
    return QueueRecord(name, server_named, durable=False, exclusive=False, auto_delete=auto_delete,
                       arguments=None)


def qb(queue: str, exchange: str, key: str = "", arguments: dict[str, object] | None = None) -> BindingRecord:
    return BindingRecord("queue", queue, exchange, key, arguments)


def eb(destination: str, source: str, key: str = "") -> BindingRecord:
    return BindingRecord("exchange", destination, source, key, None)


def keys(t: Topology) -> list[tuple[str, str, str, str]]:
    return [(b.kind, b.destination, b.source, b.routing_key) for b in t.bindings]


def test_declaration_order_is_kept() -> None:
    t = Topology()
    for name in ("x3", "x1", "x2"):
        t.add_exchange(ex(name))
    for name in ("q2", "q3", "q1"):
        t.add_queue(q(name))
    t.add_binding(qb("q2", "x3", "a"))
    t.add_binding(eb("x1", "x3", "b"))
    t.add_binding(qb("q1", "x1", "c"))
    assert list(t.exchanges) == ["x3", "x1", "x2"]
    assert list(t.queues) == ["q2", "q3", "q1"]
    assert keys(t) == [("queue", "q2", "x3", "a"), ("exchange", "x1", "x3", "b"), ("queue", "q1", "x1", "c")]
    # Recovery order: exchange-to-exchange bindings, then queue bindings.
    assert [b.routing_key for b in t.exchange_bindings()] == ["b"]
    assert [b.routing_key for b in t.queue_bindings()] == ["a", "c"]


def test_redeclare_moves_last_and_replaces_the_record() -> None:
    t = Topology()
    t.add_exchange(ex("a"))
    t.add_exchange(ex("b"))
    t.add_exchange(ex("a", kind="fanout"))
    assert list(t.exchanges) == ["b", "a"]
    assert t.exchanges["a"].type == "fanout"
    t.add_queue(q("q1"))
    t.add_queue(q("q2"))
    t.add_queue(q("q1", auto_delete=True))
    assert list(t.queues) == ["q2", "q1"]
    assert t.queues["q1"].auto_delete


def test_every_routing_key_is_its_own_binding() -> None:
    t = Topology()
    t.add_exchange(ex("x"))
    t.add_queue(q("q"))
    t.add_binding(qb("q", "x", "red"))
    t.add_binding(qb("q", "x", "green"))
    t.add_binding(qb("q", "x", "red"))  # the same binding again: kept once
    t.add_binding(qb("q", "x", "red", {"x-match": "all"}))  # other arguments: another binding
    t.add_binding(eb("x2", "x", "red"))  # an exchange binding with the same names and key
    assert keys(t) == [
        ("queue", "q", "x", "red"),
        ("queue", "q", "x", "green"),
        ("queue", "q", "x", "red"),
        ("exchange", "x2", "x", "red"),
    ]
    assert t.bindings[2].arguments == {"x-match": "all"}
    # Unbinding one key leaves the others.
    t.remove_binding(qb("q", "x", "red"))
    assert keys(t) == [
        ("queue", "q", "x", "green"), ("queue", "q", "x", "red"), ("exchange", "x2", "x", "red")
    ]
    t.remove_binding(qb("q", "x", "nope"))  # unknown: no-op
    assert len(t.bindings) == 3


def test_remove_queue_drops_its_bindings_only() -> None:
    t = Topology()
    t.add_exchange(ex("x"))
    t.add_queue(q("q1"))
    t.add_queue(q("q2"))
    t.add_binding(qb("q1", "x", "a"))
    t.add_binding(qb("q2", "x", "a"))
    t.add_binding(qb("q1", "x", "b"))
    t.add_binding(eb("q1", "x", "c"))  # an exchange that happens to be called q1
    t.remove_queue("q1")
    assert list(t.queues) == ["q2"]
    assert keys(t) == [("queue", "q2", "x", "a"), ("exchange", "q1", "x", "c")]
    assert "x" in t.exchanges
    t.remove_queue("never-declared")  # no-op


def test_remove_exchange_drops_bindings_where_it_is_source_or_exchange_destination() -> None:
    t = Topology()
    for name in ("x", "y", "z"):
        t.add_exchange(ex(name))
    t.add_queue(q("q"))
    t.add_queue(q("x"))  # a queue with the exchange's name
    t.add_binding(qb("q", "x", "1"))  # x is the source: goes
    t.add_binding(eb("x", "y", "2"))  # x is the destination: goes
    t.add_binding(eb("z", "x", "3"))  # x is the source: goes
    t.add_binding(qb("x", "y", "4"))  # queue x, not exchange x: stays
    t.add_binding(qb("q", "y", "5"))  # unrelated: stays
    t.remove_exchange("x")
    assert list(t.exchanges) == ["y", "z"]
    assert keys(t) == [("queue", "x", "y", "4"), ("queue", "q", "y", "5")]
    assert list(t.queues) == ["q", "x"]


def test_auto_delete_exchange_goes_with_its_last_binding() -> None:
    t = Topology()
    t.add_exchange(ex("ad", auto_delete=True))
    t.add_exchange(ex("plain"))
    t.add_queue(q("q"))
    t.add_binding(qb("q", "ad", "a"))
    t.add_binding(qb("q", "ad", "b"))
    t.add_binding(qb("q", "plain", "a"))
    t.remove_binding(qb("q", "ad", "a"))
    assert "ad" in t.exchanges  # one binding left
    t.remove_binding(qb("q", "ad", "b"))
    assert "ad" not in t.exchanges
    t.remove_binding(qb("q", "plain", "a"))
    assert "plain" in t.exchanges  # not auto-delete: stays


def test_auto_delete_exchange_goes_when_its_queue_is_deleted() -> None:
    t = Topology()
    t.add_exchange(ex("ad", auto_delete=True))
    t.add_exchange(ex("ad2", auto_delete=True))
    t.add_queue(q("q"))
    t.add_binding(eb("ad2", "ad", "k"))  # ad's only binding is to ad2
    t.add_binding(qb("q", "ad2", "k"))
    t.remove_queue("q")  # ad2 loses its last binding: gone, and with it ad's binding
    assert t.exchanges == {}
    assert t.bindings == []


def test_auto_delete_exchange_as_destination_only_stays() -> None:
    # Auto-delete counts bindings where the exchange is the source.
    t = Topology()
    t.add_exchange(ex("src"))
    t.add_exchange(ex("ad", auto_delete=True))
    t.add_binding(eb("ad", "src", "k"))
    t.remove_binding(eb("ad", "src", "k"))
    assert "ad" in t.exchanges


def test_last_consumer_gone_removes_an_auto_delete_queue_and_its_bindings() -> None:
    t = Topology()
    t.add_exchange(ex("x"))
    t.add_queue(q("ad", auto_delete=True))
    t.add_queue(q("normal"))
    t.add_binding(qb("ad", "x", "a"))
    t.add_binding(qb("normal", "x", "a"))
    t.last_consumer_gone("normal")
    assert list(t.queues) == ["ad", "normal"]
    t.last_consumer_gone("ad")
    assert list(t.queues) == ["normal"]
    assert keys(t) == [("queue", "normal", "x", "a")]
    t.last_consumer_gone("unknown")  # no-op


def test_rename_queue_moves_the_record_and_rewrites_bindings() -> None:
    t = Topology()
    t.add_exchange(ex("x"))
    t.add_queue(q("amq.gen-old", server_named=True))
    t.add_queue(q("other"))
    t.add_binding(qb("amq.gen-old", "x", "a"))
    t.add_binding(qb("other", "x", "a"))
    t.add_binding(qb("amq.gen-old", "x", "b"))
    t.add_binding(eb("amq.gen-old", "x", "c"))  # an exchange of that name: not renamed
    t.rename_queue("amq.gen-old", "amq.gen-new")
    assert "amq.gen-old" not in t.queues
    record = t.queues["amq.gen-new"]
    assert record.name == "amq.gen-new" and record.server_named
    assert keys(t) == [
        ("queue", "amq.gen-new", "x", "a"),
        ("queue", "other", "x", "a"),
        ("queue", "amq.gen-new", "x", "b"),
        ("exchange", "amq.gen-old", "x", "c"),
    ]
    # Declaration order is kept: the renamed queue is still declared first.
    assert list(t.queues) == ["amq.gen-new", "other"]
    t.rename_queue("amq.gen-new", "amq.gen-new")  # same name: no-op
    assert list(t.queues) == ["amq.gen-new", "other"]
    # Later operations use the new name.
    t.remove_queue("amq.gen-new")
    assert keys(t) == [("queue", "other", "x", "a"), ("exchange", "amq.gen-old", "x", "c")]


def test_binding_records_compare_by_value() -> None:
    assert qb("q", "x", "k", {"a": 1}) == qb("q", "x", "k", {"a": 1})
    assert qb("q", "x", "k") != eb("q", "x", "k")


def test_remove_exchange_with_cyclic_auto_delete_bindings() -> None:
    # x -> s and s -> x: deleting x unbinds s's last source binding, so the
    # auto-delete s goes too, and with it the x -> s binding: no crash.
    t = Topology()
    t.add_exchange(ex("x"))
    t.add_exchange(ex("s", auto_delete=True))
    t.add_exchange(ex("keep"))
    t.add_binding(eb("x", "s", "k"))
    t.add_binding(eb("s", "x", "k"))
    t.add_binding(eb("keep", "keep", "k"))
    t.remove_exchange("x")
    assert list(t.exchanges) == ["keep"]
    assert keys(t) == [("exchange", "keep", "keep", "k")]
