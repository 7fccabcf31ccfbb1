"""The static site (`tsi site`): a landing table of every index's latest fixing and one page per index.

Written for a reader with nothing but a browser and the folder: plain HTML and one stylesheet, relative links
only, no script, no font or file from elsewhere, so it opens from the file system (file://) as well as from
any web server that mirrors `published/`. Every page is rendered by Jinja2 with autoescape on (a provider
or index name is text, never markup), and every number is the warehouse's Decimal as it is stored.

The site is built whole in a temporary folder beside its destination and swapped in by one rename, so a
reader sees the old site or the new one, never half of each. The expensive part, the charts
(pipeline.chart.draw_chart), is redrawn only when what it shows changed: beside each chart is the sha256 of
its inputs (the series pipeline.chart.chart_series gives, and the chart module's own source); an unchanged
chart is hard-linked from the previous site.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import functools
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import ROUND_HALF_EVEN, Decimal
from importlib import resources
from pathlib import Path
from urllib.parse import quote

import duckdb
import jinja2

from pipeline import chart
from pipeline.definitions import INDEX_ID, UNIT_LABEL
from pipeline.explain import from_warehouse, plain
from pipeline.methodology import PARAMETERS_TITLE, parameters, sections
from pipeline.paths import Warehouse
from pipeline.warehouse import fetch_first, sql

MARKER = ".tsi-site"  # in every folder this module writes: only such a folder is ever replaced by a build
# published/v1/history/<name>.csv and .parquet (pipeline/history.py): each kind's cumulative fixings, and the
# log of every revision ever computed
HISTORY_FILES = {"gpu": "fixings_gpu", "token": "fixings_token", "revisions": "revisions"}
KIND_TITLES = {"gpu": "GPU rental", "token": "LLM tokens"}
KIND_LABELS = {"gpu": "GPU", "token": "token"}
UNIT_WORDS = {"gpu": "USD per GPU-hour", "token": "USD per million tokens"}
CHANGE_DAYS = (1, 7, 30)
RECENT_FIXINGS = 15  # rows of the history table on an index page (the chart shows all of them)
SHA256 = re.compile(r"^[0-9a-f]{64}$")


@dataclass
class SiteBuild:
    path: Path
    pages: int = 0
    charts_drawn: list[str] = field(default_factory=list)
    charts_reused: list[str] = field(default_factory=list)
    seconds: float = 0.0


def build_site(con: duckdb.DuckDBPyConnection, warehouse: Warehouse, out_dir: str | Path | None = None) -> Path:
    """Write the site to out_dir (default <warehouse>/published/site) and return its path."""
    return build(con, warehouse, out_dir).path


def build(con: duckdb.DuckDBPyConnection, warehouse: Warehouse, out_dir: str | Path | None = None) -> SiteBuild:
    """build_site, with what it did: pages written, charts drawn and reused, seconds taken."""
    started = time.perf_counter()
    out = Path(out_dir).expanduser().absolute() if out_dir else warehouse.root / "published" / "site"
    _check_replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    report = SiteBuild(out)
    with _site_lock(out):
        _remove_leftovers(out)
        staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.tmp-"))
        try:
            _write_site(con, warehouse, out, staging, report)
            _swap_in(staging, out)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    report.seconds = time.perf_counter() - started
    return report


# --- what the pages show ---------------------------------------------------------------------------------


def _write_site(con, warehouse: Warehouse, out: Path, staging: Path, report: SiteBuild) -> None:
    env = _environment()
    manifest = _read_manifest(warehouse)
    latest = [_latest_row(row) for row in con.execute(sql("select_site_latest_fixings")).fetchall()]
    page_ids = {row["index_id"] for row in latest}
    (staging / "indices").mkdir()
    (staging / "charts").mkdir()
    css = resources.files("pipeline.templates").joinpath("site.css").read_bytes()
    (staging / "site.css").write_bytes(css)
    groups = [(KIND_TITLES.get(kind, kind), UNIT_WORDS.get(kind, kind), [r for r in latest if r["kind"] == kind])
              for kind in ("gpu", "token")]
    other = [r for r in latest if r["kind"] not in ("gpu", "token")]
    if other:  # a kind a later version adds: still listed, never dropped silently
        groups.append(("Other", "", other))
    newest = max((r["computed_at"] for r in latest), default=None)
    downloads = {kind: _history_links(warehouse, manifest, kind, staging) for kind in HISTORY_FILES}
    index_html = env.get_template("index.html").render(
        root="", groups=[g for g in groups if g[2]], newest=newest, downloads=downloads,
        manifest=_manifest_link(warehouse, manifest, staging), count=len(latest), change_days=CHANGE_DAYS,
    )
    (staging / "index.html").write_text(index_html, encoding="utf-8")
    previous = out / "charts" if (out / MARKER).is_file() else None
    # Every chart's points in one query per unit (chart_series refuses to mix units in one call).
    series = {}
    for kind in sorted({r["kind"] for r in latest}, key=str):
        ids = [r["index_id"] for r in latest if r["kind"] == kind]
        series.update({s.index_id: s for s in chart.chart_series(con, ids)})
    for row in latest:
        page = _index_page(con, warehouse, row, series[row["index_id"]], manifest, page_ids, staging, previous,
                           report)
        (staging / "indices" / f"{row['index_id']}.html").write_text(
            env.get_template("index_page.html").render(root="../", **page), encoding="utf-8")
        report.pages += 1
    report.pages += 1  # the landing page
    (staging / MARKER).write_text("written by `tsi site`; the next build replaces this folder whole\n",
                                  encoding="utf-8")


def _latest_row(row: tuple) -> dict:
    (index_id, name, kind, fixing_date, revision, status, value, n_providers, n_observations, version,
     computed_at, backfill, *before) = row
    if not isinstance(index_id, str) or not INDEX_ID.match(index_id):
        # the id names a file of the site: refuse one that could lead out of it or clash
        raise ValueError(f"the warehouse holds a fixing of index {index_id!r}, which is not a valid index id; "
                         "no site is written")
    changes = [_change(value, earlier) for earlier in before]
    return {
        "index_id": index_id, "name": name or index_id, "kind": kind, "unit": UNIT_LABEL.get(kind, ""),
        "fixing_date": fixing_date, "revision": revision, "status": status, "value": _decimal_text(value),
        "n_providers": n_providers, "n_observations": n_observations, "methodology_version": version,
        "computed_at": _utc(computed_at), "backfill": backfill,
        "changes": changes,
    }


def _change(value: Decimal | None, earlier: Decimal | None) -> dict | None:
    """The move from `earlier` to `value`: exact difference, and percent of `earlier` to 2 places (half-even);
    None (a blank cell) when either has no value."""
    if value is None or earlier is None:
        return None
    diff = value - earlier
    percent = None if earlier == 0 else (diff * 100 / earlier).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    direction = "up" if diff > 0 else "down" if diff < 0 else "flat"
    return {"diff": _signed(diff), "percent": None if percent is None else _signed(percent) + "%",
            "direction": direction}


def _signed(number: Decimal) -> str:
    text = format(number, "f")
    return text if number <= 0 else "+" + text  # no sign on no change: 0.0000, not +0.0000


def _decimal_text(value: Decimal | None) -> str:
    return "" if value is None else format(value, "f")  # as stored: 4 places, never an exponent


def _utc(moment: datetime | None) -> str:
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _index_page(con, warehouse: Warehouse, row: dict, series, manifest: dict | None, page_ids: set[str],
                staging: Path, previous: Path | None, report: SiteBuild) -> dict:
    index_id = row["index_id"]
    explanation = from_warehouse(con, index_id, row["fixing_date"])
    f = explanation.fixing
    d = f.definition
    chart_files = _chart(con, index_id, [series], staging, previous, report)
    # What could move the fixing: its value without each provider in turn (pipeline.influence, through
    # from_warehouse); absent for a suppressed fixing, which has no value to move.
    influence = {r.provider: _without(r) for r in (getattr(explanation, "influence", None) or [])}
    constituents = [
        {"provider": c.provider, "link": f"{c.provider}.html" if d.is_basket and c.provider in page_ids else None,
         "value": plain(c.provider_value), "n_observations": c.n_observations, "weight": plain(c.weight) or "0",
         "rule": c.value_rule or "", "observed_at": _utc(c.observed_at).replace("T", " "),
         "valid_until": c.valid_until.isoformat() if c.valid_until else "", "without": influence.get(c.provider)}
        for c in f.constituents if c.included
    ]
    excluded = []
    for c in f.constituents:
        if not c.included:
            code, _, detail = (c.exclusion_reason or "").partition(":")
            excluded.append({"provider": c.provider, "value": plain(c.provider_value), "code": code.strip(),
                             "detail": detail.strip(), "n_observations": c.n_observations,
                             "without": influence.get(c.provider)})
    recent = [
        {"fixing_date": p.fixing_date, "revision": p.revision, "status": p.status, "value": _decimal_text(p.value),
         "p25": _decimal_text(p.p25), "p75": _decimal_text(p.p75)}
        for p in reversed(series.points[-RECENT_FIXINGS:])
    ]
    revisions = [
        {"revision": rev, "status": status, "value": _decimal_text(value), "computed_at": _utc(computed_at),
         "version": version, "reason": reason or ""}
        for rev, status, value, computed_at, version, reason in explanation.revisions
    ]
    daily = fetch_first(con, sql("select_site_publication"), {"fixing_date": f.fixing_date})
    daily_file = None
    if daily is not None:
        target = warehouse.root / daily[0]
        if _holds(target, daily[1]):  # a link only to a file that is there, with the bytes its checksum says
            daily_file = {"name": target.name, "href": _href(target, staging / "indices"),
                          "sha256": daily[1], "bytes": daily[2]}
    methodology = [(title, _paragraphs(paragraphs)) for title, paragraphs in sections(d)]
    return {
        "fixing": f, "definition": d, "method": f.method, "unit": d.unit_label,
        "value": _decimal_text(f.value), "window_start": _utc(f.window_start), "window_end": _utc(f.window_end),
        "carried_from": f.carried_from.isoformat() if f.carried_from else "",
        "dispersion": [(label, _decimal_text(v)) for label, v in
                       (("p25", f.p25), ("p75", f.p75), ("min", f.min), ("max", f.max), ("mean", f.mean))],
        "dispersion_basis": "member values" if d.is_basket else d.dispersion_basis.replace("_", " "),
        "n_included": len(constituents), "has_influence": bool(influence),
        "any_valid_until": any(c["valid_until"] for c in constituents), "n_considered": len(f.constituents),
        "computed_at": _utc(explanation.computed_at), "revision_reason": explanation.revision_reason or "",
        "constituents": constituents, "excluded": excluded, "recent": recent, "revisions": revisions,
        "chart": chart_files, "history": _history_links(warehouse, manifest, d.instrument_kind, staging / "indices"),
        "revisions_log": _history_links(warehouse, manifest, "revisions", staging / "indices"),
        "manifest": _manifest_link(warehouse, manifest, staging / "indices"),
        "daily_file": daily_file, "methodology": methodology, "parameters_title": PARAMETERS_TITLE,
        "parameters": parameters(d), "definition_sha256": d.sha256, "what": "member index" if d.is_basket else
        "provider",
    }


def _without(r) -> dict:
    """One row of the leave-one-out table as the page shows it: the value without the provider and the move."""
    if not r.stands:
        return {"value": "", "move": "", "note": "would not stand", "largest": False}
    move = "" if r.move is None else _signed(r.move)
    pct = "" if r.move_pct is None else f" ({_signed(r.move_pct.quantize(Decimal('0.01'), rounding=ROUND_HALF_EVEN))}%)"
    return {"value": _decimal_text(r.value_without), "move": move + pct, "note": "", "largest": bool(r.largest)}


def _paragraphs(paragraphs: list[str]) -> list[dict]:
    """Steps and their continuations (indented lines of methodology.sections) as items for the page."""
    items: list[dict] = []
    for text in paragraphs:
        if text.startswith(" ") and items:
            items[-1]["more"].append(text.strip())
        else:
            items.append({"text": text, "more": []})
    return items


# --- charts ------------------------------------------------------------------------------------------------


def chart_inputs_sha256(series: list) -> str:
    """sha256 of everything a chart depends on: the points it plots (each date's newest revision: status,
    value, band), the index's name and kind, and the chart module's source (a new style redraws all)."""
    digest = hashlib.sha256(Path(chart.__file__).read_bytes())
    for s in series:
        digest.update(f"\n{s.index_id}|{s.name}|{s.instrument_kind}".encode())
        for p in s.points:
            digest.update(f"\n{p.fixing_date}|{p.revision}|{p.status}|{p.value}|{p.p25}|{p.p75}".encode())
    return digest.hexdigest()


def _chart(con, index_id: str, series: list, staging: Path, previous: Path | None, report: SiteBuild) -> dict:
    inputs = chart_inputs_sha256(series)
    # An SVG alone: it scales on every screen, and a PNG beside it would double the time of a full build (the
    # PNG of any chart is one `tsi chart` away).
    svg, stamp = (staging / "charts" / f"{index_id}{ext}" for ext in (".svg", ".inputs.sha256"))
    reused = False
    if previous is not None:
        old_svg, old_stamp = (previous / p.name for p in (svg, stamp))
        try:
            if old_stamp.read_text(encoding="utf-8").strip() == inputs and old_svg.is_file():
                _link_or_copy(old_svg, svg)
                reused = True
        except OSError:
            reused = False  # no usable previous chart: draw it
    if reused:
        report.charts_reused.append(index_id)
    else:
        chart.draw_svg(con, [index_id], None, None, svg)
        report.charts_drawn.append(index_id)
    stamp.write_text(inputs + "\n", encoding="utf-8")
    return {"svg": f"../charts/{svg.name}", "inputs_sha256": inputs}


def _link_or_copy(old: Path, new: Path) -> None:
    # A hard link shares the bytes (a chart file is never written in place: draw_chart writes a new file and
    # renames it), so the previous site can be deleted without touching this one.
    try:
        os.link(old, new)
    except OSError:
        shutil.copyfile(old, new)


# --- published history files and the manifest --------------------------------------------------------------


def _read_manifest(warehouse: Warehouse) -> dict | None:
    """published/v1/manifest.json as {path: entry}, or None when it is not published yet."""
    path = warehouse.published_dir / "manifest.json"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} cannot be read ({exc}); no site is written") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc}); no site is written") from None
    files = document.get("files") if isinstance(document, dict) else None
    if not isinstance(files, list):
        raise ValueError(f"{path} has no \"files\" list; no site is written")
    entries = {}
    for entry in files:
        if isinstance(entry, dict) and isinstance(entry.get("path"), str):
            entries[entry["path"]] = entry
    return entries


def _history_links(warehouse: Warehouse, manifest: dict | None, kind: str, page_dir: Path) -> dict:
    """The CSV and Parquet history of a kind of index (or of every revision: kind "revisions") as links with
    their sha256 from the manifest. A file the manifest does not list is not published yet; one it lists whose
    bytes on disk do not have that sha256 (missing, damaged, or rewritten since: the manifest is written
    last) is named as such. Neither is linked."""
    name = HISTORY_FILES.get(kind)
    links, unmatched = [], []
    for ext, label in ((".csv", "CSV"), (".parquet", "Parquet")):
        if name is None:
            break
        relative = f"history/{name}{ext}"
        entry = (manifest or {}).get(relative)
        if entry is None:
            continue
        target = warehouse.published_dir / relative
        sha = entry.get("sha256")
        if not isinstance(sha, str) or not SHA256.match(sha) or not _holds(target, sha):
            unmatched.append(target.name)
            continue
        size = entry.get("bytes")
        links.append({"label": label, "name": target.name, "href": _href(target, page_dir),
                      "sha256": sha, "bytes": size if isinstance(size, int) else None})
    return {"kind": kind, "label": KIND_LABELS.get(kind, kind), "links": links, "unmatched": unmatched}


def _holds(path: Path, sha256: str) -> bool:
    """True when `path` is a file whose bytes have this sha256: a page never shows a checksum the linked
    file does not have (a history file rewritten after the manifest was read, a damaged file)."""
    try:
        stat = path.stat()
    except OSError:
        return False
    return path.is_file() and _file_sha256(str(path), stat.st_size, stat.st_mtime_ns) == sha256


@functools.lru_cache(maxsize=256)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str | None:
    # Keyed on size and modification time too, so a rewritten file is hashed again; every page of a build
    # links the same few files, hashed once.
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def _manifest_link(warehouse: Warehouse, manifest: dict | None, page_dir: Path) -> str | None:
    target = warehouse.published_dir / "manifest.json"
    if manifest is None or not target.is_file():
        return None
    return _href(target, page_dir)


def _href(target: Path, page_dir: Path) -> str:
    """A relative link from a page to a file outside the site (published/v1/...). The page is written in the
    staging folder, a sibling of the site's folder at the same depth: the link is the same from either."""
    return quote(os.path.relpath(target, page_dir).replace(os.sep, "/"))


