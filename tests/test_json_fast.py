"""The fast reading of a large JSON body (issue 11 item 8): the repeated-key scan of its bytes
(pipeline.sources.json_repeats), msgspec through jsonbody.fast_records, and the integer division of prices per GPU
(pipeline.columnar.usd_per_unit).

The scan is held to the standard library's own answer: json.loads with an object_pairs_hook is handed every pair of
every object, so it knows whether one of them repeats a key. Wherever it does, the scan must say "may repeat"; where
no key repeats and no key is written with a backslash, the scan must say it does not (so that it is of use, not
merely safe). fast_records is held to declining every body that msgspec might read otherwise than load_json. The
division is held to Decimal's, worked out by hand at the half-way points and against Decimal on any price.
"""
from __future__ import annotations

import json
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.columnar import PER_UNIT_PRICE_LIMIT, usd_per_unit
from pipeline.sources.json_repeats import scan_keys
from pipeline.sources.jsonbody import MAX_FAST_DEPTH, fast_records, load_json, record_bytes

# ============================================================================================ the scan, by hand

SCAN_CASES = [  # (body, may repeat, depth), each worked out from the text
    (b'{"a":1,"a":2}', True, 1),
    (b'{"a":1,"a":1}', True, 1),  # the same value twice is still a repeat for the scan (the hook sees two pairs)
    (b'{"a":1,"b":{"a":2}}', False, 2),  # one key in two objects
    (b'[{"a":1},{"a":1}]', False, 2),
    (b'{"a":{"b":1},"c":{"b":1}}', False, 2),
    (b'{"a":[1,{"b":2}],"b":3}', False, 3),
    (b'{"a":{},"a":[]}', True, 2),
    (b'{"k":[{"z":1}],"k":3}', True, 3),  # the repeat comes after a nested object closes
    (b'{"k":"{\\"k\\":1}","k2":[{"k":1,"k":2}]}', True, 3),  # a string that looks like an object; a repeat deep down
    (b'{"x":"\\"a\\":1","a":2}', False, 1),  # `"a":` inside a string, after escaped quotes, is text
    (b'{"x":"\\\\","a":1,"b":"\\\\\\"}"}', False, 1),  # an escaped backslash, then an escaped quote and a brace
    (b'{"a":"}{:[","b":"]"}', False, 1),  # brackets and colons inside strings
    (b'{"a" : 1 ,\n "a"\t: 2}', True, 1),  # whitespace between a key and its colon
    (b'{ "a" \r\n : "b" , "c" : "a" }', False, 1),
    (b'{"":1,"":2}', True, 1),  # the empty key
    (b'{"abcdefghijklmnopq":1,"abcdefghijklmnopq":2}', True, 1),  # 17 bytes, twice
    (b'{"abcdefghijklmnopq":1,"abcdefghXjklmnopq":2}', False, 1),  # same length, first and last 8 bytes: the middle
    (b'{"abcdefghijklmnopq":1,"abcdefghijklmnopr":2}', False, 1),
    # three keys of one summary (same length, first and last 8 bytes), the first and the third one key: a repeat
    # with another key between its copies in the order of summaries
    (b'{"aaaaaaaaXbbbbbbbb":1,"aaaaaaaaYbbbbbbbb":2,"aaaaaaaaXbbbbbbbb":3}', True, 1),
    (b'{"aaaaaaaaXbbbbbbbb":1,"aaaaaaaaYbbbbbbbb":2,"aaaaaaaaZbbbbbbbb":3}', False, 1),
    (b'{"\\u0061":1,"a":2}', True, 1),  # an escaped key that spells another
    (b'{"\\u0062":1,"a":2}', True, 1),  # an escaped key that does not: "perhaps", the scan cannot tell
    (b'[[[[{}]]]]', False, 5),
    (b'[]', False, 1),
    (b'{}', False, 1),
    (b'"abc"', False, 0),
    (b'12', False, 0),
]


@pytest.mark.parametrize("body, may_repeat, depth", SCAN_CASES, ids=lambda v: repr(v)[:40])
def test_the_scan_on_hand_written_bodies(body, may_repeat, depth):
    assert tuple(scan_keys(body)) == (may_repeat, depth)


