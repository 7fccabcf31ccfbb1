"""The LiteLLM model price map source.

Golden values are worked out by hand: USD per million tokens = USD per token x 1,000,000, exactly
(3e-05 -> 30, 2.86e-06 -> 2.86, 1.25e-07 -> 0.125). The real maps in ../shared are loaded when present.
"""
from __future__ import annotations

import json
from collections import Counter
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from pipeline import collect, definitions, fixing, load
from pipeline.catalog import default_catalog
from pipeline.http import make_client
from pipeline.normalise import parse_body
from pipeline.paths import DEMO_FIXTURES_DIR
from pipeline.rawstore import RawStore
from pipeline.records import ParseError
from pipeline.replay import replay_transport
from pipeline.sources import litellm

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "litellm" / "model_prices_excerpt.json"
OBSERVED_AT = datetime(2025, 5, 7, 6, 0, tzinfo=timezone.utc)
D = Decimal

# Every reason a real map may give, and why it is expected there.
EXPECTED_REAL_REASONS = {
    "unknown_instrument",  # most entries are models outside the catalog (and deepseek/deepseek-chat, excluded)
    "free_listing",  # ollama and other local runtimes at 0, '-Free' endpoints, unpriced previews
    "not_a_text_model",  # embedding, image_generation, audio_*, moderation, rerank
    "no_token_price",  # priced per second (sagemaker), per character or per image only
    "schema_example",  # sample_spec (2024-10-13)
    "outside_sanity_band",  # Vertex's mistral-nemo@2407 at 3.00: LiteLLM's own error (Vertex sells Nemo at 0.15)
    # The maps of early 2024 (2024-01-31, 2024-02-06) have no litellm_provider; an entry whose key names no
    # provider (gemini-pro, chat-bison, command, j2-ultra, luminous-base, together-ai-up-to-3b, ...) is refused.
    "no_provider",
}


def parse(raw: bytes):
    return parse_body(litellm, raw, litellm.context_for_file("map.json", OBSERVED_AT))


def by_key(result) -> dict:
    return {o.row_key: o for o in result.observations}


def test_a_per_token_number_becomes_usd_per_million_exactly():
    obs = by_key(parse(FIXTURE.read_bytes()))["gpt-4|input"]
    # 3e-05 USD per token x 1,000,000 = 30 USD per million tokens, with no float anywhere on the way.
    assert obs.original_price == D("3E-5") and isinstance(obs.original_price, Decimal)
    assert obs.usd_price == D("30") and str(obs.usd_price) == "30.0000000000"
    assert (obs.original_currency, obs.original_unit) == ("USD", "token")


