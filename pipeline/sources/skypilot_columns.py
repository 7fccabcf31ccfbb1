"""The columnar path of SkyPilot catalogs (pipeline.columnar): what pipeline.sources.skypilot.parse does, for a large
catalog, column by column. The catalog is read by the same reader (skypilot._read_rows); what a row's GPU is
(skypilot._identity) is worked out once per distinct set of cells that say it; a plain price is read and divided by
its GPU count in 128-bit integers (_plain_prices), any other cell by the readable path's own _price. The rows are the
same as parse() gives: tests/test_columnar.py and tests/test_columnar_prices.py hold the two to it.
"""
from __future__ import annotations


import polars as pl

from pipeline.catalog import Catalog, default_catalog
from pipeline.columnar import (
    PARSED_SCHEMA,
    ColumnarResult,
    attributes_column,
    concat_frames,
    empty_frame,
    frame_from_columns,
    json_fragments,
)
from pipeline.records import GPU, SPOT, ParseContext, ParseError, Rejection
from pipeline.sources.skypilot import (
    PRICE_COLUMNS,
    _column,
    _identity,
    _instance_label,
    _memo,
    _memory_reference,
    _price,
    _read_rows,
    _Refusal,
)


def parse_catalog_columns(raw: bytes, ctx: ParseContext, catalog: Catalog | None = None) -> ColumnarResult:
    """parse(), as columns (pipeline.columnar): the path of a large catalog. The body is read by the same reader;
    what a row's GPU is (_identity) is worked out once per distinct set of cells that say it, a price cell once
    per distinct text and count; the rows are then assembled column by column."""
    if not ctx.provider:
        raise ParseError("a SkyPilot catalog does not name its cloud: the ParseContext must give the provider")
    catalog = catalog or default_catalog()
    provider = ctx.provider
    rows, columns = _read_rows(raw)
    rejections: list[Rejection] = []
    numbers, lines, whole = [], [], []
    for number, (line, cells) in enumerate(rows, start=1):
        if len(cells) != len(columns):
            rejections.append(Rejection.of(f"row {number}|malformed", "malformed_row",
                                           f"row has {len(cells)} fields, the header has {len(columns)}",
                                           line.rstrip("\r\n")))
            continue
        numbers.append(number)
        lines.append(line)
        whole.append(cells)
    instance_types, accelerators, count_texts, regions, zones, gpu_infos, upstreams = (
        _column(whole, columns, name) for name in (
            "instancetype", "acceleratorname", "acceleratorcount", "region", "availabilityzone", "gpuinfo",
            "upstreamcloudid"))
    memory_reference = (_memory_reference(accelerators, count_texts, gpu_infos) if "gpuinfo" in columns else {})
    identity_of = _memo(lambda *cells: _identity(*cells, provider, catalog, memory_reference))
    priced_of = _memo(_price)
    identities = list(map(identity_of, instance_types, accelerators, count_texts, gpu_infos, upstreams))
    base_keys = [f"{_instance_label(i, a, c)}|{r}|{z}"
                 for i, a, c, r, z in zip(instance_types, accelerators, count_texts, regions, zones)]
    good = []
    for k, identity in enumerate(identities):
        if type(identity) is _Refusal:
            rejections.append(Rejection.of(f"{base_keys[k]}|*", identity.reason, identity.detail,
                                           lines[k].rstrip("\r\n")))
        else:
            good.append(k)
    memories = [identities[k][1] for k in good]
    counts = [identities[k][2] for k in good]
    fragments = {
        "instance_type": json_fragments([instance_types[k] for k in good]),
        "gpu_memory_mib": json_fragments(memories),
        "availability_zone": json_fragments([zones[k] or None for k in good]),
        "upstream_cloud_id": json_fragments([upstreams[k] or None for k in good]),
        "price_scope": json_fragments([None if instance_types[k] else "gpu_only" for k in good]),
    }
    per_row = pl.DataFrame({
        "_seq": [numbers[k] * 2 for k in good],
        "_base_key": [base_keys[k] for k in good],
        "instrument": pl.Series([identities[k][0] for k in good], dtype=pl.String),
        "source_instrument": pl.Series([accelerators[k] for k in good], dtype=pl.String),
        "region": pl.Series([regions[k] or None for k in good], dtype=pl.String),
        "gpu_count": frame_from_columns(len(good), {"gpu_count": counts})["gpu_count"],
        # a whole count from 1 to 64, the counts for which the exact division below is proven equal to Decimal's
        "_whole_count": pl.Series([int(c) if c == c.to_integral_value() and 1 <= c <= 64 else None for c in counts],
                                  dtype=pl.Int128),
        "attributes": attributes_column(fragments, len(good)),
    })
    price_columns = [(column, price_type, _column(whole, columns, column))
                     for column, price_type in PRICE_COLUMNS.items() if column in columns]
    frames = []
    for position, (column, price_type, cells) in enumerate(price_columns):
        texts = pl.Series("_text", [cells[k] for k in good], dtype=pl.String)
        plain = texts.str.contains(_PLAIN_PRICE) & per_row["_whole_count"].is_not_null()
        frames.append(_plain_prices(per_row.filter(plain), texts.filter(plain), position, price_type))
        # Every other cell (a negative, an exponent, a long number, a fractional count) as the readable path does.
        picked, prices, usd = [], [], []
        for j in (~plain & (texts != "")).arg_true().to_list():
            k = good[j]
            priced = priced_of(column, price_type, cells[k], counts[j])
            if priced is None:
                continue
            if type(priced) is _Refusal:
                rejections.append(Rejection.of(f"{base_keys[k]}|{price_type}", priced.reason, priced.detail,
                                               lines[k].rstrip("\r\n")))
                continue
            picked.append(j)
            prices.append(priced[0])
            usd.append(priced[1])
        if picked:
            chosen = per_row[picked]
            frames.append(frame_from_columns(len(picked), {
                "_seq": chosen["_seq"] + position,
                "row_key": chosen["_base_key"] + f"|{price_type}",
                "price_type": price_type,
                "original_price": prices,
                "usd_price": usd,
                **{name: chosen[name] for name in ("instrument", "source_instrument", "region", "gpu_count",
                                                   "attributes")},
                **_CONSTANT_COLUMNS, "provider": provider,
            }))
    return ColumnarResult(concat_frames(frames).with_columns(provider=pl.lit(provider, dtype=pl.String)), rejections)


