"""`tsi verify`: recompute published fixings from the raw store alone and report every difference.

Nothing computed by the run is trusted: the snapshot records of the period are copied into a scratch
in-memory warehouse, every body is read back from the raw store (its sha256 checked) and parsed again by
pipeline.load, and the fixings are recomputed by pipeline.fixing with the definitions stored under the
methodology version each published fixing used, each from the bodies the warehouse had loaded when that
revision was computed. Every field of the newest revision and of its constituents must match exactly.

The published files are checked too: every daily CSV of the period must still have the sha256 recorded when
it was published. With no date (`verify_published`) every published date is verified (the dates of the
publications table: what readers were given, not fixings computed and never published), and so are the
cumulative history files and manifest.json (pipeline/history.py): each history file must hold exactly what
the warehouse's fixings give, and every file the manifest lists must have the sha256 it states.
"""
from __future__ import annotations

import bisect
import hashlib
import json
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl

from pipeline import history, load
from pipeline.definitions import Definition, definition_from_json
from pipeline.fixing import Fixing, compute_range
from pipeline.paths import Warehouse
from pipeline.readers import open_reader
from pipeline.rawstore import RawStore, RawStoreError
from pipeline.warehouse import migrate, registered, sql

FX_LOOKBACK_DAYS = 31  # rates older than this never convert a price (pipeline.normalise)
SNAPSHOT_SCHEMA = {
    "snapshot_id": pl.String,
    "sha256": pl.String,
    "source": pl.String,
    "url": pl.String,
    "provider": pl.String,
    "fetched_at": pl.Datetime("us"),
    "http_status": pl.Int32,
    "content_type": pl.String,
    "byte_size": pl.Int64,
    "storage_path": pl.String,
    "imported_at": pl.Datetime("us"),
    "valid_days": pl.Int32,
    "valid_until": pl.Date,
    "first_loaded_at": pl.Datetime("us"),
}
FIXING_FIELDS = ("status", "value", "n_providers", "n_observations", "window_start", "window_end", "window_hours",
                 "carried_from", "p25", "p75", "min", "max", "mean", "input_hash", "backfill")
CONSTITUENT_FIELDS = ("snapshot_id", "provider_value", "n_observations", "included", "exclusion_reason", "weight")


@dataclass(frozen=True)
class Difference:
    index_id: str
    fixing_date: date
    what: str
    published: object
    recomputed: object

    def __str__(self) -> str:
        return (f"{self.fixing_date.isoformat()} {self.index_id} {self.what}: published {_show(self.published)}, "
                f"recomputed {_show(self.recomputed)}")


@dataclass
class VerifyReport:
    first: date
    last: date
    fixings: int = 0
    snapshots: int = 0
    # Bodies that loaded when collected but do not parse again now (the parser changed under them).
    parse_failures: dict[str, str] = field(default_factory=dict)
    # Bodies the raw store cannot give back (missing, corrupt, not matching their sha256): snapshot -> why.
    unreadable: dict[str, str] = field(default_factory=dict)
    differences: list[Difference] = field(default_factory=list)
    # The dates verified when only some of the range's were asked for (verify_published); None: every date.
    dates: list[date] | None = None
    files: int = 0  # published files checked
    # Published files that do not hold what was published: path relative to published/v1 -> why.
    file_problems: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return (self.fixings > 0 and not self.differences and not self.unreadable and not self.parse_failures
                and not self.file_problems)


def _reader(warehouse: Warehouse) -> duckdb.DuckDBPyConnection:
    """The warehouse as every reader sees it (pipeline.readers): live, or the read-only copy of the last run
    while a run writes, so that a verify never fails on a collection's lock (the command says which)."""
    con, _note = open_reader(warehouse)
    return con


def published_dates(warehouse: Warehouse) -> list[date]:
    """Every fixing date with a published file, oldest first."""
    con = _reader(warehouse)
    try:
        return [row[0] for row in con.execute(sql("select_published_dates")).fetchall()]
    finally:
        con.close()


