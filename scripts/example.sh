#!/usr/bin/env bash
# Set everything up (scripts/setup.sh), then run the end-to-end quick start
# example against the local broker.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python examples/quickstart.py
