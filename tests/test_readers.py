"""Readers while a run writes (pipeline/readers.py, pipeline/writer.py): the writer publishes a read-only copy
of the warehouse when its connection closes, and the read commands fall back to it, saying so, while another
process holds the warehouse; a reader of the live file does not make a writer fail."""
from __future__ import annotations

import hashlib
import os
import select
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pytest

from pipeline import runs
from pipeline.cli import main
from pipeline.fixing import fix_date
from pipeline.paths import PROJECT_ROOT, Warehouse
from pipeline.readers import copy_is_current, open_reader, readonly_copy_path
from pipeline.warehouse import connect
from pipeline.writer import open_writer

from conftest import add_gpu_snapshot
from test_fixing import DAY, h100

# Another process holding the warehouse, each committing one `runs` row first: `writer` through open_writer
# (the flock, then DuckDB); `raw` a plain read-write DuckDB connection (no flock: something writing outside tsi);
# `write-once` commits a row through open_writer and exits at once. It prints `held` once it holds the
# file, then waits for a line on stdin before letting go (and so before open_writer publishes its copy).
HOLDER = r"""
import sys
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from pipeline import runs
from pipeline.paths import Warehouse
from pipeline.writer import open_writer

root, mode, run_id = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
if mode == "raw":
    con = duckdb.connect(str(root / "tsi.duckdb"))
    runs.start_run(con, run_id, "test", datetime(2026, 11, 21, 9, 0, tzinfo=timezone.utc), {})
    print("held", flush=True)
    sys.stdin.readline()
    con.close()
else:
    with open_writer(Warehouse(root)) as con:
        runs.start_run(con, run_id, "test", datetime(2026, 11, 21, 9, 0, tzinfo=timezone.utc), {})
        print("held", flush=True)
        if mode == "writer":
            sys.stdin.readline()
"""


def start_holder(root: Path, mode: str, run_id: str = "held-run") -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(root), mode, run_id], cwd=PROJECT_ROOT, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_line(proc: subprocess.Popen, timeout: float = 60.0) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        proc.kill()
        raise AssertionError(f"the holder did not start in {timeout:g} s: {proc.stderr.read()}")
    line = proc.stdout.readline().strip()
    if line != "held":
        proc.wait(timeout=30)
        raise AssertionError(f"the holder failed: {line!r} {proc.stderr.read()}")
    return line


