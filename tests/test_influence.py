"""What could move a fixing (pipeline.influence): the value without each provider in turn, worked out by hand
in the comments, on fixings the real engine computes from crafted observations; then the warehouse path (the
rows written with the fixings), `tsi explain`, and the settlement figures."""
from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from pipeline.cli import main
from pipeline.definitions import BasketDefinition
from pipeline.fixing import FINAL, fix_date
from pipeline.influence import leave_one_out, record_influence, stored_influence

from conftest import add_gpu_snapshot
from fixing_helpers import DAY, excluded, fix, gpu_index, obs, one

AFTER_FIXING = datetime(2026, 11, 20, 17, 0, tzinfo=timezone.utc)


def table(f) -> dict:
    """provider -> (value without it, move, move %, stands, reason code) of the fixing's influence rows."""
    [rows] = leave_one_out([f]).values()
    return {r.provider: (r.value_without, r.move, r.move_pct, r.stands, (r.reason or "").split(":")[0] or None)
            for r in rows}


def largest(f):
    [rows] = leave_one_out([f]).values()
    top = [r for r in rows if r.largest]
    assert len(top) <= 1
    return top[0].provider if top else None


D = Decimal
FIVE = [obs("a", "2.00"), obs("b", "2.40"), obs("c", "2.60"), obs("d", "3.00"), obs("e", "3.50")]


def test_median_of_five_without_each_provider_is_the_median_of_four():
    # Median of 2.00 2.40 2.60 3.00 3.50 = 2.60. Screen (5 voters): deviations 0.6 0.2 0 0.4 0.9, MAD 0.4; the
    # largest z 0.6745 x 0.9 / 0.4 = 1.52 < 3.5: nobody dropped. Without one provider, four values: the mean
    # of the two middle ones (and the screen re-run on four: e.g. without a, median 2.80, deviations 0.4 0.2
    # 0.2 0.7, MAD 0.3, z at most 1.57; every one of the five cases keeps its four).
    #   without a: 2.40 2.60 3.00 3.50 -> (2.60 + 3.00) / 2 = 2.80, +0.20, 0.2 / 2.6 = +7.6923%
    #   without b: 2.00 2.60 3.00 3.50 -> 2.80, +0.20
    #   without c: 2.00 2.40 3.00 3.50 -> (2.40 + 3.00) / 2 = 2.70, +0.10, 0.1 / 2.6 = +3.8462% (3.846153...)
    #   without d: 2.00 2.40 2.60 3.50 -> (2.40 + 2.60) / 2 = 2.50, -0.10, -3.8462%
    #   without e: 2.00 2.40 2.60 3.00 -> 2.50, -0.10
    f = one(FIVE, gpu_index())
    assert (f.status, f.value) == (FINAL, D("2.6000"))
    assert table(f) == {
        "a": (D("2.8000"), D("0.2000"), D("7.6923"), True, None),
        "b": (D("2.8000"), D("0.2000"), D("7.6923"), True, None),
        "c": (D("2.7000"), D("0.1000"), D("3.8462"), True, None),
        "d": (D("2.5000"), D("-0.1000"), D("-3.8462"), True, None),
        "e": (D("2.5000"), D("-0.1000"), D("-3.8462"), True, None),
    }
    assert largest(f) == "a"  # a and b both move it by 0.20: the tie goes to the first by name


def test_mean_of_five_without_each_provider():
    # Mean (2.00 + 2.40 + 2.60 + 3.00 + 3.50) / 5 = 13.50 / 5 = 2.70; without one, the other four over 4 (the
    # screen keeps everyone, as in the median case):
    #   without a: 11.50 / 4 = 2.875  +0.175  0.175 / 2.7 = +6.4815% (6.48148...)
    #   without b: 11.10 / 4 = 2.775  +0.075  +2.7778% (2.77777...)
    #   without c: 10.90 / 4 = 2.725  +0.025  +0.9259% (0.925925...)
    #   without d: 10.50 / 4 = 2.625  -0.075  -2.7778%
    #   without e: 10.00 / 4 = 2.500  -0.200  -7.4074% (7.407407...): the largest influence
    f = one(FIVE, gpu_index(estimator="mean"))
    assert f.value == D("2.7000")
    assert table(f) == {
        "a": (D("2.8750"), D("0.1750"), D("6.4815"), True, None),
        "b": (D("2.7750"), D("0.0750"), D("2.7778"), True, None),
        "c": (D("2.7250"), D("0.0250"), D("0.9259"), True, None),
        "d": (D("2.6250"), D("-0.0750"), D("-2.7778"), True, None),
        "e": (D("2.5000"), D("-0.2000"), D("-7.4074"), True, None),
    }
    assert largest(f) == "e"


