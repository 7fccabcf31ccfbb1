"""Reading JSON bodies the same way in every JSON source: exact numbers, duplicate keys found rather than
resolved, and a clear ParseError when the body is not the list of records the source expects (an error page,
a changed API, an empty answer).

Duplicate keys. JSON lets an object repeat a key and Python's json keeps the last value without a word, so a
body with `"dph_total": 2.0, "dph_total": 0.2` would decide a price by position. Here an object that repeats
a key with the *same* value keeps it (a harmless repeat); one that repeats it with *different* values holds a
`Conflict` for that key instead, listing every value. A parser checks each record with `conflicting_keys` and
refuses it (`duplicate_key`) with the keys named; a Conflict reaching a price reader is not a number, so it can
never be read as one.

A large body may be read by `fast_records` instead (msgspec into typed records, for a columnar parser): only when
nothing in it could read differently from load_json (pipeline.sources.json_repeats finds the repeated keys that
msgspec would resolve silently); otherwise the caller reads it with load_json.
"""
from __future__ import annotations

import json
import re
import sys
from decimal import Decimal
from functools import lru_cache

import msgspec

from pipeline.records import ParseError
from pipeline.sources.json_repeats import scan_keys

DUPLICATE_KEY = "duplicate_key"  # the rejection reason of a record that repeats a key with different values


class Conflict:
    """The value of a key that an object repeats with different values: every value, in body order."""

    __slots__ = ("values",)

    def __init__(self, values: list):
        self.values = values

    def __repr__(self) -> str:
        return f"Conflict({self.values!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Conflict) and other.values == self.values

    __hash__ = None  # mutable, like the dicts and lists it holds


def _pairs_to_dict(pairs: list[tuple[str, object]]) -> dict:
    out = dict(pairs)
    if len(out) == len(pairs):
        return out  # no key repeated: the common case, at C speed
    return _merge_repeats(pairs)


def _merge_repeats(pairs: list[tuple[str, object]]) -> dict:
    out: dict = {}
    for key, value in pairs:
        if key not in out:
            out[key] = value
            continue
        held = out[key]
        if isinstance(held, Conflict):
            if value not in held.values:
                held.values.append(value)
        elif held != value:
            out[key] = Conflict([held, value])
    return out


def _integer(text: str) -> int | Decimal:
    """An integer; one too long for Python's int (over sys.get_int_max_str_digits(), 4300 digits) as a Decimal,
    which a price reader then refuses (records.read_decimal), so that one absurd cell fails its record, not the
    whole body. Used only when a body holds such an integer (see _decode): int() is the C reader's own."""
    limit = sys.get_int_max_str_digits()
    return int(text) if not limit or len(text.lstrip("-")) <= limit else Decimal(text)


def load_json(raw: bytes, what: str) -> object:
    """Decode a body; numbers become Decimal so that a numeric price is as exact as a string one; a key repeated
    with different values becomes a Conflict (see the module's docstring)."""
    return _decode(raw, what, _pairs_to_dict)


def load_json_with_repeats(raw: bytes, what: str) -> tuple[object, bool]:
    """load_json, and whether any object of the body repeats a key (with the same value or not): a body that
    repeats none needs no record checked with conflicting_keys (the columnar path of a large body)."""
    repeats = []

    def hook(pairs: list[tuple[str, object]]) -> dict:
        out = dict(pairs)
        if len(out) == len(pairs):
            return out
        repeats.append(True)
        return _merge_repeats(pairs)

    return _decode(raw, what, hook), bool(repeats)


def _decode(raw: bytes, what: str, hook) -> object:
    if not raw.strip():
        raise ParseError(f"{what}: body is empty")
    try:
        try:
            value = json.loads(raw, parse_float=Decimal, parse_constant=Decimal, object_pairs_hook=hook)
        except json.JSONDecodeError:
            raise
        except ValueError:  # an integer longer than int() reads (or bytes that are not UTF-8: raised again below)
            value = json.loads(raw, parse_float=Decimal, parse_int=_integer, parse_constant=Decimal,
                               object_pairs_hook=hook)
        if _SURROGATE_ESCAPE.search(raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")):
            _refuse_lone_surrogates(value, what)
        return value
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        start = raw[:60].decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)[:60]
        raise ParseError(f"{what}: body is not JSON ({type(exc).__name__}: {exc}); it starts {start!r}") from None


# A UTF-16 surrogate written as a JSON escape (`\\ud800`): paired, it is one character (an emoji); alone, it is no
# character at all, which no text column can hold.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _refuse_lone_surrogates(value: object, what: str) -> None:
    """A body whose strings hold a lone surrogate is not text: refused whole, in one line, before a parser reads it
    (the warehouse could not store such a string, and the snapshot failed at its load with an encoding error)."""
    try:
        json.dumps(value, ensure_ascii=False, default=str).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ParseError(f"{what}: the body holds a lone UTF-16 surrogate ({exc.object[exc.start:exc.end]!r}), "
                         "which is no character") from None


