"""Observations as columns: the path a large body takes from its parser to the warehouse (issue 11, item 8).

A parser's readable path gives one Observation object per row (pipeline.records); for a marketplace body of
100,000 offers that costs more in objects than in reading: a dataclass per row, a dict per row for the frame, a
json.dumps per row for the attributes. The columnar path of a source (its `parse_columns`) gives the same rows
as one frame instead, built column by column, and the shared checks run over that frame
(pipeline.normalise.check_columns). Both paths give the same observations and rejections: tests/test_columnar.py
compares them on every body of the corpus (real files, demo recordings, hostile cases, synthetic marketplaces).

JSON is decoded by msgspec (pipeline.sources.jsonbody.fast_records: numbers as the Decimal of their text, or the
text itself) or by the standard library, never by polars' and DuckDB's JSON readers, which go through binary doubles
(polars reads 0.6951851851851852 into DECIMAL(38,18) as 0.695185185185185280, and DuckDB prints
0.30000000000000001 as 0.3): a price must be the number the source wrote. What comes after the decode is
columnar: values taken out by column, work done once per distinct value (a GPU name, a memory size), prices divided
per GPU in integers (usd_per_unit), frames built through Arrow, checks and the load in polars and DuckDB.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal

import numpy as np
import polars as pl
import pyarrow as pa

from pipeline.records import FxRate, Observation, Rejection

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


def frame_from_arrays(length: int, columns: dict[str, object]) -> pl.DataFrame:
    """A parsed frame from Arrow arrays already of their column's Arrow type (pa.string() for text), or one value
    repeated on every row; columns not given are null. One conversion to polars for the whole frame, where
    frame_from_columns converts column by column (a fixed cost that is much of a small body's)."""
    arrays = []
    for name in PARSED_SCHEMA:
        arrow_type = _ARROW_TYPES.get(name, pa.string())
        value = columns.get(name)
        if isinstance(value, pa.Array):
            if value.type != arrow_type or len(value) != length:
                raise ValueError(f"column {name} is {len(value)} x {value.type}, not {length} x {arrow_type}")
            arrays.append(value)
        elif value is None:
            arrays.append(pa.nulls(length, arrow_type))
        else:
            arrays.append(pa.array([value], type=arrow_type).take(np.zeros(length, dtype=np.int64)))
    return pl.from_arrow(pa.table(arrays, names=list(PARSED_SCHEMA)))


# usd_per_unit rounds the exact quotient; the readable path (quantize_usd(price / count)) rounds one already rounded
# to 28 significant digits. Both agree for prices below this: a quotient under 1e8 is then within 0.5e-20 of the
# exact one, while a quotient of a price of 18 decimals by a count of at most 64 that is not a half-way point of the
# 10th place is at least 1 / 64e18 (over 1.5e-20) away from every one of them.
PER_UNIT_PRICE_LIMIT = Decimal("1E8")
_UNITS_OF_QUANTUM = 10 ** 8  # one USD_PRICE_QUANTUM (1e-10) in STORED_QUANTUM (1e-18) units


def usd_per_unit(prices: pa.Array, counts: np.ndarray) -> pa.Array:
    """quantize_usd(price / count) for each row (half-even to 10 places: DECIMAL(20, 10)), in integers: `prices`
    DECIMAL(38, 18) without nulls, each from 0 to below PER_UNIT_PRICE_LIMIT (so below 2**87 in 1e-18 units);
    `counts` whole numbers from 1 to 64. The long division runs in 31-bit digits so that no step exceeds 64 bits
    (the divisor, count * 1e8, is below 2**33)."""
    prices = prices.cast(pa.decimal128(38, 18))
    words = np.frombuffer(prices.buffers()[1], dtype="<u8")[2 * prices.offset:2 * (prices.offset + len(prices))]
    low, high = words[0::2], words[1::2]
    if np.any(high >= np.uint64(1 << 23)):  # the three digits below hold 93 bits
        raise ValueError("a price is negative or beyond 2**87 units of 1e-18")
    divisor = counts.astype(np.uint64) * np.uint64(_UNITS_OF_QUANTUM)
    digit_mask, thirty_one = np.uint64((1 << 31) - 1), np.uint64(31)
    digits = ((high << np.uint64(2)) | (low >> np.uint64(62)),  # bits 62 to 86, then 31 to 61, then 0 to 30
              ((high << np.uint64(33)) | (low >> thirty_one)) & digit_mask,
              low & digit_mask)
    quotient = np.zeros(len(prices), dtype=np.uint64)
    remainder = np.zeros(len(prices), dtype=np.uint64)
    for digit in digits:
        current = (remainder << thirty_one) | digit
        step = current // divisor
        remainder = current - step * divisor
        quotient = (quotient << thirty_one) | step
    twice = remainder * np.uint64(2)
    quotient += (twice > divisor) | ((twice == divisor) & (quotient & np.uint64(1) == 1))
    unscaled = np.zeros((len(prices), 2), dtype=np.uint64)
    unscaled[:, 0] = quotient
    return pa.Array.from_buffers(pa.decimal128(20, 10), len(prices), [None, pa.py_buffer(unscaled)])


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
