"""AMQP field tables and arrays: aiorabbit.codec.table.

The byte fixtures below are written by hand from the AMQP 0-9-1 grammar with
RabbitMQ's errata (tags t b B s u I i l f d D S x T F A V); they are not
produced by the encoder under test.
"""

from __future__ import annotations

import datetime
import decimal
import enum
import math
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiorabbit.codec.table import (
    MAX_DEPTH,
    Float32,
    Int8,
    Int16,
    Int32,
    Int64,
    UInt8,
    UInt16,
    UInt32,
    decode_table,
    decode_value,
    encode_table,
    encode_value,
)
from aiorabbit.exceptions import FrameError, InvalidArgument

pytestmark = pytest.mark.broker_free

UTC = datetime.timezone.utc
D = decimal.Decimal
JAN_1_2024 = datetime.datetime(2024, 1, 1, tzinfo=UTC)  # 1704067200 == 0x65920080
MAX_TIMESTAMP = 253402300799  # 9999-12-31T23:59:59Z, the last datetime


def _decode_one(raw: bytes):
    value, offset = decode_value(raw, 0, len(raw))
    assert offset == len(raw)
    return value


# --------------------------------------------------------------------------
# exact bytes, one tag at a time

TAG_FIXTURES = [
    # (value, wire bytes, expected decoded type)
    (True, b"t\x01", bool),
    (False, b"t\x00", bool),
    (5, b"b\x05", int),
    (Int8(-1), b"b\xff", int),
    (UInt8(200), b"B\xc8", UInt8),
    (UInt8(0), b"B\x00", UInt8),
    (Int16(-2), b"s\xff\xfe", Int16),
    (300, b"s\x01\x2c", int),
    (40000, b"u\x9c\x40", int),
    (UInt16(1), b"u\x00\x01", UInt16),
    (-70000, b"I\xff\xfe\xee\x90", int),
    (Int32(7), b"I\x00\x00\x00\x07", Int32),
    (3000000000, b"i\xb2\xd0\x5e\x00", int),
    (UInt32(1), b"i\x00\x00\x00\x01", UInt32),
    (-(2**40), b"l\xff\xff\xff\x00\x00\x00\x00\x00", int),
    (Int64(-1), b"l\xff\xff\xff\xff\xff\xff\xff\xff", Int64),
    (Float32(1.5), b"f\x3f\xc0\x00\x00", Float32),
    (Float32(-2.0), b"f\xc0\x00\x00\x00", Float32),
    (1.5, b"d\x3f\xf8\x00\x00\x00\x00\x00\x00", float),
    (-0.0, b"d\x80\x00\x00\x00\x00\x00\x00\x00", float),
    (math.inf, b"d\x7f\xf0\x00\x00\x00\x00\x00\x00", float),
    (D("1.50"), b"D\x02\x00\x00\x00\x96", D),
    (D("-3.14"), b"D\x02\xff\xff\xfe\xc6", D),
    (D("7"), b"D\x00\x00\x00\x00\x07", D),
    ("", b"S\x00\x00\x00\x00", str),
    ("h\u00e9", b"S\x00\x00\x00\x03h\xc3\xa9", str),
    (b"\xff\xfe", b"S\x00\x00\x00\x02\xff\xfe", bytes),
    (bytearray(b"\x00\x01"), b"x\x00\x00\x00\x02\x00\x01", bytearray),
    (bytearray(), b"x\x00\x00\x00\x00", bytearray),
    (JAN_1_2024, b"T\x00\x00\x00\x00\x65\x92\x00\x80", datetime.datetime),
    ({}, b"F\x00\x00\x00\x00", dict),
    ({"k": None}, b"F\x00\x00\x00\x03\x01kV", dict),
    ([], b"A\x00\x00\x00\x00", list),
    ([1, "a"], b"A\x00\x00\x00\x08b\x01S\x00\x00\x00\x01a", list),
    (None, b"V", type(None)),
]


@pytest.mark.parametrize(("value", "wire", "decoded_type"), TAG_FIXTURES, ids=lambda v: repr(v)[:30])
def test_value_fixture(value, wire, decoded_type):
    assert encode_value(value) == wire
    decoded = _decode_one(wire)
    assert type(decoded) is decoded_type
    assert decoded == value
    if isinstance(value, float):
        assert math.copysign(1.0, decoded) == math.copysign(1.0, value)
    assert encode_value(decoded) == wire