@pytest.mark.parametrize("body", [b"", b"{", b'{"a":1', b'"abc', b"}{", b"\\", b'{"a\\":1}', b"]]]", b'""":', b'"a":'])
def test_the_scan_of_bytes_that_are_not_json_answers_without_raising(body):
    assert isinstance(scan_keys(body).may_repeat, bool)


# ============================================================================================ the scan, generated

# Keys from a few names (so that objects repeat them), long ones that differ only in the middle or the last byte,
# and text holding what a scan could trip on: quotes, backslashes, colons, brackets, commas, non-ASCII, controls.
_TEXT = st.text(st.sampled_from(list('ab"\\:{}[],é/ \x01') + ["\u2028", "\U0001F600"]), max_size=12)
_KEYS = st.one_of(st.sampled_from(["a", "b", "id", "", "abcdefghijklmnopqrst", "abcdefghXjklmnopqrst",
                                   "abcdefghijklmnopqrsu"]), _TEXT)
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10 ** 30, 10 ** 30), _TEXT,
                     st.sampled_from(["1.5", "-0.0", "1e5"]).map(lambda text: ("number", text)))
_VALUES = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(st.tuples(_KEYS, inner), max_size=6).map(lambda pairs: ("object", pairs)),
    st.lists(inner, max_size=5).map(lambda items: ("array", items))), max_leaves=40)
_SPACE = st.sampled_from(["", "", "", " ", "\n  ", "\t", "\r\n"])


@st.composite
def json_texts(draw) -> bytes:
    """A JSON text of a generated value, objects written as their pairs (a key may repeat), strings with any
    character escaped or not at random (`\\u0061` for `a`), whitespace at random between tokens."""
    out: list[str] = []

    def string(text: str) -> str:
        parts = ['"']
        for char in text:
            how = draw(st.integers(0, 3))
            if char in '"\\' or ord(char) < 0x20:
                parts.append(json.dumps(char)[1:-1] if how else f"\\u{ord(char):04x}")
            elif how == 0 and ord(char) < 0x10000:
                parts.append(f"\\u{ord(char):04x}")
            elif how == 1 and char == "/":
                parts.append("\\/")
            else:
                parts.append(char)
        return "".join(parts) + '"'

    def emit(value) -> None:
        out.append(draw(_SPACE))
        if isinstance(value, tuple) and value[0] == "object":
            out.append("{" + ",".join(f"{draw(_SPACE)}{string(key)}{draw(_SPACE)}:" + _emitted(item)
                                      for key, item in value[1]) + draw(_SPACE) + "}")
        elif isinstance(value, tuple) and value[0] == "array":
            out.append("[" + ",".join(_emitted(item) for item in value[1]) + draw(_SPACE) + "]")
        elif isinstance(value, tuple):
            out.append(value[1])
        elif isinstance(value, str):
            out.append(string(value))
        else:
            out.append(json.dumps(value))
        out.append(draw(_SPACE))

    def _emitted(value) -> str:
        start = len(out)
        emit(value)
        text = "".join(out[start:])
        del out[start:]
        return text

    emit(draw(_VALUES))
    return "".join(out).encode("utf-8")


def _truth(raw: bytes) -> tuple[bool, int]:
    """(whether some object repeats a key, the deepest nesting), from every pair the standard library reads."""
    repeated = []

    def pairs(items):
        if len({key for key, _ in items}) != len(items):
            repeated.append(True)
        return ("object", items)

    def depth(value) -> int:
        if isinstance(value, tuple):
            return 1 + max((depth(item) for _, item in value[1]), default=0)
        if isinstance(value, list):
            return 1 + max((depth(item) for item in value), default=0)
        return 0

    value = json.loads(raw, object_pairs_hook=pairs)
    return bool(repeated), depth(value)


@settings(max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_texts())
def test_the_scan_never_misses_a_repeated_key_and_finds_none_where_there_is_none(raw):
    repeated, depth = _truth(raw)
    scan = scan_keys(raw)
    assert scan.depth == depth
    if repeated:
        assert scan.may_repeat
    elif b"\\" not in raw:
        assert not scan.may_repeat


