"""Observations as columns: the path a large body takes from its parser to the warehouse (issue 11, item 8).

A parser's readable path gives one Observation object per row (pipeline.records); for a marketplace body of
100,000 offers that costs more in objects than in reading: a dataclass per row, a dict per row for the frame, a
json.dumps per row for the attributes. The columnar path of a source (its `parse_columns`) gives the same rows
as one frame instead, built column by column, and the shared checks run over that frame
(pipeline.normalise.check_columns). Both paths give the same observations and rejections: tests/test_columnar.py
compares them on every body of the corpus (real files, demo recordings, hostile cases, synthetic marketplaces).

JSON is still decoded by the standard library: polars' and DuckDB's JSON readers go through binary doubles
(polars reads 0.6951851851851852 into DECIMAL(38,18) as 0.695185185185185280, and DuckDB prints
0.30000000000000001 as 0.3), and a price must be the number the source wrote. What comes after the decode is
columnar: values taken out by column, work done once per distinct value (a GPU name, a memory size), frames built
through Arrow, checks and the load in polars and DuckDB.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.records import MAX_MAGNITUDE, FxRate, Observation, Rejection

# The columns of a parsed frame (before the shared checks), typed as the warehouse will hold them; `_seq` is the
# row's place in the body, which decides which copy of an identical repeated row is kept.
PARSED_SCHEMA: dict[str, pl.DataType] = {
    "_seq": pl.Int64,
    "row_key": pl.String,
    "provider": pl.String,
    "instrument_kind": pl.String,
    "instrument": pl.String,
    "source_instrument": pl.String,
    "price_type": pl.String,
    "region": pl.String,
    "gpu_count": pl.Decimal(38, 18),
    "original_price": pl.Decimal(38, 18),
    "original_currency": pl.String,
    "original_unit": pl.String,
    "usd_price": pl.Decimal(20, 10),
    "attributes": pl.String,  # JSON text, as Observation.attributes_json writes it
    "segment": pl.String,
    "valid_from": pl.Date,
    "valid_to": pl.Date,
    "price_in_currency": pl.Decimal(38, 18),
    "fx_usd_per_unit": pl.Decimal(20, 10),
    "fx_rate_date": pl.Date,
}
_ARROW_TYPES: dict[str, pa.DataType] = {
    "_seq": pa.int64(),
    "gpu_count": pa.decimal128(38, 18),
    "original_price": pa.decimal128(38, 18),
    "usd_price": pa.decimal128(20, 10),
    "valid_from": pa.date32(),
    "valid_to": pa.date32(),
    "price_in_currency": pa.decimal128(38, 18),
    "fx_usd_per_unit": pa.decimal128(20, 10),
    "fx_rate_date": pa.date32(),
}


@dataclass
class ColumnarResult:
    """What a columnar parse gives: the observations as one frame (PARSED_SCHEMA), the rejections as records
    (there are few), and FX rates (FX sources only)."""

    observations: pl.DataFrame
    rejections: list[Rejection] = field(default_factory=list)
    fx_rates: list[FxRate] = field(default_factory=list)


def empty_frame() -> pl.DataFrame:
    return pl.DataFrame(schema=PARSED_SCHEMA)


def frame_from_columns(length: int, columns: dict[str, object]) -> pl.DataFrame:
    """A parsed frame from column values: a list, an Arrow array or a polars Series per column, or one value
    repeated on every row. Columns not given are null. Decimals go through Arrow (five times faster than polars'
    own conversion); a value Arrow cannot hold at the column's scale without loss goes through polars, which
    rounds it as the readable path's load does."""
    arrays = {}
    for name, dtype in PARSED_SCHEMA.items():
        value = columns.get(name)
        arrow_type = _ARROW_TYPES.get(name, pa.string())
        if isinstance(value, pl.Series):
            arrays[name] = value.cast(dtype)
            continue
        if isinstance(value, pa.Array) and value.type == arrow_type:
            arrays[name] = pl.from_arrow(value)
            continue
        if not isinstance(value, list):
            arrays[name] = pl.repeat(value, length, dtype=dtype, eager=True)
            continue
        values = value
        if len(values) != length:
            raise ValueError(f"column {name} has {len(values)} values for {length} rows")
        try:
            arrays[name] = pl.from_arrow(pa.array(values, type=arrow_type))
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            if not isinstance(dtype, pl.Decimal):
                raise
            # More decimals than the column keeps: rounded half-even to its scale here, one value at a time
            # (polars' own conversion takes one scale for the whole list and turns the other values to null).
            quantum = Decimal(1).scaleb(-dtype.scale)
            arrays[name] = pl.from_arrow(pa.array([to_scale(v, quantum) for v in values], type=arrow_type))
    return pl.DataFrame([series.alias(name) for name, series in arrays.items()])


