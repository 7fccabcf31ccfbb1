"""Each rule of the methodology (README "Methodology") on hand-made observations. Every expected number is
worked out by hand in the comment beside it; the engine is the daily run's SQL (pipeline.fixing)."""
from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from pipeline.definitions import BasketDefinition
from pipeline.fixing import CARRIED, FINAL, SUPPRESSED, WIDENED

from fixing_helpers import excluded, fix, gpu_index, obs, one, token_index, values

SCREEN_OFF = dict(outlier_screen="none")


# --- the published worked example ------------------------------------------------------------------------

def test_four_hyperscaler_provider_values_give_the_published_median():
    # Pulse H100 SXM Hyperscaler OD, 2026-04-24: AWS 6.88, OCI 10.00, GCP 10.9791, Azure 12.29.
    # Median of four = (10.00 + 10.9791) / 2 = 10.48955 -> half-even at 4 places: 10.4896 (published 10.4896).
    # Outlier screen: median 10.48955, deviations 3.60955, 0.48955, 0.48955, 1.80045 -> MAD (0.48955 +
    # 1.80045) / 2 = 1.145; 0.6745 x 3.60955 = 2.43464 < 3.5 x 1.145: no provider is dropped.
    observations = [obs(p, v, segment="hyperscaler") for p, v in
                    (("aws", "6.88"), ("oci", "10.00"), ("gcp", "10.9791"), ("azure", "12.29"))]
    f = one(observations, gpu_index(segments=("hyperscaler",)))
    assert (f.status, f.value, f.n_providers) == (FINAL, Decimal("10.4896"), 4)
    # mean (6.88 + 10 + 10.9791 + 12.29) / 4 = 40.1491 / 4 = 10.037275 -> 10.0373
    assert f.mean == Decimal("10.0373")


def test_segments_are_never_blended():
    observations = [obs("aws", "6.88", segment="hyperscaler"), obs("lambda", "2.99", segment="specialist"),
                    obs("runpod", "2.49", segment="specialist"), obs("nebius", "2.95", segment="specialist"),
                    obs("nameless", "0.10")]  # no segment: never passes a segment filter
    f = one(observations, gpu_index(segments=("specialist",)))
    assert sorted(values(f)) == ["lambda", "nebius", "runpod"]
    assert f.value == Decimal("2.9500")


# --- provider values ------------------------------------------------------------------------------------

def test_provider_value_median_of_rows_and_median_of_region_medians():
    # Provider a lists r1 at 1.00 three times and r2 at 4.00:
    #   median_of_rows: 1, 1, 1, 4 -> (1 + 1) / 2 = 1.00
    #   median_of_region_medians: r1 -> 1.00, r2 -> 4.00 -> (1 + 4) / 2 = 2.50
    a = [obs("a", "1.00", region="r1"), obs("a", "1.00", region="r1"), obs("a", "1.00", region="r1"),
         obs("a", "4.00", region="r2")]
    others = [obs("b", "2.00"), obs("c", "3.00")]
    rows = one(a + others, gpu_index(**SCREEN_OFF))
    regions = one(a + others, gpu_index(provider_value="median_of_region_medians", **SCREEN_OFF))
    assert values(rows)["a"] == Decimal("1.00") and rows.value == Decimal("2.0000")  # median(1, 2, 3)
    assert values(regions)["a"] == Decimal("2.50") and regions.value == Decimal("2.5000")  # median(2, 2.5, 3)
    assert {c.value_rule for c in regions.constituents} == {"median_of_region_medians"}


def test_marketplace_offers_collapse_to_the_gpu_weighted_lower_median():
    # vast's offers: 1.00 x 1 GPU, 2.00 x 1 GPU, 3.00 x 8 GPUs; 10 GPUs in all. The weighted median is the
    # lowest price at which the GPUs offered at or below it reach half of all (2 x cumulative >= total):
    # cumulative 1, 2, 10 -> 2 x 1 < 10, 2 x 2 < 10, 2 x 10 >= 10 -> 3.00 (the plain median would be 2.00).
    vast = [obs("vast", "1.00", gpu_count="1", segment="marketplace"),
            obs("vast", "2.00", gpu_count="1", segment="marketplace"),
            obs("vast", "3.00", gpu_count="8", segment="marketplace")]
    others = [obs("b", "2.50", segment="specialist"), obs("c", "2.90", segment="specialist")]
    f = one(vast + others, gpu_index(**SCREEN_OFF))
    assert values(f)["vast"] == Decimal("3.00")
    assert {c.provider: c.value_rule for c in f.constituents}["vast"] == "gpu_weighted_median"
    assert f.value == Decimal("2.9000")  # median(2.50, 2.90, 3.00)
    as_others = one(vast + others, gpu_index(marketplace_value="as_other_providers", **SCREEN_OFF))
    assert values(as_others)["vast"] == Decimal("2.00")


