"""The cumulative history under published/v1/history/ (one CSV and one Parquet per index family), the revisions
log and manifest.json (pipeline/history.py), on a warehouse built from the demo recordings
(tests/demo_warehouse.py), each test on its own copy when it writes."""
from __future__ import annotations

import csv
import hashlib
import json
import shutil
from datetime import date, datetime, timezone
from decimal import Decimal

import duckdb
import pytest

from pipeline import cli, fixing, history, publish
from pipeline.definitions import load_definitions
from pipeline.load import load_result
from pipeline.paths import Warehouse
from pipeline.records import GPU, Observation, ParseContext, ParseResult
from pipeline.warehouse import connect

import demo_warehouse
from conftest import utc
from test_import import BODIES, H100, run_import, write_folder

DAY = date(2026, 11, 20)
VALUE_COLUMN = {"gpu": "usd_per_gpu_hour", "token": "usd_per_mtok"}
FIELDS = ("revision", "status", "n_providers", "n_observations", "p25_provider_value", "p75_provider_value",
          "min_provider_value", "max_provider_value", "methodology_version", "window_start", "window_end",
          "input_hash", "backfill")


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Warehouse:
    return demo_warehouse.fresh_copy(tmp_path_factory)


def copy_of(demo: Warehouse, folder) -> Warehouse:
    shutil.copytree(demo.root, folder)
    return Warehouse(folder)


def publish_history(warehouse: Warehouse):
    con = connect(warehouse)
    try:
        return history.publish_history(con, warehouse)
    finally:
        con.close()


@pytest.fixture(scope="module")
def published(demo, tmp_path_factory) -> Warehouse:
    """The demo with its history files written once (read-only for the tests below)."""
    warehouse = copy_of(demo, tmp_path_factory.mktemp("published") / "warehouse")
    publish_history(warehouse)
    return warehouse


def newest_fixings(warehouse: Warehouse) -> dict[str, dict[tuple, dict]]:
    """The reference, read straight from `fixings`: per family, (fixing_date, index_id) -> the newest revision.
    The family is the definition's instrument kind (a suppressed fixing has no value to tell it by)."""
    kinds = {d.id: d.instrument_kind for d in load_definitions()}
    con = connect(warehouse, read_only=True)
    try:
        relation = con.sql("select * from fixings f where revision = (select max(revision) from fixings g"
                           " where g.index_id = f.index_id and g.fixing_date = f.fixing_date)")
        rows = [dict(zip(relation.columns, row)) for row in relation.fetchall()]
    finally:
        con.close()
    out = {"gpu": {}, "token": {}}
    for row in rows:
        row["backfill"] = bool(row["backfill"])
        out[kinds[row["index_id"]]][(row["fixing_date"], row["index_id"])] = row
    return out


def add_lambda_list(con, observed_at: str, usd_per_gpu_hour: str) -> None:
    """One more Lambda H100 SXM list (a specialist cloud, from the SkyPilot catalog), one row."""
    ctx = ParseContext(source="skypilot", observed_at=utc(observed_at), provider="lambda",
                       snapshot_id=hashlib.sha256(f"lambda|{observed_at}".encode()).hexdigest())
    price = Decimal(usd_per_gpu_hour)
    load_result(con, ctx, ParseResult(observations=[Observation(
        row_key="H100-SXM|0", provider="lambda", instrument_kind=GPU, instrument="H100-SXM",
        source_instrument="H100", price_type="on_demand", original_price=price, original_currency="USD",
        original_unit="gpu_hour", usd_price=price, region="us-east-1", gpu_count=Decimal(1), segment="specialist",
    )]))


