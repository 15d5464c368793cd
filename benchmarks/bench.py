"""aiorabbit against its peers and the bare-socket ceilings, in one run.

    python benchmarks/bench.py                 # the full matrix, 3 repetitions
    python benchmarks/bench.py --quick         # 1 repetition, a fifth of the messages

Every (scenario, message size) pair runs each client variant in turn, the
order rotating between repetitions so no client always goes first; every run
is a fresh process (see ``worker.py``) against the same broker.  After each
run the harness checks with the broker that every message arrived (a publish
run must leave exactly ``count`` messages in its queue, a consume run must
receive ``count`` whole bodies and leave the queue empty); a run that lost
anything is reported as FAILED and counts for nothing.  Two bare sockets
bound consuming with acks: ``bare`` acks each delivery on its own,
``bare-multiack`` acks with ``multiple=True`` every 256 deliveries, what the
broker delivers when acks cost it almost nothing; the table's "of ceiling"
for consume+ack is against the latter.  Figures are medians
over the repetitions.  Results go to ``--out`` as JSON, a Markdown table and
a PNG chart, and the targets of the performance issue are checked at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiorabbit  # noqa: E402
from benchmarks.clients.bare_client import Client as BareClient  # noqa: E402
from benchmarks.clients.bare_multiack_client import EVERY as MULTIACK_EVERY  # noqa: E402

PEERS = ("aio-pika", "aiormq", "pika")
CEILING = "bare"  # one basic.ack per delivery; also the publish and no_ack ceiling
MULTIACK = "bare-multiack"  # one basic.ack multiple=True per MULTIACK_EVERY deliveries: consume+ack only
ASYNC_CLIENTS = ("aiorabbit", "aio-pika", "aiormq")
THROUGHPUT = ("publish", "publish_confirms", "consume_ack", "consume_noack")
SIZES = {"64B": 64, "64KiB": 64 * 1024, "4MiB": 4 * 1024 * 1024}
# Messages per run at each size: long enough to be steady, short enough for
# the slowest peer (a few thousand messages per second) to finish in seconds.
COUNTS = {"64B": 20_000, "64KiB": 2_000, "4MiB": 50}
RPC_CALLS = 2_000


@dataclass
class Run:
    client: str
    loop: str
    scenario: str
    size: str
    count: int
    rep: int
    ok: bool = False
    error: str = ""
    wall: float = 0.0
    cpu: float = 0.0
    maxrss_kb: int = 0
    latencies: list[float] = field(default_factory=list)

    @property
    def variant(self) -> str:
        return variant_name(self.client, self.loop)


def variant_name(client: str, loop: str) -> str:
    return f"{client}+uvloop" if loop == "uvloop" else client


class Harness:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.url: str = args.url
        self.runs: list[Run] = []
        self.conn: aiorabbit.Connection | None = None
        self.ch: aiorabbit.Channel | None = None
        self.rpc_queue = f"bench-rpc-{uuid.uuid4().hex[:8]}"
        self.settle_timeout = 60.0  # seconds to wait for the broker's count to catch up

    # -- broker-side checks -------------------------------------------------

    async def _count(self, queue: str) -> int:
        assert self.ch is not None
        return (await self.ch.queue_declare(queue, passive=True)).message_count

    async def _settle(self, queue: str, expected: int) -> int:
        """The broker's count lags the socket: poll until it reaches ``expected``."""
        deadline = time.monotonic() + self.settle_timeout
        count = await self._count(queue)
        while count < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            count = await self._count(queue)
        await asyncio.sleep(0.2)  # a late extra message would show now
        return await self._count(queue)

    def _prefill(self, queue: str, body: bytes, count: int) -> None:
        bare = BareClient()
        bare.connect(self.url)
        bare.publish(queue, body, count, False, 0)
        bare.close()

    # -- one run --------------------------------------------------------------

    async def run_one(self, client: str, loop: str, scenario: str, size: str, rep: int) -> Run:
        count = max(10 if scenario == "rpc" else 1,
                    (RPC_CALLS if scenario == "rpc" else COUNTS[size]) // self.args.scale)
        run = Run(client, loop, scenario, size, count, rep)
        assert self.ch is not None
        queue = self.rpc_queue if scenario == "rpc" else f"bench-{uuid.uuid4().hex[:12]}"
        if scenario != "rpc":
            await self.ch.queue_declare(queue)
        try:
            if scenario.startswith("consume"):
                await asyncio.to_thread(self._prefill, queue, b"x" * SIZES[size], count)
                if await self._settle(queue, count) != count:
                    raise RuntimeError("prefill did not arrive")
            result = await self._worker(client, loop, scenario, queue, SIZES[size], count)
            run.wall, run.cpu, run.maxrss_kb = result["wall"], result["cpu"], result["maxrss_kb"]
            run.error = await self._verify(run, queue, result)
            run.ok = not run.error
        except Exception as exc:  # a failed run is reported, never counted
            run.error = f"{type(exc).__name__}: {exc}"[:300]
        finally:
            if scenario != "rpc":
                with contextlib.suppress(aiorabbit.AMQPError):
                    await self.ch.queue_delete(queue)
        return run

    async def _worker(self, client: str, loop: str, scenario: str, queue: str, size: int,
                      count: int) -> dict[str, Any]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.worker", "--client", client, "--scenario", scenario,
            "--queue", queue, "--url", self.url, "--size", str(size), "--count", str(count),
            "--loop", loop, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self.args.timeout)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
            raise RuntimeError(f"timed out after {self.args.timeout} s") from None
        if proc.returncode != 0:
            raise RuntimeError(err.decode(errors="replace").strip().splitlines()[-1])
        result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        return result

    async def _verify(self, run: Run, queue: str, result: dict[str, Any]) -> str:
        if run.scenario.startswith("publish"):
            found = await self._settle(queue, run.count)
            return "" if found == run.count else f"published {run.count}, the queue holds {found}"
        if run.scenario.startswith("consume"):
            expected = run.count * SIZES[run.size]
            if result["bytes"] != expected:
                return f"received {result['bytes']} body bytes, expected {expected}"
            await asyncio.sleep(0.2)
            left = await self._count(queue)
            return "" if left == 0 else f"{left} messages left in the queue (unacked or requeued)"
        run.latencies = result["latencies"]
        return "" if len(run.latencies) == run.count else "missing replies"

    # -- the matrix -------------------------------------------------------------

    def variants(self, scenario: str) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        for client in self.args.clients:
            if client == CEILING and scenario in ("publish_confirms", "rpc"):
                continue  # no ceiling for these
            if client == MULTIACK and scenario != "consume_ack":
                continue  # anywhere else it is the bare socket again
            if client in ASYNC_CLIENTS:
                out.extend((client, loop) for loop in self.args.loops)
            else:
                out.append((client, "none"))
        return out

    def pairs(self) -> list[tuple[str, str]]:
        pairs = [(s, size) for size in self.args.sizes for s in self.args.scenarios if s != "rpc"]
        if "rpc" in self.args.scenarios:
            pairs.append(("rpc", "64B"))
        return pairs

    async def run_all(self) -> None:
        self.conn = await aiorabbit.connect(self.url, name="bench-harness")
        self.ch = await self.conn.channel()
        await self.ch.queue_declare(self.rpc_queue, exclusive=False, auto_delete=False)
        responder = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.responder", "--url", self.url, "--queue", self.rpc_queue,
            cwd=ROOT,
        )
        try:
            for rep in range(self.args.reps):
                for scenario, size in self.pairs():
                    variants = self.variants(scenario)
                    shift = rep % len(variants)  # rotate the order each repetition
                    for client, loop in variants[shift:] + variants[:shift]:
                        run = await self.run_one(client, loop, scenario, size, rep)
                        self.runs.append(run)
                        print(_progress(run), flush=True)
        finally:
            responder.terminate()
            await responder.wait()
            with contextlib.suppress(aiorabbit.AMQPError):
                await self.ch.queue_delete(self.rpc_queue)
            self.info = machine_info(self.conn)
            await self.conn.close()


