"""The daily fixing through the warehouse on hand-made observations; every expected value below is worked
out by hand. (test_methodology.py covers each rule of the method; this file the warehouse path.)"""
from __future__ import annotations

import hashlib
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from pipeline.definitions import DefinitionError, IndexDefinition
from pipeline.fixing import (
    CARRIED,
    FINAL,
    SUPPRESSED,
    WIDENED,
    compute_fixings,
    compute_range,
    fix_date,
    fix_range,
    register_definitions,
    round_half_even,
)

from pipeline.ladder import FixingInputError
from pipeline.load import load_result
from pipeline.records import GPU, Observation, ParseContext, ParseResult

from conftest import add_gpu_snapshot

DAY = date(2026, 11, 20)  # fixing at 16:00 UTC; window (2026-11-19 16:00, 2026-11-20 16:00]
# Before the cutoff of DAY (2026-11-21 12:00 UTC): a recomputation then may still be revised.
BEFORE_CUTOFF = datetime(2026, 11, 20, 18, 0, tzinfo=timezone.utc)


def h100(**overrides) -> IndexDefinition:
    fields = dict(id="T-H100", name="test", methodology_version="1.0", instrument_kind="gpu",
                  instruments=("H100-SXM",), price_type="on_demand", sources=("skypilot",))
    return IndexDefinition(**{**fields, **overrides})


def test_median_of_four_provider_values_is_mean_of_middle_two_rounded_half_even(con):
    # Published worked example: (10.00 + 10.9791) / 2 = 10.48955 -> 10.4896 at 4 places.
    for provider, price in (("a", "6.88"), ("b", "10.00"), ("c", "10.9791"), ("d", "12.29")):
        add_gpu_snapshot(con, provider, "2026-11-20T06:00:00", [("H100-SXM", price)])
    [f] = compute_fixings(con, [h100()], DAY)
    assert f.status == FINAL
    assert f.value == Decimal("10.4896")
    assert (f.n_providers, f.n_observations) == (4, 4)
    # Type-7 quantiles: p25 at h = 0.75 -> 6.88 + 0.75 * 3.12 = 9.22; p75 at h = 2.25 -> 10.9791 + 0.25 * 1.3109
    # = 11.306825 -> 11.3068.
    assert (f.p25, f.p75, f.min, f.max) == (Decimal("9.2200"), Decimal("11.3068"), Decimal("6.8800"), Decimal("12.2900"))


def test_rounding_is_half_even_not_half_up(con):
    # (10.00 + 10.9789) / 2 = 10.48945: half-even keeps the even 4 (10.4894); half-up would give 10.4895.
    for provider, price in (("a", "6.88"), ("b", "10.00"), ("c", "10.9789"), ("d", "12.29")):
        add_gpu_snapshot(con, provider, "2026-11-20T06:00:00", [("H100-SXM", price)])
    [f] = compute_fixings(con, [h100()], DAY)
    assert f.value == Decimal("10.4894")
    assert round_half_even(Decimal("2.00005"), 4) == Decimal("2.0000")
    assert round_half_even(Decimal("2.00015"), 4) == Decimal("2.0002")


def test_one_provider_one_vote_whatever_its_number_of_offers(con):
    # Provider a lists five offers; its value is their median (3.00), one vote among three.
    add_gpu_snapshot(con, "a", "2026-11-20T06:00:00",
                     [("H100-SXM", p) for p in ("1.00", "2.00", "3.00", "9.00", "9.50")])
    add_gpu_snapshot(con, "b", "2026-11-20T06:00:00", [("H100-SXM", "4.00")])
    add_gpu_snapshot(con, "c", "2026-11-20T06:00:00", [("H100-SXM", "5.00")])
    [f] = compute_fixings(con, [h100()], DAY)
    assert {c.provider: c.provider_value for c in f.constituents} == {"a": 3, "b": 4, "c": 5}
    assert f.value == Decimal("4.0000")
    assert f.n_observations == 7