def test_table_fixture_single_int():
    assert encode_table({"a": 1}) == b"\x00\x00\x00\x04\x01ab\x01"
    assert decode_table(b"\x00\x00\x00\x04\x01ab\x01") == ({"a": 1}, 8)


def test_table_fixture_mixed_and_ordered():
    table = {
        "x-queue-type": "quorum",
        "x-max-length": 10,
        "ok": True,
        "nested": {"n": [None, 1.5]},
    }
    wire = (
        b"\x00\x00\x00\x49"  # 24 + 15 + 5 + 29 = 73
        b"\x0cx-queue-typeS\x00\x00\x00\x06quorum"  # 1 + 12 + 1 + 4 + 6 = 24
        b"\x0cx-max-lengthb\x0a"  # 1 + 12 + 1 + 1 = 15
        b"\x02okt\x01"  # 1 + 2 + 1 + 1 = 5
        b"\x06nestedF\x00\x00\x00\x11"  # 1 + 6 + 1 + 4 + 17 = 29
        b"\x01nA\x00\x00\x00\x0a"  # 1 + 1 + 1 + 4 + 10 = 17
        b"Vd\x3f\xf8\x00\x00\x00\x00\x00\x00"  # 1 + 9 = 10
    )
    assert len(wire) == 4 + 0x49
    assert encode_table(table) == wire
    decoded, offset = decode_table(wire)
    assert offset == len(wire)
    assert decoded == table
    assert list(decoded) == list(table)  # insertion order is wire order


def test_empty_and_none_tables():
    assert encode_table({}) == b"\x00\x00\x00\x00"
    assert encode_table(None) == b"\x00\x00\x00\x00"
    assert decode_table(b"\x00\x00\x00\x00") == ({}, 4)


def test_tuple_encodes_as_array():
    assert encode_value((1, 2)) == b"A\x00\x00\x00\x04b\x01b\x02"


def test_memoryview_encodes_as_longstr():
    assert encode_value(memoryview(b"ab")) == b"S\x00\x00\x00\x02ab"


def test_str_subclass_and_int_enum():
    class Colour(enum.IntEnum):
        RED = 300

    class Name(str):
        pass

    assert encode_value(Colour.RED) == b"s\x01\x2c"
    assert encode_value(Name("ab")) == b"S\x00\x00\x00\x02ab"


def test_decode_table_offset_and_end():
    table = b"\x00\x00\x00\x04\x01ab\x01"
    data = b"junk" + table + b"tail"
    assert decode_table(data, 4) == ({"a": 1}, 4 + len(table))
    assert decode_table(memoryview(data), 4, 4 + len(table)) == ({"a": 1}, 12)
    with pytest.raises(FrameError):
        decode_table(data, 4, 4 + len(table) - 1)


# --------------------------------------------------------------------------
# integers: smallest tag, boundaries, tag-preserving subclasses

INT_BOUNDARIES = [
    (0, b"b\x00"),
    (127, b"b\x7f"),
    (128, b"s\x00\x80"),
    (-128, b"b\x80"),
    (-129, b"s\xff\x7f"),
    (32767, b"s\x7f\xff"),
    (32768, b"u\x80\x00"),
    (-32768, b"s\x80\x00"),
    (-32769, b"I\xff\xff\x7f\xff"),
    (65535, b"u\xff\xff"),
    (65536, b"I\x00\x01\x00\x00"),
    (2**31 - 1, b"I\x7f\xff\xff\xff"),
    (2**31, b"i\x80\x00\x00\x00"),
    (-(2**31), b"I\x80\x00\x00\x00"),
    (-(2**31) - 1, b"l\xff\xff\xff\xff\x7f\xff\xff\xff"),
    (2**32 - 1, b"i\xff\xff\xff\xff"),
    (2**32, b"l\x00\x00\x00\x01\x00\x00\x00\x00"),
    (2**63 - 1, b"l\x7f\xff\xff\xff\xff\xff\xff\xff"),
    (-(2**63), b"l\x80\x00\x00\x00\x00\x00\x00\x00"),
]


@pytest.mark.parametrize(("number", "wire"), INT_BOUNDARIES, ids=str)
def test_int_smallest_tag(number, wire):
    assert encode_value(number) == wire
    decoded = _decode_one(wire)
    assert type(decoded) is int  # the smallest tag: no subclass needed
    assert decoded == number