def test_the_excerpt_gives_the_hand_worked_observations():
    got = {
        key: (o.provider, o.instrument, o.price_type, o.region, o.usd_price)
        for key, o in by_key(parse(FIXTURE.read_bytes())).items()
    }
    assert got == {
        # 3e-05, 6e-05 per token
        "gpt-4|input": ("openai", "gpt-4", "input", None, D("30")),
        "gpt-4|output": ("openai", "gpt-4", "output", None, D("60")),
        # 2.5e-06, 1e-05; cache read 1.25e-06; batch API 1.25e-06 and 5e-06 (half the list price)
        "gpt-4o|input": ("openai", "gpt-4o", "input", None, D("2.5")),
        "gpt-4o|output": ("openai", "gpt-4o", "output", None, D("10")),
        "gpt-4o|cached_input": ("openai", "gpt-4o", "cached_input", None, D("1.25")),
        "gpt-4o|input_batch": ("openai", "gpt-4o", "input_batch", None, D("1.25")),
        "gpt-4o|output_batch": ("openai", "gpt-4o", "output_batch", None, D("5")),
        # Vertex AI (litellm_provider vertex_ai-language-models); the prompt tier above 200k tokens apart;
        # 1.25e-07 cache read -> 0.125; the per-audio-token price is not a text token price: no row
        "gemini-2.5-pro|input": ("vertex-ai", "gemini-2.5-pro", "input", None, D("1.25")),
        "gemini-2.5-pro|output": ("vertex-ai", "gemini-2.5-pro", "output", None, D("10")),
        "gemini-2.5-pro|cached_input": ("vertex-ai", "gemini-2.5-pro", "cached_input", None, D("0.125")),
        "gemini-2.5-pro|input_above_200k": ("vertex-ai", "gemini-2.5-pro", "input_above_200k", None, D("2.5")),
        "gemini-2.5-pro|output_above_200k": ("vertex-ai", "gemini-2.5-pro", "output_above_200k", None, D("15")),
        # bedrock/<region>/ -> the region column; 2.86e-06, 3.78e-06
        "bedrock/eu-west-1/meta.llama3-70b-instruct-v1:0|input": ("bedrock", "llama-3-70b", "input", "eu-west-1", D("2.86")),
        "bedrock/eu-west-1/meta.llama3-70b-instruct-v1:0|output": ("bedrock", "llama-3-70b", "output", "eu-west-1", D("3.78")),
        # Bedrock's US cross-region profile (litellm_provider bedrock_converse -> bedrock); 7.2e-07
        "us.meta.llama3-3-70b-instruct-v1:0|input": ("bedrock", "llama-3.3-70b", "input", "us", D("0.72")),
        "us.meta.llama3-3-70b-instruct-v1:0|output": ("bedrock", "llama-3.3-70b", "output", "us", D("0.72")),
        "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo|input": ("together", "llama-3.3-70b", "input", None, D("0.88")),
        "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo|output": ("together", "llama-3.3-70b", "output", None, D("0.88")),
        "groq/llama-3.3-70b-versatile|input": ("groq", "llama-3.3-70b", "input", None, D("0.59")),
        "groq/llama-3.3-70b-versatile|output": ("groq", "llama-3.3-70b", "output", None, D("0.79")),
        # the input price is a unit slip (9e-04 = 900 per million: refused below); the output 9e-07 is fine
        "fireworks_ai/accounts/fireworks/models/llama-v3p3-70b-instruct|output": ("fireworks", "llama-3.3-70b", "output", None, D("0.9")),
        # an OpenRouter id under provider openrouter; 1.2e-07 and 3e-07
        "openrouter/meta-llama/llama-3.3-70b-instruct|input": ("openrouter", "llama-3.3-70b", "input", None, D("0.12")),
        "openrouter/meta-llama/llama-3.3-70b-instruct|output": ("openrouter", "llama-3.3-70b", "output", None, D("0.3")),
        # azure_ai -> azure; 1.35e-06 and 5.4e-06 (its cache-hit price 0.0 is a free listing)
        "azure_ai/deepseek-r1|input": ("azure", "deepseek-r1", "input", None, D("1.35")),
        "azure_ai/deepseek-r1|output": ("azure", "deepseek-r1", "output", None, D("5.4")),
        # a price written as a string "3e-07" is still an exact decimal
        "mistral/open-mistral-nemo|output": ("mistral", "mistral-nemo", "output", None, D("0.3")),
    }


def test_every_refused_entry_has_its_reason():
    result = parse(FIXTURE.read_bytes())
    assert Counter((r.row_key, r.reason) for r in result.rejections) == Counter({
        ("sample_spec", "schema_example"): 1,
        # 9e-04 x 1,000,000 = 900 USD per million, outside llama-3.3-70b's band [0.005, 6.4]
        ("fireworks_ai/accounts/fireworks/models/llama-v3p3-70b-instruct|input", "outside_sanity_band"): 1,
        ("deepseek/deepseek-chat", "unknown_instrument"): 1,  # excluded: DeepSeek's moving alias
        ("fireworks-ai-up-to-16b", "unknown_instrument"): 1,  # a price tier by model size, not a model
        ("azure_ai/deepseek-r1|cached_input", "free_listing"): 1,
        ("ollama/llama3.3|input", "free_listing"): 1,
        ("ollama/llama3.3|output", "free_listing"): 1,
        ("text-embedding-3-small", "not_a_text_model"): 1,
        ("sagemaker/meta-textgeneration-llama-2-7b", "no_token_price"): 1,
        ("mistral/open-mistral-nemo|input", "bad_price"): 1,  # negative
        ("broken-entry", "malformed_entry"): 1,
    })
    slip = next(r for r in result.rejections if r.reason == "outside_sanity_band")
    assert "900.0000000000 is outside [0.005, 6.4]" in slip.detail