def test_provider_value_on_even_count_is_mean_of_two_middle_prices(con):
    add_gpu_snapshot(con, "a", "2026-11-20T06:00:00", [("H100-SXM", "2.00"), ("H100-SXM", "2.99"),
                                                       ("H100-SXM", "3.29"), ("H100-SXM", "4.00")])
    add_gpu_snapshot(con, "b", "2026-11-20T06:00:00", [("H100-SXM", "1.00")])
    add_gpu_snapshot(con, "c", "2026-11-20T06:00:00", [("H100-SXM", "9.00")])
    [f] = compute_fixings(con, [h100()], DAY)
    assert {c.provider: c.provider_value for c in f.constituents}["a"] == Decimal("3.14")  # (2.99 + 3.29) / 2


def test_only_the_latest_snapshot_of_a_provider_counts(con):
    add_gpu_snapshot(con, "a", "2026-11-20T01:00:00", [("H100-SXM", "100.00")])  # superseded the same day
    add_gpu_snapshot(con, "a", "2026-11-20T09:00:00", [("H100-SXM", "2.00")])
    add_gpu_snapshot(con, "b", "2026-11-20T06:00:00", [("H100-SXM", "3.00")])
    add_gpu_snapshot(con, "c", "2026-11-20T06:00:00", [("H100-SXM", "4.00")])
    [f] = compute_fixings(con, [h100()], DAY)
    assert f.value == Decimal("3.0000")
    assert f.n_observations == 3


def test_window_excludes_its_start_and_includes_the_fixing_time(con):
    add_gpu_snapshot(con, "a", "2026-11-19T16:00:00", [("H100-SXM", "50.00")])  # at the start: out
    add_gpu_snapshot(con, "b", "2026-11-20T16:00:00", [("H100-SXM", "3.00")])  # at the fixing time: in
    add_gpu_snapshot(con, "c", "2026-11-20T16:00:01", [("H100-SXM", "70.00")])  # after: out
    add_gpu_snapshot(con, "d", "2026-11-19T16:00:01", [("H100-SXM", "4.00")])
    add_gpu_snapshot(con, "e", "2026-11-20T12:00:00", [("H100-SXM", "5.00")])
    [f] = compute_fixings(con, [h100()], DAY)
    assert sorted(c.provider for c in f.constituents) == ["b", "d", "e"]
    assert f.value == Decimal("4.0000")


def test_fewer_providers_than_the_minimum_publish_no_value(con):
    add_gpu_snapshot(con, "a", "2026-11-20T06:00:00", [("H100-SXM", "2.00")])
    add_gpu_snapshot(con, "b", "2026-11-20T06:00:00", [("H100-SXM", "3.00")])
    [f] = compute_fixings(con, [h100()], DAY)
    # Two providers in every window (24, 72, 168 h) and nothing before to carry: no number.
    assert f.status == SUPPRESSED and f.value is None
    assert f.window_hours == 168  # the widest window tried
    assert all(not c.included and c.exclusion_reason.startswith("insufficient_providers") for c in f.constituents)
    [g] = compute_fixings(con, [h100(min_providers=2)], DAY)
    assert g.status == FINAL and g.value == Decimal("2.5000")


def test_other_instruments_price_types_and_sources_do_not_leak_in(con):
    for provider in ("a", "b", "c"):
        add_gpu_snapshot(con, provider, "2026-11-20T06:00:00", [("H100-SXM", "2.00"), ("H100-PCIE", "90.00")])
    add_gpu_snapshot(con, "d", "2026-11-20T06:00:00", [("H100-SXM", "0.50")], price_type="spot")
    add_gpu_snapshot(con, "e", "2026-11-20T06:00:00", [("H100-SXM", "0.50")], source="other_source")
    [f] = compute_fixings(con, [h100()], DAY)
    assert f.value == Decimal("2.0000") and f.n_providers == 3


def test_rerun_adds_nothing_and_new_inputs_make_a_new_revision(con):
    for provider, price in (("a", "2.00"), ("b", "3.00"), ("c", "4.00")):
        add_gpu_snapshot(con, provider, "2026-11-20T06:00:00", [("H100-SXM", price)])
    fix_date(con, [h100()], DAY, computed_at=BEFORE_CUTOFF)
    fix_date(con, [h100()], DAY, computed_at=BEFORE_CUTOFF)
    assert con.execute("select count(*) from fixings").fetchall() == [(1,)]
    assert con.execute("select count(*) from fixing_constituents").fetchall() == [(3,)]
    add_gpu_snapshot(con, "d", "2026-11-20T07:00:00", [("H100-SXM", "5.00")])
    [f] = fix_date(con, [h100()], DAY, computed_at=BEFORE_CUTOFF)
    assert (f.revision, f.value) == (2, Decimal("3.5000"))
    rows = con.execute("select revision, usd_per_gpu_hour from fixings order by revision").fetchall()
    assert rows == [(1, Decimal("3.0000")), (2, Decimal("3.5000"))]  # revision 1 is kept as it was