@pytest.mark.parametrize("number", [2**63, -(2**63) - 1, 2**64, -(2**100)])
def test_int_out_of_range(number):
    with pytest.raises(InvalidArgument, match=f"{number} does not fit"):
        encode_value(number)
    with pytest.raises(InvalidArgument, match=f"{number} does not fit"):
        encode_table({"big": [number]})


TAGGED = [
    (Int8, b"b", -128, 127),
    (UInt8, b"B", 0, 255),
    (Int16, b"s", -(2**15), 2**15 - 1),
    (UInt16, b"u", 0, 2**16 - 1),
    (Int32, b"I", -(2**31), 2**31 - 1),
    (UInt32, b"i", 0, 2**32 - 1),
    (Int64, b"l", -(2**63), 2**63 - 1),
]


@pytest.mark.parametrize(("cls", "tag", "low", "high"), TAGGED, ids=lambda v: str(v))
def test_tagged_int_range_and_tag(cls, tag, low, high):
    for number in (low, high, 1):
        value = cls(number)
        wire = encode_value(value)
        assert wire == tag + cls.fmt.pack(number)
        decoded = _decode_one(wire)
        assert decoded == number
        assert encode_value(decoded) == wire
    with pytest.raises(InvalidArgument):
        cls(low - 1)
    with pytest.raises(InvalidArgument):
        cls(high + 1)


def test_tagged_int_decodes_to_subclass_when_not_smallest():
    # 5 would be written as b"b\x05"; every other tag must survive a round trip
    for cls, tag, _, _ in TAGGED:
        wire = tag + cls.fmt.pack(5)
        decoded = _decode_one(wire)
        if tag == b"b":
            assert type(decoded) is int
        else:
            assert type(decoded) is cls
            assert repr(decoded) == f"{cls.__name__}(5)"
        entry = b"\x01n" + wire
        assert encode_table({"n": decoded}) == _u32(len(entry)) + entry


def test_tagged_int_kept_inside_nested_structures():
    wire_table = (
        b"\x00\x00\x00\x13"  # 12 + 7 = 19
        b"\x01aA\x00\x00\x00\x05B\x01u\x00\x02"  # 1 + 1 + 1 + 4 + (2 + 3) = 12
        b"\x01bF\x00\x00\x00\x00"  # 1 + 1 + 1 + 4 = 7
    )
    decoded, offset = decode_table(wire_table)
    assert offset == len(wire_table) == 23
    assert decoded == {"a": [1, 2], "b": {}}
    assert type(decoded["a"][0]) is UInt8
    assert type(decoded["a"][1]) is UInt16
    assert encode_table(decoded) == wire_table


def test_bool_is_not_an_int():
    assert encode_value(True) == b"t\x01"
    assert encode_table({"b": False}) == b"\x00\x00\x00\x04\x01bt\x00"


# --------------------------------------------------------------------------
# decimals, timestamps, strings


def test_decimal_keeps_exponent():
    wire = encode_value(D("1.50"))
    assert wire == b"D\x02\x00\x00\x00\x96"
    decoded = _decode_one(wire)
    assert decoded.as_tuple() == D("1.50").as_tuple()
    assert str(decoded) == "1.50"
    assert encode_value(D("1.5")) == b"D\x01\x00\x00\x00\x0f"


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (D("1E+2"), b"D\x00\x00\x00\x00\x64"),  # positive exponent folded in
        (D("0"), b"D\x00\x00\x00\x00\x00"),
        (D("-0.00"), b"D\x02\x00\x00\x00\x00"),
        (D("2147483647"), b"D\x00\x7f\xff\xff\xff"),
        (D("-2147483648"), b"D\x00\x80\x00\x00\x00"),
        (D("0.2147483647"), b"D\x0a\x7f\xff\xff\xff"),
        (D("1E-255"), b"D\xff\x00\x00\x00\x01"),
        (D("0E+999999999"), b"D\x00\x00\x00\x00\x00"),
    ],
    ids=str,
)
def test_decimal_edges(value, wire):
    assert encode_value(value) == wire
    decoded = _decode_one(wire)
    assert decoded == value
    assert encode_value(decoded) == wire


@pytest.mark.parametrize(
    "value",
    [
        D("2147483648"),
        D("-2147483649"),
        D("1E-256"),
        D("1E+10"),
        D("1E+999999999"),
        D("NaN"),
        D("Infinity"),
        D("-Infinity"),
        D("sNaN"),
    ],
    ids=str,
)
def test_decimal_unencodable(value):
    with pytest.raises(InvalidArgument):
        encode_value(value)


