"""`tsi sql` (pipeline/sql_command.py): read statements on the warehouse in three formats; every write, in
any spelling, refused in one line before anything runs; file-reading functions refused by the connection."""
from __future__ import annotations

import hashlib
import io
import json
import sys
from decimal import Decimal

import duckdb
import pytest

from pipeline.cli import main
from pipeline.paths import Warehouse

import demo_warehouse

SECRET = "SECRET-TOKEN-4711"


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Warehouse:
    """Read-only for these tests: every statement that would write is refused, and the sha256 checks say so."""
    return demo_warehouse.fresh_copy(tmp_path_factory)


@pytest.fixture
def secret_files(tmp_path):
    """Files a query must not be able to read, and the places it must not be able to write."""
    (tmp_path / "secret.csv").write_text(f"token\n{SECRET}\n")
    (tmp_path / "secret.json").write_text(json.dumps([{"token": SECRET}]))
    other = duckdb.connect(str(tmp_path / "other.duckdb"))
    other.execute(f"create table t as select '{SECRET}' as token")
    other.close()
    return tmp_path


def sql(capsys, warehouse: Warehouse, query: str, *options: str) -> tuple[int, str, str]:
    code = main(["--warehouse", str(warehouse.root), "sql", query, *options])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def sha(warehouse: Warehouse) -> str:
    return hashlib.sha256(warehouse.db_path.read_bytes()).hexdigest()


FIXINGS = ("select index_id, fixing_date, revision, status, usd_per_gpu_hour, usd_per_mtok, n_providers "
           "from fixings order by index_id, fixing_date, revision")


def direct(warehouse: Warehouse, query: str) -> list[tuple]:
    con = duckdb.connect(str(warehouse.db_path), read_only=True)
    try:
        return con.execute(query).fetchall()
    finally:
        con.close()


def test_csv_and_json_give_the_fixings_a_direct_query_gives(demo, capsys):
    rows = direct(demo, FIXINGS)
    assert len(rows) > 100  # the demo: five days of every index

    code, out, err = sql(capsys, demo, FIXINGS, "--format", "csv")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "index_id,fixing_date,revision,status,usd_per_gpu_hour,usd_per_mtok,n_providers"
    expected = [",".join("" if v is None else format(v, "f") if isinstance(v, Decimal) else str(v) for v in row)
                for row in rows]
    assert lines[1:] == expected

    code, out, err = sql(capsys, demo, FIXINGS, "--format", "json")
    assert code == 0 and err == ""
    objects = json.loads(out)
    assert len(objects) == len(rows)
    for obj, (index_id, day, revision, status, gpu, token, n) in zip(objects, rows):
        assert obj == {"index_id": index_id, "fixing_date": day.isoformat(), "revision": revision, "status": status,
                       "usd_per_gpu_hour": None if gpu is None else format(gpu, "f"),
                       "usd_per_mtok": None if token is None else format(token, "f"), "n_providers": n}


def test_the_table_is_aligned_under_its_header(demo, capsys):
    query = ("select index_id, usd_per_gpu_hour from fixings where index_id = 'TSI-RTX4090-OD' "
             "order by fixing_date limit 2")
    [(name, first), (_, second)] = direct(demo, query)
    code, out, err = sql(capsys, demo, query)
    assert code == 0 and err == ""
    width = len("TSI-RTX4090-OD")
    assert out.splitlines() == [
        "index_id".ljust(width) + "  usd_per_gpu_hour",
        "-" * width + "  " + "-" * len("usd_per_gpu_hour"),
        f"{name}  {format(first, 'f'):>16}",  # numbers to the right
        f"{name}  {format(second, 'f'):>16}",
        "(2 rows)",
    ]


def test_values_keep_their_exact_text_in_every_format(demo, capsys):
    # Worked by hand: 1.10 + 2.20 is exactly 3.30 as DECIMAL(10, 2) (a float would give 3.3000000000000003);
    # 0.1 + 0.2 as DOUBLE is the float 0.30000000000000004; TIMESTAMP has no zone (UTC in this warehouse).
    query = ("select 1.10::decimal(10,2) + 2.20::decimal(10,2) as usd_per_mtok, 0.1::double + 0.2::double as f, "
             "date '2026-11-20' as d, timestamp '2026-11-20 16:00:00.5' as t, null as n, 'x' as s, true as b, "
             "12345678901234567890::hugeint as big, -2.5::decimal(4,1) as neg")
    code, out, err = sql(capsys, demo, query, "--format", "json")
    assert code == 0 and err == ""
    assert out == ('[\n{"usd_per_mtok": "3.30", "f": 0.30000000000000004, "d": "2026-11-20", '
                   '"t": "2026-11-20T16:00:00.500000", "n": null, "s": "x", "b": true, '
                   '"big": 12345678901234567890, "neg": "-2.5"}\n]\n')
    code, out, err = sql(capsys, demo, query, "--format", "csv")
    assert code == 0
    assert out == ("usd_per_mtok,f,d,t,n,s,b,big,neg\n"
                   "3.30,0.30000000000000004,2026-11-20,2026-11-20T16:00:00.500000,,x,true,12345678901234567890,-2.5\n")
    code, out, err = sql(capsys, demo, query)
    assert code == 0
    assert out.splitlines()[2].split() == ["3.30", "0.30000000000000004", "2026-11-20", "2026-11-20T16:00:00.500000",
                                           "NULL", "x", "true", "12345678901234567890", "-2.5"]