def _run_record(run: Run) -> dict[str, Any]:
    """A run for the JSON file: its latencies summarised, not listed."""
    record = asdict(run)
    latencies = sorted(record.pop("latencies"))
    if latencies:
        record["p50_us"] = latencies[len(latencies) // 2] * 1e6
        record["p99_us"] = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e6
    return record


def _progress(run: Run) -> str:
    where = f"rep {run.rep + 1} {run.scenario:<16} {run.size:<6} {run.variant:<16}"
    if not run.ok:
        return f"{where} FAILED: {run.error}"
    if run.scenario == "rpc":
        return f"{where} p50 {statistics.median(run.latencies) * 1e6:8.0f} us"
    return f"{where} {run.count / run.wall:>10,.0f} msg/s {run.cpu / run.count * 1e6:8.1f} us CPU/msg"


def machine_info(conn: aiorabbit.Connection) -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {"aiorabbit": aiorabbit.__version__}
    for dist in ("aio-pika", "aiormq", "pika", "uvloop"):
        with contextlib.suppress(Exception):
            from importlib.metadata import version

            versions[dist] = version(dist)
    server = conn.server_properties
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "broker": f"{_text(server.get('product'))} {_text(server.get('version'))}",
        "versions": versions,
    }


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# -- summaries ------------------------------------------------------------------


