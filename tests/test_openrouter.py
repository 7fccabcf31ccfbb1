"""The OpenRouter sources: the models list (`openrouter`) and the per-model endpoints (`openrouter_endpoints`).

Golden values are worked out by hand from the per-token strings: USD per million = string x 1,000,000,
e.g. "0.000002" -> 2, "0.0000000252" -> 0.0252. The real files in ../shared are checked when present.
"""
from __future__ import annotations

import json
import shutil
import tomllib
from collections import Counter
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from pipeline.catalog import Catalog
from pipeline.http import FetchError, make_client
from pipeline.normalise import parse_body
from pipeline.paths import CATALOG_DIR, DEMO_FIXTURES_DIR
from pipeline.records import CACHED_INPUT, INPUT, OUTPUT, TOKEN, ParseError, quantize_usd
from pipeline.sources import FetchRequest, openrouter, openrouter_endpoints
from pipeline.sources.openrouter import PriceRejected, read_price, usd_per_million
from pipeline.sources.openrouter_endpoints import ENDPOINT_MODELS, provider_slug

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "openrouter"
OBSERVED_AT = datetime(2026, 5, 7, 6, 0, tzinfo=timezone.utc)
MODELS_URL = "https://openrouter.ai/api/v1/models"

# The reasons a real models list may give, and why each is expected there.
EXPECTED_REAL_REASONS = {
    "unknown_instrument",  # most of the ~350 models are not in the catalog (fine-tunes, niche vendors)
    "free_listing",  # ':free' variants and a few "0"-priced routers/previews
    "variable_price",  # openrouter/auto, openrouter/bodybuilder, openrouter/pareto-code: "-1"
}


def D(text: str) -> Decimal:
    return Decimal(text)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Catalog:
    """The project's model catalog, on its own: GPU files are another source's business, so empty ones here."""
    folder = tmp_path_factory.mktemp("catalog")
    for name in ("models.csv", "model_aliases.csv"):
        shutil.copy(CATALOG_DIR / name, folder / name)
    (folder / "gpus.csv").write_text("canonical_gpu,min_usd_per_gpu_hour,max_usd_per_gpu_hour\n")
    (folder / "gpu_aliases.csv").write_text("name,canonical_gpu,provider,instance_type_pattern,gpu_memory_mib\n")
    return Catalog(folder)


def models_ctx():
    return openrouter.context_for_file("models.json", OBSERVED_AT)


def endpoints_ctx():
    return openrouter_endpoints.context_for_file("endpoints.json", OBSERVED_AT)


def parse_models(raw: bytes, catalog: Catalog):
    return openrouter.parse(raw, models_ctx(), catalog=catalog)


def parse_endpoints(raw: bytes, catalog: Catalog):
    return openrouter_endpoints.parse(raw, endpoints_ctx(), catalog=catalog)


def by_key(result) -> dict:
    return {o.row_key: o for o in result.observations}


def rejection_pairs(result) -> Counter:
    return Counter((r.row_key, r.reason) for r in result.rejections)


# --- the price rules ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "per_million"),
    [
        ("0.000002", "2.0000000000"),  # $2 per million
        ("0.0000000252", "0.0252000000"),  # DeepSeek V3.2 cached input
        ("0.00000032", "0.3200000000"),
        ("0.000000075", "0.0750000000"),
        ("0.00015", "150.0000000000"),
        ("1e-6", "1.0000000000"),  # exponent notation is still an exact decimal
        # A real string (2026-02-27, qwen-2.5-coder-32b): float noise written out; kept exact, rounded at 10 places.
        ("0.00000020000000000000002", "0.2000000000"),
    ],
)
def test_per_token_strings_become_usd_per_million_exactly(text, per_million):
    per_token = read_price(text)
    assert per_token == D(text) and isinstance(per_token, Decimal)
    converted = usd_per_million(per_token)
    assert converted == D(per_million)
    assert str(converted) == per_million  # the 10-place quantum, not a float's repr


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("0", "free_listing"),
        ("0.000", "free_listing"),
        ("-1", "variable_price"),
        ("-0.0000001", "bad_price"),
        ("-2", "bad_price"),
        ("abc", "bad_price"),
        ("", "bad_price"),
        ("0.000001 USD", "bad_price"),
        ("NaN", "bad_price"),
        ("Infinity", "bad_price"),
        (None, "bad_price"),
        (True, "bad_price"),
        ({"value": "0.000001"}, "bad_price"),
        # Issue 10: garbage magnitudes, spellings Decimal() would read, and other JSON types.
        ("1e20", "bad_price"),
        (D("1E+20"), "bad_price"),
        (10**20, "bad_price"),
        ("-0.000001", "bad_price"),  # negative, and not the "-1" marker: never read as 0.000001
        ("-1.0", "variable_price"),
        ("1_000", "bad_price"),
        ("０.００００１", "bad_price"),  # full-width digits: Decimal() reads them, the API never writes them
        ("٠.٠٠٠٠١", "bad_price"),  # Arabic-Indic digits
        ("0." + "0" * 70 + "1", "bad_price"),  # longer than any price
        (["0.000001"], "bad_price"),
        (0.000001, "bad_price"),  # a float never reaches a price (load_json gives Decimal)
    ],
)
def test_unusable_prices_are_refused_with_their_reason(value, reason):
    with pytest.raises(PriceRejected) as caught:
        read_price(value)
    assert caught.value.reason == reason


def test_a_price_too_large_for_the_decimal_context_is_a_bad_price_not_a_crash():
    with pytest.raises(PriceRejected) as caught:
        usd_per_million(read_price("1e30"))
    assert caught.value.reason == "bad_price"


