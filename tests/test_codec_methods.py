"""The generated AMQP method classes: aiorabbit.codec.methods.

Checked against the JSON spec they are generated from, against bytes written
by hand, by hypothesis round trips, and against pamqp as an independent
implementation of the same wire format.
"""

from __future__ import annotations

import datetime
import decimal
import importlib.util
import inspect
import json
import keyword
import math
import struct
from pathlib import Path
from typing import Any

import pamqp.commands
import pamqp.constants
import pamqp.decode
import pamqp.encode
import pamqp.frame
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aiorabbit.codec import methods
from aiorabbit.codec._primitives import Method
from aiorabbit.codec.frames import FrameParser, MethodFrame, decode_method, encode_method_frame
from aiorabbit.codec.table import Float32, Int16, UInt8, UInt32, decode_table, encode_table, encode_value
from aiorabbit.exceptions import FrameError, InvalidArgument

pytestmark = [
    pytest.mark.broker_free,
    # pamqp warns whenever it builds basic.recover-async (deprecated in 0-9-1)
    pytest.mark.filterwarnings("ignore:This command is deprecated:DeprecationWarning"),
]

REPO = Path(__file__).resolve().parents[1]
SPEC_PATH = REPO / "tools" / "spec" / "amqp-rabbitmq-0.9.1.json"  # in the repository: a clone is enough
GENERATOR_PATH = REPO / "tools" / "generate_methods.py"
METHODS_PATH = REPO / "aiorabbit" / "codec" / "methods.py"

SPEC = json.loads(SPEC_PATH.read_text())
DOMAINS = dict(SPEC["domains"])
UTC = datetime.timezone.utc


def _attr(name: str) -> str:
    py = name.replace("-", "_")
    return py + "_" if keyword.iskeyword(py) else py


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("-"))


def _arg_type(arg: dict) -> str:
    return arg["type"] if "type" in arg else DOMAINS[arg["domain"]]


class SpecMethod:
    """One method of the JSON spec, with its arguments resolved."""

    def __init__(self, klass: dict, method: dict) -> None:
        self.class_name = klass["name"]
        self.class_id = klass["id"]
        self.name = method["name"]
        self.method_id = method["id"]
        self.full_name = f"{self.class_name}.{self.name}"
        self.synchronous = bool(method.get("synchronous"))
        self.content = bool(method.get("content"))
        self.args = [(_attr(a["name"]), _arg_type(a), a.get("domain"), a) for a in method["arguments"]]

    @property
    def index(self) -> int:
        return (self.class_id << 16) | self.method_id

    @property
    def cls(self) -> type[Method]:
        return methods.METHODS[self.index]

    def __repr__(self) -> str:
        return self.full_name


SPEC_METHODS = [SpecMethod(c, m) for c in SPEC["classes"] for m in c["methods"]]
BY_NAME = {m.full_name: m for m in SPEC_METHODS}
PAMQP_MISSING = {"access.request", "access.request-ok"}  # not in pamqp 4.0.1
COMMON = [m for m in SPEC_METHODS if m.full_name not in PAMQP_MISSING]


def _ids(method: SpecMethod) -> str:
    return method.full_name


# --------------------------------------------------------------------------
# (a) the committed module is what the generator makes of the spec


def test_methods_module_is_generated_from_the_spec():
    loader_spec = importlib.util.spec_from_file_location("_generate_methods", GENERATOR_PATH)
    assert loader_spec is not None and loader_spec.loader is not None
    generator = importlib.util.module_from_spec(loader_spec)
    loader_spec.loader.exec_module(generator)
    with SPEC_PATH.open() as fp:
        generated = generator.generate(json.load(fp))
    committed = METHODS_PATH.read_text()
    assert generated == committed, "run tools/generate_methods.py to regenerate methods.py"


# --------------------------------------------------------------------------
# (b) every spec method is present, with its ids, names and defaults


def test_method_count():
    assert len(SPEC_METHODS) == 66
    assert len(methods.METHODS) == len(SPEC_METHODS)
    assert len({m.index for m in SPEC_METHODS}) == len(SPEC_METHODS)


