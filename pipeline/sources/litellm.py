"""LiteLLM's model price map: per-token prices of ~1,000 models across ~50 providers, as one JSON object.

GET https://raw.githubusercontent.com/BerriAI/litellm/main/model_prices_and_context_window.json answers

    {"sample_spec": {...},
     "gpt-4o": {"input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05,
                "cache_read_input_token_cost": 1.25e-06, "input_cost_per_token_batches": 1.25e-06, ...,
                "litellm_provider": "openai", "mode": "chat", "max_input_tokens": 128000, ...},
     "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo": {...}, ...}

Prices are JSON numbers in USD per single token. They are read with json.loads(parse_float=Decimal), so
`3e-05` is exactly 3E-5 and converts to exactly 30 USD per million tokens: no float, not even transiently.

One observation per entry (= provider and model) and price type:

    input_cost_per_token                     -> input
    output_cost_per_token                    -> output
    cache_read_input_token_cost              -> cached_input
      (input_cost_per_token_cache_hit, DeepSeek's older name, when cache_read_input_token_cost is absent)
    input_cost_per_token_batches             -> input_batch   (OpenAI/Anthropic batch API, half price)
      (input_cost_per_token_batch_requests, the older name, when input_cost_per_token_batches is absent)
    output_cost_per_token_batches            -> output_batch
    <any of the three first>_above_<N>k_tokens -> <type>_above_<N>k  (the long-context tier: the price of a
                                                request whose prompt exceeds N thousand tokens)

Batch and long-context prices are separate price types, never mixed into input/output: an index names the
price type it fixes. Every other price key is a documented exclusion, not a token price of the instruments
indexed: per character, per image, per pixel, per second, per audio token, per query, per request, reasoning
tokens priced apart, cache writes, Databricks DBUs, and the flex / priority service tiers (a different service
level, not the list price). They give no row; an entry with nothing but such prices is rejected as
`no_token_price`. The raw body keeps them all.

Provider: `litellm_provider`, mapped to the provider ids the other token sources use through
pipeline/catalog/provider_aliases.csv (together_ai -> together, vertex_ai-* -> vertex-ai, bedrock_converse
-> bedrock, azure_ai -> azure, gemini -> google, ...); an unmapped value stays a provider of its own.

The maps of early 2024 (2024-01-31, 2024-02-06) have no `litellm_provider` at all. Such an entry's provider is
taken from its key only where the key says it: a prefix `<name>/` that is one of LiteLLM's provider names in
provider_aliases.csv (`azure/`, `bedrock/`, `openrouter/`, `deepinfra/`, `perplexity/`, ...), or a bare name
of a family only one provider sells under that name in LiteLLM (BARE_NAME_PROVIDERS: OpenAI's `gpt-*`,
`ft:gpt-*`, `babbage-002`, `davinci-002`; Anthropic's `claude-*`; Bedrock's model ids `anthropic.`, `meta.`,
`amazon.`, `ai21.`, `cohere.`, `mistral.`), each rule checked against every later map that names the provider
of the same keys (tests/test_litellm.py). Any other entry without a provider is rejected as `no_provider`,
never guessed: `gemini-pro` and `chat-bison` are Google's models on Vertex AI in LiteLLM but also on AI Studio,
`command` is Cohere's on Cohere and elsewhere. An attributed row keeps `provider_from` = "key" in its attributes.

Hostile bodies (issue 10). Every number goes through records.read_decimal: a price that is a string of
garbage, a list, an object, null, a bool, NaN, or beyond 1e9 (`1e20`, `1e400`) is `bad_price`, a negative one
too (never its absolute value). A model key the map repeats with different contents is refused as
`duplicate_key` (the others load); so is an entry that repeats one of its own keys with different values
(`"input_cost_per_token": 2.5e-06, "input_cost_per_token": 5e-06`): neither value is taken.

Model: the key names the model as that provider sells it. Region parts are split off into the region column
(bedrock/<aws-region>/..., Bedrock's cross-region profiles us./eu./apac., azure/<eu|us|global|
global-standard>/...) so that one alias covers every region; the rest is looked up in model_aliases.csv (a
canonical id is an alias of itself: `gpt-4o`, `o3`). Entries of provider openrouter carry OpenRouter ids and
resolve as the openrouter sources do. A few LiteLLM keys are OpenRouter ids that mean another model there
(`deepseek/deepseek-chat` is DeepSeek's moving alias in LiteLLM, the pinned V3 on OpenRouter):
pipeline/catalog/model_alias_exclusions.csv keeps them unknown here, never guessed.
"""
from __future__ import annotations

