"""`tsi verify` recomputes every published fixing from the raw store alone; `tsi explain` shows what one rests
on. Both on a warehouse built from the demo recordings (tests/demo_warehouse.py)."""
from __future__ import annotations

import gzip
import shutil
from decimal import Decimal

import pytest

from pipeline.cli import main
from pipeline.paths import Warehouse
from pipeline.warehouse import connect

import demo_warehouse


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Warehouse:
    return demo_warehouse.fresh_copy(tmp_path_factory)


@pytest.fixture
def demo_copy(demo, tmp_path) -> Warehouse:
    shutil.copytree(demo.root, tmp_path / "copy")
    return Warehouse(tmp_path / "copy")


def run(capsys, warehouse, *argv):
    code = main(["--warehouse", str(warehouse.root), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_every_demo_date_verifies_from_the_raw_store(demo, capsys):
    first, last = demo_warehouse.DEMO_DATES[0].isoformat(), demo_warehouse.DEMO_DATES[-1].isoformat()
    code, out, _ = run(capsys, demo, "verify", "--from", first, "--to", last)
    assert code == 0, out
    assert out.strip().splitlines()[-1].endswith(": every field matches")
    con = connect(demo, read_only=True)
    published = con.execute("select count(*) from fixings").fetchall()[0][0]
    con.close()
    assert f"verified {published} fixing(s) of {first} to {last}" in out
    # A date alone too: its wider windows and carries look back at dates the range above also held.
    assert run(capsys, demo, "verify", "--date", "2026-11-18")[0] == 0


def test_explain_shows_what_the_h100_fixing_rests_on(demo, capsys):
    code, out, _ = run(capsys, demo, "explain", "TSI-H100-SXM-OD", "2026-11-20")
    assert code == 0
    # Worked by hand in tests/test_daily_flow.py from the 2026-11-20 recordings: eleven specialist providers,
    # median 2.745, MAD 0.345; paperspace (z 6.27) and do (z 7.81) are dropped (beyond 3.5). The nine left,
    # 1.49 1.99 2.40 2.49 2.5708 2.745 2.90 2.95 3.14: median 2.5708. Their rows: verda 2, runpod 4, fluidstack
    # 1, lambda 4, nebius 2, hyperstack 2, cudo 3, hyperbolic 3, primeintellect 2 = 23 observations.
    assert out.startswith("TSI-H100-SXM-OD on 2026-11-20: 2.5708 USD/GPU-hour (final, revision 1 of 1)")
    assert "method        median of 9 provider values" in out
    assert "providers     9 included of 11 considered; 23 observations" in out
    for provider, value in (("verda", "1.99"), ("runpod", "2.49"), ("fluidstack", "2.9"), ("lambda", "3.14"),
                            ("paperspace", "5.95"), ("do", "6.74"), ("nebius", "2.95"), ("hyperstack", "2.4"),
                            ("cudo", "2.5708"), ("hyperbolic", "1.49"), ("primeintellect", "2.745")):
        assert any(line.split()[:2] == [provider, value] for line in out.splitlines()), provider


def test_a_tampered_fixing_is_reported_and_fails(demo_copy, capsys):
    con = connect(demo_copy)
    con.execute(
        "insert into fixings select * replace (revision + 1 as revision, usd_per_gpu_hour + 0.1 as usd_per_gpu_hour,"
        " 'tampered' as revision_reason) from fixings where index_id = 'TSI-H100-SXM-OD' and fixing_date = date '2026-11-20'"
    )
    con.execute(
        "insert into fixing_constituents select * replace (revision + 1 as revision) from fixing_constituents"
        " where index_id = 'TSI-H100-SXM-OD' and fixing_date = date '2026-11-20'"
    )
    con.close()
    code, out, _ = run(capsys, demo_copy, "verify", "--date", "2026-11-20")
    assert code == 1
    assert "2026-11-20 TSI-H100-SXM-OD value: published 2.6708, recomputed 2.5708" in out
    assert out.strip().splitlines()[-1].endswith("1 difference(s)")


def test_a_tampered_raw_body_is_reported_and_its_fixings_differ(demo_copy, capsys):
    con = connect(demo_copy, read_only=True)
    sha256, snapshot_id = con.execute(
        "select sha256, snapshot_id from raw_snapshots where source = 'skypilot' and provider = 'lambda'"
        " and fetched_at = timestamp '2026-11-20 06:00'"
    ).fetchall()[0]
    con.close()
    path = demo_copy.root / f"raw/{sha256[:2]}/{sha256[2:4]}/{sha256}.gz"
    path.write_bytes(gzip.compress(b"InstanceType,AcceleratorName\n"))
    code, out, _ = run(capsys, demo_copy, "verify", "--date", "2026-11-20")
    assert code == 1
    assert f"snapshot {snapshot_id[:12]}: raw body at" in out
    # Without Lambda's rows: the eight providers of tests/test_poisoned_day.py's day without Lambda's catalog
    # (paperspace and do screened out of ten), median (2.49 + 2.5708) / 2 = 2.5304.
    assert "TSI-H100-SXM-OD n_providers: published 9, recomputed 8" in out
    assert "2026-11-20 TSI-H100-SXM-OD value: published 2.5708, recomputed 2.5304" in out


def test_a_corrupt_gzip_in_the_raw_store_is_named_and_the_rest_verified(demo_copy, capsys):
    # Two bodies broken two ways (bytes flipped inside the compressed stream: the CRC fails; and a file cut in
    # half): each is reported by snapshot and path, the other dates still verify, and the exit status is 1.
    # The bodies chosen were fetched on 2026-11-20 only (the store keeps one file for a body fetched on several
    # days), so only that date's fixings can differ.
    con = connect(demo_copy, read_only=True)
    broken = con.execute(
        "select any_value(snapshot_id), sha256 from raw_snapshots group by sha256 "
        "having min(fetched_at)::date = date '2026-11-20' and count(*) = 1 order by sha256 limit 2"
    ).fetchall()
    con.close()
    assert len(broken) == 2
    for (snapshot_id, sha256), damage in zip(broken, ("flip", "cut")):
        path = demo_copy.root / f"raw/{sha256[:2]}/{sha256[2:4]}/{sha256}.gz"
        data = bytearray(path.read_bytes())
        if damage == "flip":
            data[len(data) // 2] ^= 0xFF
            data[len(data) // 2 + 1] ^= 0xFF
        else:
            del data[len(data) // 2:]
        path.write_bytes(bytes(data))
    code, out, err = run(capsys, demo_copy, "verify", "--from", "2026-11-16", "--to", "2026-11-20")
    assert code == 1 and "Traceback" not in out + err
    for snapshot_id, sha256 in broken:
        line = next(l for l in out.splitlines() if l.startswith(f"snapshot {snapshot_id[:12]}: "))
        assert sha256 in line and "corrupt" in line
    # The other dates were verified: no difference is reported before 2026-11-20.
    differences = [l for l in out.splitlines() if l[:10].count("-") == 2 and l[:4] == "2026"]
    assert differences and all(l.startswith("2026-11-20") for l in differences)
    assert "2 unreadable raw bodies" in out.strip().splitlines()[-1]


@pytest.mark.parametrize("command", [["fixings"], ["explain", "TSI-H100-SXM-OD", "2026-11-20"],
                                     ["verify", "--date", "2026-11-20"], ["runs"], ["sources", "--unknown"],
                                     # commands that run Prefect flows check the warehouse before Prefect starts,
                                     # so that the failure is not a flow run's traceback in Prefect's log
                                     ["backfill", "--from", "2026-11-20", "--to", "2026-11-20"],
                                     ["daily", "--date", "2026-11-20"], ["demo"]])
@pytest.mark.parametrize("damage", ["random", "truncated", "empty"])
def test_a_damaged_warehouse_file_gets_one_line_naming_it(demo, tmp_path, capsys, command, damage):
    copy = Warehouse(tmp_path / "damaged")
    shutil.copytree(demo.root, copy.root)
    db = copy.db_path
    if damage == "random":
        db.write_bytes(bytes(range(256)) * 80)
    elif damage == "truncated":
        db.write_bytes(db.read_bytes()[: 5000])
    else:
        db.write_bytes(b"")
    code, out, err = run(capsys, copy, *command)
    assert code == 2, (out, err)
    assert "Traceback" not in out + err
    assert len(err.strip().splitlines()) == 1 and str(db) in err


def test_a_reader_during_a_run_is_told_the_warehouse_is_busy(demo_copy, capsys):
    """While another process writes (a collection holds the file), a reader gets one line, not DuckDB's lock
    traceback."""
    import subprocess
    import sys

    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('holding', flush=True); time.sleep(60)", str(demo_copy.db_path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        code, out, err = run(capsys, demo_copy, "fixings")
        assert code == 2 and "Traceback" not in out + err
        assert "being written by another process" in err and str(demo_copy.db_path) in err
    finally:
        holder.kill()
        holder.wait()


def test_verify_needs_published_fixings(demo, capsys):
    # verify with no date (every published date) is tested in test_verify_all.py
    code, _, err = run(capsys, demo, "verify", "--date", "2020-01-01")
    assert code == 2 and "no fixings published for 2020-01-01" in err
    code, _, err = run(capsys, demo, "explain", "TSI-NOPE", "2026-11-20")
    assert code == 2 and "no fixing of TSI-NOPE on 2026-11-20" in err


def test_the_demo_exercises_the_ladder_and_the_basket(demo):
    # 2026-11-18: OpenRouter answered 429 for qwen-2.5-72b (see the recordings), so its indices widen to the
    # 72-hour window and fix on 11-17's collection; the open-weight majors basket is then widened too.
    con = connect(demo, read_only=True)
    rows = dict(con.execute(
        "select index_id, status from fixings where fixing_date = date '2026-11-18'"
        " and index_id in ('TSI-QWEN-2.5-72B-IN', 'TSI-OPEN-MAJORS-IN', 'TSI-LLAMA-3.3-70B-IN')"
    ).fetchall())
    basket = con.execute(
        "select usd_per_mtok, n_providers from fixings where index_id = 'TSI-OPEN-MAJORS-IN' and fixing_date = date '2026-11-18'"
    ).fetchall()
    members = con.execute(
        "select sum(usd_per_mtok), count(*) from fixings where fixing_date = date '2026-11-18' and index_id in"
        " ('TSI-QWEN-2.5-72B-IN', 'TSI-LLAMA-3.3-70B-IN', 'TSI-DEEPSEEK-V3-0324-IN', 'TSI-GPT-OSS-120B-IN')"
    ).fetchall()
    con.close()
    assert rows == {"TSI-QWEN-2.5-72B-IN": "widened", "TSI-OPEN-MAJORS-IN": "widened", "TSI-LLAMA-3.3-70B-IN": "final"}
    total, n = members[0]
    assert basket == [((total / n).quantize(Decimal("0.0001")), 4)]


LAMBDA_URL = "https://raw.githubusercontent.com/skypilot-org/skypilot-catalog/master/catalogs/v7/lambda/vms.csv"


def load_late_lambda_body(warehouse: Warehouse, h100_sxm_price: str) -> None:
    """A later Lambda catalog of 2026-11-20 (fetched 07:00, after the recorded 06:00 one, so Lambda's latest
    collection of the window) holding one H100 SXM row, loaded and fixed again before the cutoff."""
    from datetime import date, datetime, timezone

    from pipeline import fixing, load
    from pipeline.collect import store_fetched
    from pipeline.definitions import load_definitions
    from pipeline.http import FetchedBody
    from pipeline.rawstore import RawStore
    from pipeline.sources import FetchRequest

    body = ("InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,Region,GpuInfo,SpotPrice\n"
            f"gpu_1x_h100_sxm5,H100,1.0,26.0,225.0,{h100_sxm_price},us-east-1,,\n").encode()
    con = connect(warehouse)
    store = RawStore(warehouse.root)
    fetched = FetchedBody(LAMBDA_URL, 200, "text/csv", body, datetime(2026, 11, 20, 7, tzinfo=timezone.utc))
    store_fetched(con, store, FetchRequest("skypilot", LAMBDA_URL, "lambda"), fetched)
    load.parse_pending(con, store)
    fixing.fix_date(con, load_definitions(), date(2026, 11, 20), computed_at=datetime(2026, 11, 20, 18, tzinfo=timezone.utc))
    con.close()


def h100_revisions(warehouse: Warehouse) -> list[tuple]:
    con = connect(warehouse, read_only=True)
    rows = con.execute("select revision, usd_per_gpu_hour from fixings where index_id = 'TSI-H100-SXM-OD'"
                       " and fixing_date = date '2026-11-20' order by revision").fetchall()
    con.close()
    return rows


def test_a_correction_too_small_to_revise_still_verifies(demo_copy, capsys):
    # Lambda 3.14 -> 2.569 (its later body has one row). Eleven providers 1.49 1.99 2.40 2.49 2.569 2.5708
    # 2.745 2.90 2.95 5.95 6.74: median 2.5708; |p - m| = 1.0808 0.5808 0.1708 0.0808 0.0018 0 0.1742 0.3292
    # 0.3792 3.3792 4.1692 -> MAD 0.3292, dropped beyond 3.5 x 0.3292 / 0.6745 = 1.7082: paperspace and do.
    # The nine left: median (the 5th) 2.569, -0.07% of 2.5708: within 0.1%, not revised. The published 2.5708
    # rests on the bodies loaded when it was computed; verify must not count the later one.
    load_late_lambda_body(demo_copy, "2.569")
    assert h100_revisions(demo_copy) == [(1, Decimal("2.5708"))]
    code, out, _ = run(capsys, demo_copy, "verify", "--date", "2026-11-20")
    assert code == 0, out


def test_a_revised_fixing_verifies_from_the_bodies_it_saw(demo_copy, capsys):
    # Lambda 3.14 -> 2.20. Eleven providers 1.49 1.99 2.20 2.40 2.49 2.5708 2.745 2.90 2.95 5.95 6.74: median
    # 2.5708; |p - m| = 1.0808 0.5808 0.3708 0.1708 0.0808 0 0.1742 0.3292 0.3792 3.3792 4.1692 -> MAD 0.3708,
    # dropped beyond 3.5 x 0.3708 / 0.6745 = 1.9241: paperspace and do. The nine left 1.49 1.99 2.20 2.40 2.49
    # 2.5708 2.745 2.90 2.95: median 2.49, -3.1%: revision 2, recomputed with the new body.
    load_late_lambda_body(demo_copy, "2.20")
    assert h100_revisions(demo_copy) == [(1, Decimal("2.5708")), (2, Decimal("2.4900"))]
    code, out, _ = run(capsys, demo_copy, "verify", "--date", "2026-11-20")
    assert code == 0, out
