#!/usr/bin/env bash
# Set everything up (scripts/setup.sh), run the checks, build the sdist and
# the wheel and try the wheel in a fresh virtualenv (scripts/check_dist.sh),
# then run the whole test suite under the default event loop (with branch
# coverage) and again under uvloop.  Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

echo "== ruff"
.venv/bin/ruff check .
echo "== mypy --strict"
.venv/bin/mypy
echo "== seams (tools/seams.py)"
.venv/bin/python tools/seams.py --check
echo "== the sdist and the wheel, and the wheel alone in a fresh virtualenv"
bash scripts/check_dist.sh
echo "== pytest (asyncio loop, branch coverage)"
.venv/bin/python -m pytest -p no:cacheprovider --cov=aiorabbit --cov-branch \
    --cov-report=term "$@"
echo "== pytest (uvloop; minus the tests that use no event loop of the suite's own:"
echo "   the sans-I/O codec and its fuzz, backoff and topology, the programs run as subprocesses,"
echo "   the README's blocks, the packaging metadata, URL secrets in messages and the blocking API (its I/O thread runs a"
echo "   loop of its own) included; the three-node cluster tests and the broker-outage tests that"
echo "   test recovery's logic rather than the transport run once, above: a broker restart and"
echo "   a cut link under uvloop stay)"
AIORABBIT_TEST_LOOP=uvloop .venv/bin/python -m pytest -p no:cacheprovider -q \
    --ignore-glob='tests/test_codec_*' --ignore=tests/test_backoff.py --ignore=tests/test_topology.py \
    --ignore=tests/test_fuzz.py \
    --ignore=tests/test_chaos.py --ignore=tests/test_benchmarks.py \
    --ignore=tests/test_cli.py --ignore=tests/test_testing_plugin.py \
    --ignore=tests/test_readme.py --ignore=tests/test_packaging.py \
    --ignore=tests/test_blocking.py --ignore=tests/test_examples_blocking.py --ignore=tests/test_url_secrets.py \
    --ignore-glob='tests/test_cluster*.py' \
    --deselect tests/test_robust_broker.py::test_failover_to_second_node \
    --deselect tests/test_robust_broker.py::test_calls_during_outage_wait_or_time_out \
    --deselect tests/test_robust_broker.py::test_server_named_exclusive_queue_recreated_with_bindings_after_crash \
    "$@"
