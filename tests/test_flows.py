"""The flows on Prefect's temporary server: the same day twice adds nothing, a crash inside a run leaves
nothing partial and is recorded, a backfill fixes a range, and every flow run has its `runs` row."""
from __future__ import annotations

import hashlib
import json
import os
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

from prefect.artifacts import Artifact  # noqa: E402
from prefect.testing.utilities import prefect_test_harness  # noqa: E402

from flows.collect import collect_flow  # noqa: E402
from flows.daily import backfill_flow, daily_flow  # noqa: E402
from pipeline import fixing  # noqa: E402
from pipeline.http import FetchPolicy  # noqa: E402
from pipeline.paths import DEMO_FIXTURES_DIR  # noqa: E402
from pipeline.warehouse import connect  # noqa: E402
from test_crash_safety import BreaksOnWrite, Crash  # noqa: E402

DATA_TABLES = ("raw_snapshots", "fetch_log", "snapshot_parses", "observations", "rejections", "fixings",
               "fixing_constituents", "publications")
FAST = FetchPolicy(retries=1, retry_delays_seconds=[0.1])


@pytest.fixture(scope="module")
def prefect_server():
    with prefect_test_harness(server_startup_timeout=120):
        yield


def replay(day: str) -> dict:
    d = date.fromisoformat(day)
    return {"replay_dir": str(DEMO_FIXTURES_DIR / day),
            "collected_at": datetime(d.year, d.month, d.day, 6, 0, tzinfo=timezone.utc), "policy": FAST}


def snapshot(warehouse) -> tuple[dict, dict, list]:
    con = connect(warehouse, read_only=True)
    try:
        counts = {t: con.execute(f"select count(*) from {t}").fetchall()[0][0] for t in DATA_TABLES}
        run_rows = con.execute("select flow, outcome from runs order by started_at, flow").fetchall()
    finally:
        con.close()
    folder = warehouse.published_dir / "fixings"
    files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*"))}
    return counts, files, run_rows


@pytest.mark.prefect
def test_the_same_day_twice_adds_nothing_but_a_record_of_each_run(prefect_server, warehouse):
    first = daily_flow(fixing_date=date(2026, 11, 19), warehouse=str(warehouse.root), **replay("2026-11-19"))
    counts, files, run_rows = snapshot(warehouse)
    second = daily_flow(fixing_date=date(2026, 11, 19), warehouse=str(warehouse.root), **replay("2026-11-19"))
    counts_again, files_again, run_rows_again = snapshot(warehouse)

    assert counts_again == counts and files_again == files
    assert counts["fixings"] > 0 and sorted(files) == ["fixings_2026-11-19.csv", "fixings_2026-11-19.csv.sha256"]
    assert first == second
    # The recordings of the 19th answer 503 for Paperspace's catalog: reported both times, fixed on the others.
    assert [f["source"] for f in first["failed_sources"]] == ["skypilot"]
    assert "paperspace" in first["failed_sources"][0]["url"]
    # One row per flow run: daily and its four subflows, each time.
    assert len(run_rows_again) == 2 * len(run_rows) == 10
    assert sorted(run_rows) == [("collect", "completed_with_failures"), ("daily", "completed_with_failures"),
                                ("fix", "completed"), ("publish", "completed"), ("site", "completed")]
    # The site was rebuilt after the publication: the landing page names the day's H100 SXM fixing.
    assert "TSI-H100-SXM-OD" in (warehouse.root / "published" / "site" / "index.html").read_text()

    # The fix flow's table artifact holds the day's fixings as the warehouse has them; the second run's says
    # none of them is new.
    rows = {r["index_id"]: r for r in json.loads(Artifact.get("fixings").data)}
    con = connect(warehouse, read_only=True)
    stored = con.execute(
        "select index_id, status, coalesce(usd_per_gpu_hour, usd_per_mtok), n_providers from fixings"
        " where fixing_date = date '2026-11-19'"
    ).fetchall()
    con.close()
    assert {(r["index_id"], r["status"], r["value"], r["n_providers"]) for r in rows.values()} == {
        (index_id, status, "" if value is None else format(value, "f"), n) for index_id, status, value, n in stored
    }
    assert rows["TSI-H100-SXM-OD"]["fixing_date"] == "2026-11-19" and rows["TSI-H100-SXM-OD"]["status"] == "final"
    assert not any(r["new"] for r in rows.values())


