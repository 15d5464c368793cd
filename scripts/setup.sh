#!/usr/bin/env bash
# Prepare a machine for aiorabbit's tests and examples: a virtualenv with the
# package and its test extras in .venv, and a RabbitMQ broker answering on
# $AMQP_URL or localhost:5672 (installed and started here if none answers and
# we are allowed to: root on Debian/Ubuntu).  Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PYTHON" -m venv .venv
fi
# The distribution used to be called "aiorabbit" (now "aiorabbit-client";
# "aiorabbit" on PyPI is another project with the same import name): remove
# an old install of either so that exactly one provides the import.  The old
# name's metadata left in the work tree would still be found on the path the
# editable install adds, and pass for an installed "aiorabbit".
rm -rf aiorabbit.egg-info
if .venv/bin/python -m pip show --quiet aiorabbit >/dev/null 2>&1; then
    echo "removing the distribution \"aiorabbit\" from .venv: this project is \"aiorabbit-client\""
    .venv/bin/python -m pip uninstall --quiet --yes aiorabbit
fi

# Editable, in setuptools' "compat" mode: a plain path entry for the work
# tree in a .pth file, which mypy, pyright and other tools run from anywhere
# can follow (the default mode installs an import hook that they cannot see).
# Setuptools prints a notice for every editable install, so this one is done
# again only when pyproject.toml changed or the install is not the one
# expected (the stamp records the pyproject.toml it was made from).
STAMP=.venv/.aiorabbit-setup
wanted="$(cksum < pyproject.toml) $(pwd)"
installed_here() {
    .venv/bin/python - "$(pwd)" <<'PY' 2>/dev/null
import importlib.metadata, os, sys
import aiorabbit
importlib.metadata.version("aiorabbit-client")
sys.exit(os.path.dirname(os.path.dirname(os.path.realpath(aiorabbit.__file__))) != os.path.realpath(sys.argv[1]))
PY
}
if [ "$(cat "$STAMP" 2>/dev/null)" != "$wanted" ] || ! installed_here; then
    rm -f "$STAMP"
    .venv/bin/python -m pip install --quiet --upgrade pip >/dev/null
    .venv/bin/python -m pip install --quiet -e ".[test]" --config-settings editable_mode=compat
    printf '%s\n' "$wanted" > "$STAMP"
fi

broker_answers() {
    .venv/bin/python - <<'PY'
import os, socket, sys
from urllib.parse import urlsplit
url = urlsplit(os.environ.get("AMQP_URL") or "amqp://localhost:5672")
try:
    socket.create_connection((url.hostname or "localhost", url.port or 5672), timeout=2).close()
except OSError:
    sys.exit(1)
PY
}

if broker_answers; then
    exit 0
fi
if [ -n "${AMQP_URL:-}" ]; then
    echo "AMQP_URL=$AMQP_URL does not answer" >&2
    exit 1
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    if ! command -v rabbitmq-server >/dev/null; then
        echo "installing rabbitmq-server..."
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
    fi
    echo "starting rabbitmq-server..."
    rabbitmq-server -detached || true
    for _ in $(seq 1 60); do
        if broker_answers; then
            exit 0
        fi
        sleep 1
    done
    echo "rabbitmq-server did not answer on localhost:5672 within 60 s" >&2
    exit 1
fi
# The tests fall back to testcontainers where a Docker engine runs.
echo "no broker on localhost:5672: the tests will try testcontainers (Docker)" >&2
