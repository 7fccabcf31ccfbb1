"""Index definitions are data, validated on load with errors that say what is wrong."""
from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from pipeline.definitions import (
    BasketDefinition,
    DefinitionError,
    IndexDefinition,
    definition_from_json,
    load_definitions,
)

GOOD = """
[[index]]
id = "TSI-X"
name = "x"
methodology_version = "1.0"
instrument_kind = "gpu"
instrument = "H100-SXM"
price_type = "on_demand"
sources = ["skypilot"]
"""

TOKENS = """
[defaults]
methodology_version = "2.0"
sources = ["openrouter_endpoints"]

[[index]]
id = "T-A-IN"
name = "a"
instrument_kind = "token"
instrument = "llama-3.3-70b"
price_type = "input"

[[index]]
id = "T-B-IN"
name = "b"
instrument_kind = "token"
instrument = "qwen-2.5-72b"
price_type = "input"

[[index]]
id = "T-A-BLEND"
name = "a blended"
instrument_kind = "token"
instrument = "llama-3.3-70b"
price_type = "blended"

[[basket]]
id = "T-BASKET-IN"
name = "basket"
members = ["T-A-IN", "T-B-IN"]
"""


def write(tmp_path, text):
    path = tmp_path / "indices.toml"
    path.write_text(text)
    return path


def test_the_shipped_definitions_load_and_round_trip_through_their_stored_json():
    definitions = load_definitions()
    assert len({d.id for d in definitions}) == len(definitions) >= 5
    assert {d.instrument_kind for d in definitions} == {"gpu", "token"}
    assert any(d.is_basket for d in definitions) and any(d.price_type == "blended" for d in definitions)
    for d in definitions:
        again = definition_from_json(d.canonical_json())
        assert again == d and again.sha256 == d.sha256


def test_defaults_of_the_methodology(tmp_path):
    [d] = load_definitions(write(tmp_path, GOOD))
    assert (d.min_providers, d.window_hours, d.decimals, d.fallback_window_hours, d.carry_days) == (3, 24, 4, (72, 168), 3)
    assert (d.outlier_screen, d.outlier_threshold, d.outlier_min_providers) == ("modified_z", Decimal("3.5"), 4)
    assert (d.estimator, d.provider_value, d.marketplace_value, d.quantile_method) == (
        "median", "median_of_rows", "gpu_weighted_median", "hyndman_fan_7")
    start, end = d.window(date(2026, 11, 20))
    assert end == datetime(2026, 11, 20, 16, 0, tzinfo=timezone.utc)
    assert start == datetime(2026, 11, 19, 16, 0, tzinfo=timezone.utc)
    assert d.cutoff(date(2026, 11, 20)) == datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)
    assert d.revision_threshold == Decimal("0.001")


def test_numbers_are_read_as_decimals_not_floats(tmp_path):
    # 0.1 as a binary float is 0.1000000000000000055...; read from the TOML text it stays exactly 0.1.
    text = GOOD.replace('name = "x"', 'name = "x"\nestimator = "trimmed_mean"\ntrim_fraction = 0.1\noutlier_threshold = 3.0')
    [d] = load_definitions(write(tmp_path, text))
    assert d.trim_fraction == Decimal("0.1") and isinstance(d.trim_fraction, Decimal)
    assert d.outlier_threshold == Decimal("3.0")


def test_defaults_table_blends_and_baskets(tmp_path):
    a_in, b_in, blend, basket = load_definitions(write(tmp_path, TOKENS))
    assert a_in.methodology_version == "2.0" and a_in.sources == ("openrouter_endpoints",)
    # 3 input : 1 output -> exact shares 0.75 and 0.25; legs read: input and output
    assert (blend.blend_input, blend.blend_output, blend.leg_price_types) == (Decimal("0.75"), Decimal("0.25"), ("input", "output"))
    assert isinstance(basket, BasketDefinition)
    assert (basket.members, basket.instrument_kind, basket.price_type, basket.required_members) == (
        ("T-A-IN", "T-B-IN"), "token", "input", 2)
    one_to_four = TOKENS.replace('price_type = "blended"', 'price_type = "blended"\nblend = { input = 1, output = 4 }')
    blend = load_definitions(write(tmp_path, one_to_four))[2]
    assert (blend.blend_input, blend.blend_output) == (Decimal("0.2"), Decimal("0.8"))


def test_a_changed_parameter_changes_the_definition_hash(tmp_path):
    [d] = load_definitions(write(tmp_path, GOOD))
    [e] = load_definitions(write(tmp_path, GOOD.replace('name = "x"', 'name = "x"\ncarry_days = 2')))
    assert d.sha256 != e.sha256


def test_instruments_may_be_a_list_and_segments_filter(tmp_path):
    text = GOOD.replace('instrument = "H100-SXM"', 'instruments = ["H100-SXM", "H100-PCIE"]\nsegments = ["specialist", "marketplace"]')
    [d] = load_definitions(write(tmp_path, text))
    assert d.instruments == ("H100-SXM", "H100-PCIE") and d.segments == ("specialist", "marketplace")


