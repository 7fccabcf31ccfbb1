"""The records that flow between a source's parser and the warehouse.

A parser is a pure function `parse(raw: bytes, ctx: ParseContext) -> ParseResult`. It never talks to the
network or the warehouse, so `tsi parse` and the tests can run it on any file.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal

GPU = "gpu"
TOKEN = "token"
FX = "fx"  # the KIND of a source that gives exchange rates (ParseResult.fx_rates), not prices

# Price types (DESIGN.md section 3).
ON_DEMAND = "on_demand"
SPOT = "spot"
INPUT = "input"
OUTPUT = "output"
CACHED_INPUT = "cached_input"

# Normalised prices are kept to 10 decimal places (the warehouse column is DECIMAL(20,10)); fixings are
# rounded to 4 only at the end.
USD_PRICE_QUANTUM = Decimal("1E-10")
MAX_EXCERPT_CHARS = 500


class ParseError(Exception):
    """The body as a whole cannot be read (wrong format, missing columns): the snapshot fails, loudly."""


@dataclass(frozen=True)
class ParseContext:
    """What a parser may know besides the body: where and when it was fetched."""

    source: str
    observed_at: datetime  # UTC; the fetch time of the snapshot
    url: str = ""
    snapshot_id: str = ""
    # For sources whose body does not name its provider (a SkyPilot catalog is one cloud's file).
    provider: str | None = None
    # An imported snapshot's last fixing date (tsi import; migration 009): the loader copies it onto the
    # observations, which then count by date up to it. Parsers never need it.
    valid_until: date | None = None


@dataclass(frozen=True)
class Observation:
    row_key: str  # unique within a snapshot: what makes this row this row
    provider: str
    instrument_kind: str  # GPU or TOKEN
    instrument: str  # canonical id from the catalog, e.g. H100-SXM, llama-3.3-70b
    source_instrument: str  # the name as the source wrote it
    price_type: str
    original_price: Decimal
    original_currency: str
    original_unit: str  # e.g. "instance_hour", "token"
    # USD per GPU-hour (gpu) or per million tokens (token). None on a non-USD row: see price_in_currency.
    usd_price: Decimal | None
    region: str | None = None
    gpu_count: Decimal | None = None
    attributes: dict = field(default_factory=dict)  # source details worth keeping (instance type, ...)
    segment: str | None = None  # market segment of the provider; filled from catalog/providers.csv if None
    # For sources that publish a price history: the dates (inclusive) over which this price held. A fixing
    # on date D uses the observation only if valid_from <= D <= valid_to (an open bound always passes).
    valid_from: date | None = None
    valid_to: date | None = None
    # Non-USD price lists. A parser never converts currency (it cannot know the rate): it gives the normalised
    # price in original_currency here, per GPU-hour or per million tokens, with usd_price None. The load
    # converts it at the FX rate of the observation date (pipeline.normalise.convert_currency) and fills
    # usd_price with the rate used and that rate's date; a missing rate is a rejection, never a guess.
    price_in_currency: Decimal | None = None
    fx_usd_per_unit: Decimal | None = None
    fx_rate_date: date | None = None

    def attributes_json(self) -> str:
        return json.dumps(self.attributes, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class Rejection:
    row_key: str
    reason: str  # a short code: unknown_instrument, not_positive, free_listing, ...
    detail: str
    raw_excerpt: str

    @classmethod
    def of(cls, row_key: str, reason: str, detail: str, raw: object) -> "Rejection":
        text = raw if isinstance(raw, str) else json.dumps(raw, sort_keys=True, default=str)
        return cls(row_key, reason, detail, text[:MAX_EXCERPT_CHARS])


@dataclass(frozen=True)
class FxRate:
    """A reference rate: how many USD one unit of `currency` was worth on `rate_date`.

    FX sources give these instead of observations; they land in the fx_rates table and convert the prices of
    non-USD price lists. `units_per_eur` keeps the published number the rate was derived from (the ECB
    publishes units of each currency per euro), so that the cross rate can be recomputed from the table.
    """

    rate_date: date
    currency: str  # ISO 4217, e.g. CNY
    usd_per_unit: Decimal
    units_per_eur: Decimal | None = None


@dataclass
class ParseResult:
    observations: list[Observation] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    fx_rates: list[FxRate] = field(default_factory=list)  # FX sources only


def quantize_usd(value: Decimal) -> Decimal:
    return value.quantize(USD_PRICE_QUANTUM, rounding=ROUND_HALF_EVEN)


# The largest magnitude a price, a count or a rate read from a body may have. No real price comes near it (the
# dearest rent is some hundred USD per instance-hour, the dearest token some hundred USD per million); the
# warehouse's columns (DECIMAL(20, 10) for USD prices, DECIMAL(38, 18) for original prices) hold less than
# 1e10 and 1e20. Beyond it a number is garbage, refused as such by the parser, never stored nor rounded.
MAX_MAGNITUDE = Decimal("1E9")
# Digits a number's text may have: more is a hostile cell (a million-digit number costs time to read), not a price.
MAX_NUMBER_CHARS = 64


def read_decimal(value: object) -> Decimal | None:
    """The exact Decimal of a cell: the text of a CSV or HTML cell, a JSON string, or a JSON number already read
    as int or Decimal. None for anything else: empty, not a number, NaN or infinite, a bool, a float (never
    read: its binary noise is not what the source wrote), Python's `1_000` spelling, or a magnitude over
    MAX_MAGNITUDE. A caller turns None into its rejection (bad_price, bad_gpu_count, ...)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        # ASCII only: Decimal reads other scripts' digits too ("٠.٥" is 0.5), which no price list writes.
        if not text or len(text) > MAX_NUMBER_CHARS or "_" in text or not text.isascii():
            return None
        try:
            number = Decimal(text)
        except (ArithmeticError, ValueError):
            return None
        # At most MAX_NUMBER_CHARS characters: at most as many digits.
        return number if number.is_finite() and abs(number) <= MAX_MAGNITUDE else None
    if isinstance(value, int):
        return Decimal(value) if abs(value) <= MAX_MAGNITUDE else None
    if isinstance(value, Decimal):
        if not value.is_finite() or abs(value) > MAX_MAGNITUDE or len(value.as_tuple().digits) > MAX_NUMBER_CHARS:
            return None
        return value
    return None