def test_deepseeks_moving_alias_is_excluded_for_litellm_but_stays_the_openrouter_id():
    catalog = default_catalog()
    assert litellm.resolve(catalog, "deepseek/deepseek-chat", "deepseek").canonical is None
    assert catalog.resolve_model("deepseek/deepseek-chat").canonical == "deepseek-v3"  # OpenRouter's pinned V3
    # The example names, one canonical model
    for key, provider in (
        ("together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo", "together_ai"),
        ("groq/llama-3.3-70b-versatile", "groq"),
        ("bedrock/us-west-2/meta.llama3-3-70b-instruct-v1:0", "bedrock"),
        ("openrouter/meta-llama/llama-3.3-70b-instruct", "openrouter"),
    ):
        assert litellm.resolve(catalog, key, provider).canonical == "llama-3.3-70b", key


@pytest.mark.parametrize(
    ("key", "model", "region"),
    [
        ("bedrock/eu-west-3/mistral.mistral-7b-instruct-v0:2", "mistral.mistral-7b-instruct-v0:2", "eu-west-3"),
        ("bedrock/us-gov-west-1/meta.llama3-8b-instruct-v1:0", "meta.llama3-8b-instruct-v1:0", "us-gov-west-1"),
        ("us.deepseek.r1-v1:0", "deepseek.r1-v1:0", "us"),
        ("apac.amazon.nova-pro-v1:0", "amazon.nova-pro-v1:0", "apac"),
        ("azure/eu/gpt-4o-2024-08-06", "azure/gpt-4o-2024-08-06", "eu"),
        ("azure/global-standard/gpt-4o-mini", "azure/gpt-4o-mini", "global-standard"),
        ("azure/gpt-4o", "azure/gpt-4o", None),
        ("gpt-4o", "gpt-4o", None),
        ("together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo", "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo", None),
    ],
)
def test_region_parts_move_to_the_region_column(key, model, region):
    assert litellm.split_region(key) == (model, region)


def test_provider_ids_follow_the_alias_table():
    from pipeline.catalog.provider_ids import provider_id

    assert [provider_id("litellm", p) for p in (
        "together_ai", "fireworks_ai", "deepinfra", "groq", "bedrock", "bedrock_converse", "azure", "azure_ai",
        "vertex_ai-language-models", "vertex_ai-mistral_models", "gemini", "text-completion-openai", "aleph_alpha",
    )] == [
        "together", "fireworks", "deepinfra", "groq", "bedrock", "bedrock", "azure", "azure",
        "vertex-ai", "vertex-ai", "google", "openai", "aleph-alpha",  # unmapped: a slug of itself, never merged
    ]


# --- hostile and malformed bodies ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html><body>rate limited</body></html>", "not JSON"),
        (b"[1, 2, 3]", "expected a JSON object"),
        (b"{}", "no model entries"),
        (b'{"sample_spec": {"input_cost_per_token": 0}}', "no model entries"),
        (b'{"a": {"max_tokens": 5}, "b": {"mode": "chat"}}', "not the price map"),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),  # nesting deep enough to overflow the recursion limit
    ],
)
def test_a_body_that_is_not_the_price_map_fails_as_a_whole(body, message):
    with pytest.raises(ParseError, match=message):
        parse(body)


def test_absurd_numbers_are_refused_not_crashed_on():
    body = json.dumps({
        "gpt-4o": {"input_cost_per_token": "NaN", "output_cost_per_token": 1e300, "litellm_provider": "openai", "mode": "chat"},
        "gpt-4.1": {"input_cost_per_token": True, "output_cost_per_token": 8e-06, "litellm_provider": "openai", "mode": "chat"},
        "=HYPERLINK(\"http://x\")": {"input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06,
                                     "litellm_provider": "openai", "mode": "chat"},
    }).encode()
    result = parse(body)
    reasons = Counter((r.row_key, r.reason) for r in result.rejections)
    assert reasons == Counter({
        ("gpt-4o|input", "bad_price"): 1,  # NaN
        ("gpt-4o|output", "bad_price"): 1,  # 1e300 x 1e6 has more digits than the Decimal context holds
        ("gpt-4.1|input", "bad_price"): 1,  # a boolean is not a price
        ('=HYPERLINK("http://x")', "unknown_instrument"): 1,  # kept as text in the rejection, never evaluated
    })
    assert [(o.row_key, o.usd_price) for o in result.observations] == [("gpt-4.1|output", D("8"))]