def test_input_hash_changes_with_any_input_and_not_with_load_order(con, tmp_path):
    for provider, price in (("a", "2.00"), ("b", "3.00"), ("c", "4.00")):
        add_gpu_snapshot(con, provider, "2026-11-20T06:00:00", [("H100-SXM", price)])
    [first] = compute_fixings(con, [h100()], DAY)
    from pipeline.paths import Warehouse
    from pipeline.warehouse import connect

    other = connect(Warehouse(tmp_path / "other").ensure())
    for provider, price in (("c", "4.00"), ("a", "2.00"), ("b", "3.00")):
        add_gpu_snapshot(other, provider, "2026-11-20T06:00:00", [("H100-SXM", price)])
    [same] = compute_fixings(other, [h100()], DAY)
    add_gpu_snapshot(other, "b", "2026-11-20T07:00:00", [("H100-SXM", "3.01")])
    [changed] = compute_fixings(other, [h100()], DAY)
    other.close()
    assert first.input_hash == same.input_hash
    assert changed.input_hash != first.input_hash


def digest(snapshot_id: str, provider: str, instrument: str, rows: list[str]) -> str:
    """README "Methodology" step 9, worked with hashlib: a header line, then the sorted row lines."""
    header = f"{snapshot_id}|{provider}|gpu|{instrument}|on_demand||"
    return hashlib.sha256("\n".join([header, *sorted(rows)]).encode()).hexdigest()


def test_input_hash_is_the_sha256_of_the_sorted_digests_of_the_rows_fixed(con):
    a = add_gpu_snapshot(con, "a", "2026-11-20T06:00:00", [("H100-SXM", "2.00"), ("A100-80GB", "1.10")])
    b = add_gpu_snapshot(con, "b", "2026-11-20T06:00:00", [("H100-SXM", "3.00")])
    c = add_gpu_snapshot(con, "c", "2026-11-20T06:00:00", [("H100-SXM", "4.10"), ("H100-SXM", "3.90")])
    [f] = compute_fixings(con, [h100()], DAY)
    # rows as row_key|region|gpu_count|price; add_gpu_snapshot's row keys are instrument|position|, region r1,
    # one GPU (DECIMAL(12, 4) text 1.0000), price as DECIMAL(20, 10) text. The A100 row is not an input.
    digests = [
        digest(a, "a", "H100-SXM", ["H100-SXM|0||r1|1.0000|2.0000000000"]),
        digest(b, "b", "H100-SXM", ["H100-SXM|0||r1|1.0000|3.0000000000"]),
        digest(c, "c", "H100-SXM", ["H100-SXM|0||r1|1.0000|4.1000000000", "H100-SXM|1||r1|1.0000|3.9000000000"]),
    ]
    assert f.input_hash == hashlib.sha256("\n".join(sorted(digests)).encode()).hexdigest()
    assert f.value == Decimal("3.0000")  # median of 2.00, 3.00 and c's median (3.90 + 4.10) / 2 = 4.00