@pytest.mark.parametrize("spec", SPEC_METHODS, ids=_ids)
def test_method_matches_spec(spec: SpecMethod):
    cls = methods.METHODS[spec.index]
    assert cls is getattr(methods, _camel(spec.class_name) + _camel(spec.name))
    assert cls.__name__ in methods.__all__
    assert cls.NAME == spec.full_name
    assert cls.CLASS_ID == spec.class_id
    assert cls.METHOD_ID == spec.method_id
    assert cls.INDEX == spec.index
    assert cls.SYNCHRONOUS is spec.synchronous
    assert cls.CONTENT is spec.content
    assert cls.FIELDS == tuple(name for name, _, _, _ in spec.args)
    assert set(cls.__slots__) == set(cls.FIELDS)


@pytest.mark.parametrize("spec", SPEC_METHODS, ids=_ids)
def test_defaults_come_from_the_spec(spec: SpecMethod):
    required = {name: SAMPLE[kind] for name, kind, _, a in spec.args if "default-value" not in a}
    instance = spec.cls(**required)
    for name, kind, _, arg in spec.args:
        if "default-value" not in arg:
            continue
        default = arg["default-value"]
        if kind == "longstr":
            default = str(default).encode()
        value = getattr(instance, name)
        assert value == default, name
        assert type(value) is type(default), name
    # every argument is keyword-only
    if spec.args:
        params = list(inspect.signature(spec.cls.__init__).parameters.values())[1:]
        assert [p.name for p in params] == sorted(
            (n for n, _, _, _ in spec.args), key=lambda n: n not in required
        )
        assert {p.kind for p in params} == {inspect.Parameter.KEYWORD_ONLY}


def test_responses():
    m = methods
    assert m.BasicGet.RESPONSES == (m.BasicGetOk, m.BasicGetEmpty)
    assert m.QueueDeclare.RESPONSES == (m.QueueDeclareOk,)
    assert m.ExchangeUnbind.RESPONSES == (m.ExchangeUnbindOk,)
    assert m.ConnectionStart.RESPONSES == (m.ConnectionStartOk,)
    assert m.ConfirmSelect.RESPONSES == (m.ConfirmSelectOk,)
    assert m.BasicPublish.RESPONSES == ()
    assert m.BasicAck.RESPONSES == ()
    for spec in SPEC_METHODS:
        if spec.synchronous:
            ok = BY_NAME[f"{spec.class_name}.{spec.name}-ok"].cls
            assert ok in spec.cls.RESPONSES, spec
        else:
            assert spec.cls.RESPONSES == (), spec


# --------------------------------------------------------------------------
# (c) exact bytes, written by hand


def test_basic_publish_bytes():
    method = methods.BasicPublish(exchange="ex", routing_key="rk", mandatory=True)
    payload = b"\x00\x3c\x00\x28" + b"\x00\x00" + b"\x02ex" + b"\x02rk" + b"\x01"
    assert method.encode() == payload
    assert methods.BasicPublish(immediate=True, mandatory=True).encode() == (
        b"\x00\x3c\x00\x28\x00\x00\x00\x00\x03"
    )
    assert encode_method_frame(5, method) == (b"\x01\x00\x05\x00\x00\x00\x0d" + payload + b"\xce")
    decoded = decode_method(payload)
    assert type(decoded) is methods.BasicPublish
    assert decoded.as_dict() == {
        "ticket": 0,
        "exchange": "ex",
        "routing_key": "rk",
        "mandatory": True,
        "immediate": False,
    }


def test_basic_ack_multiple_bytes():
    method = methods.BasicAck(delivery_tag=5, multiple=True)
    payload = b"\x00\x3c\x00\x50" + b"\x00\x00\x00\x00\x00\x00\x00\x05" + b"\x01"
    assert method.encode() == payload
    assert encode_method_frame(1, method) == b"\x01\x00\x01\x00\x00\x00\x0d" + payload + b"\xce"
    assert decode_method(payload) == method
    assert decode_method(payload[:-1] + b"\x00") == methods.BasicAck(delivery_tag=5)


