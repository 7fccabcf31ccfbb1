"""From a raw body to checked records: the source's parser, then the checks every source shares.

The shared checks live here, not in each parser, so that no source can skip them: a price must be
positive, inside its instrument's sanity band, and a row key must not repeat within one snapshot. A price
in another currency is converted to USD here first (convert_currency), since the band is in USD.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import date, timedelta
from types import ModuleType
from typing import Protocol

from pipeline.catalog import Catalog, default_catalog
from pipeline.records import MAX_MAGNITUDE, FxRate, Observation, ParseContext, ParseResult, Rejection, quantize_usd


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
        excerpt = f"{obs.provider} {obs.source_instrument} {obs.price_type} {obs.original_price} {obs.original_currency}/{obs.original_unit}"
        if obs.row_key in conflicting:
            # Two rows that claim to be the same row but say different things: which one holds cannot be known,
            # so neither is taken (taking the first or the last would let the body's order decide a price).
            checked.rejections.append(
                Rejection.of(obs.row_key, "conflicting_duplicate",
                             f"the snapshot gives this row key {conflicting[obs.row_key]} times with different "
                             "contents; none is taken", excerpt)
            )
            continue
        if obs.row_key in seen:
            checked.rejections.append(
                Rejection.of(obs.row_key, "duplicate_row", "the snapshot repeats this row, identical; it is kept once", excerpt)
            )
            continue
        seen.add(obs.row_key)
        if obs.gpu_count is not None and not (0 < obs.gpu_count <= MAX_GPU_COUNT):
            checked.rejections.append(
                Rejection.of(obs.row_key, "bad_gpu_count",
                             f"GPU count {obs.gpu_count} is outside (0, {MAX_GPU_COUNT}]", excerpt)
            )
            continue
        if not _representable(obs):
            checked.rejections.append(
                Rejection.of(obs.row_key, "bad_price",
                             f"a price beyond {MAX_MAGNITUDE} is not a price", excerpt)
            )
            continue
        # Currency first: the checks below (sign, sanity band) are in USD.
        try:
            obs = convert_currency(obs, ctx.observed_at.date(), fx)
        except NotConvertible as exc:
            checked.rejections.append(Rejection.of(obs.row_key, exc.reason, exc.detail, excerpt))
            continue
        if obs.usd_price <= 0:
            checked.rejections.append(
                Rejection.of(obs.row_key, "not_positive", f"normalised price {obs.usd_price} is not positive", excerpt)
            )
            continue
        band = catalog.band(obs.instrument_kind, obs.instrument)
        if band is not None and not (band.low <= obs.usd_price <= band.high):
            checked.rejections.append(
                Rejection.of(
                    obs.row_key,
                    "outside_sanity_band",
                    f"{obs.usd_price} is outside [{band.low}, {band.high}] for {obs.instrument}",
                    excerpt,
                )
            )
            continue
        if obs.segment is None:
            obs = replace(obs, segment=catalog.segment(obs.provider))
        checked.observations.append(obs)
    return checked


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
    rate and its date kept on the row; NotConvertible (a rejection reason) when it cannot be converted.

    The one place where currencies convert: usd = price_in_currency x usd_per_unit, exact in Decimal, then
    rounded half-even to the warehouse's 10 places (records.quantize_usd).
    """
    currency = obs.original_currency
    if currency == USD:
        if obs.usd_price is None:
            raise NotConvertible("bad_price", "a USD row without a USD price")
        return obs
    if obs.price_in_currency is None:
        raise NotConvertible("bad_price", f"a {currency} row without its price in {currency}")
    rate = fx.rate(currency, on) if fx is not None else None
    if rate is None:
        age = getattr(fx, "max_age_days", MAX_FX_AGE_DAYS)
        where = "no exchange rates were given" if fx is None else (
            f"no {currency} rate dated from {on - timedelta(days=age)} to {on}"
        )
        raise NotConvertible("missing_fx_rate", f"cannot convert {obs.price_in_currency} {currency} to USD: {where}")
    return replace(
        obs,
        usd_price=quantize_usd(obs.price_in_currency * rate.usd_per_unit),
        fx_usd_per_unit=rate.usd_per_unit,
        fx_rate_date=rate.rate_date,
    )
