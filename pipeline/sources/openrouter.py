"""OpenRouter models list: the aggregator's headline token price per model.

GET https://openrouter.ai/api/v1/models answers `{"data": [model, ...]}`; some collectors keep only the bare
array (`jq '.data | sort_by(.id)'`), so both forms are read. Each model carries `pricing` with decimal strings
in USD per single token: `"0.000002"` is $2 per million tokens. The strings are read with Decimal, never float,
so the conversion to USD per million tokens is exact.

The per-token rules live here once and `openrouter_endpoints` imports them:
  - `"0"` is a free listing, `"-1"` a variable price (openrouter/auto routes to whatever model it picks);
    neither is a market price, so both are rejected (DESIGN.md 4.7);
  - an id ending `:free` is a free variant, rejected as a whole;
  - other `:variant` suffixes (`:thinking`, `:extended`, `:nitro`, `:exacto`, ...) run the same weights, so the
    canonical model is looked up without the suffix, but the suffix stays in the row key and the attributes.

Hostile or broken bodies (issue 10). A body is read into observations and rejections, or refused as a whole with
one ParseError (not JSON, cut short, no list of models, `data` repeated with different values); the parser never
raises anything else.
  - Every price is read with records.read_decimal: a string or JSON number of magnitude at most 1e9 per token
    (ASCII digits only). An object, a list, null, a bool, NaN, "1e20", "1_000" or "０.０１" is `bad_price`; so is any
    negative price but the documented "-1" marker ("-0.000001" is bad_price, never read as 0.000001). A positive
    price that rounds to 0.0000000000 per million tokens (below 5e-17 per token) is passed on, and the shared
    checks refuse it as `not_positive`.
  - A model (or an endpoint) that repeats a key with different values anywhere inside it (two `prompt`s in
    `pricing`, two `id`s) is refused as a whole, `duplicate_key`, naming the keys. The same model id given twice
    collides on its row key (`<id>|<price type>`): the shared checks refuse every copy of a price that differs
    (`conflicting_duplicate`) and keep one copy of an identical one (`duplicate_row`).
  - Attributes keep only scalar values (never a nested object).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

import httpx

from pipeline.catalog import Catalog, Resolution, default_catalog
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

SOURCE_ID = "openrouter"
KIND = TOKEN
DESCRIPTION = "OpenRouter models list: headline USD-per-token prices of every listed model (provider 'openrouter')"

PROVIDER = "openrouter"
MODELS_URL = "https://openrouter.ai/api/v1/models"
# The full list is about 0.6 MB today; the cap only stops a runaway or hostile body (the fetch applies it; a caller
# reading a file may apply it too).
MAX_BODY_BYTES = 32 * 1024 * 1024
MAX_BYTES = MAX_BODY_BYTES  # the former name

CURRENCY = "USD"
UNIT = "token"
TOKENS_PER_MILLION = Decimal(1_000_000)

# pricing key -> price type. Other keys (request, image, audio, web_search, internal_reasoning,
# input_cache_write) are not per-token prices of the instruments we index.
PRICE_FIELDS: tuple[tuple[str, str], ...] = (
    ("prompt", INPUT),
    ("completion", OUTPUT),
    ("input_cache_read", CACHED_INPUT),
)
REQUIRED_PRICE_KEYS = ("prompt", "completion")

FREE_SUFFIX = ":free"

# Every reason this parser (and openrouter_endpoints) can give, with what it means.
REJECTION_REASONS: dict[str, str] = {
    "free_listing": "price is 0 or the id is a ':free' variant: not a market price",
    "variable_price": "price is -1: OpenRouter routes to a model chosen per request, the price is not fixed",
    "bad_price": "price missing, not a decimal number, negative (other than -1), or beyond 1e9",
    "unknown_instrument": "model id not in pipeline/catalog/model_aliases.csv",
    "malformed_entry": "an entry of the list is not an object with the fields a price needs",
    DUPLICATE_KEY: "the entry repeats a key with different values (e.g. two 'prompt' prices): none is taken",
}


def requests() -> list[FetchRequest]:
    # The body does not name a provider: its prices are OpenRouter's own headline prices.
    return [FetchRequest(source=SOURCE_ID, url=MODELS_URL, provider=PROVIDER)]


def fetch(client: httpx.Client, request: FetchRequest, clock: Callable[[], datetime] = utc_now) -> FetchedBody:
    return fetch_body(client, request.url, max_bytes=MAX_BODY_BYTES, clock=clock)


def context_for_file(path: str | Path, observed_at: datetime) -> ParseContext:
    return ParseContext(source=SOURCE_ID, observed_at=observed_at, provider=PROVIDER)


# --- shared with openrouter_endpoints -------------------------------------------------------------------


class PriceRejected(Exception):
    """One price string that is not a usable market price; `reason` is a REJECTION_REASONS code."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


