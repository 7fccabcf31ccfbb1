"""What could move a fixing, and a settlement: the index without each provider in turn (leave-one-out).

Fixings. For each fixing with a value and each provider it considered, the value the method gives without
that provider: the same window and rung, the outlier screen and the estimator re-run on the other providers'
values (README "Methodology", steps 3 to 5), rounded as a fixing. Never widened: if fewer than min_providers
would be left, the row says the fixing would not stand (no value, reason `insufficient_providers`), which is
what the ladder would then have to rescue. What each kind of constituent does:

  included, or dropped by the screen (`outlier_mad`)   it voted in the screen (its value moved the median and
                                                       the MAD the others were screened against), so without
                                                       it the screen is re-run and may drop others, or fewer
  no vote (`insufficient_distinct_prices`,             steps 3 to 5 never saw it: the value without it is the
  `incomplete_blend`)                                  fixing's own (`no_vote`)
  a basket's member index                              the basket's provider: the equal-weight mean of the
                                                       other members' values, if min_members still have one
  a carried fixing                                     its constituents are those of the fixing it repeats,
                                                       so are its rows (what the carried value rests on)

A suppressed fixing has no value to move and no rows. The largest influence of a fixing is its row with the
largest |move| among those that still stand (ties: the first provider by name); a provider without which the
fixing would not stand is shown as such, not as a move.

Set-based. Every (fixing, provider left out) of a run is a scenario, and every scenario goes through the
engine's own statements for steps 3 and 4 at once (sql/select_screened_provider_values.sql, then
sql/select_index_values.sql) over a table of the remaining providers' values: n (n - 1) rows for a fixing of n
voters, so a year of daily fixings of every index is one pass of a few million rows, never one re-fix per
provider. Python then picks each scenario's estimator and rounds, as pipeline.fixing does. Each fixing also
gets a scenario with nobody left out, which must give the published value: if it does not (a stored
capped-weight fixing read back without its providers' listed GPUs), the rows say `not_reproduced` instead of
showing numbers that might be wrong.

The rows are written by pipeline.fixing.fix_range in the transaction that writes the fixings (table
fixing_influence, migration 012), for new revisions and for revisions found unchanged that have none yet (a
warehouse made before migration 012 gets them from `tsi backfill`). `tsi verify` does not compare them: they
are a function of the constituents and the definition, which verify checks field by field.

Settlements: pipeline/settlement_influence.py.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal

import duckdb
import polars as pl
import pyarrow as pa

from pipeline.definitions import IndexDefinition
from pipeline.fixing import Fixing, _estimate, divide, round_half_even
from pipeline.ladder import PARAM_SCHEMA
from pipeline.warehouse import registered, sql

# Exclusion codes of providers that voted in the screen (insufficient_providers: included, but too few).
VOTING_CODES = frozenset({None, "outlier_mad", "insufficient_providers"})
PCT_QUANTUM = Decimal("0.0001")
SCENARIO_SCHEMA = {
    "target_id": pl.Int64,
    "provider": pl.String,
    "provider_value": pl.Decimal(38, 20),
    "capacity": pl.Decimal(38, 4),
    "n_observations": pl.Int64,
    "exclusion": pl.String,
}
# select_index_values.sql reads the rows of the providers for a dispersion over observations; the scenarios
# need no dispersion, so their params say provider_values and this stays empty.
EMPTY_ROWS = pl.DataFrame(schema={"target_id": pl.Int64, "provider": pl.String, "usd_price": pl.Decimal(20, 10)})
BATCH_SCHEMA = {
    "index_id": pl.String,
    "fixing_date": pl.Date,
    "revision": pl.Int32,
    "provider": pl.String,
    "had_vote": pl.Boolean,
    "stands": pl.Boolean,
    "usd_per_gpu_hour_without": pl.Decimal(20, 4),
    "usd_per_mtok_without": pl.Decimal(20, 4),
    "move_usd_per_gpu_hour": pl.Decimal(20, 4),
    "move_usd_per_mtok": pl.Decimal(20, 4),
    "move_pct": pl.Decimal(18, 4),
    "n_providers_without": pl.Int32,
    "screened_without": pl.String,
    "listed_gpus": pl.Decimal(38, 4),
    "largest": pl.Boolean,
    "reason": pl.String,
}

ARROW_TYPES = {name: pl.Series(name, [], dtype).to_arrow().type for name, dtype in BATCH_SCHEMA.items()}


@dataclass(frozen=True)
class ProviderInfluence:
    provider: str
    provider_value: Decimal | None
    had_vote: bool
    stands: bool
    value_without: Decimal | None  # rounded as the fixing; None if the fixing would not stand
    move: Decimal | None  # value_without - the fixing's value
    move_pct: Decimal | None  # the move in % of the fixing's value, 4 places half-even
    n_providers_without: int
    screened_without: tuple[str, ...]  # dropped by the screen without it
    listed_gpus: Decimal | None = None
    largest: bool = False
    reason: str | None = None  # code: detail


def had_vote(code: str | None, value: Decimal | None) -> bool:
    return value is not None and code in VOTING_CODES


def _code(reason: str | None) -> str | None:
    return reason.split(":")[0] if reason else None


# --- the engine's steps 3 and 4 over scenarios ---------------------------------------------------------


def scenario_params(definitions: dict[int, IndexDefinition]) -> pl.DataFrame:
    """fix_target_params for scenarios: one row per target with its index's parameters (PARAM_SCHEMA of
    pipeline.fixing), the dispersion switched to provider values (no rows are read). Built per definition,
    then joined to the targets (a year has ~10^5 targets of a few dozen definitions)."""
    keys: dict[str, int] = {}
    for d in definitions.values():
        keys.setdefault(d.sha256, len(keys))
    unique = {keys[d.sha256]: d for d in definitions.values()}
    params = pl.DataFrame(
        [
            {
                "definition_no": number, "index_id": d.id, "price_type": d.price_type,
                "provider_value": d.provider_value, "marketplace_value": d.marketplace_value,
                "blend_input": d.blend_input, "blend_output": d.blend_output,
                "min_distinct_prices": d.min_distinct_prices, "outlier_screen": d.outlier_screen,
                "outlier_threshold": d.outlier_threshold, "outlier_min_providers": d.outlier_min_providers,
                "estimator": d.estimator, "trim_fraction": d.trim_fraction, "weight_cap": d.weight_cap,
                "dispersion_basis": "provider_values", "quantile_method": d.quantile_method,
            }
            for number, d in unique.items()
        ],
        schema={"definition_no": pl.Int64, **PARAM_SCHEMA},
    )
    targets = pl.DataFrame({"target_id": list(definitions), "definition_no": [keys[d.sha256] for d in
                                                                              definitions.values()]},
                           schema={"target_id": pl.Int64, "definition_no": pl.Int64})
    return targets.join(params, on="definition_no").drop("definition_no")


def scratch() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB for rerun (nothing of the warehouse is read or written there)."""
    con = duckdb.connect()
    con.execute("set preserve_insertion_order = false")  # every statement used orders what it needs
    return con


