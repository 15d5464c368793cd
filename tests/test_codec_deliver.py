"""The basic.deliver fast path gives exactly what the generic decoder gives."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiorabbit.codec import decode_method
from aiorabbit.codec import methods as m
from aiorabbit.codec.deliver import _CACHE_MAX, MethodDecoder
from aiorabbit.exceptions import FrameError

_names = st.binary(max_size=40)  # any bytes: names another client wrote need not be UTF-8


def _shortstr(raw: bytes) -> bytes:
    return bytes([len(raw)]) + raw


def _deliver_payload(tag: bytes, delivery_tag: int, flags: int, exchange: bytes, key: bytes) -> bytes:
    return (b"\x00\x3c\x00\x3c" + _shortstr(tag) + delivery_tag.to_bytes(8, "big") + bytes([flags])
            + _shortstr(exchange) + _shortstr(key))


def _outcome(decode: object, payload: bytes) -> object:
    try:
        method = decode(memoryview(payload))  # type: ignore[operator]
    except FrameError as exc:
        return ("error", str(exc))
    return (type(method), repr(method), vars(method) if hasattr(method, "__dict__") else
            {k: getattr(method, k) for k in method.__slots__})


@given(_names, st.integers(0, 2**64 - 1), st.integers(0, 255), _names, _names)
def test_a_delivery_decodes_as_the_generic_decoder_does(
    tag: bytes, delivery_tag: int, flags: int, exchange: bytes, key: bytes
) -> None:
    payload = _deliver_payload(tag, delivery_tag, flags, exchange, key)
    decoder = MethodDecoder(decode_method)
    first = _outcome(decoder, payload)
    assert first == _outcome(decode_method, payload)
    assert _outcome(decoder, payload) == first  # the second time from the caches


@given(_names, _names, _names, st.data())
def test_a_malformed_delivery_fails_as_the_generic_decoder_fails(
    tag: bytes, exchange: bytes, key: bytes, data: st.DataObject
) -> None:
    payload = _deliver_payload(tag, 7, 0, exchange, key)
    cut = data.draw(st.integers(4, len(payload) - 1))
    decoder = MethodDecoder(decode_method)
    decoder(memoryview(payload))  # its names are cached now
    for bad in (payload[:cut], payload + data.draw(st.binary(min_size=1, max_size=3))):
        assert _outcome(decoder, bad) == _outcome(decode_method, bad)
        assert _outcome(decoder, bad)[0] == "error"


def test_other_methods_take_the_generic_path() -> None:
    decoder = MethodDecoder(decode_method)
    ok = m.BasicConsumeOk(consumer_tag="ctag").encode()
    assert repr(decoder(memoryview(ok))) == repr(decode_method(ok))
    with pytest.raises(FrameError, match="truncated"):
        decoder(memoryview(b"\x00\x3c"))


def test_the_caches_stay_bounded_under_unique_routing_keys() -> None:
    decoder = MethodDecoder(decode_method)
    for i in range(3 * _CACHE_MAX):
        msg = decoder(memoryview(_deliver_payload(b"ctag", i, 0, b"", b"key.%d" % i)))
        assert isinstance(msg, m.BasicDeliver) and msg.routing_key == f"key.{i}"
    assert len(decoder._names) <= _CACHE_MAX and len(decoder._tags) == 1
