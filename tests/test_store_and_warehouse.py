"""Raw store, migrations, snapshot recording and idempotent loading."""
from __future__ import annotations

import gzip
from datetime import date, datetime, timezone
from decimal import Decimal

import duckdb
import httpx
import pyarrow as pa
import pytest

from pipeline.collect import record_failure, store_fetched
from pipeline.http import FetchedBody, FetchError, fetch_body, make_client
from pipeline.rawstore import RawStore, RawStoreError, sha256_hex
from pipeline.sources import FetchRequest
from pipeline.warehouse import MigrationError, connect, migrate, registered

from conftest import add_gpu_snapshot

WHEN = datetime(2026, 11, 20, 6, 0, tzinfo=timezone.utc)


def test_raw_store_is_content_addressed_compressed_and_written_once(warehouse):
    store = RawStore(warehouse.root)
    body = b"InstanceType,Price\nx,1.00\n" * 100
    digest = store.put(body)
    assert digest == sha256_hex(body)
    path = store.path(digest)
    assert path.is_relative_to(warehouse.raw_dir)
    assert gzip.decompress(path.read_bytes()) == body
    assert len(path.read_bytes()) < len(body)  # compressed
    before = path.stat().st_mtime_ns
    assert store.put(body) == digest
    assert path.stat().st_mtime_ns == before  # not rewritten
    assert store.get(digest) == body


def test_raw_store_refuses_a_body_that_does_not_match_its_address(warehouse):
    store = RawStore(warehouse.root)
    digest = store.put(b"original")
    store.path(digest).write_bytes(gzip.compress(b"tampered"))
    with pytest.raises(RawStoreError, match="does not match"):
        store.get(digest)
    with pytest.raises(RawStoreError, match="missing"):
        store.get("0" * 64)


def test_migrations_apply_once_and_refuse_an_edited_migration(warehouse, tmp_path):
    con = connect(warehouse)
    assert migrate(con) == []  # connect() applied them; again is a no-op
    assert con.execute("select version from schema_migrations order by version").fetchall() == [(1,), (2,), (3,), (5,), (6,), (7,), (8,), (9,), (11,), (12,)]
    con.close()
    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "001_one.sql").write_text("create table t (a integer);")
    import duckdb

    db = duckdb.connect()
    assert migrate(db, folder) == [1]
    (folder / "001_one.sql").write_text("create table t (a bigint);")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(db, folder)


def test_a_failing_migration_leaves_nothing_behind(tmp_path):
    import duckdb

    folder = tmp_path / "migrations"
    folder.mkdir()
    (folder / "001_bad.sql").write_text("create table ok (a integer); create table broken (;")
    db = duckdb.connect()
    with pytest.raises(duckdb.Error):
        migrate(db, folder)
    assert db.execute("select count(*) from schema_migrations").fetchall() == [(0,)]
    assert "ok" not in {r[0] for r in db.execute("show tables").fetchall()}


def test_storing_the_same_fetch_twice_adds_one_snapshot(con, warehouse):
    store = RawStore(warehouse.root)
    request = FetchRequest("skypilot", "https://example.test/lambda/vms.csv", "lambda")
    fetched = FetchedBody(request.url, 200, "text/csv", b"a,b\n1,2\n", WHEN)
    first = store_fetched(con, store, request, fetched)
    again = store_fetched(con, store, request, fetched)
    assert first.snapshot_id == again.snapshot_id
    assert con.execute("select count(*), any_value(sha256) from raw_snapshots").fetchall() == [(1, first.sha256)]
    later = FetchedBody(request.url, 200, "text/csv", b"a,b\n1,2\n", WHEN.replace(hour=12))
    # The same body fetched later is a new observation of the same prices, stored once in the raw store.
    assert store_fetched(con, store, request, later).snapshot_id != first.snapshot_id
    assert len(list(warehouse.raw_dir.rglob("*.gz"))) == 1


def test_failed_fetches_are_recorded(con):
    request = FetchRequest("skypilot", "https://example.test/x.csv", "x")
    record_failure(con, request, FetchError(request.url, "HTTP 503", transient=True, status=503), WHEN)
    assert con.execute("select outcome, http_status, error like '%503%' from fetch_log").fetchall() == [
        ("failed", 503, True)
    ]


