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
echo "   the sans-I/O codec and its fuzz, backoff and topology, and the programs run as subprocesses,"
echo "   the README's blocks and the packaging metadata included; the three-node cluster tests run"
echo "   once, above: forming the cluster again would add a minute for the broker's failover, not the loop)"
AIORABBIT_TEST_LOOP=uvloop .venv/bin/python -m pytest -p no:cacheprovider -q \
    --ignore-glob='tests/test_codec_*' --ignore=tests/test_backoff.py --ignore=tests/test_topology.py \
    --ignore=tests/test_fuzz.py \
    --ignore=tests/test_chaos.py --ignore=tests/test_benchmarks.py \
    --ignore=tests/test_cli.py --ignore=tests/test_testing_plugin.py \
    --ignore=tests/test_readme.py --ignore=tests/test_packaging.py \
    --ignore=tests/test_examples_blocking.py --ignore-glob='tests/test_cluster*.py' "$@"
