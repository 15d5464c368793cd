"""A mutation fuzzer for the frame parser (and the table and property decoders).

The property: whatever bytes arrive, in whatever chunks, ``FrameParser``
(with a sink that also decodes every content header's properties) raises
nothing but :class:`aiorabbit.exceptions.ProtocolError` (``FrameError`` is
one).  IndexError, struct.error, UnicodeDecodeError, RecursionError,
MemoryError, OverflowError, a ValueError that is not an aiorabbit error...
are failures.  A value that was decoded must also encode again: the sink
re-encodes every method and property list it gets (an exception there is a
failure too, reported as ``stage="re-encode"``).

Used by ``tests/test_fuzz.py`` (bounded, in CI) and ``scripts/fuzz.py``
(as long as you like)::

    fuzzer = Fuzzer(seed=1)
    stats = fuzzer.run(seconds=5)
    assert not stats.failures, stats.failures[0].report()

A failure carries its :class:`Case` (input bytes, chunk cuts, frame_max, how
bodies were taken), which :func:`run_case` replays.
"""

from __future__ import annotations

import datetime
import decimal
import inspect
import itertools
import random
import struct
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from aiorabbit.codec import Method
from aiorabbit.codec import methods as m
from aiorabbit.codec.frames import (
    FRAME_BODY,
    FRAME_HEADER,
    FRAME_METHOD,
    HEARTBEAT_FRAME,
    FrameParser,
    encode_content_frames,
    encode_method_frame,
)
from aiorabbit.codec.methods import METHODS
from aiorabbit.codec.properties import Properties
from aiorabbit.codec.table import (
    Float32,
    Int8,
    Int16,
    Int32,
    Int64,
    UInt8,
    UInt16,
    UInt32,
    decode_table,
    encode_table,
)
from aiorabbit.exceptions import InvalidArgument, ProtocolError

__all__ = [
    "ALLOWED",
    "Case",
    "Failure",
    "Fuzzer",
    "Stats",
    "build_corpus",
    "run_case",
]

#: What may come out of the decoders.
ALLOWED: tuple[type[BaseException], ...] = (ProtocolError,)

_HEAD = struct.Struct(">BHI")
FRAME_MAXES = (0, 4096, 131072)


# --------------------------------------------------------------------------
# the corpus: valid frames


def rich_table(rng: random.Random, depth: int = 2) -> dict[str, Any]:
    """A field table with a value of every field type (nested ``depth`` deep)."""
    table: dict[str, Any] = {
        "bool": rng.random() < 0.5,
        "i8": Int8(rng.randint(-128, 127)),
        "u8": UInt8(rng.randint(0, 255)),
        "i16": Int16(rng.randint(-(2**15), 2**15 - 1)),
        "u16": UInt16(rng.randint(0, 2**16 - 1)),
        "i32": Int32(rng.randint(-(2**31), 2**31 - 1)),
        "u32": UInt32(rng.randint(0, 2**32 - 1)),
        "i64": Int64(rng.randint(-(2**63), 2**63 - 1)),
        "int": rng.choice([0, -1, 300, 70000, -(2**40)]),
        "f32": Float32(1.5),
        "f64": rng.choice([0.1, -2.5e300, float("inf")]),
        "dec": decimal.Decimal(rng.choice(["3.14", "-0.001", "42", "0"])),
        "str": rng.choice(["", "text", "h\u00e9llo \u2603", "x" * 300]),
        "bytes": b"\xff\xfe not utf-8",
        "bytearray": bytearray(b"\x00\x01\x02"),
        "time": datetime.datetime(2024, 5, 17, 12, 30, tzinfo=datetime.timezone.utc),
        "void": None,
        "array": [1, "two", 3.0, None, [True, Int8(-1)], {"k": "v"}],
        "\u00fcnicode key": "value",
    }
    if depth:
        table["nested"] = rich_table(rng, depth - 1)
    return table


def rich_properties(rng: random.Random) -> Properties:
    """Properties with every field set."""
    return Properties(
        content_type="application/json",
        content_encoding="gzip",
        headers=rich_table(rng, 1),
        delivery_mode=rng.choice([1, 2]),
        priority=rng.randint(0, 255),
        correlation_id="corr-\u00e9",
        reply_to="amq.rabbitmq.reply-to",
        expiration="60000",
        message_id="m" * rng.choice([1, 255]),
        timestamp=datetime.datetime(2030, 1, 1, tzinfo=datetime.timezone.utc),
        type="event",
        user_id="guest",
        app_id="fuzz",
        cluster_id="",
    )


