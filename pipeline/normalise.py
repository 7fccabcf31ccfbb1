"""From a raw body to checked records: the source's parser, then the checks every source shares.

The shared checks live here, not in each parser, so that no source can skip them: a price must be
positive, inside its instrument's sanity band, and a row key must not repeat within one snapshot. A price
in another currency is converted to USD here first (convert_currency), since the band is in USD.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal
from types import ModuleType
from typing import Protocol

import polars as pl

from pipeline.catalog import Band, Catalog, default_catalog
from pipeline.columnar import PARSED_SCHEMA, STORED_QUANTUM, ColumnarResult, to_scale
from pipeline.records import MAX_MAGNITUDE, USD_PRICE_QUANTUM, FxRate, Observation, ParseContext, ParseResult, Rejection, quantize_usd


def parse_body(
    source: ModuleType, raw: bytes, ctx: ParseContext, catalog: Catalog | None = None, fx: "FxLookup | None" = None
) -> ParseResult:
    """`fx` gives the exchange rates for non-USD rows (the load passes the warehouse's; without it such rows
    are rejected as missing_fx_rate)."""
    catalog = catalog or default_catalog()
    parsed = source.parse(raw, ctx, catalog=catalog)
    checked = ParseResult(rejections=list(parsed.rejections), fx_rates=list(parsed.fx_rates))
    conflicting = _conflicting_row_keys(parsed.observations)
    seen: set[str] = set()
    for obs in parsed.observations:
        excerpt = _excerpt(obs.provider, obs.source_instrument, obs.price_type, obs.original_price,
                           obs.original_currency, obs.original_unit)
        if obs.row_key in conflicting:
            # Two rows that claim to be the same row but say different things: which one holds cannot be known,
            # so neither is taken (taking the first or the last would let the body's order decide a price).
            checked.rejections.append(
                Rejection.of(obs.row_key, "conflicting_duplicate", _conflict_detail(conflicting[obs.row_key]), excerpt)
            )
            continue
        if obs.row_key in seen:
            checked.rejections.append(
                Rejection.of(obs.row_key, "duplicate_row", _DUPLICATE_DETAIL, excerpt)
            )
            continue
        seen.add(obs.row_key)
        if obs.gpu_count is not None and not (0 < obs.gpu_count <= MAX_GPU_COUNT):
            checked.rejections.append(
                Rejection.of(obs.row_key, "bad_gpu_count", _gpu_count_detail(obs.gpu_count), excerpt)
            )
            continue
        if not _representable(obs):
            checked.rejections.append(
                Rejection.of(obs.row_key, "bad_price", _UNREPRESENTABLE_DETAIL, excerpt)
            )
            continue
        # Currency first: the checks below (sign, sanity band) are in USD.
        try:
            obs = convert_currency(obs, ctx.observed_at.date(), fx)
        except NotConvertible as exc:
            checked.rejections.append(Rejection.of(obs.row_key, exc.reason, exc.detail, excerpt))
            continue
        if obs.usd_price <= 0:
            checked.rejections.append(Rejection.of(obs.row_key, "not_positive", _not_positive_detail(obs.usd_price), excerpt))
            continue
        band = catalog.band(obs.instrument_kind, obs.instrument)
        if band is not None and not (band.low <= obs.usd_price <= band.high):
            checked.rejections.append(
                Rejection.of(obs.row_key, "outside_sanity_band", _band_detail(obs.usd_price, band, obs.instrument),
                             excerpt)
            )
            continue
        if obs.segment is None:
            obs = replace(obs, segment=catalog.segment(obs.provider))
        checked.observations.append(obs)
    return checked


# The texts of the shared checks' rejections, one definition for the readable path (parse_body) and the columnar
# one (check_columns).
_DUPLICATE_DETAIL = "the snapshot repeats this row, identical; it is kept once"
_UNREPRESENTABLE_DETAIL = f"a price beyond {MAX_MAGNITUDE} is not a price"


def _excerpt(provider, source_instrument, price_type, original_price, currency, unit) -> str:
    return f"{provider} {source_instrument} {price_type} {plain(as_stored(original_price))} {currency}/{unit}"


def _conflict_detail(copies: int) -> str:
    return f"the snapshot gives this row key {copies} times with different contents; none is taken"


def _gpu_count_detail(count: Decimal) -> str:
    return f"GPU count {plain(as_stored(count))} is outside (0, {MAX_GPU_COUNT}]"


def _not_positive_detail(usd_price: Decimal) -> str:
    return f"normalised price {as_stored(usd_price, USD_PRICE_QUANTUM)} is not positive"


def _band_detail(usd_price: Decimal, band: Band, instrument: str) -> str:
    return f"{usd_price} is outside [{band.low}, {band.high}] for {instrument}"


def as_stored(number: Decimal | None, quantum: Decimal = STORED_QUANTUM) -> Decimal | None:
    """A number as the warehouse keeps it (pipeline.columnar.to_scale: half-even at its scale, no negative
    zero), so that a message says the same on both paths."""
    return to_scale(number, quantum) if isinstance(number, Decimal) and number.is_finite() else number


def plain(number: Decimal | None) -> str:
    """A number as a person writes it, whatever its scale: 8, 0.5, 2.5 (a DECIMAL(38, 18) column gives
    8.000000000000000000 for the 8 a parser read; both paths of the checks print the same)."""
    if number is None or not isinstance(number, Decimal) or not number.is_finite():
        return str(number)
    text = format(number, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


# The most GPUs one listing may share a price among: the largest machines rented whole are racks of 72 (GB200
# NVL72); a count beyond this is garbage and would, as a weight, own a GPU-weighted median.
MAX_GPU_COUNT = 128


def _what_counts(obs: Observation) -> tuple:
    """The fields of a row that a fixing reads (its attributes, such as a host's id, are only kept)."""
    return (obs.provider, obs.instrument_kind, obs.instrument, obs.price_type, obs.region, obs.gpu_count,
            obs.usd_price, obs.price_in_currency, obs.original_currency, obs.valid_from, obs.valid_to)


def _conflicting_row_keys(observations: list[Observation]) -> dict[str, int]:
    """Row keys the parser gave more than once with different prices (or instrument, region, GPU count,
    validity), and how many times each came."""
    first: dict[str, tuple] = {}
    counts: dict[str, int] = {}
    differing: set[str] = set()
    for obs in observations:
        counts[obs.row_key] = counts.get(obs.row_key, 0) + 1
        held = first.setdefault(obs.row_key, _what_counts(obs))
        if counts[obs.row_key] > 1 and held != _what_counts(obs):
            differing.add(obs.row_key)
    return {key: counts[key] for key in differing}


def _representable(obs: Observation) -> bool:
    """Every price of the row finite and within MAX_MAGNITUDE (a parser that forgot to bound one is caught here,
    before the warehouse's DECIMAL columns would refuse the whole snapshot)."""
    for value in (obs.original_price, obs.usd_price, obs.price_in_currency):
        if value is not None and (not value.is_finite() or abs(value) > MAX_MAGNITUDE):
            return False
    return True


# --- currency conversion ------------------------------------------------------------------------------------

# How much older than the observation date the newest rate may be. The ECB publishes one rate per TARGET
# business day at about 16:00 CET, so a price collected at 06:00 UTC sees the previous business day's rate.
# The longest gap is Easter: on the Tuesday morning after Easter Monday the newest rate is Thursday's, 5 days
# before. Older than that, the ECB file was not collected: the row is rejected, never converted at a stale rate.
MAX_FX_AGE_DAYS = 5
USD = "USD"


class NotConvertible(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class FxLookup(Protocol):
    def rate(self, currency: str, on: date) -> FxRate | None:
        """The newest rate of `currency` dated on or before `on`, at most MAX_FX_AGE_DAYS older; else None."""


class FxTable:
    """Rates held in memory (tests, and `tsi parse` given an FX file): the same rule as the warehouse lookup."""

    def __init__(self, rates: Iterable[FxRate], max_age_days: int = MAX_FX_AGE_DAYS):
        self.max_age_days = max_age_days
        self._by_currency: dict[str, dict[date, FxRate]] = {}
        for r in rates:
            self._by_currency.setdefault(r.currency, {}).setdefault(r.rate_date, r)

    def rate(self, currency: str, on: date) -> FxRate | None:
        known = self._by_currency.get(currency, {})
        for back in range(self.max_age_days + 1):
            found = known.get(on - timedelta(days=back))
            if found is not None:
                return found
        return None


def convert_currency(obs: Observation, on: date, fx: FxLookup | None) -> Observation:
    """A USD row as it is; a non-USD row converted to USD at the rate of `on` (the observation date), with the
    rate and its date kept on the row; NotConvertible (a rejection reason) when it cannot be converted."""
    usd_price, rate = convert_price(obs.original_currency, obs.usd_price, obs.price_in_currency, on, fx)
    if rate is None:
        return obs
    return replace(obs, usd_price=usd_price, fx_usd_per_unit=rate.usd_per_unit, fx_rate_date=rate.rate_date)


def convert_price(currency: str, usd_price: Decimal | None, price_in_currency: Decimal | None, on: date,
                  fx: FxLookup | None) -> tuple[Decimal, FxRate | None]:
    """(USD price, the rate used or None for a USD row), or NotConvertible.

    The one place where currencies convert: usd = price_in_currency x usd_per_unit, exact in Decimal, then
    rounded half-even to the warehouse's 10 places (records.quantize_usd).
    """
    if currency == USD:
        if usd_price is None:
            raise NotConvertible("bad_price", "a USD row without a USD price")
        return usd_price, None
    if price_in_currency is None:
        raise NotConvertible("bad_price", f"a {currency} row without its price in {currency}")
    rate = fx.rate(currency, on) if fx is not None else None
    if rate is None:
        age = getattr(fx, "max_age_days", MAX_FX_AGE_DAYS)
        where = "no exchange rates were given" if fx is None else (
            f"no {currency} rate dated from {on - timedelta(days=age)} to {on}"
        )
        raise NotConvertible("missing_fx_rate",
                             f"cannot convert {plain(as_stored(price_in_currency))} {currency} to USD: {where}")
    return quantize_usd(price_in_currency * rate.usd_per_unit), rate


# --- the same checks over a frame ---------------------------------------------------------------------------

# The fields of a row that a fixing reads, as columns (_what_counts, for frames).
_WHAT_COUNTS = ["provider", "instrument_kind", "instrument", "price_type", "region", "gpu_count", "usd_price",
                "price_in_currency", "original_currency", "valid_from", "valid_to"]


def check_columns(parsed: ColumnarResult, ctx: ParseContext, catalog: Catalog | None = None,
                  fx: "FxLookup | None" = None) -> tuple[pl.DataFrame, list[Rejection]]:
    """parse_body's checks over a columnar parse: the rows kept (PARSED_SCHEMA without `_seq`, segment filled,
    non-USD rows converted) and every rejection, the parser's first. The same rules in the same order, and the
    same texts, as parse_body: tests/test_columnar.py holds them to it. Only the rows that need a person's
    reading (rejected ones, non-USD ones) are looked at one by one; the rest is polars."""
    catalog = catalog or default_catalog()
    rejections = list(parsed.rejections)
    frame = parsed.observations.sort("_seq")
    if frame.is_empty():
        return frame.drop("_seq"), rejections
    count, usd_price = pl.col("gpu_count"), pl.col("usd_price")
    over_magnitude = pl.lit(False)
    for name in ("original_price", "usd_price", "price_in_currency"):
        over_magnitude = over_magnitude | (pl.col(name).abs() > MAX_MAGNITUDE).fill_null(False)
    needs_conversion = (pl.col("original_currency") != USD) | usd_price.is_null()
    if frame["row_key"].n_unique() == frame.height:  # no row key repeated: nothing to compare (the usual body)
        repeats = [pl.lit(1).alias("_copies"), pl.lit(1).alias("_variants"), pl.lit(True).alias("_first")]
    else:
        repeats = [pl.len().over("row_key").alias("_copies"),
                   pl.struct(_WHAT_COUNTS).n_unique().over("row_key").alias("_variants"),
                   pl.col("row_key").is_first_distinct().alias("_first")]
    frame = frame.with_columns(*repeats).with_columns(
        _reason=pl.when(pl.col("_variants") > 1).then(pl.lit("conflicting_duplicate"))
        .when(~pl.col("_first")).then(pl.lit("duplicate_row"))
        .when(count.is_not_null() & ~((count > 0) & (count <= MAX_GPU_COUNT))).then(pl.lit("bad_gpu_count"))
        .when(over_magnitude).then(pl.lit("bad_price"))
        .otherwise(pl.lit(None, dtype=pl.String)),
        _convert=needs_conversion,
    )
    frame = _convert_columns(frame, ctx.observed_at.date(), fx)
    bands = _band_frame(catalog, frame.select("instrument_kind", "instrument").unique())
    frame = frame.join(bands, on=["instrument_kind", "instrument"], how="left", nulls_equal=True)
    usd_wide = pl.col("usd_price").cast(pl.Decimal(38, 18))
    frame = frame.with_columns(
        _reason=pl.when(pl.col("_reason").is_not_null()).then(pl.col("_reason"))
        .when(pl.col("usd_price") <= 0).then(pl.lit("not_positive"))
        .when(pl.col("_low").is_not_null() & ~((usd_wide >= pl.col("_low")) & (usd_wide <= pl.col("_high"))))
        .then(pl.lit("outside_sanity_band"))
        .otherwise(pl.lit(None, dtype=pl.String))
    )
    refused = frame.filter(pl.col("_reason").is_not_null())
    for row in refused.iter_rows(named=True):
        rejections.append(_rejection_of_row(row, catalog))
    segments = {p: catalog.segment(p) for p in frame["provider"].unique().to_list()}
    kept = frame.filter(pl.col("_reason").is_null()).with_columns(
        segment=pl.col("segment").fill_null(pl.col("provider").replace_strict(segments, default=None,
                                                                             return_dtype=pl.String))
    )
    return kept.select([name for name in PARSED_SCHEMA if name != "_seq"]), rejections


def _convert_columns(frame: pl.DataFrame, on: date, fx: "FxLookup | None") -> pl.DataFrame:
    """convert_price on the rows still standing that are not plain USD rows (few: a price list in another
    currency), one by one; a row it refuses gets its reason and detail."""
    frame = frame.with_columns(_detail=pl.lit(None, dtype=pl.String))
    todo = frame.with_row_index("_row").filter(pl.col("_convert") & pl.col("_reason").is_null())
    if todo.is_empty():
        return frame
    rows, usd, rate_values, rate_dates, reasons, details = [], [], [], [], [], []
    for row in todo.select("_row", "original_currency", "usd_price", "price_in_currency").iter_rows():
        try:
            price, rate = convert_price(row[1], row[2], row[3], on, fx)
        except NotConvertible as exc:
            price, rate, reason, detail = None, None, exc.reason, exc.detail
        else:
            reason = detail = None
        rows.append(row[0])
        usd.append(price)
        rate_values.append(rate.usd_per_unit if rate else None)
        rate_dates.append(rate.rate_date if rate else None)
        reasons.append(reason)
        details.append(detail)
    patch = pl.DataFrame({
        "_row": pl.Series(rows, dtype=pl.UInt32),
        "_usd": pl.Series(usd, dtype=pl.Decimal(20, 10)),
        "_rate": pl.Series(rate_values, dtype=pl.Decimal(20, 10)),
        "_rate_date": pl.Series(rate_dates, dtype=pl.Date),
        "_patch_reason": pl.Series(reasons, dtype=pl.String),
        "_patch_detail": pl.Series(details, dtype=pl.String),
    })
    patched = frame.with_row_index("_row").join(patch, on="_row", how="left")
    touched = pl.col("_row").is_in(patch["_row"].implode())
    return patched.with_columns(
        usd_price=pl.when(touched).then(pl.col("_usd")).otherwise(pl.col("usd_price")),
        fx_usd_per_unit=pl.when(pl.col("_rate").is_not_null()).then(pl.col("_rate")).otherwise(pl.col("fx_usd_per_unit")),
        fx_rate_date=pl.when(pl.col("_rate").is_not_null()).then(pl.col("_rate_date")).otherwise(pl.col("fx_rate_date")),
        _reason=pl.coalesce("_reason", "_patch_reason"),
        _detail=pl.coalesce("_detail", "_patch_detail"),
    ).drop("_row", "_usd", "_rate", "_rate_date", "_patch_reason", "_patch_detail")


def _band_frame(catalog: Catalog, instruments: pl.DataFrame) -> pl.DataFrame:
    rows = []
    for kind, instrument in instruments.iter_rows():
        band = catalog.band(kind, instrument) if kind is not None and instrument is not None else None
        rows.append((kind, instrument, band.low if band else None, band.high if band else None))
    return pl.DataFrame(rows, orient="row", schema={
        "instrument_kind": pl.String, "instrument": pl.String,
        "_low": pl.Decimal(38, 18), "_high": pl.Decimal(38, 18),
    })


def _rejection_of_row(row: dict, catalog: Catalog) -> Rejection:
    reason = row["_reason"]
    if reason == "conflicting_duplicate":
        detail = _conflict_detail(row["_copies"])
    elif reason == "duplicate_row":
        detail = _DUPLICATE_DETAIL
    elif reason == "bad_gpu_count":
        detail = _gpu_count_detail(row["gpu_count"])
    elif reason == "not_positive":
        detail = _not_positive_detail(row["usd_price"])
    elif reason == "outside_sanity_band":
        detail = _band_detail(row["usd_price"], catalog.band(row["instrument_kind"], row["instrument"]),
                              row["instrument"])
    else:  # bad_price, missing_fx_rate
        detail = row["_detail"] or _UNREPRESENTABLE_DETAIL
    excerpt = _excerpt(row["provider"], row["source_instrument"], row["price_type"], row["original_price"],
                       row["original_currency"], row["original_unit"])
    return Rejection.of(row["row_key"], reason, detail, excerpt)