def test_basic_nack_and_deliver_bytes():
    nack = methods.BasicNack(delivery_tag=2**64 - 1, multiple=True, requeue=True)
    assert nack.encode() == b"\x00\x3c\x00\x78" + b"\xff" * 8 + b"\x03"
    assert methods.BasicNack(delivery_tag=1, requeue=False).encode() == (
        b"\x00\x3c\x00\x78\x00\x00\x00\x00\x00\x00\x00\x01\x00"
    )
    deliver = methods.BasicDeliver(
        consumer_tag="ctag",
        delivery_tag=258,
        redelivered=True,
        exchange="",
        routing_key="rk",
    )
    payload = (
        b"\x00\x3c\x00\x3c"
        b"\x04ctag"  # consumer tag
        b"\x00\x00\x00\x00\x00\x00\x01\x02"  # delivery tag 258
        b"\x01"  # redelivered
        b"\x00"  # exchange ""
        b"\x02rk"  # routing key
    )
    assert deliver.encode() == payload
    assert decode_method(payload) == deliver


def test_queue_declare_with_arguments_bytes():
    method = methods.QueueDeclare(
        queue="q",
        durable=True,
        arguments={"x-queue-type": "quorum", "x-max-length": 10},
    )
    table = (
        b"\x00\x00\x00\x27"  # 24 + 15 = 39
        b"\x0cx-queue-typeS\x00\x00\x00\x06quorum"
        b"\x0cx-max-lengthb\x0a"
    )
    # ticket, queue, bits (passive, durable, exclusive, auto-delete, nowait)
    payload = b"\x00\x32\x00\x0a" + b"\x00\x00" + b"\x01q" + b"\x02" + table
    assert method.encode() == payload
    decoded = decode_method(payload)
    assert decoded == method
    assert decoded.arguments == {"x-queue-type": "quorum", "x-max-length": 10}
    every_bit = methods.QueueDeclare(
        queue="", passive=True, durable=True, exclusive=True, auto_delete=True, nowait=True
    )
    assert every_bit.encode() == b"\x00\x32\x00\x0a\x00\x00\x00\x1f\x00\x00\x00\x00"


def test_connection_tune_ok_bytes():
    method = methods.ConnectionTuneOk(channel_max=2047, frame_max=131072, heartbeat=60)
    payload = b"\x00\x0a\x00\x1f" + b"\x07\xff" + b"\x00\x02\x00\x00" + b"\x00\x3c"
    assert method.encode() == payload
    assert decode_method(payload) == method


def test_exchange_unbind_ok_is_51():
    assert methods.ExchangeUnbindOk().encode() == b"\x00\x28\x00\x33"
    assert type(decode_method(b"\x00\x28\x00\x33")) is methods.ExchangeUnbindOk
    # 0-9-1 proper would have numbered it 41; RabbitMQ uses 51
    with pytest.raises(FrameError, match="unknown method"):
        decode_method(b"\x00\x28\x00\x29")
    assert methods.METHODS[(40 << 16) | 51] is methods.ExchangeUnbindOk


def test_connection_start_ok_bytes():
    method = methods.ConnectionStartOk(
        client_properties={"product": "aiorabbit"}, response=b"\x00guest\x00guest"
    )
    payload = (
        b"\x00\x0a\x00\x0b"
        b"\x00\x00\x00\x16\x07productS\x00\x00\x00\x09aiorabbit"  # 1 + 7 + 1 + 4 + 9 = 22
        b"\x05PLAIN"
        b"\x00\x00\x00\x0c\x00guest\x00guest"
        b"\x05en_US"
    )
    assert method.encode() == payload
    assert decode_method(payload) == method
    assert "guest" not in repr(method)  # the response is a secret


def test_connection_close_bytes():
    method = methods.ConnectionClose(reply_code=320, reply_text="bye", class_id=60, method_id=40)
    payload = b"\x00\x0a\x00\x32\x01\x40\x03bye\x00\x3c\x00\x28"
    assert method.encode() == payload
    assert decode_method(payload) == method


