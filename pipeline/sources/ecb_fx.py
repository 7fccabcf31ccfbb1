"""ECB euro foreign exchange reference rates: the FX source that converts non-USD price lists to USD.

GET https://www.ecb.europa.eu/stats/eurofxref/eurofxref-daily.xml answers a small gesmes envelope:

    <gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01"
                     xmlns="http://www.ecb.int/vocabulary/2002-08-01/eurofxref">
      <gesmes:subject>Reference rates</gesmes:subject> ...
      <Cube>
        <Cube time='2026-11-19'>
          <Cube currency='USD' rate='1.1580'/>
          <Cube currency='CNY' rate='8.2480'/> ...

Each rate is units of the currency per euro, published once per TARGET business day at about 16:00 CET.
The 90-day history (eurofxref-hist-90d.xml) has the same shape with one dated Cube per day; both are read.

What the parser gives is rates, not prices (ParseResult.fx_rates): USD per unit of each currency.
  - EUR: USD per EUR, as published.
  - Any other currency X: the cross rate through the euro, (USD per EUR) / (X per EUR), rounded half-even
    to 10 decimal places (the fx_rates column is DECIMAL(20,10)). The published number is kept beside it.
    USD itself is not a row: a USD price needs no rate.
A day without a usable USD rate (absent, or itself refused) gives no cross rates (rejection `missing_usd_rate`),
never a guess.

Hostile rates (issue 10), refused rather than used:
- A rate outside its currency's plausibility band (pipeline/catalog/fx_bands.csv: units per euro, the ECB's
  historical extremes widened by a factor of 2) is `implausible_rate`: a USD rate x1000 would make every
  conversion x1000. A currency without a band is `no_rate_band`: it cannot be checked, so it converts nothing.
- The same currency twice on one day (in one dated Cube or in two Cubes of the same date): identical repeats are
  harmless (one kept, `duplicate_row`); different rates refuse every copy (`conflicting_duplicate`): which one
  holds cannot be known, and taking the first would let the body's order decide a rate.
- A body cut short does not close its elements: the XML parser refuses it ("not XML").

Safety: the body is XML from the network, so it is parsed with defusedxml (no DTD, no entity expansion, no
external references) and refused above MAX_BODY_BYTES before parsing; the fetch applies the same cap as it reads.
"""
from __future__ import annotations

import csv
import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal
from functools import lru_cache
from pathlib import Path

import httpx
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError as XmlParseError
from defusedxml.ElementTree import fromstring

from pipeline.http import FetchedBody, fetch_body, utc_now
from pipeline.records import FX, FxRate, ParseContext, ParseError, ParseResult, Rejection, read_decimal
from pipeline.sources import FetchRequest

SOURCE_ID = "ecb_fx"
KIND = FX
DESCRIPTION = "ECB euro reference rates (XML): USD per unit of each currency, to convert non-USD price lists"

PROVIDER = "ecb"
DAILY_URL = "https://www.ecb.europa.eu/stats/eurofxref/eurofxref-daily.xml"
HISTORY_90D_URL = "https://www.ecb.europa.eu/stats/eurofxref/eurofxref-hist-90d.xml"
# The daily file is about 1.5 kB and the 90-day history about 100 kB; the cap only stops a runaway or
# hostile body (a billion-laughs document is refused by defusedxml whatever its size).
MAX_BODY_BYTES = 2 * 1024 * 1024
MAX_BYTES = MAX_BODY_BYTES  # the former name
# Plausibility bands of the published rates (units per euro), per currency.
FX_BANDS_FILE = Path(__file__).resolve().parent.parent / "catalog" / "fx_bands.csv"

GESMES_NS = "http://www.gesmes.org/xml/2002-08-01"
ECB_NS = "http://www.ecb.int/vocabulary/2002-08-01/eurofxref"
CUBE = f"{{{ECB_NS}}}Cube"

# USD per unit: 10 places, half-even, as the warehouse column. The division runs in a 34-digit context so
# that the only rounding is this one.
RATE_QUANTUM = Decimal("1E-10")
_DIVISION = Context(prec=34)
CURRENCY_CODE = re.compile(r"^[A-Z]{3}$")

REJECTION_REASONS: dict[str, str] = {
    "bad_rate": "rate attribute missing, not a decimal number, not positive, or implausibly large",
    "bad_currency": "currency attribute is not a three-letter ISO 4217 code",
    "bad_date": "a day's time attribute is not an ISO date",
    "missing_usd_rate": "the day has no USD rate, so no USD cross rate can be derived",
    "duplicate_row": "the body gives the same currency twice for one day with the same rate; it is kept once",
    "conflicting_duplicate": "the body gives the same currency twice for one day with different rates; none is kept",
    "implausible_rate": "the rate is outside the currency's band in pipeline/catalog/fx_bands.csv",
    "no_rate_band": "pipeline/catalog/fx_bands.csv has no band for the currency, so its rate cannot be checked",
}