_INT_CHOICES = (0, 1, 2, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 2**31 - 1, 2**32 - 1, 2**63, 2**64 - 1)


def _argument(annotation: str, rng: random.Random, small: bool) -> Any:
    if annotation == "int":
        return rng.choice((0, 1, 200)) if small else rng.choice(_INT_CHOICES)
    if annotation == "bool":
        return rng.random() < 0.5
    if annotation == "str":
        return rng.choice(["", "q", "amq.gen-JzTY20BRgKO", "\u00e9t\u00e9", "k" * 255])
    if annotation == "bytes":
        return rng.choice([b"", b"\x00guest\x00guest", b"PLAIN AMQPLAIN", bytes(range(256))])
    if annotation.startswith("dict"):
        return rng.choice([{}, rich_table(rng, 1), {"x-queue-type": "quorum"}])
    raise AssertionError(f"no argument generator for {annotation!r}")


def make_method(cls: type[Method], rng: random.Random) -> Method:
    """An instance of ``cls`` with plausible arguments (random, yet encodable)."""
    params = [
        p for p in inspect.signature(cls.__init__).parameters.values() if p.kind is p.KEYWORD_ONLY
    ]
    for attempt in range(20):
        kwargs = {p.name: _argument(str(p.annotation), rng, small=attempt >= 10) for p in params}
        method = cls(**kwargs)
        try:
            method.encode()
        except InvalidArgument:  # an int too wide for its field
            continue
        return method
    raise AssertionError(f"could not make an encodable {cls.NAME}")


def _content(channel: int, body: bytes, props: bytes, frame_max: int) -> bytes:
    out: list[Any] = []
    encode_content_frames(channel, 60, body, props, frame_max, out)
    return b"".join(bytes(part) for part in out)


def deep_table(depth: int) -> bytes:
    """A field table nested ``depth`` deep (built by hand: the encoder recurses)."""
    inner = b"\x00\x00\x00\x00"
    for _ in range(depth):
        entry = b"\x01kF" + inner
        inner = struct.pack(">I", len(entry)) + entry
    return inner


def deep_array(depth: int) -> bytes:
    """A table holding an array nested ``depth`` deep."""
    inner = b"\x00\x00\x00\x00"
    for _ in range(depth):
        inner = struct.pack(">I", 1 + len(inner)) + b"A" + inner
    entry = b"\x01aA" + inner
    return struct.pack(">I", len(entry)) + entry


@dataclass
class Corpus:
    """Valid inputs: whole frames (or content groups) and encoded tables."""

    frames: list[bytes]  # each one frame, or a method + header + body frames
    counts: list[int]  # how many frames each entry holds
    tables: list[bytes]  # length-prefixed field tables


def _frame_count(data: bytes) -> int:
    count, pos = 0, 0
    while pos + 7 <= len(data):
        (_, _, size) = _HEAD.unpack_from(data, pos)
        pos += 8 + size
        count += 1
    return count