def read_price(value: object) -> Decimal:
    """A listed price as an exact Decimal, or PriceRejected saying why it cannot be used: 0 is a free listing, -1
    a variable price, anything negative or not a number of at most 1e9 (records.read_decimal) a bad price. The
    token sources share it (OpenRouter's per-token strings, LiteLLM's per-token numbers, llm-prices' per-million
    numbers)."""
    shown = show_value(value)
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise PriceRejected("bad_price", f"price {shown} is not a decimal string")
    if isinstance(value, str) and not value.isascii():
        # Decimal() reads any Unicode digit ("０.０１", "٠٫٢"); the API writes ASCII, anything else is not its price.
        raise PriceRejected("bad_price", f"price {shown} is not a decimal number in ASCII digits")
    price = read_decimal(value)
    if price is None:
        raise PriceRejected("bad_price", f"price {shown} is not a finite decimal number of at most 1e9")
    if price == 0:
        raise PriceRejected("free_listing", f"price {shown} is zero")
    if price == -1:
        raise PriceRejected("variable_price", f"price {shown} means the price varies per request")
    if price < 0:
        raise PriceRejected("bad_price", f"price {shown} is negative")
    return price


def show_value(value: object) -> str:
    """A value for a rejection's detail: short, a nested value named by its type."""
    if isinstance(value, Conflict):
        text = f"<{len(value.values)} values>"
    elif isinstance(value, (dict, list)):
        text = f"<{type(value).__name__}>"
    elif isinstance(value, Decimal):
        text = str(value)
    else:
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def scalar(value: object) -> object:
    """A value fit for the attributes and excerpts: itself when a string, number, bool or null; else its type named
    (a hostile depth must not reach the JSON encoder)."""
    return value if value is None or isinstance(value, (str, int, Decimal)) else show_value(value)


def pricing_excerpt(pricing: object) -> object:
    """`pricing` for an excerpt: one level of an object (the prices), anything deeper named by its type."""
    if isinstance(pricing, dict):
        return {key: scalar(value) for key, value in pricing.items()}
    return scalar(pricing)


def duplicate_key_rejection(row_key: str, record: object, excerpt: str) -> Rejection | None:
    """The duplicate_key rejection of a record that repeats a key with different values anywhere inside it."""
    keys = conflicting_keys(record)
    return Rejection.of(row_key, DUPLICATE_KEY, conflict_detail(keys), excerpt) if keys else None


def usd_per_million(per_token: Decimal) -> Decimal:
    """USD per token -> USD per million tokens, exact, then kept to the warehouse's 10 places."""
    try:
        return quantize_usd(per_token * TOKENS_PER_MILLION)
    except InvalidOperation:  # more digits than the Decimal context holds: a garbage price, not a real one
        raise PriceRejected("bad_price", f"price {per_token} per token is too large to represent") from None


def split_variant(model_id: str) -> tuple[str, str | None]:
    """'openai/gpt-4o:extended' -> ('openai/gpt-4o', 'extended'); an id without ':' has no variant."""
    base, sep, variant = model_id.partition(":")
    return (base, variant) if sep else (model_id, None)


def resolve(catalog: Catalog, model_id: str) -> Resolution:
    """The catalog's canonical model for an OpenRouter id.

    The full id is tried first so that the catalog can, if ever needed, give a priced-differently variant its
    own id; otherwise the variant runs the base model's weights and resolves like the base id.
    """
    exact = catalog.resolve_model(model_id)
    base, variant = split_variant(model_id)
    if exact.canonical is not None or variant is None:
        return exact
    return catalog.resolve_model(base)


def compact_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


@dataclass(frozen=True)
class Price:
    price_type: str
    per_token: Decimal
    usd_per_mtok: Decimal


def read_prices(pricing: object, row_key_prefix: str, excerpt: str) -> tuple[list[Price], list[Rejection]]:
    """The usable prices of one `pricing` object, and a rejection for each listed price that is not usable.

    `prompt` and `completion` are always expected; `input_cache_read` is read only when present.
    """
    if not isinstance(pricing, dict):
        what = "several values" if isinstance(pricing, Conflict) else type(pricing).__name__
        return [], [Rejection.of(row_key_prefix, "bad_price", f"pricing is {what}, not an object", excerpt)]
    prices: list[Price] = []
    rejections: list[Rejection] = []
    for key, price_type in PRICE_FIELDS:
        row_key = f"{row_key_prefix}|{price_type}"
        if key not in pricing:
            if key in REQUIRED_PRICE_KEYS:
                rejections.append(Rejection.of(row_key, "bad_price", f"pricing has no {key!r}", excerpt))
            continue
        try:
            per_token = read_price(pricing[key])
            prices.append(Price(price_type, per_token, usd_per_million(per_token)))
        except PriceRejected as exc:
            rejections.append(Rejection.of(row_key, exc.reason, f"{key}: {exc.detail}", excerpt))
    return prices, rejections