def test_weighted_median_on_an_even_split_is_the_lower_price_not_the_midpoint():
    # Two offers of one GPU each at 1.00 and 2.00: cumulative 1 of 2 reaches half at 1.00 (2 x 1 >= 2).
    vast = [obs("vast", "1.00", gpu_count="1", segment="marketplace"),
            obs("vast", "2.00", gpu_count="1", segment="marketplace")]
    f = one(vast + [obs("b", "5.00"), obs("c", "6.00")], gpu_index(**SCREEN_OFF))
    assert values(f)["vast"] == Decimal("1.00")


def test_vote_floor_drops_a_provider_quoting_too_few_distinct_prices():
    # min_distinct_prices 2: a quotes 2.00 twice (one distinct price) and has no vote. b (3.00, 3.50) -> 3.25,
    # c (4.00, 5.00) -> 4.50, d (1.00, 1.50) -> 1.25: median(1.25, 3.25, 4.50) = 3.25.
    observations = [obs("a", "2.00"), obs("a", "2.00"), obs("b", "3.00"), obs("b", "3.50"),
                    obs("c", "4.00"), obs("c", "5.00"), obs("d", "1.00"), obs("d", "1.50")]
    f = one(observations, gpu_index(min_distinct_prices=2))
    assert excluded(f) == {"a": "insufficient_distinct_prices"}
    assert (f.value, f.n_providers, f.n_observations) == (Decimal("3.2500"), 3, 6)


# --- the outlier screen ---------------------------------------------------------------------------------

def test_modified_z_screen_drops_the_outlier_worked_by_hand():
    # 1.00, 1.10, 1.20, 1.30, 5.00: median 1.20; |p - median| = 0.20, 0.10, 0, 0.10, 3.80 -> MAD = 0.10.
    # z(5.00) = 0.6745 x 3.80 / 0.10 = 25.631 > 3.5: dropped; z(1.00) = 0.6745 x 0.20 / 0.10 = 1.349: kept.
    # The index is the median of the rest: (1.10 + 1.20) / 2 = 1.15.
    observations = [obs(p, v) for p, v in (("a", "1.00"), ("b", "1.10"), ("c", "1.20"), ("d", "1.30"), ("e", "5.00"))]
    f = one(observations, gpu_index())
    assert excluded(f) == {"e": "outlier_mad"}
    reason = next(c.exclusion_reason for c in f.constituents if c.provider == "e")
    assert "modified z 25.63" in reason
    assert (f.value, f.n_providers) == (Decimal("1.1500"), 4)


def test_the_screen_threshold_is_strict_and_exact():
    # Median 10, MAD 0.6745 (values 9.3255, 10, 10, 10.6745, p): z(p) = 0.6745 (p - 10) / 0.6745 = p - 10.
    # p = 13.5 gives z = 3.5 exactly: not beyond the threshold, kept; p = 13.5001 gives 3.5001: dropped.
    base = [obs("a", "9.3255"), obs("b", "10"), obs("c", "10"), obs("d", "10.6745")]
    kept = one(base + [obs("e", "13.5")], gpu_index())
    dropped = one(base + [obs("e", "13.5001")], gpu_index())
    assert excluded(kept) == {} and kept.value == Decimal("10.0000")
    assert excluded(dropped) == {"e": "outlier_mad"} and dropped.value == Decimal("10.0000")
    # Four left: median (10 + 10) / 2 = 10; with e kept, five: median 10.
    assert (kept.n_providers, dropped.n_providers) == (5, 4)