def test_decimal_negative_scale_on_the_wire_is_not_possible():
    # The scale octet is unsigned: 0xff means 255 places, not -1.
    decoded = _decode_one(b"D\xff\x00\x00\x00\x01")
    assert decoded == D("1E-255")


def test_timestamp():
    wire = b"T\x00\x00\x00\x00\x65\x92\x00\x80"
    assert encode_value(JAN_1_2024) == wire
    # naive datetimes are UTC
    assert encode_value(datetime.datetime(2024, 1, 1)) == wire
    # other zones are converted
    plus_two = datetime.timezone(datetime.timedelta(hours=2))
    assert encode_value(datetime.datetime(2024, 1, 1, 2, tzinfo=plus_two)) == wire
    # sub-second precision is dropped
    assert encode_value(JAN_1_2024.replace(microsecond=999999)) == wire
    decoded = _decode_one(wire)
    assert decoded == JAN_1_2024
    assert decoded.utcoffset() == datetime.timedelta(0)
    assert _decode_one(b"T" + bytes(8)) == datetime.datetime(1970, 1, 1, tzinfo=UTC)
    last = b"T" + struct.pack(">Q", MAX_TIMESTAMP)
    assert _decode_one(last) == datetime.datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC)


def test_timestamp_before_epoch_is_rejected():
    with pytest.raises(InvalidArgument, match="1970"):
        encode_value(datetime.datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC))


@pytest.mark.parametrize("seconds", [MAX_TIMESTAMP + 1, 2**63, 2**64 - 1])
def test_timestamp_beyond_datetime_is_a_frame_error(seconds):
    with pytest.raises(FrameError):
        _decode_one(b"T" + struct.pack(">Q", seconds))


def test_invalid_utf8_longstr_decodes_to_bytes():
    wire = b"S\x00\x00\x00\x02\xc3\x28"
    decoded = _decode_one(wire)
    assert decoded == b"\xc3\x28"
    assert type(decoded) is bytes
    assert encode_value(decoded) == wire
    table = b"\x00\x00\x00\x09\x01kS\x00\x00\x00\x02\xc3\x28"
    assert encode_table(decode_table(table)[0]) == table


def test_valid_utf8_bytes_decode_to_str():
    assert _decode_one(encode_value(b"abc")) == "abc"


def test_byte_array_is_distinct_from_longstr():
    assert encode_value(bytearray(b"abc")) == b"x\x00\x00\x00\x03abc"
    assert _decode_one(b"x\x00\x00\x00\x03abc") == bytearray(b"abc")


def test_bool_decodes_any_nonzero_octet_as_true():
    assert _decode_one(b"t\x02") is True
    assert _decode_one(b"t\x00") is False


# --------------------------------------------------------------------------
# unencodable values name their key path


@pytest.mark.parametrize(
    ("table", "path"),
    [
        ({"obj": object()}, "obj"),
        ({"s": {1, 2}}, "s"),
        ({"fs": frozenset()}, "fs"),
        ({"c": 1j}, "c"),
        ({"a": {"b": object()}}, "a.b"),
        ({"a": [1, object()]}, r"a\[1\]"),
        ({"a": [{"b": [set()]}]}, r"a\[0\]\.b\[0\]"),
        ({"a": {"b": {"c": {"d": b"x", "e": type}}}}, r"a\.b\.c\.e of type type"),
    ],
)
def test_unencodable_value_names_path(table, path):
    with pytest.raises(InvalidArgument, match=path):
        encode_table(table)


def test_unencodable_top_level_value():
    with pytest.raises(InvalidArgument, match="object"):
        encode_value(object())
    with pytest.raises(InvalidArgument, match=r"\[2\] of type set"):
        encode_value([1, 2, set()])


def test_out_of_range_values_in_a_table():
    with pytest.raises(InvalidArgument, match="NaN"):
        encode_table({"d": D("NaN")})
    with pytest.raises(InvalidArgument, match="1970"):
        encode_table({"t": datetime.datetime(1960, 1, 1)})


def test_non_str_key():
    with pytest.raises(InvalidArgument, match="1"):
        encode_table({1: "x"})
    with pytest.raises(InvalidArgument, match="b'k'"):
        encode_table({b"k": "x"})
    with pytest.raises(InvalidArgument, match=r"None.*outer\.inner"):
        encode_table({"outer": {"inner": {None: 1}}})