STORED_QUANTUM = Decimal("1E-18")  # the scale of original_price, gpu_count and price_in_currency


def to_scale(value: Decimal | None, quantum: Decimal) -> Decimal | None:
    """A Decimal at the scale of its column, rounded half-even; a zero without its sign (a column has no -0)."""
    if value is None or not isinstance(value, Decimal):
        return value
    rounded = value.quantize(quantum, rounding=ROUND_HALF_EVEN)
    return rounded.copy_abs() if rounded.is_zero() else rounded


def frame_from_observations(observations: Sequence[Observation], seqs: Sequence[int] | None = None) -> pl.DataFrame:
    """The readable path's Observation objects as a parsed frame (the records a columnar parser hands to its
    readable twin, and the tests' comparisons). `seqs` gives each its place in the body."""
    rows = list(observations)
    columns: dict[str, object] = {
        name: [getattr(o, name) for o in rows] for name in PARSED_SCHEMA if name not in ("_seq", "attributes")
    }
    columns["_seq"] = list(seqs) if seqs is not None else list(range(len(rows)))
    columns["attributes"] = [o.attributes_json() for o in rows]
    return frame_from_columns(len(rows), columns)


def concat_frames(frames: Iterable[pl.DataFrame]) -> pl.DataFrame:
    """One parsed frame, in body order."""
    frames = [f for f in frames if f.height]
    if not frames:
        return empty_frame()
    return pl.concat(frames, how="vertical").sort("_seq")


def checked_prices(values: list) -> pa.Array | None:
    """The numbers of a column (int or Decimal, None for absent) as DECIMAL(38, 18) when every one is a price the
    readers accept (records.read_decimal: finite, at most 1e9) and fits the column without rounding; None when
    one does not, and the caller reads them one by one. One conversion checks them all."""
    try:
        array = pa.array(values, type=pa.decimal128(38, 18))
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        return None
    largest = pc.max(pc.abs(array)).as_py() if len(array) else None
    return array if largest is None or largest <= MAX_MAGNITUDE else None


# --- attributes as JSON text, column by column --------------------------------------------------------------


def json_fragments(values: list) -> list[str | None]:
    """Each value as Observation.attributes_json writes it inside the object (json.dumps with default=str: a
    Decimal as a JSON string of its text, an int or bool as a JSON number or literal, a str escaped), or None
    for a value an attribute does not keep (absent, None, a nested object). A column of one type, as real bodies
    have, is converted at C speed; a mixed one value by value."""
    kinds = set(map(type, values))
    absent = type(None) in kinds
    kinds.discard(type(None))
    if not kinds:
        return [None] * len(values)
    if kinds <= {str}:
        return list(map(_ENCODE_STRING, values)) if not absent else [
            None if v is None else _ENCODE_STRING(v) for v in values]
    if kinds <= {int}:
        return list(map(int.__repr__, values)) if not absent else [
            None if v is None else int.__repr__(v) for v in values]
    if kinds <= {Decimal}:
        return list(map(_ENCODE_STRING, map(str, values))) if not absent else [
            None if v is None else _ENCODE_STRING(str(v)) for v in values]
    return [_fragment(v) for v in values]


_ENCODE_STRING = json.encoder.encode_basestring_ascii  # what json.dumps uses for a str (ensure_ascii)


def _fragment(value: object) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, str):
        return _ENCODE_STRING(value)
    if isinstance(value, Decimal):
        return _ENCODE_STRING(str(value))
    return None


def attributes_column(fragments: dict[str, list[str | None]], length: int) -> pl.Series:
    """A JSON object per row from per-key fragments (None: the key is absent on that row), keys sorted as
    json.dumps(sort_keys=True) sorts them, no spaces: the text Observation.attributes_json gives."""
    if not fragments:
        return pl.Series("attributes", ["{}"] * length, dtype=pl.String)
    keys = sorted(fragments)
    frame = pl.DataFrame({f"k{n}": pl.Series(fragments[key], dtype=pl.String) for n, key in enumerate(keys)})
    parts = [pl.lit(_ENCODE_STRING(key) + ":") + pl.col(f"k{n}") for n, key in enumerate(keys)]
    body = pl.concat_str(parts, separator=",", ignore_nulls=True)
    return frame.select(("{" + body + "}").alias("attributes"))["attributes"]
