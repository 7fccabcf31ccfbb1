"""OpenRouter per-model endpoints: one price per serving provider, which is what gives a model several providers.

GET https://openrouter.ai/api/v1/models/{author}/{slug}/endpoints answers

    {"data": {"id": "meta-llama/llama-3.3-70b-instruct", "name": ..., "created": ..., "description": ...,
              "architecture": {...},
              "endpoints": [{"name", "provider_name", "tag", "quantization", "context_length",
                             "max_completion_tokens", "max_prompt_tokens", "supported_parameters",
                             "status", "uptime_last_30m",
                             "pricing": {"prompt", "completion", "input_cache_read", ...}}, ...]}}

Prices are the same decimal strings in USD per token as in the models list, read by the same rules
(imported from `openrouter`, so the two sources cannot drift apart). The provider of each observation is the
provider id of `provider_name` in pipeline/catalog/provider_aliases.csv (shared with the LiteLLM and
llm-prices sources: "Amazon Bedrock" -> "bedrock", "Google" -> "vertex-ai"), else a lowercase slug of it
("DeepInfra" -> "deepinfra"); one provider may list several endpoints (e.g. two quantizations), told apart by
`tag` in the row key.

Hostile or broken bodies (issue 10), by the models list's rules (see `openrouter`): every price read with
records.read_decimal, so that 1e20, an object, null or a negative price other than "-1" is `bad_price` and a
price that rounds to zero per million is `not_positive` (shared checks). An endpoint that repeats a key with
different values anywhere inside it (two `prompt`s in its `pricing`) is refused as a whole, `duplicate_key`,
naming the keys; the others are read. The row key is model id, provider, tag and price type, so the same
endpoint listed twice collides: the shared checks refuse every copy of a price that differs
(`conflicting_duplicate`) and keep one copy of an identical one (`duplicate_row`). The body as a whole is refused
(ParseError) when it is not JSON or is cut short, and when `data`, the model's `id` or its `endpoints` are
repeated with different values: which model or which list holds cannot be known.

Rejection reasons: `malformed_entry`, `duplicate_key`, `free_listing`, `variable_price`, `bad_price`,
`unknown_instrument`; the shared checks add `not_positive`, `outside_sanity_band`, `duplicate_row`,
`conflicting_duplicate`.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import httpx

from pipeline.catalog import Catalog, default_catalog
from pipeline.catalog import provider_ids
from pipeline.http import FetchedBody, fetch_body, utc_now
from pipeline.records import TOKEN, ParseContext, ParseError, ParseResult, Rejection
from pipeline.sources import FetchRequest
from pipeline.sources.jsonbody import Conflict, load_json
from pipeline.sources.openrouter import (
    FREE_SUFFIX,
    compact_json,
    duplicate_key_rejection,
    free_variant_rejection,
    pricing_excerpt,
    read_prices,
    resolve,
    scalar,
    show_value,
    split_variant,
    token_observation,
    unknown_model_rejection,
)

SOURCE_ID = "openrouter_endpoints"
KIND = TOKEN
DESCRIPTION = "OpenRouter endpoints of selected open-weight models: USD-per-token prices of each serving provider"

API_BASE = "https://openrouter.ai/api/v1/models"
# One model's endpoints are a few kB; the cap only stops a runaway or hostile body (the fetch applies it; a caller
# reading a file may apply it too).
MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_BYTES = MAX_BODY_BYTES  # the former name

# Open-weight models that many independent providers serve, so that their per-model index has enough
# providers (DESIGN.md 4.5 asks for at least 3). OpenRouter ids, "author/slug"; each resolves to a distinct
# open-weight canonical model of models.csv through model_aliases.csv. The first seven have indices of their
# own; the rest (issue 11: at least 20 models) are collected so that their providers' prices are in the
# warehouse. Llama 3.1 70B / 405B, Llama 3 70B and Mixtral 8x7B are left out on purpose: their indices blend
# LiteLLM with this source, and adding them here would be a methodology change of those indices.
ENDPOINT_MODELS: tuple[str, ...] = (
    "meta-llama/llama-3.3-70b-instruct",
    "meta-llama/llama-3.1-8b-instruct",
    "deepseek/deepseek-chat-v3-0324",
    "deepseek/deepseek-r1",
    "qwen/qwen-2.5-72b-instruct",
    "openai/gpt-oss-120b",
    "mistralai/mistral-nemo",
    # --- collected, no index yet
    "meta-llama/llama-4-maverick",
    "meta-llama/llama-4-scout",
    "mistralai/mistral-small-3.1-24b-instruct",
    "qwen/qwen-2.5-coder-32b-instruct",
    "qwen/qwen3-235b-a22b",
    "qwen/qwen3-32b",
    "deepseek/deepseek-chat-v3.1",
    "deepseek/deepseek-r1-0528",
    "openai/gpt-oss-20b",
    "google/gemma-3-27b-it",
    "moonshotai/kimi-k2",
    "z-ai/glm-4.5",
    "microsoft/phi-4",
    "qwen/qwen3-coder",
    "z-ai/glm-4.6",
)


def endpoints_url(model_id: str) -> str:
    return f"{API_BASE}/{model_id}/endpoints"


def requests() -> list[FetchRequest]:
    # provider stays None: the body names a provider per endpoint.
    return [FetchRequest(source=SOURCE_ID, url=endpoints_url(model_id)) for model_id in ENDPOINT_MODELS]


def fetch(client: httpx.Client, request: FetchRequest, clock: Callable[[], datetime] = utc_now) -> FetchedBody:
    return fetch_body(client, request.url, max_bytes=MAX_BODY_BYTES, clock=clock)


def context_for_file(path: str | Path, observed_at: datetime) -> ParseContext:
    return ParseContext(source=SOURCE_ID, observed_at=observed_at, provider=None)


def provider_slug(provider_name: str) -> str:
    """A stable provider id: lowercase, every run of other characters one '-'.

    'DeepInfra' -> 'deepinfra', 'Together' -> 'together', 'Nebius AI Studio' -> 'nebius-ai-studio',
    'Z.AI' -> 'z-ai'. It depends on the name alone, so the same provider gets the same id every day.
    """
    return provider_ids.provider_slug(provider_name)


def provider_id(provider_name: str) -> str:
    """The provider id shared across token sources (provider_aliases.csv), else the slug of the name."""
    return provider_ids.provider_id(SOURCE_ID, provider_name)


def parse(raw: bytes, ctx: ParseContext, catalog: Catalog | None = None) -> ParseResult:
    catalog = catalog or default_catalog()
    model = _model_object(load_json(raw, "OpenRouter endpoints"))
    model_id = model["id"].strip()
    endpoints = model["endpoints"]
    result = ParseResult()
    if model_id.endswith(FREE_SUFFIX):
        result.rejections.append(free_variant_rejection(model_id, compact_json({"id": model_id})))
        return result

    priced: list[tuple[dict, str, str, list]] = []  # (endpoint, provider, tag, prices)
    for position, endpoint in enumerate(endpoints):
        if not isinstance(endpoint, dict):
            result.rejections.append(
                Rejection.of(f"{model_id}|#{position}", "malformed_entry", "endpoint is not an object", show_value(endpoint))
            )
            continue
        provider_name = endpoint.get("provider_name")
        provider = provider_id(provider_name) if isinstance(provider_name, str) else ""
        tag = endpoint.get("tag") if isinstance(endpoint.get("tag"), str) else ""
        excerpt = compact_json({
            "id": model_id, "provider_name": scalar(provider_name), "tag": scalar(endpoint.get("tag")),
            "pricing": pricing_excerpt(endpoint.get("pricing")),
        })
        # Before anything else: an endpoint that says two things of one key cannot say which one holds.
        duplicate = duplicate_key_rejection(
            f"{model_id}|{provider}|{tag}|*" if provider else f"{model_id}|#{position}", endpoint, excerpt)
        if duplicate is not None:
            result.rejections.append(duplicate)
            continue
        if not provider:
            result.rejections.append(
                Rejection.of(f"{model_id}|#{position}", "malformed_entry", "endpoint has no provider_name", excerpt)
            )
            continue
        prices, rejections = read_prices(endpoint.get("pricing"), f"{model_id}|{provider}|{tag}", excerpt)
        result.rejections.extend(rejections)
        if prices:
            priced.append((endpoint, provider, tag, prices))

    if not priced:
        return result
    resolution = resolve(catalog, model_id)
    if resolution.canonical is None:
        # One rejection for the model: every endpoint's price is refused for the same reason.
        excerpt = compact_json({"id": model_id, "providers": sorted({p for _, p, _, _ in priced})})
        result.rejections.append(unknown_model_rejection(model_id, resolution, excerpt))
        return result
    variant = split_variant(model_id)[1]
    for endpoint, provider, tag, prices in priced:
        attributes = _endpoint_attributes(endpoint, variant)
        for price in prices:
            result.observations.append(
                token_observation(
                    row_key=f"{model_id}|{provider}|{tag}|{price.price_type}",
                    provider=provider,
                    canonical=resolution.canonical,
                    source_instrument=model_id,
                    price=price,
                    attributes=attributes,
                )
            )
    return result


def _model_object(body: object) -> dict:
    """The model object with its endpoints, from `{"data": {...}}` or the bare object; else a ParseError."""
    if isinstance(body, dict) and "data" in body:
        body = body["data"]
    for name, value in (("data", body), ("id", _get(body, "id")), ("endpoints", _get(body, "endpoints"))):
        if isinstance(value, Conflict):
            raise ParseError(f"OpenRouter endpoints: the body repeats '{name}' with different values; "
                             "it cannot say which holds")
    if not isinstance(body, dict):
        raise ParseError(
            f"OpenRouter endpoints: expected an object with 'id' and 'endpoints', got {type(body).__name__}"
            + (" (a models list? use the 'openrouter' source)" if isinstance(body, list) else "")
        )
    if not isinstance(body.get("id"), str) or not body["id"].strip():
        raise ParseError(f"OpenRouter endpoints: the model object has no string 'id' (keys: {sorted(body)[:10]})")
    endpoints = body.get("endpoints")
    if not isinstance(endpoints, list):
        raise ParseError(f"OpenRouter endpoints: {body['id']!r} has no 'endpoints' list")
    if not endpoints:
        # A listed model that nobody serves is not a quiet zero-row day: fail the snapshot so it is reported.
        raise ParseError(f"OpenRouter endpoints: {body['id']!r} lists no endpoints")
    return body


def _get(body: object, key: str) -> object:
    return body.get(key) if isinstance(body, dict) else None


def _endpoint_attributes(endpoint: dict, variant: str | None) -> dict:
    pricing = endpoint.get("pricing") if isinstance(endpoint.get("pricing"), dict) else {}
    attributes = {
        "provider_name": endpoint.get("provider_name"),
        "endpoint_name": endpoint.get("name"),
        "tag": endpoint.get("tag"),
        "quantization": endpoint.get("quantization"),
        "context_length": endpoint.get("context_length"),
        "max_completion_tokens": endpoint.get("max_completion_tokens"),
        "max_prompt_tokens": endpoint.get("max_prompt_tokens"),
        "status": endpoint.get("status"),
        "uptime_last_30m": endpoint.get("uptime_last_30m"),
        # Kept, not applied: whether listed prices are before or after it is not documented.
        "discount": pricing.get("discount"),
        "variant": variant,
    }
    return {key: value for key, value in attributes.items() if isinstance(value, (str, int, Decimal))}
