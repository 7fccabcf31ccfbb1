"""The daily fixing (DESIGN.md section 4): definitions + observations in the warehouse -> fixings.

The heavy work is set-based SQL (sql/select_provider_values.sql, sql/select_index_values.sql) over every
index of the date at once; Python only applies the sufficiency rule, rounds, and writes the rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal

import duckdb
import polars as pl

from pipeline.definitions import DefinitionError, IndexDefinition
from pipeline.http import utc_now
from pipeline.warehouse import fetch_first, naive_utc, sql, transaction

FINAL = "final"
SUPPRESSED = "suppressed"


@dataclass
class Constituent:
    provider: str
    snapshot_id: str
    provider_value: Decimal
    n_observations: int
    included: bool = True
    exclusion_reason: str | None = None
    weight: Decimal = Decimal(0)


@dataclass
class Fixing:
    definition: IndexDefinition
    fixing_date: date
    status: str
    value: Decimal | None
    n_providers: int
    n_observations: int
    window_start: datetime
    window_end: datetime
    p25: Decimal | None
    p75: Decimal | None
    min: Decimal | None
    max: Decimal | None
    input_hash: str
    constituents: list[Constituent] = field(default_factory=list)
    revision: int = 0  # set when written
    written: bool = False  # False when an identical fixing was already there


def round_half_even(value: Decimal | None, decimals: int) -> Decimal | None:
    if value is None:
        return None
    return value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_EVEN)


def register_definitions(con: duckdb.DuckDBPyConnection, definitions: list[IndexDefinition]) -> None:
    """Keep every definition used; a changed definition under an old version number is refused."""
    for d in definitions:
        known = fetch_first(
            con, sql("select_index_definition_hash"), {"index_id": d.id, "methodology_version": d.methodology_version}
        )
        if known and known[0] != d.sha256:
            raise DefinitionError(
                f"index {d.id} methodology {d.methodology_version} differs from the definition already used "
                "under that version; bump methodology_version"
            )
        if not known:
            con.execute(
                sql("insert_index_definition"),
                {
                    "index_id": d.id,
                    "methodology_version": d.methodology_version,
                    "definition_json": d.canonical_json(),
                    "definition_sha256": d.sha256,
                    "first_seen_at": naive_utc(utc_now()),
                },
            )


def compute_fixings(
    con: duckdb.DuckDBPyConnection, definitions: list[IndexDefinition], fixing_date: date
) -> list[Fixing]:
    """Compute (not write) the fixings of every definition for one date."""
    targets = pl.DataFrame(
        [
            {
                "index_id": d.id,
                "instrument_kind": d.instrument_kind,
                "instrument": d.instrument,
                "price_type": d.price_type,
                "sources": list(d.sources),
                "window_start": naive_utc(d.window(fixing_date)[0]),
                "window_end": naive_utc(d.window(fixing_date)[1]),
                "fixing_date": fixing_date,
            }
            for d in definitions
        ],
        schema={
            "index_id": pl.String,
            "instrument_kind": pl.String,
            "instrument": pl.String,
            "price_type": pl.String,
            "sources": pl.List(pl.String),
            "window_start": pl.Datetime("us"),
            "window_end": pl.Datetime("us"),
            "fixing_date": pl.Date,
        },
    ).to_arrow()
    con.register("fix_targets", targets)
    try:
        provider_rows = con.sql(sql("select_provider_values")).to_arrow_table()
    finally:
        con.unregister("fix_targets")
    con.register("provider_values", provider_rows)
    try:
        index_rows = {row[0]: row for row in con.execute(sql("select_index_values")).fetchall()}
    finally:
        con.unregister("provider_values")

    by_index: dict[str, list[Constituent]] = {}
    for row in provider_rows.to_pylist():
        by_index.setdefault(row["index_id"], []).append(
            Constituent(row["provider"], row["snapshot_id"], row["provider_value"], int(row["n_observations"]))
        )

    fixings = []
    for d in definitions:
        start, end = d.window(fixing_date)
        constituents = by_index.get(d.id, [])
        row = index_rows.get(d.id)
        n_providers = len(constituents)
        enough = n_providers >= d.min_providers
        for c in constituents:
            c.weight = (Decimal(1) / n_providers).quantize(Decimal("1E-10"), ROUND_HALF_EVEN) if enough else Decimal(0)
            if not enough:
                c.included = False
                c.exclusion_reason = f"insufficient_providers: {n_providers} < {d.min_providers}"
        _, n, n_obs, median, p25, p75, low, high, input_hash = row if row else (None, 0, 0, None, None, None, None, None, None)
        fixings.append(
            Fixing(
                definition=d,
                fixing_date=fixing_date,
                status=FINAL if enough else SUPPRESSED,
                value=round_half_even(median, d.decimals) if enough else None,
                n_providers=n_providers,
                n_observations=int(n_obs or 0),
                window_start=start,
                window_end=end,
                p25=round_half_even(p25, d.decimals),
                p75=round_half_even(p75, d.decimals),
                min=round_half_even(low, d.decimals),
                max=round_half_even(high, d.decimals),
                # With no observation at all the hash is over nothing: sha256 of the empty string.
                input_hash=input_hash or "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
                constituents=constituents,
            )
        )
    return fixings


def fix_date(
    con: duckdb.DuckDBPyConnection, definitions: list[IndexDefinition], fixing_date: date,
    computed_at: datetime | None = None,
) -> list[Fixing]:
    """Compute and write one date's fixings in one transaction. A rerun that finds the same result adds nothing;
    a different result (new inputs arrived) is written as the next revision, with the reason."""
    computed_at = computed_at or utc_now()
    with transaction(con):
        register_definitions(con, definitions)
        fixings = compute_fixings(con, definitions, fixing_date)
        for f in fixings:
            _write(con, f, computed_at)
    return fixings


def _write(con: duckdb.DuckDBPyConnection, f: Fixing, computed_at: datetime) -> None:
    d = f.definition
    latest = fetch_first(con, sql("select_latest_fixing"), {"index_id": d.id, "fixing_date": f.fixing_date})
    if latest:
        revision, status, gpu_value, token_value, input_hash, definition_sha = latest
        if (status, gpu_value if d.instrument_kind == "gpu" else token_value, input_hash, definition_sha) == (
            f.status, f.value, f.input_hash, d.sha256
        ):
            f.revision, f.written = revision, False
            return
        f.revision = revision + 1
        reason = "recomputed: inputs or definition changed since revision %d" % revision
    else:
        f.revision, reason = 1, None
    con.execute(
        sql("insert_fixing"),
        {
            "index_id": d.id,
            "fixing_date": f.fixing_date,
            "revision": f.revision,
            "status": f.status,
            "usd_per_gpu_hour": f.value if d.instrument_kind == "gpu" else None,
            "usd_per_mtok": f.value if d.instrument_kind == "token" else None,
            "methodology_version": d.methodology_version,
            "definition_sha256": d.sha256,
            "n_providers": f.n_providers,
            "n_observations": f.n_observations,
            "window_start": naive_utc(f.window_start),
            "window_end": naive_utc(f.window_end),
            "p25": f.p25,
            "p75": f.p75,
            "min": f.min,
            "max": f.max,
            "input_hash": f.input_hash,
            "revision_reason": reason,
            "computed_at": naive_utc(computed_at),
        },
    )
    for c in f.constituents:
        con.execute(
            sql("insert_fixing_constituent"),
            {
                "index_id": d.id,
                "fixing_date": f.fixing_date,
                "revision": f.revision,
                "provider": c.provider,
                "snapshot_id": c.snapshot_id,
                "provider_value": c.provider_value,
                "n_observations": c.n_observations,
                "included": c.included,
                "exclusion_reason": c.exclusion_reason,
                "weight": c.weight,
            },
        )
    f.written = True