def token_observation(
    *,
    row_key: str,
    provider: str,
    canonical: str,
    source_instrument: str,
    price: Price,
    attributes: dict,
) -> Observation:
    return Observation(
        row_key=row_key,
        provider=provider,
        instrument_kind=TOKEN,
        instrument=canonical,
        source_instrument=source_instrument,
        price_type=price.price_type,
        original_price=price.per_token,
        original_currency=CURRENCY,
        original_unit=UNIT,
        usd_price=price.usd_per_mtok,
        attributes=attributes,
    )


def free_variant_rejection(model_id: str, excerpt: str) -> Rejection:
    return Rejection.of(model_id, "free_listing", f"{model_id!r} is a free variant", excerpt)


def unknown_model_rejection(model_id: str, resolution: Resolution, excerpt: str) -> Rejection:
    return Rejection.of(model_id, "unknown_instrument", resolution.detail, excerpt)


# --- the models list --------------------------------------------------------------------------------------


def parse(raw: bytes, ctx: ParseContext, catalog: Catalog | None = None) -> ParseResult:
    catalog = catalog or default_catalog()
    models = _model_entries(load_json(raw, "OpenRouter models list"))
    result = ParseResult()
    for position, entry in enumerate(models):
        _parse_model(entry, position, catalog, result)
    return result


def _model_entries(body: object) -> list:
    """The list of model objects, from either `{"data": [...]}` or the bare array; anything else is an error."""
    if isinstance(body, dict):
        if "data" not in body:
            raise ParseError(f"OpenRouter models list: object without 'data' (keys: {sorted(body)[:10]})")
        body = body["data"]
        if isinstance(body, Conflict):
            raise ParseError("OpenRouter models list: the body repeats 'data' with different values; "
                             "it cannot say which list holds")
    if not isinstance(body, list):
        raise ParseError(f"OpenRouter models list: expected a list of models, got {type(body).__name__}")
    if not body:
        raise ParseError("OpenRouter models list: the list is empty")
    # A list where no entry looks like a model is another endpoint's answer (e.g. GET /api/v1/providers,
    # whose entries have name and slug but no prices): fail the snapshot rather than reject every row.
    if not any(isinstance(e, dict) and isinstance(e.get("id"), str) and "pricing" in e for e in body):
        first = body[0]
        keys = sorted(first)[:10] if isinstance(first, dict) else type(first).__name__
        raise ParseError(
            f"OpenRouter models list: none of the {len(body)} entries has 'id' and 'pricing' "
            f"(first entry: {keys}); this is not a models list"
        )
    return body


def _parse_model(entry: object, position: int, catalog: Catalog, result: ParseResult) -> None:
    readable_id = isinstance(entry, dict) and isinstance(entry.get("id"), str) and bool(entry["id"].strip())
    if isinstance(entry, dict):
        model_id = entry["id"].strip() if readable_id else None
        excerpt = compact_json(
            {"id": model_id or scalar(entry.get("id")), "pricing": pricing_excerpt(entry.get("pricing"))}
        )
        # Before anything else: a model that says two things of one key cannot say which one holds.
        duplicate = duplicate_key_rejection(model_id or f"#{position}", entry, excerpt)
        if duplicate is not None:
            result.rejections.append(duplicate)
            return
    if not readable_id:
        shown = compact_json({"id": scalar(entry.get("id"))}) if isinstance(entry, dict) else show_value(entry)
        result.rejections.append(Rejection.of(f"#{position}", "malformed_entry", "entry has no string 'id'", shown))
        return
    if model_id.endswith(FREE_SUFFIX):
        result.rejections.append(free_variant_rejection(model_id, excerpt))
        return
    prices, rejections = read_prices(entry.get("pricing"), model_id, excerpt)
    result.rejections.extend(rejections)
    if not prices:
        return
    resolution = resolve(catalog, model_id)
    if resolution.canonical is None:
        # One rejection for the model rather than one per price: the model, not each price, is unknown.
        result.rejections.append(unknown_model_rejection(model_id, resolution, excerpt))
        return
    attributes = _model_attributes(entry, model_id)
    for price in prices:
        result.observations.append(
            token_observation(
                row_key=f"{model_id}|{price.price_type}",
                provider=PROVIDER,
                canonical=resolution.canonical,
                source_instrument=model_id,
                price=price,
                attributes=attributes,
            )
        )


def _model_attributes(entry: dict, model_id: str) -> dict:
    top = entry.get("top_provider") if isinstance(entry.get("top_provider"), dict) else {}
    attributes = {
        "name": entry.get("name"),
        "canonical_slug": entry.get("canonical_slug"),
        "hugging_face_id": entry.get("hugging_face_id") or None,
        "context_length": entry.get("context_length"),
        "max_completion_tokens": top.get("max_completion_tokens"),
        "variant": split_variant(model_id)[1],
    }
    return {key: value for key, value in attributes.items() if isinstance(value, (str, int, Decimal))}

