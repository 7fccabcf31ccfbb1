"""Child process of tests/test_crash_kill.py: two demo days collected, parsed, fixed and published, the way
the daily flow does it (fetch every request first, writing bodies to the raw store only; then one writer
records them, parses, fixes and publishes).

    python tests/crash_driver.py WAREHOUSE [--stop-at STAGE]

With --stop-at, one pipeline function of the second day is wrapped (here, in test code: production code has
no test hooks) so that at a precise moment the process prints `STOPPED <stage>` on stdout and sleeps; the
parent then kills it with SIGKILL. The stages:

  raw_put   inside RawStore.put of the 10th body, just before its rename: the temporary file is written
  record    inside record_kept's transaction of the 10th snapshot: raw_snapshots written, fetch_log not yet
  fixing    inside fix_date's transaction: every fixing and constituent inserted, not committed
  publish   inside publish_date, just before the CSV's os.replace: the temporary file written and fsynced

Without --stop-at it runs to the end and prints `DONE`.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from datetime import date, datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project (pipeline/)
sys.path.insert(0, str(Path(__file__).resolve().parent))  # tests/ (day_runner)

from day_runner import COLLECTION_TIME, FAST_POLICY, FIXING_TIME  # noqa: E402
from pipeline import collect, fixing, load, publish, rawstore  # noqa: E402
from pipeline.definitions import load_definitions  # noqa: E402
from pipeline.http import FetchError  # noqa: E402
from pipeline.paths import DEMO_FIXTURES_DIR, Warehouse  # noqa: E402
from pipeline.rawstore import RawStore  # noqa: E402
from pipeline.replay import replay_transport  # noqa: E402
from pipeline.writer import open_writer  # noqa: E402

DAYS = (date(2026, 11, 19), date(2026, 11, 20))
STAGES = ("raw_put", "record", "fixing", "publish")
NTH = 10  # the body / snapshot at which raw_put and record stop


def stop_here(stage: str) -> None:
    print(f"STOPPED {stage}", flush=True)
    time.sleep(120)  # the parent kills us long before
    raise SystemExit(f"not killed at {stage}")


class OsWithReplaceHook:
    """The os module, but `replace` calls `hook(src, dst)` first (for one module's `os` name only)."""

    def __init__(self, hook):
        self._hook = hook

    def replace(self, src, dst, *args, **kwargs):
        self._hook(src, dst)
        return os.replace(src, dst, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(os, name)


def install(stage: str) -> None:
    calls = {"n": 0}
    if stage == "raw_put":
        def hook(src, dst):
            calls["n"] += 1
            if calls["n"] == NTH:
                stop_here(stage)
        rawstore.os = OsWithReplaceHook(hook)
    elif stage == "record":
        real_sql = collect.sql

        def sql(name):
            if name == "insert_fetch_log":  # record_kept's second statement, inside its transaction
                calls["n"] += 1
                if calls["n"] == NTH:
                    stop_here(stage)
            return real_sql(name)
        collect.sql = sql
    elif stage == "fixing":
        real_write_all = fixing._write_all

        def write_all(*args, **kwargs):
            real_write_all(*args, **kwargs)  # every row of the date inserted, the transaction still open
            stop_here(stage)
        fixing._write_all = write_all
    elif stage == "publish":
        def hook(src, dst):
            if str(dst).endswith(".csv"):
                stop_here(stage)
        publish.os = OsWithReplaceHook(hook)
    else:
        raise SystemExit(f"unknown stage {stage}")


def run_day(warehouse: Warehouse, day: date) -> None:
    store = RawStore(warehouse.root)
    collected_at = datetime.combine(day, COLLECTION_TIME, tzinfo=timezone.utc)
    transport = replay_transport(DEMO_FIXTURES_DIR / day.isoformat())
    kept, failures = [], []
    # As flows/collect.py: every fetch ends (bodies in the raw store) before the writer is opened.
    for request in collect.plan_requests():
        try:
            kept.extend(collect.fetch_and_keep(request, store, FAST_POLICY, None, transport, lambda: collected_at))
        except FetchError as exc:
            failures.append((request, exc))
    with open_writer(warehouse) as con:
        for body in kept:
            collect.record_kept(con, store, body)
        for request, exc in failures:
            collect.record_failure(con, request, exc, attempted_at=collected_at)
        load.parse_pending(con, store)
        fixing.fix_date(con, load_definitions(), day,
                        computed_at=datetime.combine(day, FIXING_TIME, tzinfo=timezone.utc))
        publish.publish_date(con, warehouse, day)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("warehouse")
    parser.add_argument("--stop-at", choices=STAGES)
    args = parser.parse_args()
    warehouse = Warehouse(Path(args.warehouse)).ensure()
    for day in DAYS:
        if args.stop_at and day == DAYS[-1]:
            install(args.stop_at)
        run_day(warehouse, day)
    print("DONE", flush=True)


if __name__ == "__main__":
    main()
