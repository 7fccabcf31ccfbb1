"""simonw/llm-prices: first-party list prices, curated by hand from the vendors' pages, with their history.

GET https://raw.githubusercontent.com/simonw/llm-prices/main/data/<vendor>.json answers

    {"vendor": "deepseek",
     "models": [{"id": "deepseek-chat", "name": "DeepSeek Chat",
                 "price_history": [{"input": 0.27, "output": 1.1, "input_cached": null,
                                    "from_date": "2025-02-08", "to_date": null},
                                   {"input": 0.14, "output": 0.28, "input_cached": null,
                                    "from_date": null, "to_date": "2025-02-08"}]}]}

Prices are USD per million tokens already (numbers, read as Decimal; null = not sold). Each price_history
entry is one observation per price type (input, output, cached_input), valid over its interval, whatever
day the file was fetched: valid_from = from_date, valid_to = the day before to_date. The repository's
data/README.md defines from_date as inclusive and to_date as exclusive ("effective up to, but NOT
including"), while the warehouse's valid_to is inclusive, hence the day before. A null bound is open.

Long-context tiers are separate models in the files (`gemini-2.5-pro-200k`, name "Gemini 2.5 Pro >200k";
`grok-4-128k`, "Grok 4 >128k"): they become the base model's price types input_above_200k,
output_above_200k, cached_input_above_200k (the LiteLLM source's names for the same tiers), never a
cheaper or dearer copy of the base price. The provider is the vendor (first party), mapped through
pipeline/catalog/provider_aliases.csv (amazon -> bedrock, qwen -> alibaba). Model ids resolve through
model_aliases.csv as written (most are canonical ids already).

Hostile files (issue 10). Every price goes through records.read_decimal: garbage, a list, an object, a bool,
NaN, a negative number or one beyond 1e9 is `bad_price`. A date before MIN_DATE or after MAX_DATE (0001-01-01,
9999-12-31) is `bad_date`, so that no date arithmetic can overflow downstream. Nothing is decided by position:
a model object that repeats a key with different values is refused (`duplicate_key`); a model id listed twice
with different contents refuses every copy (`conflicting_history`), while an identical repeat (xai.json lists
grok-4-fast twice) is harmless, kept once by the shared checks (`duplicate_row`); and price_history entries
whose intervals overlap with different prices are every one refused (`conflicting_history`): on the days they
share, the file gives two prices and says neither holds.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path

import httpx

from pipeline.catalog import Catalog, default_catalog
from pipeline.catalog.provider_ids import provider_id
from pipeline.http import FetchedBody, fetch_body, utc_now
from pipeline.records import (
    CACHED_INPUT,
    INPUT,
    OUTPUT,
    TOKEN,
    Observation,
    ParseContext,
    ParseError,
    ParseResult,
    Rejection,
    quantize_usd,
    read_decimal,
)
from pipeline.sources import FetchRequest
from pipeline.sources.jsonbody import DUPLICATE_KEY, Conflict, conflict_detail, conflicting_keys, load_json
from pipeline.sources.openrouter import PriceRejected, compact_json, read_price

SOURCE_ID = "llm_prices"
KIND = TOKEN
DESCRIPTION = "simonw/llm-prices vendor files: first-party USD-per-million prices with from/to dates"

DATA_URL = "https://raw.githubusercontent.com/simonw/llm-prices/main/data/{vendor}.json"
# The vendor files of the repository's data/ folder. A vendor file that disappears answers 404: that request
# fails alone and is reported; a new vendor file is one line here.
VENDORS: tuple[str, ...] = (
    "amazon", "anthropic", "deepseek", "google", "meta-ai", "minimax", "mistral", "moonshot-ai", "openai",
    "qwen", "xai", "z.ai",
)
# The largest vendor file is about 15 kB.
MAX_BYTES = 4 * 1024 * 1024
CURRENCY = "USD"
UNIT = "million_tokens"

PRICE_FIELDS: tuple[tuple[str, str], ...] = (("input", INPUT), ("output", OUTPUT), ("input_cached", CACHED_INPUT))
# '-200k' at the end of the id with a name that says '>200k': the price above that many prompt tokens.
TIER_ID = re.compile(r"^(?P<base>.+)-(?P<k>\d+)k$")
TIER_NAME = re.compile(r"[>＞]\s*(?P<k>\d+)\s*k", re.IGNORECASE)

# The dates a price may hold from or to: the files begin in 2023; a date outside is garbage (0001-01-01,
# 9999-12-31), refused rather than carried into date arithmetic that overflows.
MIN_DATE = date(2000, 1, 1)
MAX_DATE = date(2100, 12, 31)

REJECTION_REASONS: dict[str, str] = {
    "malformed_entry": "a model or price_history entry lacks the fields a price needs",
    DUPLICATE_KEY: "a model object repeats a key with different values: none is taken",
    "conflicting_history": "the file lists the model id more than once with different contents, or gives "
                           "price_history entries with overlapping dates and different prices: every one refused",
    "bad_date": f"from_date or to_date is not an ISO date from {MIN_DATE} to {MAX_DATE}",
    "bad_interval": "to_date (exclusive) is not after from_date: the price never held",
    "no_token_price": "input and output are both null",
    "free_listing": "a price of 0",
    "variable_price": "a price of -1",
    "bad_price": "a price that is not a decimal number of at most 1e9 (garbage, list, NaN, 1e20) or is negative",
    "unknown_instrument": "the model id is not in pipeline/catalog/model_aliases.csv",
}


def vendor_url(vendor: str) -> str:
    return DATA_URL.format(vendor=vendor)


def requests() -> list[FetchRequest]:
    # provider stays None: the body names its vendor.
    return [FetchRequest(source=SOURCE_ID, url=vendor_url(v)) for v in VENDORS]


def fetch(client: httpx.Client, request: FetchRequest, clock: Callable[[], datetime] = utc_now) -> FetchedBody:
    return fetch_body(client, request.url, max_bytes=MAX_BYTES, clock=clock)


def context_for_file(path: str | Path, observed_at: datetime) -> ParseContext:
    return ParseContext(source=SOURCE_ID, observed_at=observed_at)


def split_tier(model_id: str, name: object) -> tuple[str, str | None]:
    """('gemini-2.5-pro-200k', 'Gemini 2.5 Pro >200k') -> ('gemini-2.5-pro', 'above_200k'). The id suffix alone
    is not enough (a '-128k' could be part of a model's name): the display name must say '>' the same size."""
    match = TIER_ID.match(model_id)
    named = TIER_NAME.search(name) if isinstance(name, str) else None
    if match and named and match.group("k") == named.group("k"):
        return match.group("base"), f"above_{match.group('k')}k"
    return model_id, None


def parse(raw: bytes, ctx: ParseContext, catalog: Catalog | None = None) -> ParseResult:
    catalog = catalog or default_catalog()
    body = load_json(raw, "llm-prices vendor file")
    if isinstance(body, dict):
        repeated = sorted(k for k in ("vendor", "models") if isinstance(body.get(k), Conflict))
        if repeated:
            raise ParseError(f"llm-prices vendor file: the body repeats {repeated} with different values; "
                             "it cannot say which holds")
    if not isinstance(body, dict) or not isinstance(body.get("vendor"), str) or not isinstance(body.get("models"), list):
        keys = sorted(body)[:10] if isinstance(body, dict) else type(body).__name__
        raise ParseError(f"llm-prices vendor file: expected an object with 'vendor' and a 'models' list, got {keys}")
    vendor = body["vendor"].strip()
    if not vendor:
        raise ParseError("llm-prices vendor file: 'vendor' is empty")
    if not body["models"]:
        raise ParseError(f"llm-prices vendor file {vendor!r}: the models list is empty")
    provider = provider_id(SOURCE_ID, vendor)
    result = ParseResult()
    copies: dict[str, list[dict]] = {}
    for model in body["models"]:
        if isinstance(model, dict) and isinstance(model.get("id"), str) and model["id"].strip():
            copies.setdefault(model["id"].strip(), []).append(model)
    for position, model in enumerate(body["models"]):
        _parse_model(model, position, vendor, provider, catalog, result, copies)
    return result


def _excerpt(value: object) -> str:
    """The JSON text of a value for a rejection; a value nested too deep to write gives its type instead."""
    try:
        return compact_json(value)
    except (RecursionError, ValueError):
        return f"<{type(value).__name__} nested too deep to quote>"


def _what_a_copy_says(model: dict) -> tuple:
    """What of a model object makes its rows: the tier its name gives and its price history (xai.json's two
    grok-4-fast, named "Grok 4 Fast" and "Grok 4 Fast ≤128k" with one history, say the same)."""
    name = model.get("name") if isinstance(model.get("name"), str) else None
    return (split_tier(model["id"].strip(), name), model.get("price_history"))


def _parse_model(model: object, position: int, vendor: str, provider: str, catalog: Catalog, result: ParseResult,
                 copies: dict[str, list[dict]]) -> None:
    if isinstance(model, dict) and (conflicts := conflicting_keys(model)):
        model_id = model.get("id")
        where = f"{vendor}/{model_id.strip()}" if isinstance(model_id, str) and model_id.strip() else f"{vendor}|#{position}"
        result.rejections.append(Rejection.of(where, DUPLICATE_KEY, conflict_detail(conflicts), _excerpt(model)))
        return
    if not isinstance(model, dict) or not isinstance(model.get("id"), str) or not model["id"].strip():
        result.rejections.append(Rejection.of(f"{vendor}|#{position}", "malformed_entry", "model has no string 'id'", _excerpt(model)))
        return
    model_id = model["id"].strip()
    same_id = copies.get(model_id, [model])
    try:
        differ = any(_what_a_copy_says(other) != _what_a_copy_says(model) for other in same_id)
    except RecursionError:  # copies nested too deep to compare cannot be shown to agree
        differ = len(same_id) > 1
    if differ:
        result.rejections.append(Rejection.of(
            f"{vendor}/{model_id}|#{position}", "conflicting_history",
            f"the file lists model {model_id!r} {len(same_id)} times with different contents; none is taken",
            _excerpt(model)))
        return
    history = model.get("price_history")
    if not isinstance(history, list) or not history:
        result.rejections.append(
            Rejection.of(f"{vendor}/{model_id}", "malformed_entry", "model has no price_history list", _excerpt(model))
        )
        return
    name = model.get("name") if isinstance(model.get("name"), str) else None
    base_id, tier = split_tier(model_id, name)
    entries = [_read_entry(entry, vendor, model_id, result) for entry in history]
    priced = [row for rows in _without_conflicting_history(entries, vendor, model_id, result) for row in rows]
    if not priced:
        return
    resolution = catalog.resolve_model(base_id)
    if resolution.canonical is None:
        result.rejections.append(
            Rejection.of(f"{vendor}/{model_id}", "unknown_instrument", resolution.detail, _excerpt({"id": model_id, "name": name}))
        )
        return
    attributes = {k: v for k, v in {"vendor": vendor, "name": name, "tier": tier}.items() if v is not None}
    for row_key, valid_from, valid_to, price_type, price, usd_per_mtok in priced:
        result.observations.append(
            Observation(
                row_key=row_key,
                provider=provider,
                instrument_kind=TOKEN,
                instrument=resolution.canonical,
                source_instrument=model_id,
                price_type=f"{price_type}_{tier}" if tier else price_type,
                original_price=price,
                original_currency=CURRENCY,
                original_unit=UNIT,
                usd_price=usd_per_mtok,
                attributes=attributes,
                valid_from=valid_from,
                valid_to=valid_to,
            )
        )


class _Entry:
    """One price_history entry whose dates were read: its interval [start, end) (None = open) and its rows."""

    __slots__ = ("key", "start", "end", "prices", "rows", "excerpt")

    def __init__(self, key: str, start: date | None, end: date | None, prices: tuple, rows: list, excerpt: str):
        self.key, self.start, self.end, self.prices, self.rows, self.excerpt = key, start, end, prices, rows, excerpt

    def overlaps(self, other: "_Entry") -> bool:
        """[start, end) intervals, an open bound unbounded: they share a day when each starts before the other ends."""
        return ((self.start is None or other.end is None or self.start < other.end)
                and (other.start is None or self.end is None or other.start < self.end))


def _without_conflicting_history(entries: list, vendor: str, model_id: str, result: ParseResult) -> list[list]:
    """The rows of each entry, but none of the entries whose intervals overlap another's with different prices
    (each of those is refused): the file gives two prices for the days they share and says neither holds."""
    dated = [e for e in entries if isinstance(e, _Entry)]
    clashing = {
        id(a) for a in dated for b in dated
        if a is not b and a.prices != b.prices and a.overlaps(b)
    }
    kept = []
    for entry in dated:
        if id(entry) in clashing:
            result.rejections.append(Rejection.of(
                entry.key, "conflicting_history",
                f"price_history of {model_id!r} gives other prices for dates of [{entry.start or '-inf'}, "
                f"{entry.end or 'inf'}); none is taken", entry.excerpt))
            continue
        kept.append(entry.rows)
    return kept


def _read_entry(entry: object, vendor: str, model_id: str, result: ParseResult) -> "_Entry | None":
    """The entry's interval and (row_key, valid_from, valid_to, price_type, price, usd_per_mtok) for each usable
    price; None (with its rejection) when the entry as a whole cannot be read."""
    excerpt = _excerpt({"vendor": vendor, "id": model_id, "entry": entry})
    if not isinstance(entry, dict):
        result.rejections.append(Rejection.of(f"{vendor}/{model_id}", "malformed_entry", "price_history entry is not an object", excerpt))
        return None
    try:
        valid_from = _date(entry.get("from_date"))
        to_date = _date(entry.get("to_date"))
    except ValueError as exc:
        result.rejections.append(Rejection.of(f"{vendor}/{model_id}", "bad_date", str(exc), excerpt))
        return None
    # The file's to_date is exclusive; the warehouse's valid_to is inclusive.
    valid_to = to_date - timedelta(days=1) if to_date is not None else None
    key = f"{vendor}/{model_id}|{entry.get('from_date') or ''}|{entry.get('to_date') or ''}"
    if valid_from is not None and to_date is not None and to_date <= valid_from:
        result.rejections.append(
            Rejection.of(key, "bad_interval", f"to_date {to_date} is not after from_date {valid_from}", excerpt)
        )
        return None
    if all(entry.get(field) is None for field, _ in PRICE_FIELDS[:2]):
        result.rejections.append(Rejection.of(key, "no_token_price", "input and output are both null", excerpt))
        return None
    rows = []
    for field, price_type in PRICE_FIELDS:
        value = entry.get(field)
        if value is None:
            continue  # not sold (most models have no cached-input price)
        try:
            price = read_price(value)  # already per million: the same rules as a per-token price
        except PriceRejected as exc:
            result.rejections.append(Rejection.of(f"{key}|{price_type}", exc.reason, f"{field}: {exc.detail}", excerpt))
            continue
        usd_per_mtok = quantize_usd(price)  # already USD per million tokens: kept to the warehouse's 10 places
        rows.append((f"{key}|{price_type}", valid_from, valid_to, price_type, price, usd_per_mtok))
    # What the entry says its prices are (as numbers, so that 0.27 and 0.270 agree), for the overlap check.
    prices = tuple(_comparable(entry.get(field)) for field, _ in PRICE_FIELDS)
    return _Entry(key, valid_from, to_date, prices, rows, excerpt)


def _comparable(value: object) -> object:
    number = read_decimal(value)
    return number.normalize() if number is not None else _excerpt(value)


def _date(value: object) -> date | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"date {_excerpt(value)[:40]} is not a string")
    try:
        day = date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"date {value[:40]!r} is not an ISO date (YYYY-MM-DD)") from None
    if not MIN_DATE <= day <= MAX_DATE:
        raise ValueError(f"date {value!r} is outside {MIN_DATE} to {MAX_DATE}: not a date a price held")
    return day