def test_an_empty_result_in_every_format(demo, capsys):
    query = "select index_id from fixings where false"
    assert sql(capsys, demo, query, "--format", "json") == (0, "[\n]\n", "")
    assert sql(capsys, demo, query, "--format", "csv") == (0, "index_id\n", "")
    assert sql(capsys, demo, query) == (0, "index_id\n--------\n(0 rows)\n", "")


def test_csv_cells_are_safe_to_open_in_a_spreadsheet(demo, capsys):
    query = """select '=HYPERLINK("http://x")' as "=name", '+1' as plus, '@SUM(A1)' as at, '-1+1' as dash,
               -1.50::decimal(4,2) as price"""
    code, out, err = sql(capsys, demo, query, "--format", "csv")
    assert code == 0
    assert out == "'=name,plus,at,dash,price\n\"'=HYPERLINK(\"\"http://x\"\")\",'+1,'@SUM(A1),'-1+1,-1.50\n"


def test_the_table_escapes_control_characters(demo, capsys):
    code, out, err = sql(capsys, demo, "select chr(27) || '[31mred' || chr(10) || 'line' as s")
    assert code == 0 and "\x1b" not in out
    assert out.splitlines()[2] == "\\x1b[31mred\\nline"


def test_several_reads_print_the_last_and_a_cte_is_a_read(demo, capsys):
    assert sql(capsys, demo, "select 1 as a; select 2 as b;", "--format", "csv") == (0, "b\n2\n", "")
    assert sql(capsys, demo, "with x as (select 41 + 1 as v) select v from x", "--format", "csv") == (0, "v\n42\n", "")
    assert sql(capsys, demo, "from (values (1), (2)) t(v) select sum(v) as s", "--format", "csv") == (0, "s\n3\n", "")


def test_describe_show_and_summarize_are_reads(demo, capsys):
    code, out, _ = sql(capsys, demo, "describe fixings", "--format", "csv")
    assert code == 0 and "\nusd_per_gpu_hour,\"DECIMAL(20,4)\",YES,,,\n" in out
    code, out, _ = sql(capsys, demo, "show tables", "--format", "csv")
    assert code == 0 and "\nfixings\n" in out and "\nobservations\n" in out
    code, out, _ = sql(capsys, demo, "summarize select usd_per_mtok from fixings", "--format", "json")
    assert code == 0 and json.loads(out)[0]["column_name"] == "usd_per_mtok"


def test_sql_from_stdin(demo, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("select count(*) as n from fixings where false\n"))
    assert sql(capsys, demo, "-", "--format", "csv") == (0, "n\n0\n", "")


WRITES = [
    ("insert into runs (run_id, flow, started_at, outcome) values ('x', 'x', now(), 'running')", "INSERT"),
    ("INSERT INTO runs SELECT * FROM runs", "INSERT"),
    ("/* x */ insert into runs select * from runs", "INSERT"),
    ("-- c\nDROP TABLE fixings", "DROP"),
    ("select 1; drop table fixings", "DROP"),
    ("sElEcT 1;\n/* two\nlines */ DeLeTe FrOm fixings;", "DELETE"),
    ("WITH x AS (select * from runs) insert into runs select * from x", "INSERT"),
    ("update fixings set status = 'suppressed'", "UPDATE"),
    ("DELETE FROM fixings", "DELETE"),
    ("create table t (a int)", "CREATE"),
    ("CREATE TEMP TABLE t AS SELECT 1", "CREATE"),
    ("create view v as select 1", "CREATE"),
    ("create macro m(a) as a", "CREATE"),
    ("CREATE SECRET (TYPE s3)", "CREATE"),
    ("DROP SECRET s", "DROP"),
    ("alter table fixings add column z int", "ALTER"),
    ("MERGE INTO fixings USING runs ON false WHEN MATCHED THEN DELETE", "MERGE_INTO"),
    ("COPY (select 1) TO '{tmp}/x.csv'", "COPY"),
    ("copy fixings to '{tmp}/f.csv'", "COPY"),
    ("COPY fixings FROM '{tmp}/secret.csv'", "COPY"),
    ("EXPORT DATABASE '{tmp}/export'", "EXPORT"),
    ("IMPORT DATABASE '{tmp}/export'", "PRAGMA"),
    ("COPY FROM DATABASE tsi TO other", "PRAGMA"),
    ("ATTACH '{tmp}/other.duckdb' AS other", "ATTACH"),
    ("DETACH other", "DETACH"),
    ("INSTALL httpfs", "LOAD"),
    ("LOAD httpfs", "LOAD"),
    ("SET threads = 1", "SET"),
    ("RESET threads", "SET"),
    ("SET VARIABLE x = 1", "SET"),
    ("USE memory", "SET"),
    ("PRAGMA database_list", "PRAGMA"),
    ("pragma enable_profiling", "PRAGMA"),
    ("CHECKPOINT", "CALL"),
    ("FORCE CHECKPOINT", "CALL"),
    ("CALL pragma_version()", "CALL"),
    ("VACUUM", "VACUUM"),
    ("ANALYZE", "VACUUM"),
    ("BEGIN TRANSACTION", "TRANSACTION"),
    ("commit", "TRANSACTION"),
    ("ROLLBACK", "TRANSACTION"),
    ("EXPLAIN select 1", "EXPLAIN"),
    ("EXPLAIN ANALYZE COPY (select 1) TO '{tmp}/e.csv'", "EXPLAIN"),
    ("PREPARE p AS SELECT 1", "PREPARE"),
    ("EXECUTE p", "EXECUTE"),
    ("PIVOT fixings ON status USING count(*)", "MULTI"),
    ("UPDATE EXTENSIONS", "a statement of a kind DuckDB's Python API does not name"),
]


