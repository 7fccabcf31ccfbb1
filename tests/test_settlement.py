"""Final settlement of contract months (README "Settlement"): golden values worked by hand.

Each test writes the fixings of a month itself (rows appended through sql/insert_fixings.sql, as the engine
writes them) and settles them with a contract written for the test, or a shipped one through `tsi settle`.
The index is TSI-H100-SXM-OD (or TSI-GPT-5-BLEND for tokens): correction cutoff the next day at 12:00 UTC,
so November 2026 is final at 2026-12-01T12:00Z.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, ROUND_HALF_DOWN, ROUND_HALF_EVEN, ROUND_HALF_UP, \
    ROUND_UP, Decimal
from pathlib import Path

import polars as pl
import pytest

from pipeline import settlement
from pipeline.cli import main
from pipeline.contracts import find_contract
from pipeline.fixing import FIXING_BATCH_SCHEMA
from pipeline.paths import Warehouse
from pipeline.settlement import indicative, settle
from pipeline.settlement_rules import round_to_increment, settle_values
from pipeline.warehouse import connect, sql

NOV = date(2026, 11, 1)
FINALITY = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)  # cutoff of 2026-11-30: 12:00 UTC the next day
H100 = "TSI-H100-SXM-OD"


def d(day: int) -> date:
    return date(2026, 11, day)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def put(warehouse: Warehouse, rows, *, index_id: str = H100, kind: str = "gpu") -> None:
    """Append fixings: (day, value or None, status[, revision[, computed_at]]); computed at 16:05 on the day
    by default (before its cutoff), as a live run does."""
    batch = []
    for day, value, status, *rest in rows:
        revision = rest[0] if rest else 1
        computed_at = rest[1] if len(rest) > 1 else datetime.combine(day, datetime.min.time()) + timedelta(hours=16,
                                                                                                          minutes=5)
        number = None if value is None else Decimal(value)
        end = datetime.combine(day, datetime.min.time()) + timedelta(hours=16)
        batch.append({
            "index_id": index_id, "fixing_date": day, "revision": revision, "status": status,
            "usd_per_gpu_hour": number if kind == "gpu" else None, "usd_per_mtok": number if kind == "token" else None,
            "methodology_version": "2.0", "definition_sha256": "test", "n_providers": 3, "n_observations": 3,
            "window_start": end - timedelta(hours=24), "window_end": end, "p25": None, "p75": None, "min": None,
            "max": None, "mean": None, "input_hash": "test", "revision_reason": None,
            "computed_at": computed_at.replace(tzinfo=None), "window_hours": 24, "carried_from": None,
            "loaded_through": None, "backfill": False,
        })
    con = connect(warehouse)
    try:
        con.register("fixing_batch", pl.DataFrame(batch, schema=FIXING_BATCH_SCHEMA).to_arrow())
        con.execute(sql("insert_fixings"))
        con.unregister("fixing_batch")
    finally:
        con.close()


def golden_month() -> list[tuple]:
    """November 2026: days 1-10 at 2.0000, day 11 at 2.3000, day 12 carried (the index repeating day 11's
    2.3000), day 13 suppressed (no value), days 14-30 at 2.1000; all revision 1."""
    rows = [(d(k), "2.0000", "final") for k in range(1, 11)]
    rows += [(d(11), "2.3000", "final"), (d(12), "2.3000", "carried"), (d(13), None, "suppressed")]
    rows += [(d(k), "2.1000", "final") for k in range(14, 31)]
    return rows


BASE = {
    "id": '"T-H100"', "name": '"test contract"', "version": '"1"', "index": f'"{H100}"',
    "contract_unit": '{ quantity = 1000, unit = "GPU-hours" }', "tick_size": "0.005", "first_month": '"2026-01"',
}


def spec(tmp_path: Path, **fields) -> Path:
    """A contracts file of one contract: BASE with fields replaced (TOML text; None drops a field)."""
    entry = {**BASE, **fields}
    path = tmp_path / f"contracts_{abs(hash(tuple(sorted(entry.items()))))}.toml"
    path.write_text("[[contract]]\n" + "".join(f"{k} = {v}\n" for k, v in entry.items() if v is not None))
    return path


def final(warehouse, path, contract="T-H100", month="2026-11", now=FINALITY):
    return settle(warehouse, contract, month, now=now, contracts_file=path)


def by_day(result) -> dict[date, settlement.SettlementDay]:
    return {x.day: x for x in result.days}


# --- the rules --------------------------------------------------------------------------------------------


def test_average_over_calendar_days_fills_the_suppressed_day_with_the_previous_value(warehouse, tmp_path):
    put(warehouse, golden_month())
    path = spec(tmp_path, day_set='"calendar"', fallback='[{ rule = "previous_value", max_days = 3 }]')
    result = final(warehouse, path)
    # Day 12 is carried (counted); day 13 takes day 12's 2.3000 (1 day back). Sum of the 30 days:
    # 10 x 2.0000 + 3 x 2.3000 + 17 x 2.1000 = 20 + 6.9 + 35.7 = 62.6; mean 62.6 / 30 = 2.08666...;
    # in ticks 2.08666... / 0.005 = 417.33 -> 417 -> 2.085. One contract: 2.085 x 1000 GPU-hours = 2085 USD.
    assert result.final and result.n_used == 30
    assert result.price == Decimal("2.085")
    assert result.mean.quantize(Decimal("1E-10")) == Decimal("2.0866666667")
    assert result.contract_value == Decimal("2085.000")
    day13 = by_day(result)[d(13)]
    assert (day13.used, day13.value, day13.fallback, day13.fallback_from) == (True, Decimal("2.3000"),
                                                                              "previous_value", d(12))
    assert day13.fixing.status == "suppressed" and day13.fixing.revision == 1


def test_an_uncounted_carried_day_is_filled_from_the_last_counted_fixing(warehouse, tmp_path):
    put(warehouse, golden_month())
    result = final(warehouse, spec(tmp_path, counted_statuses='["final", "widened"]'))
    # Day 12 (carried) no longer counts: it and day 13 both take day 11's 2.3000 (1 and 2 days back): the
    # same 30 values, 62.6 / 30 -> 2.085; the fallback now names day 11 on both days.
    assert result.price == Decimal("2.085")
    assert [(x.fallback, x.fallback_from) for x in (by_day(result)[d(12)], by_day(result)[d(13)])] == [
        ("previous_value", d(11)), ("previous_value", d(11))]


def test_average_over_published_days_leaves_days_without_a_usable_fixing_out(warehouse, tmp_path):
    put(warehouse, golden_month())
    # final and widened only: days 1-11 and 14-30 count, 28 days: 20 + 2.3 + 35.7 = 58.0; 58.0 / 28 =
    # 2.0714285...; / 0.005 = 414.29 -> 414 -> 2.070.
    result = final(warehouse, spec(tmp_path, id='"T-PUB"', day_set='"published"',
                                   counted_statuses='["final", "widened"]'), contract="T-PUB")
    assert (result.price, result.n_used) == (Decimal("2.070"), 28)
    assert by_day(result)[d(12)].note.startswith("not counted: carried 2.3000")
    assert by_day(result)[d(13)].note == "not counted: suppressed"
    # The carried day counted too: 29 days, 58.0 + 2.3 = 60.3; 60.3 / 29 = 2.07931...; / 0.005 = 415.86 -> 416
    # -> 2.080.
    result = final(warehouse, spec(tmp_path, id='"T-PUB-ALL"', day_set='"published"'), contract="T-PUB-ALL")
    assert (result.price, result.n_used) == (Decimal("2.080"), 29)


def test_published_days_below_min_days_give_no_settlement(warehouse, tmp_path):
    put(warehouse, golden_month())
    with pytest.raises(ValueError, match=r"29 day\(s\) of 2026-11-01 to 2026-11-30 have a usable fixing .* "
                                         r"the contract needs 30"):
        final(warehouse, spec(tmp_path, day_set='"published"', min_days="30"))


def test_last_fixing_takes_the_last_trading_day_or_its_fallback(warehouse, tmp_path):
    rows = [(d(k), "9.0000", "final") for k in range(1, 29)] + [(d(29), "2.1234", "final"), (d(30), None, "suppressed")]
    put(warehouse, rows)
    # Day 30 is suppressed: it takes day 29's 2.1234; 2.1234 / 0.005 = 424.68 -> 425 -> 2.125. The 9.0000 of
    # days 1-28 do not count. To 4 places instead of the tick: 2.1234 itself.
    result = final(warehouse, spec(tmp_path, settlement='"last_fixing"'))
    assert (result.price, result.n_used) == (Decimal("2.125"), 1)
    assert by_day(result)[d(30)].fallback_from == d(29)
    assert by_day(result)[d(1)].note == "not the last trading day"
    result = final(warehouse, spec(tmp_path, id='"T-4DP"', settlement='"last_fixing"', rounding_places="4"),
                   contract="T-4DP")
    assert result.price == Decimal("2.1234")


def test_average_of_the_last_n_days_and_a_fallback_reaching_before_them(warehouse, tmp_path):
    rows = [(d(k), "5.0000", "final") for k in range(1, 28)]
    put(warehouse, rows + [(d(28), "2.0000", "final"), (d(29), "2.0100", "final"), (d(30), "2.0250", "final")])
    path = spec(tmp_path, settlement='{ rule = "average_last_n", n = 3 }')
    # (2.0000 + 2.0100 + 2.0250) / 3 = 6.035 / 3 = 2.011666...; / 0.005 = 402.33 -> 402 -> 2.010.
    result = final(warehouse, path)
    assert (result.price, result.n_used) == (Decimal("2.010"), 3)
    assert by_day(result)[d(27)].note == "not among the last 3 days"


def test_average_of_the_last_n_days_fills_a_suppressed_day_from_before_the_window(warehouse, tmp_path):
    rows = [(d(k), "5.0000", "final") for k in range(1, 28)]
    put(warehouse, rows + [(d(28), None, "suppressed"), (d(29), "2.0100", "final"), (d(30), "2.0250", "final")])
    # Day 28 takes day 27's 5.0000: (5.0000 + 2.0100 + 2.0250) / 3 = 9.035 / 3 = 3.011666... -> 602.33 ticks
    # -> 602 -> 3.010.
    result = final(warehouse, spec(tmp_path, settlement='{ rule = "average_last_n", n = 3 }'))
    assert result.price == Decimal("3.010")
    assert by_day(result)[d(28)].fallback_from == d(27)


def test_a_suppressed_run_longer_than_the_fallback_gives_no_settlement(warehouse, tmp_path):
    rows = [(d(k), "2.0000", "final") for k in range(1, 31) if not 9 <= k <= 13]
    put(warehouse, rows + [(d(9), "2.4000", "final")] + [(d(k), None, "suppressed") for k in range(10, 14)])
    # Days 10-12 take day 9 (1 to 3 days back); day 13 is 4 days after day 9: beyond max_days = 3.
    with pytest.raises(ValueError, match=r"T-H100 2026-11: no settlement: no usable fixing of TSI-H100-SXM-OD on "
                                         r"2026-11-13 and the fallback \(previous_value up to 3 day\(s\) back\) "
                                         r"cannot fill it"):
        final(warehouse, spec(tmp_path))
    # With max_days = 4 day 13 is filled too: 25 x 2.0000 + 5 x 2.4000 = 50 + 12 = 62; 62 / 30 = 2.0666...;
    # 413.33 ticks -> 413 -> 2.065. No fallback at all: days 10-13 all fail.
    result = final(warehouse, spec(tmp_path, id='"T-K4"', fallback='[{ rule = "previous_value", max_days = 4 }]'),
                   contract="T-K4")
    assert result.price == Decimal("2.065")
    with pytest.raises(ValueError, match=r"on 2026-11-10 to 2026-11-13 and no fallback"):
        final(warehouse, spec(tmp_path, id='"T-K0"', fallback="[]"), contract="T-K0")


def test_the_ladder_reaches_into_the_previous_month(warehouse, tmp_path):
    put(warehouse, [(date(2026, 10, 31), "3.0000", "final"), (d(1), None, "suppressed")]
        + [(d(k), "2.0000", "final") for k in range(2, 31)])
    # Day 1 takes 2026-10-31's 3.0000: (3.0000 + 29 x 2.0000) / 30 = 61 / 30 = 2.0333...; 406.67 ticks -> 407
    # -> 2.035.
    result = final(warehouse, spec(tmp_path))
    assert result.price == Decimal("2.035")
    assert by_day(result)[d(1)].fallback_from == date(2026, 10, 31)


def test_half_a_tick_follows_the_rounding_mode():
    contract = find_contract("TSIF-H100-SXM-OD")
    # 15 days at 2.0000 and 15 at 2.0050: 30 + 30.075 = 60.075; / 30 = 2.0025 exactly, 400.5 ticks of 0.005.
    days = [(d(k), Decimal("2.0000") if k <= 15 else Decimal("2.0050"), "final") for k in range(1, 31)]
    result = settle_values(contract, NOV, days)
    assert result.mean == Decimal("2.0025") and result.price == Decimal("2.000")  # half_even: 400 is even
    from dataclasses import replace

    expected = {"half_even": "2.000", "half_up": "2.005", "half_down": "2.000", "down": "2.000", "up": "2.005",
                "floor": "2.000", "ceiling": "2.005"}
    for mode, price in expected.items():
        assert settle_values(replace(contract, rounding=mode), NOV, days).price == Decimal(price), mode


def test_round_to_increment_is_exact_at_and_beside_the_half():
    tick = Decimal("0.005")
    # 6.0075 / 3 = 2.0025 = 400.5 ticks: a tie, whatever the 1/3 in the division.
    assert round_to_increment(Decimal("6.0075"), 3, tick, ROUND_HALF_EVEN) == Decimal("2.000")
    assert round_to_increment(Decimal("6.0075"), 3, tick, ROUND_HALF_UP) == Decimal("2.005")
    # 6.0225 / 3 = 2.0075 = 401.5 ticks: half-even goes up to 402 -> 2.010, half-down to 401 -> 2.005.
    assert round_to_increment(Decimal("6.0225"), 3, tick, ROUND_HALF_EVEN) == Decimal("2.010")
    assert round_to_increment(Decimal("6.0225"), 3, tick, ROUND_HALF_DOWN) == Decimal("2.005")
    # 1e-30 above or below the tie: no longer a tie, every half mode agrees.
    above, below = Decimal("6.007500000000000000000000000001"), Decimal("6.007499999999999999999999999999")
    for mode in (ROUND_HALF_EVEN, ROUND_HALF_UP, ROUND_HALF_DOWN):
        assert round_to_increment(above, 3, tick, mode) == Decimal("2.005")
        assert round_to_increment(below, 3, tick, mode) == Decimal("2.000")
    # on a multiple: no mode moves it; just above it: up and ceiling go to the next tick.
    for mode in (ROUND_DOWN, ROUND_UP, ROUND_FLOOR, ROUND_CEILING, ROUND_HALF_UP):
        assert round_to_increment(Decimal("6.015"), 3, tick, mode) == Decimal("2.005")
    assert round_to_increment(Decimal("6.0150003"), 3, tick, ROUND_UP) == Decimal("2.010")
    assert round_to_increment(Decimal("6.0150003"), 3, tick, ROUND_DOWN) == Decimal("2.005")


def test_settle_values_takes_a_replaced_series():
    """The pure rules on plain (date, value, status) tuples, as another module recomputes a settlement."""
    contract = find_contract("TSIF-H100-SXM-OD")
    days = [(d(k), Decimal("2.0000"), "final") for k in range(1, 31)]
    assert settle_values(contract, NOV, days).price == Decimal("2.000")
    days[29] = (d(30), Decimal("3.5000"), "final")  # (29 x 2 + 3.5) / 30 = 61.5 / 30 = 2.05 -> 2.050
    assert settle_values(contract, NOV, days).price == Decimal("2.050")
    # Day 11 absent: unknown, not suppressed: no price (a suppressed day 11 would be filled from day 10).
    gap = settle_values(contract, NOV, days[:10] + days[11:])
    assert (gap.missing, gap.price, gap.reason) == ([d(11)], None, "no fixing of TSI-H100-SXM-OD on 2026-11-11 in "
                                                                   "the warehouse")
    filled = settle_values(contract, NOV, days[:10] + [(d(11), None, "suppressed")] + days[11:])
    assert (filled.missing, filled.price, by_day(filled)[d(11)].fallback_from) == ([], Decimal("2.050"), d(10))


# --- as known at finality -----------------------------------------------------------------------------------


def test_refused_before_the_cutoff_naming_the_dates_it_waits_for(tmp_path):
    path = spec(tmp_path)
    nowhere = Warehouse(tmp_path / "none")  # refused before any warehouse is read
    with pytest.raises(ValueError) as info:
        final(nowhere, path, now=utc("2026-11-30T13:00"))
    assert str(info.value) == (
        "T-H100 2026-11: no final settlement before 2026-12-01T12:00Z (the correction cutoff of the fixing of "
        "2026-11-30); waiting for the correction cutoff of the fixings of 2026-11-30; --indicative shows the "
        "settlement so far")
    # 2026-11-28 11:00: the fixing of 11-27 may still be corrected until 11-28 12:00.
    with pytest.raises(ValueError, match="of the fixings of 2026-11-27 to 2026-11-30;"):
        final(nowhere, path, now=utc("2026-11-28T11:00"))
    # The last 3 days and a 3-day fallback reach back to 11-25; at 11-29 00:00 the cutoffs of 11-28 to 11-30
    # are still to come.
    with pytest.raises(ValueError, match="of the fixings of 2026-11-28 to 2026-11-30;"):
        final(nowhere, spec(tmp_path, settlement='{ rule = "average_last_n", n = 3 }'), now=utc("2026-11-29T00:00"))
    with pytest.raises(ValueError, match="^T-H100 2026-11: no final settlement before 2026-12-01T12:00Z"):
        final(nowhere, path, now=FINALITY - timedelta(seconds=1))


def test_a_revision_after_finality_never_changes_the_settlement(warehouse, tmp_path):
    path = spec(tmp_path)
    put(warehouse, [(d(k), "2.1000", "final") for k in range(1, 31)])
    # A correction of day 30 computed one second after finality: (29 x 2.1 + 2.9) / 30 = 63.8 / 30 = 2.1266...
    # -> 2.125 if it were read; it is not: all 30 days at 2.1000 give 2.100.
    put(warehouse, [(d(30), "2.9000", "final", 2, datetime(2026, 12, 1, 12, 0, 1))])
    first = final(warehouse, path, now=utc("2026-12-05T00:00"))
    assert first.price == Decimal("2.100") and by_day(first)[d(30)].fixing.revision == 1
    body = first.published.read_bytes()
    # Settling again after more late revisions gives the same record and the same file.
    put(warehouse, [(d(29), "7.0000", "final", 2, datetime(2026, 12, 3))])
    again = final(warehouse, path, now=utc("2026-12-09T00:00"))
    assert (again.price, again.sha256, again.settled_at) == (first.price, first.sha256, first.settled_at)
    assert again.published.read_bytes() == body
    con = connect(warehouse, read_only=True)
    try:
        assert con.execute("select count(*) from settlements").fetchall() == [(1,)]
        assert con.execute("select count(*) from settlement_days").fetchall() == [(30,)]
    finally:
        con.close()
    # A revision computed at or before finality but written after the settlement (it cannot happen through
    # the engine): the recomputation differs and is refused; the recorded settlement stands.
    put(warehouse, [(d(28), "2.9000", "final", 2, datetime(2026, 11, 29, 10, 0))])
    with pytest.raises(ValueError, match=r"T-H100 2026-11: recomputed 2.125, but the settlement recorded is 2.1 "
                                         r"\(recorded .*\): the fixings as of finality differ"):
        final(warehouse, path, now=utc("2026-12-09T00:00"))
    assert again.published.read_bytes() == body


def test_a_revision_computed_exactly_at_finality_counts(warehouse, tmp_path):
    put(warehouse, [(d(k), "2.1000", "final") for k in range(1, 31)])
    put(warehouse, [(d(30), "2.9000", "final", 2, datetime(2026, 12, 1, 12, 0))])
    # "at or before" finality: revision 2 counts; 63.8 / 30 = 2.12666... -> 425.33 ticks -> 425 -> 2.125.
    result = final(warehouse, spec(tmp_path))
    assert result.price == Decimal("2.125") and by_day(result)[d(30)].fixing.revision == 2


def test_a_backfilled_month_uses_its_first_revision(warehouse, tmp_path):
    # Imported history is fixed after the fact: revision 1 computed long after finality is the only one the
    # date will ever have (the engine revises nothing after the cutoff), so it is read.
    put(warehouse, [(d(k), "2.2000", "final", 1, datetime(2027, 3, 1)) for k in range(1, 31)])
    put(warehouse, [(d(15), "9.0000", "final", 2, datetime(2027, 3, 2))])  # not the first: never read
    result = final(warehouse, spec(tmp_path), now=utc("2027-03-05T00:00"))
    assert result.price == Decimal("2.200") and by_day(result)[d(15)].fixing.revision == 1
    assert by_day(result)[d(15)].note == "first revision, computed after finality (backfill)"


def test_a_date_without_any_fixing_is_refused_not_guessed(warehouse, tmp_path):
    put(warehouse, [(d(k), "2.0000", "final") for k in range(1, 31) if k not in (5, 6)])
    with pytest.raises(ValueError, match=r"the warehouse has no fixing of TSI-H100-SXM-OD on 2026-11-05 to "
                                         r"2026-11-06; fix those dates first \(tsi backfill --from 2026-11-05 "
                                         r"--to 2026-11-06\)"):
        final(warehouse, spec(tmp_path))


def test_a_changed_specification_under_the_same_version_is_refused(warehouse, tmp_path):
    put(warehouse, golden_month())
    final(warehouse, spec(tmp_path))
    with pytest.raises(ValueError, match=r"T-H100 2026-11 was settled at 2.085 under contract version 1"):
        final(warehouse, spec(tmp_path, tick_size="0.01"), month="2026-11")
    put(warehouse, [(date(2026, 12, k), "2.0000", "final") for k in range(1, 32)])
    with pytest.raises(ValueError, match="differs from the specification already used under that version"):
        final(warehouse, spec(tmp_path, tick_size="0.01"), month="2026-12", now=utc("2027-01-02T00:00"))


# --- recording and publishing --------------------------------------------------------------------------------


def test_the_published_file_is_checksummed_and_recorded(warehouse, tmp_path):
    put(warehouse, golden_month())
    result = final(warehouse, spec(tmp_path))
    target = warehouse.root / "published" / "v1" / "settlements" / "T-H100_2026-11.csv"
    assert result.published == target
    body = target.read_bytes()
    digest = hashlib.sha256(body).hexdigest()
    assert (target.parent / "T-H100_2026-11.csv.sha256").read_text() == f"{digest}  T-H100_2026-11.csv\n"
    assert result.sha256 == digest
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert [r["day"] for r in rows] == [str(d(k)) for k in range(1, 31)]
    assert {(r["settlement_usd_per_gpu_hour"], r["contract_value_usd"], r["final"]) for r in rows} == {
        ("2.085", "2085.000", "true")}
    day13 = rows[12]
    assert (day13["fixing_status"], day13["used_usd_per_gpu_hour"], day13["fallback"], day13["fallback_from"]) == (
        "suppressed", "2.3000", "previous_value", "2026-11-12")
    con = connect(warehouse, read_only=True)
    try:
        recorded = con.execute("select usd_per_gpu_hour, usd_per_mtok, n_days, contract_value_usd, file_path, "
                               "file_sha256, finality_at from settlements").fetchall()
        day13 = con.execute("select used_usd_per_gpu_hour, fallback, fallback_from, fixing_status "
                            "from settlement_days where day = date '2026-11-13'").fetchall()
        spec_row = con.execute("select contract_id, contract_version from settlement_contracts").fetchall()
    finally:
        con.close()
    assert recorded == [(Decimal("2.085"), None, 30, Decimal("2085"), "published/v1/settlements/T-H100_2026-11.csv",
                         digest, datetime(2026, 12, 1, 12, 0))]
    assert day13 == [(Decimal("2.3000"), "previous_value", d(12), "suppressed")]
    assert spec_row == [("T-H100", "1")]


def test_a_token_contract_in_tokens_settles_on_the_last_business_day_half_up(warehouse):
    # The shipped TSIF-GPT-5-BLEND: last fixing of the last business day (2026-11-30, a Monday), rounded half
    # up to 0.005, final one day after it at 16:00 UTC (after the 12:00 cutoff).
    put(warehouse, [(d(k), "3.4375", "final") for k in range(1, 31)], index_id="TSI-GPT-5-BLEND", kind="token")
    with pytest.raises(ValueError, match=r"no final settlement before 2026-12-01T16:00Z \(1 day\(s\) after the "
                                         r"last trading day 2026-11-30 at 16:00 UTC\); --indicative"):
        settle(warehouse, "TSIF-GPT-5-BLEND", "2026-11", now=utc("2026-12-01T13:00"))
    result = settle(warehouse, "TSIF-GPT-5-BLEND", "2026-11", now=utc("2026-12-01T16:00"))
    # 3.4375 / 0.005 = 687.5 ticks: half up -> 688 -> 3.440 USD/Mtok; 1,000,000,000 tokens = 1000 Mtok, so
    # one contract is 3.440 x 1000 = 3440 USD.
    assert result.price == Decimal("3.440")
    assert result.contract_value == Decimal("3440.000")
    assert "settlement_usd_per_mtok" in result.published.read_text().splitlines()[0]


# --- tsi settle -----------------------------------------------------------------------------------------------


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def golden(warehouse, monkeypatch):
    put(warehouse, golden_month())
    monkeypatch.setattr(settlement, "utc_now", lambda: utc("2026-12-02T09:00"))
    return warehouse


def test_tsi_settle_prints_the_price_the_value_and_every_day(capsys, golden):
    code, out, err = run(capsys, "--warehouse", str(golden.root), "settle", "TSIF-H100-SXM-OD", "2026-11")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "TSIF-H100-SXM-OD 2026-11: FINAL SETTLEMENT 2.085 USD/GPU-hour"
    assert "  contract value  2085.000 USD (1000 GPU-hours x 2.085 USD/GPU-hour)" in lines
    assert "  final at        2026-12-01T12:00Z (the correction cutoff of the fixing of 2026-11-30)" in lines
    assert any(line.startswith("  recorded        2026-12-02T09:00:00Z; published ") for line in lines)
    day13 = next(line for line in lines if line.startswith("  2026-11-13"))
    assert day13.split()[:5] == ["2026-11-13", "2.3000", "-", "suppressed", "1"]
    assert day13.endswith("suppressed: previous_value from 2026-11-12 (revision 1, carried)")
    assert sum(line.startswith("  2026-11-") for line in lines) == 30

    # csv: the published file's bytes; json: the same figures for programs.
    code, out, _ = run(capsys, "--warehouse", str(golden.root), "settle", "TSIF-H100-SXM-OD", "2026-11",
                       "--format", "csv")
    published = golden.root / "published" / "v1" / "settlements" / "TSIF-H100-SXM-OD_2026-11.csv"
    assert code == 0 and out.encode() == published.read_bytes()
    code, out, _ = run(capsys, "--warehouse", str(golden.root), "settle", "TSIF-H100-SXM-OD", "2026-11",
                       "--format", "json")
    data = json.loads(out)
    assert code == 0
    assert (data["settlement_usd_per_gpu_hour"], data["contract_value_usd"], data["final"], data["days_used"]) == (
        "2.085", "2085.000", True, 30)
    assert data["mean_usd_per_gpu_hour"] == "2.08666666666666666667"
    assert data["days"][12] | {"fixing_computed_at_utc": None} == {
        "day": "2026-11-13", "used": True, "used_usd_per_gpu_hour": "2.3000", "fallback": "previous_value",
        "fallback_from": "2026-11-12", "fixing_revision": 1, "fixing_status": "suppressed",
        "fixing_usd_per_gpu_hour": None, "fixing_computed_at_utc": None,
        "note": "suppressed: previous_value from 2026-11-12 (revision 1, carried)"}
    assert data["sha256"] == hashlib.sha256(published.read_bytes()).hexdigest()


def test_tsi_settle_indicative_mid_month_is_labelled_and_recorded_nowhere(capsys, warehouse, monkeypatch):
    put(warehouse, golden_month()[:20])  # fixed through 2026-11-20
    monkeypatch.setattr(settlement, "utc_now", lambda: utc("2026-11-21T09:00"))
    code, out, err = run(capsys, "--warehouse", str(warehouse.root), "settle", "TSIF-H100-SXM-OD", "2026-11")
    assert code == 2 and err.startswith("tsi settle: TSIF-H100-SXM-OD 2026-11: no final settlement before "
                                        "2026-12-01T12:00Z") and "2026-11-20 to 2026-11-30" in err
    code, out, err = run(capsys, "--warehouse", str(warehouse.root), "settle", "TSIF-H100-SXM-OD", "2026-11",
                         "--indicative")
    # Days 1-20: 10 x 2.0000 + 3 x 2.3000 (11, 12 carried, 13 filled) + 7 x 2.1000 = 20 + 6.9 + 14.7 = 41.6;
    # 41.6 / 20 = 2.08 -> 2.080.
    assert code == 0
    assert out.splitlines()[0].startswith("TSIF-H100-SXM-OD 2026-11: INDICATIVE, NOT FINAL: 2.080 USD/GPU-hour "
                                          "(so far: 2026-11-01 to 2026-11-20")
    assert "nothing recorded or published" in out.splitlines()[0]
    code, out, _ = run(capsys, "--warehouse", str(warehouse.root), "settle", "TSIF-H100-SXM-OD", "2026-11",
                       "--indicative", "--format", "json")
    assert (json.loads(out)["final"], json.loads(out)["settlement_usd_per_gpu_hour"]) == (False, "2.080")
    assert not (warehouse.root / "published" / "v1" / "settlements").exists()
    con = connect(warehouse, read_only=True)
    try:
        assert con.execute("select count(*) from settlements").fetchall() == [(0,)]
    finally:
        con.close()


@pytest.mark.parametrize("argv, message", [
    (["settle", "TSIF-NOPE", "2026-11"], "tsi settle: unknown contract 'TSIF-NOPE'; known: TSIF-FRONTIER-BLEND, "),
    (["settle", "TSIF-H100-SXM-OD", "2026-13"], "tsi settle: contract month must be YYYY-MM (2000 to 2099), "
                                                "got '2026-13'"),
    (["settle", "TSIF-H100-SXM-OD", "2023-12"], "tsi settle: 2023-12 is not a contract month of TSIF-H100-SXM-OD "
                                                "(every month from 2024-01)"),
    (["settle", "TSIF-H100-SXM-OD", "2026-10"], "tsi settle: no warehouse at "),
    (["settle", "TSIF-H100-SXM-OD", "2026-10", "--indicative"], "tsi settle: no warehouse at "),
])
def test_tsi_settle_bad_input_is_one_line(capsys, tmp_path, argv, message):
    code, out, err = run(capsys, "--warehouse", str(tmp_path / "absent"), *argv)
    assert code == 2 and out == "" and err.startswith(message) and err.count("\n") == 1
    assert not (tmp_path / "absent").exists()


def test_tsi_settle_on_a_month_the_ladder_cannot_fill_is_one_line(capsys, warehouse, monkeypatch):
    put(warehouse, [(d(k), "2.0000", "final") for k in range(1, 31) if k not in range(10, 15)]
        + [(d(k), None, "suppressed") for k in range(10, 15)])
    monkeypatch.setattr(settlement, "utc_now", lambda: utc("2026-12-02T09:00"))
    code, out, err = run(capsys, "--warehouse", str(warehouse.root), "settle", "TSIF-H100-SXM-OD", "2026-11")
    assert code == 2 and out == ""
    assert err == ("tsi settle: TSIF-H100-SXM-OD 2026-11: no settlement: no usable fixing of TSI-H100-SXM-OD on "
                   "2026-11-13 to 2026-11-14 and the fallback (previous_value up to 3 day(s) back) cannot fill "
                   "them\n")


def test_tsi_settle_on_a_locked_warehouse_is_one_line(capsys, golden, monkeypatch):
    from pipeline import writer

    monkeypatch.setattr(writer, "WRITER_WAIT_SECONDS", 0.0)
    monkeypatch.setattr(settlement, "open_writer", lambda wh: writer.open_writer(wh, wait_seconds=0.0))
    import fcntl
    import os

    fd = os.open(golden.root / ".writer.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another process's run holds the writer (flock: per open file)
        code, out, err = run(capsys, "--warehouse", str(golden.root), "settle", "TSIF-H100-SXM-OD", "2026-11")
    finally:
        os.close(fd)
    assert code == 2 and err.startswith("tsi settle: another process has been writing to the warehouse")


# --- the demo warehouse: an incomplete month ------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Warehouse:
    import demo_warehouse

    return demo_warehouse.fresh_copy(tmp_path_factory)


def test_the_demo_month_is_incomplete_final_refused_indicative_so_far(demo, tmp_path, capsys):
    import shutil

    # TSI-H100-SXM-OD is fixed on 2026-11-16 to 20 only (README quickstart): 2.6900, 2.6900, 2.5900, 2.5900,
    # 2.5708. Indicative: 13.1308 / 5 = 2.62616; / 0.005 = 525.23 ticks -> 525 -> 2.625.
    result = indicative(demo, "TSIF-H100-SXM-OD", "2026-11")
    assert (result.price, result.n_used, result.final) == (Decimal("2.625"), 5, False)
    assert result.missing == [d(k) for k in range(1, 16)]
    # GPT-5's list price, 3 / 10 per million blended 3 : 1 = 3.4375 (README), is the last fixing so far:
    # 687.5 ticks of 0.005, half up -> 3.440.
    assert indicative(demo, "TSIF-GPT-5-BLEND", "2026-11").price == Decimal("3.440")
    # H200 averages published days: 2.6950 on each of the 5 days, though the final needs 15 such days.
    assert indicative(demo, "TSIF-H200-OD", "2026-11").price == Decimal("2.695")
    copy = Warehouse(tmp_path / "warehouse")
    shutil.copytree(demo.root, copy.root)
    with pytest.raises(ValueError, match=r"TSIF-H100-SXM-OD 2026-11: the warehouse has no fixing of TSI-H100-SXM-OD "
                                         r"on 2026-11-01 to 2026-11-15, 2026-11-21 to 2026-11-30; fix those dates"):
        settle(copy, "TSIF-H100-SXM-OD", "2026-11", now=utc("2026-12-02T00:00"))
    assert not (copy.published_dir / "settlements").exists()