import csv
import re
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import httpx

from pipeline.catalog import Catalog, Resolution, default_catalog, model_name_key
from pipeline.catalog.provider_ids import ALIASES_FILE, provider_id
from pipeline.http import FetchedBody, fetch_body, utc_now
from pipeline.paths import CATALOG_DIR
from pipeline.records import (
    CACHED_INPUT,
    INPUT,
    OUTPUT,
    TOKEN,
    ParseContext,
    ParseError,
    ParseResult,
    Rejection,
)
from pipeline.sources import FetchRequest
from pipeline.sources import openrouter
from pipeline.sources.jsonbody import DUPLICATE_KEY, Conflict, conflict_detail, conflicting_keys, load_json
from pipeline.sources.openrouter import (
    Price,
    PriceRejected,
    compact_json,
    read_price,
    token_observation,
    usd_per_million,
)

SOURCE_ID = "litellm"
KIND = TOKEN
DESCRIPTION = "LiteLLM model price map: USD-per-token prices of each provider and model (JSON numbers)"

MAP_URL = "https://raw.githubusercontent.com/BerriAI/litellm/main/model_prices_and_context_window.json"
# The map is about 1.5 MB in 2026 and grows; the cap only stops a runaway or hostile body.
MAX_BYTES = 64 * 1024 * 1024
EXCLUSIONS_FILE = CATALOG_DIR / "model_alias_exclusions.csv"

INPUT_BATCH = "input_batch"
OUTPUT_BATCH = "output_batch"

# (price type, keys in order of preference: the first present is read)
PRICE_KEYS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (INPUT, ("input_cost_per_token",)),
    (OUTPUT, ("output_cost_per_token",)),
    (CACHED_INPUT, ("cache_read_input_token_cost", "input_cost_per_token_cache_hit")),
    (INPUT_BATCH, ("input_cost_per_token_batches", "input_cost_per_token_batch_requests")),
    (OUTPUT_BATCH, ("output_cost_per_token_batches",)),
)
TIER_KEY = re.compile(r"^(input_cost_per_token|output_cost_per_token|cache_read_input_token_cost)_above_(\d+)k_tokens$")
TIER_BASE = {"input_cost_per_token": INPUT, "output_cost_per_token": OUTPUT, "cache_read_input_token_cost": CACHED_INPUT}

# Modes whose prices are per token of text in and out. Others (embedding, image_generation, audio_speech,
# audio_transcription, moderation(s), rerank, ...) are not LLM token instruments. An entry without a mode is
# kept: some chat models were listed without one.
TEXT_MODES = frozenset({"chat", "completion", "responses"})
SAMPLE_SPEC = "sample_spec"

# Region parts of a key, split off into the region column.
BEDROCK_REGION = re.compile(r"^bedrock/([a-z]{2}(?:-gov)?-[a-z]+-\d+)/(.+)$")
CROSS_REGION = re.compile(r"^(us|eu|apac|us-gov|global)\.(.+)$")  # Bedrock cross-region inference profiles
AZURE_REGION = re.compile(r"^azure/(us|eu|global|global-standard)/(.+)$")  # data zones and deployment types

