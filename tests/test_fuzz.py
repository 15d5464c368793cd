"""The mutation fuzzer (tests/fuzzing.py), bounded: about 5 s in all.

``AIORABBIT_FUZZ_SECONDS`` sets the total (split between a fixed seed and a
random one); ``scripts/fuzz.py`` runs the same fuzzer for as long as you like.
"""

from __future__ import annotations

import os
import random
import struct

import pytest

from aiorabbit.codec.frames import HEARTBEAT_FRAME, Frame, FrameParser, HeaderFrame
from aiorabbit.codec.properties import Properties
from aiorabbit.exceptions import FrameError, ProtocolVersionMismatch

from .fuzzing import Case, Fuzzer, Stats, build_corpus, deep_array, deep_table, run_case

pytestmark = pytest.mark.broker_free

FUZZ_SECONDS = max(float(os.environ.get("AIORABBIT_FUZZ_SECONDS", "5")), 1.0)
FIXED_SEED = 20240517

#: Inputs the fuzzer found that raise something other than ProtocolError.
#: Each is replayed by test_known_failures until the codec is fixed; none
#: is known today.
KNOWN_FAILURES: list[Case] = []


def _check(stats: Stats) -> None:
    print(stats.summary())
    assert not stats.failures, (
        f"{stats.failure_count} failing inputs, seed {stats.seed}:\n\n"
        + "\n\n".join(f.report() + "\n" + f.traceback for f in stats.failures)
    )
    assert stats.frames > 1000, stats.summary()


def _decode_all(frame: bytes) -> list[Frame]:
    frames = FrameParser(0).feed(frame)
    for parsed in frames:
        if isinstance(parsed, HeaderFrame):
            Properties.decode(parsed.properties)
    return frames


@pytest.mark.parametrize("seed", [0, FIXED_SEED])
def test_corpus_is_valid(seed: int) -> None:
    corpus = build_corpus(seed)
    assert len(corpus.frames) > 300 and len(corpus.tables) > 5
    too_deep = (deep_table(3000), deep_array(3000))
    refused = 0
    for frame, count in zip(corpus.frames, corpus.counts, strict=True):
        if frame.startswith(b"AMQP"):  # a protocol header in place of frames
            if len(frame) < 8:
                assert _decode_all(frame) == []
            else:
                with pytest.raises(ProtocolVersionMismatch):
                    _decode_all(frame)
            continue
        if any(table in frame for table in too_deep):
            with pytest.raises(FrameError, match="nested too deeply"):
                _decode_all(frame)
            refused += 1
            continue
        parsed = _decode_all(frame)
        assert len(parsed) == count or (frame.startswith(b"\x03") and not parsed), frame.hex()
        assert run_case(Case(frame, frame_max=0)) is None
    assert refused == 4
    for table in corpus.tables:
        assert run_case(Case(table, target="table")) is None


@pytest.mark.slow
def test_fuzz_fixed_seed() -> None:
    _check(Fuzzer(FIXED_SEED).run(FUZZ_SECONDS / 2))


@pytest.mark.slow
def test_fuzz_random_seed() -> None:
    seed = random.SystemRandom().randrange(2**32)
    print(f"fuzz seed {seed} (replay: scripts/fuzz.py --seed {seed})")
    _check(Fuzzer(seed).run(FUZZ_SECONDS / 2))


def test_known_failures() -> None:
    still = [failure.report() for case in KNOWN_FAILURES if (failure := run_case(case)) is not None]
    assert not still, "\n\n".join(still)


def test_a_failure_is_caught_and_reproducible(monkeypatch: pytest.MonkeyPatch) -> None:
    header = struct.pack(">BHIHHQ", 2, 1, 14, 60, 0, 0) + b"\x00\x00\xce"
    assert run_case(Case(header)) is None
    assert run_case(Case(b"\x09\x00\x00\x00\x00\x00\x00\xce")) is None  # FrameError: allowed

    def broken(cls: type[Properties], data: bytes) -> Properties:
        raise IndexError("index out of range")

    monkeypatch.setattr(Properties, "decode", classmethod(broken))
    failure = run_case(Case(HEARTBEAT_FRAME + header, cuts=(3, 9), frame_max=4096))
    assert failure is not None
    assert failure.stage == "decode" and isinstance(failure.error, IndexError)
    assert "in broken" in failure.where
    report = failure.report()
    assert (HEARTBEAT_FRAME + header).hex() in report
    assert "--frame-max 4096" in report and "--cuts 3,9" in report
