"""The fallback ladder (README "Methodology", the ladder): each (index, date) pair is fixed on its lowest rung
(window) with enough providers, else on its widest, which a suppressed fixing then shows. A pass is one set of
targets (an index, a date and a rung) through the statements of the fixing's SQL at once; pipeline.fixing turns
the chosen targets into fixings.
"""
from __future__ import annotations

from collections.abc import Callable
from datetime import time

import polars as pl

from pipeline.definitions import IndexDefinition
from pipeline.warehouse import registered, sql

KEY_SCHEMA = {
    "index_id": pl.String,
    "instrument_kind": pl.String,
    "instrument": pl.String,
    "price_type": pl.String,
    "sources": pl.List(pl.String),
    "segments": pl.List(pl.String),
}
RUNG_SCHEMA = {
    "index_id": pl.String,
    "rung": pl.Int32,
    "window_hours": pl.Int32,
    "fixing_minutes": pl.Int32,
    "min_providers": pl.Int32,
}
PARAM_SCHEMA = {
    "index_id": pl.String,
    "price_type": pl.String,
    "provider_value": pl.String,
    "marketplace_value": pl.String,
    "blend_input": pl.Decimal(16, 12),
    "blend_output": pl.Decimal(16, 12),
    "min_distinct_prices": pl.Int32,
    "outlier_screen": pl.String,
    "outlier_threshold": pl.Decimal(12, 6),
    "outlier_min_providers": pl.Int32,
    "estimator": pl.String,
    "trim_fraction": pl.Decimal(12, 6),
    "weight_cap": pl.Decimal(12, 6),
    "dispersion_basis": pl.String,
    "quantile_method": pl.String,
}
PAIR_SCHEMA = {"index_id": pl.String, "fixing_date": pl.Date}


class FixingInputError(ValueError):
    """The observations cannot be fixed as they stand (e.g. loaded without their digests). A ValueError, so
    that the command line reports it in one line, as bad input, not as a traceback."""
TARGET_COLUMNS = ("target_id", "index_id", "fixing_date", "rung", "window_hours", "fixing_minutes", "min_providers")