def test_removing_a_provider_below_min_providers_leaves_no_value_and_a_no_vote_provider_changes_nothing():
    # min_providers 4, min_distinct_prices 2. a (1.90, 2.10) -> 2.00, b (2.30, 2.50) -> 2.40, c (2.50, 2.70)
    # -> 2.60, d (2.90, 3.10) -> 3.00; e quotes one price (2.50) and has no vote. Four voters: median
    # (2.40 + 2.60) / 2 = 2.50 (screen: deviations 0.5 0.1 0.1 0.5, MAD 0.3, z at most 1.12). Without any of
    # a to d three are left, 3 < 4: the fixing would not stand (never widened). Without e: still 2.50.
    observations = [obs(p, v) for p, prices in (("a", ("1.90", "2.10")), ("b", ("2.30", "2.50")),
                                                 ("c", ("2.50", "2.70")), ("d", ("2.90", "3.10")), ("e", ("2.50",)))
                    for v in prices]
    f = one(observations, gpu_index(min_providers=4, min_distinct_prices=2))
    assert (f.status, f.value) == (FINAL, D("2.5000"))
    assert excluded(f) == {"e": "insufficient_distinct_prices"}
    rows = table(f)
    for provider in "abcd":
        assert rows[provider] == (None, None, None, False, "insufficient_providers")
    assert rows["e"] == (D("2.5000"), D("0"), D("0"), True, "no_vote")
    assert largest(f) is None
    [influence] = leave_one_out([f]).values()
    assert {r.provider: r.n_providers_without for r in influence} == {"a": 3, "b": 3, "c": 3, "d": 3, "e": 4}
    assert next(r for r in influence if r.provider == "a").reason == \
        "insufficient_providers: 3 < 4 without it (not widened)"


def test_removing_one_provider_changes_whom_the_screen_drops():
    # Six voters 2.0 2.1 2.2 2.3 2.9 5.0: median 2.25, deviations 0.25 0.15 0.05 0.05 0.65 2.75, MAD (0.15 +
    # 0.25) / 2 = 0.2; dropped when 0.6745 |p - m| > 3.5 x 0.2 = 0.7, i.e. |p - m| > 1.0378: f (5.0) only.
    # Included 2.0 2.1 2.2 2.3 2.9: median 2.2.
    #   without f: 2.0 2.1 2.2 2.3 2.9, median 2.2, deviations 0.2 0.1 0 0.1 0.7, MAD 0.1: |p - m| > 0.5189
    #              drops e (0.7) now. Left 2.0 2.1 2.2 2.3: 2.15, -0.05 (0.05 / 2.2 = 2.2727%)
    #   without e: 2.0 2.1 2.2 2.3 5.0, median 2.2, MAD 0.1: f dropped; left 2.0..2.3: 2.15, -0.05
    #   without a: 2.1 2.2 2.3 2.9 5.0, median 2.3, deviations 0.2 0.1 0 0.6 2.7, MAD 0.2: f dropped; left
    #              2.1 2.2 2.3 2.9: (2.2 + 2.3) / 2 = 2.25, +0.05
    #   without b: 2.0 2.2 2.3 2.9 5.0, median 2.3, deviations 0.3 0.1 0 0.6 2.7, MAD 0.3: |p - m| > 1.5567
    #              drops f; left 2.0 2.2 2.3 2.9: 2.25, +0.05
    #   without c: 2.0 2.1 2.3 2.9 5.0, median 2.3, MAD 0.3: f dropped; left 2.0 2.1 2.3 2.9: 2.2, 0
    #   without d: 2.0 2.1 2.2 2.9 5.0, median 2.2, deviations 0.2 0.1 0 0.7 2.8, MAD 0.2: f dropped (e at
    #              0.7 < 1.0378 stays); left 2.0 2.1 2.2 2.9: 2.15, -0.05
    observations = [obs(p, v) for p, v in (("a", "2.0"), ("b", "2.1"), ("c", "2.2"), ("d", "2.3"), ("e", "2.9"),
                                           ("f", "5.0"))]
    f = one(observations, gpu_index())
    assert f.value == D("2.2000") and excluded(f) == {"f": "outlier_mad"}
    assert table(f) == {
        "a": (D("2.2500"), D("0.0500"), D("2.2727"), True, None),
        "b": (D("2.2500"), D("0.0500"), D("2.2727"), True, None),
        "c": (D("2.2000"), D("0.0000"), D("0.0000"), True, None),
        "d": (D("2.1500"), D("-0.0500"), D("-2.2727"), True, None),
        "e": (D("2.1500"), D("-0.0500"), D("-2.2727"), True, None),
        "f": (D("2.1500"), D("-0.0500"), D("-2.2727"), True, None),
    }
    [rows] = leave_one_out([f]).values()
    screened = {r.provider: r.screened_without for r in rows}
    assert screened == {"a": ("f",), "b": ("f",), "c": ("f",), "d": ("f",), "e": ("f",), "f": ("e",)}
    assert largest(f) == "a"  # five providers move it by 0.05: the first by name


