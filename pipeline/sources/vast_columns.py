"""Vast offers read by column: vast.parse_columns, the path of a large body (pipeline.columnar), with the rows of
vast.parse().

The body is decoded by msgspec into Offer records that hold only what a row needs (jsonbody.fast_records, which
declines any body that it might read otherwise than load_json; such a body is decoded by load_json, as parse()
decodes it, and its offers are converted into the same records). An offer of the usual shape with nothing to refuse
(an int id, a GPU name the catalog knows, num_gpus from 1 to MAX_NUM_GPUS, rentable not false, dph_total a number
and min_bid a number or null, from 0 to below PER_UNIT_PRICE_LIMIT, with at most 18 decimals) becomes its rows by
column, each GPU name and memory size resolved once; every other offer is read by vast._parse_offer, as parse()
reads it, rejections and all. A body that repeats a key anywhere is read by parse() whole (its offers need
conflicting_keys).

The prices are kept as the text the body wrote (msgspec.Raw) and read by Arrow when plain (digits, a point, no
exponent: Arrow reads those exactly); any other text is read by load_json, one value at a time.

The attributes of a row are its Offer encoded by msgspec: the Offer's first fields are the attribute keys in the
order json.dumps(sort_keys=True) writes them, and the rest is set to None first, which omit_defaults leaves out.
msgspec writes ASCII text, integers, booleans and Decimals (as strings of their text) as json.dumps writes them; the
characters json.dumps escapes and msgspec does not (beyond ASCII, and DEL) are escaped after, as json.dumps does, and
a row with a nested object or list (which an attribute never keeps) is written by json.dumps.
"""
from __future__ import annotations

import codecs
import json
from dataclasses import dataclass
from decimal import Decimal
from json.encoder import encode_basestring_ascii
from typing import Annotated, Any

import msgspec
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.catalog import Catalog, default_catalog
from pipeline.columnar import (
    PER_UNIT_PRICE_LIMIT,
    STORED_QUANTUM,
    ColumnarResult,
    concat_frames,
    frame_from_arrays,
    frame_from_observations,
    usd_per_unit,
)
from pipeline.records import GPU, SPOT, ParseContext, ParseResult, read_decimal
from pipeline.sources.jsonbody import fast_records, json_records, load_json, load_json_with_repeats, record_bytes
from pipeline.sources.vast import KEPT_FIELDS, MAX_NUM_GPUS, PROVIDER, _nominal_mib, _parse_offer

WHAT = "Vast.ai response"
ATTRIBUTES = sorted({*KEPT_FIELDS, "offer_id", "gpu_name", "gpu_memory_mib"})


def _offer_type(name: str, price: object) -> type:
    """An offer's record: every field defaults to None, the value of an absent key as offer.get() reads it. Not
    tracked by the garbage collector: a decoded JSON value holds no cycle."""
    typed = {"gpu_name": str, "id": int, "num_gpus": Annotated[int, msgspec.Meta(ge=1, le=MAX_NUM_GPUS)],
             "dph_total": price, "min_bid": price}
    fields = (*ATTRIBUTES, "id", "num_gpus", "dph_total", "min_bid", "rentable")
    return msgspec.defstruct(name, [(field, typed.get(field, Any), None) for field in fields],
                             kw_only=True, omit_defaults=True, gc=False)


Offer = _offer_type("Offer", msgspec.Raw)  # decoded from the body: prices as written
_ConvertedOffer = _offer_type("ConvertedOffer", Any)  # converted from load_json's offer: prices as it read them
_ENCODER = msgspec.json.Encoder()
_DECIMAL = pa.decimal128(38, 18)
_PRICE_TYPES = pa.array(["on_demand", "spot"])
_NULL = b"null"
# A price text Arrow reads exactly into DECIMAL(38, 18) and that is below PER_UNIT_PRICE_LIMIT.
_PLAIN_PRICE = r"^-?(0|[1-9][0-9]{0,7})(\.[0-9]{1,18})?$"


