"""`tsi sources --unknown`: the names the catalog could not map, so that a maintainer can extend the alias tables.

Every parser records a name it cannot map as a rejection `unknown_instrument` (never a guess). This reads them back
from the warehouse, grouped by source, provider and name, most frequent first (SQL in
sql/select_unknown_instruments.sql).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb

from pipeline.warehouse import sql


@dataclass(frozen=True)
class UnknownInstrument:
    source: str
    provider: str
    source_instrument: str
    n_rows: int
    last_seen: datetime  # UTC
    example_detail: str


def unknown_instruments(con: duckdb.DuckDBPyConnection) -> list[UnknownInstrument]:
    return [UnknownInstrument(*row) for row in con.execute(sql("select_unknown_instruments")).fetchall()]


def format_table(rows: list[UnknownInstrument]) -> str:
    """Aligned columns for a terminal; names are printed as repr so that a stray space or control character shows."""
    header = ("rows", "last_seen_utc", "source", "provider", "name", "example")
    table = [
        (str(r.n_rows), r.last_seen.strftime("%Y-%m-%d %H:%M"), r.source, r.provider or "-", repr(r.source_instrument),
         r.example_detail[:100])
        for r in rows
    ]
    widths = [max([len(h)] + [len(row[i]) for row in table]) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip() for row in table]
    return "\n".join(lines)
