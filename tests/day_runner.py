"""One scheduled day without Prefect: the plain functions the flows call, in the flows' order.

`collect_once` is what flows/collect.py does for one collection (fetch_and_keep per request, then record each
kept body or the failure through the run's one connection), minus Prefect's task retries: a caller that wants
retries calls it again for the requests that failed, so that every attempt lands in fetch_log. `run_day` is
collect -> parse_pending -> fix_date -> publish_date through pipeline.writer.open_writer, as the daily flow.

Shared by tests/test_poisoned_day.py, tests/crash_driver.py (tests/test_crash_kill.py) and tests/test_soak.py.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from pathlib import Path

import httpx

from pipeline import collect, fixing, load, publish
from pipeline.collect import CollectReport
from pipeline.definitions import load_definitions
from pipeline.http import FetchError, FetchPolicy, HostPoliteness
from pipeline.paths import Warehouse
from pipeline.rawstore import RawStore
from pipeline.replay import replay_transport
from pipeline.sources import FetchRequest
from pipeline.writer import open_writer

# Recorded bodies answer at once; a local server in a test answers in milliseconds. Nothing waits long.
FAST_POLICY = FetchPolicy(connect_timeout_seconds=2, read_timeout_seconds=2, source_budget_seconds=10, retries=0)
COLLECTION_TIME = time(6, 0)  # the demo's bodies are replayed as fetched at 06:00 UTC, like `tsi demo`
FIXING_TIME = time(16, 5)  # the daily deployment's time: after the window's end, before the cutoff


@dataclass
class DayResult:
    collected: CollectReport
    loaded: load.LoadReport
    fixings: list[fixing.Fixing]
    publication: publish.Publication | None


def collect_once(con, store: RawStore, requests: list[FetchRequest],
                 transport: httpx.BaseTransport | Callable[[], httpx.BaseTransport] | None,
                 collected_at: datetime, policy: FetchPolicy = FAST_POLICY,
                 politeness: HostPoliteness | None = None) -> tuple[CollectReport, list[FetchRequest]]:
    """One attempt at every request; returns the report and the requests that failed (to retry).

    `transport` may be a factory called once per request (each fetch closes its client and transport)."""
    report, failed = CollectReport(), []
    for request in requests:
        try:
            kept = collect.fetch_and_keep(request, store, policy, politeness,
                                          transport() if callable(transport) else transport,
                                          clock=lambda: collected_at)
        except FetchError as exc:
            collect.record_failure(con, request, exc, attempted_at=collected_at)
            report.failed.append({"source": request.source, "url": request.url, "error": str(exc)})
            failed.append(request)
            continue
        for body in kept:
            report.stored.append(collect.record_kept(con, store, body).snapshot_id)
    return report, failed


def run_day(warehouse: Warehouse, recordings: Path, day: date, requests: list[FetchRequest] | None = None) -> DayResult:
    """Collect the recordings of `recordings` as fetched at 06:00 on `day`, parse, fix at 16:05, publish."""
    store = RawStore(warehouse.root)
    with open_writer(warehouse) as con:
        collected, _ = collect_once(con, store, requests if requests is not None else collect.plan_requests(),
                                    replay_transport(recordings),
                                    datetime.combine(day, COLLECTION_TIME, tzinfo=timezone.utc))
        loaded = load.parse_pending(con, store)
        collected.parse_failures = dict(loaded.failed)
        fixings = fixing.fix_date(con, load_definitions(), day,
                                  computed_at=datetime.combine(day, FIXING_TIME, tzinfo=timezone.utc))
        publication = publish.publish_date(con, warehouse, day)
    return DayResult(collected, loaded, fixings, publication)
