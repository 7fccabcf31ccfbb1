"""The token indices of the LiteLLM price map and llm-prices get a value on the demo days.

The demo recordings (tests/fixtures/demo/<date>/litellm/model_prices_and_context_window.json and
tests/fixtures/demo/<date>/llm_prices/{anthropic,openai}.json) price the open-weight models at several
providers each and the first-party frontier models at their labs' list prices. The values below are worked by
hand from those entries (USD per million tokens = LiteLLM's per-token price x 1e6), following README
"Methodology": the median of the provider values; the modified z-score screen with 4 or more providers, a
provider dropped when 0.6745 |p - m| > 3.5 MAD; a provider's blend = 0.75 input + 0.25 output; a basket = the
mean of its members' published values, rounded to 4 places half-even. The warehouse is built without Prefect
(tests/demo_warehouse.py).
"""
from __future__ import annotations

import tomllib
from datetime import date
from decimal import Decimal

import pytest

from pipeline.paths import PROJECT_ROOT, Warehouse
from pipeline.warehouse import connect

import demo_warehouse

HAS_VALUE = ("final", "widened", "carried")

# Indices the demo recordings cannot give a value, and why. Everything else in pipeline/indices.toml must
# have a value on at least 4 of the 5 demo days.
NO_DEMO_VALUE: dict[str, str] = {
    # None: the SkyPilot recordings hold every cloud of the live collection (twelve specialist clouds, AWS and
    # GCP, four marketplaces), so each GPU index has three or more providers on every demo day, and every token
    # index three or more providers (or its one first-party lab) in the recorded endpoints and price lists.
}


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Warehouse:
    return demo_warehouse.fresh_copy(tmp_path_factory)


@pytest.fixture(scope="module")
def fixings(demo) -> dict[tuple[str, date], tuple[str, Decimal | None]]:
    """(index, date) -> (status, value) of the newest revision."""
    con = connect(demo, read_only=True)
    try:
        rows = con.execute(
            "select index_id, fixing_date, status, coalesce(usd_per_mtok, usd_per_gpu_hour) from fixings"
            " qualify revision = max(revision) over (partition by index_id, fixing_date)"
        ).fetchall()
    finally:
        con.close()
    return {(index_id, day): (status, value) for index_id, day, status, value in rows}


def constituents(demo, index_id: str, day: str) -> dict[str, tuple[Decimal, bool, str | None]]:
    con = connect(demo, read_only=True)
    try:
        rows = con.execute(
            "select provider, provider_value, included, exclusion_reason from fixing_constituents"
            " where index_id = ? and fixing_date = ?::date"
            " qualify revision = max(revision) over (partition by index_id, fixing_date)",
            [index_id, day],
        ).fetchall()
    finally:
        con.close()
    return {provider: (value, included, reason) for provider, value, included, reason in rows}


def value(fixings, index_id: str, day: str) -> Decimal:
    status, amount = fixings[(index_id, date.fromisoformat(day))]
    assert status == "final", (index_id, day, status)
    return amount


def test_llama_3_70b_input_moves_when_friendli_cuts_its_price(demo, fixings):
    # Llama 3 70B Instruct, input, five providers in the LiteLLM map:
    #   deepinfra 0.30, groq 0.59, friendli 0.80 (0.60 from 2026-11-19), azure 1.10, bedrock 2.65.
    # 2026-11-18: sorted 0.30 0.59 0.80 1.10 2.65 -> m = 0.80; |p - m| = 0.50 0.21 0 0.30 1.85 -> sorted
    #   0 0.21 0.30 0.50 1.85 -> MAD = 0.30, 3.5 MAD = 1.05. Bedrock: 0.6745 x 1.85 = 1.247825 > 1.05, dropped;
    #   the largest of the rest, deepinfra 0.6745 x 0.50 = 0.33725, stays.
    #   Median of 0.30 0.59 0.80 1.10 = (0.59 + 0.80) / 2 = 0.695.
    assert value(fixings, "TSI-LLAMA-3-70B-IN", "2026-11-18") == Decimal("0.6950")
    # 2026-11-19: sorted 0.30 0.59 0.60 1.10 2.65 -> m = 0.60; |p - m| = 0.30 0.01 0 0.50 2.05 -> sorted
    #   0 0.01 0.30 0.50 2.05 -> MAD = 0.30, 3.5 MAD = 1.05. Bedrock: 0.6745 x 2.05 = 1.382725 > 1.05, dropped;
    #   azure 0.6745 x 0.50 = 0.33725 stays. Median of 0.30 0.59 0.60 1.10 = (0.59 + 0.60) / 2 = 0.595.
    assert value(fixings, "TSI-LLAMA-3-70B-IN", "2026-11-19") == Decimal("0.5950")
    assert value(fixings, "TSI-LLAMA-3-70B-IN", "2026-11-16") == Decimal("0.6950")
    assert value(fixings, "TSI-LLAMA-3-70B-IN", "2026-11-20") == Decimal("0.5950")
    # Output (0.40 0.79 0.60 0.37 3.50 on 2026-11-19): m = 0.60, MAD = 0.20, bedrock 0.6745 x 2.90 = 1.95605
    # > 0.70 dropped; median of 0.37 0.40 0.60 0.79 = (0.40 + 0.60) / 2 = 0.50.
    assert value(fixings, "TSI-LLAMA-3-70B-OUT", "2026-11-19") == Decimal("0.5000")
    included = constituents(demo, "TSI-LLAMA-3-70B-IN", "2026-11-19")
    assert included["bedrock"][1] is False and included["bedrock"][2].startswith("outlier_mad")
    assert sorted(p for p, (_, inc, _) in included.items() if inc) == ["azure", "deepinfra", "friendli", "groq"]


