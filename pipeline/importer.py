"""`tsi import FOLDER`: dated public price records into the warehouse, as if each had been collected at the
time its manifest gives, then fixed and published for every date they reach.

FOLDER/manifest.csv (or the file of `--manifest`) lists one body per row, header `path,source,observed_at`
and optionally `provider,url`:

- `path`: the body's file, relative to FOLDER (it may not leave FOLDER);
- `source`: a source id of `tsi sources`; the body is parsed by that source, from the raw store, like a
  collected body;
- `observed_at`: ISO 8601 (`2025-06-01T00:02:00Z`, `2025-06-01 00:02`, `2025-06-01`); UTC when no zone is
  given; not in the future, not before 2000;
- `provider`: for bodies that do not name their provider (a SkyPilot catalog is one cloud's, a pricing page
  one provider's); by default the source's own rule for a file name (`lambda_vms.csv`);
- `url`: where the body was published. Bodies of one source, provider and url form a series (default url:
  `import:<source>/<provider>`), which the standing-list rule below follows.

Standing price lists. A price list (a LiteLLM map, an OpenRouter model list, a SkyPilot catalog) is a standing
offer between two snapshots, though nobody observed it on the days between. An imported snapshot counts by
date: from the first fixing date whose fixing time is at or after its time, through `valid_until` = the date of
the next imported snapshot of its series (on that date the newer one wins if it is already there at the
fixing time), and at most `valid_days` (N, 31 by default) days after its own date. A source that dates its own
prices (llm-prices' price_history) keeps each row's interval, cut at valid_until. The rule is applied through
the observations' validity (raw_snapshots.valid_until, copied onto each observation and digest); no
observation is ever repeated. Fixings that read an imported body are marked `backfill`.

A bad manifest (a missing or unreadable file, an unknown source, a bad or future time, the same body listed
twice, a header it does not know, a body larger than its source accepts) is refused before anything is
written, in one line naming the row. Importing the same folder again adds nothing.
"""
from __future__ import annotations

import csv
import hashlib
import io
import mimetypes
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import duckdb

from pipeline import fixing, history, load, publish
from pipeline.collect import snapshot_id_for
from pipeline.definitions import Definition
from pipeline.http import utc_now
from pipeline.paths import Warehouse
from pipeline.rawstore import RawStore
from pipeline.sources import UnknownSourceError, get_source, max_body_bytes, read_saved_body
from pipeline.warehouse import naive_utc, sql, transaction

MANIFEST_NAME = "manifest.csv"
REQUIRED_COLUMNS = ("path", "source", "observed_at")
OPTIONAL_COLUMNS = ("provider", "url")
DEFAULT_VALID_DAYS = 31
MAX_VALID_DAYS = 366
EARLIEST = datetime(2000, 1, 1, tzinfo=timezone.utc)
MAX_MANIFEST_BYTES = 16 * 1024 * 1024  # a million rows and more: a manifest, not a hostile blob
MAX_CELL_CHARS = 1000
PROVIDER_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
FIX_CHUNK_DAYS = 92  # dates fixed per transaction: a quarter, so that progress shows and memory stays small


class ManifestError(ValueError):
    """The manifest cannot be imported as it stands; nothing was written. One line, naming the row."""


@dataclass(frozen=True)
class ManifestRow:
    line: int  # the row's line in the manifest (the header is line 1)
    relative: str  # the path as written
    path: Path
    source: str
    observed_at: datetime  # aware, UTC
    provider: str | None
    url: str
    sha256: str
    byte_size: int


@dataclass
class ImportReport:
    rows: int = 0
    new_snapshots: int = 0  # recorded by this import (0 when the folder was imported before)
    revalidated: int = 0  # earlier imported snapshots whose valid_until a new one cut, parsed again
    loaded: int = 0
    failed: dict[str, str] = field(default_factory=dict)  # snapshot id -> why its body could not be read
    dates: list[date] = field(default_factory=list)  # fixing dates fixed
    fixings_written: int = 0
    published: int = 0  # files newly published

    def summary(self) -> dict:
        return {"rows": self.rows, "new_snapshots": self.new_snapshots, "revalidated": self.revalidated,
                "loaded": self.loaded, "failed": self.failed,
                "first_date": self.dates[0].isoformat() if self.dates else None,
                "last_date": self.dates[-1].isoformat() if self.dates else None,
                "fixings_written": self.fixings_written, "published": self.published}


# --- the manifest ---------------------------------------------------------------------------------------