def rerun(scenarios: pl.DataFrame | pa.Table, params: pl.DataFrame, con: duckdb.DuckDBPyConnection | None = None
          ) -> dict[int, dict]:
    """Steps 3 and 4 of the method on given provider values, every scenario (target_id) at once, by the
    engine's own SQL in a scratch DuckDB (`con`, or one made for the call). Returns per target the fields
    pipeline.fixing._estimate reads, and `screened`: the providers the screen drops."""
    own = con is None
    con = scratch() if own else con
    names = ("provider_values", "fix_target_params", "fixing_rows", "screened_values")
    try:
        con.register("provider_values", scenarios if isinstance(scenarios, pa.Table)
                     else scenarios.select(list(SCENARIO_SCHEMA)).to_arrow())
        con.register("fix_target_params", params.to_arrow())
        con.register("fixing_rows", EMPTY_ROWS.to_arrow())
        screened = con.sql(sql("select_screened_provider_values")).to_arrow_table()
        con.register("screened_values", screened)
        values = pl.from_arrow(con.sql(sql("select_index_values")).to_arrow_table())
    finally:
        if own:
            con.close()
        else:
            for name in names:
                con.unregister(name)
    dropped = (
        pl.from_arrow(screened).filter(pl.col("exclusion_reason") == "outlier_mad")
        .group_by("target_id").agg(pl.col("provider").sort().alias("screened"))
    )
    rows = values.select("target_id", "n_providers", "median_value", "value_sum", "counted_sum", "counted_n",
                         "capped_median").join(dropped, on="target_id", how="left")
    return {row["target_id"]: row for row in rows.to_dicts()}


def estimate(d: IndexDefinition, row: dict | None) -> tuple[Decimal | None, int]:
    """(value rounded as a fixing, or None if fewer than min_providers are left; providers used)."""
    n = int(row["n_providers"]) if row else 0
    if n == 0 or n < d.min_providers:
        return None, n
    return round_half_even(_estimate(d, row), d.decimals), n


# --- fixings ---------------------------------------------------------------------------------------------


def leave_one_out(fixings: list[Fixing]) -> dict[tuple[str, date], list[ProviderInfluence]]:
    """The leave-one-out rows of every fixing with a value, keyed by (index id, fixing date), in the order of
    the fixing's constituents."""
    with_value = [f for f in fixings if f.value is not None]
    out = _index_influence([f for f in with_value if not f.definition.is_basket])
    out.update(_basket_influence([f for f in with_value if f.definition.is_basket]))
    return out