# --- the maps of early 2024: no litellm_provider -------------------------------------------------------------

EARLY_MAP = b"""{
  "gpt-4": {"max_tokens": 8192, "input_cost_per_token": 3e-05, "output_cost_per_token": 6e-05, "mode": "chat"},
  "claude-2.1": {"max_tokens": 200000, "input_cost_per_token": 8e-06, "output_cost_per_token": 2.4e-05, "mode": "chat"},
  "azure/gpt-4": {"max_tokens": 8192, "input_cost_per_token": 3e-05, "output_cost_per_token": 6e-05, "mode": "chat"},
  "deepinfra/mistralai/Mixtral-8x7B-Instruct-v0.1": {"input_cost_per_token": 2.7e-07, "output_cost_per_token": 2.7e-07, "mode": "chat"},
  "meta.llama2-70b-chat-v1": {"input_cost_per_token": 1.95e-06, "output_cost_per_token": 2.56e-06, "mode": "chat"},
  "gemini-pro": {"input_cost_per_token": 2.5e-07, "output_cost_per_token": 5e-07, "mode": "chat"},
  "command": {"input_cost_per_token": 1.5e-05, "output_cost_per_token": 1.5e-05, "mode": "completion"},
  "mistralai/mistral-7b-instruct": {"input_cost_per_token": 1.3e-07, "output_cost_per_token": 1.3e-07, "mode": "chat"},
  "text-embedding-ada-002": {"input_cost_per_token": 1e-07, "output_cost_per_token": 0, "mode": "embedding"}
}"""


def test_an_early_map_without_litellm_provider_takes_the_provider_from_the_key_or_refuses_the_entry():
    result = parse(EARLY_MAP)
    got = {key: (o.provider, o.instrument, o.usd_price, o.attributes.get("provider_from"))
           for key, o in by_key(result).items()}
    assert got == {
        # bare gpt-* is OpenAI's: 3e-05, 6e-05 per token -> 30, 60 per million
        "gpt-4|input": ("openai", "gpt-4", D("30"), "model name"),
        "gpt-4|output": ("openai", "gpt-4", D("60"), "model name"),
        # azure/ names Azure: the same 30 and 60
        "azure/gpt-4|input": ("azure", "gpt-4", D("30"), "key prefix"),
        "azure/gpt-4|output": ("azure", "gpt-4", D("60"), "key prefix"),
        # deepinfra/: 2.7e-07 -> 0.27
        "deepinfra/mistralai/Mixtral-8x7B-Instruct-v0.1|input": ("deepinfra", "mixtral-8x7b", D("0.27"), "key prefix"),
        "deepinfra/mistralai/Mixtral-8x7B-Instruct-v0.1|output": ("deepinfra", "mixtral-8x7b", D("0.27"), "key prefix"),
    }
    assert Counter((r.row_key, r.reason) for r in result.rejections) == Counter({
        # claude-* is Anthropic's and meta.* a Bedrock model id, but these models are not in the catalog
        ("claude-2.1", "unknown_instrument"): 1,
        ("meta.llama2-70b-chat-v1", "unknown_instrument"): 1,
        # Google's model on Vertex AI or AI Studio, Cohere's on Cohere or elsewhere: never guessed
        ("gemini-pro", "no_provider"): 1,
        ("command", "no_provider"): 1,
        # 'mistralai' is no LiteLLM provider name (it is OpenRouter's id of the maker)
        ("mistralai/mistral-7b-instruct", "no_provider"): 1,
        ("text-embedding-ada-002", "not_a_text_model"): 1,
    })
    assert litellm.attributed_provider("meta.llama2-70b-chat-v1") == ("bedrock", "model name")
    assert litellm.attributed_provider("claude-2.1") == ("anthropic", "model name")
    assert litellm.attributed_provider("perplexity/pplx-70b-chat") == ("perplexity", "key prefix")
    assert litellm.attributed_provider("hd/1024-x-1024/dall-e-3") == (None, None)  # an image size, no provider


def _maps_naming_providers(shared_real) -> list[dict]:
    maps = []
    for path in sorted((shared_real / "litellm_model_prices").glob("*.json")):
        body = json.loads(path.read_bytes())
        maps.append({k: v for k, v in body.items() if isinstance(v, dict) and "litellm_provider" in v})
    return maps


