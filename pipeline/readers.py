"""Reading the warehouse while a run writes it: the read-only copy the writer publishes, and `open_reader`.

DuckDB lets one process hold a database file for writing, and then refuses every other process, readers
included ("Could not set lock"); a reader holding the file open refuses a writer the same way. So the one
writer (pipeline.writer.open_writer) publishes a copy of the file after each run, under
`published/readonly/tsi.duckdb`, and readers read the live file only when no run is writing and the copy is
not current; otherwise they read the copy (DESIGN.md section 6: readers never block the writer and the writer
never blocks readers).

Freshness: the copy carries the live file's modification time (set on it before it is renamed into place),
which is when the last run that changed the warehouse closed it. A reader told "read the copy of T" sees the
warehouse as that run left it: every committed write up to T, nothing of the run still going.

Every reader connection is read-only with external access off and its configuration locked: a SELECT cannot
read files, URLs or other databases (`read_csv('/etc/passwd')`, `glob`, `ATTACH`), install or load an
extension, or change a setting back. DuckDB still lets a connection read its own database file and WAL
(`read_blob` of them): nothing a reader of the warehouse could not see anyway.
"""
from __future__ import annotations

import errno
import fcntl
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from pipeline.paths import Warehouse
from pipeline.warehouse import BUSY, WarehouseError, explain_database_error

# DuckDB 2.0 honours all four (tests/test_readers.py and tests/test_sql_command.py check the refusals).
READER_CONFIG = {
    "enable_external_access": False,  # no file, URL or other database: only the one opened here
    "autoload_known_extensions": False,  # a function of an extension not loaded stays unknown...
    "autoinstall_known_extensions": False,  # ...and is not fetched
    "lock_configuration": True,  # last: no SET / RESET / PRAGMA can turn the above back on
}

# DuckDB's file starts with a main header and two database headers of 4 KiB each; the database headers
# carry the checkpoint iteration, which every checkpoint that changed the file increments.
_HEADER_BYTES = 3 * 4096


def readonly_copy_path(warehouse: Warehouse) -> Path:
    return warehouse.root / "published" / "readonly" / "tsi.duckdb"


def wal_path(db_path: Path) -> Path:
    return db_path.with_name(db_path.name + ".wal")


def copy_is_current(warehouse: Warehouse) -> bool:
    """True when the copy holds exactly what the live file holds: same size, same modification time (the
    copy is given the live file's), same headers (a cheap guard against a write within the clock's
    resolution), and no WAL beside the live file (committed writes not yet in the file)."""
    live, copy = warehouse.db_path, readonly_copy_path(warehouse)
    try:
        a, b = os.stat(live), os.stat(copy)
    except (FileNotFoundError, NotADirectoryError):
        return False
    if (a.st_size, a.st_mtime_ns) != (b.st_size, b.st_mtime_ns) or wal_path(live).exists():
        return False
    with open(live, "rb") as x, open(copy, "rb") as y:
        return x.read(_HEADER_BYTES) == y.read(_HEADER_BYTES)


def publish_readonly_copy(warehouse: Warehouse) -> bool:
    """Copy the live file to the read-only copy, atomically; False when there was nothing to copy.

    Only the writer calls this, holding `.writer.lock`, after its DuckDB connection has closed: no process
    can write the file during the copy, and closing checkpointed every committed transaction into the file
    and removed the WAL; what a failed run left uncommitted was rolled back. A WAL still there means the
    file alone lacks committed writes (another connection of this process kept the database open), so
    nothing is copied then and readers keep the previous copy, which says its own time.
    """
    live, target = warehouse.db_path, readonly_copy_path(warehouse)
    if not live.exists() or wal_path(live).exists() or copy_is_current(warehouse):
        return False  # a run that only read, or changed nothing, costs no copy
    target.parent.mkdir(parents=True, exist_ok=True)
    # A copy killed between its temporary file and the rename left a `.tmp-*` here; only the writer copies,
    # so no such file belongs to a copy in flight.
    for stale in target.parent.glob(".tmp-*"):
        stale.unlink(missing_ok=True)
    before = os.stat(live)
    handle, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    os.close(handle)
    try:
        _copy_file(live, Path(tmp_name))
        shutil.copymode(live, tmp_name)
        after = os.stat(live)
        if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns):
            raise OSError(f"{live} changed while it was copied for readers; is something writing it outside tsi?")
        # The copy's time is the live file's: what `copy_is_current` compares and what readers are told.
        os.utime(tmp_name, ns=(before.st_atime_ns, before.st_mtime_ns))
        # Readers that have the old copy open keep reading its inode; new ones get the new file.
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _fsync_folder(target.parent)
    return True