def test_numeric_json_prices_are_read_exactly_not_through_float(catalog):
    # 0.1 + 0.2 style noise would show if the number went through float: 3e-7 as a float is 2.9999999999999997e-07.
    body = b'{"data":[{"id":"meta-llama/llama-3.3-70b-instruct","pricing":{"prompt":3e-7,"completion":0.00000032}}]}'
    obs = by_key(parse_models(body, catalog))
    assert obs["meta-llama/llama-3.3-70b-instruct|input"].original_price == D("3E-7")
    assert obs["meta-llama/llama-3.3-70b-instruct|input"].usd_price == D("0.3")
    assert obs["meta-llama/llama-3.3-70b-instruct|output"].usd_price == D("0.32")


# --- the models list ---------------------------------------------------------------------------------------


def test_wrapped_models_list_gives_the_hand_worked_prices_and_rejections(catalog):
    result = parse_models((FIXTURES / "models_wrapped.json").read_bytes(), catalog)
    got = {key: (o.instrument, o.price_type, o.usd_price) for key, o in by_key(result).items()}
    assert got == {
        "openai/gpt-4.1|input": ("gpt-4.1", INPUT, D("2")),
        "openai/gpt-4.1|output": ("gpt-4.1", OUTPUT, D("8")),
        "openai/gpt-4.1|cached_input": ("gpt-4.1", CACHED_INPUT, D("0.5")),
        "deepseek/deepseek-v3.2|input": ("deepseek-v3.2", INPUT, D("0.252")),
        "deepseek/deepseek-v3.2|output": ("deepseek-v3.2", OUTPUT, D("0.378")),
        "deepseek/deepseek-v3.2|cached_input": ("deepseek-v3.2", CACHED_INPUT, D("0.0252")),
        # ':thinking' runs Claude 3.7 Sonnet's weights: same canonical model, the variant stays in the key.
        "anthropic/claude-3.7-sonnet:thinking|input": ("claude-3.7-sonnet", INPUT, D("3")),
        "anthropic/claude-3.7-sonnet:thinking|output": ("claude-3.7-sonnet", OUTPUT, D("15")),
        "anthropic/claude-3.7-sonnet:thinking|cached_input": ("claude-3.7-sonnet", CACHED_INPUT, D("0.3")),
        # its prompt string is garbled, its completion price is fine and kept
        "mistralai/mistral-nemo|output": ("mistral-nemo", OUTPUT, D("0.04")),
    }
    assert rejection_pairs(result) == Counter(
        {
            ("meta-llama/llama-3.3-70b-instruct:free", "free_listing"): 1,  # one per free variant, not per price
            ("openrouter/free|input", "free_listing"): 1,  # "0" on a non-':free' id: per price
            ("openrouter/free|output", "free_listing"): 1,
            ("openrouter/auto|input", "variable_price"): 1,
            ("openrouter/auto|output", "variable_price"): 1,
            ("thedrummer/rocinante-12b", "unknown_instrument"): 1,  # one per model
            ("mistralai/mistral-nemo|input", "bad_price"): 1,
            ("qwen/qwen-2.5-72b-instruct|input", "bad_price"): 1,  # negative
            ("qwen/qwen-2.5-72b-instruct|output", "bad_price"): 1,  # NaN
            ("#9", "malformed_entry"): 1,  # the string in the list
        }
    )
    assert {r.reason for r in result.rejections} <= set(openrouter.REJECTION_REASONS)


def test_models_observations_carry_the_original_price_unit_and_provenance(catalog):
    result = parse_models((FIXTURES / "models_wrapped.json").read_bytes(), catalog)
    gpt = by_key(result)["openai/gpt-4.1|input"]
    assert gpt.provider == "openrouter"
    assert gpt.instrument_kind == TOKEN
    assert gpt.source_instrument == "openai/gpt-4.1"
    assert gpt.original_price == D("0.000002")
    assert (gpt.original_currency, gpt.original_unit) == ("USD", "token")
    assert gpt.attributes["context_length"] == 1047576
    assert gpt.attributes["canonical_slug"] == "openai/gpt-4.1-2025-04-14"
    assert "variant" not in gpt.attributes
    thinking = by_key(result)["anthropic/claude-3.7-sonnet:thinking|output"]
    assert thinking.attributes["variant"] == "thinking"
    for obs in result.observations:
        assert obs.usd_price == quantize_usd(obs.original_price * 1_000_000)


def test_rejection_excerpt_is_compact_json_of_id_and_pricing(catalog):
    result = parse_models((FIXTURES / "models_wrapped.json").read_bytes(), catalog)
    auto = next(r for r in result.rejections if r.row_key == "openrouter/auto|input")
    assert json.loads(auto.raw_excerpt) == {"id": "openrouter/auto", "pricing": {"prompt": "-1", "completion": "-1"}}
    assert " " not in auto.raw_excerpt
    unknown = next(r for r in result.rejections if r.reason == "unknown_instrument")
    assert "thedrummer/rocinante-12b" in unknown.detail


def test_bare_array_reads_like_the_wrapped_response(catalog):
    raw = (FIXTURES / "models_bare.json").read_bytes()
    bare = parse_models(raw, catalog)
    wrapped = parse_models(b'{"data": ' + raw + b"}", catalog)
    got = {k: (o.instrument, o.usd_price) for k, o in by_key(bare).items()}
    assert got == {
        "meta-llama/llama-3.1-8b-instruct|input": ("llama-3.1-8b", D("0.02")),
        "meta-llama/llama-3.1-8b-instruct|output": ("llama-3.1-8b", D("0.05")),
        "meta-llama/llama-3.3-70b-instruct|input": ("llama-3.3-70b", D("0.1")),
        "meta-llama/llama-3.3-70b-instruct|output": ("llama-3.3-70b", D("0.32")),
    }
    assert bare.observations == wrapped.observations and not bare.rejections