def test_key_length_limit():
    key255 = "k" * 255
    wire = encode_table({key255: None})
    assert wire == b"\x00\x00\x01\x01\xff" + key255.encode() + b"V"
    assert decode_table(wire)[0] == {key255: None}
    with pytest.raises(InvalidArgument, match="255"):
        encode_table({"k" * 256: None})
    # the limit is in bytes, not characters
    with pytest.raises(InvalidArgument, match="255"):
        encode_table({"\u00e9" * 128: None})
    with pytest.raises(InvalidArgument, match=r"outer\.'kkk"):
        encode_table({"outer": {"k" * 256: None}})


# --------------------------------------------------------------------------
# malformed input -> FrameError


def test_every_truncation_of_a_table_is_a_frame_error():
    table = {
        "s": "str",
        "n": [1, Int16(2), {"deep": D("1.5")}],
        "t": JAN_1_2024,
        "f": Float32(0.5),
        "d": 2.5,
        "x": bytearray(b"xy"),
        "l": 2**40,
    }
    wire = encode_table(table)
    for cut in range(len(wire)):
        with pytest.raises(FrameError):
            decode_table(wire[:cut])
        # the same, with the bytes after ``end`` present but out of bounds
        with pytest.raises(FrameError):
            decode_table(wire, 0, cut)


@pytest.mark.parametrize(
    "body",
    [
        b"\x01ab",  # the value after tag 'b' is missing
        b"\x01as\x00",  # 's' needs 2 bytes
        b"\x05a",  # key longer than the table
        b"\x01aS\x00\x00\x00\x09abc",  # longstr past the table end
        b"\x01ax\x00\x00\x00\x02a",  # byte array past the table end
        b"\x01aA\x00\x00\x00\x09b\x01",  # nested array longer than the table
        b"\x01aF\x00\x00\x00\x09",  # nested table longer than the table
        b"\x01aF\x00\x00\x00\x04\x01bS\x00",  # longstr cut by the nested end
        b"\x01aA\x00\x00\x00\x01I\x00\x00\x00\x00",  # 'I' cut by the array end
        b"\x01aD\x00\x00\x00\x00",  # decimal needs 5 bytes
        b"\x01aT\x00\x00\x00\x00\x00\x00\x00",  # timestamp needs 8 bytes
        b"\x01ad\x00\x00\x00\x00\x00\x00\x00",  # double needs 8 bytes
        b"\x01af\x00\x00\x00",  # float needs 4 bytes
        b"\x01al\x00",  # long-long needs 8 bytes
        b"\x01at",  # boolean needs 1 byte
        b"\x01aS\x00\x00",  # longstr length needs 4 bytes
        b"\x01",  # key missing
    ],
)
def test_malformed_tables(body):
    # The table's own length is right; the fault is inside it.  Bytes after
    # the table must not be read to complete a value.
    wire = _u32(len(body)) + body
    with pytest.raises(FrameError):
        decode_table(wire)
    with pytest.raises(FrameError):
        decode_table(wire + b"\x00" * 16)


@pytest.mark.parametrize("tag", [b"Z", b"L", b"\x00", b"q", b"U", b"c", b"\xff"])
def test_unknown_tag(tag):
    wire = b"\x00\x00\x00\x04\x01k" + tag + b"\x00"
    with pytest.raises(FrameError, match="unknown"):
        decode_table(wire)
    with pytest.raises(FrameError, match="unknown"):
        decode_value(tag + b"\x00", 0, 2)


def test_non_utf8_key_decodes_to_escaped_str_and_encodes_back():
    wire = b"\x00\x00\x00\x0a\x01\xffV\x05\xfe-keyV"
    table, offset = decode_table(wire)
    assert offset == len(wire)
    assert list(table) == ["\udcff", "\udcfe-key"]
    assert [key.encode("utf-8", "surrogateescape") for key in table] == [b"\xff", b"\xfe-key"]
    assert encode_table(table) == wire
    # nested, and as a key of an array's table
    nested = b"\x00\x00\x00\x0f\x01nA\x00\x00\x00\x08F\x00\x00\x00\x03\x01\x80V"
    assert decode_table(nested)[0] == {"n": [{"\udc80": None}]}
    assert encode_table({"n": [{"\udc80": None}]}) == nested


