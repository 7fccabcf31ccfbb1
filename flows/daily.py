"""The daily flow (collect -> fix -> publish for one date), the backfill over a date range, and the demo.

Each step is its own flow (flows/collect.py, flows/fix.py), run here as subflows in order; each opens the
warehouse's one writer for its own steps only. A collection that fails as a whole does not stop the fixing:
the fixing uses every collection of its window, and the day's earlier ones are already in the warehouse.
"""
from __future__ import annotations

from datetime import date, datetime, time, timezone
from pathlib import Path

from prefect import flow, get_run_logger
from prefect.runtime import flow_run

from flows.collect import collect_flow  # noqa: F401  (re-exported: flows.daily is the flows' front door)
from flows.common import recorded_run
from flows.fix import fix_flow, publish_flow, site_flow
from pipeline import runs, schedule
from pipeline.http import FetchPolicy
from pipeline.paths import DEMO_FIXTURES_DIR, Warehouse
from pipeline.sources import FetchRequest

DEMO_COLLECTION_TIME = time(6, 0)  # the demo's recorded bodies are replayed as if fetched at 06:00 UTC
# The recordings answer at once; short delays keep the demo quick while still showing the retries.
DEMO_POLICY = FetchPolicy(retries=2, retry_delays_seconds=[0.1, 0.2])


@flow(name="daily")
def daily_flow(
    fixing_date: date | None = None,
    warehouse: str | None = None,
    sources: list[str] | None = None,
    collect: bool = True,
    requests: list[FetchRequest] | None = None,
    replay_dir: str | None = None,
    collected_at: datetime | None = None,
    policy: FetchPolicy | None = None,
    build_site: bool = True,
) -> dict:
    """Collect (unless `collect` is false), then fix and publish `fixing_date` (default: the UTC date the run
    was scheduled for, i.e. today for a run started by hand), then rebuild the site (unless `build_site` is
    false: the demo builds it once, after its last day)."""
    logger = get_run_logger()
    day = fixing_date or schedule.fixing_date_for(flow_run.scheduled_start_time)
    wh = Warehouse.locate(warehouse)
    parameters = {"fixing_date": day, "warehouse": str(wh.root), "sources": sources, "collect": collect,
                  "replay_dir": replay_dir, "collected_at": collected_at}
    with recorded_run(wh, parameters) as run:
        failed_sources: list[dict] = []
        parse_failures: dict[str, str] = {}
        if collect:
            state = collect_flow(warehouse=str(wh.root), sources=sources, requests=requests, replay_dir=replay_dir,
                                 collected_at=collected_at, policy=policy, return_state=True)
            if state.is_completed():
                collected = state.result()
                failed_sources, parse_failures = collected["failed"], dict(collected["parse_failures"])
            else:
                error = state.result(raise_on_failure=False)
                logger.error("the collection failed as a whole; fixing on what the window already holds: %s", error)
                failed_sources = [{"source": "*", "url": "", "error": f"collection failed: {error}"}]
        fixed = fix_flow(day, str(wh.root))
        parse_failures.update(fixed["parse_failures"])
        published = publish_flow(day, str(wh.root))
        if build_site:
            site_flow(str(wh.root))
        summary = {
            "fixing_date": day.isoformat(),
            "failed_sources": failed_sources,
            "parse_failures": parse_failures,
            "fixings": fixed["fixings"],
            "published": published["published"],
        }
        run.detail.update(summary)
        run.outcome = runs.COMPLETED if not failed_sources and not parse_failures else runs.COMPLETED_WITH_FAILURES
    logger.info("%s: %d fixings, published %s", day, fixed["fixings"], published["published"] or "nothing")
    return summary


@flow(name="backfill")
def backfill_flow(first: date, last: date, warehouse: str | None = None) -> list[dict]:
    """Fix and publish every date from `first` to `last` (inclusive) from what the warehouse holds; nothing
    is fetched (past prices cannot be collected now). Dates already fixed on the same inputs add nothing."""
    days = schedule.dates_between(first, last)
    wh = Warehouse.locate(warehouse)
    with recorded_run(wh, {"first": first, "last": last, "warehouse": str(wh.root)}) as run:
        summaries = []
        for day in days:
            fixed = fix_flow(day, str(wh.root))
            # the history files and the site are rewritten once, after the last date, not once a date
            published = publish_flow(day, str(wh.root), cumulative_files=False)
            summaries.append({"fixing_date": day.isoformat(), "fixings": fixed["fixings"], "final": fixed["final"],
                              "new": fixed["new"], "published": published["published"]})
        site_flow(str(wh.root))
        run.detail.update({"dates": len(days), "new_fixings": sum(s["new"] for s in summaries)})
    return summaries


@flow(name="demo")
def demo_flow(warehouse: str | None = None, recordings: str | None = None) -> list[dict]:
    """Run the daily flow once per recorded date, replaying the bodies recorded for that date."""
    root = Path(recordings) if recordings else DEMO_FIXTURES_DIR
    wh = Warehouse.locate(warehouse)
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    with recorded_run(wh, {"warehouse": str(wh.root), "recordings": str(root)}) as run:
        summaries = []
        for folder in folders:
            day = date.fromisoformat(folder.name)
            summaries.append(
                daily_flow(
                    fixing_date=day,
                    warehouse=str(wh.root),
                    replay_dir=str(folder),
                    collected_at=datetime.combine(day, DEMO_COLLECTION_TIME, tzinfo=timezone.utc),
                    policy=DEMO_POLICY,
                    build_site=False,
                )
            )
        site_flow(str(wh.root))
        run.detail["dates"] = [s["fixing_date"] for s in summaries]
    return summaries