def parse_offer_columns(raw: bytes, ctx: ParseContext, catalog: Catalog | None = None) -> ColumnarResult:
    catalog = catalog or default_catalog()
    provider = ctx.provider or PROVIDER
    records, record_type, read_prices = fast_records(raw, Offer, "offers"), Offer, _price_texts
    if records is not None:
        spans: list[bytes] = []

        def original(index: int) -> object:  # the offer as load_json reads it
            if type(records[index]) is bytes:
                return load_json(records[index], WHAT)
            if not spans:
                spans.extend(record_bytes(raw, "offers"))
            return load_json(spans[index], WHAT)
    else:
        body, repeats = load_json_with_repeats(raw, WHAT)
        offers = json_records(body, WHAT, "offers", "offers")
        if repeats:  # every offer needs conflicting_keys: parse() reads it
            result = ParseResult()
            for number, offer in enumerate(offers, start=1):
                _parse_offer(number, offer, provider, catalog, result)
            return ColumnarResult(frame_from_observations(result.observations), result.rejections)
        records, record_type, read_prices = [_converted(offer) for offer in offers], _ConvertedOffer, _price_values
        original = offers.__getitem__
    if set(map(type, records)) == {record_type}:
        usual = _usual(list(range(len(records))), records, read_prices, provider, catalog)
    else:
        typed = [index for index, record in enumerate(records) if type(record) is record_type]
        usual = _usual(typed, [records[index] for index in typed], read_prices, provider, catalog)
    frame = usual.frame(provider)
    if len(usual.indices) == len(records):
        return ColumnarResult(frame)
    result = ParseResult()  # the other offers', read one by one
    seqs: list[int] = []
    for index in sorted(set(range(len(records))) - set(usual.indices)):
        before = len(result.observations)
        _parse_offer(index + 1, original(index), provider, catalog, result)
        seqs.extend(2 * (index + 1) + (obs.price_type == SPOT) for obs in result.observations[before:])
    return ColumnarResult(concat_frames([frame_from_observations(result.observations, seqs), frame]),
                          result.rejections)


def _converted(offer: object) -> object:
    try:
        return msgspec.convert(offer, _ConvertedOffer)
    except msgspec.ValidationError:
        return offer


@dataclass
class _Usual:
    """The offers of the usual shape with nothing to refuse, and what their rows need, one value per offer."""

    indices: list[int]  # places in the body, from 0
    offers: list
    ids: list[int]
    counts: list[int]
    memories: list[int | None]
    names: pa.Array
    instruments: pa.Array
    regions: pa.Array
    prices: pa.Array  # DECIMAL(38, 18)
    bids: pa.Array  # DECIMAL(38, 18), null for none

    def frame(self, provider: str) -> pl.DataFrame:
        """The rows, in body order: each offer's on-demand row, then its spot row when it has a bid."""
        count = len(self.indices)
        ids = list(map(str, self.ids))
        attributes = _attributes(self.offers, ids, self.memories)
        has_spot = _flags(pc.not_equal(self.bids, 0), False)
        per_offer = 1 + has_spot.astype(np.int64)
        offer_of_row = np.repeat(np.arange(count), per_offer)
        is_spot = np.zeros(len(offer_of_row), dtype=bool)
        is_spot[np.cumsum(per_offer)[has_spot] - 1] = True
        price_types = _PRICE_TYPES.take(is_spot.astype(np.int8))
        prices = pa.concat_arrays([self.prices, self.bids]).take(offer_of_row + count * is_spot)
        counts = np.asarray(self.counts, dtype=np.int64)[offer_of_row]
        numbers = np.asarray(self.indices, dtype=np.int64)[offer_of_row] + 1
        return frame_from_arrays(len(offer_of_row), {
            "_seq": pa.array(2 * numbers + is_spot),
            "row_key": pc.binary_join_element_wise(pa.array(ids, pa.string()).take(offer_of_row), price_types, "|"),
            "provider": provider,
            "instrument_kind": GPU,
            "instrument": self.instruments.take(offer_of_row),
            "source_instrument": self.names.take(offer_of_row),
            "price_type": price_types,
            "region": self.regions.take(offer_of_row),
            "gpu_count": pa.array(counts).cast(_DECIMAL),
            "original_price": prices,
            "original_currency": "USD",
            "original_unit": "offer_hour",
            "usd_price": usd_per_unit(prices, counts),
            "attributes": attributes.take(offer_of_row),
        })