def test_escaped_str_value_is_sent_as_its_bytes():
    # a routing key that arrived as non-UTF-8 bytes, copied into a header
    assert encode_value("\udcff\udcfe-key") == b"S\x00\x00\x00\x06\xff\xfe-key"


@pytest.mark.parametrize("bad", ["\ud800", "ok\udbff", "\ud83d\ude00\ud83d"])
def test_lone_surrogate_is_an_invalid_argument_naming_the_key(bad):
    with pytest.raises(InvalidArgument, match=r"value retry\.reason is not encodable.*lone surrogate"):
        encode_table({"retry": {"reason": bad}})
    with pytest.raises(InvalidArgument, match=r"value list\[1\] is not encodable"):
        encode_table({"list": ["fine", bad]})
    with pytest.raises(InvalidArgument, match=r"key .* in outer is not encodable.*lone surrogate"):
        encode_table({"outer": {bad: 1}})
    with pytest.raises(InvalidArgument, match="lone surrogate"):
        encode_value(bad)


def _wire_tables(depth: int) -> bytes:
    """``depth`` tables, each but the innermost holding the next as ``k``."""
    wire = b"\x00\x00\x00\x00"
    for _ in range(depth - 1):
        wire = struct.pack(">I", 3 + len(wire)) + b"\x01kF" + wire
    return wire


def _wire_arrays(depth: int) -> bytes:
    wire = b"\x00\x00\x00\x00"
    for _ in range(depth - 1):
        wire = struct.pack(">I", 1 + len(wire)) + b"A" + wire
    return wire


def _nested_dicts(depth: int) -> dict:
    table: dict = {}
    for _ in range(depth - 1):
        table = {"k": table}
    return table


def _nested_lists(depth: int) -> list:
    items: list = []
    for _ in range(depth - 1):
        items = [items]
    return items


def test_nesting_up_to_max_depth_round_trips():
    assert MAX_DEPTH == 100
    table = _nested_dicts(MAX_DEPTH)
    assert encode_table(table) == _wire_tables(MAX_DEPTH)
    assert decode_table(_wire_tables(MAX_DEPTH)) == (table, len(_wire_tables(MAX_DEPTH)))
    assert encode_value(table) == b"F" + _wire_tables(MAX_DEPTH)
    assert _decode_one(b"F" + _wire_tables(MAX_DEPTH)) == table
    items = _nested_lists(MAX_DEPTH)
    assert encode_value(items) == b"A" + _wire_arrays(MAX_DEPTH)
    assert _decode_one(b"A" + _wire_arrays(MAX_DEPTH)) == items


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5000])
def test_deeper_nesting_is_an_invalid_argument_on_encode(depth):
    expected = rf"nested too deeply \(more than {MAX_DEPTH} tables/arrays"
    with pytest.raises(InvalidArgument, match=expected):
        encode_table(_nested_dicts(depth))
    with pytest.raises(InvalidArgument, match=expected):
        encode_value(_nested_lists(depth))
    with pytest.raises(InvalidArgument, match=expected):
        encode_table({"h": [{"a": _nested_lists(depth)}]})


def test_a_table_or_list_that_contains_itself_is_an_invalid_argument():
    table: dict = {"a": 1}
    table["self"] = table
    with pytest.raises(InvalidArgument, match=r"self\.self\.self.*contain itself"):
        encode_table(table)
    items: list = [1]
    items.append(items)
    with pytest.raises(InvalidArgument, match=r"\[1\]\[1\].*contain itself"):
        encode_table({"items": items})
    with pytest.raises(InvalidArgument, match="contain itself"):
        encode_value(items)


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5000])
def test_deeper_nesting_is_a_frame_error_on_decode(depth):
    expected = rf"^field tables nested too deeply \(more than {MAX_DEPTH} tables/arrays\)$"
    for wire in (b"F" + _wire_tables(depth), b"A" + _wire_arrays(depth)):
        with pytest.raises(FrameError, match=expected):
            decode_value(wire, 0, len(wire))
    with pytest.raises(FrameError, match=expected):
        decode_table(_wire_tables(depth))
    mixed = struct.pack(">I", 1 + len(_wire_tables(depth))) + b"F" + _wire_tables(depth)
    with pytest.raises(FrameError, match="nested"):
        decode_value(b"A" + mixed, 0, 1 + len(mixed))