def test_a_screen_that_no_longer_applies_brings_an_outlier_back():
    # Four voters 2.0 2.1 2.2 9.0, outlier_min_providers 4, min_providers 3: median 2.15, deviations 0.15 0.05
    # 0.05 6.85, MAD 0.1; 9.0 dropped (0.6745 x 6.85 = 4.62 > 0.35). Included 2.0 2.1 2.2: median 2.1.
    #   without a: 2.1 2.2 9.0, three voters: no screen; median 2.2, +0.1 (0.1 / 2.1 = 4.7619%)
    #   without b: 2.0 2.2 9.0: 2.2, +0.1;  without c: 2.0 2.1 9.0: 2.1, 0
    #   without d (9.0): 2.0 2.1 2.2, no screen: 2.1, 0
    observations = [obs(p, v) for p, v in (("a", "2.0"), ("b", "2.1"), ("c", "2.2"), ("d", "9.0"))]
    f = one(observations, gpu_index())
    assert f.value == D("2.1000") and excluded(f) == {"d": "outlier_mad"}
    assert table(f) == {
        "a": (D("2.2000"), D("0.1000"), D("4.7619"), True, None),
        "b": (D("2.2000"), D("0.1000"), D("4.7619"), True, None),
        "c": (D("2.1000"), D("0.0000"), D("0.0000"), True, None),
        "d": (D("2.1000"), D("0.0000"), D("0.0000"), True, None),
    }


def test_trimmed_mean_and_capped_weight_median_are_re_applied_too():
    # trimmed_mean, trim_fraction 0.2: five values, g = floor(0.2 x 5) = 1 cut from each end: 2.40 2.60 3.00
    # -> 8.00 / 3 = 2.6667. Without a: four values, g = floor(0.8) = 0: 11.50 / 4 = 2.875 (+0.2083). Without
    # c: 2.00 2.40 3.00 3.50, g 0: 10.90 / 4 = 2.725 (+0.0583).
    f = one(FIVE, gpu_index(estimator="trimmed_mean", trim_fraction=D("0.2")))
    assert f.value == D("2.6667")
    rows = table(f)
    assert rows["a"][:2] == (D("2.8750"), D("0.2083")) and rows["c"][:2] == (D("2.7250"), D("0.0583"))
    # capped_weight_median, weight_cap 0.5, GPUs listed: a 1, b 1, c 1, d 1, e 6 (10 in all). e's raw share 0.6
    # > 0.5: capped (m = 1: (1 - 0) x 6 > 0.5 x 10; j = 2: (1 - 0.5) x 1 <= 0.5 x 4). Shares: e 0.5, the others
    # 0.125 each. By value: a 0.125, b 0.25, c 0.375, d 0.5 (reaches half): the lower weighted median is
    # d = 3.00. Without e: four of 1 GPU, n x cap = 2 >= 1, m = 0 (1 <= 0.5 x 4): 0.25 each; a 0.25, b 0.5:
    # b = 2.40 (-0.60, -20%). Without d: a 1, b 1, c 1, e 6 (9): e 6/9 > 0.5 capped, others 1/6 each; a 1/6,
    # b 2/6, c 3/6 = half: c = 2.60 (-0.40, -13.3333%).
    weighted = [obs(p, v, gpu_count=g) for (p, v), g in zip((("a", "2.00"), ("b", "2.40"), ("c", "2.60"),
                                                             ("d", "3.00"), ("e", "3.50")), ("1", "1", "1", "1", "6"))]
    g = one(weighted, gpu_index(estimator="capped_weight_median", weight_cap=D("0.5"), outlier_screen="none"))
    assert g.value == D("3.0000")
    rows = table(g)
    assert rows["e"][:3] == (D("2.4000"), D("-0.6000"), D("-20.0000"))
    assert rows["d"][:3] == (D("2.6000"), D("-0.4000"), D("-13.3333"))