def test_llama_3_70b_blend(demo, fixings):
    # Per provider, 0.75 input + 0.25 output:
    #   groq 0.75 x 0.59 + 0.25 x 0.79 = 0.4425 + 0.1975 = 0.64; deepinfra 0.225 + 0.10 = 0.325;
    #   bedrock 1.9875 + 0.875 = 2.8625; azure 0.825 + 0.0925 = 0.9175; friendli 0.80 (0.60 from 2026-11-19).
    # 2026-11-18: sorted 0.325 0.64 0.80 0.9175 2.8625 -> m = 0.80; |p - m| sorted 0 0.1175 0.16 0.475 2.0625
    #   -> MAD = 0.16, 3.5 MAD = 0.56. Bedrock 0.6745 x 2.0625 = 1.39115625 > 0.56, dropped; deepinfra
    #   0.6745 x 0.475 = 0.3203875 stays. Median of 0.325 0.64 0.80 0.9175 = (0.64 + 0.80) / 2 = 0.72.
    assert value(fixings, "TSI-LLAMA-3-70B-BLEND", "2026-11-18") == Decimal("0.7200")
    # 2026-11-19: sorted 0.325 0.60 0.64 0.9175 2.8625 -> m = 0.64; |p - m| sorted 0 0.04 0.2775 0.315 2.2225
    #   -> MAD = 0.2775, 3.5 MAD = 0.97125. Bedrock 0.6745 x 2.2225 = 1.49907625 > 0.97125, dropped.
    #   Median of 0.325 0.60 0.64 0.9175 = (0.60 + 0.64) / 2 = 0.62.
    assert value(fixings, "TSI-LLAMA-3-70B-BLEND", "2026-11-19") == Decimal("0.6200")
    values = constituents(demo, "TSI-LLAMA-3-70B-BLEND", "2026-11-19")
    assert {p: v for p, (v, _, _) in values.items()} == {
        "groq": Decimal("0.64"), "deepinfra": Decimal("0.325"), "bedrock": Decimal("2.8625"),
        "azure": Decimal("0.9175"), "friendli": Decimal("0.60")}


def test_other_open_weight_indices(fixings):
    # Llama 3.1 70B input: deepinfra 0.23, groq 0.59, together 0.88, fireworks 0.90, bedrock 0.99 (two rows,
    # no region and `us`, both 0.99), azure 2.68 -> m = (0.88 + 0.90) / 2 = 0.89; |p - m| sorted
    # 0.01 0.01 0.10 0.30 0.66 1.79 -> MAD = (0.10 + 0.30) / 2 = 0.20, 3.5 MAD = 0.70; azure 0.6745 x 1.79 =
    # 1.207355 dropped, deepinfra 0.6745 x 0.66 = 0.44517 stays; median of the five = 0.88.
    assert value(fixings, "TSI-LLAMA-3.1-70B-IN", "2026-11-20") == Decimal("0.8800")
    # Llama 3.1 405B blend: deepinfra 0.80, fireworks 3.00, together 3.50, sambanova 3.75 + 2.50 = 6.25,
    # bedrock 3.99 + 4.00 = 7.99, azure 3.9975 + 4.00 = 7.9975 -> m = (3.50 + 6.25) / 2 = 4.875; MAD =
    # (1.875 + 3.115) / 2 = 2.495, the largest z 0.6745 x 4.075 / 2.495 = 1.10: nobody dropped -> 4.875.
    assert value(fixings, "TSI-LLAMA-3.1-405B-BLEND", "2026-11-16") == Decimal("4.8750")
    # Mixtral 8x7B blend: bedrock's two rows (no region 0.45 / 0.70, eu-west-3 0.59 / 0.91) give legs
    # (0.45 + 0.59) / 2 = 0.52 and (0.70 + 0.91) / 2 = 0.805, blend 0.39 + 0.20125 = 0.59125; with groq 0.24,
    # deepinfra 0.24, together 0.60, mistral 0.70 it is the median (MAD 0.10875, nobody dropped):
    # 0.59125 rounds half-even to 0.5912.
    assert value(fixings, "TSI-MIXTRAL-8X7B-BLEND", "2026-11-17") == Decimal("0.5912")


