"""The daily fixing (DESIGN.md section 4; README "Methodology" states every step and parameter).

Set-based: one pass of a few SQL statements computes every (index, date, rung) target of a run at once,
whatever the number of days (a year's backfill is one pass, not 365):

  sql/select_fixing_digests.sql            the digests (observation_digests: a snapshot's rows of one provider,
                                           instrument, price type and validity, with their exact middle
                                           values, made at load) of each provider's latest collection in the
                                           window
  sql/select_fixing_rows.sql               the rows behind them, only for the providers whose value needs rows
                                           (several digests in a leg, region medians, a marketplace, a
                                           dispersion over observations)
  sql/select_provider_values.sql           one value per provider (median of rows, median of region medians,
                                           marketplace GPU-weighted median, token blend) and the vote floor
  sql/select_screened_provider_values.sql  the modified z-score outlier screen; each provider's weight
  sql/select_index_values.sql              the estimators and the dispersion

The fallback ladder runs one more pass, over the wider windows, only for the targets still short of
providers; sql/select_input_hashes.sql then combines the digests of the targets chosen into their input
hashes; a carry is an as-of join on the values the run fixed; baskets are sql/select_basket_values.sql over
their members' fixings. Observations of the period without digests stop the run (FixingInputError). Python
divides sums by counts (the means) in Decimal, rounds half-even at the very end, and writes. A date's fixing
is the same computed alone or inside a backfill: each target reads only its own window, and a carry looks back
only at dates the same run recomputes.
"""
from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal

import duckdb
import polars as pl

from pipeline.definitions import (
    EMPTY_SHA256,
    WAREHOUSE_DECIMALS,
    BasketDefinition,
    Definition,
    DefinitionError,
    IndexDefinition,
)
from pipeline.collector import collector_paused
from pipeline.http import utc_now
from pipeline.ladder import PAIR_SCHEMA, Ladder
from pipeline.warehouse import fetch_first, naive_utc, registered, sql, transaction

FINAL = "final"  # fixed from the index's own window
WIDENED = "widened"  # fixed from a wider window of the fallback ladder
CARRIED = "carried"  # the last value fixed from observations, repeated (at most carry_days days)
SUPPRESSED = "suppressed"  # no number
WEIGHT_QUANTUM = Decimal("1E-10")  # fixing_constituents.weight is DECIMAL(12, 10)
# The screen's constant (Iglewicz and Hoaglin), here only to show a dropped provider's z-score to people: the
# exclusion itself is decided in SQL, without a division.
MODIFIED_Z_CONSTANT = Decimal("0.6745")

MEMBER_SCHEMA = {
    "index_id": pl.String,
    "fixing_date": pl.Date,
    "status": pl.String,
    "value": pl.Decimal(38, 10),  # a member's rounded value: up to MAX_DECIMALS places
    "n_observations": pl.Int64,
    "input_hash": pl.String,
    "window_start": pl.Datetime("us"),
    "window_end": pl.Datetime("us"),
}


@dataclass
class Constituent:
    provider: str  # a provider, or for a basket a member index
    snapshot_id: str | None
    provider_value: Decimal | None
    n_observations: int
    included: bool = True
    exclusion_reason: str | None = None  # "code: detail"; codes in README "Methodology"
    weight: Decimal = Decimal(0)
    value_rule: str | None = None  # median_of_rows, median_of_region_medians, gpu_weighted_median, member_index
    segment: str | None = None
    observed_at: datetime | None = None  # the collection valued (naive UTC); None for a basket's member
    valid_until: date | None = None  # an imported collection's last date (it counted by date); None if live
    # GPUs listed (rows without a count weigh 1): the raw weight of capped_weight_median, kept so that
    # pipeline.influence can re-apply the estimator; None when read back from the warehouse or for a member.
    capacity: Decimal | None = None


