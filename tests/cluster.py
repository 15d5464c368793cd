"""A throwaway three-node RabbitMQ cluster for tests, built from extra nodes.

Every node is a :class:`tests.broker_node.BrokerNode` (its own name
``aiorabbit-test-<hex>@localhost``, its own ports and data directory; read
that module first): the shared broker on 127.0.0.1:5672 is never touched,
and nothing here ever contacts it.  The nodes share the ``rabbitmq`` user's
Erlang cookie, as every extra node does, so they can talk to each other::

    with Cluster() as cluster:
        async with aiorabbit.connect(cluster.nodes[1].url) as conn: ...
        leader = cluster.leader_of("orders")      # a ClusterNode, or None
        leader.kill()                             # SIGKILL
        cluster.wait_for_leader("orders", not_on=leader)
        leader.start()                            # rejoins with its data

or, per test module, the ``cluster`` fixture below (import it into the test
module: ``from .cluster import cluster  # noqa: F401``).

How the cluster forms
---------------------
:meth:`Cluster.start` boots the three nodes at once (in threads: each
``BrokerNode.start()`` waits for its own node), then joins the second and
the third to the first, each with ``rabbitmqctl -n NODE stop_app``,
``reset``, ``join_cluster FIRST`` and ``start_app`` (the two joins run side
by side, only the ``join_cluster`` steps one after the other), and waits
until every node's ``cluster_status`` lists the three as running.

After that the nodes are peers: any of them, the first included, can be
stopped (``stop()``), killed (``kill()``) and started again (``start()``),
which boots it from its own data, so that it rejoins as the member it was;
:meth:`ClusterNode.start` returns once every running node counts it again.
A node whose peers are all down waits for them at boot (RabbitMQ will not
start a clustered node alone unless it was the last one to stop), so when
every node is down, start them together: :meth:`Cluster.start` (or
:meth:`Cluster.ensure_running`) does.

Every blocking call here (boots, ``rabbitmqctl``) takes from a second to
tens of seconds: from an async test, run it in a thread
(``await asyncio.to_thread(node.kill)``) so the event loop keeps serving the
client meanwhile.

Cleanup: :meth:`Cluster.close` (the context manager and the fixture call it)
kills the three nodes at once and deletes their directories (the data goes
anyway, so there is no point waiting for graceful stops), and an ``atexit``
hook closes clusters left open by an interrupted session; BrokerNode's own
hook is the backstop.  ``AIORABBIT_KEEP_NODE_DIR=1`` keeps the directories.

Measured on the 2-core CI machine (RabbitMQ 3.10.8): see ``docs/cluster.md``.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import functools
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import pytest

from .broker_node import BrokerNode, BrokerNodeError, unavailable_reason

__all__ = ["Cluster", "ClusterError", "ClusterNode", "cluster"]

T = TypeVar("T")

#: How long a node may take to be counted by the others after its boot.
REJOIN_TIMEOUT = 60.0

#: The clusters not closed yet (closed at exit if a session is interrupted).
_open: set[Cluster] = set()


class ClusterError(BrokerNodeError):
    """The cluster did not form, or did not get back to the expected state."""


def _parallel(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Run ``calls`` in threads, wait for all of them; raise the first
    error (naming the others) once every call has ended."""
    if len(calls) <= 1:
        return [call() for call in calls]
    with concurrent.futures.ThreadPoolExecutor(max_workers=len(calls), thread_name_prefix="cluster") as pool:
        futures = [pool.submit(call) for call in calls]
        concurrent.futures.wait(futures)
    errors = [exc for exc in (f.exception() for f in futures) if exc is not None]
    if errors:
        if len(errors) == 1:
            raise errors[0]
        others = "\n\n".join(f"also: {exc}" for exc in errors[1:])
        raise ClusterError(f"{errors[0]}\n\n{others}") from errors[0]
    return [f.result() for f in futures]


def _json(output: str) -> Any:
    """The JSON document in a ``--formatter json`` output: the first line
    that starts one (the CLI may print notes, such as deprecation warnings,
    before it)."""
    decoder = json.JSONDecoder()
    position = 0
    for line in output.splitlines(keepends=True):
        if line.startswith(("[", "{")):
            with contextlib.suppress(ValueError):
                return decoder.raw_decode(output, position)[0]
        position += len(line)
    raise ClusterError(f"no JSON in rabbitmqctl's output:\n{output}")


