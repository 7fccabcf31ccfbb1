"""`tsi verify` with no date: every published date (the dates of the publications table) recomputed from the raw
store, every published file checked against what was published (daily CSVs against the sha256 recorded, the
history files against the warehouse's fixings, every file against manifest.json). On a warehouse built from the
demo recordings (tests/demo_warehouse.py), copied before anything writes."""
from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys

import pytest

from pipeline import history
from pipeline.cli import main
from pipeline.paths import Warehouse
from pipeline.verify import check_history_files
from pipeline.warehouse import connect

import demo_warehouse

ALL_DATES = "5 published date(s), 2026-11-16 to 2026-11-20"


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Warehouse:
    return demo_warehouse.fresh_copy(tmp_path_factory)


@pytest.fixture(scope="module")
def with_history(demo, tmp_path_factory) -> Warehouse:
    """The demo with its history files and manifest written, as publish_flow leaves it (read-only below)."""
    warehouse = Warehouse(tmp_path_factory.mktemp("with_history") / "warehouse")
    shutil.copytree(demo.root, warehouse.root)
    con = connect(warehouse)
    history.publish_history(con, warehouse)
    con.close()
    return warehouse


@pytest.fixture
def copy(with_history, tmp_path) -> Warehouse:
    shutil.copytree(with_history.root, tmp_path / "copy")
    return Warehouse(tmp_path / "copy")