def test_access_request_bytes():
    # not in pamqp 4.0.1, so checked here only
    method = methods.AccessRequest()
    # realm "/data"; bits exclusive=0 passive=1 active=1 write=1 read=1
    assert method.encode() == b"\x00\x1e\x00\x0a\x05/data\x1e"
    assert decode_method(b"\x00\x1e\x00\x0a\x05/data\x1e") == method
    assert methods.AccessRequestOk().encode() == b"\x00\x1e\x00\x0b\x00\x01"
    assert decode_method(b"\x00\x1e\x00\x0b\x01\x02") == methods.AccessRequestOk(ticket=258)


def test_argument_free_methods_bytes():
    for spec in SPEC_METHODS:
        if not spec.args:
            payload = struct.pack(">HH", spec.class_id, spec.method_id)
            assert spec.cls().encode() == payload
            assert type(decode_method(payload)) is spec.cls


# --------------------------------------------------------------------------
# bad input


SAMPLE: dict[str, Any] = {
    "octet": 7,
    "short": 0x1234,
    "long": 0x12345678,
    "longlong": 0x123456789ABCDEF0,
    "timestamp": 0x12345678,
    "shortstr": "name",
    "longstr": b"secret",
    "bit": True,
    "table": {"k": 1, "l": [True]},
}


def _sample(spec: SpecMethod) -> Method:
    return spec.cls(**{name: SAMPLE[kind] for name, kind, _, _ in spec.args})


@pytest.mark.parametrize("spec", SPEC_METHODS, ids=_ids)
def test_every_truncation_is_a_frame_error(spec: SpecMethod):
    payload = _sample(spec).encode()
    assert decode_method(payload) == _sample(spec)
    for cut in range(len(payload)):
        with pytest.raises(FrameError):
            decode_method(payload[:cut])


@pytest.mark.parametrize("spec", [s for s in SPEC_METHODS if s.args], ids=_ids)
def test_trailing_bytes_are_a_frame_error(spec: SpecMethod):
    payload = _sample(spec).encode()
    with pytest.raises(FrameError, match="trailing"):
        decode_method(payload + b"\x00")


@pytest.mark.parametrize("payload", [b"", b"\x00", b"\x00\x3c\x00", b"\x00\x3c\x03\xe7", b"\x03\xe7\x00\x0a"])
def test_short_or_unknown_ids(payload):
    with pytest.raises(FrameError):
        decode_method(payload)


def test_non_utf8_shortstr_decodes_and_encodes_back_to_its_bytes():
    # Another client may publish with a routing key (or name an exchange, or
    # a consumer tag) that is not UTF-8: the delivery must still decode, or
    # the message is redelivered, and fails, on every connection for ever.
    payload = (
        b"\x00\x3c\x00\x3c"  # basic.deliver
        + b"\x02\xff\xfe"  # consumer_tag
        + (7).to_bytes(8, "big")
        + b"\x01"  # redelivered
        + b"\x04ex\xc3\x28"  # exchange: an invalid 2-byte sequence
        + b"\x06\xff\xfe-key"  # routing_key
    )
    deliver = decode_method(payload)
    assert isinstance(deliver, methods.BasicDeliver)
    assert (deliver.delivery_tag, deliver.redelivered) == (7, True)
    assert deliver.routing_key == "\udcff\udcfe-key"
    assert deliver.routing_key.encode("utf-8", "surrogateescape") == b"\xff\xfe-key"
    assert deliver.exchange.encode("utf-8", "surrogateescape") == b"ex\xc3\x28"
    assert deliver.consumer_tag.encode("utf-8", "surrogateescape") == b"\xff\xfe"
    assert deliver.encode() == payload  # sent back as the very same bytes
    get_ok = decode_method(
        methods.BasicGetOk(delivery_tag=1, exchange="", routing_key="k", message_count=0).encode()
    )
    assert get_ok.routing_key == "k"
    # republishing to what the broker named goes out byte for byte
    publish = methods.BasicPublish(exchange=deliver.exchange, routing_key=deliver.routing_key).encode()
    assert publish == b"\x00\x3c\x00\x28\x00\x00\x04ex\xc3\x28\x06\xff\xfe-key\x00"
    for buffer in (payload, bytearray(payload), memoryview(payload)):
        assert decode_method(buffer) == deliver


