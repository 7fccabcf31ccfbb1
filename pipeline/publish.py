"""Publication: one immutable, checksummed CSV per fixing date under warehouse/published/v1/fixings/.

The bytes depend on the fixings alone (fixed header, fixed row order, fixed number formatting, no run
timestamps), so two runs of the same day give the same file. A file once published is never overwritten:
a later revision of the day goes to a new file beside it. The cumulative history, the revisions log and the
manifest beside them (published/v1/history/, published/v1/manifest.json) are pipeline/history.py's.
"""
from __future__ import annotations

import csv
import hashlib
import io
import os
import tempfile
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb

from pipeline.http import utc_now
from pipeline.paths import Warehouse
from pipeline.warehouse import naive_utc, sql, transaction

# The layout of everything under published/v<LAYOUT_VERSION>/ (pipeline.paths.Warehouse.published_dir): the
# daily CSV's columns, the history and revisions files of pipeline/history.py and the manifest's shape (its
# "schema_version"). Readers mirror these files and read them by name and position, so a change of any schema
# (a column renamed, removed, retyped or moved) makes v2, a new folder beside v1, never an edit of v1. A column
# added last (as `backfill` was) keeps readers by position working and stays in v1.
LAYOUT_VERSION = 1

HEADER = (
    "fixing_date", "index_id", "revision", "status", "usd_per_gpu_hour", "usd_per_mtok", "n_providers",
    "n_observations", "p25_provider_value", "p75_provider_value", "min_provider_value", "max_provider_value",
    "methodology_version", "window_start_utc", "window_end_utc", "input_hash",
    # Added with tsi import (an additive column, last, so that readers by position keep working): true when
    # the fixing was computed after the fact from imported price records.
    "backfill",
)
# A cell starting with one of these is run as a formula by spreadsheet programs (CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class Publication:
    path: Path
    sha256: str
    new: bool  # False when the same bytes were already published


def safe_cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")  # never exponent notation
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    if text.startswith(FORMULA_PREFIXES):
        return "'" + text
    return text


def render_fixings_csv(rows: list[tuple]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(HEADER)
    for row in rows:
        index_id, fixing_date, revision, status, gpu, token, *rest = row
        ordered = (fixing_date, index_id, revision, status, gpu, token, *rest)
        writer.writerow([safe_cell(v) for v in ordered])
    return buffer.getvalue().encode("utf-8")


def publish_date(con: duckdb.DuckDBPyConnection, warehouse: Warehouse, fixing_date: date) -> Publication | None:
    rows = con.execute(sql("select_published_fixings"), {"fixing_date": fixing_date}).fetchall()
    if not rows:
        return None
    body = render_fixings_csv(rows)
    digest = hashlib.sha256(body).hexdigest()
    earlier = con.execute(sql("select_publications_for_date"), {"fixing_date": fixing_date}).fetchall()
    if earlier and earlier[-1][1] == digest:
        return Publication(warehouse.root / earlier[-1][0], digest, new=False)
    folder = warehouse.published_dir / "fixings"
    name = f"fixings_{fixing_date.isoformat()}.csv" if not earlier else (
        f"fixings_{fixing_date.isoformat()}_pub{len(earlier) + 1}.csv"
    )
    target = folder / name
    if target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() != digest:
        raise FileExistsError(f"{target} exists with other content; published files are never overwritten")
    # A publication killed between writing its temporary file and renaming it left a `.tmp-*` file here; the
    # published folder is what readers mirror, so clear it. Only the warehouse's one writer publishes
    # (pipeline.writer), so no such file belongs to a publication still in flight.
    for stale in folder.glob(".tmp-*"):
        stale.unlink(missing_ok=True)
    _write_atomically(target, body)
    _write_atomically(target.with_name(target.name + ".sha256"), f"{digest}  {target.name}\n".encode())
    relative = target.relative_to(warehouse.root).as_posix()
    with transaction(con):
        con.execute(
            sql("insert_publication"),
            {
                "path": relative,
                "sha256": digest,
                "fixing_date": fixing_date,
                "byte_size": len(body),
                "published_at": naive_utc(utc_now()),
            },
        )
    return Publication(target, digest, new=True)


def _write_atomically(target: Path, body: bytes, prefix: str = ".tmp-") -> None:
    """Write `body` beside `target` under a temporary name starting with `prefix`, fsync it, then rename it:
    a reader sees the old file or the new one, never a part. (A crash leaves the temporary file; each writer
    clears its own prefix before writing again.)"""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=prefix)
    try:
        with os.fdopen(handle, "wb") as out:
            # mkstemp makes the file private (0600); a published file is for every reader (a web server, a
            # mirror running as another user).
            os.fchmod(out.fileno(), 0o644)
            out.write(body)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