@pytest.mark.parametrize(
    ("variant_id", "variant"),
    [("meta-llama/llama-3.3-70b-instruct:nitro", "nitro"), ("meta-llama/llama-3.3-70b-instruct:extended", "extended")],
)
def test_a_variant_suffix_is_stripped_for_the_catalog_but_kept_in_key_and_attributes(catalog, variant_id, variant):
    body = json.dumps({"data": [{"id": variant_id, "pricing": {"prompt": "0.0000006", "completion": "0.0000006"}}]})
    obs = by_key(parse_models(body.encode(), catalog))
    assert set(obs) == {f"{variant_id}|input", f"{variant_id}|output"}
    assert {o.instrument for o in obs.values()} == {"llama-3.3-70b"}
    assert {o.attributes["variant"] for o in obs.values()} == {variant}


@pytest.mark.parametrize(
    "raw",
    [
        (FIXTURES / "not_json.html").read_bytes(),
        b"",
        b"\xff\xfe\x00garbage",
        b"42",
        b'"a string"',
        b'{"models": []}',  # no "data"
        b'{"data": {"id": "x"}}',  # an object where the list should be
        b'{"data": []}',  # an empty page
        b"[]",
        b"[1, 2, 3]",  # a list, but of no models
        b'[{"name": "DeepInfra", "slug": "deepinfra"}]',  # a providers list
        b"[" * 100_000,  # hostile nesting
    ],
)
def test_a_body_that_is_not_a_models_list_raises_parse_error(catalog, raw):
    with pytest.raises(ParseError, match="OpenRouter models list"):
        parse_models(raw, catalog)


def test_the_endpoints_body_is_not_a_models_list(catalog):
    with pytest.raises(ParseError, match="not a models list|expected a list"):
        parse_models((FIXTURES / "endpoints_llama33.json").read_bytes(), catalog)


# --- the per-model endpoints -------------------------------------------------------------------------------


def test_endpoints_with_three_providers_give_three_providers_for_one_canonical_model(catalog):
    result = parse_endpoints((FIXTURES / "endpoints_llama33.json").read_bytes(), catalog)
    assert not result.rejections
    assert {o.instrument for o in result.observations} == {"llama-3.3-70b"}
    assert {o.provider for o in result.observations} == {"deepinfra", "together", "nebius-ai-studio"}
    got = {key: (o.provider, o.price_type, o.usd_price) for key, o in by_key(result).items()}
    m = "meta-llama/llama-3.3-70b-instruct"
    assert got == {
        f"{m}|deepinfra|deepinfra/fp8|input": ("deepinfra", INPUT, D("0.23")),
        f"{m}|deepinfra|deepinfra/fp8|output": ("deepinfra", OUTPUT, D("0.4")),
        f"{m}|together|together/fp8|input": ("together", INPUT, D("0.88")),
        f"{m}|together|together/fp8|output": ("together", OUTPUT, D("0.88")),
        f"{m}|nebius-ai-studio|nebius/fp8|input": ("nebius-ai-studio", INPUT, D("0.13")),
        f"{m}|nebius-ai-studio|nebius/fp8|output": ("nebius-ai-studio", OUTPUT, D("0.4")),
        f"{m}|nebius-ai-studio|nebius/fp8|cached_input": ("nebius-ai-studio", CACHED_INPUT, D("0.065")),
    }
    nebius = by_key(result)[f"{m}|nebius-ai-studio|nebius/fp8|input"]
    assert nebius.attributes["provider_name"] == "Nebius AI Studio"
    assert nebius.attributes["quantization"] == "fp8"
    assert nebius.attributes["status"] == -1  # kept for the record; the listed price is still the price
    assert nebius.original_price == D("0.00000013") and nebius.original_unit == "token"
    assert nebius.source_instrument == m


def test_endpoints_edge_cases_share_the_models_list_rules(catalog):
    result = parse_endpoints((FIXTURES / "endpoints_edge.json").read_bytes(), catalog)
    m = "openai/gpt-oss-120b"
    got = {key: o.usd_price for key, o in by_key(result).items()}
    assert got == {
        # one provider, two endpoints told apart by their tag
        f"{m}|deepinfra|deepinfra/bf16|input": D("0.05"),
        f"{m}|deepinfra|deepinfra/bf16|output": D("0.45"),
        f"{m}|deepinfra|deepinfra/turbo|input": D("0.09"),
        f"{m}|deepinfra|deepinfra/turbo|output": D("0.45"),
        f"{m}|groq|groq|input": D("0.15"),
        f"{m}|groq|groq|output": D("0.75"),
        f"{m}|groq|groq|cached_input": D("0.075"),
    }
    assert {o.instrument for o in result.observations} == {"gpt-oss-120b"}
    assert rejection_pairs(result) == Counter(
        {
            (f"{m}|chutes|chutes|input", "free_listing"): 1,
            (f"{m}|chutes|chutes|output", "free_listing"): 1,
            (f"{m}|mystery-cloud|mystery|input", "variable_price"): 1,
            (f"{m}|mystery-cloud|mystery|output", "variable_price"): 1,
            (f"{m}|#4", "malformed_entry"): 1,  # no provider_name
        }
    )