def conflicting_keys(value: object, path: str = "", limit: int = 10) -> list[str]:
    """The dotted paths, inside `value` (a record), of every key repeated with different values (at most
    `limit`). Iterative, so that a deep body cannot exhaust the stack."""
    found: list[str] = []
    stack: list[tuple[str, object]] = [(path, value)]
    while stack and len(found) < limit:
        where, item = stack.pop()
        if isinstance(item, dict):
            for key, sub in item.items():
                here = f"{where}.{key}" if where else str(key)
                if isinstance(sub, Conflict):
                    found.append(here)
                else:
                    stack.append((here, sub))
        elif isinstance(item, list):
            stack.extend((f"{where}[{i}]", sub) for i, sub in enumerate(item))
    return sorted(found)


def conflict_detail(keys: list[str]) -> str:
    return f"the record repeats {', '.join(repr(k) for k in keys)} with different values; none is taken"


def json_records(body: object, what: str, key: str, noun: str) -> list:
    """The list of records: the body itself, or the list under `key` of a wrapping object. An empty list is an
    error: every caller asks for something that exists, so nothing at all means the query failed."""
    if isinstance(body, dict):
        if key not in body:
            raise ParseError(f"{what}: no '{key}' list; keys were {sorted(body)[:10]}")
        body = body[key]
    if isinstance(body, Conflict):
        raise ParseError(f"{what}: the body repeats '{key}' with different values; it cannot say which holds")
    if not isinstance(body, list):
        raise ParseError(f"{what}: {key} is not a list but {type(body).__name__}")
    if not body:
        raise ParseError(f"{what}: the body holds no {noun}")
    return body


# The deepest body fast_records reads: far below the standard reader's recursion limit, far above any real body
# (a Vast answer nests 4 deep).
MAX_FAST_DEPTH = 64


def fast_records(raw: bytes, record_type: type, key: str) -> list | None:
    """The records of a body (the body itself, or the list under `key` of a wrapping object) decoded by msgspec into
    `record_type` (a msgspec Struct whose untyped fields hold numbers as Decimal, as load_json reads them): each
    record as a `record_type`, or as its bytes when it does not fit the type (load_json of them gives what
    load_json gives of the record in the body). None when the body must be read by load_json instead: anything
    msgspec refuses or might read otherwise (not UTF-8, a UTF-8 BOM or another encoding, NaN, a lone surrogate,
    trailing text, nesting beyond MAX_FAST_DEPTH), a key that may repeat inside an object, and anything but a
    non-empty list of records, whose error load_json and json_records give."""
    if not isinstance(raw, bytes) or not _strict_utf8(raw):
        return None
    bare = bool(_BARE_LIST.match(raw))
    body_decoder, record_decoder = _typed_decoders(record_type, key, bare)
    try:
        try:
            records = _listed(body_decoder.decode(raw), key)
        except msgspec.ValidationError:  # some record does not fit the type: each one alone
            records = [_record_or_bytes(record_decoder, span)
                       for span in _listed(_span_decoder(key, bare).decode(raw), key)]
    except (msgspec.MsgspecError, RecursionError, ValueError):
        return None
    if not records:
        return None
    scan = scan_keys(raw)  # of bytes msgspec found to be JSON
    return None if scan.may_repeat or scan.depth > MAX_FAST_DEPTH else records


def record_bytes(raw: bytes, key: str) -> list[bytes]:
    """The bytes of each record of a body that fast_records read."""
    return [bytes(span) for span in _listed(_span_decoder(key, bool(_BARE_LIST.match(raw))).decode(raw), key)]


_BARE_LIST = re.compile(rb"[ \t\r\n]*\[")


def _strict_utf8(raw: bytes) -> bool:
    """UTF-8 as strict as msgspec's decoding of the strings it keeps; it does not look inside those it skips, and
    load_json also takes encoded surrogates, so the two read alike only bodies that pass this."""
    if raw.isascii():
        return True
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _body_type(item: object, key: str, bare: bool) -> object:
    return list[item] if bare else msgspec.defstruct("Body", [(key, list[item])])


@lru_cache(maxsize=None)
def _typed_decoders(record_type: type, key: str, bare: bool) -> tuple[msgspec.json.Decoder, msgspec.json.Decoder]:
    """(the decoder of a body, the decoder of one record)."""
    return (msgspec.json.Decoder(_body_type(record_type, key, bare), float_hook=Decimal),
            msgspec.json.Decoder(record_type, float_hook=Decimal))


@lru_cache(maxsize=None)
def _span_decoder(key: str, bare: bool) -> msgspec.json.Decoder:
    return msgspec.json.Decoder(_body_type(msgspec.Raw, key, bare))


def _listed(body: object, key: str) -> list:
    return body if isinstance(body, list) else getattr(body, key)


def _record_or_bytes(decoder: msgspec.json.Decoder, span: msgspec.Raw) -> object:
    try:
        return decoder.decode(span)
    except msgspec.ValidationError:
        return bytes(span)