# Bare names (no '<provider>/' prefix) that name their provider with certainty, for the entries of early maps
# without litellm_provider: (pattern of the key without its region part, LiteLLM's provider name). Each agrees
# with litellm_provider in every later map holding a key it matches (tests/test_litellm.py checks it).
# `text-embedding-*` is not one (Vertex's text-embedding-004 is Google's), nor `gemini-*`, `*-bison`, `command*`.
BARE_NAME_PROVIDERS: tuple[tuple[re.Pattern, str], ...] = (
    (re.compile(r"^(ft:)?gpt-"), "openai"),
    (re.compile(r"^(babbage|davinci)-\d"), "openai"),
    (re.compile(r"^claude-"), "anthropic"),
    (re.compile(r"^(ai21|amazon|anthropic|cohere|meta|mistral)\.[a-z]"), "bedrock"),
)
PRICE_FIELD_NAMES = ("input_cost_per_token", "output_cost_per_token")

REJECTION_REASONS: dict[str, str] = {
    "schema_example": "the map's 'sample_spec' entry documents the fields; it is not a model",
    "malformed_entry": "an entry is not an object, or its litellm_provider is not a name",
    DUPLICATE_KEY: "the map repeats the model key with different contents, or the entry repeats one of its keys "
                   "with different values: none is taken",
    "no_provider": "no litellm_provider (maps of early 2024) and the key does not name the provider",
    "not_a_text_model": "mode is not chat/completion/responses (embedding, image, audio, rerank, ...)",
    "no_token_price": "no per-token price at all (priced per second, image, character, ... only)",
    "free_listing": "a price of 0 (local runtimes such as ollama, '-Free' endpoints, unpriced previews)",
    "variable_price": "a price of -1",
    "bad_price": "a price that is not a decimal number of at most 1e9 (garbage, list, null, NaN, 1e20) or is negative",
    "unknown_instrument": "the model is not in model_aliases.csv, or model_alias_exclusions.csv keeps it out",
}


def requests() -> list[FetchRequest]:
    # provider stays None: each entry names its provider.
    return [FetchRequest(source=SOURCE_ID, url=MAP_URL)]


def fetch(client: httpx.Client, request: FetchRequest, clock: Callable[[], datetime] = utc_now) -> FetchedBody:
    return fetch_body(client, request.url, max_bytes=MAX_BYTES, clock=clock)


def context_for_file(path: str | Path, observed_at: datetime) -> ParseContext:
    return ParseContext(source=SOURCE_ID, observed_at=observed_at)


def split_region(key: str) -> tuple[str, str | None]:
    """'bedrock/eu-west-1/meta.llama3-70b-instruct-v1:0' -> ('meta.llama3-70b-instruct-v1:0', 'eu-west-1');
    'us.meta.llama3-3-70b-instruct-v1:0' -> ('meta.llama3-3-70b-instruct-v1:0', 'us');
    'azure/eu/gpt-4o-2024-08-06' -> ('azure/gpt-4o-2024-08-06', 'eu'); any other key -> (key, None)."""
    if match := BEDROCK_REGION.match(key):
        return match.group(2), match.group(1)
    if match := AZURE_REGION.match(key):
        return f"azure/{match.group(2)}", match.group(1)
    if match := CROSS_REGION.match(key):
        return match.group(2), match.group(1)
    return key, None


@lru_cache(maxsize=4)
def excluded_names(path: Path = EXCLUSIONS_FILE) -> dict[str, str]:
    """LiteLLM names that stay unknown although the alias table maps the same string for another source."""
    if not Path(path).exists():
        return {}
    with Path(path).open(newline="", encoding="utf-8") as handle:
        rows = csv.DictReader(line for line in handle if not line.startswith("#"))
        return {model_name_key(r["name"]): r["note"] for r in rows if r["source"].strip() == SOURCE_ID}


def resolve(catalog: Catalog, key: str, litellm_provider: str) -> Resolution:
    model, _ = split_region(key)
    if litellm_provider == "openrouter":
        # OpenRouter's own ids (mostly prefixed 'openrouter/'): resolved as the openrouter sources resolve them.
        return openrouter.resolve(catalog, model.removeprefix("openrouter/"))
    why_not = excluded_names(Path(catalog.folder) / EXCLUSIONS_FILE.name).get(model_name_key(model))
    if why_not is not None:
        return Resolution(None, f"model {model!r} is excluded for LiteLLM (model_alias_exclusions.csv): {why_not}")
    return catalog.resolve_model(model)


