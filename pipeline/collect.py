"""Collection: fetch a source's bodies and keep them, before anything parses them.

Two halves, so that fetching can run in many threads while the warehouse has one writer:

- `fetch_and_keep` (any thread, no warehouse): fetch one request within its time budget and write each body to
  the content-addressed raw store (write then rename). It returns small `KeptBody` records, not the bodies.
- `record_kept` / `record_failure` (the run's one warehouse connection): record the snapshot, or the failure,
  in the warehouse.

`store_fetched` does both halves at once for a body already in memory.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from types import ModuleType

import duckdb
import httpx

from pipeline.http import FetchedBody, FetchPolicy, HostPoliteness, fetch_scope, make_client, utc_now
from pipeline.rawstore import RawStore
from pipeline.sources import SOURCES, FetchRequest, get_source
from pipeline.warehouse import naive_utc, sql, transaction


@dataclass(frozen=True)
class StoredSnapshot:
    snapshot_id: str
    sha256: str
    source: str
    url: str
    byte_size: int


@dataclass(frozen=True)
class KeptBody:
    """A fetched body already in the raw store, described well enough to record its snapshot."""

    request: FetchRequest
    url: str  # the response's URL: the pages of a paged API are bodies of their own
    sha256: str
    status: int
    content_type: str
    byte_size: int
    fetched_at: datetime  # UTC


@dataclass
class CollectReport:
    """What one collection did: the snapshots it recorded and the requests that gave no body."""

    stored: list[str] = field(default_factory=list)  # snapshot ids
    failed: list[dict] = field(default_factory=list)  # {"source", "url", "error"}
    parse_failures: dict[str, str] = field(default_factory=dict)  # snapshot id -> error

    @property
    def ok(self) -> bool:
        return not self.failed and not self.parse_failures

    def summary(self) -> dict:
        return {"stored": len(self.stored), "failed": self.failed, "parse_failures": self.parse_failures}


def plan_requests(sources: list[str] | None = None) -> list[FetchRequest]:
    """Every request of the chosen sources (default: all registered), in a stable order."""
    return [r for source_id in (sources or sorted(SOURCES)) for r in get_source(source_id).requests()]


def snapshot_id_for(source: str, url: str, fetched_at: datetime, body_sha256: str) -> str:
    """One fetch, one id: a replayed fetch (same source, URL, time and body) maps to the same id, and so does an
    imported body (its manifest's time standing for the fetch's)."""
    key = "|".join((source, url, naive_utc(fetched_at).isoformat(), body_sha256))
    return hashlib.sha256(key.encode()).hexdigest()


def fetch(source: ModuleType, client, request: FetchRequest, clock) -> list[FetchedBody]:
    """Network only; raises pipeline.http.FetchError on failure. A paged source returns every page, each
    page stamped with the time the collection started, so that the pages count as one collection."""
    fetched = source.fetch(client, request, clock)
    return fetched if isinstance(fetched, list) else [fetched]


def fetch_and_keep(
    request: FetchRequest,
    store: RawStore,
    policy: FetchPolicy,
    politeness: HostPoliteness | None = None,
    transport: httpx.BaseTransport | None = None,
    clock=utc_now,
) -> list[KeptBody]:
    """One attempt at one request: fetch within the source's time budget, politely, and keep every body."""
    source = get_source(request.source)
    with make_client(transport, timeout=policy.timeout()) as client, fetch_scope(
        policy.budget_for(source), politeness, policy.max_retry_after_seconds, policy.max_host_wait_seconds
    ):
        pages = fetch(source, client, request, clock)
    return [keep_body(store, request, page) for page in pages]


def keep_body(store: RawStore, request: FetchRequest, fetched: FetchedBody) -> KeptBody:
    digest = store.put(fetched.body)  # the body is on disk before the warehouse mentions it
    return KeptBody(request, fetched.url or request.url, digest, fetched.status, fetched.content_type,
                    len(fetched.body), fetched.fetched_at)


def record_kept(con: duckdb.DuckDBPyConnection, store: RawStore, kept: KeptBody) -> StoredSnapshot:
    request = kept.request
    snapshot_id = snapshot_id_for(request.source, kept.url, kept.fetched_at, kept.sha256)
    with transaction(con):
        con.execute(
            sql("insert_raw_snapshot"),
            {
                "snapshot_id": snapshot_id,
                "sha256": kept.sha256,
                "source": request.source,
                "url": kept.url,
                "provider": request.provider,
                "fetched_at": naive_utc(kept.fetched_at),
                "http_status": kept.status,
                "content_type": kept.content_type,
                "byte_size": kept.byte_size,
                "storage_path": store.relative_path(kept.sha256),
            },
        )
        con.execute(
            sql("insert_fetch_log"),
            {
                "source": request.source,
                "url": kept.url,
                "attempted_at": naive_utc(kept.fetched_at),
                "outcome": "stored",
                "http_status": kept.status,
                "error": None,
                "snapshot_id": snapshot_id,
            },
        )
    return StoredSnapshot(snapshot_id, kept.sha256, request.source, kept.url, kept.byte_size)


def store_fetched(
    con: duckdb.DuckDBPyConnection, store: RawStore, request: FetchRequest, fetched: FetchedBody
) -> StoredSnapshot:
    return record_kept(con, store, keep_body(store, request, fetched))


def record_failure(
    con: duckdb.DuckDBPyConnection, request: FetchRequest, error: BaseException, attempted_at=None,
    http_status: int | None = None,
) -> None:
    con.execute(
        sql("insert_fetch_log"),
        {
            "source": request.source,
            "url": request.url,
            "attempted_at": naive_utc(attempted_at or utc_now()),
            "outcome": "failed",
            "http_status": http_status if http_status is not None else getattr(error, "status", None),
            "error": f"{type(error).__name__}: {error}"[:2000],
            "snapshot_id": None,
        },
    )
