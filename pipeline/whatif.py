"""Audit and what-if: fixings from a plain CSV of observations, without the warehouse (`tsi fix`).

The CSV is checked row by row, loaded into an in-memory DuckDB table with the columns of the warehouse's
`observations`, and fixed by the same SQL as the daily run (pipeline.fixing.compute_range). So anyone can
recompute a published index (ours, or a third party's that released its inputs) from its inputs and a
definitions file, and see what a change of inputs or of methodology would have given.

Columns (header names, any order): `date` (YYYY-MM-DD) or `observed_at` (ISO 8601; without a zone, UTC),
`provider`, `instrument`, `price_type`, `usd_price` (or, named by its unit, `usd_per_gpu_hour` or
`usd_per_mtok`); optional `region`, `gpu_count`, `segment` (default: the
provider's segment in pipeline/catalog/providers.csv), `instrument_kind` (default: from the price type),
`source`. A row with only a `date` counts as observed at 00:00 UTC that day, so it falls in that day's
window for any fixing time after midnight. Rows of one provider observed at the same moment form one
collection, as the bodies of one fetch do.
"""
from __future__ import annotations

import csv
import dataclasses
from collections import Counter
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path

import duckdb
import polars as pl

from pipeline.catalog import default_catalog
from pipeline.definitions import BLENDED, PRICE_TYPES, Definition, is_price_type
from pipeline.fixing import Fixing, compute_range
from pipeline.records import GPU, TOKEN, quantize_usd
from pipeline.warehouse import registered, sql

REQUIRED = ("provider", "instrument", "price_type", "usd_price")
OPTIONAL = ("date", "observed_at", "region", "gpu_count", "segment", "instrument_kind", "source")
# The price column may be named by its unit, as the warehouse names it; the unit then gives the kind.
PRICE_COLUMNS = {"usd_per_gpu_hour": GPU, "usd_per_mtok": TOKEN}
MAX_REPORTED_ERRORS = 5
# Bounds on what a file may make the engine do. Observations outside these dates are refused (a row dated
# 9999-12-31 once made the run plan every date up to it and grow to 24 GB; year 1 overflowed the window's
# start), and one run fixes at most MAX_FIXING_DATES dates (ten years: give --from/--to for a part).
EARLIEST_DATE = date(2000, 1, 1)
LATEST_DATE = date(2099, 12, 31)
MAX_FIXING_DATES = 3660
MAX_TEXT_CHARS = 200  # a provider, instrument, region, segment or source name longer than this is not one
MAX_FILE_BYTES = 1024 * 1024 * 1024  # 1 GiB of CSV is some ten million rows: beyond it, split the file
# The engine's view of an observation: the warehouse `observations` columns that select_fixing_rows.sql reads.
ENGINE_SCHEMA = {
    "snapshot_id": pl.String,
    "row_key": pl.String,
    "source": pl.String,
    "provider": pl.String,
    "segment": pl.String,
    "instrument_kind": pl.String,
    "instrument": pl.String,
    "price_type": pl.String,
    "region": pl.String,
    "gpu_count": pl.Decimal(12, 4),
    "usd_per_gpu_hour": pl.Decimal(20, 10),
    "usd_per_mtok": pl.Decimal(20, 10),
    "observed_at": pl.Datetime("us"),
    "valid_from": pl.Date,
    "valid_to": pl.Date,
    "valid_until": pl.Date,  # imported history only (migration 009); a CSV's rows count in their windows
}


class ObservationsError(ValueError):
    pass


@dataclasses.dataclass(frozen=True)
class CsvObservation:
    observed_at: datetime  # naive UTC
    provider: str
    instrument: str
    price_type: str
    usd_price: Decimal
    instrument_kind: str
    region: str | None = None
    gpu_count: Decimal | None = None
    segment: str | None = None
    source: str | None = None


def read_observations_csv(path: str | Path) -> list[CsvObservation]:
    """Every row of the file, checked; the first bad rows are named with their line numbers."""
    path = Path(path)
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise ObservationsError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ObservationsError(f"{path}: is a folder, not a CSV file") from None
    if path.stat().st_size > MAX_FILE_BYTES:
        handle.close()
        raise ObservationsError(f"{path}: larger than {MAX_FILE_BYTES:,} bytes; split it (by date or provider)")
    position = _Position()
    try:
        with handle:
            return _read_rows(path, handle, position)
    except UnicodeDecodeError:
        raise ObservationsError(f"{path}: {_first_undecodable(path)}") from None
    except csv.Error as exc:
        raise ObservationsError(f"{path}, line {position.line}: not a CSV row the reader accepts ({exc})") from None