def _copy_file(source: Path, target: Path) -> None:
    """Copy in the kernel and fsync. copy_file_range shares the blocks where the filesystem can (a reflink
    on XFS or btrfs) and copies them in the kernel elsewhere (ext4: 2 to 4 s a GB on a busy test machine);
    where it is refused (another filesystem, an old kernel), shutil's copy."""
    with open(source, "rb") as src, open(target, "wb") as out:
        size = os.fstat(src.fileno()).st_size
        try:
            remaining = size
            while remaining > 0:
                done = os.copy_file_range(src.fileno(), out.fileno(), remaining)
                if done == 0:
                    break
                remaining -= done
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EPERM):
                raise
            src.seek(0)
            out.seek(0)
            out.truncate()
            shutil.copyfileobj(src, out, 1 << 20)
        out.flush()
        if os.fstat(out.fileno()).st_size != size:
            raise OSError(f"the copy of {source} for readers came out short; nothing was published")
        os.fsync(out.fileno())


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself survives a power cut
    finally:
        os.close(fd)


def writer_running(warehouse: Warehouse) -> bool:
    """True while a process holds `.writer.lock` (pipeline.writer). Probed with a shared lock, given back at
    once: a writer polling for the lock retries a moment later."""
    try:
        fd = os.open(warehouse.root / ".writer.lock", os.O_RDONLY)
    except FileNotFoundError:
        return False  # no run ever wrote here
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return True
        raise
    finally:
        os.close(fd)  # closing releases the probe's lock
    return False


def connect_locked_down(path: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection to one DuckDB file that can read nothing else (READER_CONFIG)."""
    try:
        return duckdb.connect(str(path), read_only=True, config=dict(READER_CONFIG))
    except duckdb.Error as exc:
        raise WarehouseError(explain_database_error(path, exc)) from None


def open_reader(warehouse: Warehouse) -> tuple[duckdb.DuckDBPyConnection, str | None]:
    """A read-only connection to the warehouse and a note for the person when it is not the live state.

    No run writing: the live file (or the copy, when it is byte for byte the live file: then a run starting
    meanwhile is not held up by this reader), no note. A run writing: the copy, with a note saying so and
    the time of the state it holds. Raises FileNotFoundError or WarehouseError, in one line, when neither
    can be opened."""
    live, copy = warehouse.db_path, readonly_copy_path(warehouse)
    if not live.exists():
        raise FileNotFoundError(f"no warehouse at {live}; run `tsi demo` or a collection first")
    if not writer_running(warehouse):
        if copy_is_current(warehouse):
            return connect_locked_down(copy), None
        try:
            return connect_locked_down(live), None
        except WarehouseError as exc:
            if BUSY not in str(exc):
                raise  # damaged: said as it is, never hidden behind an older copy
    # A run is writing (it holds the writer's lock, or the file itself, if something writes outside tsi).
    if not copy.exists():
        raise WarehouseError(
            f"the warehouse {live} is {BUSY} (a collection or fixing run) and has no read-only copy yet "
            "(a run publishes one when it ends); try again when it ends"
        )
    con = connect_locked_down(copy)
    stamp = datetime.fromtimestamp(os.stat(copy).st_mtime, tz=timezone.utc)
    return con, (f"the warehouse is being written by a run; read the copy of {stamp:%Y-%m-%dT%H:%M:%SZ} "
                 "(the state the last run that wrote it left)")


@contextmanager
def reading(warehouse: Warehouse) -> Iterator[duckdb.DuckDBPyConnection]:
    """open_reader for a command: the note, if any, goes to stderr in one line; the connection is closed."""
    con, note = open_reader(warehouse)
    try:
        if note:
            print(f"note: {note}", file=sys.stderr)
        yield con
    finally:
        con.close()