def test_endpoints_of_an_unknown_model_are_one_rejection(catalog):
    body = {"data": {"id": "sao10k/l3.3-euryale-70b", "endpoints": [
        {"provider_name": "DeepInfra", "tag": "deepinfra", "pricing": {"prompt": "0.00000065", "completion": "0.00000075"}},
        {"provider_name": "Novita", "tag": "novita", "pricing": {"prompt": "0.0000007", "completion": "0.0000008"}},
    ]}}
    result = parse_endpoints(json.dumps(body).encode(), catalog)
    assert not result.observations
    assert rejection_pairs(result) == Counter({("sao10k/l3.3-euryale-70b", "unknown_instrument"): 1})


def test_endpoints_of_a_free_variant_are_one_free_listing(catalog):
    body = {"data": {"id": "meta-llama/llama-3.3-70b-instruct:free", "endpoints": [
        {"provider_name": "Venice", "tag": "venice", "pricing": {"prompt": "0", "completion": "0"}}]}}
    result = parse_endpoints(json.dumps(body).encode(), catalog)
    assert not result.observations
    assert rejection_pairs(result) == Counter({("meta-llama/llama-3.3-70b-instruct:free", "free_listing"): 1})


@pytest.mark.parametrize(
    "raw",
    [
        (FIXTURES / "not_json.html").read_bytes(),
        (FIXTURES / "models_bare.json").read_bytes(),  # a models list, not one model's endpoints
        b'{"data": []}',
        b'{"data": {"endpoints": []}}',  # no id
        b'{"data": {"id": "meta-llama/llama-3.3-70b-instruct"}}',  # no endpoints
        b'{"data": {"id": "meta-llama/llama-3.3-70b-instruct", "endpoints": []}}',  # nobody serves it
        b'{"error": {"message": "Rate limit exceeded", "code": 429}}',
    ],
)
def test_a_body_that_is_not_an_endpoints_object_raises_parse_error(catalog, raw):
    with pytest.raises(ParseError, match="OpenRouter endpoints"):
        parse_endpoints(raw, catalog)


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("DeepInfra", "deepinfra"),
        ("Together", "together"),
        ("Nebius AI Studio", "nebius-ai-studio"),
        ("Z.AI", "z-ai"),
        ("Amazon Bedrock", "amazon-bedrock"),
        ("  Groq  ", "groq"),
        ("=HYPERLINK(\"x\")", "hyperlink-x"),  # formula characters never reach a provider id
    ],
)
def test_provider_slug(name, slug):
    assert provider_slug(name) == slug


@pytest.mark.parametrize(
    ("name", "provider"),
    [
        ("DeepInfra", "deepinfra"),  # no row: the slug, as before
        ("Together", "together"),
        ("Amazon Bedrock", "bedrock"),  # the id LiteLLM's bedrock / bedrock_converse also get
        ("Google", "vertex-ai"),  # OpenRouter's "Google" provider is Vertex AI (its slug: google-vertex)
        ("Google AI Studio", "google"),  # LiteLLM's gemini, llm-prices' google: Google's first-party API
        ("Nebius", "nebius-ai-studio"),  # the token API, not the GPU cloud 'nebius'
        ("Moonshot AI", "moonshot-ai"),
    ],
)
def test_endpoint_providers_get_the_provider_ids_shared_by_the_token_sources(name, provider):
    body = json.dumps({"data": {"id": "meta-llama/llama-3.3-70b-instruct", "endpoints": [
        {"provider_name": name, "tag": "t", "pricing": {"prompt": "0.0000002", "completion": "0.0000006"}}
    ]}}).encode()
    assert {o.provider for o in openrouter_endpoints.parse(body, endpoints_ctx()).observations} == {provider}


# --- requests, fetch, catalog ------------------------------------------------------------------------------


def test_requests_are_the_models_list_and_one_endpoints_url_per_model():
    assert [(r.source, r.url, r.provider) for r in openrouter.requests()] == [("openrouter", MODELS_URL, "openrouter")]
    assert 20 <= len(ENDPOINT_MODELS) <= 30 and len(set(ENDPOINT_MODELS)) == len(ENDPOINT_MODELS)
    requests = openrouter_endpoints.requests()
    assert [r.url for r in requests] == [f"{MODELS_URL}/{m}/endpoints" for m in ENDPOINT_MODELS]
    assert {(r.source, r.provider) for r in requests} == {("openrouter_endpoints", None)}
    for model_id in ENDPOINT_MODELS:
        author, slug = model_id.split("/")
        assert author and slug and ":" not in model_id


def test_endpoint_models_resolve_to_distinct_open_weight_canonical_models(catalog):
    canonical = [catalog.resolve_model(m).canonical for m in ENDPOINT_MODELS]
    assert None not in canonical and len(set(canonical)) == len(canonical)
    assert {catalog.models[c]["open_weights"] for c in canonical} == {"true"}


def test_fetch_goes_through_fetch_body_and_keeps_the_bytes():
    body = (FIXTURES / "models_bare.json").read_bytes()
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, headers={"Content-Type": "application/json"}, content=body)

    with make_client(httpx.MockTransport(handler)) as client:
        fetched = openrouter.fetch(client, openrouter.requests()[0], clock=lambda: OBSERVED_AT)
    assert seen == [MODELS_URL]
    assert (fetched.status, fetched.body, fetched.fetched_at) == (200, body, OBSERVED_AT)


def test_fetch_refuses_a_body_over_the_cap(monkeypatch):
    monkeypatch.setattr(openrouter_endpoints, "MAX_BODY_BYTES", 100)
    transport = httpx.MockTransport(lambda request: httpx.Response(200, content=b"x" * 1000))
    with make_client(transport) as client, pytest.raises(FetchError, match="cap"):
        openrouter_endpoints.fetch(client, openrouter_endpoints.requests()[0])