def test_a_provider_priced_by_two_sources_is_hashed_over_both_collections(con):
    # a has one vote from the latest collection of each source: its value is the median of 2.00 and 2.20.
    a1 = add_gpu_snapshot(con, "a", "2026-11-20T06:00:00", [("H100-SXM", "2.00")])
    a2 = add_gpu_snapshot(con, "a", "2026-11-20T07:00:00", [("H100-SXM", "2.20")], source="html_tables")
    b = add_gpu_snapshot(con, "b", "2026-11-20T06:00:00", [("H100-SXM", "3.00")])
    c = add_gpu_snapshot(con, "c", "2026-11-20T06:00:00", [("H100-SXM", "4.00")])
    [f] = compute_fixings(con, [h100(sources=("skypilot", "html_tables"))], DAY)
    assert (f.n_providers, f.n_observations, f.value) == (3, 4, Decimal("3.0000"))
    [a_value] = [x.provider_value for x in f.constituents if x.provider == "a"]
    assert a_value == Decimal("2.1")
    digests = [digest(snapshot, provider, "H100-SXM", [f"H100-SXM|0||r1|1.0000|{Decimal(price):.10f}"])
               for snapshot, provider, price in ((a1, "a", "2.00"), (a2, "a", "2.20"), (b, "b", "3.00"), (c, "c", "4.00"))]
    assert f.input_hash == hashlib.sha256("\n".join(sorted(digests)).encode()).hexdigest()


def test_a_paged_collection_is_valued_over_the_rows_of_all_its_pages(con):
    # a's fetch came in two pages (two bodies, one fetch time): its value is the median of all three rows,
    # 2.10, not of either page. b and c give one page each; the index is the median 3.00.
    add_gpu_snapshot(con, "a", "2026-11-20T06:00:00", [("H100-SXM", "2.00"), ("H100-SXM", "2.40")])
    add_gpu_snapshot(con, "a", "2026-11-20T06:00:00", [("H100-SXM", "2.10", "page2")])
    for provider, price in (("b", "3.00"), ("c", "4.00")):
        add_gpu_snapshot(con, provider, "2026-11-20T06:00:00", [("H100-SXM", price)])
    [f] = compute_fixings(con, [h100()], DAY)
    assert (f.value, f.n_observations) == (Decimal("3.0000"), 5)
    [a] = [x for x in f.constituents if x.provider == "a"]
    assert (a.provider_value, a.n_observations) == (Decimal("2.1"), 3)


def test_the_vote_floor_counts_distinct_prices_across_pages(con):
    # min_distinct_prices 2: a quotes 2.00 on each of two pages (one distinct price: no vote); b quotes two
    # prices on one page (votes, 3.25); c and d one page each with two prices.
    add_gpu_snapshot(con, "a", "2026-11-20T06:00:00", [("H100-SXM", "2.00")])
    add_gpu_snapshot(con, "a", "2026-11-20T06:00:00", [("H100-SXM", "2.00", "page2")])
    add_gpu_snapshot(con, "b", "2026-11-20T06:00:00", [("H100-SXM", "3.00"), ("H100-SXM", "3.50")])
    add_gpu_snapshot(con, "c", "2026-11-20T06:00:00", [("H100-SXM", "4.00"), ("H100-SXM", "4.20")])
    add_gpu_snapshot(con, "d", "2026-11-20T06:00:00", [("H100-SXM", "5.00"), ("H100-SXM", "5.40")])
    [f] = compute_fixings(con, [h100(min_distinct_prices=2, outlier_screen="none")], DAY)
    excluded = {x.provider: x.exclusion_reason for x in f.constituents if not x.included}
    assert excluded == {"a": "insufficient_distinct_prices: 1 distinct price(s) < 2"}
    assert f.value == Decimal("4.1000")  # median of 3.25, 4.10, 5.20


def test_observations_without_digests_are_refused_with_a_clear_error(con):
    for provider, price in (("a", "2.00"), ("b", "3.00"), ("c", "4.00")):
        add_gpu_snapshot(con, provider, "2026-11-20T06:00:00", [("H100-SXM", price)])
    con.execute("delete from observation_digests where provider = 'b'")
    with pytest.raises(FixingInputError, match="no digest"):
        compute_fixings(con, [h100()], DAY)