def test_the_generator_writes_bodies_that_repeat_escape_and_nest():
    """The property above is about something: of the bodies its generator writes, many repeat a key, many nest
    three deep, many escape characters, and many repeat none though they hold keys."""
    seen = []

    @settings(max_examples=300, derandomize=True, database=None, deadline=None)
    @given(json_texts())
    def collect(raw):
        seen.append((*_truth(raw), b"\\u" in raw, b":" in raw))

    collect()
    assert sum(repeated for repeated, _, _, _ in seen) > 30
    assert sum(depth >= 3 for _, depth, _, _ in seen) > 30
    assert sum(escaped for _, _, escaped, _ in seen) > 30
    assert sum(not repeated and keys for repeated, _, _, keys in seen) > 30


# ============================================================================================ fast_records


class Record(msgspec.Struct, kw_only=True):
    id: int = None
    price: Any = None


def _body(*records: str) -> bytes:
    return ('{"offers": [' + ", ".join(records) + '], "total": 2}').encode("utf-8")


CLEAN = _body('{"id": 1, "price": 1.50, "other": {"x": [1, 2]}}', '{"id": 2, "price": 3, "name": "b"}')


def test_a_clean_body_is_read_into_records_with_numbers_as_load_json_reads_them():
    records = fast_records(CLEAN, Record, "offers")
    assert records == [Record(id=1, price=Decimal("1.50")), Record(id=2, price=3)]
    assert type(records[1].price) is int
    assert fast_records(b' [{"id": 7}]', Record, "offers") == [Record(id=7)]  # a bare list


def test_a_record_that_does_not_fit_the_type_is_given_as_its_bytes():
    raw = _body('{"id": 1}', '{"id": "x",  "price": 2}', "null")
    assert fast_records(raw, Record, "offers") == [Record(id=1), b'{"id": "x",  "price": 2}', b"null"]
    assert record_bytes(raw, "offers") == [b'{"id": 1}', b'{"id": "x",  "price": 2}', b"null"]
    assert [load_json(span, "test") for span in record_bytes(raw, "offers")] == [
        {"id": 1}, {"id": "x", "price": 2}, None]


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


DECLINED = {  # bodies fast_records leaves to load_json, and why
    "a UTF-8 BOM (load_json reads it)": b"\xef\xbb\xbf" + CLEAN,
    "UTF-16 (load_json reads it)": CLEAN.decode().encode("utf-16"),
    "NaN in a skipped field": _body('{"id": 1, "other": NaN}'),
    "Infinity as a price": _body('{"id": 1, "price": Infinity}'),
    "-Infinity": _body('{"id": 1, "price": -Infinity}'),
    "a lone surrogate escape in a skipped string": _body('{"id": 1, "other": "\\ud800"}'),
    "a reversed surrogate pair": _body('{"id": 1, "other": "\\udc00\\ud800"}'),
    "a byte that is no UTF-8 in a skipped string": _body('{"id": 1}').replace(b"}", b', "o": "\xff"}', 1),
    "an encoded surrogate in a skipped string": _body('{"id": 1}').replace(b"}", b', "o": "\xed\xa0\x80"}', 1),
    "trailing text": CLEAN + b" x",
    "two bodies": CLEAN + CLEAN,
    "a trailing comma": _body('{"id": 1, "other": [1, 2,]}'),
    "nesting one beyond MAX_FAST_DEPTH": _body(f'{{"id": 1, "other": {_nested(MAX_FAST_DEPTH - 2)}}}'),
    "a key repeated in a record": _body('{"id": 1, "id": 2}'),
    "a skipped key repeated with one value": _body('{"id": 1, "o": 5, "o": 5}'),
    "a key repeated deep in a skipped field": _body('{"id": 1, "o": [{"a": {"b": 1, "b": 2}}]}'),
    "the list's key repeated": b'{"offers": [{"id": 1}], "offers": [{"id": 2}]}',
    "a key written with an escape": _body('{"\\u0069d": 1}'),
    "no records": _body(),
    "no offers key": b'{"data": [{"id": 1}]}',
    "offers not a list": b'{"offers": {"id": 1}}',
    "a body that is a string": b'"offers"',
    "whitespace only": b"  \n",
    "nothing": b"",
}