@pytest.mark.parametrize("bad", ["\ud800", "a\udfffb", "\ud83d"])
def test_a_lone_surrogate_name_is_an_invalid_argument_naming_the_field(bad):
    # A lone surrogate that does not stand for a byte (U+DC80-U+DCFF) has no
    # encoding at all: InvalidArgument, never a UnicodeEncodeError.
    with pytest.raises(InvalidArgument, match=r"routing_key.*lone surrogate U\+D"):
        methods.BasicPublish(exchange="x", routing_key=bad).encode()
    with pytest.raises(InvalidArgument, match=r"queue.*lone surrogate"):
        methods.QueueDeclare(queue=bad).encode()
    with pytest.raises(InvalidArgument, match=r"long string.*lone surrogate"):
        methods.ConnectionStartOk(client_properties={}, response=bad).encode()


def test_decode_accepts_any_buffer():
    payload = methods.BasicConsumeOk(consumer_tag="c").encode()
    for buffer in (payload, bytearray(payload), memoryview(payload)):
        decoded = decode_method(buffer)
        assert decoded == methods.BasicConsumeOk(consumer_tag="c")
        assert type(decoded.consumer_tag) is str


@pytest.mark.parametrize(
    ("factory", "match"),
    [
        (lambda: methods.BasicAck(delivery_tag=-1), "delivery_tag"),
        (lambda: methods.BasicAck(delivery_tag=2**64), "delivery_tag"),
        (lambda: methods.BasicAck(delivery_tag="1"), "delivery_tag"),  # type: ignore[arg-type]
        (lambda: methods.ConnectionTuneOk(channel_max=65536), "channel_max"),
        (lambda: methods.ConnectionTuneOk(frame_max=2**32), "frame_max"),
        (lambda: methods.BasicQos(prefetch_count=-1), "prefetch_count"),
        (lambda: methods.ConnectionStart(server_properties={}, version_major=256), "version_major"),
        (lambda: methods.QueueDeclare(queue="q" * 256), "queue"),
        (lambda: methods.QueueDeclare(queue="\u00e9" * 128), "queue"),
        (lambda: methods.QueueDeclare(queue=None), "queue"),  # type: ignore[arg-type]
        (lambda: methods.BasicPublish(routing_key=b"rk"), "routing_key"),  # type: ignore[arg-type]
        (lambda: methods.QueueDeclare(arguments={"x-bad": object()}), "x-bad"),
        (lambda: methods.QueueBind(exchange="e", arguments={"n": {"deep": {1, 2}}}), r"n\.deep"),
    ],
)
def test_unencodable_arguments(factory, match):
    with pytest.raises(InvalidArgument, match=match):
        factory().encode()


def test_longest_shortstr():
    queue = "q" * 255
    payload = methods.QueueDeclare(queue=queue).encode()
    assert payload[6:8] == b"\xffq"
    assert decode_method(payload).queue == queue


# --------------------------------------------------------------------------
# (d) hypothesis round trip for every method

keys = st.text(max_size=10).filter(lambda k: len(k.encode()) <= 255)
timestamps = st.integers(0, 2**32 - 1).map(
    lambda s: datetime.datetime(1970, 1, 1, tzinfo=UTC) + datetime.timedelta(seconds=s)
)
decimals = st.builds(
    lambda m, s: decimal.Decimal(m).scaleb(-s),
    st.integers(-(2**31), 2**31 - 1),
    st.integers(0, 255),
)