def test_reloading_a_snapshot_remakes_its_digests(con):
    a = add_gpu_snapshot(con, "a", "2026-11-20T06:00:00", [("H100-SXM", "2.00")])
    b = add_gpu_snapshot(con, "b", "2026-11-20T06:00:00", [("H100-SXM", "3.00")])
    ctx = ParseContext(source="skypilot", observed_at=datetime(2026, 11, 20, 6, tzinfo=timezone.utc),
                       snapshot_id="c-body", provider="c")

    def load_c(price: str) -> None:
        load_result(con, ctx, ParseResult(observations=[Observation(
            row_key="H100-SXM|0|", provider="c", instrument_kind=GPU, instrument="H100-SXM",
            source_instrument="H100-SXM", price_type="on_demand", original_price=Decimal(price),
            original_currency="USD", original_unit="gpu_hour", usd_price=Decimal(price), region="r1",
            gpu_count=Decimal(1))]))

    load_c("4.00")
    [before] = compute_fixings(con, [h100()], DAY)
    load_c("5.00")  # the same body parsed again (say, after a parser fix): its digest must follow
    [after] = compute_fixings(con, [h100()], DAY)
    assert con.execute("select count(*) from observation_digests where snapshot_id = 'c-body'").fetchall() == [(1,)]
    digests = [digest(snapshot, provider, "H100-SXM", [f"H100-SXM|0||r1|1.0000|{Decimal(price):.10f}"])
               for snapshot, provider, price in ((a, "a", "2.00"), (b, "b", "3.00"), ("c-body", "c", "5.00"))]
    assert after.input_hash == hashlib.sha256("\n".join(sorted(digests)).encode()).hexdigest() != before.input_hash


def test_a_changed_definition_under_the_same_version_is_refused(con):
    with pytest.raises(DefinitionError, match="keeps fixings to 4 places"):
        register_definitions(con, [h100(decimals=6)])
    register_definitions(con, [h100()])
    with pytest.raises(DefinitionError, match="bump methodology_version"):
        register_definitions(con, [h100(min_providers=5)])
    register_definitions(con, [h100(min_providers=5, methodology_version="1.1")])


def test_bodies_fetched_together_count_as_one_collection(con):
    # A paged API: two pages fetched in one collection (same fetch time) are one provider's one vote,
    # its value the median over both pages: (2.00, 3.00, 4.00) -> 3.00.
    add_gpu_snapshot(con, "azure", "2026-11-20T06:00:00", [("H100-SXM", "2.00"), ("H100-SXM", "3.00", "p1")])
    add_gpu_snapshot(con, "azure", "2026-11-20T06:00:00", [("H100-SXM", "4.00", "p2")])
    add_gpu_snapshot(con, "b", "2026-11-20T06:00:00", [("H100-SXM", "5.00")])
    add_gpu_snapshot(con, "c", "2026-11-20T06:00:00", [("H100-SXM", "6.00")])
    [f] = compute_fixings(con, [h100()], DAY)
    assert {c.provider: (c.provider_value, c.n_observations) for c in f.constituents}["azure"] == (Decimal("3.00"), 3)
    assert f.value == Decimal("5.0000")


def test_a_dated_price_counts_only_on_the_dates_it_held(con):
    # A price history fetched today: the old price held until 2026-11-19, the new one from 2026-11-20.
    from datetime import date as d

    add_gpu_snapshot(con, "a", "2026-11-20T06:00:00", [("H100-SXM", "9.00", "old")], valid_to=d(2026, 11, 19))
    add_gpu_snapshot(con, "a", "2026-11-20T06:00:00", [("H100-SXM", "2.00", "new")], valid_from=d(2026, 11, 20))
    add_gpu_snapshot(con, "b", "2026-11-20T06:00:00", [("H100-SXM", "3.00")])
    add_gpu_snapshot(con, "c", "2026-11-20T06:00:00", [("H100-SXM", "4.00")])
    [f] = compute_fixings(con, [h100()], DAY)
    assert {c.provider: c.provider_value for c in f.constituents}["a"] == Decimal("2.00")
    assert f.value == Decimal("3.0000")


