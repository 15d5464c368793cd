#!/usr/bin/env bash
# Build the sdist and the wheel the way a release would (python -m build: the
# wheel is built from the sdist), check them with twine, then install the
# wheel, without any extra and without the index, into a fresh virtualenv and
# run the quick start (examples/quickstart.py) against the broker and
# `aiorabbit --help` from there.  Everything happens in a temporary directory
# that is removed at the end; the work tree is only read.
#
#   bash scripts/check_dist.sh          (needs .venv from scripts/setup.sh)
#
# The broker is $AMQP_URL, else localhost:5672.
set -euo pipefail
cd "$(dirname "$0")/.."
unset PYTHONPATH
ROOT=$PWD
PY=$ROOT/.venv/bin/python

TMP=$(mktemp -d "${TMPDIR:-/tmp}/aiorabbit-dist.XXXXXX")
trap 'rm -rf "$TMP"' EXIT

# Build from a copy of the files git knows (tracked, and new ones not
# ignored), so the build never writes into the work tree and never picks up
# what a developer has lying around (.venv, caches...).
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    mkdir "$TMP/src"
    git ls-files -z --cached --others --exclude-standard \
        | while IFS= read -r -d '' f; do if [ -e "$f" ]; then printf '%s\0' "$f"; fi; done \
        | tar --null -T - -cf - | tar -C "$TMP/src" -xf -
    SRC=$TMP/src
else
    SRC=$ROOT
fi

echo "-- python -m build"
"$PY" -m build --outdir "$TMP/dist" "$SRC" >"$TMP/build.log" 2>&1 || { cat "$TMP/build.log"; exit 1; }
ls "$TMP/dist"
WHEEL=$(ls "$TMP"/dist/aiorabbit_client-*.whl)
ls "$TMP"/dist/aiorabbit_client-*.tar.gz >/dev/null

echo "-- twine check --strict"
"$PY" -m twine check --strict "$TMP"/dist/*

echo "-- install the wheel, no extras, into a fresh virtualenv"
# No pip inside the new environment: the project's pip installs into it
# (--python), from the wheel alone (--no-index: aiorabbit needs nothing else).
"$PY" -m venv --without-pip "$TMP/venv"
"$PY" -m pip --python "$TMP/venv/bin/python" install --quiet --no-index "$WHEEL"

cp examples/quickstart.py "$TMP/quickstart.py"
cd "$TMP"   # nothing of the work tree on sys.path

echo "-- what is installed"
"$TMP/venv/bin/python" - <<'PY'
import importlib.metadata as md
import importlib.util
import os
import sys

import aiorabbit

venv = os.path.realpath(sys.prefix)
where = os.path.realpath(aiorabbit.__file__)
assert where.startswith(venv + os.sep), f"aiorabbit imported from {where}, not from {venv}"
dist = md.distribution("aiorabbit-client")
assert dist.version == aiorabbit.__version__, (dist.version, aiorabbit.__version__)
assert dist.metadata["License-Expression"] == "MIT", dist.metadata["License-Expression"]
names = sorted(d.metadata["Name"] for d in md.distributions())
assert names == ["aiorabbit-client"], f"the wheel brought other distributions: {names}"
for extra in ("uvloop", "fastapi", "pytest"):
    assert importlib.util.find_spec(extra) is None, f"{extra} is installed without its extra"
print(f"aiorabbit-client {dist.version} alone in the environment, imported from {where}")
PY

echo "-- examples/quickstart.py from the installed wheel"
timeout 30 "$TMP/venv/bin/python" quickstart.py --queue "aiorabbit.dist-check.$$"

echo "-- aiorabbit --help"
timeout 30 "$TMP/venv/bin/aiorabbit" --help >"$TMP/help.txt"
head -n 1 "$TMP/help.txt"
timeout 30 "$TMP/venv/bin/python" -m aiorabbit --help >/dev/null
echo "-- the built distributions are fine"