def nested_tables(keys: st.SearchStrategy[str], leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Tables of ``leaves``, with nested lists and tables."""
    return st.dictionaries(
        keys,
        st.recursive(
            leaves,
            lambda children: st.lists(children, max_size=3) | st.dictionaries(keys, children, max_size=3),
            max_leaves=10,
        ),
        max_size=5,
    )


table_leaves = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.integers(0, 255).map(UInt8),
    st.integers(-(2**15), 2**15 - 1).map(Int16),
    st.integers(0, 2**32 - 1).map(UInt32),
    st.floats(allow_nan=False),
    st.floats(width=32, allow_nan=False).map(Float32),
    st.text(max_size=20),
    st.binary(max_size=20).map(bytearray),
    timestamps,
    decimals,
    st.none(),
)
tables = nested_tables(keys, table_leaves)
shortstrs = st.one_of(
    st.text(max_size=40).filter(lambda s: len(s.encode()) <= 255),
    st.integers(0, 127).map(lambda n: "\u00e9" * n),
    st.just("x" * 255),
)
ARG_STRATEGIES = {
    "octet": st.integers(0, 2**8 - 1),
    "short": st.integers(0, 2**16 - 1),
    "long": st.integers(0, 2**32 - 1),
    "longlong": st.integers(0, 2**64 - 1),
    "timestamp": st.integers(0, 2**64 - 1),
    "shortstr": shortstrs,
    "longstr": st.binary(max_size=300),
    "bit": st.booleans(),
    "table": tables,
}


def _kwargs(spec: SpecMethod):
    return st.fixed_dictionaries({name: ARG_STRATEGIES[kind] for name, kind, _, _ in spec.args})


@pytest.mark.parametrize("spec", SPEC_METHODS, ids=_ids)
@given(data=st.data())
@settings(deadline=None, max_examples=40, suppress_health_check=[HealthCheck.too_slow])
def test_round_trip(spec: SpecMethod, data):
    kwargs = data.draw(_kwargs(spec))
    method = spec.cls(**kwargs)
    payload = method.encode()
    assert payload[:4] == struct.pack(">HH", spec.class_id, spec.method_id)
    decoded = decode_method(payload)
    assert type(decoded) is spec.cls
    assert decoded.encode() == payload
    assert decoded.as_dict() == kwargs
    for name, kind, _, _ in spec.args:
        value = getattr(decoded, name)
        expected_type = {"longstr": bytes, "shortstr": str, "bit": bool, "table": dict}.get(kind, int)
        assert type(value) is expected_type, name
    # and as a whole frame, through the parser
    channel = data.draw(st.integers(0, 65535))
    frame = encode_method_frame(channel, method)
    assert FrameParser(frame_max=0).feed(frame) == [MethodFrame(channel, decoded)]


# --------------------------------------------------------------------------
# (e) pamqp as an oracle


def _pamqp_class(spec: SpecMethod) -> type:
    return pamqp.commands.INDEX_MAPPING[spec.index]


def test_pamqp_lacks_only_access():
    ours = {m.index for m in SPEC_METHODS}
    theirs = set(pamqp.commands.INDEX_MAPPING)
    assert theirs <= ours
    assert {BY_NAME[n].index for n in PAMQP_MISSING} == ours - theirs


@pytest.mark.parametrize("spec", COMMON, ids=_ids)
def test_pamqp_agrees_on_argument_types(spec: SpecMethod):
    pcls = _pamqp_class(spec)
    assert pcls.index == spec.index
    assert pcls.synchronous is spec.synchronous
    assert len(pcls.__slots__) == len(spec.args)
    assert [pcls.amqp_type(slot) for slot in pcls.__slots__] == [kind for _, kind, _, _ in spec.args]
    # the same names, but for exchange.declare's ``type`` (pamqp: exchange_type)
    renamed = {("exchange.declare", "type"): "exchange_type"}
    assert list(pcls.__slots__) == [renamed.get((spec.full_name, n), n) for n, _, _, _ in spec.args]


def _sorted_table(value):
    """pamqp writes table keys in sorted order; so do these fixtures."""
    if isinstance(value, dict):
        return {k: _sorted_table(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted_table(v) for v in value]
    return value


# What both implementations write the same way: plain ints (both choose the
# smallest tag), Float32 (pamqp writes every float as 'f'), str, bool, None,
# Decimal, bytearray, whole-second UTC datetimes up to 2**32 - 1 (pamqp reads
# larger timestamps as milliseconds), lists, dicts with keys of at most 128
# bytes (pamqp truncates longer ones).
common_keys = st.text(max_size=10).filter(lambda k: len(k.encode()) <= 128)
common_leaves = st.one_of(
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(width=32, allow_nan=False).map(Float32),
    st.text(max_size=20),
    st.binary(max_size=20).map(bytearray),
    timestamps,
    decimals,
    st.none(),
)
common_tables = nested_tables(common_keys, common_leaves).map(_sorted_table)

PAMQP_NAME = st.text(
    alphabet=[c for c in map(chr, range(128)) if pamqp.constants.DOMAIN_REGEX["exchange-name"].fullmatch(c)]
)


def _common_strategy(spec: SpecMethod, name: str, kind: str, domain: str | None, policy: bool):
    """A strategy for one argument that both codecs can write.

    With ``policy``, the values also pass pamqp's own validate() (which
    enforces RabbitMQ usage rules, not the wire format): ticket 0, exchange
    and queue names from a restricted alphabet, fixed deprecated fields.
    """
    if policy:
        fixed = {
            ("connection.open", "capabilities"): "",
            ("connection.open", "insist"): False,
            ("connection.open-ok", "known_hosts"): "",
            ("channel.open", "out_of_band"): "0",
            ("channel.open-ok", "channel_id"): "0",
            ("basic.get-empty", "cluster_id"): "",
        }
        if (spec.full_name, name) in fixed:
            return st.just(fixed[spec.full_name, name])
        if name == "ticket":
            return st.just(0)
        if domain == "exchange-name":
            return PAMQP_NAME.filter(lambda s: len(s) <= 127)
        if domain == "queue-name":
            return PAMQP_NAME.filter(lambda s: len(s) <= 255)
        if (spec.full_name, name) == ("connection.open", "virtual_host"):
            return st.text(max_size=63)
    return {
        "octet": st.integers(0, 2**8 - 1),
        "short": st.integers(0, 2**16 - 1),
        "long": st.integers(0, 2**32 - 1),
        "longlong": st.integers(0, 2**63 - 1),  # pamqp packs longlong signed
        "shortstr": shortstrs,
        "longstr": st.text(max_size=100),  # pamqp takes and gives str
        "bit": st.booleans(),
        "table": common_tables,
    }[kind]


def _common_values(spec: SpecMethod, policy: bool):
    return st.fixed_dictionaries(
        {name: _common_strategy(spec, name, kind, domain, policy) for name, kind, domain, _ in spec.args}
    )


def _ours(spec: SpecMethod, values: dict) -> Method:
    kinds = {name: kind for name, kind, _, _ in spec.args}
    return spec.cls(**{n: (v.encode() if kinds[n] == "longstr" else v) for n, v in values.items()})


def _pamqp_command(spec: SpecMethod, values: dict, policy: bool):
    pcls = _pamqp_class(spec)
    names = [name for name, _, _, _ in spec.args]
    pvalues = {slot: values[name] for slot, name in zip(pcls.__slots__, names, strict=True)}
    if policy:
        return pcls(**pvalues)
    # Wire mode: every value the wire format allows, bypassing pamqp's
    # validate() (usage rules such as "ticket must be 0"), which marshal()
    # would otherwise call.
    command = pcls.__new__(pcls)
    for slot, value in pvalues.items():
        setattr(command, slot, value)
    command.validate = lambda: None
    return command


def _check_against_pamqp(spec: SpecMethod, values: dict, channel: int, policy: bool) -> None:
    ours = _ours(spec, values)
    command = _pamqp_command(spec, values, policy)
    our_frame = encode_method_frame(channel, ours)
    their_frame = pamqp.frame.marshal(command, channel)
    assert our_frame == their_frame
    # pamqp reads ours
    consumed, their_channel, decoded = pamqp.frame.unmarshal(our_frame)
    assert consumed == len(our_frame)
    assert their_channel == channel
    assert type(decoded) is type(command)
    assert [getattr(decoded, slot) for slot in decoded.__slots__] == [
        values[name] for name, _, _, _ in spec.args
    ]
    # we read pamqp's
    assert FrameParser().feed(their_frame) == [MethodFrame(channel, ours)]


@pytest.mark.parametrize("spec", COMMON, ids=_ids)
@given(data=st.data())
@settings(deadline=None, max_examples=30, suppress_health_check=[HealthCheck.too_slow])
def test_pamqp_oracle_via_constructors(spec: SpecMethod, data):
    values = data.draw(_common_values(spec, policy=True))
    _check_against_pamqp(spec, values, data.draw(st.integers(0, 65535)), policy=True)


@pytest.mark.parametrize("spec", COMMON, ids=_ids)
@given(data=st.data())
@settings(deadline=None, max_examples=30, suppress_health_check=[HealthCheck.too_slow])
def test_pamqp_oracle_any_wire_values(spec: SpecMethod, data):
    values = data.draw(_common_values(spec, policy=False))
    _check_against_pamqp(spec, values, data.draw(st.integers(0, 65535)), policy=False)


@pytest.mark.parametrize("spec", COMMON, ids=_ids)
def test_pamqp_defaults_decode(spec: SpecMethod):
    """pamqp's default-constructed command, read by us, re-encodes the same."""
    pcls = _pamqp_class(spec)
    command = pcls()
    # a few pamqp defaults are None (connection.secure's challenge, ...)
    for slot, (_, kind, _, _) in zip(pcls.__slots__, spec.args, strict=True):
        if getattr(command, slot) is None:
            sample = SAMPLE[kind]
            setattr(command, slot, sample.decode() if kind == "longstr" else sample)
    frame = pamqp.frame.marshal(command, 3)
    (parsed,) = FrameParser().feed(frame)
    assert parsed.channel == 3
    assert type(parsed.method) is spec.cls
    assert encode_method_frame(3, parsed.method) == frame


