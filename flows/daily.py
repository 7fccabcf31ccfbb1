"""The daily flow: collect -> store -> parse -> load -> fix -> publish, and the demo that replays it.

Fetches run concurrently, one task per request, retried with exponential backoff and jitter on transient
failures only (timeouts, 429, 5xx). Every warehouse write happens here in the flow's own thread, through its
one DuckDB connection: DuckDB allows one writer per file.
"""
from __future__ import annotations

from datetime import date, datetime, time, timezone
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE as NO_CACHE
from prefect.tasks import exponential_backoff

from pipeline import collect, definitions, fixing, load, publish
from pipeline.http import FetchedBody, FetchError, make_client, utc_now
from pipeline.paths import DEMO_FIXTURES_DIR, Warehouse
from pipeline.rawstore import RawStore
from pipeline.replay import replay_transport
from pipeline.sources import FetchRequest, SOURCES, get_source
from pipeline.warehouse import connect

DEMO_COLLECTION_TIME = time(6, 0)  # the demo's recorded bodies are replayed as if fetched at 06:00 UTC


def retry_transient_only(task, task_run, state) -> bool:
    """Retry timeouts, 429 and 5xx; a 404 or an oversized body will not improve by asking again."""
    try:
        state.result()
    except FetchError as exc:
        return exc.transient
    except Exception:
        return False
    return False


@task(
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=10),
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_transient_only,
    cache_policy=NO_CACHE,  # never cache a scrape: it would freeze prices
    task_run_name="fetch-{request.label}",
)
def fetch_request(request: FetchRequest, replay_dir: str | None, collected_at: datetime | None) -> list[FetchedBody]:
    transport = replay_transport(Path(replay_dir)) if replay_dir else None
    clock = (lambda: collected_at) if collected_at else utc_now
    with make_client(transport) as client:
        return collect.fetch(get_source(request.source), client, request, clock)


@flow(name="collect")
def collect_flow(
    warehouse: str | None = None,
    sources: list[str] | None = None,
    replay_dir: str | None = None,
    collected_at: datetime | None = None,
    retry_delays: list[float] | None = None,
) -> dict:
    """Fetch every request of the chosen sources concurrently and keep each body. A failure is recorded
    in fetch_log and reported; it never stops the other sources."""
    logger = get_run_logger()
    wh = Warehouse.locate(warehouse)
    store = RawStore(wh.root)
    requests = [r for sid in (sources or sorted(SOURCES)) for r in get_source(sid).requests()]
    fetcher = fetch_request.with_options(retry_delay_seconds=retry_delays) if retry_delays is not None else fetch_request
    futures = [(r, fetcher.submit(r, replay_dir, collected_at)) for r in requests]
    stored, failed = [], []
    con = connect(wh)
    try:
        for request, future in futures:
            future.wait()
            state = future.state
            if state.is_completed():
                for page in future.result():
                    stored.append(collect.store_fetched(con, store, request, page).snapshot_id)
            else:
                error = state.result(raise_on_failure=False)
                collect.record_failure(con, request, error if isinstance(error, BaseException) else RuntimeError(str(error)),
                                       attempted_at=collected_at)
                failed.append({"source": request.source, "url": request.url, "error": _error_text(error)})
                logger.warning("source failed: %s %s: %s", request.source, request.url, error)
    finally:
        con.close()
    logger.info("collected %d bodies, %d sources failed", len(stored), len(failed))
    return {"stored": stored, "failed": failed}


def _error_text(error: object) -> str:
    # A FetchError's text starts with its URL, which the report already shows beside it.
    text = str(error)
    url = getattr(error, "url", None)
    return text[len(url) + 2:] if url and text.startswith(f"{url}: ") else text


@flow(name="daily")
def daily_flow(
    fixing_date: date,
    warehouse: str | None = None,
    sources: list[str] | None = None,
    replay_dir: str | None = None,
    collected_at: datetime | None = None,
    retry_delays: list[float] | None = None,
) -> dict:
    logger = get_run_logger()
    collected = collect_flow(warehouse, sources, replay_dir, collected_at, retry_delays)
    wh = Warehouse.locate(warehouse)
    con = connect(wh)
    try:
        loaded = load.parse_pending(con, RawStore(wh.root))
        for snapshot_id, error in loaded.failed.items():
            logger.error("snapshot %s could not be parsed: %s", snapshot_id, error)
        results = fixing.fix_date(con, definitions.load_definitions(), fixing_date)
        publication = publish.publish_date(con, wh, fixing_date)
    finally:
        con.close()
    logger.info(
        "%s: %d fixings (%d final), published %s",
        fixing_date, len(results), sum(f.status == fixing.FINAL for f in results),
        publication.path if publication else "nothing",
    )
    return {
        "fixing_date": fixing_date.isoformat(),
        "failed_sources": collected["failed"],
        "parse_failures": loaded.failed,
        "fixings": len(results),
        "published": str(publication.path) if publication else None,
    }


@flow(name="demo")
def demo_flow(warehouse: str | None = None, recordings: str | None = None) -> list[dict]:
    """Run the daily flow once per recorded date, replaying the bodies recorded for that date."""
    root = Path(recordings) if recordings else DEMO_FIXTURES_DIR
    summaries = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        day = date.fromisoformat(folder.name)
        summaries.append(
            daily_flow(
                fixing_date=day,
                warehouse=warehouse,
                replay_dir=str(folder),
                collected_at=datetime.combine(day, DEMO_COLLECTION_TIME, tzinfo=timezone.utc),
                retry_delays=[0.1, 0.2],
            )
        )
    return summaries