def verify_published(warehouse: Warehouse) -> VerifyReport:
    """Every published date (verify over them), then the history files and the manifest. ValueError when
    nothing is published."""
    dates = published_dates(warehouse)
    if not dates:
        raise ValueError(f"nothing is published in {warehouse.root}: no date to verify "
                         "(publish with tsi demo, tsi daily, tsi backfill or tsi import)")
    report = verify(warehouse, dates[0], dates[-1], dates)
    checked, problems = check_history_files(warehouse)
    report.files += checked
    report.file_problems.update({p: why for p, why in problems.items() if p not in report.file_problems})
    return report


def verify(warehouse: Warehouse, first: date, last: date, dates: Collection[date] | None = None) -> VerifyReport:
    """The newest revision of every fixing dated `first` to `last` (only those of `dates` when given), and
    the daily CSVs published for those dates."""
    if last < first:
        raise ValueError(f"--to {last.isoformat()} is before --from {first.isoformat()}")
    report = VerifyReport(first, last, dates=sorted(set(dates)) if dates is not None else None)
    wanted = set(dates) if dates is not None else None
    con = _reader(warehouse)
    try:
        params = {"first_date": first, "last_date": last}
        publications = [row for row in con.execute(sql("select_publications_between"), params).fetchall()
                        if wanted is None or row[3] in wanted]
        published = con.execute(sql("select_fixings_to_verify"), params).fetchall()
        columns = [c[0] for c in con.description]
        published = [dict(zip(columns, row)) for row in published]
        if wanted is not None:
            published = [row for row in published if row["fixing_date"] in wanted]
        constituents: dict = {}
        for row in con.execute(sql("select_constituents_to_verify"), params).fetchall():
            constituents.setdefault((row[0], row[1]), {})[row[2]] = dict(zip(("snapshot_id",) + CONSTITUENT_FIELDS[1:], row[3:]))
        report.fixings = len(published)
        if not published:
            return report
        definitions = _definitions(published)
        snapshots = _snapshots(con, published, definitions)
    finally:
        con.close()
    _check_publications(warehouse, publications, report)

    # A body that no longer matches its address, is corrupt or is gone is reported by snapshot and file, and left
    # out of the recomputation; the rest is verified all the same.
    store = RawStore(warehouse.root)
    unreadable = {}
    for snapshot_id, sha256 in snapshots.select("snapshot_id", "sha256").iter_rows():
        try:
            store.get(sha256)
        except RawStoreError as exc:
            unreadable[snapshot_id] = str(exc)
    report.unreadable = unreadable
    if unreadable:
        snapshots = snapshots.filter(~pl.col("snapshot_id").is_in(list(unreadable)))
    scratch = duckdb.connect()
    try:
        migrate(scratch)
        recomputed = {}
        # Each fixing is recomputed from the bodies the warehouse had loaded when it was computed
        # (fixings.loaded_through): a body loaded later (a late parse, a correction that did not move the value
        # enough to be revised) was not among its inputs. Bodies are added to the scratch warehouse in load
        # order, each parsed once.
        snapshots = snapshots.filter(pl.col("first_loaded_at").is_not_null()).sort("first_loaded_at", "snapshot_id")
        loaded_times = snapshots["first_loaded_at"].to_list()
        stages: dict[int, list[dict]] = {}
        for row in published:
            seen = row["loaded_through"]
            stages.setdefault(len(loaded_times) if seen is None else bisect.bisect_right(loaded_times, seen), []).append(row)
        added = 0
        for visible in sorted(stages):
            with registered(scratch, snapshot_batch=snapshots.slice(added, visible - added).to_arrow()):
                scratch.execute(sql("insert_raw_snapshots"))
            added = visible
            loaded = load.parse_pending(scratch, store)
            report.parse_failures.update(loaded.failed)
            recomputed.update(_recompute(scratch, stages[visible], definitions))
        report.snapshots = added
    finally:
        scratch.close()

    for row in published:
        key = (row["index_id"], row["fixing_date"])
        mine = recomputed.get(key)
        if mine is None:
            report.differences.append(Difference(*key, "fixing", "present", "not recomputed"))
            continue
        report.differences.extend(_compare(row, constituents.get(key, {}), mine))
    return report