def test_the_screen_is_skipped_when_mad_is_zero_or_providers_are_few():
    # 2, 2, 2, 2, 50: median 2, deviations 0, 0, 0, 0, 48 -> MAD 0: no screen; median of five = 2.
    zero_mad = one([obs(p, v) for p, v in (("a", "2"), ("b", "2"), ("c", "2"), ("d", "2"), ("e", "50"))], gpu_index())
    assert (excluded(zero_mad), zero_mad.n_providers, zero_mad.value) == ({}, 5, Decimal("2.0000"))
    # Three providers (fewer than outlier_min_providers 4): 1.00, 1.10, 50.00 all kept; median 1.10.
    few = one([obs("a", "1.00"), obs("b", "1.10"), obs("c", "50.00")], gpu_index())
    assert (excluded(few), few.value) == ({}, Decimal("1.1000"))


# --- estimators -----------------------------------------------------------------------------------------

def test_trimmed_mean_cuts_floor_of_the_fraction_from_each_end():
    # trim_fraction 0.2 of 5 providers: g = floor(1.0) = 1 cut from each end of 1, 2, 2, 3, 9 -> mean of
    # 2, 2, 3 = 7 / 3 = 2.33333... -> 2.3333.
    observations = [obs(p, v) for p, v in (("a", "1"), ("b", "2"), ("c", "2"), ("d", "3"), ("e", "9"))]
    f = one(observations, gpu_index(estimator="trimmed_mean", trim_fraction=Decimal("0.2"), **SCREEN_OFF))
    assert f.value == Decimal("2.3333")
    weights = {c.provider: c.weight for c in f.constituents}
    assert weights == {"a": 0, "b": Decimal("0.3333333333"), "c": Decimal("0.3333333333"),
                       "d": Decimal("0.3333333333"), "e": 0}
    # trim_fraction 0.1 of 5: g = floor(0.5) = 0, the plain mean 17 / 5 = 3.4.
    g0 = one(observations, gpu_index(estimator="trimmed_mean", trim_fraction=Decimal("0.1"), **SCREEN_OFF))
    assert g0.value == Decimal("3.4000")


def test_capped_weight_median_caps_a_dominant_provider():
    # Raw weights (GPUs listed): a 4 (value 1.00), b..f 1 each (values 2..6); total 9, weight_cap 0.3.
    # a's share 4/9 > 0.3: capped. The rest: (1 - 0.3) x 1 <= 0.3 x 5, so one provider is capped (m = 1).
    # Scaled weights (x S = 5): a 0.3 x 5 = 1.5; b..f 0.7 each; total 5. Cumulative by value: 1.5, 2.2, 2.9:
    # 2 x 2.9 >= 5 first at c -> 3.00. (Uncapped: 2 x (4 + 1) >= 9 at b -> 2.00; plain median 3.50.)
    observations = [obs("a", "1.00", gpu_count="4")] + [
        obs(p, v, gpu_count="1") for p, v in (("b", "2.00"), ("c", "3.00"), ("d", "4.00"), ("e", "5.00"), ("f", "6.00"))
    ]
    f = one(observations, gpu_index(estimator="capped_weight_median", weight_cap=Decimal("0.3"), **SCREEN_OFF))
    assert f.value == Decimal("3.0000")
    weights = {c.provider: c.weight for c in f.constituents}
    assert weights["a"] == Decimal("0.3") and weights["b"] == Decimal("0.14")  # 1.5 / 5 and 0.7 / 5
    # Three providers with cap 0.25: no share can be held to 0.25 (3 x 0.25 < 1), so all weigh the same
    # and the lower weighted median is the middle value.
    three = one(observations[:3], gpu_index(estimator="capped_weight_median", weight_cap=Decimal("0.25"), **SCREEN_OFF))
    assert three.value == Decimal("2.0000")


def test_headline_switches_from_median_to_mean_at_n_providers():
    # mean_from_providers 4. Three providers 1, 2, 6: median 2. Four providers 1, 2, 6, 7: mean 16 / 4 = 4
    # (the median would be 4 too: use 1, 2, 6, 9 -> mean 18 / 4 = 4.5, median 4).
    definition = gpu_index(mean_from_providers=4, **SCREEN_OFF)
    three = one([obs("a", "1"), obs("b", "2"), obs("c", "6")], definition)
    four = one([obs("a", "1"), obs("b", "2"), obs("c", "6"), obs("d", "9")], definition)
    assert three.value == Decimal("2.0000") and three.method == "median of 3 provider values"
    assert four.value == Decimal("4.5000") and four.method.startswith("mean of 4 provider values")