def build_corpus(seed: int = 0) -> Corpus:
    """Every method class (a few argument sets each), content with every
    property and every table field type, body frames, heartbeats, deep nesting."""
    rng = random.Random(seed)
    frames: list[bytes] = [HEARTBEAT_FRAME]
    tables: list[bytes] = []
    for cls in METHODS.values():
        for _ in range(3):
            method = make_method(cls, rng)
            frames.append(encode_method_frame(rng.choice([0, 1, 7, 65535]), method))
    for frame_max in (4096, 131072):
        for size in (0, 1, 100, 4088, 4089, 10000):
            body = bytes(rng.getrandbits(8) for _ in range(size))
            for props in (Properties(), rich_properties(rng), Properties(message_id="x")):
                raw = props.encode()
                for method in (
                    m.BasicDeliver(
                        consumer_tag="ct",
                        delivery_tag=rng.getrandbits(64) or 1,
                        exchange="ex",
                        routing_key="rk",
                    ),
                    m.BasicGetOk(delivery_tag=1, exchange="", routing_key="q", message_count=3),
                    m.BasicReturn(reply_code=312, exchange="ex", routing_key="x", reply_text="NO_ROUTE"),
                ):
                    frames.append(encode_method_frame(1, method) + _content(1, body, raw, frame_max))
                frames.append(_content(2, body, raw, frame_max))  # header and body frames alone
    frames.append(_HEAD.pack(FRAME_BODY, 3, 0) + b"\xce")  # an empty body frame
    # A server refusing our protocol header answers with its own (in place of a frame).
    frames += [b"AMQP\x00\x00\x09\x01", b"AMQP\x01\x01\x00\x0a", b"AMQP\x00\x00\x09"]
    # Deep nesting: the decoders must turn RecursionError into FrameError.
    for depth in (50, 3000):
        for table in (deep_table(depth), deep_array(depth)):
            tables.append(table)
            start = b"\x00\x0a\x00\x0a\x00\x09" + table + b"\x00\x00\x00\x05PLAIN\x00\x00\x00\x05en_US"
            frames.append(_HEAD.pack(FRAME_METHOD, 0, len(start)) + start + b"\xce")
            prop_list = b"\x20\x00" + table  # headers only
            header = struct.pack(">HHQ", 60, 0, 0) + prop_list
            frames.append(_HEAD.pack(FRAME_HEADER, 1, len(header)) + header + b"\xce")
    for depth in (0, 1, 2, 3):
        tables.append(encode_table(rich_table(rng, depth)))
    tables.append(encode_table(rich_properties(rng).headers))
    return Corpus(frames, [_frame_count(f) for f in frames], tables)


# --------------------------------------------------------------------------
# running one input


@dataclass(frozen=True)
class Case:
    """One input and how it is fed."""

    data: bytes
    cuts: tuple[int, ...] = ()  # chunk boundaries
    frame_max: int = 131072
    placed: bool = False  # take body bytes via pending_body()/body_placed()
    target: str = "frames"  # or "table": decode_table(data)

    def chunks(self) -> Iterator[bytes]:
        edges = [0, *sorted({c for c in self.cuts if 0 < c < len(self.data)}), len(self.data)]
        for a, b in itertools.pairwise(edges):
            yield self.data[a:b]

    def describe(self) -> str:
        cuts = ",".join(map(str, self.cuts)) or "-"
        return (
            f"target={self.target} frame_max={self.frame_max} placed={self.placed} cuts={cuts}\n"
            f"data ({len(self.data)} bytes) = {self.data.hex()}"
        )

    def replay_args(self) -> str:
        """The scripts/fuzz.py arguments that replay this case."""
        args = f"--replay {self.data.hex()} --frame-max {self.frame_max} --target {self.target}"
        if self.cuts:
            args += " --cuts " + ",".join(map(str, self.cuts))
        if self.placed:
            args += " --placed"
        return args


class _Stage(Exception):
    """Wraps an exception raised while re-encoding (a separate kind of failure)."""


class _DecodingSink:
    """Decodes what the parser hands on: properties of every header, and
    re-encodes every method and property list."""

    __slots__ = ("frames",)

    def __init__(self) -> None:
        self.frames = 0

    def on_method(self, channel: int, method: Method) -> None:
        self.frames += 1
        try:
            method.encode()
        except Exception as exc:
            raise _Stage(method) from exc

    def on_header(self, channel: int, class_id: int, body_size: int, properties: bytes) -> None:
        self.frames += 1
        props = Properties.decode(properties)
        try:
            props.encode()
        except Exception as exc:
            raise _Stage(props) from exc

    def on_body(self, channel: int, chunk: memoryview) -> None:
        bytes(chunk)  # touch it: it must be a valid view

    def on_heartbeat(self) -> None:
        self.frames += 1


def _feed(case: Case) -> None:
    if case.target == "table":
        table, _ = decode_table(case.data)
        try:
            encode_table(table)
        except Exception as exc:
            raise _Stage(table) from exc
        return
    parser = FrameParser(case.frame_max)
    sink = _DecodingSink()
    for chunk in case.chunks():
        view = memoryview(chunk)
        while view:
            _, due = parser.pending_body()
            if case.placed and due:
                take = min(due, len(view))
                parser.body_placed(take)
                view = view[take:]
                continue
            parser.feed_into(view, sink)
            break