def summarise(runs: list[Run]) -> list[dict[str, Any]]:
    """One row per (scenario, size, variant): medians over the good runs."""
    groups: dict[tuple[str, str, str], list[Run]] = {}
    for run in runs:
        groups.setdefault((run.scenario, run.size, run.variant), []).append(run)
    rows = []
    for (scenario, size, variant), group in groups.items():
        good = [r for r in group if r.ok]
        row: dict[str, Any] = {"scenario": scenario, "size": size, "variant": variant,
                               "runs": len(group), "failed": len(group) - len(good)}
        if good:
            row["msg_per_s"] = statistics.median(r.count / r.wall for r in good)
            row["mb_per_s"] = row["msg_per_s"] * SIZES[size] / 1e6
            row["cpu_us_per_msg"] = statistics.median(r.cpu / r.count * 1e6 for r in good)
            row["peak_rss_mb"] = max(r.maxrss_kb for r in good) / 1024
            if scenario == "rpc":
                lat = sorted(x for r in good for x in r.latencies)
                row["p50_us"] = lat[len(lat) // 2] * 1e6
                row["p99_us"] = lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e6
        rows.append(row)
    return rows


def _find(rows: list[dict[str, Any]], scenario: str, size: str, variant: str) -> dict[str, Any] | None:
    for row in rows:
        if (row["scenario"], row["size"], row["variant"]) == (scenario, size, variant) and "msg_per_s" in row:
            return row
    return None


def ceiling_for(rows: list[dict[str, Any]], scenario: str, size: str) -> dict[str, Any] | None:
    """The bare-socket row bounding ``scenario``: its own, and for confirmed
    publishing the unconfirmed one (a confirm can only slow a publish).  For
    consume+ack this is the per-delivery-ack ceiling; see ``multiack_ceiling``."""
    return _find(rows, "publish" if scenario == "publish_confirms" else scenario, size, CEILING)


def multiack_ceiling(rows: list[dict[str, Any]], size: str) -> dict[str, Any] | None:
    """The consume+ack ceiling when acks cost the broker almost nothing."""
    return _find(rows, "consume_ack", size, MULTIACK)


def _of_ceiling(rows: list[dict[str, Any]], row: dict[str, Any]) -> str:
    """The "of ceiling" cell: for consume+ack against the multiple-ack ceiling,
    the per-delivery-ack one in brackets."""
    scenario, size = row["scenario"], row["size"]
    ceiling = ceiling_for(rows, scenario, size)
    of = f"{row['msg_per_s'] / ceiling['msg_per_s']:.0%}" if ceiling else ""
    if scenario != "consume_ack":
        return of
    multi = multiack_ceiling(rows, size)
    if multi is None:
        return f"{of} per-ack" if of else ""
    of_multi = f"{row['msg_per_s'] / multi['msg_per_s']:.0%}"
    return f"{of_multi} ({of} per-ack)" if of else of_multi


def best_peer(rows: list[dict[str, Any]], scenario: str, size: str) -> dict[str, Any] | None:
    peers = [r for r in rows if r["scenario"] == scenario and r["size"] == size and "msg_per_s" in r
             and r["variant"].split("+")[0] in PEERS]
    return max(peers, key=lambda r: r["msg_per_s"], default=None)


def markdown(rows: list[dict[str, Any]], info: dict[str, Any]) -> str:
    lines = [
        f"Run {info['date']}: {info['cpu']}, {info['cores']} cores, Python {info['python']}, "
        f"{info['broker']} on the same machine; "
        + ", ".join(f"{k} {v}" for k, v in info["versions"].items()) + ".",
        "",
        "| scenario | size | client | msg/s | MB/s | vs best peer | of ceiling | CPU µs/msg | peak RSS MB |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        if row["scenario"] == "rpc":
            continue
        scenario, size = row["scenario"], row["size"]
        if "msg_per_s" not in row:
            lines.append(f"| {scenario} | {size} | {row['variant']} | FAILED | | | | | |")
            continue
        peer = best_peer(rows, scenario, size)
        vs = f"{row['msg_per_s'] / peer['msg_per_s']:.1f}x" if peer else ""
        lines.append(
            f"| {scenario} | {size} | {row['variant']} | {row['msg_per_s']:,.0f} | {row['mb_per_s']:,.1f} "
            f"| {vs} | {_of_ceiling(rows, row)} | {row['cpu_us_per_msg']:.1f} | {row['peak_rss_mb']:.0f} |"
        )
    if any(r["scenario"] == "consume_ack" and r["variant"] == MULTIACK for r in rows):
        lines += ["", f"Of ceiling, consume_ack: against {MULTIACK} (one basic.ack multiple=True per "
                  f"{MULTIACK_EVERY} deliveries); per-ack: against {CEILING} (one basic.ack per delivery)."]
    rpc = [r for r in rows if r["scenario"] == "rpc" and "p50_us" in r]
    if rpc:
        lines += ["", "| RPC round trip (64 B, direct reply-to) | calls/s | p50 µs | p99 µs | CPU µs/call |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        lines += [f"| {r['variant']} | {r['msg_per_s']:,.0f} | {r['p50_us']:,.0f} | {r['p99_us']:,.0f} "
                  f"| {r['cpu_us_per_msg']:.1f} |" for r in rpc]
    return "\n".join(lines) + "\n"


def _blocking_targets(rows: list[dict[str, Any]], out: list[tuple[str, bool | None, str]]) -> None:
    """The blocking API against pika's BlockingConnection (issue 14)."""
    if any(label.startswith("blocking ") for label, _, _ in out):
        return  # once, whatever the loops
    for scenario, need in (("publish", 3.0), ("publish_confirms", 10.0), ("consume_ack", 3.0)):
        for size in ("64B", "64KiB"):
            label = f"blocking {scenario} {size} >= {need:g}x pika"
            ours, pika = (_find(rows, scenario, size, v) for v in ("aiorabbit-blocking", "pika"))
            if ours is None or pika is None:
                out.append((label, None, "not measured"))
                continue
            x = ours["msg_per_s"] / pika["msg_per_s"]
            out.append((label, x >= need, f"{x:.1f}x"))
    ours, pika = (_find(rows, "rpc", "64B", v) for v in ("aiorabbit-blocking", "pika"))
    label = "blocking RPC p50 <= pika's"
    if ours is None or pika is None or "p50_us" not in ours or "p50_us" not in pika:
        out.append((label, None, "not measured"))
    else:
        out.append((label, ours["p50_us"] <= pika["p50_us"],
                    f"{ours['p50_us']:.0f} us against {pika['p50_us']:.0f} us"))


def _uvloop_slower(rows: list[dict[str, Any]]) -> list[str]:
    """The scenarios aiorabbit runs slower under uvloop than on the default loop, beyond noise."""
    slower = []
    for row in rows:
        if row["variant"] == "aiorabbit+uvloop" and "msg_per_s" in row:
            base = _find(rows, row["scenario"], row["size"], "aiorabbit")
            # Within 10 %: the run-to-run noise of a 2-core machine.
            if base and row["msg_per_s"] < 0.9 * base["msg_per_s"]:
                slower.append(f"{row['scenario']} {row['size']}")
    return slower


def _ceiling_targets(rows: list[dict[str, Any]], loop: str, out: list[tuple[str, bool | None, str]]) -> None:
    """The consume-at-the-broker's-ceiling issue, on one loop: consume+ack
    against the multiple-ack ceiling, everything else against ``bare``."""
    tag = " (uvloop)" if loop == "uvloop" else ""
    ours_name = variant_name("aiorabbit", loop)

    def fraction(label: str, scenario: str, size: str, ceiling: dict[str, Any] | None, need: float) -> None:
        ours = _find(rows, scenario, size, ours_name)
        if ours is None or ceiling is None:
            out.append((label, None, "not measured"))
            return
        key, unit = ("msg_per_s", "msg/s") if size == "64B" else ("mb_per_s", "MB/s")
        f = ours[key] / ceiling[key]
        out.append((label, f >= need, f"{f:.0%} of {ceiling['variant']} "
                                      f"({ours[key]:,.0f} against {ceiling[key]:,.0f} {unit})"))

    fraction(f"ceiling: consume_ack 64B >= 75% of {MULTIACK}{tag}", "consume_ack", "64B",
             multiack_ceiling(rows, "64B"), 0.75)
    ours = _find(rows, "consume_ack", "64B", ours_name)
    label = f"ceiling: consume_ack 64B CPU <= 5 us/msg{tag}"
    out.append((label, None, "not measured") if ours is None else
               (label, ours["cpu_us_per_msg"] <= 5.0, f"{ours['cpu_us_per_msg']:.1f} us"))
    fraction(f"ceiling: consume_ack 4MiB >= 85% of {MULTIACK}{tag}", "consume_ack", "4MiB",
             multiack_ceiling(rows, "4MiB"), 0.85)
    fraction(f"ceiling: consume_noack 4MiB >= 85% of {CEILING}{tag}", "consume_noack", "4MiB",
             ceiling_for(rows, "consume_noack", "4MiB"), 0.85)
    fraction(f"ceiling: publish 64B >= 90% of {CEILING}{tag}", "publish", "64B",
             ceiling_for(rows, "publish", "64B"), 0.9)


def check_targets(rows: list[dict[str, Any]], loops: list[str]) -> list[tuple[str, bool | None, str]]:
    """The performance issue's targets: (target, met (None: not measured), figures)."""
    out: list[tuple[str, bool | None, str]] = []

    def ratio_target(label: str, scenario: str, size: str, peer_x: float | None, ceiling_f: float | None,
                     loop: str) -> None:
        ours = _find(rows, scenario, size, variant_name("aiorabbit", loop))
        peer, ceiling = best_peer(rows, scenario, size), ceiling_for(rows, scenario, size)
        if ours is None or (peer_x and peer is None) or (ceiling_f and ceiling is None):
            out.append((label, None, "not measured"))
            return
        parts, met = [], True
        if peer_x and peer:
            x = ours["msg_per_s"] / peer["msg_per_s"]
            met &= x >= peer_x
            parts.append(f"{x:.1f}x {peer['variant']}")
        if ceiling_f and ceiling:
            f = ours["msg_per_s"] / ceiling["msg_per_s"]
            met &= f >= ceiling_f
            parts.append(f"{f:.0%} of ceiling")
        out.append((label, met, ", ".join(parts)))

    for loop in loops:
        tag = " (uvloop)" if loop == "uvloop" else ""
        ratio_target(f"publish 64B >= 3.5x best peer, >= 50% ceiling{tag}", "publish", "64B", 3.5, 0.5, loop)
        ratio_target(f"confirms 64B >= 6x best peer{tag}", "publish_confirms", "64B", 6, None, loop)
        ratio_target(f"consume+ack 64B >= 3x best peer, >= 40% per-ack ceiling{tag}", "consume_ack", "64B",
                     3, 0.4, loop)
        for size in ("64KiB", "4MiB"):
            for scenario in THROUGHPUT:
                ours = _find(rows, scenario, size, variant_name("aiorabbit", loop))
                peer, ceiling = best_peer(rows, scenario, size), ceiling_for(rows, scenario, size)
                label = f"{scenario} {size} >= min(2x best peer, 85% ceiling) MB/s{tag}"
                if ours is None or peer is None:
                    out.append((label, None, "not measured"))
                    continue
                need = 2 * peer["mb_per_s"]
                if ceiling is not None:
                    need = min(need, 0.85 * ceiling["mb_per_s"])
                out.append((label, ours["mb_per_s"] >= need,
                            f"{ours['mb_per_s']:,.0f} MB/s, needs {need:,.0f}"))
        _blocking_targets(rows, out)
        for scenario, limit in (("publish", 10.0), ("consume_ack", 20.0)):
            ours = _find(rows, scenario, "64B", variant_name("aiorabbit", loop))
            label = f"{scenario} 64B CPU <= {limit:g} us/msg{tag}"
            out.append((label, None, "not measured") if ours is None else
                       (label, ours["cpu_us_per_msg"] <= limit, f"{ours['cpu_us_per_msg']:.1f} us"))
    both = "uvloop" in loops and "default" in loops
    slower = _uvloop_slower(rows)
    if both:
        out.append(("uvloop no slower (within 10%)", not slower, ", ".join(slower) or "none slower"))
    for loop in loops:
        _ceiling_targets(rows, loop, out)
    label = "ceiling: uvloop no slower (within 10%)"
    out.append((label, not slower, ", ".join(slower) or "none slower") if both else
               (label, None, "not measured"))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default=os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"))
    parser.add_argument("--clients", type=lambda s: s.split(","),
                        default=["aiorabbit", "aiorabbit-blocking", *PEERS, CEILING, MULTIACK])
    parser.add_argument("--scenarios", type=lambda s: s.split(","), default=[*THROUGHPUT, "rpc"])
    parser.add_argument("--sizes", type=lambda s: s.split(","), default=list(SIZES))
    parser.add_argument("--loops", type=lambda s: s.split(","), default=["default", "uvloop"])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--scale", type=int, default=1, help="divide the message counts by this")
    parser.add_argument("--quick", action="store_true", help="1 repetition, a fifth of the messages")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds allowed per run")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks")
    parser.add_argument("--no-chart", action="store_true")
    parser.add_argument("--from-json", type=Path, help="no run: report again from a latest.json")
    args = parser.parse_args()
    if args.quick:
        args.reps, args.scale = 1, 5
    harness = Harness(args)
    if args.from_json:
        stored = json.loads(args.from_json.read_text())
        harness.info = stored["machine"]
        fields = Run.__dataclass_fields__
        harness.runs = [Run(**{k: v for k, v in r.items() if k in fields}) for r in stored["runs"]]
        rows = stored["summary"]
        args.loops = sorted({r["loop"] for r in stored["runs"] if r["loop"] != "none"})
    else:
        asyncio.run(harness.run_all())
        rows = summarise(harness.runs)
    targets = check_targets(rows, args.loops)
    table = markdown(rows, harness.info)
    table += "\n| target | met | measured |\n| --- | --- | --- |\n" + "".join(
        f"| {label} | {'n/a' if met is None else 'yes' if met else 'NO'} | {figures} |\n"
        for label, met, figures in targets
    )
    records = stored["runs"] if args.from_json else [_run_record(r) for r in harness.runs]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "latest.json").write_text(json.dumps(
        {"machine": harness.info, "summary": rows, "runs": records,
         "targets": [{"target": t, "met": m, "measured": f} for t, m, f in targets]}, indent=1))
    (args.out / "latest.md").write_text(table)
    print()
    print(table)
    if not args.no_chart:
        from benchmarks.chart import draw

        draw(rows, harness.info, args.out / "latest.png", ceiling_for)
        print(f"chart: {args.out / 'latest.png'}")
    failed = [r for r in harness.runs if not r.ok]
    if failed:
        print(f"{len(failed)} runs FAILED (lost messages or errors); see latest.json")
        sys.exit(1)


if __name__ == "__main__":
    main()