def test_a_429_is_a_transient_fetch_error():
    transport = httpx.MockTransport(lambda request: httpx.Response(429, content=b'{"error":{"code":429}}'))
    with make_client(transport) as client, pytest.raises(FetchError) as caught:
        openrouter_endpoints.fetch(client, FetchRequest("openrouter_endpoints", openrouter_endpoints.requests()[0].url))
    assert caught.value.transient and caught.value.status == 429


def test_context_for_file():
    ctx = openrouter.context_for_file(Path("x.json"), OBSERVED_AT)
    assert (ctx.source, ctx.observed_at, ctx.provider) == ("openrouter", OBSERVED_AT, "openrouter")
    ctx = openrouter_endpoints.context_for_file(Path("x.json"), OBSERVED_AT)
    assert (ctx.source, ctx.observed_at, ctx.provider) == ("openrouter_endpoints", OBSERVED_AT, None)


def test_catalog_keeps_same_weights_together_and_other_weights_apart(catalog):
    for alias in (
        "meta-llama/llama-3.3-70b-instruct",
        "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo",
        "groq/llama-3.3-70b-versatile",
        "fireworks_ai/accounts/fireworks/models/llama-v3p3-70b-instruct",
        "deepinfra/meta-llama/Llama-3.3-70B-Instruct",
    ):
        assert catalog.resolve_model(alias).canonical == "llama-3.3-70b", alias
    assert catalog.resolve_model("deepseek/deepseek-r1-distill-llama-70b").canonical == "deepseek-r1-distill-llama-70b"
    assert catalog.resolve_model("deepseek/deepseek-chat-v3-0324").canonical == "deepseek-v3-0324"
    assert catalog.resolve_model("deepseek/deepseek-chat").canonical == "deepseek-v3"
    assert catalog.resolve_model("meta-llama/llama-3.1-405b").canonical is None  # the base model, not the instruct
    assert catalog.resolve_model("openai/gpt-4o-2024-05-13").canonical is None  # priced apart from gpt-4o
    assert catalog.resolve_model("~anthropic/claude-sonnet-latest").canonical is None  # a moving alias


def test_catalog_bands_catch_a_thousandfold_unit_error_of_every_real_headline_price(catalog, shared_real):
    """Each band is wide, but a price x1000 or /1000 of any real OpenRouter headline price falls outside it."""
    assert 60 <= len(catalog.models) <= 120
    checked = 0
    for path in sorted((shared_real / "openrouter").glob("models_*.json")):
        for obs in parse_models(path.read_bytes(), catalog).observations:
            band = catalog.band(TOKEN, obs.instrument)
            assert band is not None and 0 < band.low < band.high
            assert band.low <= obs.usd_price <= band.high, (path.name, obs.row_key)
            assert obs.usd_price * 1000 > band.high and obs.usd_price / 1000 < band.low, (path.name, obs.row_key)
            checked += 1
    assert checked > 1000


# --- the real files ----------------------------------------------------------------------------------------

REAL_MODELS_FILES = [
    "models_data_sorted_2026-02-27.json",
    "models_data_sorted_2026-03-15.json",
    "models_data_sorted_2026-03-31.json",
    "models_response_2026-05-07.json",
]
# Counted by hand from the files: free_listing = ':free' ids (one each) + 2 per other "0"-priced model
# (prompt and completion); variable_price = 2 per "-1" model.
#   02-27: 25 ':free' + 4 zero-priced (x2)    = 33;  2 "-1" models = 4
#   03-15: 25 + 3 x 2 = 31;  4        03-31: 24 + 3 x 2 = 30;  4        05-07: 25 + 4 x 2 = 33;  3 "-1" models = 6
REAL_FREE_AND_VARIABLE = {
    "models_data_sorted_2026-02-27.json": (33, 4),
    "models_data_sorted_2026-03-15.json": (31, 4),
    "models_data_sorted_2026-03-31.json": (30, 4),
    "models_response_2026-05-07.json": (33, 6),
}


@pytest.mark.parametrize("name", REAL_MODELS_FILES)
def test_real_models_list_parses_with_explained_rejections_only(catalog, shared_real, name):
    raw = (shared_real / "openrouter" / name).read_bytes()
    result = parse_body(openrouter, raw, models_ctx(), catalog)  # the parser, then the shared checks
    reasons = Counter(r.reason for r in result.rejections)
    assert set(reasons) <= EXPECTED_REAL_REASONS, reasons  # no band, duplicate or bad_price rejection
    assert (reasons["free_listing"], reasons["variable_price"]) == REAL_FREE_AND_VARIABLE[name]
    body = json.loads(raw)
    entries = body["data"] if isinstance(body, dict) else body
    free_ids = {e["id"] for e in entries if e["id"].endswith(":free")}
    assert free_ids <= {r.row_key for r in result.rejections if r.reason == "free_listing"}
    # Floors: ~290 observations over ~115 canonical models today; far fewer means aliases or parsing broke.
    assert len(result.observations) >= 250
    assert len({o.instrument for o in result.observations}) >= 100
    # every model is accounted for: an observation, or a rejection naming it
    accounted = {o.source_instrument for o in result.observations} | {r.row_key.split("|")[0] for r in result.rejections}
    assert accounted == {e["id"] for e in entries}