def test_a_basket_without_each_member_index():
    # Three member indices, one provider each (min_providers 1): 2.0, 3.0, 4.5. Basket (min_members 2): 9.5 / 3
    # = 3.16666... -> 3.1667. Without m1: (3.0 + 4.5) / 2 = 3.75, +0.5833, 0.5833 / 3.1667 = +18.4198%
    # (0.184198...); without m2: (2.0 + 4.5) / 2 = 3.25, +0.0833 (+2.6305%, 0.0263049...); without m3:
    # (2.0 + 3.0) / 2 = 2.50, -0.6667 (-21.0535%, 0.2105346...): the largest. With min_members 0 (all three
    # needed) no member can be spared: 2 < 3.
    members = [gpu_index(id=f"T-M{k}", instruments=(f"X{k}",), min_providers=1) for k in (1, 2, 3)]
    observations = [obs("p", v, instrument=f"X{k}") for k, v in ((1, "2.0"), (2, "3.0"), (3, "4.5"))]
    basket = BasketDefinition(id="T-B", name="b", methodology_version="1", instrument_kind="gpu",
                              price_type="on_demand", members=tuple(m.id for m in members), min_members=2)
    *_, b = fix(observations, members + [basket])
    assert b.value == D("3.1667")
    assert table(b) == {
        "T-M1": (D("3.7500"), D("0.5833"), D("18.4198"), True, None),
        "T-M2": (D("3.2500"), D("0.0833"), D("2.6305"), True, None),
        "T-M3": (D("2.5000"), D("-0.6667"), D("-21.0535"), True, None),
    }
    assert largest(b) == "T-M3"
    *_, all_needed = fix(observations, members + [BasketDefinition(**{**basket.__dict__, "min_members": 0})])
    assert {k: v[3:] for k, v in table(all_needed).items()} == {m.id: (False, "insufficient_members")
                                                                 for m in members}


def test_a_carried_fixing_has_the_rows_of_the_fixing_it_repeats():
    # Nov 19: a 2.00, b 2.40, c 2.60 -> 2.40; Nov 20 has no observation in its window and no wider window to
    # try: it carries Nov 19's 2.40 and rests on its constituents. min_providers 2: without a, (2.40 + 2.60) / 2
    # = 2.50 (+0.10, 0.1 / 2.4 = 4.1667%); without b: 2.30; without c: 2.20 (-8.3333%; no screen under 4).
    observations = [obs(p, v, at="2026-11-19T06:00") for p, v in (("a", "2.00"), ("b", "2.40"), ("c", "2.60"))]
    source, carried = fix(observations, gpu_index(fallback_window_hours=(), min_providers=2),
                          (date(2026, 11, 19), DAY))
    assert (carried.status, carried.carried_from, carried.value) == ("carried", date(2026, 11, 19), D("2.4000"))
    expected = {"a": (D("2.5000"), D("0.1000"), D("4.1667"), True, None),
                "b": (D("2.3000"), D("-0.1000"), D("-4.1667"), True, None),
                "c": (D("2.2000"), D("-0.2000"), D("-8.3333"), True, None)}
    assert table(carried) == table(source) == expected
    assert largest(carried) == "c"


def test_a_suppressed_fixing_has_no_rows():
    f = one([obs("a", "2.00"), obs("b", "2.10")], gpu_index())
    assert f.value is None and leave_one_out([f]) == {}


# --- the warehouse: rows written with the fixings, explain -------------------------------------------------


def five_in_warehouse(con):
    for provider, price in (("a", "2.00"), ("b", "2.40"), ("c", "2.60"), ("d", "3.00"), ("e", "3.50")):
        add_gpu_snapshot(con, provider, "2026-11-20T06:00:00", [("H100-SXM", price)])


def h100():
    return gpu_index(sources=("skypilot",))


def test_fix_date_writes_the_rows_once_with_the_fixing(con):
    five_in_warehouse(con)
    [f] = fix_date(con, [h100()], DAY, computed_at=AFTER_FIXING)
    assert f.written and f.value == D("2.6000")
    rows = stored_influence(con, "T-H100", DAY, 1)
    # the same figures as the median case above, read back from fixing_influence (gpu: usd_per_gpu_hour_*)
    assert [(r.provider, r.value_without, r.move, r.largest) for r in rows] == [
        ("a", D("2.8000"), D("0.2000"), True), ("b", D("2.8000"), D("0.2000"), False),
        ("c", D("2.7000"), D("0.1000"), False), ("d", D("2.5000"), D("-0.1000"), False),
        ("e", D("2.5000"), D("-0.1000"), False)]
    assert con.execute("select count(*), count(usd_per_mtok_without) from fixing_influence").fetchall() == [(5, 0)]
    # A rerun of the day writes nothing, and neither does recording the same fixings again.
    [again] = fix_date(con, [h100()], DAY, computed_at=AFTER_FIXING)
    assert not again.written
    assert record_influence(con, [again]) == 0
    assert con.execute("select count(*) from fixing_influence").fetchall() == [(5,)]