def run(capsys, warehouse, *argv):
    code = main(["--warehouse", str(warehouse.root), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def n_fixings(warehouse: Warehouse) -> int:
    con = connect(warehouse, read_only=True)
    try:
        return con.execute("select count(*) from fixings").fetchall()[0][0]
    finally:
        con.close()


def test_no_date_verifies_every_published_date_of_the_demo(demo, capsys):
    code, out, err = run(capsys, demo, "verify")
    assert code == 0, out + err
    # The demo computed every fixing once: 5 dates x 64 indices. Its files: the five daily CSVs (the demo here
    # was built without history files, as by a version before them: nothing else to check).
    assert n_fixings(demo) == 320
    assert out.strip().splitlines() == [
        f"verified 320 fixing(s) of {ALL_DATES} from 308 raw snapshot(s) and 5 published file(s): every field matches"]


def test_no_date_checks_the_history_files_and_the_manifest(with_history, capsys):
    code, out, _ = run(capsys, with_history, "verify")
    assert code == 0, out
    # 5 daily CSVs, 6 history files (2 families and the revisions log, CSV and Parquet) and the manifest.
    assert out.strip().endswith(
        f"of {ALL_DATES} from 308 raw snapshot(s) and 12 published file(s): every field matches")
    # A date still verifies as before (tests/test_verify.py has ranges): its own daily CSV only.
    code, out, _ = run(capsys, with_history, "verify", "--date", "2026-11-18")
    assert code == 0 and "verified 64 fixing(s) of 2026-11-18 from" in out and "and 1 published file(s)" in out


def test_tampered_published_files_are_caught(copy, capsys):
    folder = copy.published_dir
    # A published value changed in the daily CSV and in the history, a Parquet byte flipped, a sha256 of the
    # manifest changed and a path out of published/v1 added to it: each is named, once; the fixings (the
    # warehouse) all recompute. One run of verify for all of them: it recomputes every demo date each time.
    daily = folder / "fixings/fixings_2026-11-20.csv"
    gpu = folder / "history/fixings_gpu.csv"
    for path in (daily, gpu):
        text = path.read_text()
        assert ",TSI-H100-SXM-OD,1,final,2.5708," in text  # by hand in tests/test_verify.py
        path.write_text(text.replace(",TSI-H100-SXM-OD,1,final,2.5708,", ",TSI-H100-SXM-OD,1,final,2.6708,"))
    parquet = folder / "history/fixings_token.parquet"
    body = bytearray(parquet.read_bytes())
    body[len(body) // 2] ^= 0xFF
    parquet.write_bytes(bytes(body))
    manifest = json.loads((folder / "manifest.json").read_text())
    for entry in manifest["files"]:
        if entry["path"] == "fixings/fixings_2026-11-16.csv":
            entry["sha256"] = "0" * 64
    manifest["files"].append({"path": "../../tsi.duckdb", "sha256": "0" * 64, "bytes": 1})
    (folder / "manifest.json").write_text(json.dumps(manifest))
    code, out, _ = run(capsys, copy, "verify")
    assert code == 1
    problems = {line.split(":")[0].removeprefix("published file "): line for line in out.splitlines()
                if line.startswith("published file")}
    assert sorted(problems) == ["../../tsi.duckdb", "fixings/fixings_2026-11-16.csv", "fixings/fixings_2026-11-20.csv",
                                "history/fixings_gpu.csv", "history/fixings_token.parquet"]
    assert problems["fixings/fixings_2026-11-20.csv"] == (
        "published file fixings/fixings_2026-11-20.csv: has sha256 "
        f"{hashlib.sha256(daily.read_bytes()).hexdigest()[:12]}..., not the 06603723ad48... recorded "
        "when it was published; restore it (published files are never rewritten)")
    assert "does not hold what the warehouse's fixings give" in problems["history/fixings_gpu.csv"]
    assert "in manifest.json" in problems["fixings/fixings_2026-11-16.csv"]
    assert "not a path inside published/v1" in problems["../../tsi.duckdb"]
    assert out.strip().splitlines()[-1].endswith(": 5 published file(s) not as published")
    # The date alone finds its file too.
    code, out, _ = run(capsys, copy, "verify", "--date", "2026-11-20")
    assert code == 1 and out.startswith("published file fixings/fixings_2026-11-20.csv: has sha256")
    # A manifest that is no JSON at all (the files' check without the recomputation).
    (folder / "manifest.json").write_text("{not json")
    _, problems = check_history_files(copy)
    assert problems["manifest.json"].startswith("is not a readable manifest (JSONDecodeError")


def test_a_tampered_fixing_is_caught_and_only_published_dates_are_verified(copy, capsys):
    # One run of verify for both (it recomputes every date each time).
    con = connect(copy)
    con.execute(
        "insert into fixings select * replace (revision + 1 as revision, usd_per_gpu_hour + 0.1 as usd_per_gpu_hour,"
        " 'tampered' as revision_reason) from fixings"
        " where index_id = 'TSI-H100-SXM-OD' and fixing_date = date '2026-11-20'")
    con.execute(
        "insert into fixing_constituents select * replace (revision + 1 as revision) from fixing_constituents"
        " where index_id = 'TSI-H100-SXM-OD' and fixing_date = date '2026-11-20'")
    # 2026-11-18 fixed but (here) never published: none of its fixings is verified.
    con.execute("delete from publications where fixing_date = date '2026-11-18'")
    con.close()
    (copy.published_dir / "fixings/fixings_2026-11-18.csv").unlink()
    code, out, _ = run(capsys, copy, "verify")
    assert code == 1
    lines = out.strip().splitlines()
    # 4 dates x 64 fixings.
    assert "verified 256 fixing(s) of 4 published date(s), 2026-11-16 to 2026-11-20 from" in lines[-1]
    # 2.5708 by hand (tests/test_verify.py); the tampered revision says 2.6708. Nothing of 11-18 is compared.
    differences = [line for line in lines if line.startswith("2026-")]
    assert differences == ["2026-11-20 TSI-H100-SXM-OD value: published 2.6708, recomputed 2.5708"]
    # The history files published before both changes no longer hold what the warehouse gives (a newer
    # revision; a date no longer published), and the manifest lists the file removed.
    problems = {line.split(":")[0].removeprefix("published file "): line for line in lines
                if line.startswith("published file")}
    assert sorted(problems) == ["fixings/fixings_2026-11-18.csv"] + [
        f"history/{stem}.{ext}" for stem in ("fixings_gpu", "fixings_token", "revisions") for ext in ("csv", "parquet")]
    assert problems["fixings/fixings_2026-11-18.csv"].endswith(": listed in manifest.json but missing")
    assert all("does not hold what the warehouse's fixings give" in problems[p] for p in problems if "history/" in p)
    assert lines[-1].endswith("1 difference(s), 7 published file(s) not as published")


def test_nothing_published_is_one_line(demo, tmp_path, capsys):
    empty = Warehouse(tmp_path / "empty")
    connect(empty).close()
    code, out, err = run(capsys, empty, "verify")
    assert (code, out) == (2, "")
    assert err == f"tsi verify: nothing is published in {empty.root}: no date to verify (publish with tsi demo, " \
                  "tsi daily, tsi backfill or tsi import)\n"
    # Fixed but never published: still nothing to verify.
    unpublished = Warehouse(tmp_path / "unpublished")
    shutil.copytree(demo.root, unpublished.root)
    con = connect(unpublished)
    con.execute("delete from publications")
    con.close()
    code, _, err = run(capsys, unpublished, "verify")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "nothing is published" in err
    code, _, err = run(capsys, Warehouse(tmp_path / "absent"), "verify")
    assert code == 2 and err.startswith("tsi verify: no warehouse at ")
    code, _, err = run(capsys, demo, "verify", "--to", "2026-11-20")
    assert code == 2 and err == "tsi verify: --to needs --from\n"


def test_a_damaged_or_busy_warehouse_is_one_line(demo, tmp_path, capsys):
    damaged = Warehouse(tmp_path / "damaged")
    shutil.copytree(demo.root, damaged.root)
    damaged.db_path.write_bytes(damaged.db_path.read_bytes()[:5000])
    code, out, err = run(capsys, damaged, "verify")
    assert code == 2 and "Traceback" not in out + err
    assert len(err.strip().splitlines()) == 1 and str(damaged.db_path) in err

    busy = Warehouse(tmp_path / "busy")
    shutil.copytree(demo.root, busy.root)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
         "print('holding', flush=True); time.sleep(60)", str(busy.db_path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "holding"
        code, out, err = run(capsys, busy, "verify")
        assert code == 2 and "Traceback" not in out + err
        assert "being written by another process" in err and str(busy.db_path) in err
    finally:
        holder.kill()
        holder.wait()