# --- dispersion and quantiles ---------------------------------------------------------------------------

@pytest.mark.parametrize(
    "method, p25, p75",
    [
        # eight observations 1..8. type 7: h = 1 + 7 x 0.25 = 2.75 -> 2 + 0.75 = 2.75; h = 1 + 7 x 0.75 = 6.25
        ("hyndman_fan_7", "2.7500", "6.2500"),
        # type 6: h = 9 x 0.25 = 2.25 -> 2.25; h = 9 x 0.75 = 6.75 -> 6.75
        ("hyndman_fan_6", "2.2500", "6.7500"),
        # type 1: ceil(8 x 0.25) = 2 -> x2 = 2; ceil(8 x 0.75) = 6 -> x6 = 6
        ("hyndman_fan_1", "2.0000", "6.0000"),
    ],
)
def test_dispersion_over_observations_on_an_even_count(method, p25, p75):
    # a: 1, 2 (value 1.5); b: 3, 4 (3.5); c: 5, 6, 7, 8 (6.5). Over observations: min 1, max 8, mean 36 / 8.
    observations = [obs("a", "1"), obs("a", "2"), obs("b", "3"), obs("b", "4")] + [obs("c", v) for v in "5678"]
    f = one(observations, gpu_index(dispersion_basis="observations", quantile_method=method, **SCREEN_OFF))
    assert (f.p25, f.p75) == (Decimal(p25), Decimal(p75))
    assert (f.min, f.max, f.mean) == (Decimal("1.0000"), Decimal("8.0000"), Decimal("4.5000"))
    assert f.value == Decimal("3.5000")  # the median of the provider values 1.5, 3.5, 6.5


@pytest.mark.parametrize(
    "method, p25, p75",
    [
        # four provider values 6.88, 10.00, 10.9791, 12.29. type 7: h = 1.75 -> 6.88 + 0.75 x 3.12 = 9.22;
        # h = 3.25 -> 10.9791 + 0.25 x 1.3109 = 11.306825 -> 11.3068
        ("hyndman_fan_7", "9.2200", "11.3068"),
        # type 6: h = 1.25 -> 6.88 + 0.25 x 3.12 = 7.66; h = 3.75 -> 10.9791 + 0.75 x 1.3109 = 11.962275 -> 11.9623
        ("hyndman_fan_6", "7.6600", "11.9623"),
        # type 1: ceil(1) = 1 -> 6.88; ceil(3) = 3 -> 10.9791
        ("hyndman_fan_1", "6.8800", "10.9791"),
    ],
)
def test_quartiles_of_four_provider_values(method, p25, p75):
    observations = [obs(p, v) for p, v in (("a", "6.88"), ("b", "10.00"), ("c", "10.9791"), ("d", "12.29"))]
    f = one(observations, gpu_index(quantile_method=method))
    assert (f.p25, f.p75) == (Decimal(p25), Decimal(p75))


def test_type_6_quartiles_are_held_inside_the_data():
    # Three values 1, 3, 8: h = (3 + 1) x 0.25 = 1 -> x1 = 1; h = 4 x 0.75 = 3 -> x3 = 8 (never beyond the
    # last value). Two values 1, 3 (min_providers 2): h = 0.75 < 1 -> held at x1 = 1; h = 2.25 > 2 -> x2 = 3.
    three = one([obs("a", "1"), obs("b", "3"), obs("c", "8")], gpu_index(quantile_method="hyndman_fan_6"))
    two = one([obs("a", "1"), obs("b", "3")], gpu_index(quantile_method="hyndman_fan_6", min_providers=2))
    assert (three.p25, three.p75) == (Decimal("1.0000"), Decimal("8.0000"))
    assert (two.p25, two.p75, two.value) == (Decimal("1.0000"), Decimal("3.0000"), Decimal("2.0000"))


# --- tokens: blends and baskets -------------------------------------------------------------------------