def _index_influence(fixings: list[Fixing]) -> dict:
    if not fixings:
        return {}
    # Fixings of one definition whose voters hold the same values (prices that did not move from one day to
    # the next, a carried fixing and its source) have the same rows: each such set is computed once.
    sets: dict[tuple, int] = {}
    set_of = []
    for f in fixings:
        voting = tuple(sorted((c.provider, c.provider_value, c.capacity if c.capacity is not None else Decimal(1))
                              for c in f.constituents if had_vote(_code(c.exclusion_reason), c.provider_value)))
        set_of.append(sets.setdefault((f.definition.sha256, voting), len(sets)))
    representative = {}
    for f, number in zip(fixings, set_of):
        representative.setdefault(number, f.definition)
    columns = [(number, p, v, g) for (_, voting), number in sets.items() for p, v, g in voting]
    voters = pl.from_arrow(pa.table({
        "fixing_no": pa.array([c[0] for c in columns], pa.int64()),
        "provider": pa.array([c[1] for c in columns], pa.string()),
        "provider_value": pa.array([c[2] for c in columns], pa.decimal128(38, 20)),
        "capacity": pa.array([c[3] for c in columns], pa.decimal128(38, 4)),
    }))
    # One scenario per provider left out, and one with nobody left out (the check against the published value).
    targets = pl.concat([
        voters.select("fixing_no", pl.col("provider").alias("left_out")),
        pl.DataFrame({"fixing_no": list(range(len(sets)))}, schema={"fixing_no": pl.Int64})
        .with_columns(pl.lit(None, pl.String).alias("left_out")),
    ]).with_row_index("target_id").with_columns(pl.col("target_id").cast(pl.Int64))
    scenarios = (
        targets.join(voters, on="fixing_no")
        .filter(pl.col("left_out").is_null() | (pl.col("provider") != pl.col("left_out")))
        .with_columns(pl.lit(0, pl.Int64).alias("n_observations"), pl.lit(None, pl.String).alias("exclusion"))
    )
    numbers, left_out, ids = (targets[c].to_list() for c in ("fixing_no", "left_out", "target_id"))
    results = rerun(scenarios, scenario_params({t: representative[n] for t, n in zip(ids, numbers)}))
    baseline, without = {}, {}
    for target_id, number, provider in zip(ids, numbers, left_out):
        if provider is None:
            baseline[number] = results.get(target_id)
        else:
            without[(number, provider)] = results.get(target_id)

    out = {}
    for number, f in zip(set_of, fixings):
        d = f.definition
        reproduced, _ = estimate(d, baseline[number])
        screened = tuple((baseline[number] or {}).get("screened") or ())
        rows = []
        for c in f.constituents:
            code = _code(c.exclusion_reason)
            common = dict(provider=c.provider, provider_value=c.provider_value, listed_gpus=c.capacity)
            if reproduced != f.value:
                rows.append(ProviderInfluence(
                    **common, had_vote=had_vote(code, c.provider_value), stands=False, value_without=None,
                    move=None, move_pct=None, n_providers_without=0, screened_without=(),
                    reason=(f"not_reproduced: the method re-applied to the stored constituents gives "
                            f"{reproduced if reproduced is not None else 'no value'}, not {f.value} (a "
                            "capped-weight fixing needs its providers' listed GPUs)"),
                ))
            elif not had_vote(code, c.provider_value):
                rows.append(ProviderInfluence(
                    **common, had_vote=False, stands=True, value_without=f.value, move=Decimal(0),
                    move_pct=Decimal(0), n_providers_without=f.n_providers, screened_without=screened,
                    reason=f"no_vote: excluded before the screen ({code}); the fixing does not use it",
                ))
            else:
                row = without.get((number, c.provider))
                value, n = estimate(d, row)
                rows.append(_row(f, common, value, n, tuple((row or {}).get("screened") or ()),
                                 f"insufficient_providers: {n} < {d.min_providers} without it (not widened)"))
        out[(d.id, f.fixing_date)] = _mark_largest(rows)
    return out


def _row(f: Fixing, common: dict, value: Decimal | None, n: int, screened: tuple, short: str) -> ProviderInfluence:
    if value is None:
        return ProviderInfluence(**common, had_vote=True, stands=False, value_without=None, move=None,
                                 move_pct=None, n_providers_without=n, screened_without=screened, reason=short)
    move = value - f.value
    pct = divide(move * 100, f.value).quantize(PCT_QUANTUM, ROUND_HALF_EVEN) if f.value else None
    return ProviderInfluence(**common, had_vote=True, stands=True, value_without=value, move=move, move_pct=pct,
                             n_providers_without=n, screened_without=screened)