def parse(raw: bytes, ctx: ParseContext, catalog: Catalog | None = None) -> ParseResult:
    catalog = catalog or default_catalog()
    body = load_json(raw, "LiteLLM price map")
    if not isinstance(body, dict):
        raise ParseError(f"LiteLLM price map: expected a JSON object of models, got {type(body).__name__}")
    entries = {k: v for k, v in body.items() if k != SAMPLE_SPEC}
    if not entries:
        raise ParseError("LiteLLM price map: the object has no model entries")
    # A JSON object where no entry has a per-token price, or where most entries do not look like a model's
    # (mode, litellm_provider or a cost), is not the price map (a changed format, or another file): fail the
    # snapshot rather than reject a thousand rows one by one. litellm_provider is not required: the maps of
    # early 2024 have none.
    priced = sum(1 for v in entries.values() if isinstance(v, dict) and any(k in v for k in PRICE_FIELD_NAMES))
    model_like = sum(1 for v in entries.values() if isinstance(v, dict) and _looks_like_a_model(v))
    if not priced or 2 * model_like < len(entries):
        raise ParseError(
            f"LiteLLM price map: {priced} of the {len(entries)} entries have input_cost_per_token or "
            f"output_cost_per_token, {model_like} a mode, litellm_provider or cost (first keys: "
            f"{sorted(entries)[:5]}); this is not the price map"
        )
    result = ParseResult()
    if SAMPLE_SPEC in body:
        result.rejections.append(
            Rejection.of(SAMPLE_SPEC, "schema_example", "documents the fields of an entry", _excerpt(body[SAMPLE_SPEC]))
        )
    for key, entry in entries.items():
        _parse_entry(key, entry, catalog, result)
    return result


def _looks_like_a_model(entry: dict) -> bool:
    return "mode" in entry or "litellm_provider" in entry or any(isinstance(k, str) and "cost" in k for k in entry)


def _excerpt(value: object) -> str:
    """The JSON text of a value for a rejection; a value nested too deep to write gives its type instead."""
    try:
        return compact_json(value)
    except (RecursionError, ValueError):
        return f"<{type(value).__name__} nested too deep to quote>"


def attributed_provider(key: str) -> tuple[str, str] | tuple[None, None]:
    """(LiteLLM's provider name, how it was found) for an entry without litellm_provider, from its key alone:
    a '<provider>/' prefix that is a LiteLLM provider name, or a bare name of BARE_NAME_PROVIDERS; else
    (None, None). 'azure/gpt-4' -> ('azure', 'key prefix'); 'gpt-4' -> ('openai', 'model name');
    'gemini-pro' -> (None, None)."""
    prefix, slash, _ = key.partition("/")
    if slash and prefix.lower() in litellm_provider_names():
        return prefix.lower(), "key prefix"
    if not slash:
        model, _ = split_region(key)
        for pattern, provider in BARE_NAME_PROVIDERS:
            if pattern.match(model):
                return provider, "model name"
    return None, None


@lru_cache(maxsize=4)
def litellm_provider_names(path: Path = ALIASES_FILE) -> frozenset[str]:
    """LiteLLM's provider names listed in provider_aliases.csv (exact names, not the '*' prefix rules)."""
    with Path(path).open(newline="", encoding="utf-8") as handle:
        rows = csv.DictReader(line for line in handle if not line.startswith("#"))
        return frozenset(
            name.lower() for r in rows
            if (r["source"] or "").strip() == SOURCE_ID and (name := (r["name"] or "").strip()) and not name.endswith("*")
        )