def _first_undecodable(path: Path) -> str:
    """Where the first byte that is not UTF-8 is (the reader decodes ahead of the rows, so it cannot tell)."""
    with path.open("rb") as raw:
        for number, line in enumerate(raw, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                return f"line {number}, column {exc.start + 1}: byte 0x{line[exc.start]:02x} is not UTF-8 text"
    return "not UTF-8 text"


@dataclasses.dataclass
class _Position:
    line: int = 1  # the line being read, for errors raised by the reader itself


def _read_rows(path: Path, handle, position: _Position) -> list[CsvObservation]:
    reader = csv.DictReader(handle)
    header = [h.strip() for h in (reader.fieldnames or [])]
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise ObservationsError(f"{path}: the header repeats {repeated}; each column must be named once")
    unit_columns = [h for h in header if h in PRICE_COLUMNS]
    if unit_columns and ("usd_price" in header or len(unit_columns) > 1):
        raise ObservationsError(f"{path}: give one price column (usd_price, usd_per_gpu_hour or usd_per_mtok); "
                                f"the header has {header}")
    unit_kind = PRICE_COLUMNS[unit_columns[0]] if unit_columns else None
    header = ["usd_price" if h in PRICE_COLUMNS else h for h in header]
    reader.fieldnames = header
    missing = [c for c in REQUIRED if c not in header]
    if "date" not in header and "observed_at" not in header:
        missing.append("date or observed_at")
    if missing:
        raise ObservationsError(f"{path}: missing column(s) {', '.join(missing)}; the header has {header}")
    unknown = sorted(set(header) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise ObservationsError(f"{path}: unknown column(s) {unknown}; allowed: {list(REQUIRED + OPTIONAL)}")
    catalog = default_catalog()
    rows, errors = [], []
    position.line = reader.line_num + 1
    for row in reader:
        try:
            rows.append(_row(row, catalog, unit_kind))
        except ValueError as exc:
            errors.append(f"line {reader.line_num}: {exc}")
        position.line = reader.line_num + 1
    if errors:
        more = f" (and {len(errors) - 1} more bad row(s))" if len(errors) > 1 else ""
        raise ObservationsError(f"{path} {errors[0]}{more}")
    if not rows:
        raise ObservationsError(f"{path}: no observations")
    return rows


def _row(row: dict, catalog, unit_kind: str | None = None) -> CsvObservation:
    if None in row or any(v is None for v in row.values()):
        raise ValueError("the row has a different number of cells than the header")
    cell = {k: (v or "").strip() for k, v in row.items()}
    for name in REQUIRED:
        if not cell[name]:
            raise ValueError(f"{name} is empty")
    for name in ("provider", "instrument", "price_type", "region", "segment", "source", "instrument_kind"):
        if len(cell.get(name) or "") > MAX_TEXT_CHARS:
            raise ValueError(f"{name} is longer than {MAX_TEXT_CHARS} characters")
    observed_at = _moment(cell.get("observed_at", ""), cell.get("date", ""))
    price_type = cell["price_type"]
    kinds = [k for k in PRICE_TYPES if is_price_type(k, price_type)]
    if not kinds:
        allowed = sorted((PRICE_TYPES[GPU] | PRICE_TYPES[TOKEN]) - {BLENDED})
        raise ValueError(f"price_type {price_type!r} is not one of {allowed} (or a token variant such as "
                         "input_batch, output_above_200k; blended is computed, never observed)")
    kind = cell.get("instrument_kind") or unit_kind or kinds[0]
    if kind not in PRICE_TYPES or not is_price_type(kind, price_type):
        raise ValueError(f"instrument_kind {kind!r} does not go with price_type {price_type!r}")
    if unit_kind and kind != unit_kind:
        raise ValueError(f"instrument_kind {kind!r} does not go with a price in {'USD per GPU-hour' if unit_kind == GPU else 'USD per million tokens'}")
    price = _number(cell["usd_price"], "usd_price")
    if price <= 0:
        raise ValueError(f"usd_price {cell['usd_price']!r} is not positive")
    if quantize_usd(price) == 0:
        # Kept to 10 places like every parsed price, it would be a constituent of 0.
        raise ValueError(f"usd_price {cell['usd_price']!r} rounds to 0 at 10 decimal places")
    gpu_count = _number(cell["gpu_count"], "gpu_count") if cell.get("gpu_count") else None
    if gpu_count is not None and (gpu_count <= 0 or gpu_count != gpu_count.quantize(Decimal("0.0001"))):
        raise ValueError(f"gpu_count {cell['gpu_count']!r} is not a positive number of at most 4 decimal places")
    provider = cell["provider"]
    return CsvObservation(
        observed_at=observed_at,
        provider=provider,
        instrument=cell["instrument"],
        price_type=price_type,
        # To 10 places, half-even, as every parser stores a normalised price (DECIMAL(20, 10)).
        usd_price=quantize_usd(price),
        instrument_kind=kind,
        region=cell.get("region") or None,
        gpu_count=gpu_count,
        segment=cell.get("segment") or catalog.segment(provider),
        source=cell.get("source") or None,
    )


def _number(text: str, name: str) -> Decimal:
    if len(text) > 64 or "_" in text:
        raise ValueError(f"{name} {text[:40]!r} is not a decimal number")
    try:
        number = Decimal(text)
    except InvalidOperation:
        raise ValueError(f"{name} {text!r} is not a decimal number") from None
    if not number.is_finite():
        raise ValueError(f"{name} {text!r} is not a finite number")
    if abs(number) >= Decimal("1E9"):
        raise ValueError(f"{name} {text!r} is out of range")
    return number


def _moment(observed_at: str, day: str) -> datetime:
    moment = _parse_moment(observed_at, day)
    if not EARLIEST_DATE <= moment.date() <= LATEST_DATE:
        raise ValueError(f"{'observed_at' if observed_at else 'date'} {observed_at or day!r} is outside "
                         f"{EARLIEST_DATE.isoformat()} .. {LATEST_DATE.isoformat()}")
    return moment


def _parse_moment(observed_at: str, day: str) -> datetime:
    if observed_at:
        try:
            moment = datetime.fromisoformat(observed_at.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"observed_at {observed_at!r} is not an ISO 8601 time") from None
        if moment.tzinfo is not None:
            try:
                moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
            except OverflowError:
                raise ValueError(f"observed_at {observed_at!r} is outside the calendar once in UTC") from None
        return moment
    if day:
        try:
            return datetime.combine(date.fromisoformat(day), time(0, 0))
        except ValueError:
            raise ValueError(f"date {day!r} is not a date (YYYY-MM-DD)") from None
    raise ValueError("date and observed_at are both empty")


def engine_table(observations: list[CsvObservation]) -> pl.DataFrame:
    """The observations as the fixing SQL reads them. A row's key is its content (with a counter for exact
    repeats), never its line number, so that the input hash does not depend on the order of the rows."""
    repeats: Counter = Counter()
    records = []
    for o in observations:
        snapshot_id = f"csv|{o.source or ''}|{o.provider}|{o.observed_at.isoformat()}"
        content = f"{o.instrument}|{o.price_type}|{o.region or ''}|{o.gpu_count or ''}|{o.usd_price}"
        repeats[(snapshot_id, content)] += 1
        records.append(
            {
                "snapshot_id": snapshot_id,
                "row_key": f"{content}|{repeats[(snapshot_id, content)]}",
                "source": o.source,
                "provider": o.provider,
                "segment": o.segment,
                "instrument_kind": o.instrument_kind,
                "instrument": o.instrument,
                "price_type": o.price_type,
                "region": o.region,
                "gpu_count": o.gpu_count,
                "usd_per_gpu_hour": o.usd_price if o.instrument_kind == GPU else None,
                "usd_per_mtok": o.usd_price if o.instrument_kind == TOKEN else None,
                "observed_at": o.observed_at,
                "valid_from": None,
                "valid_to": None,
                "valid_until": None,
            }
        )
    return pl.DataFrame(records, schema=ENGINE_SCHEMA)


def fixing_dates_of(table: pl.DataFrame, definitions: list[Definition]) -> list[date]:
    """Every date from the first to the last whose window ends after an observation: an observation at t
    falls in the window of the first date D with D + fixing time >= t (for each fixing time used)."""
    moments = table["observed_at"]
    days = set()
    for clock in {time.fromisoformat(d.fixing_time_utc) for d in definitions}:
        shift = timedelta(hours=clock.hour, minutes=clock.minute)
        for moment in (moments.min(), moments.max()):
            before = moment - shift
            days.add(before.date() if before.time() == time(0, 0) else before.date() + timedelta(days=1))
    first, last = min(days), max(days)
    return [first + timedelta(days=k) for k in range((last - first).days + 1)]


def check_fixing_dates(dates: list[date]) -> None:
    """Refuse a run that would fix more than MAX_FIXING_DATES dates (its cost grows with them)."""
    if len(dates) > MAX_FIXING_DATES:
        raise ObservationsError(
            f"{len(dates)} fixing dates ({min(dates).isoformat()} to {max(dates).isoformat()}): at most "
            f"{MAX_FIXING_DATES} at once; give --from and --to for a part")


def fix_observations(
    observations: list[CsvObservation] | pl.DataFrame, definitions: list[Definition], dates: list[date] | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> list[Fixing]:
    """The fixings of every definition and date (default: every date from the first observation's to the
    last's) from these observations alone, in a private in-memory DuckDB (or `con`, an in-memory connection
    without an observations table of its own, reused by callers that fix many small sets)."""
    table = observations if isinstance(observations, pl.DataFrame) else engine_table(observations)
    if dates is None:
        dates = fixing_dates_of(table, definitions)
    check_fixing_dates(dates)
    if table["source"].null_count() == table.height:
        # A CSV without a source column cannot be filtered by source: the definitions' lists are set aside.
        definitions = [d if d.is_basket else dataclasses.replace(d, sources=None) for d in definitions]
    own = con is None
    con = duckdb.connect() if own else con
    try:
        with registered(con, observation_batch=table.to_arrow()):
            con.execute(sql("create_scratch_observations"))
        con.execute(sql("create_scratch_digests"))
        con.execute(sql("insert_observation_digests"), {"snapshot_id": None, "observed_at": None})
        return compute_range(con, definitions, dates)
    finally:
        if own:
            con.close()
        else:
            con.execute(sql("drop_scratch_observations"))

