"""The simonw/llm-prices vendor files: USD per million tokens with a dated price history.

The files' to_date is exclusive (data/README.md of the repository), the warehouse's valid_to inclusive:
to_date 2026-11-19 -> valid_to 2026-11-18. Golden values are read off the fixture by hand.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from pipeline import definitions, fixing
from pipeline.load import load_result
from pipeline.normalise import parse_body
from pipeline.records import ParseContext, ParseError
from pipeline.sources import llm_prices

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "llm_prices"
OBSERVED_AT = datetime(2026, 11, 18, 6, 0, tzinfo=timezone.utc)
D = Decimal

EXPECTED_REAL_REASONS = {
    "unknown_instrument",  # moving aliases (deepseek-chat, *-latest), image models, models outside the catalog
    "duplicate_row",  # xai.json lists grok-4-fast twice with the same history
}


def parse(raw: bytes, observed_at: datetime = OBSERVED_AT):
    return parse_body(llm_prices, raw, llm_prices.context_for_file("vendor.json", observed_at))


def rows(result) -> dict:
    return {o.row_key: (o.instrument, o.price_type, o.usd_price, o.valid_from, o.valid_to) for o in result.observations}


def test_each_dated_price_is_an_observation_valid_over_its_interval():
    result = parse((FIXTURES / "openai.json").read_bytes())
    assert rows(result) == {
        # from 2026-11-19 on (inclusive), open-ended
        "openai/gpt-4.1|2026-11-19||input": ("gpt-4.1", "input", D("1.5"), date(2026, 11, 19), None),
        "openai/gpt-4.1|2026-11-19||output": ("gpt-4.1", "output", D("6"), date(2026, 11, 19), None),
        "openai/gpt-4.1|2026-11-19||cached_input": ("gpt-4.1", "cached_input", D("0.375"), date(2026, 11, 19), None),
        # from 2025-04-14 up to, not including, 2026-11-19: valid through 2026-11-18
        "openai/gpt-4.1|2025-04-14|2026-11-19|input": ("gpt-4.1", "input", D("2"), date(2025, 4, 14), date(2026, 11, 18)),
        "openai/gpt-4.1|2025-04-14|2026-11-19|output": ("gpt-4.1", "output", D("8"), date(2025, 4, 14), date(2026, 11, 18)),
        "openai/gpt-4.1|2025-04-14|2026-11-19|cached_input": ("gpt-4.1", "cached_input", D("0.5"), date(2025, 4, 14), date(2026, 11, 18)),
        "openai/o3|2025-06-10||input": ("o3", "input", D("2"), date(2025, 6, 10), None),
        "openai/o3|2025-06-10||output": ("o3", "output", D("8"), date(2025, 6, 10), None),
        "openai/o3|2025-06-10||cached_input": ("o3", "cached_input", D("0.5"), date(2025, 6, 10), None),
        # open start, to_date 2025-06-10 exclusive: valid through 2025-06-09
        "openai/o3||2025-06-10|input": ("o3", "input", D("10"), None, date(2025, 6, 9)),
        "openai/o3||2025-06-10|output": ("o3", "output", D("40"), None, date(2025, 6, 9)),
        "openai/o3||2025-06-10|cached_input": ("o3", "cached_input", D("2.5"), None, date(2025, 6, 9)),
    }
    assert Counter((r.row_key, r.reason) for r in result.rejections) == Counter({
        ("openai/chatgpt-4o-latest", "unknown_instrument"): 1,  # a moving alias: never guessed
        ("openai/gpt-image-1", "unknown_instrument"): 1,
    })
    assert {(o.provider, o.original_currency, o.original_unit, o.segment) for o in result.observations} == {
        ("openai", "USD", "million_tokens", "first_party")
    }


def test_long_context_tiers_are_price_types_of_the_base_model_and_bad_entries_have_reasons():
    result = parse((FIXTURES / "google.json").read_bytes())
    assert rows(result) == {
        "google/gemini-2.5-pro|||input": ("gemini-2.5-pro", "input", D("1.25"), None, None),
        "google/gemini-2.5-pro|||output": ("gemini-2.5-pro", "output", D("10"), None, None),
        "google/gemini-2.5-pro|||cached_input": ("gemini-2.5-pro", "cached_input", D("0.125"), None, None),
        # "Gemini 2.5 Pro >200k": the price of a prompt above 200k tokens, not a second gemini-2.5-pro price
        "google/gemini-2.5-pro-200k|||input": ("gemini-2.5-pro", "input_above_200k", D("2.5"), None, None),
        "google/gemini-2.5-pro-200k|||output": ("gemini-2.5-pro", "output_above_200k", D("15"), None, None),
        "google/gemini-2.5-pro-200k|||cached_input": ("gemini-2.5-pro", "cached_input_above_200k", D("0.25"), None, None),
        "google/gemini-2.5-flash|||input": ("gemini-2.5-flash", "input", D("0.3"), None, None),
    }
    assert Counter((r.row_key, r.reason) for r in result.rejections) == Counter({
        ("google/gemini-2.5-flash|2025-06-17|2025-06-17", "bad_interval"): 1,  # to_date (exclusive) = from_date
        ("google/gemini-2.5-flash", "bad_date"): 1,  # month 13
        ("google/gemini-2.5-flash||", "no_token_price"): 1,  # input and output null
        # 2500 for 2.5: the per-thousand slip; gemini-2.5-flash's band is [0.003, 25]
        ("google/gemini-2.5-flash|||output", "outside_sanity_band"): 1,
        ("google/gemini-2.5-flash|||cached_input", "variable_price"): 1,  # -1
    })


@pytest.mark.parametrize(
    ("model_id", "name", "expected"),
    [
        ("gemini-2.5-pro-200k", "Gemini 2.5 Pro >200k", ("gemini-2.5-pro", "above_200k")),
        ("grok-4-fast-128k", "Grok 4 Fast >128k", ("grok-4-fast", "above_128k")),
        ("qwen3.6-plus-256k", "Qwen3.6 Plus >256k", ("qwen3.6-plus", "above_256k")),
        ("grok-4-fast", "Grok 4 Fast ≤128k", ("grok-4-fast", None)),  # the base tier
        ("some-model-128k", "Some Model 128k", ("some-model-128k", None)),  # a name, not a '>' tier
        ("gemini-1.5-pro-128k", "Gemini 1.5 Pro >200k", ("gemini-1.5-pro-128k", None)),  # sizes disagree
    ],
)
def test_tier_split(model_id, name, expected):
    assert llm_prices.split_tier(model_id, name) == expected


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"404: Not Found", "not JSON"),
        (b'{"models": []}', "'vendor' and a 'models' list"),
        (b'[{"vendor": "openai"}]', "'vendor' and a 'models' list"),
        (b'{"vendor": "openai", "models": []}', "models list is empty"),
        (b'{"vendor": "", "models": [{}]}', "'vendor' is empty"),
    ],
)
def test_a_body_that_is_not_a_vendor_file_fails_as_a_whole(body, message):
    with pytest.raises(ParseError, match=message):
        parse(body)


def test_malformed_models_are_rejected_one_by_one():
    body = (b'{"vendor": "openai", "models": [3, {"id": "gpt-4.1"}, {"id": "o3", "price_history": ["x"]},'
            b' {"id": "gpt-4o", "price_history": [{"input": 1e400, "output": 10}]}]}')
    result = parse(body)
    assert Counter((r.row_key, r.reason) for r in result.rejections) == Counter({
        ("openai|#0", "malformed_entry"): 1,
        ("openai/gpt-4.1", "malformed_entry"): 1,  # no price_history
        ("openai/o3", "malformed_entry"): 1,  # a history entry that is not an object
        ("openai/gpt-4o|||input", "bad_price"): 1,  # 1e400: more digits than the warehouse column holds
    })
    assert [(o.row_key, o.usd_price) for o in result.observations] == [("openai/gpt-4o|||output", D("10"))]


def test_requests_list_the_vendor_files():
    urls = [r.url for r in llm_prices.requests()]
    assert "https://raw.githubusercontent.com/simonw/llm-prices/main/data/deepseek.json" in urls
    assert len(urls) == len(set(urls)) == len(llm_prices.VENDORS)


def test_a_dated_price_counts_in_a_fixing_only_on_the_dates_it_held(con, tmp_path):
    """gpt-4.1 input: 2 through 2026-11-18, 1.5 from 2026-11-19. The same file fetched on both days."""
    definition_file = tmp_path / "indices.toml"
    definition_file.write_text(
        '[[index]]\nid = "TEST-GPT-4.1-IN"\nname = "GPT-4.1 input, first party"\nmethodology_version = "1.0"\n'
        'instrument_kind = "token"\ninstrument = "gpt-4.1"\nprice_type = "input"\nsources = ["llm_prices"]\n'
        "min_providers = 1\n"
    )
    defs = definitions.load_definitions(definition_file)
    raw = (FIXTURES / "openai.json").read_bytes()
    for day in (date(2026, 11, 18), date(2026, 11, 19)):
        observed_at = datetime(day.year, day.month, day.day, 6, 0, tzinfo=timezone.utc)
        ctx = ParseContext(source=llm_prices.SOURCE_ID, observed_at=observed_at,
                           snapshot_id=hashlib.sha256(f"openai.json|{day}".encode()).hexdigest())
        load_result(con, ctx, parse_body(llm_prices, raw, ctx))
        fixing.fix_date(con, defs, day)
    got = con.execute(
        "select fixing_date, usd_per_mtok, n_observations from fixings where index_id = 'TEST-GPT-4.1-IN'"
        " order by fixing_date"
    ).fetchall()
    # Each day's collection holds both dated prices; only the one valid that day is used (one observation).
    assert got == [(date(2026, 11, 18), D("2.0000"), 1), (date(2026, 11, 19), D("1.5000"), 1)]


def test_every_real_vendor_file_loads_with_only_explained_rejections(shared_real):
    files = sorted((shared_real / "llm_prices_simonw").glob("*/*.json"))
    assert len(files) >= 9
    by_vendor = {}
    for path in files:
        result = parse(path.read_bytes(), datetime(2025, 12, 17, 6, 0, tzinfo=timezone.utc))
        reasons = {r.reason for r in result.rejections}
        assert reasons <= EXPECTED_REAL_REASONS, (path.name, reasons - EXPECTED_REAL_REASONS)
        by_vendor[path.stem] = {o.row_key: o for o in result.observations}
    # Read off the files by hand:
    # google.json gemini-2.5-pro: input 1.25, input_cached 0.125; gemini-2.5-pro-200k (">200k"): input 2.5
    google = by_vendor["google"]
    assert google["google/gemini-2.5-pro|||input"].usd_price == D("1.25")
    assert google["google/gemini-2.5-pro|||cached_input"].usd_price == D("0.125")
    tier = google["google/gemini-2.5-pro-200k|||input"]
    assert (tier.instrument, tier.price_type, tier.usd_price) == ("gemini-2.5-pro", "input_above_200k", D("2.5"))
    # openai.json o3: input 10, output 40 (no dates: valid always)
    o3 = by_vendor["openai"]["openai/o3|||output"]
    assert (o3.usd_price, o3.valid_from, o3.valid_to) == (D("40"), None, None)
    # moonshot-ai.json kimi-k2-0905-preview -> kimi-k2-0905: input 0.6
    assert by_vendor["moonshot-ai"]["moonshot-ai/kimi-k2-0905-preview|||input"].instrument == "kimi-k2-0905"
    # amazon.json: Nova is sold by Amazon Bedrock, the provider id the other sources use
    assert {o.provider for o in by_vendor["amazon"].values()} == {"bedrock"}


# --- hostile files (issue 10; the corpus is tests/hostile/llm_prices/) -------------------------------------


def _vendor_file(*histories: str) -> bytes:
    models = ", ".join(f'{{"id": "o3", "name": "o3", "price_history": [{h}]}}' for h in histories)
    return f'{{"vendor": "openai", "models": [{models}]}}'.encode()


def _entry(price: str, from_date: str | None, to_date: str | None) -> str:
    quote = lambda d: "null" if d is None else f'"{d}"'  # noqa: E731
    return f'{{"input": {price}, "output": 8, "from_date": {quote(from_date)}, "to_date": {quote(to_date)}}}'


def test_overlapping_history_entries_with_different_prices_are_all_refused():
    result = parse(_vendor_file(", ".join([
        _entry("2", "2025-06-10", None),
        _entry("10", None, "2025-06-10"),  # up to, not including, 2025-06-10: overlaps neither
        _entry("1", "2025-09-01", "2025-10-01"),  # inside the first, another price
    ])))
    assert Counter((r.row_key, r.reason) for r in result.rejections) == Counter({
        ("openai/o3|2025-06-10|", "conflicting_history"): 1,
        ("openai/o3|2025-09-01|2025-10-01", "conflicting_history"): 1,
    })
    assert {(o.price_type, o.usd_price) for o in result.observations} == {("input", D("10")), ("output", D("8"))}


def test_overlapping_entries_that_agree_and_identical_copies_are_harmless():
    # Two entries with one price over overlapping dates say the same: both load. The model listed twice with
    # one history (and names giving the same tier, as xai.json's grok-4-fast) is kept once.
    history = ", ".join([_entry("2", "2025-06-10", None), _entry("2.0", "2025-09-01", None)])
    result = parse(_vendor_file(history, history))
    assert Counter(r.reason for r in result.rejections) == Counter({"duplicate_row": 4})
    assert len(result.observations) == 4


def test_the_same_model_with_another_history_refuses_every_copy():
    result = parse(_vendor_file(_entry("2", None, None), _entry("2", "2025-01-01", None)))
    assert Counter((r.row_key, r.reason) for r in result.rejections) == Counter({
        ("openai/o3|#0", "conflicting_history"): 1, ("openai/o3|#1", "conflicting_history"): 1})
    assert result.observations == []


@pytest.mark.parametrize(
    ("from_date", "to_date", "loads"),
    [
        ("0001-01-01", None, False),
        (None, "0001-01-01", False),  # the day before raised OverflowError
        ("9999-12-31", None, False),
        ("1999-12-31", None, False),
        (None, "2101-01-01", False),
        ("2000-01-01", "2100-12-31", True),
    ],
)
def test_dates_outside_2000_to_2100_are_bad_dates(from_date, to_date, loads):
    result = parse(_vendor_file(_entry("2", from_date, to_date)))
    assert (len(result.observations) == 2) is loads
    assert [r.reason for r in result.rejections] == ([] if loads else ["bad_date"])


def test_a_model_repeating_a_price_key_is_refused_and_negative_prices_are_not_their_absolute_value():
    body = (b'{"vendor": "openai", "models": ['
            b'{"id": "o3", "price_history": [{"input": 2, "output": 8, "input": 2.9}]},'
            b'{"id": "gpt-4.1", "price_history": [{"input": -2, "output": 8}]}]}')
    result = parse(body)
    assert Counter((r.row_key, r.reason) for r in result.rejections) == Counter({
        ("openai/o3", "duplicate_key"): 1, ("openai/gpt-4.1|||input", "bad_price"): 1})
    assert [(o.row_key, o.usd_price) for o in result.observations] == [("openai/gpt-4.1|||output", D("8"))]
