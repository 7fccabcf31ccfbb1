"""Whether a JSON body may repeat a key inside one object, and how deep it nests: a vectorised scan of its bytes.

A fast decoder (msgspec) keeps the last value of a repeated key without a word, where the standard library's
object_pairs_hook sees every pair (pipeline.sources.jsonbody). Before a body is read by the fast decoder, this scan
says whether any object of it may write one key twice; when it may, the body is read the standard way. The scan is
sound, not exact the other way: it may say "perhaps" when no key repeats (a key written with a backslash escape,
where `"\\u0061"` is `"a"`; a body it finds odd), but it never misses a repeat, at any depth.

How, in numpy, over the bytes of a body that is valid JSON (the caller has decoded it first):
1. the quotes and brackets, in body order; a quote after an odd run of backslashes is inside a string, and so is a
   bracket after an odd number of the other quotes, which pair up into strings;
2. a string is a key when the first byte after it that is not JSON whitespace is a colon;
3. each bracket's object or array is found among the few brackets (the last opener at its depth), and a key's object
   is the one the last bracket before it leaves open;
4. each key is summarised, with its object, by one number mixing its object, its length and its first and last
   eight bytes: a repeat gives equal numbers, and the keys whose number another key shares are compared byte by
   byte, all of them (three keys of one object may share a number, the first and third being one key).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

_QUOTE, _BACKSLASH, _COLON = ord('"'), ord("\\"), ord(":")
_WHITESPACE = np.zeros(256, dtype=bool)
_WHITESPACE[[ord(" "), ord("\t"), ord("\n"), ord("\r")]] = True
_DEPTH_STEP = np.zeros(256, dtype=np.int64)  # +1 for an opening bracket, -1 for a closing one
_DEPTH_STEP[[ord("{"), ord("[")]] = 1
_DEPTH_STEP[[ord("}"), ord("]")]] = -1
# Whitespace between a string and its colon is followed this far; a longer run is a body the scan calls odd.
_MAX_WHITESPACE_RUN = 64
# Keys sharing a summary with another, compared byte by byte, at most; more is a body the scan calls odd.
_MAX_COMPARISONS = 1000
# The low k bytes of a little-endian 8-byte word, for a key shorter than 8 bytes.
_LOW_BYTES = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [(1 << 64) - 1], dtype=np.uint64)
# Odd 64-bit multipliers (wrapping): the summary is a sum of the parts, each spread over the whole word.
_MIX = np.array([0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9, 0xD6E8FEB86659FD93], dtype=np.uint64)


class KeyScan(NamedTuple):
    may_repeat: bool  # False only when no object of the body writes one key twice
    depth: int  # the deepest nesting of objects and arrays (0 for a body that is a scalar)


_ODD = KeyScan(True, 0)


def scan_keys(raw: bytes) -> KeyScan:
    """The scan of a body that is valid JSON (bytes). On bytes that are not, it answers may_repeat=True or an
    answer of no use, never an exception. Places are int32 (a body is far below 2 GiB) and big arrays are let go
    as soon as they are done with: their memory, fresh from the system each time, is much of the cost."""
    data = np.frombuffer(raw, dtype=np.uint8)
    events = _quotes_and_brackets(data)
    backslashes = np.flatnonzero(data == _BACKSLASH) if b"\\" in raw else None
    if backslashes is not None:
        events = _without_escaped_quotes(data, events, backslashes)
    chars = data[events]
    is_quote = chars == _QUOTE
    quotes = events[is_quote]
    if len(quotes) % 2:
        return _ODD
    bracket_at = np.flatnonzero(~is_quote)  # the q-th bracket has (its event index - q) quotes before it
    brackets = events[bracket_at]
    steps = _DEPTH_STEP[chars[bracket_at]]
    steps[(bracket_at - np.arange(len(bracket_at))) % 2 == 1] = 0  # after an odd number of quotes: text
    del events, chars, is_quote, bracket_at
    depths = np.cumsum(steps)  # after each bracket
    depth = int(depths.max()) if len(depths) else 0
    if len(depths) and (depths.min() < 0 or depths[-1] != 0):
        return _ODD

    is_key = _followed_by_colon(data, quotes[1::2])
    if is_key is None:
        return KeyScan(True, depth)
    starts = quotes[0::2][is_key] + 1
    lengths = quotes[1::2][is_key] - starts
    del quotes, is_key
    if not len(starts):
        return KeyScan(False, depth)
    if backslashes is not None and _any_inside(backslashes, starts, lengths):
        return KeyScan(True, depth)  # an escaped key may spell another one

    objects = _objects_of_keys(np.searchsorted(brackets, starts), steps, depths)
    if objects is None:
        return _ODD
    summaries = _summaries(raw, starts, lengths, objects)
    ordered = np.sort(summaries)
    if not np.any(ordered[1:] == ordered[:-1]):
        return KeyScan(False, depth)
    del ordered
    order = np.argsort(summaries, kind="stable")
    ordered = summaries[order]
    same = ordered[1:] == ordered[:-1]
    # every key whose summary another key shares (not only neighbours in the order: a key between the two copies
    # of a repeat may share their summary without being either)
    shared = np.zeros(len(order), dtype=bool)
    shared[1:] |= same
    shared[:-1] |= same
    candidates = order[shared]
    if len(candidates) > _MAX_COMPARISONS:
        return KeyScan(True, depth)
    seen: set[tuple[int, bytes]] = set()
    for key in candidates.tolist():
        spelled = (int(objects[key]), raw[starts[key]:starts[key] + lengths[key]])
        if spelled in seen:
            return KeyScan(True, depth)
        seen.add(spelled)
    return KeyScan(False, depth)  # equal summaries of different keys only


def _quotes_and_brackets(data: np.ndarray, block: int = 1 << 18) -> np.ndarray:
    """The places of the quotes and brackets, a block at a time (the block's temporaries stay in the cache)."""
    folded = np.empty(min(block, len(data)), dtype=np.uint8)
    found = np.empty(len(folded), dtype=bool)
    other = np.empty(len(folded), dtype=bool)
    parts = []
    for start in range(0, len(data), block):
        part = data[start:start + block]
        size = len(part)
        np.bitwise_or(part, 0x20, out=folded[:size])  # `[` and `]` as `{` and `}`
        np.equal(part, _QUOTE, out=found[:size])
        for bracket in (ord("{"), ord("}")):
            np.equal(folded[:size], bracket, out=other[:size])
            np.logical_or(found[:size], other[:size], out=found[:size])
        parts.append((np.flatnonzero(found[:size]) + start).astype(np.int32))
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int32)


