"""Published CSVs: fixed bytes, safe in a spreadsheet, never overwritten."""
from __future__ import annotations

import hashlib
from datetime import date
from decimal import Decimal

from pipeline.fixing import fix_date
from pipeline.publish import publish_date, safe_cell

from conftest import add_gpu_snapshot
from test_fixing import BEFORE_CUTOFF, DAY, h100


def test_formula_cells_are_defused():
    assert safe_cell("=HYPERLINK(\"http://x\")") == "'=HYPERLINK(\"http://x\")"
    assert safe_cell("+1") == "'+1"
    assert safe_cell("@SUM(A1)") == "'@SUM(A1)"
    assert safe_cell("-2+3") == "'-2+3"
    assert safe_cell("H100-SXM") == "H100-SXM"
    assert safe_cell(Decimal("1E-7")) == "0.0000001"  # never exponent notation
    assert safe_cell(None) == ""


def test_publication_is_deterministic_recorded_and_never_overwritten(con, warehouse):
    for provider, price in (("a", "2.00"), ("b", "3.00"), ("c", "4.00")):
        add_gpu_snapshot(con, provider, "2026-11-20T06:00:00", [("H100-SXM", price)])
    fix_date(con, [h100()], DAY, computed_at=BEFORE_CUTOFF)
    first = publish_date(con, warehouse, DAY)
    body = first.path.read_bytes()
    lines = body.decode().splitlines()
    assert lines[0].startswith("fixing_date,index_id,revision,status,usd_per_gpu_hour,usd_per_mtok,")
    assert lines[1].startswith("2026-11-20,T-H100,1,final,3.0000,,3,3,")
    assert first.sha256 == hashlib.sha256(body).hexdigest()
    assert first.path.with_name(first.path.name + ".sha256").read_text().startswith(first.sha256)
    again = publish_date(con, warehouse, DAY)
    assert (again.new, again.path, again.path.read_bytes()) == (False, first.path, body)
    # A later revision of the day goes to a new file; the first stays as it was.
    add_gpu_snapshot(con, "d", "2026-11-20T07:00:00", [("H100-SXM", "5.00")])
    fix_date(con, [h100()], DAY, computed_at=BEFORE_CUTOFF)
    revised = publish_date(con, warehouse, DAY)
    assert revised.new and revised.path != first.path
    assert first.path.read_bytes() == body
    assert "3.5000" in revised.path.read_text()
    assert con.execute("select count(*) from publications").fetchall() == [(2,)]


def test_nothing_to_publish_gives_no_file(con, warehouse):
    assert publish_date(con, warehouse, date(2020, 1, 1)) is None


def test_widened_and_carried_fixings_publish_the_window_their_value_rests_on(con, warehouse):
    # Three providers on 11-16 only, no wider window: 11-17 carries 11-16's value, and its row says so through
    # the status and 11-16's window (the v1 file keeps its columns; tsi explain names the date carried from).
    from datetime import datetime, timezone

    for provider, price in (("a", "2.00"), ("b", "3.00"), ("c", "4.00")):
        add_gpu_snapshot(con, provider, "2026-11-16T06:00:00", [("H100-SXM", price)])
    definition = h100(fallback_window_hours=())
    fix_date(con, [definition], date(2026, 11, 17), computed_at=datetime(2026, 11, 17, 17, tzinfo=timezone.utc))
    body = publish_date(con, warehouse, date(2026, 11, 17)).path.read_text().splitlines()[1]
    assert body.startswith("2026-11-17,T-H100,1,carried,3.0000,,3,3,")
    assert ",2026-11-15T16:00:00Z,2026-11-16T16:00:00Z," in body