@lru_cache(maxsize=4)
def load_fx_bands(path: Path = FX_BANDS_FILE) -> dict[str, tuple[Decimal, Decimal]]:
    """currency -> (lowest, highest) plausible units per euro, from fx_bands.csv (comment lines start with #).
    A malformed file is a ValueError naming the line: the bands guard every conversion, they must be sound."""
    bands: dict[str, tuple[Decimal, Decimal]] = {}
    with Path(path).open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(line for line in handle if not line.startswith("#"))
        for number, row in enumerate(reader, start=1):
            currency = (row.get("currency") or "").strip()
            low = read_decimal(row.get("min_units_per_eur") or "")
            high = read_decimal(row.get("max_units_per_eur") or "")
            if not CURRENCY_CODE.match(currency) or low is None or high is None or not 0 < low < high:
                raise ValueError(f"{path}: band #{number} ({currency or '?'}) needs a currency code and 0 < min < max")
            if currency in bands:
                raise ValueError(f"{path}: currency {currency} has two bands")
            bands[currency] = (low, high)
    if "USD" not in bands:
        raise ValueError(f"{path}: no band for USD, the rate every cross rate goes through")
    return bands



def requests() -> list[FetchRequest]:
    # The daily file only: run every day it keeps the table complete. The 90-day file (same parser) is the
    # way to backfill: `tsi parse ecb_fx eurofxref-hist-90d.xml`, or add HISTORY_90D_URL here.
    return [FetchRequest(source=SOURCE_ID, url=DAILY_URL, provider=PROVIDER)]


def fetch(client: httpx.Client, request: FetchRequest, clock: Callable[[], datetime] = utc_now) -> FetchedBody:
    return fetch_body(client, request.url, max_bytes=MAX_BODY_BYTES, clock=clock)


def context_for_file(path: str | Path, observed_at: datetime) -> ParseContext:
    return ParseContext(source=SOURCE_ID, observed_at=observed_at, provider=PROVIDER)


def cross_rate(usd_per_eur: Decimal, units_per_eur: Decimal) -> Decimal:
    """USD per unit of a currency from two per-euro rates: (USD/EUR) / (X/EUR), half-even to 10 places."""
    return _DIVISION.divide(usd_per_eur, units_per_eur).quantize(RATE_QUANTUM, rounding=ROUND_HALF_EVEN)


def parse(raw: bytes, ctx: ParseContext, catalog=None, bands: dict[str, tuple[Decimal, Decimal]] | None = None) -> ParseResult:
    bands = bands if bands is not None else load_fx_bands()
    days = _day_cubes(_root(raw))
    result = ParseResult()
    # Cubes of the same date are one day (a repeated date must not give a currency twice).
    by_date: dict[date, list] = {}
    for position, day in enumerate(days):
        time_text = day.get("time", "")
        try:
            rate_date = date.fromisoformat(time_text.strip())
        except ValueError:
            result.rejections.append(
                Rejection.of(f"#{position}", "bad_date", f"time {time_text[:40]!r} is not an ISO date", _excerpt(day))
            )
            continue
        by_date.setdefault(rate_date, []).append(day)
    for rate_date, cubes in by_date.items():
        _parse_day(rate_date, cubes, bands, result)
    return result