def _usual(indices: list[int], offers: list, read_prices, provider: str, catalog: Catalog) -> _Usual:
    """Which of the offers (records, with their places in the body) are of the usual shape with nothing to refuse,
    and what their rows need: the rules of vast._parse_offer, each over a whole column, each GPU name and memory
    size resolved once. `read_prices` is _price_texts or _price_values, as the records hold prices."""
    ids = [offer.id for offer in offers]
    counts = [offer.num_gpus for offer in offers]
    rentables = [offer.rentable for offer in offers]
    keep = np.ones(len(offers), dtype=bool)
    if None in ids or None in counts:
        keep &= np.array([offer_id is not None and count is not None
                          for offer_id, count in zip(ids, counts)], dtype=bool)
    if False in rentables:  # == False: 0 as well, told apart here
        keep &= np.array([rentable is not False for rentable in rentables], dtype=bool)
    prices, usual_prices = read_prices([offer.dph_total for offer in offers], spot=False)
    bids, usual_bids = read_prices([offer.min_bid for offer in offers], spot=True)
    keep &= usual_prices & usual_bids

    names = pa.array([offer.gpu_name for offer in offers], pa.string())
    name_codes, distinct_names = _codes(names)
    ram_codes, distinct_rams = _value_codes([offer.gpu_ram for offer in offers])
    distinct_memories = [_nominal_mib(ram) for ram in distinct_rams]
    pairs, pair_of_offer = _distinct(name_codes * len(distinct_rams) + ram_codes,
                                     len(distinct_names) * len(distinct_rams))
    instruments = []
    for pair in pairs.tolist():
        name, memory = distinct_names[pair // len(distinct_rams)], distinct_memories[pair % len(distinct_rams)]
        instruments.append(catalog.resolve_gpu(name, provider=provider, instance_type=name, gpu_memory_mib=memory)
                           .canonical if type(name) is str and name.strip() else None)
    keep &= np.array([instrument is not None for instrument in instruments], dtype=bool)[pair_of_offer]
    usual = _Usual(indices, offers, ids, counts, [distinct_memories[code] for code in ram_codes.tolist()],
                   names, pa.array(instruments, pa.string()).take(pair_of_offer),
                   _texts_or_null([offer.geolocation for offer in offers]), prices, bids)
    if keep.all():
        return usual
    chosen = np.flatnonzero(keep)

    def pick(values: list) -> list:
        return [values[i] for i in chosen.tolist()]

    return _Usual(pick(usual.indices), pick(usual.offers), pick(usual.ids), pick(usual.counts),
                  pick(usual.memories), *(array.take(chosen) for array in (
                      usual.names, usual.instruments, usual.regions, usual.prices, usual.bids)))


def _distinct(codes: np.ndarray, bound: int) -> tuple[np.ndarray, np.ndarray]:
    """np.unique(codes, return_inverse=True) of codes from 0 to below `bound`: by a table when the bound is small
    (a few GPU names times a few memory sizes), by a sort when it is not (a body of as many names as offers)."""
    if bound > 4 * len(codes) + 4096:
        distinct, place = np.unique(codes, return_inverse=True)
        return distinct, place.reshape(-1)
    present = np.zeros(bound, dtype=bool)
    present[codes] = True
    distinct = np.flatnonzero(present)
    place = np.zeros(bound, dtype=np.int64)
    place[distinct] = np.arange(len(distinct))
    return distinct, place[codes]


def _value_codes(values: list) -> tuple[np.ndarray, list]:
    """(each value's index among the distinct values, the distinct values): Arrow's dictionary encoding for a
    column of integers (None among them), else one value at a time, by type and value (True equals 1 as a key,
    but is no memory size)."""
    if set(map(type, values)) <= {int, type(None)}:
        try:
            return _codes(pa.array(values, pa.int64()))
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):  # an integer beyond 64 bits
            pass
    seen: dict = {}
    distinct: list = []
    codes = np.empty(len(values), dtype=np.int64)
    for index, value in enumerate(values):
        try:
            key = (type(value), value)
            code = seen.get(key)
        except TypeError:  # unhashable: a value of its own
            key = code = None
        if code is None:
            code = len(distinct)
            distinct.append(value)
            if key is not None:
                seen[key] = code
        codes[index] = code
    return codes, distinct


def _codes(array: pa.Array) -> tuple[np.ndarray, list]:
    """_value_codes of an Arrow array (null a value of its own)."""
    encoded = pc.dictionary_encode(array, null_encoding="encode")
    return encoded.indices.to_numpy().astype(np.int64), encoded.dictionary.to_pylist()


def _texts_or_null(values: list) -> pa.Array:
    """The values that are text, null for any other."""
    if set(map(type, values)) <= {str, type(None)}:
        return pa.array(values, pa.string())
    return pa.array([value if type(value) is str else None for value in values], pa.string())


def _price_values(values: list, spot: bool) -> tuple[pa.Array, np.ndarray]:
    """(the prices as DECIMAL(38, 18), null where not usual or absent; whether each offer's price is usual): a number,
    not a bool, read_decimal's, from 0 to below PER_UNIT_PRICE_LIMIT with at most 18 decimals; for the spot price,
    also none at all (no interruptible offer). `values` as load_json reads them."""
    try:
        array = pa.array(values, type=_DECIMAL)  # ints, Decimals and None only (a bool is refused as well)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        usual = np.array([_usual_price(value, spot) for value in values], dtype=bool)
        return pa.array([value if ok else None for value, ok in zip(values, usual.tolist())], type=_DECIMAL), usual
    usual = pc.and_(pc.greater_equal(array, 0), pc.less(array, PER_UNIT_PRICE_LIMIT))
    return array, _flags(usual, spot)