def _mark_largest(rows: list[ProviderInfluence]) -> list[ProviderInfluence]:
    moving = [r for r in rows if r.stands and r.move]
    if not moving:
        return rows
    top = min(moving, key=lambda r: (-abs(r.move), r.provider))
    return [replace(r, largest=True) if r is top else r for r in rows]


def _basket_influence(fixings: list[Fixing]) -> dict:
    """A basket is the equal-weight mean of its members' published values: without member m, the mean of the
    others (sum minus m over count minus one), if the basket's required members still have a value."""
    out = {}
    for f in fixings:
        d = f.definition
        members = f.constituents
        used = [c for c in members if c.included]
        total, n = sum((c.provider_value for c in used), Decimal(0)), len(used)
        rows = []
        for c in members:
            common = dict(provider=c.provider, provider_value=c.provider_value, listed_gpus=None)
            if round_half_even(divide(total, n), d.decimals) != f.value:
                rows.append(ProviderInfluence(**common, had_vote=c.included, stands=False, value_without=None,
                                              move=None, move_pct=None, n_providers_without=0, screened_without=(),
                                              reason="not_reproduced: the members' values do not give the basket's"))
            elif not c.included:
                rows.append(ProviderInfluence(**common, had_vote=False, stands=True, value_without=f.value,
                                              move=Decimal(0), move_pct=Decimal(0), n_providers_without=n,
                                              screened_without=(), reason=f"no_vote: {_code(c.exclusion_reason)}"))
            else:
                left = n - 1
                value = (round_half_even(divide(total - c.provider_value, left), d.decimals)
                         if left and left >= d.required_members else None)
                rows.append(_row(f, common, value, left, (),
                                 f"insufficient_members: {left} < {d.required_members} without it"))
        out[(d.id, f.fixing_date)] = _mark_largest(rows)
    return out


def record_influence(con: duckdb.DuckDBPyConnection, fixings: list[Fixing]) -> int:
    """Write the leave-one-out rows of the fixings that stand in the warehouse after a run: those just written,
    and those found unchanged (the stored revision then rests on the same inputs) that have no rows yet.
    Called inside the transaction that writes the fixings. Returns the number of rows written."""
    standing = [f for f in fixings if f.value is not None and f.revision and (f.written or f.note is None)]
    if not standing:
        return 0
    keys = pl.DataFrame(
        [(f.definition.id, f.fixing_date, f.revision) for f in standing],
        schema={"index_id": pl.String, "fixing_date": pl.Date, "revision": pl.Int32}, orient="row",
    )
    with registered(con, influence_keys=keys.to_arrow()):
        missing = set(con.execute(sql("select_missing_fixing_influence")).fetchall())
    todo = [f for f in standing if (f.definition.id, f.fixing_date, f.revision) in missing]
    if not todo:
        return 0
    table = leave_one_out(todo)
    batch = [_batch_row(f, r) for f in todo for r in table[(f.definition.id, f.fixing_date)]]
    if not batch:
        return 0
    # Built as Arrow column by column: polars' Decimal construction from Python objects is slow.
    columns = list(zip(*batch))
    with registered(con, influence_batch=pa.table({
            name: pa.array(values, ARROW_TYPES[name]) for name, values in zip(BATCH_SCHEMA, columns)})):
        con.execute(sql("insert_fixing_influence"))
    return len(batch)


def _batch_row(f: Fixing, r: ProviderInfluence) -> tuple:
    gpu = f.definition.instrument_kind == "gpu"
    return (
        f.definition.id, f.fixing_date, f.revision, r.provider, r.had_vote, r.stands,
        r.value_without if gpu else None, None if gpu else r.value_without,
        r.move if gpu else None, None if gpu else r.move, r.move_pct, r.n_providers_without,
        ",".join(r.screened_without) or None, r.listed_gpus, r.largest, r.reason,
    )


def stored_influence(con: duckdb.DuckDBPyConnection, index_id: str, fixing_date: date,
                     revision: int) -> list[ProviderInfluence] | None:
    """The stored rows of one revision (None if it has none, or the warehouse predates migration 012)."""
    try:
        rows = con.execute(sql("select_fixing_influence"),
                           {"index_id": index_id, "fixing_date": fixing_date, "revision": revision}).fetchall()
    except duckdb.CatalogException:  # a read-only warehouse (or copy) made before migration 012
        return None
    if not rows:
        return None
    return [
        ProviderInfluence(provider=p, provider_value=v, had_vote=vote, stands=stands, value_without=without,
                          move=move, move_pct=pct, n_providers_without=n,
                          screened_without=tuple(screened.split(",")) if screened else (), listed_gpus=gpus,
                          largest=largest, reason=reason)
        for p, v, vote, stands, without, move, pct, n, screened, gpus, largest, reason in rows
    ]


def largest_of(rows: list[ProviderInfluence]) -> ProviderInfluence | None:
    return next((r for r in rows if r.largest), None)