# A price cell read by column: up to 7 integer digits (under 10,000,000 USD an instance-hour) and up to 18 decimals,
# nothing else. For such a price and a whole GPU count c from 1 to 64, Decimal's price / c (rounded to 28 digits)
# then quantized half-even to 10 places equals the exact quotient rounded half-even to 10 places: the quotient is
# either a 10-place midpoint itself (then exact in 28 digits) or at least 1 / (128 x 10^18) from every midpoint,
# while rounding to 28 digits moves a value under 10^7 by at most 5 x 10^-22. So integer arithmetic gives the
# readable path's numbers exactly.
_PLAIN_PRICE = r"^[0-9]{1,7}(\.[0-9]{1,18})?$"
_CONSTANT_COLUMNS = {"instrument_kind": GPU, "original_currency": "USD", "original_unit": "instance_hour"}


def _plain_prices(rows: pl.DataFrame, texts: pl.Series, position: int, price_type: str) -> pl.DataFrame:
    """The observations of plain price cells (_PLAIN_PRICE) over whole counts, computed by column: the price read
    from its text, USD per GPU-hour = price / count rounded half-even to 10 places in 128-bit integers."""
    if rows.is_empty():
        return empty_frame()
    def big(number: int) -> pl.Expr:
        return pl.lit(number, dtype=pl.Int128)

    parts = texts.str.split_exact(".", 1).struct.unnest()
    frame = rows.with_columns(
        _whole=parts["field_0"].cast(pl.Int128),
        _fraction=parts["field_1"].fill_null("").str.pad_end(18, "0").cast(pl.Int128),
        original_price=texts.cast(pl.Decimal(38, 18)),
    ).with_columns(_units=pl.col("_whole") * big(10**18) + pl.col("_fraction"))
    if price_type == SPOT:
        frame = frame.filter(pl.col("_units") != big(0))  # 0.00 spot = no spot offer
    divisor = pl.col("_whole_count") * big(10**8)
    quotient, remainder = pl.col("_units") // divisor, pl.col("_units") % divisor
    rounds_up = (big(2) * remainder > divisor) | ((big(2) * remainder == divisor) & (quotient % big(2) == big(1)))
    tenths = (quotient + rounds_up.cast(pl.Int128)).cast(pl.String).str.zfill(11)
    usd = (tenths.str.slice(0, tenths.str.len_chars() - 10) + "." + tenths.str.slice(-10)).cast(pl.Decimal(20, 10))
    return frame.select(
        _seq=pl.col("_seq") + position,
        row_key=pl.col("_base_key") + f"|{price_type}",
        provider=pl.lit(None, dtype=pl.String),
        instrument_kind=pl.lit(GPU),
        instrument="instrument",
        source_instrument="source_instrument",
        price_type=pl.lit(price_type),
        region="region",
        gpu_count="gpu_count",
        original_price="original_price",
        original_currency=pl.lit("USD"),
        original_unit=pl.lit("instance_hour"),
        usd_price=usd,
        attributes="attributes",
    ).with_columns(**{name: pl.lit(None, dtype=dtype) for name, dtype in PARSED_SCHEMA.items()
                      if name not in ("_seq", "row_key", "provider", "instrument_kind", "instrument",
                                      "source_instrument", "price_type", "region", "gpu_count", "original_price",
                                      "original_currency", "original_unit", "usd_price", "attributes")}
                   ).select([pl.col(name).cast(dtype) for name, dtype in PARSED_SCHEMA.items()])