def test_a_fixing_written_before_the_table_gets_its_rows_from_a_rerun(con):
    # As after migration 012 on an old warehouse: the fixing stands, its rows are missing; recomputing the date
    # (tsi backfill) writes no new revision but fills them in.
    five_in_warehouse(con)
    fix_date(con, [h100()], DAY, computed_at=AFTER_FIXING)
    con.execute("delete from fixing_influence")
    [f] = fix_date(con, [h100()], DAY, computed_at=AFTER_FIXING)
    assert not f.written and f.revision == 1
    assert len(stored_influence(con, "T-H100", DAY, 1)) == 5


def test_a_correction_gets_rows_of_its_own_revision(con):
    five_in_warehouse(con)
    fix_date(con, [h100()], DAY, computed_at=AFTER_FIXING)
    add_gpu_snapshot(con, "f", "2026-11-20T07:00:00", [("H100-SXM", "3.10")])
    [f] = fix_date(con, [h100()], DAY, computed_at=AFTER_FIXING)
    # six values 2.00 2.40 2.60 3.00 3.10 3.50: (2.60 + 3.00) / 2 = 2.80, revision 2; without f: 2.60 again
    assert (f.revision, f.value) == (2, D("2.8000"))
    rows = {r.provider: r.value_without for r in stored_influence(con, "T-H100", DAY, 2)}
    assert rows["f"] == D("2.6000") and len(rows) == 6
    assert len(stored_influence(con, "T-H100", DAY, 1)) == 5  # revision 1 keeps its own