class Ladder:
    """The fallback ladder over sets of (index, date) pairs, each pass a set of targets (an index, a date and a
    rung, numbered target_id across the whole run). A pair's fixing comes from its lowest sufficient rung, or,
    if none is sufficient, from its widest (a suppressed fixing shows what that window held)."""

    def __init__(self, con, indices: list[IndexDefinition]):
        self.con = con
        self.keys, self.rungs, self.params = index_frames(indices)
        self.passes: list[dict] = []  # per pass: rows (arrow), screened and counted (polars)
        self._attempted: list[pl.DataFrame] = []
        self._next_id = 0
        self._spans: dict[int, tuple[pl.DataFrame, int, int]] = {}

    def run(self, pairs: pl.DataFrame, *, rung_by_rung: bool = True) -> None:
        """Fix `pairs` on the lowest sufficient rung. Rung 0 goes first alone (most targets stop there); the
        wider rungs of the targets left are computed together in one more pass (a pass costs about the same for
        one rung or several), or all rungs at once when rung_by_rung is false."""
        self._attempted.append(pairs)
        stages = ((pl.col("rung") == 0), (pl.col("rung") > 0)) if rung_by_rung else (pl.lit(True),)
        pending = pairs
        for which in stages:
            if pending.is_empty():
                return
            targets = pending.join(self.rungs.filter(which), on="index_id", how="inner")
            if targets.is_empty():
                return
            targets = targets.with_row_index("target_id", offset=self._next_id).with_columns(
                pl.col("target_id").cast(pl.Int64)).select(TARGET_COLUMNS)
            self._next_id += targets.height
            fixed = self._run_pass(targets)
            pending = pending.join(fixed, on=["index_id", "fixing_date"], how="anti")

    def _run_pass(self, targets: pl.DataFrame) -> pl.DataFrame:
        """The statements of one pass; returns the pairs it fixed (some rung sufficient)."""
        con = self.con
        exploded = targets.join(self.keys, on="index_id", how="inner").select(
            "target_id", "fixing_date", "window_hours", "fixing_minutes", "instrument_kind", "instrument",
            "price_type", "sources", "segments",
        )
        ends = targets.select(
            (pl.col("fixing_date").cast(pl.Datetime("us")) + pl.duration(minutes=pl.col("fixing_minutes"))).alias("end"),
            pl.col("window_hours"),
        ).with_columns((pl.col("end") - pl.duration(hours=pl.col("window_hours"))).alias("start"))
        bounds = {"window_floor": ends["start"].min(), "window_ceiling": ends["end"].max()}
        [(undigested,)] = con.execute(sql("select_undigested_observations"), bounds).fetchall()
        if undigested:
            raise FixingInputError(
                f"{undigested} observation(s) between {bounds['window_floor']} and {bounds['window_ceiling']} UTC "
                "have no digest (observation_digests): observations are fixed through their digests, made when "
                "pipeline.load loads them (or by sql/insert_observation_digests.sql)"
            )
        target_params = targets.select("target_id", "index_id").join(self.params, on="index_id").drop("index_id")
        registered = []

        def keep(name, table):
            con.register(name, table)
            registered.append(name)
            return table

        try:
            keep("fix_targets", exploded.to_arrow())
            keep("fix_target_params", target_params.to_arrow())
            digests = keep("fixing_digests", con.sql(sql("select_fixing_digests"), params=bounds).to_arrow_table())
            keep("fixing_rows", con.sql(sql("select_fixing_rows"), params=bounds).to_arrow_table())
            keep("provider_values", con.sql(sql("select_provider_values")).to_arrow_table())
            screened = keep("screened_values", con.sql(sql("select_screened_provider_values")).to_arrow_table())
            values = con.sql(sql("select_index_values")).to_arrow_table()
        finally:
            for name in registered:
                con.unregister(name)
        counted = targets.join(pl.from_arrow(values), on="target_id", how="left").with_columns(
            pl.col("n_providers").fill_null(0),
            pl.lit(len(self.passes)).alias("pass_no"),
        ).with_columns((pl.col("n_providers") >= pl.col("min_providers")).alias("sufficient"))
        self.passes.append({"digests": digests, "screened": screened, "counted": counted})
        return counted.filter(pl.col("sufficient")).select("index_id", "fixing_date").unique()

    def attempted(self) -> pl.DataFrame:
        return pl.concat(self._attempted).unique() if self._attempted else pl.DataFrame(schema=PAIR_SCHEMA)

    def _counted(self) -> pl.DataFrame:
        return pl.concat([p["counted"] for p in self.passes], how="vertical_relaxed")

    def unfixed(self, pairs: pl.DataFrame) -> pl.DataFrame:
        if not self.passes:
            return pairs
        fixed = self._counted().filter(pl.col("sufficient")).select("index_id", "fixing_date").unique()
        return pairs.join(fixed, on=["index_id", "fixing_date"], how="anti")

    def choose(self) -> pl.DataFrame:
        """One target per pair: the lowest sufficient rung, else the widest tried; with its input hash."""
        if not self.passes:
            return pl.DataFrame()
        chosen = (
            self._counted()
            # sufficient first, then the lowest rung if sufficient, the widest if not
            .with_columns(pl.when(pl.col("sufficient")).then(pl.col("rung")).otherwise(-pl.col("rung")).alias("order"))
            .sort("index_id", "fixing_date", "sufficient", "order", descending=[False, False, True, False])
            .unique(subset=["index_id", "fixing_date"], keep="first", maintain_order=True)
            .drop("order")
        )
        hashes = self._hash(chosen)
        return chosen.join(hashes, on="target_id", how="left")

    def _hash(self, chosen: pl.DataFrame) -> pl.DataFrame:
        """Input hashes for the chosen targets only, pass by pass (select_input_hashes.sql); each pass's
        constituent rows are kept, each target's rows contiguous, for lazy reading."""
        frames = [pl.DataFrame(schema={"target_id": pl.Int64, "input_hash": pl.String, "backfill": pl.Boolean})]
        for number, one_pass in enumerate(self.passes):
            wanted = chosen.filter(pl.col("pass_no") == number).select("target_id")
            if wanted.is_empty():
                continue
            with registered(self.con, fixing_digests=one_pass["digests"], hash_targets=wanted.to_arrow()):
                hashed = pl.from_arrow(self.con.sql(sql("select_input_hashes")).to_arrow_table())
            if hashed.is_empty():
                continue
            frames.append(hashed)
            # select_screened_provider_values.sql returns the providers ordered by target and provider: each
            # target's rows are one contiguous span
            table = pl.from_arrow(one_pass["screened"]).with_row_index("position")
            spans = table.group_by("target_id").agg(pl.col("position").min().alias("start"), pl.len().alias("length"))
            self._spans.update(
                (target_id, (table, start, length))
                for target_id, start, length in zip(*(spans[c].to_list() for c in ("target_id", "start", "length")))
            )
        return pl.concat(frames)

    def constituent_rows(self, target_id: int) -> Callable[[], list[dict]]:
        span = self._spans.get(target_id)
        if span is None:
            return lambda: []
        table, start, length = span
        return lambda: table.slice(start, length).to_dicts()


def index_frames(indices: list[IndexDefinition]) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    keys = pl.DataFrame(
        [
            {
                "index_id": d.id,
                "instrument_kind": d.instrument_kind,
                "instrument": instrument,
                "price_type": price_type,
                "sources": list(d.sources) if d.sources is not None else None,
                "segments": list(d.segments) if d.segments is not None else None,
            }
            for d in indices
            for instrument in d.instruments
            for price_type in d.leg_price_types
        ],
        schema=KEY_SCHEMA,
    )
    rungs = pl.DataFrame(
        [
            {
                "index_id": d.id,
                "rung": number,
                "window_hours": hours,
                "fixing_minutes": _minutes(d.fixing_time_utc),
                "min_providers": d.min_providers,
            }
            for d in indices
            for number, hours in enumerate(d.rung_window_hours)
        ],
        schema=RUNG_SCHEMA,
    )
    params = pl.DataFrame(
        [
            {
                "index_id": d.id,
                "price_type": d.price_type,
                "provider_value": d.provider_value,
                "marketplace_value": d.marketplace_value,
                "blend_input": d.blend_input,
                "blend_output": d.blend_output,
                "min_distinct_prices": d.min_distinct_prices,
                "outlier_screen": d.outlier_screen,
                "outlier_threshold": d.outlier_threshold,
                "outlier_min_providers": d.outlier_min_providers,
                "estimator": d.estimator,
                "trim_fraction": d.trim_fraction,
                "weight_cap": d.weight_cap,
                "dispersion_basis": d.dispersion_basis,
                "quantile_method": d.quantile_method,
            }
            for d in indices
        ],
        schema=PARAM_SCHEMA,
    )
    return keys, rungs, params


def _minutes(clock: str) -> int:
    moment = time.fromisoformat(clock)
    return moment.hour * 60 + moment.minute