@dataclass
class Fixing:
    definition: Definition
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
    # The providers (or members) considered: a list, or a function that builds it on first use (a backfill
    # computes thousands of fixings whose constituents are read only when written or explained).
    constituent_rows: list[Constituent] | Callable[[], list[Constituent]] = field(default_factory=list, repr=False)
    mean: Decimal | None = None
    window_hours: int | None = None  # the window the value rests on
    carried_from: date | None = None
    revision: int = 0  # set when written (or the revision that stands)
    written: bool = False  # False when nothing new was written
    note: str | None = None  # why a differing recomputation was not written
    # Computed after the fact from imported bodies (tsi import), not live at its fixing time.
    backfill: bool = False

    @property
    def index_id(self) -> str:
        return self.definition.id

    @property
    def constituents(self) -> list[Constituent]:
        if callable(self.constituent_rows):
            self.constituent_rows = self.constituent_rows()
        return self.constituent_rows

    @property
    def method(self) -> str:
        return method_text(self.definition, self.status, self.n_providers, self.window_hours, self.carried_from)


def method_text(d: Definition, status: str, n: int, window_hours: int | None, carried_from: date | None) -> str:
    """How a fixing's value was obtained, for a person (tsi explain, tsi fix): from the definition and the
    fixing alone, so that the text is the same for a stored fixing and a fresh computation."""
    if status == SUPPRESSED:
        if d.is_basket:
            return f"no value: {n} member(s) with a value, fewer than {d.required_members}"
        ladder = "/".join(str(h) for h in d.rung_window_hours)
        carry = f", and no value in the {d.carry_days} day(s) before to carry" if d.carry_days else ""
        return f"no value: fewer than {d.min_providers} providers in every window ({ladder} h){carry}"
    if d.is_basket:
        weakest = f" (its weakest member is {status})" if status != FINAL else ""
        return f"equal-weight mean of {n} member indices{weakest}"
    if d.estimator == "median" and d.mean_from_providers and n >= d.mean_from_providers:
        text = f"mean of {n} provider values ({n} providers >= mean_from_providers {d.mean_from_providers})"
    elif d.estimator == "median":
        text = f"median of {n} provider values"
    elif d.estimator == "mean":
        text = f"mean of {n} provider values"
    elif d.estimator == "trimmed_mean":
        cut = int((d.trim_fraction * n).to_integral_value(rounding=ROUND_FLOOR))
        text = f"trimmed mean of {n} provider values ({cut} cut from each end, trim_fraction {d.trim_fraction})"
    else:
        text = f"capped-weight median of {n} provider values (weight_cap {d.weight_cap})"
    if status == WIDENED:
        text += f", over the widened {window_hours} h window"
    if status == CARRIED:
        text = f"carried from {carried_from.isoformat()}: {text}"
    return text


QUANTA = {places: Decimal(1).scaleb(-places) for places in range(0, 11)}  # 1, 0.1, ..., 1E-10
QUOTIENT_CONTEXT = Context(prec=60, rounding=ROUND_HALF_EVEN)


def round_half_even(value: Decimal | None, decimals: int) -> Decimal | None:
    if value is None:
        return None
    return value.quantize(QUANTA[decimals], rounding=ROUND_HALF_EVEN)


def divide(numerator: Decimal | int, denominator: Decimal | int) -> Decimal:
    """A quotient to 60 significant digits, half-even. Rounded once more to 4 places at the end, this gives the
    correctly rounded result: the quotients here (sums of prices of at most 20 decimal places over counts)
    never fall within 1e-40 of a rounding tie without being exactly on it."""
    return QUOTIENT_CONTEXT.divide(Decimal(numerator), Decimal(denominator))


def register_definitions(con: duckdb.DuckDBPyConnection, definitions: list[Definition]) -> None:
    """Keep every definition used; a changed definition under an old version number is refused, and so is
    one asking for more decimal places than the warehouse keeps."""
    for d in definitions:
        if d.decimals > WAREHOUSE_DECIMALS:
            raise DefinitionError(
                f"index {d.id}: decimals = {d.decimals}, but the warehouse keeps fixings to {WAREHOUSE_DECIMALS} "
                "places; more places are for tsi fix --observations only"
            )
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


# --- computing ------------------------------------------------------------------------------------------


def compute_fixings(
    con: duckdb.DuckDBPyConnection, definitions: list[Definition], fixing_date: date
) -> list[Fixing]:
    """Compute (not write) the fixings of every definition for one date."""
    return compute_range(con, definitions, [fixing_date])


