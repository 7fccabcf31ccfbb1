"""Reading JSON bodies the same way in every JSON source: exact numbers, and a clear ParseError when the body
is not the list of records the source expects (an error page, a changed API, an empty answer)."""
from __future__ import annotations

import json
from decimal import Decimal

from pipeline.records import ParseError


def load_json(raw: bytes, what: str) -> object:
    """Decode a body; numbers become Decimal so that a numeric price is as exact as a string one."""
    if not raw.strip():
        raise ParseError(f"{what}: body is empty")
    try:
        return json.loads(raw, parse_float=Decimal, parse_constant=Decimal)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        start = raw[:60].decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)[:60]
        raise ParseError(f"{what}: body is not JSON ({type(exc).__name__}: {exc}); it starts {start!r}") from None


def json_records(body: object, what: str, key: str, noun: str) -> list:
    """The list of records: the body itself, or the list under `key` of a wrapping object. An empty list is an
    error: every caller asks for something that exists, so nothing at all means the query failed."""
    if isinstance(body, dict):
        if key not in body:
            raise ParseError(f"{what}: no '{key}' list; keys were {sorted(body)[:10]}")
        body = body[key]
    if not isinstance(body, list):
        raise ParseError(f"{what}: {key} is not a list but {type(body).__name__}")
    if not body:
        raise ParseError(f"{what}: the body holds no {noun}")
    return body
