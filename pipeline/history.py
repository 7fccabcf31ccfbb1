"""The cumulative history, the revisions log and the manifest under warehouse/published/v1/.

After every publication (flows/fix.py publish_flow, pipeline/importer.py) the writer rewrites, beside the
daily CSVs of pipeline/publish.py:

- history/fixings_gpu.csv and .parquet, history/fixings_token.csv and .parquet: one row per (fixing_date,
  index_id) of every published date, the newest revision, in the daily CSV's columns without the other
  family's value column;
- history/revisions.csv and .parquet: every revision ever computed of those fixings, with the one it replaced
  and why;
- manifest.json: every published file (the daily CSVs of the publications table and the files above) with
  its sha256, size, schema and row count.

Unlike a daily CSV these files change with every new date, so they are rewritten, not kept: each is a pure
function of the warehouse (no run time in them; the Parquet is written by pyarrow with fixed options), so the
same fixings give the same bytes, and a file whose bytes would not change is not written again. The CSV and
the Parquet of a table are made from one Arrow table read once, so they hold the same rows; the CSV's cells
go through pipeline.publish.safe_cell (spreadsheet-safe), the Parquet keeps the warehouse's types (DECIMAL
with its scale, DATE, TIMESTAMP as UTC without a zone, BOOLEAN). Each file is written atomically and the
manifest last: a crash between two files leaves a manifest that does not list the new bytes yet, and the
next publication writes everything again.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.paths import Warehouse
from pipeline.publish import HEADER, LAYOUT_VERSION, _write_atomically, safe_cell
from pipeline.warehouse import sql

HISTORY_DIR = "history"  # under published/v1
MANIFEST_NAME = "manifest.json"
MANIFEST_TMP_PREFIX = ".tmp-manifest-"  # published/v1 itself may hold other writers' files: clear only ours
# Family = instrument kind; each keeps its own value column (unit in the name).
FAMILIES = {"gpu": "usd_per_gpu_hour", "token": "usd_per_mtok"}
# Fixed writer options: the bytes depend on the rows alone (pyarrow adds no time; `created_by` names its
# version, pinned in pyproject.toml). pyarrow's default row groups (a million rows) make one group of files
# this size (a year of every index is some 25,000 rows).
# The revisions log's columns, in order (sql/select_history_revisions.sql must give exactly these: readers of
# the published files go by them, and the README's data dictionary is checked against them).
REVISIONS_HEADER = (
    "fixing_date", "index_id", "instrument_kind", "revision", "status", "usd_per_gpu_hour", "usd_per_mtok",
    "previous_status", "previous_usd_per_gpu_hour", "previous_usd_per_mtok", "methodology_version", "input_hash",
    "computed_at_utc", "revision_reason", "backfill",
)


def family_header(kind: str) -> tuple[str, ...]:
    """The columns of history/fixings_<kind>.*: the daily CSV's, without the other family's value column."""
    others = [column for family, column in FAMILIES.items() if family != kind]
    return tuple(c for c in HEADER if c not in others)


PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 3, "use_dictionary": True,
                   "write_statistics": True}


class PublishedFileError(OSError):
    """A published file no longer matches what the publications table says was written."""


@dataclass(frozen=True)
class Table:
    """A table read from the warehouse, ready to render as CSV and Parquet."""

    arrow: pa.Table
    types: tuple[str, ...]  # DuckDB type names, one per column

    @property
    def schema(self) -> list[dict]:
        return [{"name": name, "type": kind} for name, kind in zip(self.arrow.column_names, self.types)]


@dataclass(frozen=True)
class HistoryPublication:
    manifest_path: Path
    manifest_sha256: str
    files: int  # listed in the manifest
    written: list[str]  # paths (relative to published/v1) whose bytes changed, manifest included


def history_tables(con: duckdb.DuckDBPyConnection) -> dict[str, Table]:
    """The tables of history/ by file stem (fixings_gpu, fixings_token, revisions), read from the warehouse."""
    kinds = con.execute(sql("select_history_kinds")).fetchall()
    unknown = [(kind, n) for kind, n in kinds if kind not in FAMILIES]
    if unknown:
        raise ValueError(
            "fixings of published dates without an index family (gpu or token): "
            + ", ".join(f"{n} of kind {kind or 'unknown (no definition)'}" for kind, n in unknown)
        )
    tables = {}
    for kind in FAMILIES:
        relation = con.sql(sql("select_history_fixings"), params={"instrument_kind": kind})
        columns, types = relation.columns, [str(t) for t in relation.types]
        if tuple(columns) != HEADER:  # the history holds the daily CSV's columns: the SQL must not drift
            raise AssertionError(f"sql/select_history_fixings.sql gives {columns}, not the daily CSV's {HEADER}")
        arrow = relation.to_arrow_table()
        keep = [i for i, c in enumerate(columns) if c in family_header(kind)]
        tables[f"fixings_{kind}"] = Table(arrow.select(keep), tuple(types[i] for i in keep))
    relation = con.sql(sql("select_history_revisions"))
    if tuple(relation.columns) != REVISIONS_HEADER:
        raise AssertionError(f"sql/select_history_revisions.sql gives {relation.columns}, not {REVISIONS_HEADER}")
    tables["revisions"] = Table(relation.to_arrow_table(), tuple(str(t) for t in relation.types))
    return tables


def daily_column_types(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """The type of each column of the daily CSV (pipeline.publish.HEADER), as the history query gives it."""
    relation = con.sql(sql("select_history_fixings"), params={"instrument_kind": None})
    return dict(zip(relation.columns, (str(t) for t in relation.types)))


def render_csv(table: pa.Table) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(table.column_names)
    for row in table.to_pylist():
        writer.writerow([_cell(v) for v in row.values()])
    return buffer.getvalue().encode("utf-8")


def render_parquet(table: pa.Table) -> bytes:
    buffer = pa.BufferOutputStream()
    pq.write_table(table, buffer, **PARQUET_OPTIONS)
    return buffer.getvalue().to_pybytes()


def render_history(con: duckdb.DuckDBPyConnection) -> dict[str, tuple[bytes, Table]]:
    """Every file of history/: path relative to published/v1 -> (bytes, the table they hold)."""
    files = {}
    for stem, table in history_tables(con).items():
        files[f"{HISTORY_DIR}/{stem}.csv"] = (render_csv(table.arrow), table)
        files[f"{HISTORY_DIR}/{stem}.parquet"] = (render_parquet(table.arrow), table)
    return files


def render_manifest(con: duckdb.DuckDBPyConnection, warehouse: Warehouse,
                    history: dict[str, tuple[bytes, Table]]) -> bytes:
    """manifest.json: the daily CSVs (as the publications table recorded them, each read back to count its
    rows; a file that no longer matches its record stops the manifest with PublishedFileError) and the files
    of `history`. The .sha256 files beside the daily CSVs are left out: they only repeat the sha256 listed
    for their CSV. Sorted keys and files; the only time in it is the newest computed_at of the fixings."""
    types = daily_column_types(con)
    entries = []
    for path, sha256, byte_size, fixing_date in con.execute(
        sql("select_publications_between"), {"first_date": date.min, "last_date": date.max}
    ).fetchall():
        target = warehouse.root / path
        relative = target.relative_to(warehouse.published_dir).as_posix()
        body = read_published(target, sha256)
        header, *rows = list(csv.reader(io.StringIO(body.decode("utf-8"))))
        entries.append({
            "path": relative, "sha256": sha256, "bytes": byte_size, "format": "csv", "kind": "daily_fixings",
            "fixing_date": fixing_date.isoformat(), "rows": len(rows),
            "schema": [{"name": name, "type": types.get(name, "VARCHAR")} for name in header],
        })
    newest = None
    for path, (body, table) in history.items():
        stem = Path(path).stem
        entry = {
            "path": path, "sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body),
            "format": Path(path).suffix.lstrip("."), "kind": "revisions" if stem == "revisions" else "history",
            "rows": table.arrow.num_rows, "schema": table.schema,
        }
        if stem.startswith("fixings_"):
            entry["instrument_kind"] = stem.removeprefix("fixings_")
        else:
            times = [t for t in table.arrow.column("computed_at_utc").to_pylist() if t is not None]
            newest = max(times, default=None)
        entries.append(entry)
    manifest = {
        "schema_version": LAYOUT_VERSION,
        "newest_computed_at_utc": safe_cell(newest) if newest else None,
        "files": sorted(entries, key=lambda e: e["path"]),
    }
    return (json.dumps(manifest, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


def publish_history(con: duckdb.DuckDBPyConnection, warehouse: Warehouse) -> HistoryPublication | None:
    """Rewrite history/ and manifest.json from the warehouse (the writer's connection, after a publication).
    None when nothing is published yet."""
    if not con.execute(sql("select_published_dates")).fetchall():
        return None
    history = render_history(con)
    manifest = render_manifest(con, warehouse, history)
    folder = warehouse.published_dir / HISTORY_DIR
    # A write killed between its temporary file and the rename left it here: only this writer writes here
    # (the warehouse's one writer, pipeline.writer), so none belongs to a write in flight.
    for stale in (*folder.glob(".tmp-*"), *warehouse.published_dir.glob(MANIFEST_TMP_PREFIX + "*")):
        stale.unlink(missing_ok=True)
    written = []
    for path, (body, _) in sorted(history.items()):
        if _write_if_changed(warehouse.published_dir / path, body):
            written.append(path)
    target = warehouse.published_dir / MANIFEST_NAME
    if _write_if_changed(target, manifest, MANIFEST_TMP_PREFIX):
        written.append(MANIFEST_NAME)
    files = len(json.loads(manifest)["files"])
    return HistoryPublication(target, hashlib.sha256(manifest).hexdigest(), files, written)


def read_published(target: Path, sha256: str) -> bytes:
    """The bytes of a published file, checked against the sha256 recorded when it was written."""
    try:
        body = target.read_bytes()
    except FileNotFoundError:
        raise PublishedFileError(f"published file {target} is missing; restore it (published files are "
                                 "never rewritten)") from None
    found = hashlib.sha256(body).hexdigest()
    if found != sha256:
        raise PublishedFileError(f"published file {target} has sha256 {found[:12]}..., not the {sha256[:12]}... "
                                 "recorded when it was published; restore it (published files are never rewritten)")
    return body


def _write_if_changed(target: Path, body: bytes, prefix: str = ".tmp-") -> bool:
    # Same bytes, no write: mirrors that sync by modification time see nothing new.
    if target.is_file() and target.read_bytes() == body:
        return False
    _write_atomically(target, body, prefix)
    return True


def _cell(value: object) -> str:
    if isinstance(value, bool):  # as the daily CSV's backfill column: true / false
        return "true" if value else "false"
    return safe_cell(value)
