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
A day without a USD rate gives no cross rates (rejection `missing_usd_rate`), never a guess.

Safety: the body is XML from the network, so it is parsed with defusedxml (no DTD, no entity expansion, no
external references) and refused above MAX_BYTES before parsing; the fetch applies the same cap as it reads.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from pathlib import Path

import httpx
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError as XmlParseError
from defusedxml.ElementTree import fromstring

from pipeline.http import FetchedBody, fetch_body, utc_now
from pipeline.records import FX, FxRate, ParseContext, ParseError, ParseResult, Rejection
from pipeline.sources import FetchRequest

SOURCE_ID = "ecb_fx"
KIND = FX
DESCRIPTION = "ECB euro reference rates (XML): USD per unit of each currency, to convert non-USD price lists"

PROVIDER = "ecb"
DAILY_URL = "https://www.ecb.europa.eu/stats/eurofxref/eurofxref-daily.xml"
HISTORY_90D_URL = "https://www.ecb.europa.eu/stats/eurofxref/eurofxref-hist-90d.xml"
# The daily file is about 1.5 kB and the 90-day history about 100 kB; the cap only stops a runaway or
# hostile body (a billion-laughs document is refused by defusedxml whatever its size).
MAX_BYTES = 2 * 1024 * 1024

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
    "duplicate_row": "the body gives the same currency twice for one day; the first is kept",
}


def requests() -> list[FetchRequest]:
    # The daily file only: run every day it keeps the table complete. The 90-day file (same parser) is the
    # way to backfill: `tsi parse ecb_fx eurofxref-hist-90d.xml`, or add HISTORY_90D_URL here.
    return [FetchRequest(source=SOURCE_ID, url=DAILY_URL, provider=PROVIDER)]


def fetch(client: httpx.Client, request: FetchRequest, clock: Callable[[], datetime] = utc_now) -> FetchedBody:
    return fetch_body(client, request.url, max_bytes=MAX_BYTES, clock=clock)


def context_for_file(path: str | Path, observed_at: datetime) -> ParseContext:
    return ParseContext(source=SOURCE_ID, observed_at=observed_at, provider=PROVIDER)


def cross_rate(usd_per_eur: Decimal, units_per_eur: Decimal) -> Decimal:
    """USD per unit of a currency from two per-euro rates: (USD/EUR) / (X/EUR), half-even to 10 places."""
    return _DIVISION.divide(usd_per_eur, units_per_eur).quantize(RATE_QUANTUM, rounding=ROUND_HALF_EVEN)


def parse(raw: bytes, ctx: ParseContext, catalog=None) -> ParseResult:
    days = _day_cubes(_root(raw))
    result = ParseResult()
    for position, day in enumerate(days):
        _parse_day(day, position, result)
    return result


def _root(raw: bytes):
    if len(raw) > MAX_BYTES:
        raise ParseError(f"ECB rates: body of {len(raw)} bytes exceeds the cap of {MAX_BYTES}")
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


def _parse_day(day, position: int, result: ParseResult) -> None:
    time_text = day.get("time", "")
    try:
        rate_date = date.fromisoformat(time_text.strip())
    except ValueError:
        result.rejections.append(
            Rejection.of(f"#{position}", "bad_date", f"time {time_text!r} is not an ISO date", _excerpt(day))
        )
        return
    published: dict[str, Decimal] = {}
    for cube in day.findall(CUBE):
        currency = (cube.get("currency") or "").strip()
        text = (cube.get("rate") or "").strip()
        row_key = f"{rate_date}|{currency or '?'}"
        excerpt = f"<Cube time='{time_text}'><Cube currency='{currency}' rate='{text}'/>"
        if not CURRENCY_CODE.match(currency):
            result.rejections.append(Rejection.of(row_key, "bad_currency", f"currency {currency!r} is not an ISO code", excerpt))
            continue
        try:
            rate = Decimal(text)
        except InvalidOperation:
            rate = None
        # A euro is worth more than a billionth and less than a billion of any currency the ECB quotes.
        if rate is None or not rate.is_finite() or not Decimal("1E-9") < rate < Decimal("1E9"):
            result.rejections.append(Rejection.of(row_key, "bad_rate", f"rate {text!r} is not a usable number", excerpt))
            continue
        if currency in published:
            result.rejections.append(Rejection.of(row_key, "duplicate_row", "currency repeated in one day", excerpt))
            continue
        published[currency] = rate
    usd_per_eur = published.get("USD")
    if usd_per_eur is None:
        if published:
            result.rejections.append(
                Rejection.of(f"{rate_date}|USD", "missing_usd_rate",
                             f"{len(published)} rates but no USD rate on {rate_date}", _excerpt(day))
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