def _check_publications(warehouse: Warehouse, publications: list[tuple], report: VerifyReport) -> None:
    """Each daily CSV on disk against the sha256 recorded when it was published."""
    for path, sha256, _, _ in publications:
        target = warehouse.root / path
        report.files += 1
        try:
            history.read_published(target, sha256)
        except OSError as exc:
            report.file_problems[_relative(warehouse, target)] = _why(exc, target)


def check_history_files(warehouse: Warehouse) -> tuple[int, dict[str, str]]:
    """(files checked, problems by path relative to published/v1): the history files against what the
    warehouse's fixings give now, and every file of manifest.json against the sha256 it lists. A warehouse
    published before these files existed has none: nothing to check until its next publication writes them."""
    folder = warehouse.published_dir
    manifest_path = folder / history.MANIFEST_NAME
    con = _reader(warehouse)
    try:
        expected = history.render_history(con)
    finally:
        con.close()
    checked, problems = 0, {}
    if not any((folder / p).exists() for p in expected) and not manifest_path.exists():
        return checked, problems
    for path, (body, _) in sorted(expected.items()):
        checked += 1
        target = folder / path
        if not target.is_file():
            problems[path] = "missing"
        elif (found := target.read_bytes()) != body:
            problems[path] = ("does not hold what the warehouse's fixings give (sha256 "
                              f"{hashlib.sha256(found).hexdigest()[:12]}... on disk, "
                              f"{hashlib.sha256(body).hexdigest()[:12]}... from the warehouse)")
    checked += 1
    try:
        manifest = json.loads(manifest_path.read_bytes())
        listed = [(str(e["path"]), str(e["sha256"]), int(e["bytes"])) for e in manifest["files"]]
    except FileNotFoundError:
        problems[history.MANIFEST_NAME] = "missing"
        return checked, problems
    except (ValueError, KeyError, TypeError) as exc:
        problems[history.MANIFEST_NAME] = f"is not a readable manifest ({type(exc).__name__}: {exc})"
        return checked, problems
    for path, sha256, size in listed:
        if path in problems:
            continue  # said above
        if Path(path).is_absolute() or ".." in Path(path).parts:
            problems[path] = "listed in manifest.json, but not a path inside published/v1"
            continue
        target = folder / path
        if not target.is_file():
            problems[path] = "listed in manifest.json but missing"
            continue
        body = target.read_bytes()
        found = hashlib.sha256(body).hexdigest()
        if found != sha256 or len(body) != size:
            problems[path] = (f"sha256 {found[:12]}... ({len(body)} bytes) on disk, "
                              f"{sha256[:12]}... ({size} bytes) in manifest.json")
    return checked, problems


def _relative(warehouse: Warehouse, target) -> str:
    try:
        return target.relative_to(warehouse.published_dir).as_posix()
    except ValueError:
        return str(target)


def _why(exc: OSError, target) -> str:
    if isinstance(exc, history.PublishedFileError):
        return str(exc).replace(f"published file {target} ", "", 1)
    return f"cannot be read ({exc.strerror or exc})"


def _definitions(published: list[dict]) -> dict[tuple[str, str], Definition]:
    out = {}
    for row in published:
        key = (row["index_id"], row["methodology_version"])
        if key not in out:
            out[key] = definition_from_json(row["definition_json"])
    return out


def _snapshots(con, published: list[dict], definitions: dict) -> pl.DataFrame:
    """Every snapshot whose rows can reach a window of the period: back from the first date by the longest
    fallback window and carry of the definitions used (plus the day of the fixing time)."""
    from pipeline.sources import SOURCES

    indices = [d for d in definitions.values() if not d.is_basket]
    longest_hours = max((max(d.rung_window_hours) for d in indices), default=24)
    longest_carry = max((d.carry_days for d in indices), default=0)
    first = min(r["fixing_date"] for r in published)
    last = max(r["fixing_date"] for r in published)
    after = datetime.combine(first, datetime.min.time()) - timedelta(days=longest_carry, hours=longest_hours)
    until = datetime.combine(last, datetime.min.time()) + timedelta(days=1)
    fx_sources = sorted(source_id for source_id, module in SOURCES.items() if module.KIND == "fx")
    rows = con.execute(
        sql("select_raw_snapshots_between"),
        {"fetched_after": after, "fetched_until": until, "fx_sources": fx_sources,
         "fx_after": after - timedelta(days=FX_LOOKBACK_DAYS), "first_date": after.date(), "last_date": last},
    ).fetchall()
    return pl.DataFrame(rows, schema=SNAPSHOT_SCHEMA, orient="row")