def read_manifest(folder: Path, manifest: Path | None = None, now: datetime | None = None) -> list[ManifestRow]:
    """Every row of the manifest, checked (files read and hashed); ManifestError on the first problem."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ManifestError(f"{folder}: no such folder")
    manifest = Path(manifest) if manifest else folder / MANIFEST_NAME
    if not manifest.is_file():
        raise ManifestError(f"{manifest}: no manifest (a CSV with the header path,source,observed_at[,provider,url])")
    if manifest.stat().st_size > MAX_MANIFEST_BYTES:
        raise ManifestError(f"{manifest}: larger than {MAX_MANIFEST_BYTES:,} bytes; split it")
    try:
        text = manifest.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ManifestError(f"{manifest}: not UTF-8 text (byte at offset {exc.start})") from None
    now = now or utc_now()
    root = folder.resolve()
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        raise ManifestError(f"{manifest}: empty; the header is path,source,observed_at[,provider,url]") from None
    except csv.Error as exc:
        raise ManifestError(f"{manifest}: line 1: not CSV ({exc})") from None
    columns = [h.strip() for h in header]
    unknown = [c for c in columns if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if unknown or repeated or missing:
        problem = (f"unknown column(s) {unknown}" if unknown else
                   f"column(s) {repeated} named twice" if repeated else f"missing column(s) {missing}")
        raise ManifestError(f"{manifest}: line 1: {problem}; the header is path,source,observed_at[,provider,url]")
    rows: list[ManifestRow] = []
    by_path: dict[str, int] = {}
    by_body: dict[tuple[str, str], ManifestRow] = {}
    line = 1
    try:
        for cells in reader:
            line = reader.line_num
            if not any(c.strip() for c in cells):
                continue  # a blank line
            where = f"{manifest}: line {line}"
            if len(cells) != len(columns):
                raise ManifestError(f"{where}: {len(cells)} cells, the header has {len(columns)}")
            if any(len(c) > MAX_CELL_CHARS for c in cells):
                raise ManifestError(f"{where}: a cell longer than {MAX_CELL_CHARS} characters")
            row = _row(dict(zip(columns, (c.strip() for c in cells))), line, where, root, now)
            if row.relative in by_path:
                raise ManifestError(f"{where}: {row.relative} is listed already on line {by_path[row.relative]}")
            by_path[row.relative] = line
            twin = by_body.get((row.source, row.sha256))
            if twin is not None and twin.observed_at != row.observed_at:
                raise ManifestError(
                    f"{where}: the same body as line {twin.line} ({twin.relative}, sha256 {row.sha256[:12]}) at "
                    "another time; list a body once, at the time it was first seen")
            by_body.setdefault((row.source, row.sha256), row)
            rows.append(row)
    except csv.Error as exc:
        raise ManifestError(f"{manifest}: line {line}: not CSV ({exc})") from None
    if not rows:
        raise ManifestError(f"{manifest}: no bodies listed")
    return rows


def _row(cell: dict[str, str], line: int, where: str, root: Path, now: datetime) -> ManifestRow:
    for name in REQUIRED_COLUMNS:
        if not cell.get(name):
            raise ManifestError(f"{where}: {name} is empty")
    try:
        source = get_source(cell["source"])
    except UnknownSourceError as exc:
        raise ManifestError(f"{where}: {exc.args[0]}") from None
    relative = cell["path"]
    candidate = Path(relative)
    if candidate.is_absolute():
        raise ManifestError(f"{where}: path {relative!r} must be relative to the folder")
    path = (root / candidate).resolve()
    if not path.is_relative_to(root):
        raise ManifestError(f"{where}: path {relative!r} leads out of the folder")
    if not path.is_file():
        raise ManifestError(f"{where}: no such file {relative!r}")
    observed_at = parse_time(cell["observed_at"], where, now)
    provider = cell.get("provider") or None
    if provider is not None and not PROVIDER_ID.fullmatch(provider):
        raise ManifestError(f"{where}: provider {provider!r} is not an id (lowercase letters, digits, . _ -)")
    if provider is None:
        try:
            provider = source.context_for_file(path, observed_at).provider
        except ValueError as exc:
            raise ManifestError(f"{where}: {exc}; give the provider column") from None
    url = cell.get("url") or f"import:{source.SOURCE_ID}/{provider or ''}"
    try:
        body = read_saved_body(path, source)
    except ValueError:
        raise ManifestError(f"{where}: {relative} is larger than the {max_body_bytes(source):,} bytes that "
                            f"source {source.SOURCE_ID} accepts") from None
    except OSError as exc:
        raise ManifestError(f"{where}: cannot read {relative}: {exc.strerror or exc}") from None
    return ManifestRow(line, relative, path, source.SOURCE_ID, observed_at, provider, url,
                       hashlib.sha256(body).hexdigest(), len(body))


def parse_time(text: str, where: str, now: datetime) -> datetime:
    """An ISO 8601 time, UTC when it names no zone, from 2000 up to now."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ManifestError(f"{where}: observed_at {text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        moment = moment.astimezone(timezone.utc)
    except OverflowError:
        raise ManifestError(f"{where}: observed_at {text!r} is outside the calendar in UTC") from None
    if moment < EARLIEST:
        raise ManifestError(f"{where}: observed_at {text!r} is before {EARLIEST:%Y-%m-%d}")
    if moment > now:
        raise ManifestError(f"{where}: observed_at {text!r} is in the future (now {now:%Y-%m-%dT%H:%M:%SZ})")
    return moment


# --- importing ------------------------------------------------------------------------------------------


Progress = Callable[[str, int, int], None]  # (stage, done, total): shown by the command line, if at all


def import_folder(
    con: duckdb.DuckDBPyConnection,
    warehouse: Warehouse,
    rows: list[ManifestRow],
    definitions: list[Definition],
    valid_days: int = DEFAULT_VALID_DAYS,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> ImportReport:
    """Record the rows' bodies (raw store first, then raw_snapshots with the manifest's times), parse them,
    fix and publish every date they reach. `con` is the warehouse's one writer."""
    if not 1 <= valid_days <= MAX_VALID_DAYS:
        raise ValueError(f"valid days {valid_days} is not in 1 .. {MAX_VALID_DAYS}")
    tick = progress or (lambda stage, done, total: None)
    now = now or utc_now()
    report = ImportReport(rows=len(rows))
    store = RawStore(warehouse.root)
    new_ids = []
    for number, row in enumerate(rows, start=1):
        body = row.path.read_bytes()
        if hashlib.sha256(body).hexdigest() != row.sha256:
            raise ManifestError(f"line {row.line}: {row.relative} changed while it was imported")
        digest = store.put(body)  # the body is in the raw store before the warehouse mentions it
        snapshot_id = snapshot_id_for(row.source, row.url, row.observed_at, digest)
        inserted = con.execute(sql("insert_imported_snapshot"), {
            "snapshot_id": snapshot_id, "sha256": digest, "source": row.source, "url": row.url,
            "provider": row.provider, "fetched_at": naive_utc(row.observed_at),
            "content_type": mimetypes.guess_type(row.path.name)[0] or "application/octet-stream",
            "byte_size": row.byte_size, "storage_path": store.relative_path(digest),
            "imported_at": naive_utc(now), "valid_days": valid_days,
        }).fetchall()
        if inserted:
            new_ids.append(snapshot_id)
        tick("store", number, len(rows))
    report.new_snapshots = len(new_ids)
    # valid_until of every imported snapshot of the series touched (a new snapshot cuts its predecessor's);
    # those already loaded whose validity changed are parsed again so that their rows carry the new one.
    with transaction(con):
        changed = [r[0] for r in con.execute(sql("update_imported_validity")).fetchall()]
    stale = [s for s in changed if s not in set(new_ids)]
    if stale:
        reloaded = load.parse_snapshots(con, store, stale)
        report.revalidated = len(reloaded.loaded)
        report.failed.update(reloaded.failed)
    loaded = load.parse_pending(con, store, progress=lambda done, total: tick("parse", done, total))
    report.loaded = len(loaded.loaded)
    report.failed.update(loaded.failed)
    report.dates = reachable_dates(con, [r.sha256 for r in rows], now)
    for start in range(0, len(report.dates), FIX_CHUNK_DAYS):
        chunk = report.dates[start:start + FIX_CHUNK_DAYS]
        fixed = fixing.fix_range(con, definitions, chunk, computed_at=now)
        report.fixings_written += sum(f.written for f in fixed)
        tick("fix", start + len(chunk), len(report.dates))
    for number, day in enumerate(report.dates, start=1):
        publication = publish.publish_date(con, warehouse, day)
        report.published += bool(publication and publication.new)
        tick("publish", number, len(report.dates))
    # The cumulative history and the manifest once for all the dates (rewriting them per date would read the
    # whole history once per date).
    history.publish_history(con, warehouse)
    return report


def reachable_dates(con: duckdb.DuckDBPyConnection, sha256s: list[str], now: datetime) -> list[date]:
    """Every fixing date the imported bodies' observations can count for, up to today (UTC): from the earliest
    first date to the latest last date of their digests (sql/select_import_reach.sql)."""
    [(first, last)] = con.execute(sql("select_import_reach"), {"sha256s": sorted(set(sha256s))}).fetchall()
    if first is None:
        return []
    last = min(last, now.date())
    return [first + timedelta(days=k) for k in range((last - first).days + 1)] if last >= first else []
