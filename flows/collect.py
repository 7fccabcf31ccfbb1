"""The collect flow: every request of the enabled sources fetched concurrently, each body kept.

One task per request (a source may have several: one per cloud, one per model), retried with exponential
backoff and jitter on transient failures only (timeouts, 429, 5xx). Each attempt is bounded by its source's
time budget, which `pipeline.http.fetch_body` enforces on every socket operation and between the chunks of a
body. (Not by the task's `timeout_seconds`: tasks run in worker threads, where Prefect's timeout cannot
interrupt a blocking read and only fires after it returns, as Prefect's own warning says.) Politeness is
shared by the run's tasks: a few requests in flight per host, and a Retry-After closes the host to every task
until it passes. A failing request is recorded and reported; it never fails the flow or the other requests.

Tasks only fetch and write bodies to the raw store (files, content-addressed); every warehouse write happens
here in the flow's thread, through its one writer.
"""
from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.runtime import task_run
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE as NO_CACHE
from prefect.tasks import exponential_backoff

from flows.common import recorded_run, retry_transient_only
from pipeline import collect, load, report, runs
from pipeline.collect import CollectReport, KeptBody
from pipeline.http import FetchError, FetchPolicy, HostPoliteness, utc_now
from pipeline.paths import Warehouse
from pipeline.rawstore import RawStore
from pipeline.replay import replay_transport
from pipeline.sources import FetchRequest
from pipeline.writer import open_writer


@task(
    cache_policy=NO_CACHE,  # never cache a scrape: it would freeze prices
    retry_jitter_factor=0.5,
    retry_condition_fn=retry_transient_only,
    task_run_name="fetch-{request.label}",
)
def fetch_request(
    request: FetchRequest,
    warehouse_root: str,
    policy: FetchPolicy,
    politeness: HostPoliteness,
    replay_dir: str | None = None,
    collected_at: datetime | None = None,
) -> list[KeptBody] | FetchError:
    """The bodies kept; or, once no retry is left (or none would help), the FetchError itself, returned rather
    than raised: the flow records and reports it, and Prefect does not log a failed task's traceback for what
    is a source's answer (a 429, a 503, a 404), not a fault of the run."""
    transport = replay_transport(Path(replay_dir)) if replay_dir else None
    clock = (lambda: collected_at) if collected_at else utc_now
    try:
        return collect.fetch_and_keep(request, RawStore(Path(warehouse_root)), policy, politeness, transport, clock)
    except FetchError as exc:
        if exc.transient and task_run.run_count <= policy.retries:
            raise  # Prefect tries again (retry_transient_only)
        return exc


def fetcher_for(policy: FetchPolicy):
    """The fetch task with the policy's retries and delays."""
    delays = policy.retry_delays_seconds
    return fetch_request.with_options(
        retries=policy.retries,
        retry_delay_seconds=list(delays) if delays is not None else exponential_backoff(backoff_factor=10),
    )


@flow(name="collect")
def collect_flow(
    warehouse: str | None = None,
    sources: list[str] | None = None,
    requests: list[FetchRequest] | None = None,
    replay_dir: str | None = None,
    collected_at: datetime | None = None,
    policy: FetchPolicy | None = None,
) -> dict:
    """Fetch every request of the chosen sources (or the `requests` given) and keep each body; then parse
    what was kept. Returns the snapshot ids stored, the requests that failed and the bodies that did not parse."""
    logger = get_run_logger()
    wh = Warehouse.locate(warehouse)
    policy = policy or FetchPolicy()
    parameters = {"warehouse": str(wh.root), "sources": sources,
                  "requests": None if requests is None else len(requests), "replay_dir": replay_dir,
                  "collected_at": collected_at, "policy": asdict(policy)}
    with recorded_run(wh, parameters) as run:
        plan = list(requests) if requests is not None else collect.plan_requests(sources)
        store = RawStore(wh.root)
        politeness = HostPoliteness(policy.per_host_limit)
        fetcher = fetcher_for(policy)
        futures = [(r, fetcher.submit(r, str(wh.root), policy, politeness, replay_dir, collected_at)) for r in plan]
        for _, future in futures:
            future.wait()  # bounded: each attempt by its time budget, and the attempts are counted
        # The writer is opened only once every fetch has ended, so that a collection still retrying never holds
        # up a fixing; the bodies are already safe in the raw store. Each snapshot is its own transaction.
        result = CollectReport()
        with open_writer(wh) as con:
            for request, future in futures:
                answer = future.result(raise_on_failure=False) if future.state.is_completed() else None
                if future.state.is_completed() and not isinstance(answer, FetchError):
                    for kept in answer:
                        result.stored.append(collect.record_kept(con, store, kept).snapshot_id)
                    continue
                error = answer if isinstance(answer, FetchError) else future.state.result(raise_on_failure=False)
                if not isinstance(error, BaseException):
                    error = RuntimeError(str(error))
                collect.record_failure(con, request, error, attempted_at=collected_at)
                result.failed.append({"source": request.source, "url": request.url, "error": _error_text(error)})
                logger.warning("source failed: %s %s: %s", request.source, request.url, _error_text(error))
            loaded = load.parse_pending(con, store)
        result.parse_failures = dict(loaded.failed)
        for snapshot_id, error in loaded.failed.items():
            logger.error("snapshot %s could not be parsed: %s", snapshot_id, error)
        create_markdown_artifact(
            report.failures_markdown("Collection: failed sources", result.failed, result.parse_failures),
            key="collect-failures",
            description=f"{len(result.stored)} bodies kept, {len(result.failed)} requests failed, "
                        f"{len(result.parse_failures)} bodies unreadable",
        )
        run.detail.update(result.summary())
        run.detail["max_in_flight_per_host"] = politeness.max_in_flight
        run.outcome = runs.COMPLETED if result.ok else runs.COMPLETED_WITH_FAILURES
    logger.info("collected %d bodies; %d requests failed; %d bodies unreadable",
                len(result.stored), len(result.failed), len(result.parse_failures))
    return {"stored": result.stored, "failed": result.failed, "parse_failures": result.parse_failures}


def _error_text(error: object) -> str:
    # A FetchError's text starts with its URL, which the report already shows beside it.
    text = str(error)
    url = getattr(error, "url", None)
    return text[len(url) + 2:] if url and text.startswith(f"{url}: ") else text