@pytest.mark.prefect
def test_a_crash_inside_the_fixing_leaves_no_fixing_no_file_and_a_failed_run(prefect_server, warehouse, monkeypatch):
    real_fix_date = fixing.fix_date
    fired = []

    def fix_date_that_crashes(con, definitions, fixing_date, *args, **kwargs):
        broken = BreaksOnWrite(con, "fixing_constituents")
        try:
            return real_fix_date(broken, definitions, fixing_date, *args, **kwargs)
        finally:
            fired.append(broken.writes)

    monkeypatch.setattr(fixing, "fix_date", fix_date_that_crashes)
    with pytest.raises(Crash):
        daily_flow(fixing_date=date(2026, 11, 20), warehouse=str(warehouse.root), **replay("2026-11-20"))
    assert fired == [1]
    counts, files, run_rows = snapshot(warehouse)
    assert counts["fixings"] == counts["fixing_constituents"] == counts["publications"] == 0
    assert files == {}
    assert counts["raw_snapshots"] > 0  # what was collected before the crash is kept
    assert sorted(run_rows) == [("collect", "completed"), ("daily", "failed"), ("fix", "failed")]
    con = connect(warehouse, read_only=True)
    error = con.execute("select detail from runs where flow = 'daily'").fetchall()[0][0]
    con.close()
    assert "Crash: injected failure on write 1 to fixing_constituents" in error

    monkeypatch.setattr(fixing, "fix_date", real_fix_date)
    summary = daily_flow(fixing_date=date(2026, 11, 20), warehouse=str(warehouse.root), **replay("2026-11-20"))
    counts_after, files_after, _ = snapshot(warehouse)
    assert counts_after["raw_snapshots"] == counts["raw_snapshots"]  # the replayed bodies were kept already
    assert counts_after["publications"] == 1 and summary["published"]
    con = connect(warehouse, read_only=True)
    h100 = con.execute("select usd_per_gpu_hour, revision from fixings where index_id = 'TSI-H100-SXM-OD'").fetchall()
    con.close()
    # As worked by hand in tests/test_daily_flow.py for the 20th: the median of the nine providers the screen
    # keeps, 2.5708, first revision.
    assert h100 == [(Decimal("2.5708"), 1)]


@pytest.mark.prefect
def test_backfill_fixes_every_date_of_the_range_once(prefect_server, warehouse):
    for day in ("2026-11-19", "2026-11-20"):
        collect_flow(warehouse=str(warehouse.root), **replay(day))
    first = backfill_flow(first=date(2026, 11, 19), last=date(2026, 11, 20), warehouse=str(warehouse.root))
    assert [s["fixing_date"] for s in first] == ["2026-11-19", "2026-11-20"]
    assert all(s["new"] == s["fixings"] > 0 and s["published"] for s in first)
    again = backfill_flow(first=date(2026, 11, 19), last=date(2026, 11, 20), warehouse=str(warehouse.root))
    assert [s["new"] for s in again] == [0, 0]
    con = connect(warehouse, read_only=True)
    h100 = con.execute("select fixing_date, status, usd_per_gpu_hour from fixings"
                       " where index_id = 'TSI-H100-SXM-OD' order by fixing_date").fetchall()
    con.close()
    # As worked by hand in tests/test_daily_flow.py for the 20th: 2.5708.
    assert [(d, status) for d, status, _ in h100] == [(date(2026, 11, 19), "final"), (date(2026, 11, 20), "final")]
    assert h100[1][2] == Decimal("2.5708")


@pytest.mark.prefect
def test_a_collection_that_fails_as_a_whole_does_not_stop_the_fixing(prefect_server, warehouse):
    collect_flow(warehouse=str(warehouse.root), **replay("2026-11-20"))  # the day's earlier collection
    # A misconfigured deployment: the collection itself fails before fetching anything.
    summary = daily_flow(fixing_date=date(2026, 11, 20), warehouse=str(warehouse.root), sources=["no-such-source"])
    assert [f["source"] for f in summary["failed_sources"]] == ["*"]
    assert "unknown source 'no-such-source'" in summary["failed_sources"][0]["error"]
    con = connect(warehouse, read_only=True)
    h100 = con.execute("select usd_per_gpu_hour from fixings where index_id = 'TSI-H100-SXM-OD'").fetchall()
    outcomes = con.execute("select flow, outcome from runs order by started_at").fetchall()
    con.close()
    assert h100 == [(Decimal("2.5708"),)]  # as tests/test_daily_flow.py, from the earlier collection
    assert outcomes == [("collect", "completed"), ("daily", "completed_with_failures"), ("collect", "failed"),
                        ("fix", "completed"), ("publish", "completed"), ("site", "completed")]