def _without_escaped_quotes(data: np.ndarray, positions: np.ndarray, backslashes: np.ndarray) -> np.ndarray:
    """The events without the quotes that an odd run of backslashes escapes (a quote right after a backslash ends
    such a run or not; only those are looked at)."""
    after = backslashes + 1
    quoted = after[(after < len(data)) & (data[np.minimum(after, len(data) - 1)] == _QUOTE)]
    if not len(quoted):
        return positions
    run_starts = np.ones(len(backslashes), dtype=bool)
    run_starts[1:] = np.diff(backslashes) != 1
    first_of_run = np.maximum.accumulate(np.where(run_starts, np.arange(len(backslashes)), 0))
    last = np.searchsorted(backslashes, quoted - 1)  # the backslash just before each of those quotes
    escaped = quoted[(last - first_of_run[last]) % 2 == 0]  # after a run of odd length
    return np.delete(positions, np.searchsorted(positions, escaped))


def _followed_by_colon(data: np.ndarray, closes: np.ndarray) -> np.ndarray | None:
    """For each closing quote, whether the first byte after it that is not whitespace is a colon; None when
    whitespace runs on longer than _MAX_WHITESPACE_RUN."""
    size = len(data)
    after = np.minimum(closes + 1, size - 1)  # a string that ends the body is followed by nothing: its own quote
    following = data[after]
    is_key = following == _COLON
    pending = np.flatnonzero(_WHITESPACE[following] & (closes + 1 < size))
    for _ in range(_MAX_WHITESPACE_RUN):
        if not len(pending):
            return is_key
        after[pending] += 1
        pending = pending[after[pending] < size]
        following = data[after[pending]]
        is_key[pending] = following == _COLON
        pending = pending[_WHITESPACE[following]]
    return None


def _any_inside(places: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> bool:
    """Whether any of the places falls inside one of the spans (sorted, apart)."""
    span = np.maximum(np.searchsorted(starts, places, side="right") - 1, 0)
    return bool(np.any((places >= starts[span]) & (places < starts[span] + lengths[span])))


def _objects_of_keys(brackets_before: np.ndarray, steps: np.ndarray, depths: np.ndarray) -> np.ndarray | None:
    """For each key (given by how many brackets come before it), a number naming its object: the index, among the
    brackets, of the object's opener. The object left open after a bracket is the last opener at the depth after
    it (itself, for an opener); a key's object is the one the last bracket before it leaves open (a bracket inside
    a string, whose step is 0, leaves open what the bracket before it did). None when a key has none (not valid
    JSON)."""
    count = len(steps)
    openers = np.flatnonzero(steps > 0)
    by_depth = openers[np.argsort(depths[openers], kind="stable")]  # by depth, then by place
    stride = count + 1
    ranked = depths[by_depth] * stride + by_depth
    place = np.searchsorted(ranked, depths * stride + np.arange(count), side="right") - 1
    found = place >= 0
    found[found] = ranked[place[found]] // stride == depths[found]
    open_after = np.where(found, by_depth[np.maximum(place, 0)], -1)
    last_bracket = brackets_before - 1
    if np.any(last_bracket < 0):
        return None
    objects = open_after[last_bracket]
    return None if np.any(objects < 0) else objects


def _summaries(raw: bytes, starts: np.ndarray, lengths: np.ndarray, objects: np.ndarray) -> np.ndarray:
    """Each key's object, length and first and last eight bytes, mixed into one number: a key repeated in one
    object gives equal numbers; different keys, or keys of different objects, rarely do (keys longer than 16
    bytes that differ only in the middle always do), which the caller settles byte by byte."""
    if len(raw) < 8:
        raw = raw + bytes(8)
    words = np.ndarray(shape=(len(raw) - 7,), dtype="<u8", buffer=raw, strides=(1,))  # the 8 bytes from each place
    first = words[np.minimum(starts, len(raw) - 8)]
    for key in np.flatnonzero(starts > len(raw) - 8).tolist():  # a short key in the last 7 bytes
        first[key] = int.from_bytes(raw[starts[key]:starts[key] + 8], "little")
    first &= _LOW_BYTES[np.minimum(lengths, 8)]
    last = np.zeros(len(starts), dtype=np.uint64)
    long = np.flatnonzero(lengths > 8)
    last[long] = words[starts[long] + lengths[long] - 8]
    with np.errstate(over="ignore"):
        return (first * _MIX[0] + last * _MIX[1] + lengths.astype(np.uint64) * _MIX[2]
                + objects.astype(np.uint64) * _MIX[3])