# -- tables against pamqp

INT_EDGES = [
    0, 1, -1, 127, 128, -128, -129, 32767, 32768, -32768, -32769, 65535, 65536,
    2**31 - 1, 2**31, -(2**31), -(2**31) - 1, 2**32 - 1, 2**32, 2**63 - 1, -(2**63),
]  # fmt: skip


@pytest.mark.parametrize("number", INT_EDGES)
def test_table_integer_edges_match_pamqp(number):
    assert encode_value(number) == pamqp.encode.table_integer(number)


@given(st.integers(-(2**63), 2**63 - 1))
@settings(deadline=None)
def test_table_integer_matches_pamqp(number):
    assert encode_value(number) == pamqp.encode.table_integer(number)


@given(common_leaves)
@settings(deadline=None)
def test_table_value_matches_pamqp(value):
    assert encode_value(value) == pamqp.encode.encode_table_value(value)


@given(st.floats(width=32))
@settings(deadline=None)
def test_pamqp_float_is_our_float32(number):
    ours = encode_value(Float32(number))
    assert ours == pamqp.encode.encode_table_value(number)
    assert ours[:1] == b"f"
    _, decoded = pamqp.decode.floating_point(ours[1:])
    assert decoded == number or (math.isnan(decoded) and math.isnan(number))


@given(common_tables)
@settings(deadline=None)
def test_field_table_matches_pamqp(table):
    ours = encode_table(table)
    theirs = pamqp.encode.field_table(table)
    assert ours == theirs
    assert pamqp.decode.field_table(ours) == (len(ours), table)
    assert decode_table(theirs) == (table, len(theirs))


@given(tables)
@settings(deadline=None)
def test_pamqp_reads_every_table_we_write(table):
    """Beyond the common subset: tagged ints, doubles, bytes; pamqp reads
    them as plain values."""
    wire = encode_table(table)
    consumed, theirs = pamqp.decode.field_table(wire)
    assert consumed == len(wire)
    assert theirs == table