# --- writing: the staging folder, the swap, the lock ---------------------------------------------------------


def _environment() -> jinja2.Environment:
    folder = resources.files("pipeline.templates")
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        autoescape=True,  # every template is HTML: names and reasons from the warehouse are text
        undefined=jinja2.StrictUndefined,  # a misspelt field fails the build instead of leaving a blank
        trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["thousands"] = lambda n: "" if n is None else f"{n:,}"
    return env


def _check_replaceable(out: Path) -> None:
    """Only a folder this module wrote (its marker inside), an empty folder or nothing may be replaced: a
    mistyped --out must never delete someone's files."""
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ValueError(f"{out} exists and is not a folder; choose a new or empty folder for the site")
    if out.is_dir() and not (out / MARKER).is_file() and any(out.iterdir()):
        raise ValueError(f"{out} is not empty and was not written by `tsi site` (no {MARKER} in it); choose a new "
                         "or empty folder, the site replaces its folder whole")


@contextmanager
def _site_lock(out: Path):
    """One build of a folder at a time (a flow's rebuild and a `tsi site` by hand): the second waits."""
    fd = os.open(out.parent / f".{out.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _remove_leftovers(out: Path) -> None:
    # A build killed before its swap left its staging folder; one killed inside the fallback swap, the old
    # site. Holding the lock, no other build owns either.
    for stale in out.parent.glob(f".{out.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    for stale in out.parent.glob(f".{out.name}.old-*"):
        shutil.rmtree(stale, ignore_errors=True)


def _swap_in(staging: Path, out: Path) -> None:
    """Make `staging` the site at `out` in one step. Linux: renameat2(RENAME_EXCHANGE) swaps the two folders
    atomically, then the old one (now at `staging`) is deleted. Elsewhere: `out` is renamed aside and
    `staging` renamed into place, a moment in which the folder is absent (a reader gets "not found", never a
    mix of two builds)."""
    os.chmod(staging, 0o755)  # mkdtemp makes it private; the site is for readers
    if not out.exists():
        os.rename(staging, out)
        return
    if _exchange(staging, out):
        shutil.rmtree(staging, ignore_errors=True)
        return
    aside = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.old-"))
    os.rename(out, aside / out.name)
    os.rename(staging, out)
    shutil.rmtree(aside, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with renameat2(RENAME_EXCHANGE); False where the system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # glibc before 2.28, or another libc
        return False
    renameat2.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
    renameat2.restype = ctypes.c_int
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.EPERM, errno.ENOTSUP):  # kernel or file system without it
        return False
    raise OSError(code, f"cannot swap the new site into place: {os.strerror(code)}", str(b))


# --- the command ---------------------------------------------------------------------------------------------


def cmd_site(args) -> int:
    """`tsi site [--out DIR]`. Reads the warehouse as every reader does (pipeline.readers): while a run writes
    it, the read-only copy that run's predecessor left, said in a note."""
    from pipeline.readers import reading

    warehouse = Warehouse.locate(args.warehouse)
    with reading(warehouse) as con:
        report = build(con, warehouse, getattr(args, "out", None))
    print(f"{report.path / 'index.html'}: {report.pages} pages, {len(report.charts_drawn)} chart(s) drawn, "
          f"{len(report.charts_reused)} unchanged, in {report.seconds:.1f} s")
    return 0