def test_the_bare_name_rules_agree_with_every_real_map_that_names_the_provider(shared_real):
    """A bare-name rule is certain: every entry of every map with litellm_provider whose key it matches names
    the same provider (2,000 gpt-* and 1,700 Bedrock ids across the folder)."""
    from pipeline.catalog.provider_ids import provider_id

    matched = Counter()
    for entries in _maps_naming_providers(shared_real):
        for key, entry in entries.items():
            if "/" in key:
                continue
            attributed, how = litellm.attributed_provider(key)
            if attributed is None:
                continue
            assert provider_id("litellm", attributed) == provider_id("litellm", entry["litellm_provider"]), key
            matched[attributed] += 1
    assert set(matched) == {"openai", "anthropic", "bedrock"}


def test_every_attribution_of_an_early_map_agrees_with_the_later_maps_of_the_same_key(shared_real):
    from pipeline.catalog.provider_ids import provider_id

    named: dict[str, set[str]] = {}
    for entries in _maps_naming_providers(shared_real):
        for key, entry in entries.items():
            named.setdefault(key, set()).add(provider_id("litellm", entry["litellm_provider"]))
    confirmed = 0
    for path in sorted((shared_real / "litellm_model_prices").glob("*.json")):
        for obs in parse(path.read_bytes()).observations:
            if "provider_from" not in obs.attributes:
                continue
            later = named.get(obs.source_instrument, set())
            assert later <= {obs.provider}, (path.name, obs.source_instrument, obs.provider, later)
            confirmed += bool(later)
    assert confirmed > 0


# --- the real maps ------------------------------------------------------------------------------------------


def test_every_real_map_loads_with_only_explained_rejections(shared_real):
    files = sorted((shared_real / "litellm_model_prices").glob("*.json"))
    assert files
    for path in files:
        result = parse(path.read_bytes())
        reasons = {r.reason for r in result.rejections}
        assert reasons <= EXPECTED_REAL_REASONS, (path.name, reasons - EXPECTED_REAL_REASONS)
        # The early maps hold fewer models of the catalog: 16 rows in 2024-01-31 (gpt-4, azure/gpt-4, ...).
        assert len(result.observations) >= 16, path.name
        obs = by_key(result)
        # gpt-4 is in every map at 3e-05 / 6e-05 per token: 30 and 60 per million.
        assert (obs["gpt-4|input"].usd_price, obs["gpt-4|output"].usd_price) == (D("30"), D("60")), path.name
        # One provider id per company, whatever LiteLLM calls it.
        providers = {o.provider for o in result.observations}
        assert not providers & {"together_ai", "fireworks_ai", "bedrock_converse", "azure_ai", "gemini"}, path.name
        assert not any(p.startswith("vertex_ai") for p in providers), path.name


def test_real_map_of_2025_05_07_hand_checked_rows(shared_real):
    obs = by_key(parse((shared_real / "litellm_model_prices" / "model_prices_2025-05-07.json").read_bytes()))
    # "groq/llama-3.3-70b-versatile": 5.9E-7 and 7.9E-7 per token
    assert obs["groq/llama-3.3-70b-versatile|input"].usd_price == D("0.59")
    assert obs["groq/llama-3.3-70b-versatile|output"].usd_price == D("0.79")
    # "bedrock/sa-east-1/meta.llama3-8b-instruct-v1:0": 5E-7 and 0.00000101 per token, region sa-east-1
    sa = obs["bedrock/sa-east-1/meta.llama3-8b-instruct-v1:0|output"]
    assert (sa.provider, sa.instrument, sa.region, sa.usd_price) == ("bedrock", "llama-3-8b", "sa-east-1", D("1.01"))
    # "gpt-4o": cache_read_input_token_cost 0.00000125 and input_cost_per_token_batches 0.00000125
    assert obs["gpt-4o|cached_input"].usd_price == D("1.25")
    assert obs["gpt-4o|input_batch"].usd_price == D("1.25")


# --- the demo recordings, loaded and fixed ------------------------------------------------------------------