def test_explain_shows_the_value_without_each_provider(warehouse, con, capsys):
    five_in_warehouse(con)
    fix_date(con, [h100()], DAY, computed_at=AFTER_FIXING)
    con.close()
    assert main(["--warehouse", str(warehouse.root), "explain", "T-H100", "2026-11-20"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert out.startswith("T-H100 on 2026-11-20: 2.6000 USD/GPU-hour (final, revision 1 of 1)")
    start = lines.index(next(line for line in lines if line.startswith("  without each provider")))
    assert lines[start + 1].split() == ["provider", "value", "without", "change", "change", "%"]
    body = [line.split() for line in lines[start + 2:start + 7]]
    assert body == [["a", "2.8000", "+0.2000", "+7.69%", "largest", "influence"],
                    ["b", "2.8000", "+0.2000", "+7.69%"], ["c", "2.7000", "+0.1000", "+3.85%"],
                    ["d", "2.5000", "-0.1000", "-3.85%"], ["e", "2.5000", "-0.1000", "-3.85%"]]
    assert "  largest influence  a: 2.8000 without it (+0.2000, +7.69%)" in lines
    # the existing lines are still there, and the revisions come last
    assert "  providers     5 included of 5 considered; 5 observations" in lines
    assert lines[-2] == "  revisions (append-only)"


def test_explain_of_a_fixing_without_stored_rows_computes_them(warehouse, con, capsys):
    five_in_warehouse(con)
    fix_date(con, [h100()], DAY, computed_at=AFTER_FIXING)
    con.execute("drop table fixing_influence")  # a warehouse (or read-only copy) older than migration 012
    con.close()
    assert main(["--warehouse", str(warehouse.root), "explain", "T-H100", "2026-11-20"]) == 0
    out = capsys.readouterr().out
    assert "computed now from the stored constituents, not recorded in the warehouse" in out
    assert "  largest influence  a: 2.8000 without it (+0.2000, +7.69%)" in out


def test_the_stored_rows_of_the_demo_match_a_recomputation(demo_warehouse_path):
    import duckdb

    from pipeline.explain import from_warehouse

    con = duckdb.connect(str(demo_warehouse_path.db_path), read_only=True)
    try:
        keys = con.execute("select distinct index_id, fixing_date, revision from fixing_influence "
                           "order by all").fetchall()
        published = con.execute("select count(*) from fixings where status <> 'suppressed'").fetchall()[0][0]
        assert len(keys) == published
        not_reproduced = con.execute("select count(*) from fixing_influence where reason like 'not_repro%'")
        assert not_reproduced.fetchall() == [(0,)]
        for index_id, day, revision in keys[::7]:
            e = from_warehouse(con, index_id, day, revision=revision)
            stored = stored_influence(con, index_id, day, revision)
            assert e.influence_stored
            [fresh] = leave_one_out([e.fixing]).values()
            strip = lambda rows: sorted((r.provider, r.value_without, r.move, r.stands, r.largest) for r in rows)
            assert strip(fresh) == strip(stored), (index_id, day)
    finally:
        con.close()


def test_the_demo_h100_fixing_without_each_provider(demo_warehouse_path):
    # 2026-11-20, eleven voters (tests/test_verify.py): 1.49 1.99 2.40 2.49 2.5708 2.745 2.90 2.95 3.14 and the
    # screened 5.95 6.74; the fixing 2.5708. Without hyperbolic (1.49): ten voters, median (2.745 + 2.90) / 2 =
    # 2.8225, deviations .8325 .4225 .3325 .2517 .0775 .0775 .1275 .3175 3.1275 3.9175, MAD (.3175 + .3325) /
    # 2 = .325: dropped beyond .325 x 3.5 / .6745 = 1.6864, still 5.95 and 6.74. Left 1.99 ... 3.14 (eight):
    # (2.5708 + 2.745) / 2 = 2.6579, +0.0871. Without lambda (3.14): ten voters, median (2.49 + 2.5708) / 2 =
    # 2.5304; the same two dropped; left 1.49 ... 2.95 (eight): (2.49 + 2.5708) / 2 = 2.5304, -0.0404.
    import duckdb

    con = duckdb.connect(str(demo_warehouse_path.db_path), read_only=True)
    try:
        rows = {r.provider: r for r in stored_influence(con, "TSI-H100-SXM-OD", date(2026, 11, 20), 1)}
    finally:
        con.close()
    assert (rows["hyperbolic"].value_without, rows["hyperbolic"].move) == (D("2.6579"), D("0.0871"))
    assert (rows["lambda"].value_without, rows["lambda"].move) == (D("2.5304"), D("-0.0404"))
    assert rows["hyperbolic"].largest  # hyperbolic, hyperstack, runpod and verda all move it by +0.0871


@pytest.fixture(scope="module")
def demo_warehouse_path(tmp_path_factory):
    import demo_warehouse

    return demo_warehouse.fresh_copy(tmp_path_factory)


# --- settlements ---------------------------------------------------------------------------------------------


def month_contract(**overrides):
    from pipeline.contracts import Contract

    fields = dict(id="T-F", name="test future", version="1", index="T-H100", instrument_kind="gpu",
                  contract_quantity=1000, contract_quantity_unit="GPU-hours", tick_size=D("0.005"),
                  first_month="2026-01")
    return Contract(**{**fields, **overrides})


def four_days(con, day4):
    """Nov 1 to 3: a 2.00, b 2.20, c 2.40, d 2.60; Nov 4: `day4`; fixed by the real engine (fix_range)."""
    from pipeline.fixing import fix_range

    for k in (1, 2, 3):
        for provider, price in (("a", "2.00"), ("b", "2.20"), ("c", "2.40"), ("d", "2.60")):
            add_gpu_snapshot(con, provider, f"2026-11-0{k}T06:00:00", [("H100-SXM", price)])
    for provider, price in day4:
        add_gpu_snapshot(con, provider, "2026-11-04T06:00:00", [("H100-SXM", price)])
    fix_range(con, [h100()], [date(2026, 11, k) for k in (1, 2, 3, 4)],
              computed_at=datetime(2026, 11, 4, 17, 0, tzinfo=timezone.utc))


def by_provider(result):
    return {p.provider: p for p in result.providers}


def test_settlement_without_each_provider_and_the_cheapest_move_by_a_tick(con):
    from pipeline.settlement_influence import settlement_influence

    # Fixings (median, screen never drops anyone: e.g. Nov 1, deviations .3 .1 .1 .3, MAD .2):
    #   Nov 1-3  a 2.00 b 2.20 c 2.40 d 2.60 -> (2.20 + 2.40) / 2 = 2.30
    #   Nov 4    a 2.00 b 2.10 c 2.30 d 2.60 -> (2.10 + 2.30) / 2 = 2.20
    # The month so far (Nov 5 on not fixed: indicative), calendar average: (3 x 2.30 + 2.20) / 4 = 9.10 / 4 =
    # 2.275, on the tick 0.005: 2.275.
    four_days(con, (("a", "2.00"), ("b", "2.10"), ("c", "2.30"), ("d", "2.60")))
    result = settlement_influence(con, month_contract(), "2026-11")
    assert (result.price, result.indicative) == (D("2.275"), True)
    # Without a: Nov 1-3 {2.20 2.40 2.60} 2.40, Nov 4 {2.10 2.30 2.60} 2.30: 9.50 / 4 = 2.375 (+0.100, 20 ticks);
    # without b: {2.00 2.40 2.60} 2.40, {2.00 2.30 2.60} 2.30: 2.375; without c: 2.20 and {2.00 2.10 2.60}
    # 2.10: 8.70 / 4 = 2.175 (-0.100); without d: 2.20 and {2.00 2.10 2.30} 2.10: 2.175.
    rows = by_provider(result)
    assert {p: (r.price_without, r.move, r.move_ticks) for p, r in rows.items()} == {
        "a": (D("2.375"), D("0.100"), 20), "b": (D("2.375"), D("0.100"), 20),
        "c": (D("2.175"), D("-0.100"), -20), "d": (D("2.175"), D("-0.100"), -20)}
    assert result.largest.provider == "a"  # four moves of 0.100: the first by name
    # One tick up: the average must reach 2.2775 (455.5 ticks, half-even to 456: 2.280); one down: at most
    # 2.2725 (454.5 -> 454: 2.270), i.e. the four rounded daily values sum to >= 9.11 or <= 9.09.
    # a (2.00 every day; posting x: Nov 1-3 {x 2.20 2.40 2.60} -> 2.30 while x <= 2.20, Nov 4 {x 2.10 2.30
    # 2.60} -> (x + 2.30) / 2 for 2.10 <= x <= 2.30). Up: 6.90 + v4 >= 9.11, v4 >= 2.2100: (2.30 + x) / 2 >=
    # 2.20995 (which rounds half-even to 2.2100), x >= 2.1199; cost |2.1199 - 2.00| = 0.1199. Down: never
    # (lower, a only gets dropped by the screen, and the median of the others is higher).
    assert (rows["a"].up.price, rows["a"].up.settles_at, rows["a"].up.cost) == (D("2.1199"), D("2.280"), D("0.1199"))
    assert rows["a"].up.exact and rows["a"].down.price is None
    # b (2.20, 2.20, 2.20, 2.10; reference its median 2.20): posting 2.20 every day already gives Nov 4
    # {2.00 2.20 2.30 2.60} 2.25 and 9.15 / 4 = 2.2875 -> 2.290: up at 2.20 itself, cost (0 + 0.10) / 4 =
    # 0.025. Down, below 2.20: v1 = (x + 2.40) / 2, v4 = (x + 2.30) / 2 with 3 v1 + v4 <= 9.09: x <= 2.17, and
    # with the rounding of each day to 4 places up to x = 2.1701 (v1 = 2.28505 -> 2.2850, v4 = 2.23505 ->
    # 2.2350, half-even: 9.0900); cost (3 x 0.0299 + 0.0701) / 4 = 0.03995.
    assert (rows["b"].up.price, rows["b"].up.cost) == (D("2.20"), D("0.025"))
    assert (rows["b"].down.price, rows["b"].down.settles_at, rows["b"].down.cost) == (
        D("2.1701"), D("2.270"), D("0.03995"))
    # c (2.40, 2.40, 2.40, 2.30): at 2.40, Nov 4 {2.00 2.10 2.40 2.60} 2.25: 2.290, up at 2.40, cost 0.025.
    # Down: v1 = (2.20 + x) / 2, v4 = (2.10 + x) / 2, 4.35 + 2x <= 9.09, x <= 2.37, rounded up to 2.3701.
    assert (rows["c"].up.price, rows["c"].up.cost) == (D("2.40"), D("0.025"))
    assert (rows["c"].down.price, rows["c"].down.cost) == (D("2.3701"), D("0.03995"))
    # d (2.60 every day): higher, Nov 1-3 stay 2.30 and Nov 4 2.20 (2.275): never up. Down, below 2.40: v1 =
    # (2.20 + x) / 2, v4 = 2.20 while x >= 2.30: 3 v1 <= 6.89, v1 <= 2.2966, (2.20 + x) / 2 <= 2.29665 (half-even
    # to 2.2966): x <= 2.3933; cost 0.2067.
    assert rows["d"].up.price is None and "no price from 0.10 to 50" in rows["d"].up.note
    assert (rows["d"].down.price, rows["d"].down.cost) == (D("2.3933"), D("0.2067"))
    assert all(m.exact for r in rows.values() for m in (r.up, r.down) if m.price is not None)
    provider, move = result.cheapest  # b and c both move it up at a cost of 0.025: the first by name
    assert (provider.provider, move.direction, move.price) == ("b", "up", D("2.20"))


def test_a_day_that_would_not_stand_without_a_provider_takes_the_contract_fallback(con):
    from pipeline.settlement_influence import settlement_influence

    # Nov 4 has only a 2.00, b 2.10, c 2.30: median 2.10; the month so far (3 x 2.30 + 2.10) / 4 = 2.25.
    # Without a, Nov 4 keeps b and c, 2 < 3: it would not stand, and the contract's fallback (previous value,
    # up to 3 days) fills it with Nov 3 without a, 2.40: 4 x 2.40 / 4 = 2.400 (+0.150). Without d (absent on
    # Nov 4): 3 x 2.20 + 2.10 = 8.70 / 4 = 2.175 (-0.075).
    four_days(con, (("a", "2.00"), ("b", "2.10"), ("c", "2.30")))
    result = settlement_influence(con, month_contract(), "2026-11")
    rows = by_provider(result)
    assert result.price == D("2.250")
    assert (rows["a"].price_without, rows["a"].move, rows["a"].days) == (D("2.400"), D("0.150"), 4)
    assert (rows["d"].price_without, rows["d"].move, rows["d"].days) == (D("2.175"), D("-0.075"), 3)
    # The same from fixings written before fixing_influence had rows: recomputed from the constituents.
    con.execute("delete from fixing_influence")
    again = by_provider(settlement_influence(con, month_contract(), "2026-11"))
    assert {p: r.price_without for p, r in again.items()} == {p: r.price_without for p, r in rows.items()}


def test_a_settlement_without_a_price_has_nothing_to_move(con):
    from pipeline.settlement_influence import settlement_influence

    four_days(con, (("a", "2.00"), ("b", "2.10"), ("c", "2.30")))
    result = settlement_influence(con, month_contract(), "2026-12")  # nothing fixed in December
    assert result.price is None and result.providers == [] and result.reason


def test_tsi_settle_influence_resettles_the_month_without_each_provider(demo_warehouse_path, capsys):
    # The demo has H100 SXM fixings on 2026-11-16 to 20 only: the indicative settlement of November is the
    # mean of those five days (2.6900 2.6900 2.5900 2.5900 2.5708 = 13.1308 / 5 = 2.62616 -> 2.625 to the tick
    # 0.005). Without provider p, each day's value is that day's fixing without p (its fixing_influence row;
    # unchanged on a day p was not in): the expected settlement is worked here from the stored rows, by a
    # mean and a half-even rounding to the tick of our own, and must be what the command prints.
    import duckdb

    from pipeline.cli import main

    con = duckdb.connect(str(demo_warehouse_path.db_path), read_only=True)
    try:
        days = dict(con.execute("select fixing_date, usd_per_gpu_hour from fixings where index_id = "
                                "'TSI-H100-SXM-OD' and fixing_date between date '2026-11-01' and date '2026-11-30'"
                                " and revision = 1").fetchall())
        without = con.execute("select provider, fixing_date, usd_per_gpu_hour_without from fixing_influence "
                              "where index_id = 'TSI-H100-SXM-OD' and stands").fetchall()
    finally:
        con.close()
    assert sorted(days.values()) == [D("2.5708"), D("2.5900"), D("2.5900"), D("2.6900"), D("2.6900")]
    expected = {}
    for provider in {p for p, _, _ in without}:
        series = dict(days) | {day: value for p, day, value in without if p == provider}
        ticks = (sum(series.values()) / len(series) / D("0.005")).quantize(D(1), rounding="ROUND_HALF_EVEN")
        expected[provider] = ticks * D("0.005")

    code = main(["--warehouse", str(demo_warehouse_path.root), "settle", "TSIF-H100-SXM-OD", "2026-11",
                 "--indicative", "--influence"])
    out, err = capsys.readouterr()
    assert code == 0 and "Traceback" not in err
    assert "what could move the settlement 2.625 USD/GPU-hour (tick 0.005)" in out
    printed = {}
    for line in out.split("without each provider", 1)[1].splitlines()[2:]:
        if not line.strip() or line.lstrip().startswith("largest"):
            break
        provider, _days, price, *_ = line.split()
        printed[provider] = D(price)
    assert printed == expected and len(printed) >= 9

    code = main(["--warehouse", str(demo_warehouse_path.root), "settle", "TSIF-H100-SXM-OD", "2026-11",
                 "--indicative", "--influence", "--format", "json"])
    out, err = capsys.readouterr()
    assert code == 2 and err.count("\n") == 1 and "--influence" in err
