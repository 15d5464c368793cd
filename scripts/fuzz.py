#!/usr/bin/env python3
"""Fuzz aiorabbit's frame parser (and table / property decoders) for as long as you like.

    .venv/bin/python scripts/fuzz.py                 # 60 s, a random seed
    .venv/bin/python scripts/fuzz.py --seconds 0     # until Ctrl-C
    .venv/bin/python scripts/fuzz.py --seed 7 --seconds 600
    .venv/bin/python scripts/fuzz.py --replay HEX [--frame-max N --cuts 3,9 --placed --target table]

Only aiorabbit's ProtocolError (FrameError) may come out of the decoders; any
other exception is printed with its input as hex (and the arguments that
replay it) and makes the exit status 1.  The fuzzer itself lives in
tests/fuzzing.py; tests/test_fuzz.py runs it for a few seconds in the suite.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fuzzing import Case, Failure, Fuzzer, Stats, run_case


def _progress(stats: Stats) -> None:
    print(f"[{stats.seconds:6.0f} s] {stats.summary()}", flush=True)


def _failed(failure: Failure) -> None:
    print(f"\nFAILURE {failure.report()}\n{failure.traceback}", flush=True)


def _replay(args: argparse.Namespace) -> int:
    cuts = tuple(int(c) for c in args.cuts.split(",")) if args.cuts else ()
    case = Case(bytes.fromhex(args.replay), cuts, args.frame_max, args.placed, args.target)
    failure = run_case(case)
    if failure is None:
        print("no failure: only ProtocolError (or nothing) came out")
        return 0
    _failed(failure)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to fuzz; 0 = until Ctrl-C")
    parser.add_argument("--seed", type=int, default=None, help="the random seed (default: a random one)")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between progress lines")
    parser.add_argument("--replay", metavar="HEX", help="feed this one input and report")
    parser.add_argument("--frame-max", type=int, default=131072, help="with --replay: the parser's frame_max")
    parser.add_argument("--cuts", default="", help="with --replay: chunk boundaries, comma-separated")
    parser.add_argument("--placed", action="store_true", help="with --replay: take bodies via body_placed()")
    parser.add_argument("--target", choices=("frames", "table"), default="frames", help="with --replay")
    args = parser.parse_args(argv)
    if args.replay is not None:
        return _replay(args)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    seconds = args.seconds or None
    how_long = f"{seconds:g} s" if seconds else "ever (Ctrl-C stops)"
    print(f"fuzzing with seed {seed} for {how_long}", flush=True)
    # SIGINT (Ctrl-C, kill -INT) ends the run with its summary, even where it
    # was started with SIGINT ignored (a background job of a script).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    fuzzer = Fuzzer(seed)
    stats = fuzzer.run(seconds, progress=_progress, progress_every=args.every, on_failure=_failed)
    print(stats.summary())
    if stats.failures:
        print(f"{len(stats.failures)} distinct failure(s); rerun with --seed {seed} to reproduce")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