def _tok(provider, model, input_price=None, output_price=None, at="2026-11-20T06:00"):
    rows = []
    if input_price:
        rows.append(obs(provider, input_price, instrument=model, price_type="input", at=at))
    if output_price:
        rows.append(obs(provider, output_price, instrument=model, price_type="output", at=at))
    return rows


def test_blended_price_is_blended_per_provider_before_the_median():
    # 3 input : 1 output per provider: a 0.75 x 0.20 + 0.25 x 0.60 = 0.30; b 0.75 x 0.40 + 0.25 x 1.20 = 0.60;
    # c 0.75 x 0.10 + 0.25 x 0.50 = 0.20; d has no output price: no blended value. Median(0.20, 0.30, 0.60) = 0.30.
    # (Blending the two indices instead would give 0.75 x median(0.05, 0.10, 0.20, 0.40) + 0.25 x
    # median(0.50, 0.60, 1.20) = 0.75 x 0.15 + 0.25 x 0.60 = 0.2625: not the method.)
    observations = (_tok("a", "llama-3.3-70b", "0.20", "0.60") + _tok("b", "llama-3.3-70b", "0.40", "1.20")
                    + _tok("c", "llama-3.3-70b", "0.10", "0.50") + _tok("d", "llama-3.3-70b", "0.05"))
    blended = token_index("llama-3.3-70b", "blended", **SCREEN_OFF)
    f = one(observations, blended)
    assert values(f) == {"a": Decimal("0.30"), "b": Decimal("0.60"), "c": Decimal("0.20"), "d": None}
    assert excluded(f) == {"d": "incomplete_blend"}
    assert (f.value, f.n_providers, f.n_observations) == (Decimal("0.3000"), 3, 6)
    # blend 1 : 1 (shares 0.5 and 0.5): a 0.40, b 0.80, c 0.30 -> median 0.40
    even = one(observations, token_index("llama-3.3-70b", "blended", blend_input=Decimal("0.5"),
                                         blend_output=Decimal("0.5"), **SCREEN_OFF))
    assert even.value == Decimal("0.4000")


def test_basket_is_the_equal_weight_mean_of_its_members_published_values():
    # Members (input prices): llama median(0.10, 0.20, 0.30) = 0.20; qwen median(0.40, 0.50, 0.70) = 0.50;
    # deepseek median(0.05, 0.10, 0.12) = 0.10. Mean (0.2 + 0.5 + 0.1) / 3 = 0.26666... -> 0.2667.
    observations = []
    for model, prices in (("llama-3.3-70b", ("0.10", "0.20", "0.30")), ("qwen-2.5-72b", ("0.40", "0.50", "0.70")),
                          ("deepseek-v3-0324", ("0.05", "0.10", "0.12"))):
        for provider, price in zip("abc", prices):
            observations += _tok(provider, model, price)
    members = [token_index(m, "input", **SCREEN_OFF) for m in ("llama-3.3-70b", "qwen-2.5-72b", "deepseek-v3-0324")]
    basket = BasketDefinition(id="T-BASKET", name="b", methodology_version="1", instrument_kind="token",
                              price_type="input", members=tuple(m.id for m in members))
    *_, b = fix(observations, members + [basket])
    assert (b.status, b.value, b.n_providers) == (FINAL, Decimal("0.2667"), 3)
    assert {c.provider: c.weight for c in b.constituents} == {m.id: Decimal("0.3333333333") for m in members}
    # deepseek suppressed (one provider left): the basket needs every member unless min_members says less;
    # with min_members 2: (0.2 + 0.5) / 2 = 0.35.
    thin = [o for o in observations if not (o.instrument == "deepseek-v3-0324" and o.provider != "a")]
    *_, all_needed = fix(thin, members + [basket])
    *_, two_needed = fix(thin, members + [BasketDefinition(**{**basket.__dict__, "min_members": 2})])
    assert (all_needed.status, all_needed.value) == (SUPPRESSED, None)
    assert (two_needed.status, two_needed.value) == (FINAL, Decimal("0.3500"))


# --- the fallback ladder (one worked example per rung) --------------------------------------------------

def test_widened_to_72_hours_when_the_day_is_thin():
    # 24 h window (11-19 16:00, 11-20 16:00] holds only a; 72 h (11-17 16:00, ...] holds a, b, c.
    observations = [obs("a", "2.00"), obs("b", "3.00", at="2026-11-19T06:00"), obs("c", "4.00", at="2026-11-18T06:00")]
    f = one(observations, gpu_index())
    assert (f.status, f.window_hours, f.value) == (WIDENED, 72, Decimal("3.0000"))
    assert f.window_start.isoformat() == "2026-11-17T16:00:00+00:00"


