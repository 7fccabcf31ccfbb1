"""The columnar path of SkyPilot catalogs (pipeline.columnar): what pipeline.sources.skypilot.parse does, for a large
catalog, column by column. The cells are read by column (skypilot_cells); what a row's GPU is (skypilot_gpus.identity)
and the attributes it implies are worked out once per distinct set of cells that say it and joined back to the rows;
a plain price is read and divided by its GPU count in 128-bit integers (_plain_prices), any other cell by the readable
path's own _price. The rows are the same as parse() gives: tests/test_columnar.py and tests/test_columnar_prices.py
hold the two to it.
"""
from __future__ import annotations

import json
from decimal import Decimal

import polars as pl
import pyarrow as pa

from pipeline.catalog import Catalog, default_catalog
from pipeline.columnar import PARSED_SCHEMA, STORED_QUANTUM, ColumnarResult, frame_from_columns, to_scale
from pipeline.records import GPU, SPOT, ParseContext, ParseError, Rejection
from pipeline.sources.skypilot import PRICE_COLUMNS, _attributes, _price
from pipeline.sources.skypilot_cells import read_cells
from pipeline.sources.skypilot_gpus import Refusal, identity, once_per_value, reference_memories

# The cells that decide what a row's GPU is (the arguments of identity, in its order).
IDENTITY_CELLS = ["instancetype", "acceleratorname", "acceleratorcount", "gpuinfo", "upstreamcloudid"]


def parse_catalog_columns(raw: bytes, ctx: ParseContext, catalog: Catalog | None = None) -> ColumnarResult:
    """parse(), as columns (pipeline.columnar): the path of a large catalog."""
    if not ctx.provider:
        raise ParseError("a SkyPilot catalog does not name its cloud: the ParseContext must give the provider")
    catalog = catalog or default_catalog()
    provider = ctx.provider
    cells = read_cells(raw)
    price_columns = [(column, price_type) for column, price_type in PRICE_COLUMNS.items() if column in cells.columns]
    identities, gpus = _identities(cells.rows, provider, catalog, "gpuinfo" in cells.columns)
    label = pl.when(pl.col("instancetype") != "").then(pl.col("instancetype")).otherwise(
        "[" + pl.col("acceleratorname") + " x" + pl.col("acceleratorcount") + "]")
    # A price cell is plain (_PLAIN_PRICE, over a whole count) or not: the others are few, read as parse() reads them.
    plain = {column: pl.col(column).str.contains(_PLAIN_PRICE) & pl.col("_whole_count").is_not_null()
             for column, _ in price_columns}
    rows = cells.rows.join(identities, on=IDENTITY_CELLS, how="left", maintain_order="left").with_columns(
        _base_key=label + "|" + pl.col("region") + "|" + pl.col("availabilityzone"),
        **{f"_plain_{column}": plain[column] for column, _ in price_columns})
    rejections = list(cells.malformed)
    for base_key, reason, detail, line in rows.filter(pl.col("_reason").is_not_null()).select(
            "_base_key", "_reason", "_detail", "_line").iter_rows():
        rejections.append(Rejection.of(f"{base_key}|*", reason, detail, line))
    completed = {"region": pl.when(pl.col("region") != "").then(pl.col("region")),
                 "attributes": _with_zones(pl.col("_attributes"), rows["availabilityzone"])}
    good = rows.filter(pl.col("_reason").is_null()).with_columns(**completed)
    unusual = good.filter(pl.any_horizontal(~pl.col(f"_plain_{column}") & (pl.col(column) != "")
                                            for column, _ in price_columns))
    priced_of = once_per_value(_price)
    frames = []
    for position, (column, price_type) in enumerate(price_columns):
        frames.append(_plain_prices(good.lazy().filter(pl.col(f"_plain_{column}")), column, position, price_type))
        picked, prices, usd = [], [], []
        for k, (cell, is_plain, gpu, base_key, line) in enumerate(
                unusual.select(column, f"_plain_{column}", "_gpu", "_base_key", "_line").iter_rows()):
            priced = None if is_plain else priced_of(column, price_type, cell, gpus[gpu][2])
            if priced is None:
                continue
            if type(priced) is Refusal:
                rejections.append(Rejection.of(f"{base_key}|{price_type}", priced.reason, priced.detail, line))
                continue
            picked.append(k)
            prices.append(priced[0])
            usd.append(priced[1])
        if picked:
            chosen = unusual[picked]
            frames.append(frame_from_columns(len(picked), {
                "_seq": chosen["_number"] * 2 + position,
                "row_key": chosen["_base_key"] + f"|{price_type}",
                "price_type": price_type,
                "original_price": prices,
                "usd_price": usd,
                "source_instrument": chosen["acceleratorname"],
                **{name: chosen[name] for name in ("instrument", "region", "gpu_count", "attributes")},
                "instrument_kind": GPU, "original_currency": "USD", "original_unit": "instance_hour",
            }).lazy())
    # Sorted after the collect: polars sorts a collected frame faster than it sorts inside the query.
    observations = pl.concat(frames, how="vertical").with_columns(
        provider=pl.lit(provider, dtype=pl.String)).collect().sort("_seq")
    return ColumnarResult(observations, rejections)