def test_constituents_are_stored_with_values_weights_and_exclusions(con):
    # Five providers, one far off: median 3.00, deviations 1, 0.5, 0, 0.5, 37 -> MAD 0.5;
    # 0.6745 x |40 - 3| = 24.9565 > 3.5 x 0.5 = 1.75: e is excluded, then median(2, 2.5, 3, 3.5) = 2.75.
    for provider, price in (("a", "2.00"), ("b", "2.50"), ("c", "3.00"), ("d", "3.50"), ("e", "40.00")):
        add_gpu_snapshot(con, provider, "2026-11-20T06:00:00", [("H100-SXM", price)])
    [f] = fix_date(con, [h100()], DAY, computed_at=BEFORE_CUTOFF)
    assert (f.status, f.value, f.n_providers) == (FINAL, Decimal("2.7500"), 4)
    rows = con.execute(
        "select provider, provider_value, included, split_part(exclusion_reason, ':', 1), weight, value_rule"
        " from fixing_constituents order by provider"
    ).fetchall()
    assert rows == [
        ("a", Decimal("2.00"), True, None, Decimal("0.25"), "median_of_rows"),
        ("b", Decimal("2.50"), True, None, Decimal("0.25"), "median_of_rows"),
        ("c", Decimal("3.00"), True, None, Decimal("0.25"), "median_of_rows"),
        ("d", Decimal("3.50"), True, None, Decimal("0.25"), "median_of_rows"),
        ("e", Decimal("40.00"), False, "outlier_mad", Decimal("0"), "median_of_rows"),
    ]
    assert con.execute("select window_hours, carried_from from fixings").fetchall() == [(24, None)]


def test_every_rung_of_the_ladder_through_the_warehouse(con):
    # Three providers collected once, on 2026-11-10 at 06:00. Fixing time 16:00:
    #   11-10        in the 24 h window                         -> final
    #   11-11..12    only the 72 h window (T - 72 h < 11-10 06:00) -> widened, 72 h
    #   11-13..16    only the 168 h window                       -> widened, 168 h
    #   11-17..19    no window holds them; the last value, 11-16's, is 1..3 days old -> carried from 11-16
    #   11-20        11-16 is 4 days old: more than carry_days 3    -> suppressed
    for provider, price in (("a", "2.00"), ("b", "3.00"), ("c", "5.00")):
        add_gpu_snapshot(con, provider, "2026-11-10T06:00:00", [("H100-SXM", price)])
    days = [date(2026, 11, d) for d in range(10, 21)]
    fixings = fix_range(con, [h100()], days, computed_at=datetime(2026, 11, 21, 0, 0, tzinfo=timezone.utc))
    got = [(f.fixing_date.day, f.status, f.window_hours, f.carried_from and f.carried_from.day, f.value)
           for f in fixings]
    v = Decimal("3.0000")
    assert got == [
        (10, FINAL, 24, None, v), (11, WIDENED, 72, None, v), (12, WIDENED, 72, None, v),
        (13, WIDENED, 168, None, v), (14, WIDENED, 168, None, v), (15, WIDENED, 168, None, v),
        (16, WIDENED, 168, None, v), (17, CARRIED, 168, 16, v), (18, CARRIED, 168, 16, v),
        (19, CARRIED, 168, 16, v), (20, SUPPRESSED, 168, None, None),
    ]
    stored = con.execute(
        "select fixing_date, status, window_hours, carried_from, usd_per_gpu_hour, window_start from fixings"
        " where fixing_date in (date '2026-11-11', date '2026-11-18') order by fixing_date"
    ).fetchall()
    assert stored == [
        (date(2026, 11, 11), WIDENED, 72, None, v, datetime(2026, 11, 8, 16, 0)),
        # a carried fixing keeps what its value rests on: 11-16's 168-hour window
        (date(2026, 11, 18), CARRIED, 168, date(2026, 11, 16), v, datetime(2026, 11, 9, 16, 0)),
    ]


def test_a_date_alone_gives_what_it_gives_inside_a_backfill(con):
    # The ladder above: each date fixed on its own must equal the same date in the eleven-day run, carries
    # included (the look-back is recomputed, never read from earlier fixings).
    for provider, price in (("a", "2.00"), ("b", "3.00"), ("c", "5.00"), ("d", "4.00")):
        add_gpu_snapshot(con, provider, "2026-11-10T06:00:00", [("H100-SXM", price)])
    add_gpu_snapshot(con, "a", "2026-11-14T06:00:00", [("H100-SXM", "2.50")])
    days = [date(2026, 11, d) for d in range(9, 22)]
    together = compute_range(con, [h100()], days)
    for f in together:
        [alone] = compute_range(con, [h100()], [f.fixing_date])
        assert (alone.status, alone.value, alone.input_hash, alone.carried_from, alone.window_hours) == (
            f.status, f.value, f.input_hash, f.carried_from, f.window_hours), f.fixing_date