def compute_range(
    con: duckdb.DuckDBPyConnection, definitions: list[Definition], dates: list[date]
) -> list[Fixing]:
    """Compute (not write) the fixings of every definition for every date, from the `observations` relation
    of `con` (the warehouse table, or an in-memory table for `tsi fix --observations` and `tsi verify`).
    Returns them ordered by date, then by definition order."""
    wanted = sorted(set(dates))
    if not wanted:
        return []
    indices = [d for d in definitions if not d.is_basket]
    baskets = [d for d in definitions if d.is_basket]
    known_ids = {d.id for d in indices}
    for basket in baskets:
        missing = [m for m in basket.members if m not in known_ids]
        if missing:
            raise DefinitionError(f"basket {basket.id} needs its member indices {missing} in the same run")
    by_date: dict[tuple[str, date], Fixing] = {}
    with _unordered_results(con), collector_paused():  # a year's backfill: a sixth of its Python time
        if indices:
            by_date.update(_index_fixings(con, indices, wanted))
        if baskets:
            by_date.update(_basket_fixings(con, baskets, wanted, by_date))
    return [by_date[(d.id, day)] for day in wanted for d in definitions]


@contextmanager
def _unordered_results(con: duckdb.DuckDBPyConnection):
    """Let DuckDB return rows in any order while fixing (every statement here that needs an order says so with
    ORDER BY, and the rest are joined by key): keeping insertion order costs a year's backfill about a tenth of
    its time. The connection's own setting is restored after."""
    before = fetch_first(con, "select current_setting('preserve_insertion_order')")[0]
    con.execute("set preserve_insertion_order = false")
    try:
        yield
    finally:
        con.execute(f"set preserve_insertion_order = {'true' if before else 'false'}")


def _index_fixings(con, indices: list[IndexDefinition], wanted: list[date]) -> dict[tuple[str, date], Fixing]:
    definitions = {d.id: d for d in indices}
    ladder = Ladder(con, indices)
    pairs = pl.DataFrame(
        [{"index_id": d.id, "fixing_date": day} for d in indices for day in wanted], schema=PAIR_SCHEMA
    )
    ladder.run(pairs)
    # A target no rung could fix may carry a value from the carry_days before it. Those dates are fixed by
    # the same run (never read from the warehouse), so that a date gives the same result alone as inside a
    # backfill; only the ones not fixed already are computed, and only when some target needs them.
    lookback = pl.DataFrame(
        [
            {"index_id": index_id, "fixing_date": day - timedelta(days=back)}
            for index_id, day in ladder.unfixed(pairs).iter_rows()
            for back in range(1, definitions[index_id].carry_days + 1)
        ],
        schema=PAIR_SCHEMA,
    ).unique()
    ladder.run(lookback.join(ladder.attempted(), on=["index_id", "fixing_date"], how="anti"), rung_by_rung=False)

    chosen = ladder.choose()
    fixed: dict[tuple[str, date], Fixing] = {}
    for row in chosen.to_dicts():
        fixed[(row["index_id"], row["fixing_date"])] = _fixing_from_target(
            definitions[row["index_id"]], row, ladder.constituent_rows(row["target_id"])
        )
    sufficient = chosen.filter(pl.col("sufficient")).select("index_id", "fixing_date", "rung")
    carries = _carry_sources(indices, wanted, sufficient)
    out: dict[tuple[str, date], Fixing] = {}
    for d in indices:
        for day in wanted:
            key = (d.id, day)
            out[key] = _carried(fixed[(d.id, carries[key])], day) if key in carries else fixed[key]
    return out