def _collect_and_load(con, warehouse, day: str):
    folder = DEMO_FIXTURES_DIR / day
    at = datetime.fromisoformat(f"{day}T06:00:00+00:00")
    store = RawStore(warehouse.root)
    with make_client(replay_transport(folder)) as client:
        for request in litellm.requests():
            for body in collect.fetch(litellm, client, request, lambda: at):
                collect.store_fetched(con, store, request, body)
    return load.parse_pending(con, store)


def test_a_model_served_by_several_providers_gives_one_per_model_index_value_per_date(con, warehouse, tmp_path):
    definition_file = tmp_path / "indices.toml"
    definition_file.write_text(
        '[[index]]\nid = "TEST-LLAMA-3.3-70B-IN-LITELLM"\nname = "Llama 3.3 70B input, LiteLLM map"\n'
        'methodology_version = "1.0"\ninstrument_kind = "token"\ninstrument = "llama-3.3-70b"\n'
        'price_type = "input"\nsources = ["litellm"]\n'
    )
    defs = definitions.load_definitions(definition_file)
    for day in ("2026-11-16", "2026-11-19"):
        report = _collect_and_load(con, warehouse, day)
        assert not report.failed
        fixing.fix_date(con, defs, date.fromisoformat(day))
    rows = con.execute(
        "select fixing_date, usd_per_mtok, n_providers from fixings where index_id = 'TEST-LLAMA-3.3-70B-IN-LITELLM'"
        " order by fixing_date"
    ).fetchall()
    # Input per million tokens in the recordings: together 0.88, groq 0.59, fireworks 0.90, bedrock 0.72 (the
    # same 7.2e-07 in its base and us. entries: median 0.72), deepinfra 0.23 on 11-16 and 0.13 from 11-19.
    # 11-16 sorted: 0.23 0.59 0.72 0.88 0.90 -> median 0.72; 11-19: 0.13 0.59 0.72 0.88 0.90 -> median 0.72.
    assert rows == [(date(2026, 11, 16), D("0.7200"), 5), (date(2026, 11, 19), D("0.7200"), 5)]
    deepinfra = con.execute(
        "select fixing_date, provider_value from fixing_constituents"
        " where index_id = 'TEST-LLAMA-3.3-70B-IN-LITELLM' and provider = 'deepinfra' order by fixing_date"
    ).fetchall()
    assert [(d, Decimal(v).normalize()) for d, v in deepinfra] == [
        (date(2026, 11, 16), D("0.23")), (date(2026, 11, 19), D("0.13"))
    ]


# --- hostile maps (issue 10; the corpus is tests/hostile/litellm/) ------------------------------------------


def test_repeated_keys_refuse_the_entry_or_the_model_and_odd_fields_are_rejections():
    body = (b'{"gpt-4": {"input_cost_per_token": 3e-05, "output_cost_per_token": 6e-05, "litellm_provider": "openai"},'
            b' "gpt-4o": {"input_cost_per_token": 2.5e-06, "litellm_provider": "openai"},'
            b' "gpt-4o": {"input_cost_per_token": 5e-06, "litellm_provider": "openai"},'
            b' "gpt-4.1": {"input_cost_per_token": 2e-06, "input_cost_per_token": 4e-06, "litellm_provider": "openai"},'
            b' "o3": {"input_cost_per_token": 2e-06, "litellm_provider": 7},'
            b' "o4-mini": {"input_cost_per_token": 1.1e-06, "litellm_provider": "openai", "mode": {"chat": true}},'
            b' "gpt-4.1-mini": {"input_cost_per_token": -4e-07, "output_cost_per_token": 1e-17, "litellm_provider": "openai"}}')
    result = parse(body)
    assert Counter((r.row_key, r.reason) for r in result.rejections) == Counter({
        ("gpt-4o", "duplicate_key"): 1,
        ("gpt-4.1", "duplicate_key"): 1,
        ("o3", "malformed_entry"): 1,  # a provider that is not a name
        ("o4-mini", "not_a_text_model"): 1,  # a mode that is not a string
        ("gpt-4.1-mini|input", "bad_price"): 1,  # negative
        ("gpt-4.1-mini|output", "not_positive"): 1,  # 1e-17 per token is 0 per million at 10 places
    })
    assert [(o.row_key, o.usd_price) for o in result.observations] == [("gpt-4|input", D("30")), ("gpt-4|output", D("60"))]