def _parse_entry(key: str, entry: object, catalog: Catalog, result: ParseResult) -> None:
    if isinstance(entry, Conflict):
        result.rejections.append(Rejection.of(
            key, DUPLICATE_KEY, f"the map repeats model key {key!r} {len(entry.values)} times with different "
            "contents; none is taken", _excerpt(entry.values)))
        return
    if not isinstance(entry, dict):
        result.rejections.append(Rejection.of(key, "malformed_entry", f"entry is {type(entry).__name__}, not an object", _excerpt(entry)))
        return
    conflicts = conflicting_keys(entry)
    if conflicts:
        result.rejections.append(Rejection.of(key, DUPLICATE_KEY, conflict_detail(conflicts), _excerpt(
            {"key": key, **{k: v for k, v in entry.items() if k in conflicts}})))
        return
    litellm_provider = entry.get("litellm_provider")
    mode = entry.get("mode")
    excerpt = _excerpt({"key": key, **{k: v for k, v in entry.items() if "cost" in k or k in ("litellm_provider", "mode")}})
    if mode is not None and not (isinstance(mode, str) and mode in TEXT_MODES):
        result.rejections.append(Rejection.of(key, "not_a_text_model", f"mode {_excerpt(mode)[:80]}", excerpt))
        return
    fields = _price_fields(entry)
    if not fields:
        priced_otherwise = sorted(k for k in entry if "cost" in k)
        result.rejections.append(
            Rejection.of(key, "no_token_price", f"no per-token price; priced by {priced_otherwise or 'nothing'}", excerpt)
        )
        return
    provider_from = None
    if litellm_provider is None:
        litellm_provider, provider_from = attributed_provider(key)
        if litellm_provider is None:
            result.rejections.append(Rejection.of(
                key, "no_provider", "entry has no litellm_provider and its key names no provider", excerpt))
            return
    elif not isinstance(litellm_provider, str) or not litellm_provider.strip():
        result.rejections.append(Rejection.of(key, "malformed_entry", "litellm_provider is not a provider name", excerpt))
        return
    prices: list[Price] = []
    for price_type, field_name in fields:
        try:
            per_token = read_price(entry[field_name])
            prices.append(Price(price_type, per_token, usd_per_million(per_token)))
        except PriceRejected as exc:
            result.rejections.append(Rejection.of(f"{key}|{price_type}", exc.reason, f"{field_name}: {exc.detail}", excerpt))
    if not prices:
        return
    resolution = resolve(catalog, key, litellm_provider)
    if resolution.canonical is None:
        result.rejections.append(Rejection.of(key, "unknown_instrument", resolution.detail, excerpt))
        return
    _, region = split_region(key)
    provider = provider_id(SOURCE_ID, litellm_provider)
    attributes = _attributes(entry, litellm_provider)
    if provider_from is not None:
        attributes["provider_from"] = provider_from
    for price in prices:
        obs = token_observation(
            row_key=f"{key}|{price.price_type}",
            provider=provider,
            canonical=resolution.canonical,
            source_instrument=key,
            price=price,
            attributes=attributes,
        )
        result.observations.append(obs if region is None else replace(obs, region=region))


def _price_fields(entry: dict) -> list[tuple[str, str]]:
    """(price type, the key it is read from) for every token price the entry has."""
    found = []
    for price_type, keys in PRICE_KEYS:
        for name in keys:
            if name in entry:
                found.append((price_type, name))
                break
    for name in sorted(entry):
        if match := TIER_KEY.match(name):
            found.append((f"{TIER_BASE[match.group(1)]}_above_{match.group(2)}k", name))
    return found


def _attributes(entry: dict, litellm_provider: str) -> dict:
    attributes = {
        "litellm_provider": litellm_provider,
        "mode": entry.get("mode"),
        "max_input_tokens": entry.get("max_input_tokens"),
        "max_output_tokens": entry.get("max_output_tokens"),
        "deprecation_date": entry.get("deprecation_date"),
    }
    return {key: value for key, value in attributes.items() if value is not None and not isinstance(value, (dict, list))}