def test_loading_a_snapshot_twice_adds_no_rows(con):
    prices = [("H100-SXM", "2.99"), ("H100-SXM", "3.29")]
    add_gpu_snapshot(con, "lambda", "2026-11-20T06:00:00", prices)
    add_gpu_snapshot(con, "lambda", "2026-11-20T06:00:00", prices)
    assert con.execute("select count(*) from observations").fetchall() == [(2,)]
    assert con.execute("select typeof(usd_per_gpu_hour) from observations limit 1").fetchall() == [("DECIMAL(20,10)",)]


def test_fetch_caps_the_body_size_and_classifies_failures():
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/big":
            return httpx.Response(200, content=b"x" * 2048)
        if request.url.path == "/busy":
            return httpx.Response(429, headers={"Retry-After": "7"})
        if request.url.path == "/gone":
            return httpx.Response(404)
        assert request.headers["User-Agent"].startswith("token-spot-index/")
        return httpx.Response(200, content=b"ok", headers={"Content-Type": "text/plain"})

    with make_client(httpx.MockTransport(handler)) as client:
        assert fetch_body(client, "https://example.test/ok", clock=lambda: WHEN).body == b"ok"
        with pytest.raises(FetchError, match="cap") as big:
            fetch_body(client, "https://example.test/big", max_bytes=1024)
        assert not big.value.transient
        with pytest.raises(FetchError) as busy:
            fetch_body(client, "https://example.test/busy")
        assert busy.value.transient and busy.value.retry_after == 7.0
        with pytest.raises(FetchError) as gone:
            fetch_body(client, "https://example.test/gone")
        assert not gone.value.transient and gone.value.status == 404


def test_a_timeout_is_a_transient_fetch_error():
    def handler(request):
        raise httpx.ReadTimeout("slow", request=request)

    with make_client(httpx.MockTransport(handler)) as client:
        with pytest.raises(FetchError, match="timed out") as exc:
            fetch_body(client, "https://example.test/slow")
    assert exc.value.transient


def test_a_move_from_a_copy_older_than_two_days_is_flagged_and_one_beyond_31_days_is_not(con):
    """The jump check looks in the last two days first, then in the rest of its 31: a row last seen five days
    before is compared with that copy; one last seen 40 days before, with none."""
    old = add_gpu_snapshot(con, "lambda", "2026-11-01T06:00:00", [("H100-SXM", "2.00")])
    later = add_gpu_snapshot(con, "lambda", "2026-11-06T06:00:00", [("H100-SXM", "20.00")])
    add_gpu_snapshot(con, "runpod", "2026-10-01T06:00:00", [("H100-SXM", "1.00")])
    beyond = add_gpu_snapshot(con, "runpod", "2026-11-10T06:00:00", [("H100-SXM", "30.00")])  # x30, 40 days on
    flags = dict(con.execute("select snapshot_id, detail from observation_flags").fetchall())
    assert flags == {later: f"price 20.0000000000 vs 2.0000000000 in snapshot {old}"}
    assert beyond not in flags


def test_two_earlier_copies_fetched_at_the_same_time_are_told_apart_by_snapshot_id(con):
    """The newest earlier copy is the last by (fetch time, snapshot id): of two fetched at the same second the
    one with the greater id, whichever was loaded first."""
    copies = {add_gpu_snapshot(con, "lambda", "2026-11-18T06:00:00", [("H100-SXM", price)]): price
              for price in ("3.00", "2.00")}
    newest = max(copies)
    later = add_gpu_snapshot(con, "lambda", "2026-11-19T06:00:00", [("H100-SXM", "30.00")])  # x10 and x15
    [(detail,)] = con.execute("select detail from observation_flags where snapshot_id = $s", {"s": later}).fetchall()
    assert detail == f"price 30.0000000000 vs {Decimal(copies[newest]):.10f} in snapshot {newest}"


def test_a_tenfold_move_from_the_previous_snapshot_is_flagged_not_refused(con):
    add_gpu_snapshot(con, "lambda", "2026-11-18T06:00:00", [("H100-SXM", "2.00")])
    jumped = add_gpu_snapshot(con, "lambda", "2026-11-19T06:00:00", [("H100-SXM", "20.00")])  # x10: flagged
    calm = add_gpu_snapshot(con, "lambda", "2026-11-20T06:00:00", [("H100-SXM", "19.00")])  # /1.05: not
    dropped = add_gpu_snapshot(con, "lambda", "2026-11-21T06:00:00", [("H100-SXM", "1.90")])  # /10: flagged
    flags = con.execute("select snapshot_id, flag from observation_flags order by snapshot_id").fetchall()
    assert sorted(flags) == sorted([(jumped, "jump_vs_previous"), (dropped, "jump_vs_previous")])
    assert calm not in {f[0] for f in flags}
    [(detail,)] = con.execute("select detail from observation_flags where snapshot_id = $s", {"s": dropped}).fetchall()
    assert detail == f"price 1.9000000000 vs 19.0000000000 in snapshot {calm}"  # the newest earlier row, not the first
    assert con.execute("select count(*) from observations").fetchall() == [(4,)]  # flagged rows are kept


