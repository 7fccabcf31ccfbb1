"""Collection: fetch a source's bodies and keep them, before anything parses them.

`store_fetched` writes the body to the raw store and records the snapshot; `record_failure` records a fetch
that gave no body. Both write through the run's one warehouse connection.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from types import ModuleType

import duckdb

from pipeline.http import FetchedBody, utc_now
from pipeline.rawstore import RawStore
from pipeline.sources import FetchRequest
from pipeline.warehouse import naive_utc, sql, transaction


@dataclass(frozen=True)
class StoredSnapshot:
    snapshot_id: str
    sha256: str
    source: str
    url: str
    byte_size: int


def snapshot_id_for(source: str, url: str, fetched: FetchedBody, body_sha256: str) -> str:
    """One fetch, one id: a replayed fetch (same source, URL, time and body) maps to the same id."""
    key = "|".join((source, url, naive_utc(fetched.fetched_at).isoformat(), body_sha256))
    return hashlib.sha256(key.encode()).hexdigest()


def fetch(source: ModuleType, client, request: FetchRequest, clock) -> list[FetchedBody]:
    """Network only; raises pipeline.http.FetchError on failure. A paged source returns every page, each
    page stamped with the time the collection started, so that the pages count as one collection."""
    fetched = source.fetch(client, request, clock)
    return fetched if isinstance(fetched, list) else [fetched]


def store_fetched(
    con: duckdb.DuckDBPyConnection, store: RawStore, request: FetchRequest, fetched: FetchedBody
) -> StoredSnapshot:
    digest = store.put(fetched.body)  # the body is on disk before the warehouse mentions it
    # The response's URL, not the request's: the pages of a paged API are bodies of their own.
    url = fetched.url or request.url
    snapshot_id = snapshot_id_for(request.source, url, fetched, digest)
    with transaction(con):
        con.execute(
            sql("insert_raw_snapshot"),
            {
                "snapshot_id": snapshot_id,
                "sha256": digest,
                "source": request.source,
                "url": url,
                "provider": request.provider,
                "fetched_at": naive_utc(fetched.fetched_at),
                "http_status": fetched.status,
                "content_type": fetched.content_type,
                "byte_size": len(fetched.body),
                "storage_path": store.relative_path(digest),
            },
        )
        con.execute(
            sql("insert_fetch_log"),
            {
                "source": request.source,
                "url": url,
                "attempted_at": naive_utc(fetched.fetched_at),
                "outcome": "stored",
                "http_status": fetched.status,
                "error": None,
                "snapshot_id": snapshot_id,
            },
        )
    return StoredSnapshot(snapshot_id, digest, request.source, url, len(fetched.body))


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