def _price_texts(values: list, spot: bool) -> tuple[pa.Array, np.ndarray]:
    """_price_values of the texts of the values (msgspec.Raw, None for absent): the plain ones read by Arrow at
    once, null as none, any other by load_json."""
    if None in values:
        values = [_NULL if value is None else value for value in values]
    lengths = np.fromiter(map(len, values), dtype=np.int64, count=len(values))
    offsets = np.zeros(len(values) + 1, dtype=np.int32)
    np.cumsum(lengths, out=offsets[1:])
    texts = pa.StringArray.from_buffers(len(values), pa.py_buffer(offsets), pa.py_buffer(b"".join(values)))
    plain = pc.match_substring_regex(texts, _PLAIN_PRICE)
    array = pc.if_else(plain, texts, pa.scalar(None, pa.string())).cast(_DECIMAL)
    usual = _flags(pc.greater_equal(array, 0), False)
    null = _flags(pc.equal(texts, "null"), False)
    if spot:
        usual |= null
    others = np.flatnonzero(~(_flags(plain, False) | null))
    if not len(others):
        return array, usual
    patch: list = [None] * len(values)
    for index in others.tolist():
        value = load_json(bytes(values[index]), WHAT)
        usual[index] = _usual_price(value, spot)
        if usual[index]:
            patch[index] = read_decimal(value)
    patched = np.zeros(len(values), dtype=bool)
    patched[others] = True
    return pc.if_else(pa.array(patched), pa.array(patch, type=_DECIMAL), array), usual


def _flags(array: pa.Array, null: bool) -> np.ndarray:
    """A boolean Arrow array as numpy's, null as `null`."""
    return pc.fill_null(array, null).to_numpy(zero_copy_only=False).astype(bool, copy=False)


def _usual_price(value: object, spot: bool) -> bool:
    if value is None:
        return spot
    if type(value) is not int and type(value) is not Decimal:
        return False
    number = read_decimal(value)
    return (number is not None and 0 <= number < PER_UNIT_PRICE_LIMIT
            and number == number.quantize(STORED_QUANTUM))


def _attributes(offers: list, ids: list[str], memories: list) -> pa.Array:
    """Each offer's attributes as Observation.attributes_json writes them (see the module's docstring)."""
    for offer, offer_id, memory in zip(offers, ids, memories):
        offer.offer_id, offer.gpu_memory_mib = offer_id, memory
        offer.id = offer.num_gpus = offer.dph_total = offer.min_bid = offer.rentable = None
    lines = _ENCODER.encode_lines(offers)
    if not lines.isascii() or b"\x7f" in lines:  # written as json.dumps escapes them
        lines = lines.decode("utf-8").replace("\x7f", "\\u007f").encode("ascii", _JSON_ESCAPES)
    nested = _rows_with_brackets(lines, len(offers))
    if not nested:  # the lines as one Arrow array, without their newlines
        ends = np.flatnonzero(np.frombuffer(lines, dtype=np.uint8) == ord("\n"))
        offsets = np.zeros(len(offers) + 1, dtype=np.int32)
        offsets[1:] = ends - np.arange(len(offers))
        return pa.StringArray.from_buffers(len(offers), pa.py_buffer(offsets), pa.py_buffer(lines.replace(b"\n", b"")))
    texts = lines.decode("ascii").split("\n")[:-1]
    for row in nested:
        attributes = {name: value for name in ATTRIBUTES
                      if isinstance(value := getattr(offers[row], name), (str, int, Decimal))}
        texts[row] = json.dumps(attributes, sort_keys=True, separators=(",", ":"), default=str)
    return pa.array(texts, pa.string())


def _json_escapes(error: UnicodeEncodeError) -> tuple[str, int]:
    """What json.dumps writes for the characters beyond ASCII an encoding to ASCII stopped at: \\u00e9, and a
    surrogate pair for one beyond the BMP."""
    return encode_basestring_ascii(error.object[error.start:error.end])[1:-1], error.end


_JSON_ESCAPES = "vast-columns-json-escapes"
codecs.register_error(_JSON_ESCAPES, _json_escapes)


def _rows_with_brackets(lines: bytes, count: int) -> list[int]:
    """The rows of msgspec's `count` lines with a bracket after the one that opens the row: a nested value, which an
    attribute never keeps (or a string that holds a bracket, written again to no harm). Single bytes are looked
    for: a search of two costs ten times more."""
    if lines.count(b"{") == count and b"[" not in lines:
        return []
    data = np.frombuffer(lines, dtype=np.uint8)
    starts = np.concatenate([[0], np.flatnonzero(data == ord("\n"))[:-1] + 1])
    marks = np.setdiff1d(np.flatnonzero((data | 0x20) == ord("{")), starts)
    return np.unique(np.searchsorted(starts, marks, side="right") - 1).tolist()