def _root(raw: bytes):
    if len(raw) > MAX_BODY_BYTES:
        raise ParseError(f"ECB rates: body of {len(raw)} bytes exceeds the cap of {MAX_BODY_BYTES}")
    try:
        root = fromstring(raw, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise ParseError(f"ECB rates: refused unsafe XML ({type(exc).__name__}: {exc})") from None
    except (XmlParseError, ValueError) as exc:
        start = raw[:60].decode("utf-8", "replace")
        raise ParseError(f"ECB rates: body is not XML ({exc}); it starts {start!r}") from None
    if root.tag != f"{{{GESMES_NS}}}Envelope":
        raise ParseError(f"ECB rates: root element is {root.tag!r}, not the gesmes Envelope of the ECB's files")
    return root


def _day_cubes(root) -> list:
    outer = root.find(CUBE)
    if outer is None:
        raise ParseError("ECB rates: the Envelope has no Cube element (the file's structure changed)")
    days = [cube for cube in outer.findall(CUBE) if cube.get("time") is not None]
    if not days:
        raise ParseError("ECB rates: no dated <Cube time='...'> in the file")
    if not any(cube.findall(CUBE) for cube in days):
        raise ParseError("ECB rates: the dated Cubes hold no currency rates")
    return days


def _parse_day(rate_date: date, cubes: list, bands: dict[str, tuple[Decimal, Decimal]], result: ParseResult) -> None:
    # currency -> [(rate, excerpt), ...] of every readable copy, in body order
    copies: dict[str, list[tuple[Decimal, str]]] = {}
    for day in cubes:
        time_text = day.get("time", "")
        for cube in day.findall(CUBE):
            currency = (cube.get("currency") or "").strip()
            text = (cube.get("rate") or "").strip()
            row_key = f"{rate_date}|{currency[:20] or '?'}"
            excerpt = f"<Cube time='{time_text}'><Cube currency='{currency}' rate='{text}'/>"
            if not CURRENCY_CODE.match(currency):
                result.rejections.append(
                    Rejection.of(row_key, "bad_currency", f"currency {currency[:20]!r} is not an ISO code", excerpt))
                continue
            rate = read_decimal(text)
            # A euro is worth more than a billionth and less than a billion of any currency the ECB quotes.
            if rate is None or not Decimal("1E-9") < rate < Decimal("1E9"):
                result.rejections.append(
                    Rejection.of(row_key, "bad_rate", f"rate {text[:40]!r} is not a usable number", excerpt))
                continue
            copies.setdefault(currency, []).append((rate, excerpt))
    published: dict[str, Decimal] = {}
    refused_usd = ""
    for currency, found in copies.items():
        row_key = f"{rate_date}|{currency}"
        rate, excerpt = found[0]
        if len({r for r, _ in found}) > 1:
            rates = ", ".join(str(r) for r, _ in found)
            for _rate, copy in found:
                result.rejections.append(Rejection.of(
                    row_key, "conflicting_duplicate",
                    f"{currency} is given {len(found)} times on {rate_date} with different rates ({rates}); none is "
                    "taken", copy))
            refused_usd = refused_usd or ("conflicting_duplicate" if currency == "USD" else "")
            continue
        for _rate, copy in found[1:]:
            result.rejections.append(Rejection.of(row_key, "duplicate_row",
                                                  "currency repeated in one day, same rate; kept once", copy))
        band = bands.get(currency)
        if band is None:
            result.rejections.append(Rejection.of(
                row_key, "no_rate_band", f"no plausibility band for {currency} in fx_bands.csv: the rate cannot be "
                "checked, so it is not used", excerpt))
            continue
        low, high = band
        if not low <= rate <= high:
            result.rejections.append(Rejection.of(
                row_key, "implausible_rate",
                f"{rate} {currency} per EUR is outside the plausible band [{low}, {high}] (fx_bands.csv)", excerpt))
            refused_usd = refused_usd or ("implausible_rate" if currency == "USD" else "")
            continue
        published[currency] = rate
    usd_per_eur = published.get("USD")
    if usd_per_eur is None:
        if published:
            why = f"the USD rate was refused ({refused_usd})" if refused_usd else "the day has no USD rate"
            result.rejections.append(
                Rejection.of(f"{rate_date}|USD", "missing_usd_rate",
                             f"{why} on {rate_date}: the {len(published)} other rates cannot be crossed to USD",
                             _excerpt(cubes[0]))
            )
        return
    result.fx_rates.append(FxRate(rate_date, "EUR", usd_per_eur.quantize(RATE_QUANTUM, ROUND_HALF_EVEN), Decimal(1)))
    for currency, units_per_eur in published.items():
        if currency == "USD":
            continue
        result.fx_rates.append(
            FxRate(rate_date, currency, cross_rate(usd_per_eur, units_per_eur),
                   units_per_eur.quantize(RATE_QUANTUM, ROUND_HALF_EVEN))
        )


def _excerpt(day) -> str:
    rates = " ".join(f"{c.get('currency')}={c.get('rate')}" for c in day.findall(CUBE)[:8])
    return f"<Cube time='{day.get('time')}'> {rates}"


def fx_table_from_file(path: Path):
    """The rates of a saved ECB file as an in-memory lookup (pipeline.normalise.FxTable), for `tsi parse --fx`."""
    from pipeline.http import utc_now as now
    from pipeline.normalise import FxTable

    result = parse(Path(path).read_bytes(), context_for_file(path, now()))
    return FxTable(result.fx_rates)