@contextmanager
def holding(root: Path, mode: str, run_id: str = "held-run"):
    """Another process holds the warehouse of `root` for the body of the with-block."""
    proc = start_holder(root, mode, run_id)
    try:
        wait_for_line(proc)
        yield proc
    finally:
        if proc.poll() is None:
            proc.stdin.write("\n")
            proc.stdin.flush()
        proc.stdin.close()
        proc.wait(timeout=60)
        err = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
    assert proc.returncode == 0, err


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A small warehouse with one fixing: providers at 2.00, 2.50 and 3.00 USD/GPU-hour, median 2.5000.
    Made without open_writer, so it has no read-only copy yet."""
    warehouse = Warehouse(tmp_path_factory.mktemp("readers") / "warehouse").ensure()
    con = connect(warehouse)
    for provider, price in (("a", "2.00"), ("b", "2.50"), ("c", "3.00")):
        add_gpu_snapshot(con, provider, "2026-11-20T06:00:00", [("H100-SXM", price)])
    fix_date(con, [h100()], DAY, computed_at=at("2026-11-20T17:00"))
    runs.start_run(con, "first-run", "test", at("2026-11-20T16:05"), {})
    con.close()
    return warehouse.root


@pytest.fixture
def wh(built, tmp_path) -> Warehouse:
    root = tmp_path / "warehouse"
    shutil.copytree(built, root)
    return Warehouse(root)


def tsi(capsys, wh: Warehouse, *args: str) -> tuple[int, str, str]:
    code = main(["--warehouse", str(wh.root), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def copy_runs(wh: Warehouse) -> list[str]:
    con = duckdb.connect(str(readonly_copy_path(wh)), read_only=True)
    try:
        return [r[0] for r in con.execute("select run_id from runs order by run_id").fetchall()]
    finally:
        con.close()


def database_path(con) -> str:
    return con.execute("select path from duckdb_databases() where database_name = current_database()").fetchall()[0][0]


def test_no_run_writing_reads_the_live_file_without_a_note(wh, capsys):
    con, note = open_reader(wh)
    try:
        assert note is None and database_path(con) == str(wh.db_path)
        with pytest.raises(duckdb.Error):  # read-only: nothing can be written through a reader
            con.execute("insert into runs (run_id, flow, started_at, outcome) values ('x', 'x', now(), 'running')")
    finally:
        con.close()
    code, out, err = tsi(capsys, wh, "fixings")
    assert code == 0 and err == ""
    assert out.splitlines()[1].split()[:5] == ["2026-11-20", "T-H100", "1", "final", "2.5000"]


def test_the_writer_publishes_a_copy_and_copies_again_only_after_a_change(wh):
    copy = readonly_copy_path(wh)
    assert not copy.exists()
    with open_writer(wh):
        pass  # the first writer publishes the copy, even with nothing to write
    assert sha(copy) == sha(wh.db_path) and copy_is_current(wh)
    assert os.stat(copy).st_mtime_ns == os.stat(wh.db_path).st_mtime_ns
    first = os.stat(copy)

    with open_writer(wh) as con:  # a run that only reads costs no copy
        assert con.execute("select count(*) from fixings").fetchall() == [(1,)]
    with open_writer(wh):
        pass
    again = os.stat(copy)
    assert (again.st_ino, again.st_mtime_ns) == (first.st_ino, first.st_mtime_ns)

    (copy.parent / ".tmp-killed").write_bytes(b"a copy killed before its rename")
    with open_writer(wh) as con:  # a committed write: a new copy (a new file, renamed over the old one)
        runs.start_run(con, "second-run", "test", at("2026-11-21T16:05"), {})
    assert os.stat(copy).st_ino != first.st_ino
    assert copy_runs(wh) == ["first-run", "second-run"]
    assert sha(copy) == sha(wh.db_path)
    assert [p.name for p in copy.parent.iterdir()] == ["tsi.duckdb"]  # no temporary file left, nor the stale one


def test_a_writer_that_fails_still_publishes_what_it_committed_and_nothing_else(wh):
    with pytest.raises(RuntimeError, match="boom"):
        with open_writer(wh) as con:
            runs.start_run(con, "committed-run", "test", at("2026-11-21T16:05"), {})
            con.execute("begin transaction")
            con.execute("delete from runs")  # never committed: rolled back when the writer closes
            raise RuntimeError("boom")
    assert copy_runs(wh) == ["committed-run", "first-run"]
    assert sha(readonly_copy_path(wh)) == sha(wh.db_path)


def test_a_copy_that_cannot_be_made_fails_the_run_but_never_hides_the_run_s_own_error(wh):
    readonly_copy_path(wh).parent.parent.mkdir(parents=True, exist_ok=True)
    readonly_copy_path(wh).parent.write_text("not a folder")  # the copy's folder cannot be made
    with pytest.raises(FileExistsError):
        with open_writer(wh) as con:
            runs.start_run(con, "committed-run", "test", at("2026-11-21T16:05"), {})
    with pytest.raises(RuntimeError, match="boom"):  # the run's error, not the copy's
        with open_writer(wh) as con:
            runs.start_run(con, "failed-run", "test", at("2026-11-21T17:05"), {})
            raise RuntimeError("boom")
    con = connect(wh, read_only=True)
    try:  # both runs' committed rows are in the warehouse itself
        assert con.execute("select count(*) from runs").fetchall() == [(3,)]
    finally:
        con.close()


def test_read_commands_use_the_copy_while_another_process_writes(wh, capsys):
    with open_writer(wh):
        pass  # the copy, as the last run left the warehouse
    stamp = datetime.fromtimestamp(os.stat(readonly_copy_path(wh)).st_mtime, tz=timezone.utc)
    note = (f"note: the warehouse is being written by a run; read the copy of {stamp:%Y-%m-%dT%H:%M:%SZ} "
            "(the state the last run that wrote it left)\n")
    with holding(wh.root, "writer"):
        code, out, err = tsi(capsys, wh, "fixings")
        assert (code, err) == (0, note)
        assert out.splitlines()[1].split()[:5] == ["2026-11-20", "T-H100", "1", "final", "2.5000"]

        code, out, err = tsi(capsys, wh, "explain", "T-H100", "2026-11-20")
        assert (code, err) == (0, note)
        assert out.startswith("T-H100 on 2026-11-20: 2.5000 USD/GPU-hour (final")

        code, out, err = tsi(capsys, wh, "runs")  # the holder's committed row is not in the copy yet
        assert (code, err) == (0, note)
        assert [line.split(",")[0] for line in out.splitlines()[1:]] == ["first-run"]

        code, out, err = tsi(capsys, wh, "sql", "select count(*) as n from fixings", "--format", "csv")
        assert (code, out, err) == (0, "n\n1\n", note)

        code, out, err = tsi(capsys, wh, "sources", "--unknown")
        assert (code, err) == (0, note)
    # The holder's run ended: its writer published a new copy, and nothing writes now.
    assert copy_runs(wh) == ["first-run", "held-run"]
    code, out, err = tsi(capsys, wh, "runs")
    assert code == 0 and err == ""
    assert sorted(line.split(",")[0] for line in out.splitlines()[1:]) == ["first-run", "held-run"]


def test_a_process_writing_outside_tsi_sends_readers_to_the_copy_too(wh, capsys):
    with open_writer(wh):
        pass
    with holding(wh.root, "raw"):
        code, out, err = tsi(capsys, wh, "sql", "select run_id from runs", "--format", "csv")
    assert code == 0 and out == "run_id\nfirst-run\n"  # the holder's committed row is in its WAL, not the copy
    assert err.startswith("note: the warehouse is being written by a run; read the copy of ") and err.count("\n") == 1


def test_a_busy_warehouse_without_a_copy_is_one_line(wh, capsys):
    with holding(wh.root, "writer"):
        for command in (["fixings"], ["explain", "T-H100", "2026-11-20"], ["runs"], ["sql", "select 1"]):
            code, out, err = tsi(capsys, wh, *command)
            assert code == 2 and out == ""
            assert err.startswith(f"tsi {command[0]}: the warehouse {wh.db_path} is being written by another process")
            assert "no read-only copy yet" in err and err.count("\n") == 1


@pytest.mark.parametrize("command", [["fixings"], ["explain", "T-H100", "2026-11-20"], ["runs"],
                                     ["sql", "select 1"], ["sources", "--unknown"]])
def test_a_missing_or_corrupt_warehouse_is_one_line(tmp_path, capsys, command):
    missing = Warehouse(tmp_path / "none")
    code, out, err = tsi(capsys, missing, *command)
    assert code == 2 and out == ""
    assert err == f"tsi {command[0]}: no warehouse at {missing.db_path}; run `tsi demo` or a collection first\n"

    corrupt = Warehouse(tmp_path / "corrupt").ensure()
    corrupt.db_path.write_bytes(b"this is not a database\n" * 500)
    code, out, err = tsi(capsys, corrupt, *command)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert err.startswith(f"tsi {command[0]}: the warehouse {corrupt.db_path} is not a readable DuckDB database")


def test_a_corrupt_live_file_is_reported_not_hidden_behind_the_copy(wh, capsys):
    with open_writer(wh):
        pass
    wh.db_path.write_bytes(b"\0" * 4096 + b"damaged" * 1000)
    code, out, err = tsi(capsys, wh, "fixings")
    assert code == 2 and "is not a readable DuckDB database" in err


def test_a_reader_of_the_live_file_delays_a_writer_instead_of_failing_it(wh):
    con, note = open_reader(wh)  # no copy: the live file, held open (a DuckDB lock) by this reader
    assert note is None and database_path(con) == str(wh.db_path)
    proc = start_holder(wh.root, "write-once", "late-run")
    try:
        time.sleep(4)  # the writer has started, taken the flock and is waiting for DuckDB's lock
        assert proc.poll() is None
    finally:
        con.close()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and out == "held\n", err
    assert copy_runs(wh) == ["first-run", "late-run"]


def test_a_reader_of_a_current_copy_does_not_hold_up_a_writer_at_all(wh):
    with open_writer(wh):
        pass
    con, note = open_reader(wh)  # the copy is byte for byte the live file: read it, leave the live file free
    try:
        assert note is None and database_path(con) == str(readonly_copy_path(wh))
        proc = start_holder(wh.root, "write-once", "quick-run")
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0 and out == "held\n", err
        # The reader still sees the copy it opened (the old file); a new reader sees the new state.
        assert [r[0] for r in con.execute("select run_id from runs order by 1").fetchall()] == ["first-run"]
    finally:
        con.close()
    con, note = open_reader(wh)
    try:
        assert note is None
        assert [r[0] for r in con.execute("select run_id from runs order by 1").fetchall()] == ["first-run",
                                                                                                "quick-run"]
    finally:
        con.close()
