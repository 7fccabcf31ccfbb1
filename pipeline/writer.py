"""The one way to open the warehouse for writing: one writer at a time, across processes.

DuckDB lets one process write a database file at a time and refuses a second one at once. Scheduled runs
overlap (a collection still retrying when the daily fixing starts, a backfill started by hand), so a writer
first takes an exclusive lock on `warehouse/.writer.lock` and waits for it, for a bounded time, instead of
failing on DuckDB's lock. Flows open the writer for their own steps only and never hold it while another flow
runs; tasks never open it.
"""
from __future__ import annotations

import errno
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

from pipeline.paths import Warehouse
from pipeline.warehouse import connect

WRITER_WAIT_SECONDS = 900.0  # a collection holds the writer for minutes at worst (its fetch timeouts)
_POLL_SECONDS = 0.2

_held: set[str] = set()  # lock files this process holds
_held_guard = threading.Lock()


class WriterBusyError(RuntimeError):
    pass


@contextmanager
def open_writer(warehouse: Warehouse, wait_seconds: float = WRITER_WAIT_SECONDS) -> Iterator[duckdb.DuckDBPyConnection]:
    """A migrated read-write connection, held alone: waits up to `wait_seconds` for another writer to finish."""
    warehouse.ensure()
    lock_path = str(warehouse.root / ".writer.lock")
    with _held_guard:
        if lock_path in _held:
            # flock would make this process wait for itself: a nesting bug, said plainly.
            raise WriterBusyError(f"this process already holds the writer of {warehouse.root}")
        _held.add(lock_path)
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            _lock(fd, lock_path, wait_seconds)
            con = connect(warehouse)
            try:
                yield con
            finally:
                con.close()
        finally:
            os.close(fd)  # closing the descriptor releases the lock
    finally:
        with _held_guard:
            _held.discard(lock_path)


def _lock(fd: int, lock_path: str, wait_seconds: float) -> None:
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as exc:
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
        if time.monotonic() >= deadline:
            raise WriterBusyError(
                f"another process has been writing to the warehouse for over {wait_seconds:g} s ({lock_path})"
            )
        time.sleep(_POLL_SECONDS)