@pytest.mark.parametrize(
    "change, message",
    [
        (('instrument = "H100-SXM"', 'instrument = "H100"'), "not a canonical gpu"),
        (('price_type = "on_demand"', 'price_type = "input"'), "price_type for gpu"),
        (('sources = ["skypilot"]', 'sources = ["nowhere"]'), "unknown source"),
        (('sources = ["skypilot"]', 'sources = ["openrouter"]'), "gives token prices"),
        (('id = "TSI-X"', 'id = "=cmd|calc"'), "id must match"),
        (('name = "x"', 'name = "x"\nmin_providers = 0'), "min_providers"),
        (('name = "x"', 'name = "x"\nfixing_time_utc = "25:00"'), "fixing_time_utc"),
        (('name = "x"', 'name = "x"\nfixing_time_utc = "16:00:30"'), "whole minute"),
        (('name = "x"', 'name = "x"\nestimator = "mode"'), "estimator must be one of"),
        (('name = "x"', 'name = "x"\ntrim_fraction = 0.1'), "trim_fraction applies only to estimator"),
        (('name = "x"', 'name = "x"\nestimator = "trimmed_mean"\ntrim_fraction = 0.5'), "trim_fraction must lie in"),
        (('name = "x"', 'name = "x"\nestimator = "capped_weight_median"\nweight_cap = 0'), "weight_cap must lie in"),
        (('name = "x"', 'name = "x"\noutlier_threshold = 3.1234567'), "at most 6 decimal places"),
        (('name = "x"', 'name = "x"\noutlier_min_providers = 2'), "outlier_min_providers"),
        (('name = "x"', 'name = "x"\nquantile_method = "excel"'), "quantile_method must be one of"),
        (('name = "x"', 'name = "x"\nprovider_value = "mean"'), "provider_value must be one of"),
        (('name = "x"', 'name = "x"\ndecimals = 11'), "decimals must be a whole number from 0 to 10"),
        (('name = "x"', 'name = "x"\nfallback_window_hours = [168, 72]'), "must widen the window"),
        (('name = "x"', 'name = "x"\nfallback_window_hours = [24]'), "must widen the window"),
        (('name = "x"', 'name = "x"\nblend = { input = 3, output = 1 }'), "blend applies only to price_type"),
        (('name = "x"', 'name = "x"\nestimate = "median"'), "unknown field"),
        (('methodology_version = "1.0"\n', ""), "missing field"),
        (('instrument = "H100-SXM"\n', ""), "missing field"),
    ],
)
def test_bad_definitions_are_refused_with_a_reason(tmp_path, change, message):
    old, new = change
    assert old in GOOD
    with pytest.raises(DefinitionError, match=message):
        load_definitions(write(tmp_path, GOOD.replace(old, new)))


@pytest.mark.parametrize(
    "change, message",
    [
        (('price_type = "blended"', 'price_type = "blended"\nblend = { input = 2, output = 1 }'), "not exact decimals"),
        (('price_type = "blended"', 'price_type = "blended"\ndispersion_basis = "observations"'), "no meaning for a blended"),
        (('members = ["T-A-IN", "T-B-IN"]', 'members = ["T-A-IN", "T-A-BLEND"]'), "share one instrument kind and price type"),
        (('members = ["T-A-IN", "T-B-IN"]', 'members = ["T-A-IN", "NOPE"]'), r"is not an \[\[index\]\] of this file"),
        (('members = ["T-A-IN", "T-B-IN"]', 'members = ["T-A-IN", "T-A-IN"]'), "repeat"),
        (('name = "basket"', 'name = "basket"\nmin_members = 3'), "min_members"),
        (('[defaults]', '[defaults]\nmembers = ["x"]'), r"\[defaults\] has unknown or per-index field"),
    ],
)
def test_bad_token_definitions_are_refused(tmp_path, change, message):
    old, new = change
    assert old in TOKENS
    with pytest.raises(DefinitionError, match=message):
        load_definitions(write(tmp_path, TOKENS.replace(old, new)))


def test_duplicate_ids_and_bad_toml_are_refused(tmp_path):
    with pytest.raises(DefinitionError, match="defined twice"):
        load_definitions(write(tmp_path, GOOD + GOOD))
    with pytest.raises(DefinitionError, match="not valid TOML"):
        load_definitions(write(tmp_path, "[[index]\nid="))
    with pytest.raises(DefinitionError, match="unknown top-level"):
        load_definitions(write(tmp_path, GOOD + "\n[[indexes]]\nid = 1\n"))


def test_loose_loading_accepts_any_instrument_and_source_for_what_if(tmp_path):
    text = GOOD.replace('instrument = "H100-SXM"', 'instrument = "MI300X-anything"').replace('"skypilot"', '"csv"')
    with pytest.raises(DefinitionError):
        load_definitions(write(tmp_path, text))
    [d] = load_definitions(write(tmp_path, text), strict=False)
    assert d.instruments == ("MI300X-anything",) and d.sources == ("csv",)


def test_methodology_1_definitions_stored_before_version_2_are_read_as_they_were():
    legacy = ('{"decimals":4,"fixing_time_utc":"16:00","id":"TSI-H100-SXM-OD","instrument":"H100-SXM",'
              '"instrument_kind":"gpu","methodology_version":"1.0","min_providers":3,"name":"x",'
              '"price_type":"on_demand","sources":["skypilot"],"window_hours":24}')
    d = definition_from_json(legacy)
    assert isinstance(d, IndexDefinition)
    # methodology 1.0 had no screen, no fallback ladder and no carry
    assert (d.instruments, d.outlier_screen, d.fallback_window_hours, d.carry_days) == (("H100-SXM",), "none", (), 0)


def test_token_price_type_variants_of_the_sources_can_be_indexed(tmp_path):
    # LiteLLM gives batch-API prices and long-context tiers as price types of their own.
    without_basket = TOKENS.split("[[basket]]")[0]
    text = without_basket.replace('price_type = "input"', 'price_type = "input_batch"', 1)
    a, *_ = load_definitions(write(tmp_path, text))
    assert a.price_type == "input_batch"
    with pytest.raises(DefinitionError, match="price_type for token"):
        load_definitions(write(tmp_path, TOKENS.replace('price_type = "input"', 'price_type = "input_weekly"', 1)))