@pytest.mark.parametrize("statement, kind", WRITES, ids=[w[0] for w in WRITES])
def test_anything_but_a_read_is_refused_in_one_line_before_anything_runs(demo, capsys, secret_files, statement, kind):
    before = sha(demo)
    text = statement.format(tmp=secret_files)
    code, out, err = sql(capsys, demo, text)
    assert code == 2 and out == ""
    assert err.startswith("tsi sql: only reads may run (SELECT, WITH ... SELECT, FROM, VALUES, TABLE, DESCRIBE, "
                          "SHOW, SUMMARIZE): ")
    assert f" is {kind} (" in err and err.endswith("; nothing was run\n") and err.count("\n") == 1
    assert sha(demo) == before
    assert sorted(p.name for p in secret_files.iterdir()) == ["other.duckdb", "secret.csv", "secret.json"]


READS_OF_FILES = [
    "select * from read_csv('{tmp}/secret.csv')",
    "select * from read_csv_auto('{tmp}/secret.csv')",
    "select * from '{tmp}/secret.csv'",
    "select * from read_text('{tmp}/secret.csv')",
    "select content from read_blob('{tmp}/secret.csv')",
    "select * from read_json('{tmp}/secret.json')",
    "select * from read_parquet('{tmp}/secret.parquet')",
    "select * from glob('{tmp}/*')",
    "select * from sniff_csv('{tmp}/secret.csv')",
    "select * from read_duckdb('{tmp}/other.duckdb')",
    "select * from query('select * from read_text(''{tmp}/secret.csv'')')",
    "with f as (select * from read_csv('{tmp}/secret.csv')) select * from f",
    "select * from read_csv('http://127.0.0.1:9/secret.csv')",  # refused before any connection is tried
    "select * from duckdb_extensions()",
]


@pytest.mark.parametrize("statement", READS_OF_FILES)
def test_a_select_cannot_read_files_urls_or_other_databases(demo, capsys, secret_files, statement):
    code, out, err = sql(capsys, demo, statement.format(tmp=secret_files))
    assert code == 2 and out == "" and SECRET not in err and err.count("\n") == 1
    assert err.startswith("tsi sql: only the warehouse's tables may be read: files, URLs, other databases, "
                          "extensions and settings are refused (Permission Error: ")


def test_the_reader_connection_is_locked_down(demo, capsys):
    query = ("select current_setting('enable_external_access') as ext, current_setting('lock_configuration') as lock,"
             " current_setting('autoload_known_extensions') as autoload,"
             " current_setting('autoinstall_known_extensions') as autoinstall")
    assert sql(capsys, demo, query, "--format", "csv") == (0, "ext,lock,autoload,autoinstall\nfalse,true,false,false\n",
                                                           "")


@pytest.mark.parametrize("statement, message", [
    ("selec 1", "the SQL does not parse: Parser Error: syntax error at or near \"selec\""),
    ("select * from no_such_table", "the query failed: Catalog Error: Table with name no_such_table does not exist!"),
    ("select cast('x' as integer)", "the query failed: Conversion Error: Could not convert string 'x' to INT32"),
    ("select $price", "the query failed: Invalid Input Error:"),
    ("", "no SQL statement given"),
    ("  ;  ", "no SQL statement given"),
    ("-- only a comment", "no SQL statement given"),
    ("select 1 as a, 2 as a", None),  # fine as a table; JSON below
])
def test_a_query_error_is_one_line(demo, capsys, statement, message):
    code, out, err = sql(capsys, demo, statement)
    if message is None:
        assert code == 0
        code, out, err = sql(capsys, demo, statement, "--format", "json")
        message = "JSON objects need distinct column names; name each column with AS: a"
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith(f"tsi sql: {message}")