@pytest.mark.parametrize("why", list(DECLINED))
def test_bodies_msgspec_might_read_otherwise_are_declined(why):
    assert fast_records(DECLINED[why], Record, "offers") is None


def test_a_body_is_read_up_to_max_fast_depth_and_text_is_not_bytes():
    # wrapper (1), list (2), record (3), then MAX_FAST_DEPTH - 3 lists: MAX_FAST_DEPTH in all.
    deep = _body(f'{{"id": 1, "other": {_nested(MAX_FAST_DEPTH - 3)}}}')
    assert fast_records(deep, Record, "offers") == [Record(id=1)]
    assert fast_records(CLEAN.decode(), Record, "offers") is None


# ============================================================================================ price per GPU


USD = Decimal("1E-10")
DIVISIONS = [  # (price, count, per GPU half-even to 10 places), worked out by hand
    ("16.0000000012", 8, "2.0000000002"),  # 2.00000000015: the 10th place 1 is odd, up
    ("16.0000000020", 8, "2.0000000002"),  # 2.00000000025: 2 is even, stays
    ("16.0000000028", 8, "2.0000000004"),  # 2.00000000035: up
    ("0.00000000015", 1, "0.0000000002"),  # half-way: 1 is odd, up
    ("0.00000000025", 1, "0.0000000002"),  # half-way: 2 is even, stays
    ("0.000000000250000000", 1, "0.0000000002"),  # the same, at 18 decimals
    ("0.000000000250000001", 1, "0.0000000003"),  # past half-way by 1e-18
    ("10", 3, "3.3333333333"), ("20", 3, "6.6666666667"),
    ("0.6951851851851852", 1, "0.6951851852"),
    ("0", 7, "0"), ("0.00000000001", 64, "0"),
    ("99999999.999999999999999999", 64, "1562500.0000000000"),  # 1562499.99999999999999999998...: up to .0
    ("99999999.999999999999999999", 1, "100000000.0000000000"),  # the largest price this division takes
    ("0.0000000032", 64, "0"),  # 0.00000000005: half-way, 0 is even, stays
    ("0.0000000096", 64, "0.0000000002"),  # 0.00000000015: half-way, 1 is odd, up
    ("63.00000000096", 64, "0.9843750000"),  # 0.984375000015: short of half-way, down
]


@pytest.mark.parametrize("price, count, expected", DIVISIONS)
def test_the_division_rounds_half_even_as_worked_by_hand(price, count, expected):
    got = usd_per_unit(pa.array([Decimal(price)], pa.decimal128(38, 18)), np.array([count]))
    assert got.type == pa.decimal128(20, 10)
    assert got.to_pylist() == [Decimal(expected)]


_PRICES = st.builds(lambda units, scale: Decimal(units).scaleb(-scale),
                    st.integers(0, 10 ** 26 - 1), st.integers(0, 18)).filter(lambda p: p < PER_UNIT_PRICE_LIMIT)
_HALF_WAYS = st.builds(lambda tenth, count: ((Decimal(tenth) + Decimal("0.5")) * USD * count, count),
                       st.integers(0, 10 ** 16), st.integers(1, 64)).filter(
    lambda pair: pair[0] < PER_UNIT_PRICE_LIMIT and pair[0].as_tuple().exponent >= -18)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.tuples(_PRICES, st.integers(1, 64)), _HALF_WAYS), min_size=1, max_size=40))
def test_the_division_equals_decimal_division_and_quantize(pairs):
    prices = [price for price, _ in pairs]
    counts = [count for _, count in pairs]
    array = pa.array([Decimal(0)] + prices, pa.decimal128(38, 18)).slice(1)  # an offset into its buffer as well
    got = usd_per_unit(array, np.array(counts)).to_pylist()
    assert got == [(price / count).quantize(USD, rounding=ROUND_HALF_EVEN) for price, count in pairs]


@pytest.mark.parametrize("price", ["200000000", "-0.000000000000000001"])
def test_the_division_refuses_a_price_beyond_its_64_bit_steps(price):
    """2e8 is 2e26 units of 1e-18, beyond 2**87; a negative price is beyond 2**127 as an unsigned word."""
    with pytest.raises(ValueError):
        usd_per_unit(pa.array([Decimal(price)], pa.decimal128(38, 18)), np.array([1]))