def _recompute(scratch, published: list[dict], definitions: dict) -> dict[tuple[str, date], Fixing]:
    """The fixings of `published` (rows of one stage). Dates that used the same definitions are recomputed
    together (usually all of them); a basket brings its member indices (compute_range needs them in the same
    run), whose results here are not theirs to report (they may stand from another stage)."""
    by_id = {d.id: d for d in definitions.values()}
    by_date: dict[date, set] = {}
    for row in published:
        by_date.setdefault(row["fixing_date"], set()).add((row["index_id"], row["methodology_version"]))
    groups: dict[frozenset, list[date]] = {}
    for day, keys in by_date.items():
        groups.setdefault(frozenset(keys), []).append(day)
    wanted = {(row["index_id"], row["fixing_date"]) for row in published}
    out = {}
    for keys, days in groups.items():
        chosen = {definitions[k].id: definitions[k] for k in sorted(keys)}
        for basket in [d for d in chosen.values() if d.is_basket]:
            for member in basket.members:
                if member not in chosen and member in by_id:
                    chosen[member] = by_id[member]
        # A basket's members first.
        ordered = sorted(chosen.values(), key=lambda d: (d.is_basket, d.id))
        for f in compute_range(scratch, ordered, days):
            if (f.definition.id, f.fixing_date) in wanted:
                out[(f.definition.id, f.fixing_date)] = f
    return out


def _compare(row: dict, stored_constituents: dict, f: Fixing) -> list:
    d = f.definition
    mine = {
        "status": f.status, "value": f.value, "n_providers": f.n_providers, "n_observations": f.n_observations,
        "window_start": f.window_start.replace(tzinfo=None), "window_end": f.window_end.replace(tzinfo=None),
        "window_hours": f.window_hours, "carried_from": f.carried_from, "p25": f.p25, "p75": f.p75, "min": f.min,
        "max": f.max, "mean": f.mean, "input_hash": f.input_hash, "backfill": f.backfill,
    }
    stored = {
        "status": row["status"], "value": row["value"], "n_providers": row["n_providers"],
        "n_observations": row["n_observations"], "window_start": row["window_start"], "window_end": row["window_end"],
        "window_hours": row["window_hours"], "carried_from": row["carried_from"], "p25": row["p25_provider_value"],
        "p75": row["p75_provider_value"], "min": row["min_provider_value"], "max": row["max_provider_value"],
        "mean": row["mean_value"], "input_hash": row["input_hash"], "backfill": row["backfill"],
    }
    key = (d.id, f.fixing_date)
    differences = []
    for name in FIXING_FIELDS:
        if name in ("window_hours", "mean") and stored[name] is None and d.methodology_version == "1.0":
            continue  # methodology 1.0 fixings predate these columns
        if stored[name] != mine[name]:
            differences.append(Difference(*key, name, stored[name], mine[name]))
    recomputed = {
        c.provider: {"snapshot_id": c.snapshot_id, "provider_value": c.provider_value,
                     "n_observations": c.n_observations, "included": c.included,
                     "exclusion_reason": c.exclusion_reason, "weight": c.weight}
        for c in f.constituents
    }
    for provider in sorted(set(stored_constituents) | set(recomputed)):
        a, b = stored_constituents.get(provider), recomputed.get(provider)
        if a is None or b is None:
            differences.append(Difference(*key, f"constituent {provider}", "present" if a else "absent",
                                          "present" if b else "absent"))
            continue
        for name in CONSTITUENT_FIELDS:
            if a[name] != b[name]:
                differences.append(Difference(*key, f"constituent {provider} {name}", a[name], b[name]))
    return differences


def _show(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    if hasattr(value, "normalize"):
        return format(value.normalize(), "f")
    return json.dumps(value) if isinstance(value, str) else str(value)