def test_claude_3_5_sonnet_blend_is_anthropic_list_price(demo, fixings):
    # First party only: Anthropic's rows, llm-prices claude-3.5-sonnet 3 / 15 and LiteLLM
    # claude-3-5-sonnet-20241022 3e-06 / 1.5e-05 (one provider, one vote over both: 3 and 15).
    # Blend 0.75 x 3 + 0.25 x 15 = 2.25 + 3.75 = 6.00. Bedrock's resale of the model is another segment.
    for day in ("2026-11-16", "2026-11-20"):
        assert value(fixings, "TSI-CLAUDE-3.5-SONNET-BLEND", day) == Decimal("6.0000")
    assert set(constituents(demo, "TSI-CLAUDE-3.5-SONNET-BLEND", "2026-11-20")) == {"anthropic"}
    # GPT-5: 0.75 x 1.25 + 0.25 x 10 = 0.9375 + 2.5 = 3.4375; Claude Sonnet 4 (LiteLLM only): 6.00.
    assert value(fixings, "TSI-GPT-5-BLEND", "2026-11-18") == Decimal("3.4375")
    assert value(fixings, "TSI-CLAUDE-SONNET-4-BLEND", "2026-11-18") == Decimal("6.0000")


def test_frontier_basket(fixings):
    # Members' published values: GPT-4o 0.75 x 2.50 + 0.25 x 10 = 4.375, Claude 3.5 Sonnet 6.00,
    # Gemini 2.5 Pro 0.75 x 1.25 + 0.25 x 10 = 3.4375. Mean (4.375 + 6.00 + 3.4375) / 3 = 13.8125 / 3 =
    # 4.604166... -> 4.6042.
    for day in ("2026-11-16", "2026-11-19"):
        assert value(fixings, "TSI-FRONTIER-BLEND", day) == Decimal("4.6042")
    # Input (2.50 + 3.00 + 1.25) / 3 = 2.25; output (10 + 15 + 10) / 3 = 11.666... -> 11.6667.
    assert value(fixings, "TSI-FRONTIER-IN", "2026-11-20") == Decimal("2.2500")
    assert value(fixings, "TSI-FRONTIER-OUT", "2026-11-20") == Decimal("11.6667")


def test_every_shipped_index_has_a_value_on_most_demo_days(fixings):
    definitions = tomllib.loads((PROJECT_ROOT / "pipeline" / "indices.toml").read_text(encoding="utf-8"))
    ids = [d["id"] for d in definitions.get("index", []) + definitions.get("basket", [])]
    assert set(NO_DEMO_VALUE) <= set(ids), "an exempted index is no longer defined: drop it from NO_DEMO_VALUE"
    short = {}
    for index_id in ids:
        if index_id in NO_DEMO_VALUE:
            continue
        days = [d for d in demo_warehouse.DEMO_DATES if fixings.get((index_id, d), (None,))[0] in HAS_VALUE]
        if len(days) < 4:
            short[index_id] = len(days)
    assert not short, f"indices with a value on fewer than 4 of the {len(demo_warehouse.DEMO_DATES)} demo days: {short}"


def test_mistral_nemo_has_three_endpoints_on_every_demo_day(fixings):
    # mistralai/mistral-nemo's recorded endpoints, USD per million tokens: Mistral 0.15 / 0.15, DeepInfra 0.02 /
    # 0.04 (0.025 / 0.04 on 2026-11-20), Nebius AI Studio 0.04 / 0.12. Three providers: no outlier screen (it
    # needs four). Input: the middle of 0.02 (or 0.025), 0.04, 0.15 = 0.04. Output: of 0.04, 0.12, 0.15 = 0.12.
    # Blend per provider (0.75 in + 0.25 out): Mistral 0.15, DeepInfra 0.015 + 0.01 = 0.025 (0.01875 + 0.01 =
    # 0.02875 on 11-20), Nebius 0.03 + 0.03 = 0.06: the middle is 0.06.
    for day in demo_warehouse.DEMO_DATES:
        assert fixings[("TSI-MISTRAL-NEMO-IN", day)] == ("final", Decimal("0.0400")), day
        assert fixings[("TSI-MISTRAL-NEMO-OUT", day)] == ("final", Decimal("0.1200")), day
        assert fixings[("TSI-MISTRAL-NEMO-BLEND", day)] == ("final", Decimal("0.0600")), day