def test_real_2026_05_07_prices_checked_by_hand(catalog, shared_real):
    raw = (shared_real / "openrouter" / "models_response_2026-05-07.json").read_bytes()
    obs = by_key(parse_models(raw, catalog))
    expected = {
        # meta-llama/llama-3.3-70b-instruct: prompt "0.0000001", completion "0.00000032"
        "meta-llama/llama-3.3-70b-instruct|input": ("llama-3.3-70b", D("0.0000001"), D("0.1")),
        "meta-llama/llama-3.3-70b-instruct|output": ("llama-3.3-70b", D("0.00000032"), D("0.32")),
        # deepseek/deepseek-v3.2: "0.000000252", "0.000000378", cache read "0.0000000252"
        "deepseek/deepseek-v3.2|input": ("deepseek-v3.2", D("0.000000252"), D("0.252")),
        "deepseek/deepseek-v3.2|output": ("deepseek-v3.2", D("0.000000378"), D("0.378")),
        "deepseek/deepseek-v3.2|cached_input": ("deepseek-v3.2", D("0.0000000252"), D("0.0252")),
        # deepseek/deepseek-chat-v3-0324 cache read "0.000000135"
        "deepseek/deepseek-chat-v3-0324|cached_input": ("deepseek-v3-0324", D("0.000000135"), D("0.135")),
        # openai/gpt-4.1: "0.000002", "0.000008", cache read "0.0000005"
        "openai/gpt-4.1|input": ("gpt-4.1", D("0.000002"), D("2")),
        "openai/gpt-4.1|output": ("gpt-4.1", D("0.000008"), D("8")),
        "openai/gpt-4.1|cached_input": ("gpt-4.1", D("0.0000005"), D("0.5")),
        "anthropic/claude-3.7-sonnet:thinking|output": ("claude-3.7-sonnet", D("0.000015"), D("15")),
    }
    for key, (instrument, original, usd) in expected.items():
        assert (obs[key].instrument, obs[key].original_price, obs[key].usd_price) == (instrument, original, usd), key
    # openrouter/auto is "-1": refused for both price types, never an observation
    assert not any(k.startswith("openrouter/auto|") for k in obs)


def test_real_float_noise_string_is_kept_exactly(catalog, shared_real):
    raw = (shared_real / "openrouter" / "models_data_sorted_2026-02-27.json").read_bytes()
    coder = by_key(parse_models(raw, catalog))["qwen/qwen-2.5-coder-32b-instruct|input"]
    assert coder.original_price == D("0.00000020000000000000002")
    assert coder.usd_price == D("0.2000000000")


def test_real_providers_response_is_not_a_models_list(catalog, shared_real):
    raw = (shared_real / "openrouter" / "providers_response_2026-05-07.json").read_bytes()
    with pytest.raises(ParseError, match="none of the 81 entries has 'id' and 'pricing'"):
        parse_models(raw, catalog)
    with pytest.raises(ParseError, match="OpenRouter endpoints"):
        parse_endpoints(raw, catalog)


# --- the demo recordings -----------------------------------------------------------------------------------

DEMO_DATES = ["2026-11-16", "2026-11-17", "2026-11-18", "2026-11-19", "2026-11-20"]
RATE_LIMITED = ("2026-11-18", f"{MODELS_URL}/qwen/qwen-2.5-72b-instruct/endpoints")


def demo_responses(day: str) -> dict[str, dict]:
    folder = DEMO_FIXTURES_DIR / day
    manifest = tomllib.loads((folder / "manifest-openrouter.toml").read_text(encoding="utf-8"))
    return {entry["url"]: entry for entry in manifest["response"]}


@pytest.mark.parametrize("day", DEMO_DATES)
def test_demo_manifest_lists_exactly_the_urls_the_sources_request(day):
    responses = demo_responses(day)
    wanted = [r.url for r in openrouter.requests() + openrouter_endpoints.requests()]
    assert sorted(responses) == sorted(wanted)
    for url, entry in responses.items():
        assert (DEMO_FIXTURES_DIR / day / entry["file"]).is_file()
        assert entry["file"].startswith("openrouter/")
        assert entry["content_type"] == "application/json"
        expected_status = 429 if (day, url) == RATE_LIMITED else 200
        assert entry["status"] == expected_status, (day, url)
    if day == RATE_LIMITED[0]:
        error = json.loads((DEMO_FIXTURES_DIR / day / responses[RATE_LIMITED[1]]["file"]).read_bytes())
        assert error["error"]["code"] == 429


@pytest.mark.parametrize("day", DEMO_DATES)
def test_demo_bodies_parse_cleanly_with_the_expected_providers(catalog, day):
    responses = demo_responses(day)
    folder = DEMO_FIXTURES_DIR / day
    models = parse_body(openrouter, (folder / responses[MODELS_URL]["file"]).read_bytes(), models_ctx(), catalog)
    assert 15 <= len(json.loads((folder / responses[MODELS_URL]["file"]).read_bytes())["data"]) <= 30
    reasons = Counter(r.reason for r in models.rejections)
    assert reasons["free_listing"] >= 2 and reasons["variable_price"] >= 2 and reasons["unknown_instrument"] >= 2
    assert set(reasons) <= EXPECTED_REAL_REASONS
    for model_id in ENDPOINT_MODELS:
        url = f"{MODELS_URL}/{model_id}/endpoints"
        if (day, url) == RATE_LIMITED:
            continue
        result = parse_body(openrouter_endpoints, (folder / responses[url]["file"]).read_bytes(), endpoints_ctx(), catalog)
        assert not result.rejections, (day, model_id, result.rejections)  # no band, duplicate or price problem
        assert {o.instrument for o in result.observations} == {catalog.resolve_model(model_id).canonical}
        providers = {o.provider for o in result.observations}
        assert 3 <= len(providers) <= 7, (day, model_id, providers)