class ClusterNode(BrokerNode):
    """A :class:`BrokerNode` that knows its cluster: :meth:`start` (after
    the cluster formed) also waits until the running nodes count it."""

    def __init__(self, cluster: Cluster, index: int, **options: Any) -> None:
        super().__init__(**options)
        self.cluster = cluster
        self.index = index
        #: Seconds the last :meth:`start` took, boot and rejoin (``None``
        #: before the first one).
        self.last_start_seconds: float | None = None

    def __repr__(self) -> str:
        return f"<ClusterNode #{self.index} {self.nodename} amqp={self.amqp_port}>"

    def start(self) -> None:
        """Boot the node from its data; once the cluster has formed, also
        wait (``REJOIN_TIMEOUT``) until every running node counts it."""
        began = time.monotonic()
        self.boot()
        if self.cluster.formed:
            self.cluster.wait_for_running()
        self.last_start_seconds = time.monotonic() - began

    def boot(self) -> None:
        """``BrokerNode.start()`` alone: boot, without waiting for the others."""
        super().start()

    def cluster_status(self, timeout: float = 30.0) -> dict[str, Any]:
        """This node's ``rabbitmqctl cluster_status``, parsed."""
        status = _json(self.ctl("cluster_status", "--formatter", "json", timeout=timeout))
        if not isinstance(status, dict):
            raise ClusterError(f"cluster_status of {self!r} is not an object: {status!r}")
        return status

    def cluster_view(self) -> set[str] | str:
        """The running nodes as this node sees them, or why it cannot tell."""
        try:
            return set(self.cluster_status(timeout=15).get("running_nodes") or [])
        except BrokerNodeError as exc:
            return f"no answer ({str(exc).splitlines()[0]})"