def _carry_sources(indices: list[IndexDefinition], wanted: list[date], sufficient: pl.DataFrame) -> dict:
    """(index, date) -> the date whose value it carries: the latest date fixed from observations (final or
    widened) within carry_days before it. A carried value is never carried again: the look-back is from the
    date itself, so a value is repeated at most carry_days times."""
    carry_days = pl.DataFrame(
        [{"index_id": d.id, "carry_days": d.carry_days} for d in indices],
        schema={"index_id": pl.String, "carry_days": pl.Int64},
    )
    asked = pl.DataFrame(
        [{"index_id": d.id, "fixing_date": day} for d in indices for day in wanted],
        schema={"index_id": pl.String, "fixing_date": pl.Date},
    ).join(sufficient.select("index_id", "fixing_date"), on=["index_id", "fixing_date"], how="anti")
    if asked.is_empty() or sufficient.is_empty():
        return {}
    # The source must be strictly earlier: shift the sources one day forward and match backward.
    sources = sufficient.select(
        "index_id", pl.col("fixing_date").alias("source_date"),
        (pl.col("fixing_date") + pl.duration(days=1)).alias("match_date"),
    ).sort("match_date")
    matched = (
        asked.sort("fixing_date")
        .join_asof(sources, left_on="fixing_date", right_on="match_date", by="index_id", strategy="backward",
                   check_sortedness=False)  # both sorted by date above, hence within each index too
        .join(carry_days, on="index_id")
        .filter(pl.col("source_date").is_not_null()
                & ((pl.col("fixing_date") - pl.col("source_date")).dt.total_days() <= pl.col("carry_days")))
    )
    return {(i, day): source for i, day, source in matched.select("index_id", "fixing_date", "source_date").iter_rows()}


def _fixing_from_target(d: IndexDefinition, row: dict, provider_rows: Callable[[], list[dict]]) -> Fixing:
    """A fixing from its chosen target's row (select_index_values, with the input hash): final or widened if
    the target had enough providers, else suppressed (a carry may still replace it)."""
    rung = row["rung"]
    hours = d.rung_window_hours[rung]
    start, end = d.window(row["fixing_date"], hours)
    n = int(row["n_providers"])
    enough = bool(row["sufficient"])
    seen = row.get("n_considered") is not None
    value = _estimate(d, row) if enough else None
    mean = divide(row["dispersion_sum"], row["dispersion_n"]) if seen and row["dispersion_n"] else None
    return Fixing(
        definition=d,
        fixing_date=row["fixing_date"],
        status=(FINAL if rung == 0 else WIDENED) if enough else SUPPRESSED,
        value=round_half_even(value, d.decimals),
        n_providers=n,
        n_observations=int(row["n_observations"] or 0) if seen else 0,
        window_start=start,
        window_end=end,
        p25=round_half_even(row["p25_value"], d.decimals) if seen else None,
        p75=round_half_even(row["p75_value"], d.decimals) if seen else None,
        min=round_half_even(row["min_value"], d.decimals) if seen else None,
        max=round_half_even(row["max_value"], d.decimals) if seen else None,
        mean=round_half_even(mean, d.decimals),
        input_hash=row["input_hash"] or EMPTY_SHA256,
        constituent_rows=lambda: _constituents(d, provider_rows(), n, enough),
        window_hours=hours,
        backfill=bool(row.get("backfill")),
    )


def _constituents(d: IndexDefinition, rows: list[dict], n: int, enough: bool) -> list[Constituent]:
    out = []
    for p in rows:
        reason = _exclusion_text(d, p)
        included = p["exclusion_reason"] is None
        if included and not enough:
            included, reason = False, f"insufficient_providers: {n} < {d.min_providers}"
        weight = Decimal(0)
        if included:
            weight = divide(p["weight_numerator"], p["weight_denominator"]).quantize(WEIGHT_QUANTUM, ROUND_HALF_EVEN)
        out.append(
            Constituent(
                provider=p["provider"],
                snapshot_id=p["snapshot_id"],
                provider_value=p["provider_value"],
                n_observations=int(p["n_observations"]),
                included=included,
                exclusion_reason=reason,
                weight=weight,
                value_rule=p["value_rule"],
                segment=p["segment"],
                observed_at=p["observed_at"],
                valid_until=p["valid_until"],
                capacity=p["capacity"],
            )
        )
    return out


def _estimate(d: IndexDefinition, row: dict) -> Decimal:
    """The index's estimator over its included provider values (sums and counts from select_index_values)."""
    n = int(row["n_providers"])
    if d.estimator == "median" and d.mean_from_providers and n >= d.mean_from_providers:
        return divide(row["value_sum"], n)
    if d.estimator == "median":
        return row["median_value"]
    if d.estimator == "mean":
        return divide(row["value_sum"], n)
    if d.estimator == "trimmed_mean":
        return divide(row["counted_sum"], row["counted_n"])
    return row["capped_median"]


