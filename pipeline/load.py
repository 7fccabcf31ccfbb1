"""Parse stored snapshots and load their observations and rejections.

Parsing always reads the body back from the raw store, never from the fetch's memory, so any day can be
re-parsed later from what was kept. Loading a snapshot replaces what it gave before, in one transaction.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timezone
from decimal import Decimal
from types import ModuleType

import duckdb
import polars as pl

from pipeline.batch_digests import BatchDigester
from pipeline.catalog import Catalog, default_catalog
from pipeline.collector import collector_paused
from pipeline.columnar import PARSED_SCHEMA, frame_from_observations
from pipeline.http import utc_now
from pipeline.normalise import MAX_FX_AGE_DAYS, check_columns, parse_body
from pipeline.rawstore import RawStore
from pipeline.records import FX, FxRate, ParseContext, ParseResult, Rejection
from pipeline.sources import SOURCES, get_source
from pipeline.warehouse import cursor, fetch_first, naive_utc, registered, sql, transaction

# Explicit schemas: decimals and timestamps must not be inferred differently from one batch to the next.
OBSERVATION_SCHEMA = {
    "snapshot_id": pl.String,
    "source": pl.String,
    "observed_at": pl.Datetime("us"),
    "valid_until": pl.Date,
    # a parsed frame's columns (pipeline.columnar), the GPU count at the warehouse's scale
    **{name: dtype for name, dtype in PARSED_SCHEMA.items() if name not in ("_seq", "price_in_currency")},
    "gpu_count": pl.Decimal(12, 4),
}
FX_RATE_SCHEMA = {
    "rate_date": pl.Date,
    "currency": pl.String,
    "usd_per_unit": pl.Decimal(20, 10),
    "snapshot_id": pl.String,
    "units_per_eur": pl.Decimal(20, 10),
}
REJECTION_SCHEMA = {
    "snapshot_id": pl.String,
    "source": pl.String,
    "row_key": pl.String,
    "reason": pl.String,
    "detail": pl.String,
    "raw_excerpt": pl.String,
    "observed_at": pl.Datetime("us"),
}


# From this size on, a body of a source with a columnar path takes it (pipeline.columnar): below it, objects
# cost nothing worth saving and the readable path is the one a person follows. A real Vast answer of 3,000
# offers is some 9 MB, a SkyPilot catalog from 1 kB (DigitalOcean) to some MB (AWS).
COLUMNAR_MIN_BYTES = 256 * 1024

# A price that moves by this factor or more from the same row's price in the provider's previous snapshot is
# flagged for a person to look at (the classic per-token vs per-1K unit slip moves by 1000).
JUMP_RATIO = Decimal(10)


@dataclass
class LoadReport:
    loaded: dict[str, tuple[int, int]] = field(default_factory=dict)  # snapshot -> (observations, rejections)
    failed: dict[str, str] = field(default_factory=dict)  # snapshot -> error


def observations_frame(result: ParseResult, ctx: ParseContext) -> pl.DataFrame:
    """The checked observations of the readable path as the loader's batch."""
    return warehouse_batch(frame_from_observations(result.observations).drop("_seq"), ctx)


def warehouse_batch(checked: pl.DataFrame, ctx: ParseContext) -> pl.DataFrame:
    """Checked observations (PARSED_SCHEMA without `_seq`, from either path) with their snapshot's columns, typed
    as the warehouse holds them."""
    return checked.with_columns(
        snapshot_id=pl.lit(ctx.snapshot_id, dtype=pl.String),
        source=pl.lit(ctx.source, dtype=pl.String),
        observed_at=pl.lit(naive_utc(ctx.observed_at), dtype=pl.Datetime("us")),
        valid_until=pl.lit(ctx.valid_until, dtype=pl.Date),
    ).select([pl.col(name).cast(dtype) for name, dtype in OBSERVATION_SCHEMA.items()])


def fx_rates_frame(fx_rates: list[FxRate], ctx: ParseContext) -> pl.DataFrame:
    rows = [
        {
            "rate_date": r.rate_date,
            "currency": r.currency,
            "usd_per_unit": r.usd_per_unit,
            "snapshot_id": ctx.snapshot_id,
            "units_per_eur": r.units_per_eur,
        }
        for r in fx_rates
    ]
    return pl.DataFrame(rows, schema=FX_RATE_SCHEMA)