def test_widened_to_168_hours_when_72_are_not_enough():
    # b at 11-16 06:00 and c at 11-14 06:00 are outside 72 h (from 11-17 16:00) but inside 168 h (from 11-13 16:00).
    observations = [obs("a", "2.00"), obs("b", "3.00", at="2026-11-16T06:00"), obs("c", "5.00", at="2026-11-14T06:00")]
    f = one(observations, gpu_index())
    assert (f.status, f.window_hours, f.value) == (WIDENED, 168, Decimal("3.0000"))


def test_carried_for_at_most_three_days_then_suppressed():
    # Without a wider window (fallback_window_hours = []): three providers on 11-16 only.
    # 11-16 final 3.00; 11-17, 18, 19 carry it (1, 2, 3 days); 11-20 is 4 days on: suppressed.
    observations = [obs(p, v, at="2026-11-16T06:00") for p, v in (("a", "2.00"), ("b", "3.00"), ("c", "5.00"))]
    days = [date(2026, 11, d) for d in range(16, 21)]
    fixings = fix(observations, [gpu_index(fallback_window_hours=())], days)
    assert [(f.status, f.value, f.carried_from) for f in fixings] == [
        (FINAL, Decimal("3.0000"), None),
        (CARRIED, Decimal("3.0000"), date(2026, 11, 16)),
        (CARRIED, Decimal("3.0000"), date(2026, 11, 16)),
        (CARRIED, Decimal("3.0000"), date(2026, 11, 16)),
        (SUPPRESSED, None, None),
    ]
    assert fixings[1].method == "carried from 2026-11-16: median of 3 provider values"
    # A carried fixing repeats its source's inputs: same hash, same constituents.
    assert fixings[3].input_hash == fixings[0].input_hash
    # carry_days 0: nothing is carried.
    no_carry = fix(observations, [gpu_index(fallback_window_hours=(), carry_days=0)], days)
    assert [f.status for f in no_carry] == [FINAL] + [SUPPRESSED] * 4


def test_only_the_latest_collection_of_a_provider_in_the_widened_window_counts():
    # a was collected twice within 72 h: 11-18 (9.00) then 11-19 (2.00); only the latest counts.
    observations = [obs("a", "9.00", at="2026-11-18T06:00"), obs("a", "2.00", at="2026-11-19T06:00"),
                    obs("b", "3.00", at="2026-11-18T07:00"), obs("c", "4.00", at="2026-11-18T08:00")]
    f = one(observations, gpu_index())
    assert values(f) == {"a": Decimal("2.00"), "b": Decimal("3.00"), "c": Decimal("4.00")}
    assert (f.status, f.value) == (WIDENED, Decimal("3.0000"))


def test_a_provider_priced_by_two_sources_has_one_vote_over_both_latest_collections():
    # lambda from its own page (source "page", fetched 07:00) and from a catalog (source "catalog", fetched at
    # 02:00 and again at 06:00): the latest collection of each source counts, pooled into one value,
    # median(2.99, 3.29) = 3.14; the catalog's 02:00 price (9.99) is superseded. Which source came last does
    # not decide the value.
    from dataclasses import replace

    rows = [replace(obs("lambda", "9.99", at="2026-11-20T02:00"), source="catalog"),
            replace(obs("lambda", "2.99", at="2026-11-20T06:00"), source="catalog"),
            replace(obs("lambda", "3.29", at="2026-11-20T07:00"), source="page"),
            replace(obs("b", "3.00"), source="catalog"), replace(obs("c", "4.00"), source="catalog")]
    f = one(rows, gpu_index(sources=("catalog", "page"), **SCREEN_OFF))
    assert values(f) == {"lambda": Decimal("3.14"), "b": Decimal("3.00"), "c": Decimal("4.00")}
    assert f.n_observations == 4
    only_catalog = one(rows, gpu_index(sources=("catalog",), **SCREEN_OFF))
    assert values(only_catalog)["lambda"] == Decimal("2.99")