def test_parsed_observations_carry_their_providers_segment():
    from pathlib import Path

    from pipeline.normalise import parse_body
    from pipeline.records import ParseContext
    from pipeline.sources import skypilot

    body = (Path(__file__).parent / "fixtures" / "skypilot" / "lambda_vms.csv").read_bytes()
    result = parse_body(skypilot, body, ParseContext("skypilot", WHEN, provider="lambda"))
    assert {o.segment for o in result.observations} == {"specialist"}
    unknown = parse_body(skypilot, body, ParseContext("skypilot", WHEN, provider="newcloud"))
    assert {o.segment for o in unknown.observations} == {None}


def test_a_warehouse_from_before_the_digests_gets_them_when_migrated(tmp_path):
    # Observations loaded before migration 007 are digested by it, so their fixings keep working.
    import shutil

    import duckdb

    from pipeline.definitions import IndexDefinition
    from pipeline.fixing import compute_fixings
    from pipeline.paths import MIGRATIONS_DIR

    older = tmp_path / "older"
    older.mkdir()
    for path in sorted(MIGRATIONS_DIR.glob("00[1-6]_*.sql")):
        shutil.copy(path, older / path.name)
    db = duckdb.connect()
    migrate(db, older)
    for provider, price in (("a", "2.00"), ("b", "3.00"), ("c", "4.00")):
        db.execute(
            "insert into observations (snapshot_id, row_key, source, provider, instrument_kind, instrument, "
            "source_instrument, price_type, original_price, original_currency, original_unit, usd_per_gpu_hour, "
            "observed_at, segment) values ($s, 'k', 'skypilot', $p, 'gpu', 'H100-SXM', 'H100', 'on_demand', $x, "
            "'USD', 'gpu_hour', $x, timestamp '2026-11-20 06:00:00', 'specialist')",
            {"s": f"body-{provider}", "p": provider, "x": price},
        )
    assert migrate(db) == [7, 8, 9, 11, 12]
    assert db.execute("select count(*), sum(n_rows) from observation_digests").fetchall() == [(3, 3)]
    index = IndexDefinition(id="T", name="t", methodology_version="1.0", instrument_kind="gpu",
                            instruments=("H100-SXM",), price_type="on_demand")
    [f] = compute_fixings(db, [index], date(2026, 11, 20))
    assert f.value == Decimal("3.0000")


def test_a_snapshot_of_a_source_no_longer_known_fails_alone(con, warehouse):
    """A raw snapshot whose source the code no longer has (removed, renamed) fails its own parse with the reason;
    the snapshots before and after it load: the loader's thread must not turn one unknown source into a stopped
    run. The known body is one Lambda catalog row: 8 x H100 SXM at 23.92 an hour."""
    from pipeline import load

    store = RawStore(warehouse.root)
    body = (b"InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,Region,GpuInfo,SpotPrice\n"
            b"gpu_8x_h100_sxm5,H100,8.0,208.0,1800.0,23.92,us-east-1,,\n")
    ids = []
    for minute, source in ((0, "skypilot"), (1, "retired_source"), (2, "skypilot")):
        request = FetchRequest(source, f"https://example.test/{minute}/vms.csv", "lambda")
        fetched = FetchedBody(request.url, 200, "text/csv", body, WHEN.replace(minute=minute))
        ids.append(store_fetched(con, store, request, fetched).snapshot_id)
    report = load.parse_pending(con, store)
    assert report.loaded == {ids[0]: (1, 0), ids[2]: (1, 0)}
    assert list(report.failed) == [ids[1]] and "unknown source 'retired_source'" in report.failed[ids[1]]
    rows = con.execute("select snapshot_id, outcome from snapshot_parses order by parsed_at").fetchall()
    assert sorted(rows) == sorted([(ids[0], "loaded"), (ids[1], "failed"), (ids[2], "loaded")])
    assert con.execute("select distinct usd_per_gpu_hour from observations").fetchall() == [(Decimal("2.99"),)]