@dataclass
class Failure:
    """An exception other than ProtocolError, with the input that raised it."""

    case: Case
    error: BaseException
    stage: str  # "decode" or "re-encode"
    where: str  # the innermost traceback line
    traceback: str

    @property
    def signature(self) -> tuple[str, str, str]:
        return (self.stage, type(self.error).__name__, self.where)

    def report(self) -> str:
        return (
            f"{self.stage}: {type(self.error).__name__}: {self.error}\n"
            f"  at {self.where}\n  {self.case.describe()}\n"
            f"  replay: scripts/fuzz.py {self.case.replay_args()}"
        )


def run_case(case: Case) -> Failure | None:
    """Feed ``case``; the failure, if anything but ProtocolError (or nothing) came out."""
    try:
        _feed(case)
    except ALLOWED:
        return None
    except _Stage as exc:
        cause = exc.__cause__
        assert cause is not None
        return _failure(case, cause, "re-encode")
    except (Exception, RecursionError, MemoryError) as exc:
        return _failure(case, exc, "decode")
    return None


def _failure(case: Case, exc: BaseException, stage: str) -> Failure:
    frames = traceback.extract_tb(exc.__traceback__)
    last = frames[-1] if frames else None
    where = f"{last.filename.rsplit('/', 2)[-1]}:{last.lineno} in {last.name}: {last.line}" if last else "?"
    return Failure(case, exc, stage, where, "".join(traceback.format_exception(exc)))


# --------------------------------------------------------------------------
# mutation

_INTERESTING8 = (0x00, 0xFF, 0x7F, 0x80, 0x01, 0xCE, 0x08, 0x03, 0x02, 0x53, 0x46, 0x41)
_INTERESTING32 = (0, 1, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF)


class Mutator:
    """Mutations of a byte string: bit flips, interesting bytes, length
    fields, truncation, duplication, deletion and splicing."""

    def __init__(self, rng: random.Random, corpus: Corpus) -> None:
        self.rng = rng
        self.corpus = corpus
        self.ops: list[Callable[[bytearray], None]] = [
            self.flip_bits,
            self.interesting_byte,
            self.interesting_byte,
            self.random_byte,
            self.length_field,
            self.length_field,
            self.frame_size,
            self.truncate,
            self.duplicate,
            self.delete,
            self.splice,
        ]

    def mutate(self, data: bytearray, rounds: int) -> None:
        for _ in range(rounds):
            self.rng.choice(self.ops)(data)

    def _pos(self, data: bytearray) -> int:
        return self.rng.randrange(len(data)) if data else 0

    def flip_bits(self, data: bytearray) -> None:
        for _ in range(self.rng.randint(1, 8)):
            if data:
                data[self._pos(data)] ^= 1 << self.rng.randrange(8)

    def interesting_byte(self, data: bytearray) -> None:
        if data:
            data[self._pos(data)] = self.rng.choice(_INTERESTING8)

    def random_byte(self, data: bytearray) -> None:
        if data:
            data[self._pos(data)] = self.rng.getrandbits(8)

    def length_field(self, data: bytearray) -> None:
        """Overwrite an 8-, 16- or 32-bit big-endian field with an odd length."""
        width = self.rng.choice((1, 2, 4, 4))
        if len(data) < width:
            return
        pos = self.rng.randrange(len(data) - width + 1)
        rest = len(data) - pos - width
        value = self.rng.choice(
            (*_INTERESTING32, rest, rest + 1, rest - 1, max(rest - 5, 0), self.rng.getrandbits(32))
        )
        value &= (1 << (8 * width)) - 1
        data[pos : pos + width] = max(value, 0).to_bytes(width, "big")

    def frame_size(self, data: bytearray) -> None:
        """Change the size field of one of the frames in ``data``."""
        heads, pos = [], 0
        while pos + 7 <= len(data):
            heads.append(pos)
            pos += 8 + _HEAD.unpack_from(data, pos)[2]
        if heads:
            at = self.rng.choice(heads)
            size = _HEAD.unpack_from(data, at)[2]
            new = self.rng.choice((0, 1, size - 1, size + 1, size + self.rng.randint(2, 64), 0xFFFFFFFF))
            data[at + 3 : at + 7] = struct.pack(">I", new & 0xFFFFFFFF)

    def truncate(self, data: bytearray) -> None:
        if data:
            del data[self.rng.randrange(len(data)) :]

    def duplicate(self, data: bytearray) -> None:
        if data:
            a = self._pos(data)
            b = min(len(data), a + self.rng.randint(1, 64))
            data[self._pos(data) : self._pos(data)] = data[a:b]

    def delete(self, data: bytearray) -> None:
        if data:
            a = self._pos(data)
            del data[a : a + self.rng.randint(1, 16)]

    def splice(self, data: bytearray) -> None:
        other = self.rng.choice(self.corpus.frames)
        a = self.rng.randrange(len(other))
        piece = other[a : a + self.rng.randint(1, 128)]
        at = self._pos(data)
        data[at : at + self.rng.randint(0, len(piece))] = piece


