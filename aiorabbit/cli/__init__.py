"""The ``aiorabbit`` command line tool (also ``python -m aiorabbit``).

``publish``, ``consume``, ``declare``/``delete`` (exchanges, queues,
bindings) and ``bench``; see ``aiorabbit --help`` and docs/cli.md.  Only the
standard library is used (argparse).
"""

from __future__ import annotations

from .app import build_parser, main
from .errors import ExitCode

__all__ = ["ExitCode", "build_parser", "main"]
