"""The chaos run (``benchmarks/chaos.py``) at its CI size: 20,000 messages
through Publisher over connect_robust, a proxy cutting the link about once
a second and one restart of a dedicated broker node; and the same on a
three-node cluster with a quorum queue and node kills.  Nothing may be lost,
duplicates stay within what was in flight at the cuts, no task leaks."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.extra_node  # benchmarks/chaos.py restarts a node of its own
def test_chaos_run_loses_nothing() -> None:
    proc = subprocess.run(
        [sys.executable, "benchmarks/chaos.py", "--count", "20000"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr[-3000:]
    assert "chaos run: PASSED" in out
    assert re.search(r"lost 0;", out)
    cuts = int(re.search(r"through (\d+) cuts", out).group(1))  # type: ignore[union-attr]
    assert cuts >= 3
    assert "1 node restart(s)" in out and "tasks left over 0" in out


@pytest.mark.slow
@pytest.mark.extra_node  # a three-node cluster of its own (tests/cluster.py)
def test_chaos_run_on_a_cluster_loses_nothing() -> None:
    # A quorum queue, both connections over the three nodes, proxy cuts and
    # a node killed and started again every few seconds, one at a time.
    proc = subprocess.run(
        [sys.executable, "benchmarks/chaos.py", "--cluster", "--count", "20000"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr[-3000:]
    assert "chaos run: PASSED" in out and re.search(r"lost 0;", out)
    assert re.search(r"through \d+ cuts and [1-9]\d* node kill\(s\)", out), out
    assert "tasks left over 0" in out
    assert re.search(r"recovery to the next confirm: p50 [\d.]+ s, p99 [\d.]+ s", out), out