def read_csv(path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def as_decimal(cell: str) -> Decimal | None:
    return Decimal(cell) if cell != "" else None


def utc_text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_history_csv_holds_the_newest_revision_of_every_published_fixing(published):
    reference = newest_fixings(published)
    # 5 demo dates x 10 GPU indices and 5 x 54 token indices (pipeline/indices.toml), every date published.
    assert (len(reference["gpu"]), len(reference["token"])) == (50, 270)
    for kind, value_column in VALUE_COLUMN.items():
        rows = read_csv(published.published_dir / f"history/fixings_{kind}.csv")
        other = VALUE_COLUMN["token" if kind == "gpu" else "gpu"]
        assert list(rows[0]) == [c for c in publish.HEADER if c != other]
        keys = [(date.fromisoformat(r["fixing_date"]), r["index_id"]) for r in rows]
        assert keys == sorted(reference[kind]), "one row per (date, index), ordered by date then index"
        for row, key in zip(rows, keys):
            want = reference[kind][key]
            assert as_decimal(row[value_column]) == want[value_column], key
            assert int(row["revision"]) == want["revision"] and row["status"] == want["status"]
            assert int(row["n_providers"]) == want["n_providers"]
            assert int(row["n_observations"]) == want["n_observations"]
            for column in ("p25_provider_value", "p75_provider_value", "min_provider_value", "max_provider_value"):
                assert as_decimal(row[column]) == want[column], (key, column)
            assert row["window_start_utc"] == utc_text(want["window_start"])
            assert row["window_end_utc"] == utc_text(want["window_end"])
            assert (row["methodology_version"], row["input_hash"]) == (want["methodology_version"], want["input_hash"])
            assert row["backfill"] == ("true" if want["backfill"] else "false")
    # Worked by hand in tests/test_verify.py from the 2026-11-20 recordings: the median of nine specialist
    # providers, 2.5708 USD per GPU-hour.
    gpu = {(r["fixing_date"], r["index_id"]): r for r in read_csv(published.published_dir / "history/fixings_gpu.csv")}
    assert gpu[("2026-11-20", "TSI-H100-SXM-OD")]["usd_per_gpu_hour"] == "2.5708"


def test_history_parquet_has_the_same_rows_with_exact_types(published):
    reference = newest_fixings(published)
    con = duckdb.connect()
    try:
        for kind, value_column in VALUE_COLUMN.items():
            path = str(published.published_dir / f"history/fixings_{kind}.parquet")
            relation = con.sql("select * from read_parquet($path)", params={"path": path})
            types = dict(zip(relation.columns, (str(t) for t in relation.types)))
            assert types[value_column] == "DECIMAL(20,4)"  # the warehouse's scale, never a float
            assert all(types[c] == "DECIMAL(20,4)" for c in ("p25_provider_value", "max_provider_value"))
            assert (types["fixing_date"], types["window_start_utc"]) == ("DATE", "TIMESTAMP")
            assert types["backfill"] == "BOOLEAN"
            assert (types["revision"], types["index_id"]) == ("INTEGER", "VARCHAR")
            rows = [dict(zip(relation.columns, r)) for r in relation.fetchall()]
            assert [(r["fixing_date"], r["index_id"]) for r in rows] == sorted(reference[kind])
            for row in rows:
                want = reference[kind][(row["fixing_date"], row["index_id"])]
                assert row[value_column] == want[value_column]
                assert (row["window_start_utc"], row["window_end_utc"]) == (want["window_start"], want["window_end"])
                for name in FIELDS:
                    if name not in ("window_start", "window_end"):
                        assert row[name] == want[name], (row["index_id"], name)
            # The CSV beside it holds the same rows, cell for cell.
            csv_rows = read_csv(published.published_dir / f"history/fixings_{kind}.csv")
            assert len(csv_rows) == len(rows)
            for a, b in zip(csv_rows, rows):
                assert a["index_id"] == b["index_id"] and as_decimal(a[value_column]) == b[value_column]
    finally:
        con.close()


def test_the_revisions_log_lists_every_revision_with_types(published):
    con = connect(published, read_only=True)
    computed = {(r[0], r[1], r[2]): r[3:] for r in con.execute(
        "select fixing_date, index_id, revision, coalesce(usd_per_gpu_hour, usd_per_mtok), computed_at from fixings"
    ).fetchall()}
    con.close()
    rows = read_csv(published.published_dir / "history/revisions.csv")
    assert len(rows) == len(computed) == 320  # the demo computed each fixing once
    for row in rows:
        key = (date.fromisoformat(row["fixing_date"]), row["index_id"], int(row["revision"]))
        value, computed_at = computed[key]
        assert as_decimal(row["usd_per_gpu_hour"] or row["usd_per_mtok"]) == value
        # The demo fixes each day at 16:05 UTC (tests/demo_warehouse.py).
        assert row["computed_at_utc"] == f"{row['fixing_date']}T16:05:00Z" == utc_text(computed_at)
        assert row["previous_status"] == row["previous_usd_per_gpu_hour"] == row["revision_reason"] == ""
    relation = duckdb.connect().sql("select * from read_parquet($p)", params={
        "p": str(published.published_dir / "history/revisions.parquet")})
    types = dict(zip(relation.columns, (str(t) for t in relation.types)))
    assert types["previous_usd_per_mtok"] == types["usd_per_gpu_hour"] == "DECIMAL(20,4)"
    assert (types["computed_at_utc"], types["backfill"]) == ("TIMESTAMP", "BOOLEAN")
    assert len(relation.fetchall()) == 320


def test_the_manifest_lists_every_published_file_with_its_sha256(published):
    folder = published.published_dir
    text = (folder / "manifest.json").read_text()
    manifest = json.loads(text)
    assert text == json.dumps(manifest, sort_keys=True, indent=2) + "\n"  # sorted keys, a fixed layout
    assert manifest["schema_version"] == 1
    # The demo's last fixing, 2026-11-20 at 16:05 UTC: the only time in the file, taken from the data.
    assert manifest["newest_computed_at_utc"] == "2026-11-20T16:05:00Z"
    paths = [f["path"] for f in manifest["files"]]
    assert paths == sorted(paths)
    assert paths == [f"fixings/fixings_2026-11-{d}.csv" for d in range(16, 21)] + [
        f"history/{stem}.{ext}" for stem in ("fixings_gpu", "fixings_token", "revisions") for ext in ("csv", "parquet")]
    rows = {"fixings_gpu": 50, "fixings_token": 270, "revisions": 320}
    con = duckdb.connect()
    for entry in manifest["files"]:
        body = (folder / entry["path"]).read_bytes()
        assert entry["sha256"] == hashlib.sha256(body).hexdigest() and entry["bytes"] == len(body)
        if entry["path"].startswith("fixings/"):
            assert entry["rows"] == 64 and entry["kind"] == "daily_fixings"  # every index, every demo day
            assert [c["name"] for c in entry["schema"]] == list(publish.HEADER)
            # The .sha256 beside each daily CSV says the same hash.
            assert (folder / (entry["path"] + ".sha256")).read_text().split()[0] == entry["sha256"]
        else:
            stem = entry["path"].split("/")[1].split(".")[0]
            assert entry["rows"] == rows[stem], entry["path"]
        if entry["path"].endswith(".parquet"):
            relation = con.sql("select * from read_parquet($p)", params={"p": str(folder / entry["path"])})
            assert entry["schema"] == [{"name": n, "type": str(t)} for n, t in zip(relation.columns, relation.types)]
            csv_entry = next(e for e in manifest["files"] if e["path"] == entry["path"].replace(".parquet", ".csv"))
            assert csv_entry["schema"] == entry["schema"] and csv_entry["rows"] == entry["rows"]
    con.close()


def test_publishing_again_gives_the_same_bytes(demo, published, tmp_path):
    before = {p.relative_to(published.published_dir): p.read_bytes()
              for p in sorted(published.published_dir.rglob("*")) if p.is_file()}
    # A second warehouse from the same fixings, written in another run: the same bytes, Parquet included.
    other = copy_of(demo, tmp_path / "other")
    result = publish_history(other)
    assert result.files == 11 and "manifest.json" in result.written
    after = {p.relative_to(other.published_dir): p.read_bytes()
             for p in sorted(other.published_dir.rglob("*")) if p.is_file()}
    assert {str(k): hashlib.sha256(v).hexdigest() for k, v in after.items()} == {
        str(k): hashlib.sha256(v).hexdigest() for k, v in before.items()}
    # Again on the same warehouse: nothing changes, nothing is written.
    assert publish_history(other).written == []
    assert not list(other.published_dir.rglob(".tmp-*"))
    assert all((other.published_dir / path).stat().st_mode & 0o444 == 0o444 for path in after)  # readable by all


def test_a_new_revision_reaches_the_history_and_the_revisions_log(demo, tmp_path):
    warehouse = copy_of(demo, tmp_path / "revised")
    publish_history(warehouse)
    con = connect(warehouse)
    try:
        # Lambda's H100 SXM list, collected again at 07:00 at 2.00 (it was 3.14): its newest snapshot in the window.
        # Eleven provider values 1.49 1.99 2.00 2.40 2.49 2.5708 2.745 2.90 2.95 5.95 6.74: median 2.5708, MAD
        # 0.3792 (deviations 0 .0808 .1708 .1742 .3292 .3792 ...); the screen drops beyond 3.5 x 0.3792 / 0.6745 =
        # 1.9677: paperspace 5.95 and do 6.74. The nine left: 1.49 1.99 2.00 2.40 2.49 2.5708 2.745 2.90 2.95,
        # median 2.49: 3.1% below 2.5708, more than 0.1% before the cutoff (11-21 12:00): revision 2.
        add_lambda_list(con, "2026-11-20T07:00:00", "2.00")
        fixing.fix_date(con, load_definitions(), DAY, computed_at=datetime(2026, 11, 20, 18, tzinfo=timezone.utc))
        publication = publish.publish_date(con, warehouse, DAY)
        result = history.publish_history(con, warehouse)
    finally:
        con.close()
    assert publication.new and publication.path.name == "fixings_2026-11-20_pub2.csv"
    assert "history/fixings_gpu.csv" in result.written and "history/revisions.parquet" in result.written
    gpu = {(r["fixing_date"], r["index_id"]): r for r in read_csv(warehouse.published_dir / "history/fixings_gpu.csv")}
    h100 = gpu[("2026-11-20", "TSI-H100-SXM-OD")]
    assert (h100["revision"], h100["usd_per_gpu_hour"]) == ("2", "2.4900")
    assert gpu[("2026-11-19", "TSI-H100-SXM-OD")]["revision"] == "1"
    log = [r for r in read_csv(warehouse.published_dir / "history/revisions.csv")
           if (r["fixing_date"], r["index_id"]) == ("2026-11-20", "TSI-H100-SXM-OD")]
    assert [(r["revision"], r["usd_per_gpu_hour"], r["previous_usd_per_gpu_hour"], r["previous_status"]) for r in log] \
        == [("1", "2.5708", "", ""), ("2", "2.4900", "2.5708", "final")]
    assert log[1]["computed_at_utc"] == "2026-11-20T18:00:00Z"
    assert log[1]["revision_reason"].startswith(
        "correction before the cutoff 2026-11-21T12:00Z: final 2.5708 -> final 2.4900")
    parquet = duckdb.connect().sql(
        "select revision, usd_per_gpu_hour, previous_usd_per_gpu_hour from read_parquet($p)"
        " where index_id = 'TSI-H100-SXM-OD' and fixing_date = date '2026-11-20' order by revision",
        params={"p": str(warehouse.published_dir / "history/revisions.parquet")}).fetchall()
    assert parquet == [(1, Decimal("2.5708"), None), (2, Decimal("2.4900"), Decimal("2.5708"))]
    manifest = json.loads((warehouse.published_dir / "manifest.json").read_text())
    assert "fixings/fixings_2026-11-20_pub2.csv" in [f["path"] for f in manifest["files"]]
    assert manifest["newest_computed_at_utc"] == "2026-11-20T18:00:00Z"


def test_formula_characters_never_reach_a_cell_unprefixed(demo, tmp_path):
    warehouse = copy_of(demo, tmp_path / "hostile")
    hostile = '=HYPERLINK("http://evil.example","x")'
    con = connect(warehouse)
    con.execute("insert into index_definitions select * replace ($id as index_id) from index_definitions"
                " where index_id = 'TSI-H100-SXM-OD'", {"id": hostile})
    for revision, reason in ((1, None), (2, "@SUM(A1) -1+2")):
        con.execute("insert into fixings select * replace ($id as index_id, $revision as revision, $reason as"
                    " revision_reason) from fixings where index_id = 'TSI-H100-SXM-OD' and fixing_date = $day",
                    {"id": hostile, "revision": revision, "reason": reason, "day": DAY})
    # A status is one of five words (the table's check): a formula cannot get in that way at all.
    with pytest.raises(duckdb.ConstraintException):
        con.execute("insert into fixings select * replace ('=1+1' as status, 3 as revision) from fixings"
                    " where index_id = $id", {"id": hostile})
    con.close()
    publish_history(warehouse)
    for name in ("fixings_gpu.csv", "revisions.csv"):
        with (warehouse.published_dir / "history" / name).open(newline="") as handle:
            cells = [cell for row in csv.reader(handle) for cell in row]
        assert "'" + hostile in cells, name
        assert not [c for c in cells if c.startswith(publish.FORMULA_PREFIXES)], name
    revisions = read_csv(warehouse.published_dir / "history/revisions.csv")
    assert [r["revision_reason"] for r in revisions if r["index_id"] == "'" + hostile] == ["", "'@SUM(A1) -1+2"]
    # The Parquet keeps the value as it is (no spreadsheet opens it).
    ids = duckdb.connect().sql("select index_id from read_parquet($p) where index_id like '=%'", params={
        "p": str(warehouse.published_dir / "history/fixings_gpu.parquet")}).fetchall()
    assert ids == [(hostile,)]


def test_a_changed_published_file_stops_the_manifest(published, tmp_path):
    warehouse = copy_of(published, tmp_path / "tampered")
    daily = warehouse.published_dir / "fixings/fixings_2026-11-18.csv"
    daily.write_bytes(daily.read_bytes().replace(b",final,", b",final ,", 1))
    manifest = (warehouse.published_dir / "manifest.json").read_bytes()
    with pytest.raises(history.PublishedFileError, match="fixings_2026-11-18.csv has sha256 .* not the 030e2388ca59"):
        publish_history(warehouse)
    assert (warehouse.published_dir / "manifest.json").read_bytes() == manifest  # not rewritten over it
    daily.unlink()
    with pytest.raises(history.PublishedFileError, match="fixings_2026-11-18.csv is missing"):
        publish_history(warehouse)


def test_a_fixing_without_a_family_is_refused_not_dropped(demo, tmp_path):
    warehouse = copy_of(demo, tmp_path / "orphan")
    con = connect(warehouse)
    con.execute("delete from index_definitions where index_id = 'TSI-H100-SXM-OD'")
    con.close()
    with pytest.raises(ValueError, match=r"5 of kind unknown \(no definition\)"):
        publish_history(warehouse)


def test_nothing_published_writes_nothing(warehouse):
    assert publish_history(warehouse) is None
    assert list(warehouse.published_dir.rglob("*")) == []


def test_tsi_import_writes_the_history_once_and_again_identically(tmp_path, capsys):
    warehouse = Warehouse(tmp_path / "wh")
    folder = write_folder(tmp_path / "records", BODIES)
    status, out, err = run_import(capsys, warehouse, folder, "--valid-days", "3")
    assert status == 0, err
    # tests/test_import.py works these out: H100 SXM suppressed on 10-01 and 10-02 (two providers), 2.5000 on
    # 10-03 and 10-04 (median of 3.00, 2.00, 2.50), carried on 10-05 to 10-07, suppressed on 10-08; backfills.
    rows = [r for r in read_csv(warehouse.published_dir / "history/fixings_gpu.csv") if r["index_id"] == H100]
    assert [(r["fixing_date"], r["status"], r["usd_per_gpu_hour"]) for r in rows] == [
        ("2026-10-01", "suppressed", ""), ("2026-10-02", "suppressed", ""), ("2026-10-03", "final", "2.5000"),
        ("2026-10-04", "final", "2.5000"), ("2026-10-05", "carried", "2.5000"), ("2026-10-06", "carried", "2.5000"),
        ("2026-10-07", "carried", "2.5000"), ("2026-10-08", "suppressed", "")]
    assert {r["backfill"] for r in rows if r["status"] != "suppressed"} == {"true"}
    manifest = json.loads((warehouse.published_dir / "manifest.json").read_text())
    daily = [f["path"] for f in manifest["files"] if f["kind"] == "daily_fixings"]
    assert daily == [f"fixings/fixings_2026-10-0{d}.csv" for d in range(1, 9)]
    before = (warehouse.published_dir / "manifest.json").read_bytes()
    assert run_import(capsys, warehouse, folder, "--valid-days", "3")[0] == 0
    assert (warehouse.published_dir / "manifest.json").read_bytes() == before
    assert cli.main(["--warehouse", str(warehouse.root), "verify"]) == 0
    assert "of 8 published date(s), 2026-10-01 to 2026-10-08" in capsys.readouterr().out