def test_a_snapshot_parsed_again_replaces_its_rows_and_the_thread_setting_comes_back(con, warehouse):
    """A first load skips the deletes (nothing of a never-parsed snapshot is in the warehouse); a re-parse
    (load.parse_snapshots) must still replace: one Lambda row loaded twice is one observation and one digest,
    with two parse records. The loads run DuckDB on one thread; the database's own setting is restored."""
    from pipeline import load

    store = RawStore(warehouse.root)
    body = (b"InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,Region,GpuInfo,SpotPrice\n"
            b"gpu_8x_h100_sxm5,H100,8.0,208.0,1800.0,23.92,us-east-1,,\n")
    request = FetchRequest("skypilot", "https://example.test/vms.csv", "lambda")
    snapshot_id = store_fetched(con, store, request, FetchedBody(request.url, 200, "text/csv", body, WHEN)).snapshot_id
    con.execute("set threads = 2")
    # A row of another snapshot without its digest (as tsi fix --observations leaves them): a load digests its
    # own snapshot only, never the rest of the table.
    con.execute(
        "insert into observations (snapshot_id, row_key, source, provider, instrument_kind, instrument, "
        "source_instrument, price_type, original_price, original_currency, original_unit, usd_per_gpu_hour, "
        "observed_at) values ('stray', 'k', 'skypilot', 'lambda', 'gpu', 'H100-SXM', 'H100', 'on_demand', 2, "
        "'USD', 'gpu_hour', 2, $at)", {"at": WHEN.replace(tzinfo=None)})
    assert load.parse_pending(con, store).loaded == {snapshot_id: (1, 0)}
    assert load.parse_snapshots(con, store, [snapshot_id]).loaded == {snapshot_id: (1, 0)}
    assert con.execute("select count(*), min(usd_per_gpu_hour) from observations where snapshot_id = $s",
                       {"s": snapshot_id}).fetchall() == [(1, Decimal("2.99"))]
    assert con.execute("select snapshot_id, n_rows from observation_digests").fetchall() == [(snapshot_id, 1)]
    assert con.execute("select count(*) from snapshot_parses where outcome = 'loaded'").fetchone() == (2,)
    assert con.execute("select current_setting('threads')").fetchone() == (2,)


def test_the_writer_writes_row_groups_of_its_own_size_and_a_cursor_stays_on_its_database(warehouse):
    from pipeline.warehouse import ROW_GROUP_ROWS, cursor
    import duckdb

    con = connect(warehouse)
    rows = 2 * ROW_GROUP_ROWS + 1000  # two full row groups and part of a third; DuckDB's default would make one
    con.execute("create table sized as select range as n from range(?)", [rows])
    con.execute("checkpoint")
    [(groups, largest)] = con.execute(
        "select count(distinct row_group_id), max(count) from pragma_storage_info('sized')").fetchall()
    assert (groups, largest) == (3, ROW_GROUP_ROWS)
    [(spills,)] = con.execute("select current_setting('temp_directory')").fetchall()
    assert spills == f"{warehouse.db_path}.tmp"  # beside the file, as for a database opened from its path
    other = cursor(con)  # the loading thread's connection: the same tables, not the in-memory database's
    assert other.execute("select count(*) from sized").fetchall() == [(rows,)]
    other.close()
    con.close()
    reopened = duckdb.connect(str(warehouse.db_path), read_only=True)  # a reader opens the file as it always did
    assert reopened.execute("select count(*) from sized").fetchall() == [(rows,)]
    reopened.close()
    scratch = duckdb.connect()  # verify's and what-if's scratch warehouses are in memory
    scratch.execute("create table here as select 1 as n")
    assert cursor(scratch).execute("select n from here").fetchall() == [(1,)]


def test_registered_tables_are_gone_after_the_block_even_when_it_fails():
    con = duckdb.connect()
    with registered(con, a=pa.table({"x": [1, 2]}), b=pa.table({"y": [3]})):
        # 1 + 2 from a, 3 from b
        assert con.execute("select (select sum(x) from a) + (select sum(y) from b)").fetchall() == [(6,)]
    with pytest.raises(ZeroDivisionError):
        with registered(con, a=pa.table({"x": [1]})):
            1 / 0
    # neither name survives either block
    for name in ("a", "b"):
        with pytest.raises(duckdb.CatalogException):
            con.execute(f"select * from {name}")