# The first seven models have indices of their own (pipeline/indices.toml); the rest are collected only.
INDEXED_ENDPOINT_MODELS = (
    "meta-llama/llama-3.3-70b-instruct", "meta-llama/llama-3.1-8b-instruct", "deepseek/deepseek-chat-v3-0324",
    "deepseek/deepseek-r1", "qwen/qwen-2.5-72b-instruct", "openai/gpt-oss-120b", "mistralai/mistral-nemo",
)
# Models whose indices blend LiteLLM with this source: left out of ENDPOINT_MODELS so that adding models to the
# collection does not move those indices.
BLENDED_LITELLM_MODELS = ("llama-3.1-70b", "llama-3.1-405b", "llama-3-70b", "mixtral-8x7b")


def test_the_default_live_collection_plans_at_least_20_endpoints_requests(catalog):
    from pipeline import collect

    planned = [r for r in collect.plan_requests() if r.source == "openrouter_endpoints"]
    assert len(planned) >= 20
    assert [r.url for r in planned] == [f"{MODELS_URL}/{m}/endpoints" for m in ENDPOINT_MODELS]
    assert ENDPOINT_MODELS[:len(INDEXED_ENDPOINT_MODELS)] == INDEXED_ENDPOINT_MODELS  # kept first, unchanged
    canonical = {catalog.resolve_model(m).canonical for m in ENDPOINT_MODELS}
    assert not canonical & set(BLENDED_LITELLM_MODELS)


@pytest.mark.parametrize("day", DEMO_DATES)
def test_every_endpoints_request_of_a_demo_day_is_recorded_and_gives_two_priced_providers(catalog, day):
    responses = demo_responses(day)
    folder = DEMO_FIXTURES_DIR / day
    for request in openrouter_endpoints.requests():
        assert request.url in responses, (day, request.url)
        if (day, request.url) == RATE_LIMITED:
            continue
        raw = (folder / responses[request.url]["file"]).read_bytes()
        result = parse_body(openrouter_endpoints, raw, endpoints_ctx(), catalog)
        assert not result.rejections, (day, request.url, result.rejections)
        priced = {o.provider for o in result.observations if o.price_type in (INPUT, OUTPUT)}
        assert len(priced) >= 2, (day, request.url, priced)


def test_two_of_the_collected_models_change_a_price_during_the_demo_days(catalog):
    def prices(day: str, model_id: str) -> dict[str, Decimal]:
        raw = (DEMO_FIXTURES_DIR / day / demo_responses(day)[f"{MODELS_URL}/{model_id}/endpoints"]["file"]).read_bytes()
        return {o.row_key: o.usd_price for o in parse_endpoints(raw, catalog).observations}

    collected_only = [m for m in ENDPOINT_MODELS if m not in INDEXED_ENDPOINT_MODELS]
    changes = {}
    for model_id in collected_only:
        series = [prices(day, model_id) for day in DEMO_DATES]
        moved = {(DEMO_DATES[i], k) for i in range(1, len(series)) for k in series[i]
                 if series[i][k] != series[i - 1].get(k)}
        if moved:
            changes[model_id] = moved
    assert changes == {
        "meta-llama/llama-4-maverick": {("2026-11-18", "meta-llama/llama-4-maverick|deepinfra|deepinfra/fp8|input")},
        "qwen/qwen3-235b-a22b": {("2026-11-19", "qwen/qwen3-235b-a22b|novita|novita/fp8|output")},
    }


def test_demo_prices_move_a_little_from_day_to_day(catalog):
    def prices(day: str) -> dict[str, Decimal]:
        folder = DEMO_FIXTURES_DIR / day
        out = {}
        for model_id in ENDPOINT_MODELS:
            url = f"{MODELS_URL}/{model_id}/endpoints"
            if (day, url) != RATE_LIMITED:
                raw = (folder / demo_responses(day)[url]["file"]).read_bytes()
                out.update({o.row_key: o.usd_price for o in parse_endpoints(raw, catalog).observations})
        return out

    first, last = prices(DEMO_DATES[0]), prices(DEMO_DATES[-1])
    common = first.keys() & last.keys()
    moved = {k for k in common if first[k] != last[k]}
    assert 5 <= len(moved) <= len(common) // 2  # some providers move, most do not
    assert all(Decimal("0.5") < last[k] / first[k] < Decimal("1.5") for k in moved)  # "a little"


# --- hostile bodies (issue 10) -----------------------------------------------------------------------------

GPT4O = '{"id": "openai/gpt-4o", "pricing": {"prompt": "0.0000025", "completion": "0.00001"'
LLAMA = '{"id": "meta-llama/llama-3.3-70b-instruct", "pricing": {"prompt": "0.00000013", "completion": "0.00000039"'


def _models(*entries: str) -> bytes:
    """A models list as JSON text (each entry without its two closing braces, so that a test can add keys to its
    pricing, even repeated ones)."""
    return ('{"data": [' + ", ".join(e + "}}" for e in entries) + "]}").encode()


def test_a_model_that_repeats_a_price_key_with_two_values_is_refused_the_others_kept(catalog):
    result = parse_body(openrouter, _models(GPT4O + ', "prompt": "0.00000025"', LLAMA), models_ctx(), catalog=catalog)
    assert rejection_pairs(result) == Counter({("openai/gpt-4o", "duplicate_key"): 1})
    assert "pricing.prompt" in result.rejections[0].detail
    # llama reads (0.13, 0.39); nothing of gpt-4o (the old code took 0.25 for its input).
    assert {k: o.usd_price for k, o in by_key(result).items()} == {
        "meta-llama/llama-3.3-70b-instruct|input": D("0.13"), "meta-llama/llama-3.3-70b-instruct|output": D("0.39")}