def test_decode_value_past_the_buffer_is_a_frame_error():
    # ``end`` beyond the data: still a FrameError, not IndexError/struct.error
    with pytest.raises(FrameError):
        decode_value(b"I\x00", 0, 10)
    with pytest.raises(FrameError):
        decode_table(b"\x00\x00\x00\x05\x01k", 0, 9)


def test_float32_out_of_range_is_an_invalid_argument():
    with pytest.raises(InvalidArgument, match=r"x-rate.*32-bit float"):
        encode_table({"x-rate": Float32(1e300)})
    assert encode_value(Float32(math.inf)) == b"f\x7f\x80\x00\x00"


def test_memoryview_of_wider_items_encodes_all_its_bytes():
    import array

    view = memoryview(array.array("i", [1, 2, 3]))
    raw = bytes(view)
    assert len(raw) == 12
    assert encode_value(view) == b"S" + struct.pack(">I", 12) + raw


@pytest.mark.parametrize("table", [[("a", 1)], "ab", 5])
def test_a_table_that_is_not_a_mapping_is_an_invalid_argument(table):
    with pytest.raises(InvalidArgument, match="must be a dict"):
        encode_table(table)


# --------------------------------------------------------------------------
# hypothesis: arbitrary nested tables

keys = st.text(max_size=12).filter(lambda k: len(k.encode()) <= 255)
datetimes = st.integers(0, MAX_TIMESTAMP).map(
    lambda s: datetime.datetime(1970, 1, 1, tzinfo=UTC) + datetime.timedelta(seconds=s)
)
decimals = st.builds(
    lambda mantissa, scale: D(mantissa).scaleb(-scale),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(0, 255),
)


def _tagged(cls, low, high):
    return st.integers(low, high).map(cls)


leaf_values = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    *(_tagged(cls, low, high) for cls, _, low, high in TAGGED),
    st.floats(),
    st.floats(width=32).map(Float32),
    st.text(max_size=20),
    st.binary(max_size=20),
    st.binary(max_size=20).map(bytearray),
    datetimes,
    decimals,
    st.none(),
)
field_values = st.recursive(
    leaf_values,
    lambda children: st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(keys, children, max_size=4),
    ),
    max_leaves=25,
)
field_tables = st.dictionaries(keys, field_values, max_size=6)