class WarehouseFx:
    """The FX rates already in the warehouse (pipeline.normalise.FxLookup), looked up by SQL, cached per
    (currency, date) for one snapshot's parse."""

    max_age_days = MAX_FX_AGE_DAYS

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self.con = con
        self._cache: dict[tuple[str, date], FxRate | None] = {}

    def rate(self, currency: str, on: date) -> FxRate | None:
        key = (currency, on)
        if key not in self._cache:
            row = fetch_first(
                self.con, sql("select_fx_rate"),
                {"currency": currency, "on_date": on, "max_age_days": self.max_age_days},
            )
            self._cache[key] = FxRate(row[0], currency, row[1]) if row else None
        return self._cache[key]


def rejections_frame(rejections: list[Rejection], ctx: ParseContext) -> pl.DataFrame:
    observed_at = naive_utc(ctx.observed_at)
    rows = [
        {
            "snapshot_id": ctx.snapshot_id,
            "source": ctx.source,
            "row_key": r.row_key,
            "reason": r.reason,
            "detail": r.detail,
            "raw_excerpt": r.raw_excerpt,
            "observed_at": observed_at,
        }
        for r in rejections
    ]
    return pl.DataFrame(rows, schema=REJECTION_SCHEMA)


def load_result(con: duckdb.DuckDBPyConnection, ctx: ParseContext, result: ParseResult) -> None:
    load_frames(con, ctx, observations_frame(result, ctx), rejections_frame(result.rejections, ctx),
                fx_rates_frame(result.fx_rates, ctx))


def load_frames(con: duckdb.DuckDBPyConnection, ctx: ParseContext, observation_frame: pl.DataFrame,
                rejection_frame: pl.DataFrame, fx_rate_frame: pl.DataFrame, *, replaces: bool = True,
                digests: Future | None = None) -> None:
    """Replace what the snapshot gave before by these rows, in one transaction (both paths load here).
    `replaces=False` for a snapshot never parsed: its rows are written only here, with its parse record, in
    one transaction, so there is nothing to delete, and the deletes would each scan a whole table (a
    snapshot id is a hash: no zone map prunes it) for every body of a long import. `digests`: the snapshot's
    digests being computed by another thread from the same frame (pipeline.batch_digests), waited for last;
    without it they are computed here, from the rows just inserted."""
    batches = {"observation_batch": observation_frame, "rejection_batch": rejection_frame,
               "fx_rate_batch": fx_rate_frame}
    inserts = {"observation_batch": "insert_observations", "rejection_batch": "insert_rejections",
               "fx_rate_batch": "insert_fx_rates"}
    snapshot = {"snapshot_id": ctx.snapshot_id}
    fetched = {**snapshot, "observed_at": naive_utc(ctx.observed_at)}  # what every row of the snapshot carries
    with transaction(con):
        if replaces:
            for statement in _REPLACED:
                con.execute(sql(statement), snapshot)
        for name, frame in batches.items():
            if frame.height:  # most bodies have no rejection and no FX rate
                with registered(con, **{name: frame.to_arrow()}):
                    con.execute(sql(inserts[name]))
        if observation_frame.height:
            con.execute(sql("insert_jump_flags"), {**fetched, "jump_ratio": JUMP_RATIO})
            if digests is None:
                con.execute(sql("insert_observation_digests"), fetched)
            else:
                with registered(con, digest_batch=digests.result()):
                    con.execute(sql("insert_digest_batch"))
        _record_parse(con, ctx.snapshot_id, "loaded", observation_frame.height, rejection_frame.height, None)


# What a snapshot's load writes, deleted before it loads again.
_REPLACED = ("delete_snapshot_observations", "delete_snapshot_digests", "delete_snapshot_rejections",
             "delete_snapshot_fx_rates", "delete_snapshot_flags")