def _exclusion_text(d: IndexDefinition, p: dict) -> str | None:
    code = p["exclusion_reason"]
    if code is None:
        return None
    if code == "outlier_mad":
        # For a person only: the exclusion itself was decided exactly in SQL, without this division.
        z = divide(MODIFIED_Z_CONSTANT * (p["provider_value"] - p["screen_median"]), p["screen_mad"])
        return (f"outlier_mad: modified z {z.quantize(Decimal('0.01'), ROUND_HALF_EVEN)} beyond "
                f"{d.outlier_threshold} (median {p['screen_median'].normalize():f}, MAD {p['screen_mad'].normalize():f})")
    if code == "insufficient_distinct_prices":
        return f"insufficient_distinct_prices: {p['distinct_prices']} distinct price(s) < {d.min_distinct_prices}"
    if code == "incomplete_blend":
        return "incomplete_blend: a blended price needs an input and an output price in one collection"
    return code


def _carried(source: Fixing, day: date) -> Fixing:
    return dataclasses.replace(
        source,
        fixing_date=day,
        status=CARRIED,
        carried_from=source.fixing_date,
        constituent_rows=lambda: [dataclasses.replace(c) for c in source.constituents],
        revision=0,
        written=False,
        note=None,
    )


def _basket_constituents(b: BasketDefinition, members: list[Fixing], n: int, enough: bool) -> list[Constituent]:
    out = []
    for m in members:
        member_id = m.definition.id
        has_value = m.value is not None
        out.append(
            Constituent(
                provider=member_id,
                snapshot_id=None,
                provider_value=m.value,
                n_observations=m.n_observations,
                included=has_value and enough,
                exclusion_reason=None if has_value and enough else (
                    f"member_suppressed: {member_id} has no value" if not has_value
                    else f"insufficient_members: {n} < {b.required_members}"
                ),
                weight=divide(1, n).quantize(WEIGHT_QUANTUM, ROUND_HALF_EVEN) if has_value and enough else Decimal(0),
                value_rule="member_index",
            )
        )
    return out