def test_the_same_model_twice_with_different_prices_is_refused_not_resolved_by_position(catalog):
    body = _models(GPT4O, GPT4O.replace('"0.0000025"', '"0.00000025"'), LLAMA)
    result = parse_body(openrouter, body, models_ctx(), catalog=catalog)
    assert rejection_pairs(result) == Counter({("openai/gpt-4o|input", "conflicting_duplicate"): 2,
                                               ("openai/gpt-4o|output", "duplicate_row"): 1})
    assert "openai/gpt-4o|input" not in by_key(result) and by_key(result)["openai/gpt-4o|output"].usd_price == D("10")


def test_a_per_token_price_that_rounds_to_zero_per_million_is_not_positive(catalog):
    # 1e-17 per token = 1e-11 per million: 0 at 10 places. The shared checks refuse it.
    result = parse_body(openrouter, _models(LLAMA.replace('"0.00000013"', '"0.00000000000000001"')), models_ctx(),
                        catalog=catalog)
    assert rejection_pairs(result) == Counter({("meta-llama/llama-3.3-70b-instruct|input", "not_positive"): 1})


@pytest.mark.parametrize(
    "raw, message",
    [
        (b'{"data": [' + (GPT4O + "}}").encode() + b'], "data": [' + (LLAMA + "}}").encode() + b"]}", "repeats 'data'"),
        (b'{"data": [{"id": "openai/gpt-4o", "context_length": 128', "not JSON"),  # cut inside a number
        (b'{"data": [' + b"[" * 5000 + b"]" * 5000 + b"]}", "not JSON"),  # too deep for the decoder
    ],
)
def test_hostile_models_bodies_fail_with_one_line(catalog, raw, message):
    with pytest.raises(ParseError, match=message) as caught:
        parse_models(raw, catalog)
    assert "\n" not in str(caught.value)


LLAMA_ENDPOINT = ('{"provider_name": "DeepInfra", "tag": "deepinfra/turbo", '
                  '"pricing": {"prompt": "0.00000013", "completion": "0.00000039"')
GROQ_ENDPOINT = '{"provider_name": "Groq", "tag": "groq", "pricing": {"prompt": "0.00000059", "completion": "0.00000079"'


def _endpoints(*endpoints: str, model_id: str = "meta-llama/llama-3.3-70b-instruct") -> bytes:
    return ('{"data": {"id": "' + model_id + '", "endpoints": [' + ", ".join(e + "}}" for e in endpoints) + "]}}").encode()


def test_an_endpoint_that_repeats_a_price_key_with_two_values_is_refused_the_others_kept(catalog):
    m = "meta-llama/llama-3.3-70b-instruct"
    body = _endpoints(LLAMA_ENDPOINT + ', "completion": "0.000000039"', GROQ_ENDPOINT)
    result = parse_body(openrouter_endpoints, body, endpoints_ctx(), catalog=catalog)
    assert rejection_pairs(result) == Counter({(f"{m}|deepinfra|deepinfra/turbo|*", "duplicate_key"): 1})
    assert {k: o.usd_price for k, o in by_key(result).items()} == {
        f"{m}|groq|groq|input": D("0.59"), f"{m}|groq|groq|output": D("0.79")}


def test_the_same_endpoint_twice_with_different_prices_is_refused_both_copies(catalog):
    m = "meta-llama/llama-3.3-70b-instruct"
    body = _endpoints(GROQ_ENDPOINT, GROQ_ENDPOINT.replace('"0.00000059"', '"0.000000059"'), LLAMA_ENDPOINT)
    result = parse_body(openrouter_endpoints, body, endpoints_ctx(), catalog=catalog)
    assert rejection_pairs(result) == Counter({(f"{m}|groq|groq|input", "conflicting_duplicate"): 2,
                                               (f"{m}|groq|groq|output", "duplicate_row"): 1})
    assert f"{m}|groq|groq|input" not in by_key(result)


@pytest.mark.parametrize(
    "raw, message",
    [
        (b'{"data": {"id": "a/b", "endpoints": [' + (GROQ_ENDPOINT + "}}").encode() + b']}, "data": {"id": "a/c"}}',
         "repeats 'data'"),
        (b'{"data": {"id": "meta-llama/llama-3.3-70b-instruct", "id": "deepseek/deepseek-r1", "endpoints": ['
         + (GROQ_ENDPOINT + "}}").encode() + b"]}}", "repeats 'id'"),
        (b'{"data": {"id": "meta-llama/llama-3.3-70b-instruct", "endpoints": [' + (GROQ_ENDPOINT + "}}").encode()
         + b'], "endpoints": [' + (LLAMA_ENDPOINT + "}}").encode() + b"]}}", "repeats 'endpoints'"),
        (b'{"data": {"id": "meta-llama/llama-3.3-70b-instruct", "endpoints": [{"context_length": 1310', "not JSON"),
    ],
)
def test_hostile_endpoints_bodies_fail_with_one_line(catalog, raw, message):
    with pytest.raises(ParseError, match=message) as caught:
        parse_endpoints(raw, catalog)
    assert "\n" not in str(caught.value)


def test_the_body_caps_are_module_constants():
    assert openrouter.MAX_BODY_BYTES == 32 * 1024 * 1024 and openrouter_endpoints.MAX_BODY_BYTES == 4 * 1024 * 1024