def _identities(rows: pl.DataFrame, provider: str, catalog: Catalog, has_gpu_info: bool
                ) -> tuple[pl.DataFrame, list]:
    """One row per distinct set of IDENTITY_CELLS: its refusal (`_reason`, `_detail`) or its GPU (`instrument`,
    `gpu_count`, `_whole_count`, `_attributes` without the zone, `_gpu`: its place in the list returned beside).

    The memory reference (skypilot._single_gpu_memories) comes from the same distinct sets, in the order each first
    appears and weighted by its rows: the counts and the first-seen order reference_memories reads row by row."""
    distinct = rows.group_by(IDENTITY_CELLS, maintain_order=True).len("_rows")
    memory_reference = reference_memories(*(distinct[name].to_list() for name in (
        "acceleratorname", "acceleratorcount", "gpuinfo", "_rows"))) if has_gpu_info else {}
    distinct = distinct.drop("_rows")
    found = [identity(*cells, provider, catalog, memory_reference) for cells in distinct.iter_rows()]
    refusals = [f if type(f) is Refusal else None for f in found]
    gpus = [None if type(f) is Refusal else f for f in found]
    counts = [g and g[2] for g in gpus]
    attributes = [g and _attributes_json(_attributes(instance_type, g[1], "", upstream))
                  for g, instance_type, upstream in zip(gpus, distinct["instancetype"], distinct["upstreamcloudid"])]
    return distinct.with_columns(
        _reason=pl.Series([r and r.reason for r in refusals], dtype=pl.String),
        _detail=pl.Series([r and r.detail for r in refusals], dtype=pl.String),
        instrument=pl.Series([g and g[0] for g in gpus], dtype=pl.String),
        # as frame_from_columns holds a count (exact, or rounded half-even to the column's 18 places)
        gpu_count=pl.from_arrow(pa.array([to_scale(c, STORED_QUANTUM) for c in counts], type=pa.decimal128(38, 18))),
        # a whole count from 1 to 64, the counts for which the exact division below is proven equal to Decimal's
        _whole_count=pl.Series([int(c) if c is not None and c == c.to_integral_value() and 1 <= c <= 64 else None
                                for c in counts], dtype=pl.Int128),
        _attributes=pl.Series(attributes, dtype=pl.String),
        _gpu=pl.int_range(pl.len(), dtype=pl.Int64),
    ), gpus


def _attributes_json(attributes: dict) -> str:
    return json.dumps(attributes, sort_keys=True, separators=(",", ":"), default=str)  # Observation.attributes_json


def _with_zones(attributes: pl.Expr, zones: pl.Series) -> pl.Expr:
    """The attributes with each row's availability zone: its key sorts before every other one, so it opens the object
    (json.dumps of each distinct zone, as attributes_json writes it)."""
    distinct = zones.unique()
    encoded = [json.dumps(zone) for zone in distinct.to_list()]
    zone = pl.col("availabilityzone")
    return pl.when(zone != "").then(
        '{"availability_zone":' + zone.replace_strict(distinct, encoded, return_dtype=pl.String) + ","
        + attributes.str.slice(1)
    ).otherwise(attributes)


# A price cell read by column: up to 7 integer digits (under 10,000,000 USD an instance-hour) and up to 18 decimals,
# nothing else. For such a price and a whole GPU count c from 1 to 64, Decimal's price / c (rounded to 28 digits)
# then quantized half-even to 10 places equals the exact quotient rounded half-even to 10 places: the quotient is
# either a 10-place midpoint itself (then exact in 28 digits) or at least 1 / (128 x 10^18) from every midpoint,
# while rounding to 28 digits moves a value under 10^7 by at most 5 x 10^-22. So integer arithmetic gives the
# readable path's numbers exactly.
_PLAIN_PRICE = r"^[0-9]{1,7}(\.[0-9]{1,18})?$"


def _plain_prices(rows: pl.LazyFrame, column: str, position: int, price_type: str) -> pl.LazyFrame:
    """The observations of plain price cells (_PLAIN_PRICE) over whole counts, computed by column: the price read
    from its text, USD per GPU-hour = price / count rounded half-even to 10 places in 128-bit integers."""
    def big(number: int) -> pl.Expr:
        return pl.lit(number, dtype=pl.Int128)

    parts = pl.col(column).str.split_exact(".", 1)
    frame = rows.with_columns(
        _units=parts.struct.field("field_0").cast(pl.Int128) * big(10**18)
        + parts.struct.field("field_1").fill_null("").str.pad_end(18, "0").cast(pl.Int128))
    if price_type == SPOT:
        frame = frame.filter(pl.col("_units") != big(0))  # 0.00 spot = no spot offer
    divisor = pl.col("_whole_count") * big(10**8)
    quotient, remainder = pl.col("_units") // divisor, pl.col("_units") % divisor
    rounds_up = (big(2) * remainder > divisor) | ((big(2) * remainder == divisor) & (quotient % big(2) == big(1)))
    # the quotient counts units of 1e-10 USD: times Decimal 1e-10, an exact product, it is that Decimal
    usd = (quotient + rounds_up.cast(pl.Int128)).cast(pl.Decimal(38, 0)) * pl.lit(Decimal("1E-10"), pl.Decimal(38, 10))
    given = {
        "_seq": pl.col("_number") * 2 + position,
        "row_key": pl.col("_base_key") + f"|{price_type}",
        "instrument_kind": pl.lit(GPU),
        "instrument": pl.col("instrument"),
        "source_instrument": pl.col("acceleratorname"),
        "price_type": pl.lit(price_type),
        "region": pl.col("region"),
        "gpu_count": pl.col("gpu_count"),
        "original_price": pl.col(column).cast(pl.Decimal(38, 18)),
        "original_currency": pl.lit("USD"),
        "original_unit": pl.lit("instance_hour"),
        "usd_price": usd,
        "attributes": pl.col("attributes"),
    }
    return frame.select([given.get(name, pl.lit(None)).cast(dtype).alias(name)
                         for name, dtype in PARSED_SCHEMA.items()])
