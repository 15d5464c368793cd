"""``python -m aiorabbit``: the command line tool (see :mod:`aiorabbit.cli`)."""

from __future__ import annotations

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