# --------------------------------------------------------------------------
# the loop


@dataclass
class Stats:
    seed: int
    inputs: int = 0  # mutated inputs fed
    frames: int = 0  # valid frames those inputs were made from
    seconds: float = 0.0
    failures: list[Failure] = field(default_factory=list)  # the first of each signature
    failure_count: int = 0  # every failing input

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        return (
            f"seed {self.seed}: {self.frames} frames in {self.inputs} inputs, {self.seconds:.1f} s, "
            f"{self.frames_per_second:,.0f} frames/s, {self.failure_count} failing inputs "
            f"({len(self.failures)} distinct)"
        )


class Fuzzer:
    def __init__(self, seed: int, corpus: Corpus | None = None) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.corpus = corpus if corpus is not None else build_corpus(seed)
        self.mutator = Mutator(self.rng, self.corpus)

    def next_case(self) -> tuple[Case, int]:
        """A mutated input and how many valid frames it was made from."""
        rng = self.rng
        corpus = self.corpus
        if rng.random() < 0.1:
            data = bytearray(rng.choice(corpus.tables))
            self.mutator.mutate(data, rng.randint(1, 4))
            return Case(bytes(data), target="table"), 1
        picks = [rng.randrange(len(corpus.frames)) for _ in range(rng.randint(1, 4))]
        data = bytearray(b"".join(corpus.frames[i] for i in picks))
        frames = sum(corpus.counts[i] for i in picks)
        self.mutator.mutate(data, rng.choice((0, 1, 1, 1, 2, 2, 3, 5, 8)))
        n = len(data)
        if rng.random() < 0.3 or n < 2:
            cuts: tuple[int, ...] = ()
        elif n <= 300 and rng.random() < 0.1:
            cuts = tuple(range(1, n))  # byte by byte
        else:
            cuts = tuple(rng.randrange(1, n) for _ in range(rng.randint(1, 8)))
        return (
            Case(bytes(data), cuts, rng.choice(FRAME_MAXES), placed=rng.random() < 0.3),
            frames,
        )

    def run(
        self,
        seconds: float | None,
        *,
        max_inputs: int | None = None,
        progress: Callable[[Stats], None] | None = None,
        progress_every: float = 10.0,
        on_failure: Callable[[Failure], None] | None = None,
    ) -> Stats:
        """Fuzz for ``seconds`` (``None``: until KeyboardInterrupt or ``max_inputs``)."""
        stats = Stats(self.seed)
        seen: set[tuple[str, str, str]] = set()
        start = time.monotonic()
        next_report = start + progress_every
        try:
            while max_inputs is None or stats.inputs < max_inputs:
                for _ in range(64):
                    case, frames = self.next_case()
                    stats.inputs += 1
                    stats.frames += frames
                    failure = run_case(case)
                    if failure is not None:
                        stats.failure_count += 1
                        if failure.signature not in seen:
                            seen.add(failure.signature)
                            stats.failures.append(failure)
                            if on_failure is not None:
                                on_failure(failure)
                now = time.monotonic()
                stats.seconds = now - start
                if seconds is not None and stats.seconds >= seconds:
                    break
                if progress is not None and now >= next_report:
                    next_report = now + progress_every
                    progress(stats)
        except KeyboardInterrupt:
            pass
        stats.seconds = time.monotonic() - start
        return stats
