"""The one way to open the warehouse for writing: one writer at a time, across processes.

DuckDB lets one process write a database file at a time and refuses a second one at once. Scheduled runs
overlap (a collection still retrying when the daily fixing starts, a backfill started by hand), so a writer
first takes an exclusive lock on `warehouse/.writer.lock` and waits for it, for a bounded time, instead of
failing on DuckDB's lock. Flows open the writer for their own steps only and never hold it while another flow
runs; tasks never open it.

When its connection has closed, and before it gives the lock back, the writer publishes the read-only copy
that readers use while the next run writes (pipeline.readers.publish_readonly_copy); a run that changed
nothing costs no copy.
"""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

from pipeline.paths import Warehouse
from pipeline.readers import publish_readonly_copy
from pipeline.warehouse import BUSY, WarehouseError, connect

WRITER_WAIT_SECONDS = 900.0  # a collection holds the writer for minutes at worst (its fetch timeouts)
_POLL_SECONDS = 0.2

log = logging.getLogger(__name__)

_held: set[str] = set()  # lock files this process holds
_held_guard = threading.Lock()


class WriterBusyError(RuntimeError, WarehouseError):
    """The writer could not be had in time; a WarehouseError too, so `tsi` says it in one line."""


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
            deadline = time.monotonic() + wait_seconds
            _lock(fd, lock_path, deadline, wait_seconds)
            con = _connect(warehouse, deadline, wait_seconds)
            try:
                yield con
            except BaseException:
                con.close()
                # Closing rolled back what the run left uncommitted and checkpointed what it committed, so
                # the file holds committed data only: publishing it is safe, and readers see what the run
                # did commit (a day's fixings, recorded bodies) rather than the state before it.
                _publish_copy(warehouse, failing=True)
                raise
            con.close()
            _publish_copy(warehouse, failing=False)
        finally:
            os.close(fd)  # closing the descriptor releases the lock
    finally:
        with _held_guard:
            _held.discard(lock_path)


def _connect(warehouse: Warehouse, deadline: float, wait_seconds: float) -> duckdb.DuckDBPyConnection:
    """connect(), waiting while a reader still holds the file open: one that opened it before this writer
    took the lock (readers read the copy while a writer holds it, pipeline.readers), or a duckdb session."""
    while True:
        try:
            return connect(warehouse)
        except WarehouseError as exc:
            if BUSY not in str(exc):
                raise
            if time.monotonic() >= deadline:
                raise WriterBusyError(
                    f"the warehouse {warehouse.db_path} has been held open by another process for over "
                    f"{wait_seconds:g} s (a reader outside tsi, or a duckdb session?)"
                ) from None
        time.sleep(_POLL_SECONDS)


def _publish_copy(warehouse: Warehouse, *, failing: bool) -> None:
    """The read-only copy for readers (pipeline.readers), made while this process still holds the lock."""
    started = time.monotonic()
    try:
        copied = publish_readonly_copy(warehouse)
    except Exception as exc:
        if not failing:
            raise  # readers would be left on an older copy without anyone knowing: fail the run, loudly
        # The run's own error is the one to report; readers keep the previous copy, which says its time.
        log.warning("the read-only copy of %s was not refreshed: %s", warehouse.db_path, exc)
        return
    if copied:
        log.info("published the read-only copy of %s in %.2f s", warehouse.db_path, time.monotonic() - started)


def _lock(fd: int, lock_path: str, deadline: float, wait_seconds: float) -> None:
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
