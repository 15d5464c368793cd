"""The benchmark harness itself: it runs, checks delivery, and reports.

Tiny message counts (the figures are meaningless here); the point is that
``benchmarks/bench.py`` and ``benchmarks/memory.py`` work end to end against
the real broker, so the published numbers come from a harness that is tested.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

import aiorabbit

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_bench_runs_every_scenario_and_verifies_delivery(amqp_url: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "benchmarks/bench.py", "--url", amqp_url,
         "--clients", "aiorabbit,aiorabbit-blocking,pika,bare,bare-multiack", "--sizes", "64B,64KiB",
         "--loops", "default", "--reps", "1", "--scale", "500", "--no-chart",
         "--out", str(tmp_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads((tmp_path / "latest.json").read_text())
    runs = result["runs"]
    assert runs and all(run["ok"] for run in runs)
    done = {(r["client"], r["scenario"], r["size"]) for r in runs}
    for scenario in ("publish", "publish_confirms", "consume_ack", "consume_noack"):
        for size in ("64B", "64KiB"):
            assert ("aiorabbit", scenario, size) in done
            assert ("aiorabbit-blocking", scenario, size) in done
            assert ("pika", scenario, size) in done
    assert ("bare", "publish", "64B") in done and ("bare", "consume_ack", "64KiB") in done
    assert ("bare", "publish_confirms", "64B") not in done  # no ceiling for confirms
    # The multiple-ack ceiling runs consume+ack only, and its runs were verified
    # like any other: every body byte received, the queue empty afterwards.
    multiack = [r for r in runs if r["client"] == "bare-multiack"]
    assert sorted((r["scenario"], r["size"]) for r in multiack) == [("consume_ack", "64B"),
                                                                     ("consume_ack", "64KiB")]
    assert all(r["ok"] and not r["error"] for r in multiack)
    rpc = [r for r in result["summary"] if r["scenario"] == "rpc"]
    assert {r["variant"] for r in rpc} == {"aiorabbit", "aiorabbit-blocking", "pika"}
    assert all(0 < r["p50_us"] <= r["p99_us"] for r in rpc)
    table = (tmp_path / "latest.md").read_text()
    assert "| publish | 64B | aiorabbit |" in table and "| target | met | measured |" in table
    assert "| publish | 64B | aiorabbit-blocking |" in table and "| blocking RPC p50 <= pika's |" in table
    assert "| consume_ack | 64B | bare-multiack |" in table and "| consume_ack | 64B | bare |" in table
    assert "per-ack) |" in table  # consume+ack against both ceilings
    assert "| ceiling: consume_ack 64B >= 75% of bare-multiack | " in table
    assert "| ceiling: consume_ack 4MiB >= 85% of bare-multiack | n/a | not measured |" in table
    assert result["machine"]["broker"].startswith("RabbitMQ")
    # The report can be made again from the stored run, identically.
    again = tmp_path / "again"
    proc = subprocess.run(
        [sys.executable, "benchmarks/bench.py", "--from-json", str(tmp_path / "latest.json"), "--no-chart",
         "--out", str(again)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (again / "latest.md").read_text() == table


async def test_harness_counts_a_lost_message_as_a_failure(amqp_url: str) -> None:
    sys.path.insert(0, str(ROOT))
    from benchmarks.bench import Harness, Run

    harness = Harness(argparse.Namespace(url=amqp_url))
    harness.settle_timeout = 0.5
    async with aiorabbit.connect(amqp_url) as conn:
        harness.ch = ch = await conn.channel()
        queue = (await ch.queue_declare("", exclusive=True)).queue
        for _ in range(3):
            await ch.basic_publish(b"x" * 64, routing_key=queue)
        short = Run("aiorabbit", "default", "publish", "64B", count=4, rep=0)
        assert "holds 3" in await harness._verify(short, queue, {})
        exact = Run("aiorabbit", "default", "publish", "64B", count=3, rep=0)
        assert await harness._verify(exact, queue, {}) == ""
        consumed = Run("aiorabbit", "default", "consume_ack", "64B", count=3, rep=0)
        assert "body bytes" in await harness._verify(consumed, queue, {"bytes": 64 * 2})
        assert "left in the queue" in await harness._verify(consumed, queue, {"bytes": 64 * 3})


async def test_bare_multiack_acks_every_delivery_with_few_acks(amqp_url: str) -> None:
    """More messages than the prefetch: only the periodic multiple acks let it finish."""
    sys.path.insert(0, str(ROOT))
    from benchmarks.clients.bare_client import Client as BareClient
    from benchmarks.clients.bare_multiack_client import Client as MultiAckClient

    def publish(queue: str) -> None:
        bare = BareClient()
        bare.connect(amqp_url)
        bare.publish(queue, b"x" * 64, 1000, False, 0)
        bare.close()

    def consume(client: MultiAckClient, queue: str, prefetch: int) -> int:
        client.connect(amqp_url)
        client.sock.settimeout(30)  # a missing ack would stall the broker, not fail
        try:
            return client.consume(queue, 1000, False, prefetch)
        finally:
            client.close()

    async with aiorabbit.connect(amqp_url) as conn:
        ch = await conn.channel()
        queue = (await ch.queue_declare("", exclusive=False, auto_delete=False)).queue
        try:
            await asyncio.to_thread(publish, queue)
            for _ in range(100):
                if (await ch.queue_declare(queue, passive=True)).message_count == 1000:
                    break
                await asyncio.sleep(0.05)
            with pytest.raises(ValueError, match="prefetch"):
                await asyncio.to_thread(consume, MultiAckClient(every=200), queue, 100)
            client = MultiAckClient(every=64)
            assert await asyncio.to_thread(consume, client, queue, 100) == 64 * 1000
            # Each ack covers 64 or more (but never more than the prefetch), bar the last.
            assert 1000 // 100 <= client.acks_sent <= 1000 // 64 + 1
            await asyncio.sleep(0.2)  # an unacked delivery would be back in the queue by now
            assert (await ch.queue_declare(queue, passive=True)).message_count == 0
        finally:
            await ch.queue_delete(queue)


def test_worker_fails_loudly_on_a_broker_error(amqp_url: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.worker", "--url", amqp_url, "--client", "aiorabbit",
         "--scenario", "consume_ack", "--queue", "no-such-queue-for-the-bench-test", "--count", "1"],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode != 0
    assert "NotFound" in proc.stderr


@pytest.mark.slow
def test_memory_benchmark_stays_flat(amqp_url: str) -> None:
    proc = subprocess.run(
        [sys.executable, "benchmarks/memory.py", "--url", amqp_url, "--count", "20000",
         "--slow-seconds", "2"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "RSS growth after warm-up" in proc.stdout and "0 left in the queue" in proc.stdout
    assert "RSS growth while publishers waited" in proc.stdout