class Cluster:
    """Three (``size``) :class:`ClusterNode` objects joined into one cluster.

    Construction only picks names, ports and directories; :meth:`start` (or
    ``with Cluster() as cluster:``) boots and joins them.  ``plugins`` and
    ``config`` go to every node (see :class:`BrokerNode`).
    """

    def __init__(
        self,
        size: int = 3,
        *,
        plugins: Iterable[str] = (),
        config: Mapping[str, str] | None = None,
        startup_timeout: float = 90.0,
    ) -> None:
        if size < 2:
            raise ValueError("a cluster needs at least two nodes")
        self.formed = False
        #: Seconds spent booting (``boot``), joining (``join``) and in all
        #: (``form``) by the first :meth:`start`.
        self.timings: dict[str, float] = {}
        self._join_lock = threading.Lock()
        self._closed = False
        plugins = list(plugins)
        self.nodes: list[ClusterNode] = []
        try:
            for index in range(size):
                self.nodes.append(
                    ClusterNode(self, index, plugins=plugins, config=config, startup_timeout=startup_timeout)
                )
        except BaseException:
            self.close()
            raise
        _open.add(self)

    # -- properties ---------------------------------------------------------

    @property
    def urls(self) -> list[str]:
        """The AMQP URLs of the nodes, in order (guest/guest, vhost ``/``)."""
        return [node.url for node in self.nodes]

    @property
    def names(self) -> list[str]:
        """The Erlang node names, in order."""
        return [node.nodename for node in self.nodes]

    def node_named(self, nodename: str) -> ClusterNode:
        for node in self.nodes:
            if node.nodename == nodename:
                return node
        raise ClusterError(f"{nodename!r} is not a node of {self!r}")

    def __repr__(self) -> str:
        return f"<Cluster {', '.join(self.names)}>"

    # -- starting -----------------------------------------------------------

    def start(self) -> None:
        """Form the cluster (the first time), or start every stopped node
        at once and wait until all of them run in the cluster again."""
        if self._closed:
            raise ClusterError(f"{self!r} is closed")
        stopped = [node for node in self.nodes if not node.is_running]
        if self.formed:
            _parallel([node.boot for node in stopped])
            self.wait_for_running()
            return
        began = time.monotonic()
        _parallel([node.boot for node in stopped])
        booted = time.monotonic()
        _parallel([functools.partial(self._join, node) for node in self.nodes[1:]])
        self.formed = True
        self.wait_for_running()
        done = time.monotonic()
        self.timings.update(boot=booted - began, join=done - booted, form=done - began)

    def ensure_running(self) -> None:
        """Start whatever an earlier test left stopped (cheap when nothing is)."""
        if not self.formed or any(not node.is_running for node in self.nodes):
            self.start()

    def _join(self, node: ClusterNode) -> None:
        first = self.nodes[0]
        node.ctl("stop_app")
        node.ctl("reset")
        # Two joins at the same moment both change the cluster's schema;
        # one after the other is the documented, safe way.
        with self._join_lock:
            node.ctl("join_cluster", first.nodename)
        node.ctl("start_app")

    # -- looking at it ------------------------------------------------------

    def running(self) -> list[ClusterNode]:
        """The nodes whose processes run (no ``rabbitmqctl``: from ``/proc``)."""
        return [node for node in self.nodes if node.is_running]

    def ctl(self, *args: str, timeout: float = 60.0) -> str:
        """``rabbitmqctl ARGS...`` on the first running node that answers."""
        errors = []
        for node in self.running():
            try:
                return node.ctl(*args, timeout=timeout)
            except BrokerNodeError as exc:
                errors.append(str(exc))
        raise ClusterError(f"no running node of {self!r} answered:\n" + "\n".join(errors))

    def running_nodes(self) -> list[ClusterNode]:
        """The nodes that ``cluster_status`` of a running node reports
        running (in cluster order); a node foreign to this cluster in the
        report raises :class:`ClusterError`."""
        status = _json(self.ctl("cluster_status", "--formatter", "json", timeout=30))
        reported = set(status.get("running_nodes") or [])
        return [self.node_named(name) for name in self.names if name in reported] + [
            self.node_named(name) for name in sorted(reported - set(self.names))
        ]

    def wait_for_running(self, nodes: Iterable[ClusterNode] | None = None,
                         timeout: float = REJOIN_TIMEOUT) -> None:
        """Wait until every node of ``nodes`` (default: those whose
        processes run) reports exactly those nodes as running."""
        expected = list(nodes) if nodes is not None else self.running()
        names = {node.nodename for node in expected}
        deadline = time.monotonic() + timeout
        views: dict[str, object] = {}
        while True:
            answers = _parallel([node.cluster_view for node in expected])
            views = {node.nodename: view for node, view in zip(expected, answers, strict=True)}
            if all(isinstance(view, set) and view == names for view in views.values()):
                return
            if time.monotonic() >= deadline:
                seen = "\n".join(f"  {name}: {view}" for name, view in views.items())
                raise ClusterError(
                    f"{self!r}: the running nodes did not become {sorted(names)} within {timeout:.0f}s;"
                    f" each node's view:\n{seen}"
                )
            time.sleep(0.5)

    def queue_info(self, queue: str, vhost: str = "/") -> dict[str, Any]:
        """``list_queues name type leader members online`` for one queue,
        as a dict (the CLI's JSON row)."""
        output = self.ctl(
            "list_queues", "-p", vhost, "--formatter", "json",
            "name", "type", "leader", "members", "online", timeout=30,
        )
        rows = _json(output)
        for row in rows:
            if row.get("name") == queue:
                return dict(row)
        raise ClusterError(f"no queue {queue!r} in vhost {vhost!r} of {self!r}")

    def leader_of(self, queue: str, vhost: str = "/") -> ClusterNode | None:
        """The node that leads the quorum queue or stream ``queue``, or
        ``None`` while it has no live leader (an election is going on)."""
        leader = self.queue_info(queue, vhost).get("leader")
        if not leader:  # '' while the recorded leader is not alive
            return None
        return self.node_named(str(leader))

    def wait_for_leader(self, queue: str, *, not_on: ClusterNode | None = None, vhost: str = "/",
                        timeout: float = 30.0) -> ClusterNode:
        """Wait until ``queue`` has a running leader other than ``not_on``."""
        deadline = time.monotonic() + timeout
        last: object = None
        while True:
            with contextlib.suppress(ClusterError):
                leader = last = self.leader_of(queue, vhost)
                if leader is not None and leader is not not_on and leader.is_running:
                    return leader
            if time.monotonic() >= deadline:
                raise ClusterError(
                    f"{queue!r} got no leader other than {not_on!r} within {timeout:.0f}s"
                    f" (last seen: {last!r})"
                )
            time.sleep(0.2)

    # -- stopping -----------------------------------------------------------

    def close(self) -> None:
        """Kill every node at once and delete their directories."""
        if self._closed:
            return
        self._closed = True
        _open.discard(self)
        _parallel([functools.partial(_finish, node) for node in self.nodes])

    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _finish(node: ClusterNode) -> None:
    try:
        node.kill()
    finally:
        node.close()


# Registered after broker_node's own hook, so it runs first (atexit is LIFO).
@atexit.register
def _close_leftovers() -> None:
    for leftover in list(_open):
        with contextlib.suppress(Exception):
            leftover.close()


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """One three-node cluster for the whole session (forming one takes about
    20 s), offered by tests/conftest.py: a test that stops or kills nodes
    starts them again before it ends (``cluster.ensure_running()`` in a
    ``finally``).  Skipped, saying why, where no extra node can be started
    (as ``broker_node`` is); a cluster that does not form is an error, not
    a skip."""
    reason = unavailable_reason()
    if reason:
        pytest.skip(f"cannot start an extra RabbitMQ node: {reason}")
    with Cluster() as started:
        yield started


@pytest.fixture
def running_cluster(cluster: Cluster) -> Iterator[Cluster]:
    """The session's cluster with all three nodes running at the start and
    at the end of the test, whatever it killed or stopped."""
    cluster.ensure_running()
    try:
        yield cluster
    finally:
        cluster.ensure_running()