def parse_pending(
    con: duckdb.DuckDBPyConnection, store: RawStore, catalog: Catalog | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> LoadReport:
    """Parse and load every stored snapshot that has not been loaded yet. `progress(done, total)` is told
    after each one (the command line's progress bar)."""
    rows = con.execute(sql("select_unparsed_snapshots"), {"first_sources": _fx_sources()}).fetchall()
    return _parse_all(con, store, rows, catalog, progress, replaces=False)


def parse_snapshots(
    con: duckdb.DuckDBPyConnection, store: RawStore, snapshot_ids: list[str], catalog: Catalog | None = None
) -> LoadReport:
    """Parse and load these snapshots again, whatever their earlier parses gave (an imported snapshot whose
    validity changed); each load replaces what the snapshot gave before."""
    rows = con.execute(
        sql("select_snapshots_to_parse"), {"snapshot_ids": list(snapshot_ids), "first_sources": _fx_sources()}
    ).fetchall()
    return _parse_all(con, store, rows, catalog, None, replaces=True)


def _fx_sources() -> list[str]:
    # FX snapshots first, so that a non-USD price converts at a rate stored by the same run.
    return sorted(source_id for source_id, module in SOURCES.items() if module.KIND == FX)


def _parse_all(con, store: RawStore, rows: list[tuple], catalog: Catalog | None,
               progress: Callable[[int, int], None] | None, *, replaces: bool) -> LoadReport:
    """Parse each snapshot and load it, in order. While DuckDB loads one (its own connection, in a thread: DuckDB
    works without Python's lock), the next is parsed: an import of many bodies then takes about the time of its
    parsing alone. One load at a time is in flight; after an FX snapshot the next parse waits for its load, since
    it may convert at the rates that load brings. When the loader is the slower side, or no body is left, the
    parsing thread makes a snapshot's digests while the loader inserts it (_digest_here)."""
    report = LoadReport()
    finished = 0

    def tell(snapshot_id: str, outcome: tuple[int, int] | str) -> None:
        nonlocal finished
        if isinstance(outcome, str):
            report.failed[snapshot_id] = outcome
        else:
            report.loaded[snapshot_id] = outcome
        finished += 1
        if progress is not None:
            progress(finished, len(rows))

    loader_con = cursor(con)  # a second connection to the same database, for the loading thread
    digester = BatchDigester(con)
    try:
        with _one_duckdb_thread(con), ThreadPoolExecutor(max_workers=1, thread_name_prefix="tsi-load") as loader:
            in_flight = None
            for number, (snapshot_id, sha256, source_id, url, provider, fetched_at, valid_until) in enumerate(rows, 1):
                ctx = ParseContext(
                    source=source_id,
                    observed_at=fetched_at.replace(tzinfo=timezone.utc),
                    url=url,
                    snapshot_id=snapshot_id,
                    provider=provider,
                    valid_until=valid_until,
                )
                source = None
                try:
                    source = get_source(source_id)  # a source no longer known fails its snapshot, not the run
                    batch = parse_to_batch(con, ctx, source, store.get(sha256), catalog)
                except Exception as exc:  # noqa: BLE001 - whatever a body does to its parser, the others go on
                    batch = failure_text(exc)
                if _digest_here(batch, in_flight, last=number == len(rows)):
                    digests: Future = Future()
                    try:  # queued behind the load in flight, if any: the loader runs one at a time, in order
                        queued = loader.submit(_load_or_fail, loader_con, ctx, batch, replaces, digests)
                        digester.into(digests, batch.observations, ctx)
                    finally:
                        if not digests.done():  # interrupted: the loader's wait for them must end
                            digests.cancel()
                    if in_flight is not None:
                        tell(*in_flight.result())
                    in_flight = queued
                else:
                    if in_flight is not None:
                        tell(*in_flight.result())
                    in_flight = loader.submit(_load_or_fail, loader_con, ctx, batch, replaces)
                if source is not None and source.KIND == FX:
                    tell(*in_flight.result())
                    in_flight = None
            if in_flight is not None:
                tell(*in_flight.result())
    finally:
        digester.close()
        loader_con.close()
    return report


def _digest_here(batch: "LoadBatch | str", in_flight: Future | None, *, last: bool) -> bool:
    """Whether the parsing thread digests this batch itself (pipeline.batch_digests) while the loader inserts it:
    when the loader is still busy with the one before (it is the slower side: the parser would wait anyway), or
    when no body is left to parse. Otherwise the loader digests it, and the parser goes on to the next body."""
    if not isinstance(batch, LoadBatch) or not batch.observations.height:
        return False
    return last or (in_flight is not None and not in_flight.done())


@contextmanager
def _one_duckdb_thread(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """DuckDB on one thread while snapshots load (the setting is the database's, restored after). One snapshot's
    insert runs no faster on two threads (when this was measured, 100,000 rows from Arrow took about twice as
    long on two: the second thread only adds the work of keeping the rows in order), and the other core is the
    one the next body's parse (or a snapshot's digests, pipeline.batch_digests) runs on."""
    [(threads,)] = con.execute("select current_setting('threads')").fetchall()
    con.execute("set threads = ?", [1])
    try:
        yield
    finally:
        con.execute("set threads = ?", [threads])


def _load_or_fail(con, ctx: ParseContext, batch: "LoadBatch | str", replaces: bool,
                  digests: Future | None = None) -> tuple[str, tuple[int, int] | str]:
    """Load one parsed snapshot; or record it failed, with the reason its parse or its load gave.

    A body that cannot be read (not the format, cut short, hostile, or a parser's own bug) fails loudly with the
    reason, its load (one transaction) leaves nothing, and its body stays in the store for a re-parse. The rest of
    the collection, and the day's fixing, go on without it."""
    if not isinstance(batch, str):
        try:
            load_frames(con, ctx, batch.observations, batch.rejections, batch.fx_rates, replaces=replaces,
                        digests=digests)
        except Exception as exc:  # noqa: BLE001 - a load that fails is this snapshot's failure, not the run's
            batch = failure_text(exc)
        else:
            return ctx.snapshot_id, (batch.observations.height, batch.rejections.height)
    _record_parse(con, ctx.snapshot_id, "failed", 0, 0, batch[:2000])
    return ctx.snapshot_id, batch


@dataclass
class LoadBatch:
    """One snapshot's rows, parsed and checked, typed as the loader inserts them."""

    observations: pl.DataFrame
    rejections: pl.DataFrame
    fx_rates: pl.DataFrame


def parse_to_batch(con: duckdb.DuckDBPyConnection, ctx: ParseContext, source: ModuleType, raw: bytes,
                   catalog: Catalog | None) -> LoadBatch:
    """Parse one body into what its load inserts. A large body of a source that has a columnar path
    (`parse_columns`) takes it; every other body the readable one. Both give the same rows."""
    fx = WarehouseFx(con)
    if len(raw) >= COLUMNAR_MIN_BYTES and hasattr(source, "parse_columns"):
        catalog = catalog or default_catalog()
        with collector_paused():  # a SkyPilot catalog's hundreds of thousands of lists: some 15% faster
            parsed = source.parse_columns(raw, ctx, catalog)
        kept, rejections = check_columns(parsed, ctx, catalog, fx)
        return LoadBatch(warehouse_batch(kept, ctx), rejections_frame(rejections, ctx),
                         fx_rates_frame(parsed.fx_rates, ctx))
    result = parse_body(source, raw, ctx, catalog, fx=fx)
    return LoadBatch(observations_frame(result, ctx), rejections_frame(result.rejections, ctx),
                     fx_rates_frame(result.fx_rates, ctx))


def failure_text(exc: BaseException) -> str:
    """One line saying why a body could not be read, with the error's type (a ParseError, or a parser's own bug
    such as an InvalidOperation: what a maintainer needs to find it)."""
    text = " ".join(str(exc).split())[:1000]
    return f"{type(exc).__name__}: {text}"


def _record_parse(con, snapshot_id: str, outcome: str, n_obs: int, n_rej: int, error: str | None) -> None:
    con.execute(
        sql("insert_snapshot_parse"),
        {
            "snapshot_id": snapshot_id,
            "parsed_at": naive_utc(utc_now()),
            "outcome": outcome,
            "n_observations": n_obs,
            "n_rejections": n_rej,
            "error": error,
        },
    )
