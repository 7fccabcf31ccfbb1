"""A snapshot's digests (observation_digests, migration 007) from its parsed batch, before it is loaded.

The loader (pipeline.load) inserts a snapshot's rows, flags its jumps and commits on one DuckDB thread while
the next body is parsed on the other core. When the loader is the slower of the two (bodies of some thousands
of rows, each checked against the copies before it), or when no body is left to parse, the parsing thread
computes the digests instead, on its own connection (a cursor: the same database, its own temporary view and
table, shadowing the warehouse's) over the same Arrow batch, while the loader inserts. The statement is the same
file (sql/insert_observation_digests.sql) over a view of the batch with the warehouse's column names and types
(sql/create_batch_observations.sql), so the digests are the same, byte for byte, as those computed over the
table after the load.
"""
from __future__ import annotations

from concurrent.futures import Future

import duckdb
import polars as pl
import pyarrow as pa

from pipeline.records import ParseContext
from pipeline.warehouse import naive_utc, registered, sql


class BatchDigester:
    """Digests one batch at a time, on a cursor of `con` made when first needed (used by one thread: the
    parser's). A cursor costs some microseconds; a new in-memory database, 35 ms."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self._parent = con
        self._con: duckdb.DuckDBPyConnection | None = None

    def digests(self, observations: pl.DataFrame, ctx: ParseContext) -> pa.Table:
        con = self._connection(observations)
        with registered(con, observation_batch=observations.to_arrow()):
            con.execute("delete from observation_digests").fetchall()
            con.execute(sql("insert_observation_digests"),
                        {"snapshot_id": ctx.snapshot_id, "observed_at": naive_utc(ctx.observed_at)}).fetchall()
            return con.sql("select * from observation_digests").to_arrow_table()

    def into(self, future: Future, observations: pl.DataFrame, ctx: ParseContext) -> None:
        """Set the future to the batch's digests, or to the error that computing them gave (the snapshot's load
        then fails with it, as when the loader computes them)."""
        try:
            future.set_result(self.digests(observations, ctx))
        except Exception as exc:  # noqa: BLE001 - the snapshot's failure, told by its load
            future.set_exception(exc)

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
            self._con = None

    def _connection(self, observations: pl.DataFrame) -> duckdb.DuckDBPyConnection:
        if self._con is None:
            con = self._parent.cursor()  # its temporary view and table shadow the warehouse's tables
            with registered(con, observation_batch=observations.head(0).to_arrow()):
                con.execute(sql("create_batch_observations"))
                con.execute(sql("create_scratch_digests"))
            self._con = con
        return self._con
