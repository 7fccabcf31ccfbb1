"""Finality: append-only revisions, the correction cutoff, the 0.1% threshold, and "as known at" queries."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

from pipeline.cli import main
from pipeline.fixing import FINAL, SUPPRESSED, fix_date
from pipeline.publish import publish_date

from conftest import add_gpu_snapshot
from test_fixing import DAY, h100


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def history(con):
    return con.execute(
        "select revision, status, usd_per_gpu_hour, computed_at, revision_reason is not null from fixings"
        " order by revision"
    ).fetchall()


def test_corrections_before_the_cutoff_above_the_threshold_make_revisions(con):
    # The cutoff of 2026-11-20 is 2026-11-21 12:00 UTC; the threshold 0.1% of the published value.
    for provider, price in (("a", "2.00"), ("b", "3.00"), ("c", "4.00")):
        add_gpu_snapshot(con, provider, "2026-11-20T06:00:00", [("H100-SXM", price)])
    [f] = fix_date(con, [h100()], DAY, computed_at=at("2026-11-20T17:00"))
    assert (f.revision, f.written, f.value) == (1, True, Decimal("3.0000"))

    # d at 3.006: median (3.00 + 3.006) / 2 = 3.003, a move of 0.003 = exactly 0.1% of 3.00: not more, so
    # the published value stands and the run says why.
    add_gpu_snapshot(con, "d", "2026-11-20T07:00:00", [("H100-SXM", "3.006")])
    [f] = fix_date(con, [h100()], DAY, computed_at=at("2026-11-20T18:00"))
    assert (f.revision, f.written, f.value) == (1, False, Decimal("3.0030"))
    assert f.note.startswith("within 0.1")

    # d collects again at 3.0062: median 3.0031, a move of 0.1033%: revision 2, with its reason.
    add_gpu_snapshot(con, "d", "2026-11-20T08:00:00", [("H100-SXM", "3.0062")])
    [f] = fix_date(con, [h100()], DAY, computed_at=at("2026-11-21T11:00"))
    assert (f.revision, f.written, f.value) == (2, True, Decimal("3.0031"))
    reason = con.execute("select revision_reason from fixings where revision = 2").fetchall()[0][0]
    assert "3.0000 -> final 3.0031" in reason and "+0.10%" in reason

    # After the cutoff nothing changes, whatever arrives: e at 5.00 would give median(2, 3, 3.0062, 4, 5) =
    # 3.0062 (MAD 0.9938; 0.6745 x |5 - 3.0062| = 1.345 < 3.5 x 0.9938: e passes the screen).
    add_gpu_snapshot(con, "e", "2026-11-20T09:00:00", [("H100-SXM", "5.00")])
    [f] = fix_date(con, [h100()], DAY, computed_at=at("2026-11-21T12:00:01"))
    assert (f.revision, f.written, f.value) == (2, False, Decimal("3.0062"))
    assert f.note.startswith("after the cutoff 2026-11-21T12:00Z: revision 2")
    assert history(con) == [
        (1, FINAL, Decimal("3.0000"), datetime(2026, 11, 20, 17, 0), False),
        (2, FINAL, Decimal("3.0031"), datetime(2026, 11, 21, 11, 0), True),
    ]
    assert con.execute("select count(*) from fixing_constituents where revision = 1").fetchall() == [(3,)]


def test_a_change_of_status_is_a_correction_whatever_the_values(con):
    for provider, price in (("a", "2.00"), ("b", "3.00")):
        add_gpu_snapshot(con, provider, "2026-11-20T06:00:00", [("H100-SXM", price)])
    [f] = fix_date(con, [h100()], DAY, computed_at=at("2026-11-20T17:00"))
    assert f.status == SUPPRESSED
    add_gpu_snapshot(con, "c", "2026-11-20T07:00:00", [("H100-SXM", "4.00")])
    [f] = fix_date(con, [h100()], DAY, computed_at=at("2026-11-20T18:00"))
    assert (f.revision, f.status, f.value) == (2, FINAL, Decimal("3.0000"))


def test_a_new_methodology_version_never_rewrites_an_old_fixing(con):
    for provider, price in (("a", "2.00"), ("b", "3.00"), ("c", "4.00")):
        add_gpu_snapshot(con, provider, "2026-11-20T06:00:00", [("H100-SXM", price)])
    fix_date(con, [h100()], DAY, computed_at=at("2026-11-20T17:00"))
    # Version 1.1 asks for 4 providers: recomputed under it the date would be suppressed, but the fixing made
    # under 1.0 stays as it was (a methodology change gets a new version, never a revision of the past).
    [f] = fix_date(con, [h100(methodology_version="1.1", min_providers=4)], DAY, computed_at=at("2026-11-20T18:00"))
    assert (f.revision, f.written) == (1, False)
    assert "fixed under methodology 1.0" in f.note
    assert history(con)[0][:3] == (1, FINAL, Decimal("3.0000"))


def test_fixings_as_known_at_a_moment(con, warehouse, capsys):
    for provider, price in (("a", "2.00"), ("b", "3.00"), ("c", "4.00")):
        add_gpu_snapshot(con, provider, "2026-11-20T06:00:00", [("H100-SXM", price)])
    fix_date(con, [h100()], DAY, computed_at=at("2026-11-20T17:00"))
    publish_date(con, warehouse, DAY)
    add_gpu_snapshot(con, "d", "2026-11-20T07:00:00", [("H100-SXM", "5.00")])  # median (3 + 4) / 2 = 3.5
    fix_date(con, [h100()], DAY, computed_at=at("2026-11-21T09:00"))
    second = publish_date(con, warehouse, DAY)
    assert second.new and second.path.name == "fixings_2026-11-20_pub2.csv"
    con.close()

    def fixings(*extra):
        assert main(["--warehouse", str(warehouse.root), "fixings", *extra]) == 0
        out = capsys.readouterr().out
        return [line.split()[:5] for line in out.splitlines() if line.startswith("2026-11-20")]

    assert fixings("--as-of", "2026-11-20T16:59:59Z") == []
    assert fixings("--as-of", "2026-11-20T17:00:00Z") == [["2026-11-20", "T-H100", "1", "final", "3.0000"]]
    assert fixings("--as-of", "2026-11-21T08:59:00Z") == [["2026-11-20", "T-H100", "1", "final", "3.0000"]]
    assert fixings("--as-of", "2026-11-21T09:00:00Z") == [["2026-11-20", "T-H100", "2", "final", "3.5000"]]
    assert fixings() == [["2026-11-20", "T-H100", "2", "final", "3.5000"]]

    assert main(["--warehouse", str(warehouse.root), "explain", "T-H100", "2026-11-20", "--as-of",
                 "2026-11-20T18:00:00Z"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("T-H100 on 2026-11-20: 3.0000 USD/GPU-hour (final, revision 1 of 2)")
    assert main(["--warehouse", str(warehouse.root), "explain", "T-H100", "2026-11-20"]) == 0
    out = capsys.readouterr().out
    assert "(final, revision 2 of 2)" in out and "revised       correction before the cutoff" in out
    assert "    1  2026-11-20T17:00:00Z  final 3.0000" in out