def _basket_fixings(con, baskets: list[BasketDefinition], wanted: list[date], members: dict) -> dict:
    member_ids = sorted({m for b in baskets for m in b.members})
    member_rows = pl.DataFrame(
        [
            {
                "index_id": f.definition.id,
                "fixing_date": f.fixing_date,
                "status": f.status,
                "value": f.value,
                "n_observations": f.n_observations,
                "input_hash": f.input_hash,
                "window_start": naive_utc(f.window_start),
                "window_end": naive_utc(f.window_end),
            }
            for (index_id, day), f in members.items()
            if index_id in member_ids
        ],
        schema=MEMBER_SCHEMA,
    )
    links = pl.DataFrame(
        [{"basket_id": b.id, "member_id": m} for b in baskets for m in b.members],
        schema={"basket_id": pl.String, "member_id": pl.String},
    )
    params = pl.DataFrame(
        [{"basket_id": b.id, "quantile_method": b.quantile_method} for b in baskets],
        schema={"basket_id": pl.String, "quantile_method": pl.String},
    )
    with registered(con, member_fixings=member_rows.to_arrow(), basket_members=links.to_arrow(),
                    basket_params=params.to_arrow()):
        rows = {(r["basket_id"], r["fixing_date"]): r for r in con.sql(sql("select_basket_values")).to_arrow_table().to_pylist()}

    out = {}
    for b in baskets:
        for day in wanted:
            row = rows.get((b.id, day))
            n = int(row["n_members"]) if row else 0
            enough = n >= b.required_members
            # built on first use, like an index's (most fixings of a backfill are never explained)
            constituents = functools.partial(_basket_constituents, b, [members[(m, day)] for m in b.members], n, enough)
            start, end = b.window(day)
            if row and row["window_start"] is not None:
                start = row["window_start"].replace(tzinfo=timezone.utc)
                end = row["window_end"].replace(tzinfo=timezone.utc)
            out[(b.id, day)] = Fixing(
                definition=b,
                fixing_date=day,
                status=row["weakest_status"] if enough else SUPPRESSED,
                value=round_half_even(divide(row["value_sum"], n), b.decimals) if enough else None,
                n_providers=n,
                n_observations=int(row["n_observations"]) if row else 0,
                window_start=start,
                window_end=end,
                p25=round_half_even(row["p25_value"], b.decimals) if row else None,
                p75=round_half_even(row["p75_value"], b.decimals) if row else None,
                min=round_half_even(row["min_value"], b.decimals) if row else None,
                max=round_half_even(row["max_value"], b.decimals) if row else None,
                mean=round_half_even(divide(row["value_sum"], n), b.decimals) if n else None,
                input_hash=row["input_hash"] if row else EMPTY_SHA256,
                constituent_rows=constituents,
                window_hours=int((end - start).total_seconds() // 3600),
                # a basket of a backfilled member is a backfill too
                backfill=any(members[(m, day)].backfill for m in b.members if members[(m, day)].value is not None),
            )
    return out


# --- writing: append-only revisions ---------------------------------------------------------------------


def fix_date(
    con: duckdb.DuckDBPyConnection, definitions: list[Definition], fixing_date: date,
    computed_at: datetime | None = None,
) -> list[Fixing]:
    """Compute and write one date's fixings in one transaction (see fix_range)."""
    return fix_range(con, definitions, [fixing_date], computed_at)


def fix_range(
    con: duckdb.DuckDBPyConnection, definitions: list[Definition], dates: list[date],
    computed_at: datetime | None = None,
) -> list[Fixing]:
    """Compute and write the fixings of every date in one transaction.

    A fixing is never updated. The first computation of (index, date) is revision 1. A recomputation that
    gives the same result adds nothing. One that differs is written as the next revision, with its reason,
    only if it comes before the index's cutoff for that date and moves the value by more than its
    revision_threshold (or changes the status); otherwise the published revision stands and the fixing's
    `note` says why. A fixing made under another methodology version is never rewritten by a new one.
    """
    computed_at = computed_at or utc_now()
    with transaction(con):
        register_definitions(con, definitions)
        [(loaded_through,)] = con.execute(sql("select_loaded_through")).fetchall()
        fixings = compute_range(con, definitions, dates)
        _write_all(con, fixings, computed_at, loaded_through)
        # What could move each fixing (derived data), in the same transaction: imported here, as
        # pipeline.influence builds on this module.
        from pipeline.influence import record_influence
        record_influence(con, fixings)
    return fixings


def _write_all(
    con: duckdb.DuckDBPyConnection, fixings: list[Fixing], computed_at: datetime, loaded_through: datetime | None
) -> None:
    if not fixings:
        return
    keys = pl.DataFrame(
        [{"index_id": f.definition.id, "fixing_date": f.fixing_date} for f in fixings],
        schema={"index_id": pl.String, "fixing_date": pl.Date},
    )
    with registered(con, fixing_keys=keys.to_arrow()):
        latest = {(r[0], r[1]): r[2:] for r in con.execute(sql("select_latest_fixings")).fetchall()}
    fixing_rows, constituent_rows = [], []
    for f in fixings:
        revision, reason = _revision_for(f, latest.get((f.definition.id, f.fixing_date)), computed_at)
        if revision is None:
            continue
        f.revision, f.written = revision, True
        fixing_rows.append(_fixing_row(f, reason, computed_at) | {"loaded_through": loaded_through})
        constituent_rows.extend(_constituent_row(f, c) for c in f.constituents)
    if not fixing_rows:
        return
    with registered(con, fixing_batch=pl.DataFrame(fixing_rows, schema=FIXING_BATCH_SCHEMA).to_arrow(),
                    constituent_batch=pl.DataFrame(constituent_rows, schema=CONSTITUENT_BATCH_SCHEMA).to_arrow()):
        con.execute(sql("insert_fixings"))
        con.execute(sql("insert_fixing_constituents"))


def _revision_for(f: Fixing, latest: tuple | None, computed_at: datetime) -> tuple[int | None, str | None]:
    """(revision to write, reason), or (None, None) when nothing is written (f.note says why if it differs)."""
    if latest is None:
        return 1, None
    revision, status, value, input_hash, definition_sha, version = latest
    d = f.definition
    f.revision = revision
    if (status, value, input_hash, definition_sha) == (f.status, f.value, f.input_hash, d.sha256):
        return None, None
    shown = f"{status} {value if value is not None else '-'}"
    recomputed = f"{f.status} {f.value if f.value is not None else '-'}"
    if version != d.methodology_version:
        f.note = (f"revision {revision} was fixed under methodology {version}; methodology "
                  f"{d.methodology_version} does not rewrite history (recomputed: {recomputed})")
        return None, None
    cutoff = d.cutoff(f.fixing_date)
    if computed_at > cutoff:
        f.note = (f"after the cutoff {cutoff:%Y-%m-%dT%H:%MZ}: revision {revision} ({shown}) is final "
                  f"(recomputed: {recomputed})")
        return None, None
    moved = value is not None and f.value is not None and abs(f.value - value) > d.revision_threshold * abs(value)
    if status == f.status and not moved and (value is None) == (f.value is None):
        f.note = (f"within {d.revision_threshold * 100:f}% of revision {revision} ({shown}): not revised "
                  f"(recomputed: {recomputed})")
        return None, None
    change = ""
    if value is not None and f.value is not None:
        change = f", {divide((f.value - value) * 100, value).quantize(Decimal('0.01'), ROUND_HALF_EVEN):+f}%"
    return revision + 1, (f"correction before the cutoff {cutoff:%Y-%m-%dT%H:%MZ}: {shown} -> {recomputed}"
                          f"{change}; input hash {input_hash[:12]} -> {f.input_hash[:12]}")


FIXING_BATCH_SCHEMA = {
    "index_id": pl.String,
    "fixing_date": pl.Date,
    "revision": pl.Int32,
    "status": pl.String,
    "usd_per_gpu_hour": pl.Decimal(20, 4),
    "usd_per_mtok": pl.Decimal(20, 4),
    "methodology_version": pl.String,
    "definition_sha256": pl.String,
    "n_providers": pl.Int32,
    "n_observations": pl.Int32,
    "window_start": pl.Datetime("us"),
    "window_end": pl.Datetime("us"),
    "p25": pl.Decimal(20, 4),
    "p75": pl.Decimal(20, 4),
    "min": pl.Decimal(20, 4),
    "max": pl.Decimal(20, 4),
    "mean": pl.Decimal(20, 4),
    "input_hash": pl.String,
    "revision_reason": pl.String,
    "computed_at": pl.Datetime("us"),
    "window_hours": pl.Int32,
    "carried_from": pl.Date,
    "loaded_through": pl.Datetime("us"),
    "backfill": pl.Boolean,
}
CONSTITUENT_BATCH_SCHEMA = {
    "index_id": pl.String,
    "fixing_date": pl.Date,
    "revision": pl.Int32,
    "provider": pl.String,
    "snapshot_id": pl.String,
    "provider_value": pl.Decimal(38, 20),
    "n_observations": pl.Int32,
    "included": pl.Boolean,
    "exclusion_reason": pl.String,
    "weight": pl.Decimal(12, 10),
    "value_rule": pl.String,
    "observed_at": pl.Datetime("us"),
    "valid_until": pl.Date,
}


def _fixing_row(f: Fixing, reason: str | None, computed_at: datetime) -> dict:
    d = f.definition
    return {
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
        "mean": f.mean,
        "input_hash": f.input_hash,
        "revision_reason": reason,
        "computed_at": naive_utc(computed_at),
        "window_hours": f.window_hours,
        "carried_from": f.carried_from,
        "backfill": f.backfill,
    }


def _constituent_row(f: Fixing, c: Constituent) -> dict:
    return {
        "index_id": f.definition.id,
        "fixing_date": f.fixing_date,
        "revision": f.revision,
        "provider": c.provider,
        "snapshot_id": c.snapshot_id,
        "provider_value": c.provider_value,
        "n_observations": c.n_observations,
        "included": c.included,
        "exclusion_reason": c.exclusion_reason,
        "weight": c.weight,
        "value_rule": c.value_rule,
        "observed_at": c.observed_at,
        "valid_until": c.valid_until,
    }