def _expected(value):
    """What decoding the encoding of ``value`` gives back."""
    if isinstance(value, dict):
        return {k: _expected(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_expected(v) for v in value]
    if type(value) is bytes:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    return value


def _has_nan(value) -> bool:
    if isinstance(value, dict):
        return any(_has_nan(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_nan(v) for v in value)
    return isinstance(value, float) and math.isnan(value)


@given(field_tables)
@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_table_round_trip(table):
    wire = encode_table(table)
    decoded, offset = decode_table(wire)
    assert offset == len(wire)
    assert encode_table(decoded) == wire
    # also from a memoryview, at an offset, with bytes after the table
    decoded2, offset2 = decode_table(memoryview(b"..." + wire + b"!"), 3)
    assert offset2 == 3 + len(wire)
    assert encode_table(decoded2) == wire
    if not _has_nan(table):
        assert decoded == _expected(table)


@given(field_values)
@settings(deadline=None)
def test_value_round_trip(value):
    wire = encode_value(value)
    decoded = _decode_one(wire)
    assert encode_value(decoded) == wire
    if not _has_nan(value):
        assert decoded == _expected(value)
    if isinstance(value, int) and not isinstance(value, bool):
        # The decoded type records the tag only when it is not implied.
        tag = getattr(type(value), "tag", None)
        if tag is None or tag == _smallest_tag(value):
            assert type(decoded) is int
        else:
            assert type(decoded) is type(value)
    elif isinstance(value, float):
        assert type(decoded) is type(value)


def _smallest_tag(number: int) -> bytes:
    if -128 <= number <= 127:
        return b"b"
    if -32768 <= number <= 32767:
        return b"s"
    if 0 <= number <= 65535:
        return b"u"
    if -(2**31) <= number < 2**31:
        return b"I"
    if 0 <= number < 2**32:
        return b"i"
    return b"l"


# --------------------------------------------------------------------------
# hypothesis: raw wire bytes of every tag


def _u32(n: int) -> bytes:
    return struct.pack(">I", n)


def _sized(tag: bytes, payload: bytes) -> bytes:
    return tag + _u32(len(payload)) + payload


def _not_signalling_nan32(raw: bytes) -> bool:
    # Converting a 32-bit signalling NaN to a C double quiets it, so its
    # exact bits cannot survive a trip through a Python float.
    (bits,) = struct.unpack(">I", raw)
    return not ((bits & 0x7F800000) == 0x7F800000 and bits & 0x7FFFFF and not bits & 0x400000)


raw_leaves = st.one_of(
    st.sampled_from([b"t\x00", b"t\x01", b"V"]),
    st.binary(min_size=1, max_size=1).map(lambda b: b"b" + b),
    st.binary(min_size=1, max_size=1).map(lambda b: b"B" + b),
    st.binary(min_size=2, max_size=2).map(lambda b: b"s" + b),
    st.binary(min_size=2, max_size=2).map(lambda b: b"u" + b),
    st.binary(min_size=4, max_size=4).map(lambda b: b"I" + b),
    st.binary(min_size=4, max_size=4).map(lambda b: b"i" + b),
    st.binary(min_size=8, max_size=8).map(lambda b: b"l" + b),
    st.binary(min_size=4, max_size=4).filter(_not_signalling_nan32).map(lambda b: b"f" + b),
    st.binary(min_size=8, max_size=8).map(lambda b: b"d" + b),
    st.binary(min_size=5, max_size=5).map(lambda b: b"D" + b),
    st.binary(max_size=30).map(lambda b: _sized(b"S", b)),
    st.text(max_size=10).map(lambda s: _sized(b"S", s.encode())),
    st.binary(max_size=30).map(lambda b: _sized(b"x", b)),
    st.integers(0, MAX_TIMESTAMP).map(lambda n: b"T" + struct.pack(">Q", n)),
)


def _raw_table(entries: dict) -> bytes:
    body = b"".join(bytes([len(k.encode())]) + k.encode() + v for k, v in entries.items())
    return _u32(len(body)) + body


raw_values = st.recursive(
    raw_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(lambda items: _sized(b"A", b"".join(items))),
        st.dictionaries(keys, children, max_size=4).map(lambda d: b"F" + _raw_table(d)),
    ),
    max_leaves=25,
)


@given(raw_values)
@settings(deadline=None)
def test_raw_value_re_encodes_identically(raw):
    assert encode_value(_decode_one(raw)) == raw


@given(st.dictionaries(keys, raw_values, max_size=6))
@settings(deadline=None)
def test_raw_table_re_encodes_identically(entries):
    wire = _raw_table(entries)
    decoded, offset = decode_table(wire)
    assert offset == len(wire)
    assert list(decoded) == list(entries)
    assert encode_table(decoded) == wire


@pytest.mark.parametrize(
    "raw",
    [
        b"f\x7f\xc0\x00\x01",  # quiet NaN with a payload
        b"f\xff\xc0\x00\x00",  # negative quiet NaN
        b"f\x80\x00\x00\x00",  # -0.0
        b"f\x00\x00\x00\x01",  # smallest subnormal
        b"f\x7f\x80\x00\x00",  # inf
        b"d\x7f\xf8\x00\x00\x00\x00\x00\x01",  # quiet NaN with a payload
        b"d\x7f\xf0\x00\x00\x00\x00\x00\x01",  # signalling NaN (doubles keep it)
        b"d\x00\x00\x00\x00\x00\x00\x00\x01",
    ],
)
def test_float_bit_patterns_survive(raw):
    assert encode_value(_decode_one(raw)) == raw


# --------------------------------------------------------------------------
# fuzz: only FrameError


def _decode_must_only_raise_frame_error(data: bytes) -> None:
    try:
        table, offset = decode_table(data)
    except FrameError:
        return
    assert isinstance(table, dict)
    assert 4 <= offset <= len(data)


@given(st.binary(max_size=200))
@settings(deadline=None)
def test_fuzz_random_bytes(data):
    _decode_must_only_raise_frame_error(data)


@given(st.binary(max_size=120))
@settings(deadline=None)
def test_fuzz_random_bytes_with_plausible_length(body):
    _decode_must_only_raise_frame_error(_u32(len(body)) + body)


@given(st.dictionaries(keys, raw_values, min_size=1, max_size=4), st.data())
@settings(deadline=None)
def test_fuzz_mutated_tables(entries, data):
    wire = bytearray(_raw_table(entries))
    for _ in range(data.draw(st.integers(1, 3))):
        index = data.draw(st.integers(0, len(wire) - 1))
        wire[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(wire)))
    try:
        decode_table(bytes(wire[:cut]))
    except FrameError:
        pass
