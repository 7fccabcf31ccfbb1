"""Charts of the index history: `tsi chart INDEX [INDEX ...]`, and `draw_chart` for the static site.

One picture per call, saved as a PNG and an SVG beside it: each index's published values (the newest
revision of each date, as sql/select_fixings_as_of.sql publishes them), the band between the 25th and 75th
percentiles of its provider values, and a marker on every date that is not a plain final fixing (widened,
carried, provisional, suppressed: no value, so marked along the bottom) and on every revised date.

Indices share one picture only when they share a unit: a second y axis would put two scales on one grid and
invite a comparison of heights that means nothing, so GPU and token indices are refused together.

matplotlib is used without pyplot (a `Figure` of its own, the Agg canvas): nothing global survives a call and
the site can draw every index in one process. The bytes depend on the fixings alone (fixed style, fixed SVG
hash salt, no date or software in the metadata), so a chart's sha256 changes only when its fixings do.
"""
from __future__ import annotations

import difflib
import hashlib
import io
import math
import re
import sys
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path

import duckdb
import matplotlib
import matplotlib.dates as mdates
import matplotlib.style
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import ScalarFormatter

from pipeline.fixing import CARRIED, SUPPRESSED, WIDENED
from pipeline.paths import Warehouse
from pipeline.publish import _write_atomically
from pipeline.readers import open_reader
from pipeline.warehouse import sql

PROVISIONAL = "provisional"  # allowed by the fixings table; nothing writes it yet, but a chart would show it
AXIS_LABEL = {"gpu": "USD per GPU-hour", "token": "USD per million tokens"}
WIDTH_IN, HEIGHT_IN, DPI = 11.0, 6.0, 120  # 1320 x 720 pixels: readable on a page without zooming
# Okabe-Ito: distinguishable with the common colour-vision deficiencies, and in greyscale print.
COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
DOTS_UP_TO = 90  # a dot on every fixing while they can be told apart; beyond, the line alone
MAX_NAME = 150  # characters of a default file name made of index ids, before it is shortened with a hash
# How each status other than final is marked: (marker, filled, size, legend text).
STATUS_MARKS = {
    WIDENED: ("^", True, 8, "widened: fixed from a wider window"),
    CARRIED: ("s", False, 7, "carried: the last value repeated"),
    PROVISIONAL: ("D", False, 6, "provisional"),
}
SUPPRESSED_TEXT = "suppressed: no value (marked at the bottom)"
REVISED_TEXT = "revised: revision > 1, the newest shown"
# Everything the picture depends on, from matplotlib's defaults up (a user's matplotlibrc changes nothing).
STYLE = {
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.35,
    "grid.linewidth": 0.6,
    "legend.fontsize": 9,
    "svg.fonttype": "none",  # text stays text: searchable, selectable, small
    "svg.hashsalt": "tsi-chart",  # the ids of clip paths are hashes salted with this: fixed, not random
    "path.simplify": True,
}


@dataclass(frozen=True)
class Point:
    fixing_date: date
    revision: int
    status: str
    value: Decimal | None  # None when suppressed
    p25: Decimal | None
    p75: Decimal | None


@dataclass(frozen=True)
class Series:
    index_id: str
    name: str
    instrument_kind: str  # gpu | token
    points: tuple[Point, ...]

    @property
    def axis_label(self) -> str:
        return AXIS_LABEL[self.instrument_kind]


def chart_series(
    con: duckdb.DuckDBPyConnection, index_ids: list[str], first: date | None = None, last: date | None = None,
) -> list[Series]:
    """The fixings each index of `index_ids` has from `first` to `last` (inclusive; None: from its first
    or to its last), newest revision of each date. Refuses, in one line, what would make a wrong or empty
    chart: an unknown index, indices of different units, a range with no fixing, `last` before `first`."""
    if not index_ids:
        raise ValueError("name at least one index to chart")
    if first and last and last < first:
        raise ValueError(f"--to {last.isoformat()} is before --from {first.isoformat()}")
    known = _known_indices(con)
    wanted = list(dict.fromkeys(_known_id(i, known) for i in index_ids))  # repeated ids: drawn once
    kinds = {i: known[i][1] for i in wanted}
    if len(set(kinds.values())) > 1:
        a = next(i for i in wanted if kinds[i] != kinds[wanted[0]])
        raise ValueError(
            f"{wanted[0]} is in {AXIS_LABEL.get(kinds[wanted[0]], kinds[wanted[0]])} and {a} in "
            f"{AXIS_LABEL.get(kinds[a], kinds[a])}: chart indices of one unit together"
        )
    rows = con.execute(sql("select_chart_fixings"), {"index_ids": wanted, "first": first, "last": last}).fetchall()
    points: dict[str, list[Point]] = {i: [] for i in wanted}
    for index_id, fixing_date, revision, status, value, p25, p75 in rows:
        points[index_id].append(Point(fixing_date, revision, status, value, p25, p75))
    for index_id in wanted:
        if not points[index_id]:
            _, _, _, fixed_from, fixed_to = known[index_id]
            span = f"from {fixed_from} to {fixed_to}" if fixed_from else "none at all"
            raise ValueError(f"no fixing of {index_id} {_range_text(first, last)} (it has fixings {span})")
    return [Series(i, known[i][2] or i, kinds[i], tuple(points[i])) for i in wanted]


def _known_indices(con: duckdb.DuckDBPyConnection) -> dict[str, tuple]:
    return {row[0]: row for row in con.execute(sql("select_chart_indices")).fetchall()}


def resolve_ids(con: duckdb.DuckDBPyConnection, index_ids: list[str]) -> list[str]:
    """The warehouse's spelling of each id, once each, in the order given; an unknown one is refused."""
    known = _known_indices(con)
    return list(dict.fromkeys(_known_id(i, known) for i in index_ids))


def _known_id(index_id: str, known: dict) -> str:
    if index_id in known:
        return index_id
    if index_id.upper() in known:  # ids are upper case (pipeline.definitions.INDEX_ID): tsi-h200-od is meant
        return index_id.upper()
    # The ids that start with what was typed first (TSI-H100 means one of the H100 indices), then look-alikes.
    starting = sorted(k for k in known if k.startswith(index_id.upper()))
    close = starting[:4] or difflib.get_close_matches(index_id.upper(), list(known), n=4, cutoff=0.6)
    more = f" (and {len(starting) - 4} more)" if len(starting) > 4 else ""
    hint = (f"did you mean {', '.join(close)}{more}?" if close else
            f"none of the {len(known)} indices of the warehouse is close; `tsi fixings` lists those fixed")
    raise ValueError(f"unknown index {index_id!r}: {hint}")


def _range_text(first: date | None, last: date | None) -> str:
    if first and last:
        return f"from {first.isoformat()} to {last.isoformat()}"
    if first:
        return f"from {first.isoformat()} on"
    if last:
        return f"up to {last.isoformat()}"
    return "in the warehouse"


def _number(value: Decimal | None) -> float:
    # matplotlib draws floats; the Decimal stays the value of record, this is only where the pixel goes.
    return math.nan if value is None else float(value)


def title_of(series: list[Series]) -> str:
    """"A vs B"; beyond three ids the title would not fit the width: the legend names them all."""
    ids = [s.index_id for s in series]
    return " vs ".join(ids) if len(ids) <= 3 else f"{' vs '.join(ids[:3])} and {len(ids) - 3} more"


def build_figure(series: list[Series], first: date | None = None, last: date | None = None) -> Figure:
    """The chart of `series` (from chart_series) as a matplotlib Figure, not yet rendered. Each artist has
    a gid naming what it shows ("fixings-<index>", "band-<index>", "widened-<index>", "suppressed-<index>",
    "revised-<index>", ...): kept as the element id in the SVG, and what tests read the plotted data by."""
    fig = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    dates = sorted({p.fixing_date for s in series for p in s.points})
    start, end = first or dates[0], last or dates[-1]
    many = sum(len(s.points) for s in series) > DOTS_UP_TO * max(1, len(series))
    seen: set[str] = set()
    for i, s in enumerate(series):
        colour = COLOURS[i % len(COLOURS)]
        x = [p.fixing_date for p in s.points]
        y = [_number(p.value) for p in s.points]
        label = s.index_id if len(series) > 1 else f"{s.index_id} (daily fixing)"
        ax.plot(x, y, color=colour, linewidth=1.8, marker=None if many else "o", markersize=3.5,
                label=label, gid=f"fixings-{s.index_id}", zorder=3)
        # The band only where a value is published: a suppressed day's dispersion is of too few providers.
        low = [math.nan if p.value is None else _number(p.p25) for p in s.points]
        high = [math.nan if p.value is None else _number(p.p75) for p in s.points]
        # Lighter when many overlap, and edged in the index's colour by lines of their own (the polygon's own
        # edge would also draw a stroke down every gap): each band stays legible.
        shade = 0.14 if len(series) <= 2 else 0.08
        ax.fill_between(x, low, high, facecolor=to_rgba(colour, shade), linewidth=0, gid=f"band-{s.index_id}",
                        zorder=1)
        for edge, values in (("p25", low), ("p75", high)):
            ax.plot(x, values, color=to_rgba(colour, 0.55), linewidth=0.7, gid=f"band-{edge}-{s.index_id}",
                    zorder=2)
        # A value with no value on either side has a band of no width: a bar of the same shade instead.
        alone = [k for k, p in enumerate(s.points) if p.value is not None and p.p25 is not None
                 and (k == 0 or s.points[k - 1].value is None)
                 and (k == len(s.points) - 1 or s.points[k + 1].value is None)]
        if alone:
            ax.vlines([x[k] for k in alone], [low[k] for k in alone], [high[k] for k in alone], color=colour,
                      alpha=0.2, linewidth=9, gid=f"band-alone-{s.index_id}", zorder=1)
        for status, (marker, filled, size, _) in STATUS_MARKS.items():
            marked = [p for p in s.points if p.status == status and p.value is not None]
            if marked:
                seen.add(status)
                ax.plot([p.fixing_date for p in marked], [_number(p.value) for p in marked], linestyle="none",
                        marker=marker, markersize=size, markerfacecolor=colour if filled else "white",
                        markeredgecolor=colour, markeredgewidth=1.4, gid=f"{status}-{s.index_id}", zorder=4)
        # No value to put a suppressed day's mark at: it sits on the bottom edge, one row per index.
        bottom = 0.025 + 0.03 * i
        suppressed = [p for p in s.points if p.status == SUPPRESSED or p.value is None]
        if suppressed:
            seen.add(SUPPRESSED)
            ax.plot([p.fixing_date for p in suppressed], [bottom] * len(suppressed), linestyle="none",
                    marker="X", markersize=8, color=colour, transform=ax.get_xaxis_transform(), clip_on=False,
                    gid=f"suppressed-{s.index_id}", zorder=4)
        revised = [p for p in s.points if p.revision > 1]
        if revised:
            seen.add("revised")
            on_value = [p for p in revised if p.value is not None]
            ax.plot([p.fixing_date for p in on_value], [_number(p.value) for p in on_value], linestyle="none",
                    marker="o", markersize=13, markerfacecolor="none", markeredgecolor="#222222",
                    markeredgewidth=1.3, gid=f"revised-{s.index_id}", zorder=5)
            off_value = [p for p in revised if p.value is None]
            if off_value:
                ax.plot([p.fixing_date for p in off_value], [bottom] * len(off_value), linestyle="none",
                        marker="o", markersize=13, markerfacecolor="none", markeredgecolor="#222222",
                        markeredgewidth=1.3, transform=ax.get_xaxis_transform(), clip_on=False,
                        gid=f"revised-suppressed-{s.index_id}", zorder=5)
    if SUPPRESSED in seen:
        ax.margins(y=0.08 + 0.03 * len(series))  # room above the bottom row of marks
    if all(p.value is None for s in series for p in s.points):
        # No value at all in the range: no scale to invent, a sentence instead.
        ax.set_ylim(0, 1)
        ax.set_yticks([])
        ax.text(0.5, 0.5, "no value published in this range", transform=ax.transAxes, ha="center",
                va="center", fontsize=11, color="#444444", gid="no-value")
    # Half a day either side, so that the first and last marks are whole (date - timedelta(hours=12) would
    # drop the hours: matplotlib's day numbers instead).
    ax.set_xlim(mdates.date2num(start) - 0.5, mdates.date2num(end) + 0.5)
    # A tick a day over a short span (the automatic locator would tick hours, which fixings do not have).
    short = (end - start).days <= 10
    locator = mdates.DayLocator() if short else mdates.AutoDateLocator(minticks=3, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%Y-%m-%d") if short else mdates.ConciseDateFormatter(locator))
    y_format = ScalarFormatter(useOffset=False)  # 2.20, not 0.02 + 2.18
    y_format.set_scientific(False)
    ax.yaxis.set_major_formatter(y_format)
    ax.set_xlabel("fixing date (UTC)")
    ax.set_ylabel(series[0].axis_label)
    fig.suptitle(title_of(series), x=0.01, ha="left", fontsize=13, fontweight="bold", parse_math=False)
    subtitle = series[0].name if len(series) == 1 else f"{len(series)} indices, {series[0].axis_label}"
    ax.set_title(f"{subtitle}; {start.isoformat()} to {end.isoformat()}, newest revision of each date",
                 loc="left", fontsize=9, fontweight="normal", color="#444444", parse_math=False)
    fig.legend(handles=_legend_handles(ax, seen), loc="outside lower center", frameon=False,
               ncols=min(3, len(series) + 1 + len(seen)))
    return fig


def _legend_handles(ax, seen: set[str]) -> list:
    handles = [line for line in ax.get_lines() if (line.get_gid() or "").startswith("fixings-")]
    handles.append(Patch(facecolor="#888888", alpha=0.3, linewidth=0,
                         label="shaded: p25 to p75 of provider values"))
    grey = "#555555"
    for status, (marker, filled, size, text) in STATUS_MARKS.items():
        if status in seen:
            handles.append(Line2D([], [], linestyle="none", marker=marker, markersize=size, markeredgewidth=1.4,
                                  markerfacecolor=grey if filled else "white", markeredgecolor=grey, label=text))
    if SUPPRESSED in seen:
        handles.append(Line2D([], [], linestyle="none", marker="X", markersize=8, color=grey,
                              label=SUPPRESSED_TEXT))
    if "revised" in seen:
        handles.append(Line2D([], [], linestyle="none", marker="o", markersize=11, markerfacecolor="none",
                              markeredgecolor="#222222", markeredgewidth=1.3, label=REVISED_TEXT))
    return handles


def _style():
    """matplotlib's own defaults, then STYLE, for the duration of a with block; restored after (rcParams are
    global: nothing may stay changed for the next caller)."""
    return matplotlib.style.context(["default", STYLE])


def render(fig: Figure, title: str, formats: tuple[str, ...] = ("png", "svg")) -> dict[str, bytes]:
    """The bytes of `fig` in each of `formats` ("png", "svg"): no creation date, no software name, fixed ids;
    the same for the same figure on every run."""
    options = {"png": {"dpi": DPI, "metadata": {"Software": None}},
               "svg": {"metadata": {"Date": None, "Creator": None, "Title": title}}}
    files = {}
    with _style():
        # Lay the figure out once, then keep those positions for both files: the same layout in each, and
        # half the time (each savefig would otherwise rerun the layout, the slowest part of a save).
        engine = fig.get_layout_engine()
        if engine is not None:
            engine.execute(fig)
            fig.set_layout_engine("none")
        for kind in formats:
            buffer = io.BytesIO()
            fig.savefig(buffer, format=kind, **options[kind])
            files[kind] = buffer.getvalue()
    return files


def draw_chart(
    con: duckdb.DuckDBPyConnection, index_ids: list[str], first: date | None, last: date | None,
    png_path: str | Path,
) -> tuple[Path, Path]:
    """Draw `index_ids` from `first` to `last` into png_path and the SVG beside it (same name, .svg), each
    written whole or not at all. Returns (png_path, svg_path)."""
    png_path = Path(png_path)
    if png_path.suffix.lower() != ".png":
        raise ValueError(f"{png_path} does not end in .png: name the PNG to write (the SVG goes beside it)")
    svg_path = png_path.with_suffix(".svg")
    for path in (png_path, svg_path):  # found before either file is written: never half a pair
        if path.is_dir():
            raise ValueError(f"cannot write the chart {path}: a folder has that name")
    _draw(con, index_ids, first, last, {"png": png_path, "svg": svg_path})
    return png_path, svg_path


def draw_svg(con: duckdb.DuckDBPyConnection, index_ids: list[str], first: date | None, last: date | None,
             svg_path: str | Path) -> Path:
    """draw_chart's picture as an SVG alone (the site's pages: it scales, and skipping the PNG halves the time
    of a site's 64 charts)."""
    svg_path = Path(svg_path)
    _draw(con, index_ids, first, last, {"svg": svg_path})
    return svg_path


def _draw(con, index_ids: list[str], first: date | None, last: date | None, paths: dict[str, Path]) -> None:
    series = chart_series(con, index_ids, first, last)
    # The style applies when artists are made (colours, fonts, ticks) and when they are drawn: both inside.
    with _style():
        fig = build_figure(series, first, last)
        files = render(fig, title_of(series), tuple(paths))
    for kind, path in paths.items():
        try:
            _write_atomically(path, files[kind])
        except OSError as exc:
            raise OSError(f"cannot write the chart {path}: {exc.strerror or exc}") from None


def default_chart_path(warehouse: Warehouse, index_ids: list[str]) -> Path:
    """<warehouse>/published/charts/<ids>.png: the ids joined by "_vs_", kept to file-name characters, a
    long list shortened to its start and a hash of the whole."""
    name = "_vs_".join(re.sub(r"[^A-Za-z0-9._-]", "_", i) for i in index_ids).lstrip(".") or "chart"
    if len(name) > MAX_NAME:
        name = f"{name[:MAX_NAME]}-{hashlib.sha256(name.encode()).hexdigest()[:12]}"
    return warehouse.root / "published" / "charts" / f"{name}.png"


def cmd_chart(args) -> int:
    first, last = args.first, args.last
    if first and last and last < first:  # before opening anything
        raise ValueError(f"--to {last.isoformat()} is before --from {first.isoformat()}")
    warehouse = Warehouse.locate(args.warehouse)
    if args.out:
        out = Path(args.out).expanduser()
        if out.is_dir():
            raise ValueError(f"--out {out} is a folder: name the PNG to write")
        if out.suffix.lower() != ".png":
            raise ValueError(f"--out {out} does not end in .png: name the PNG to write (the SVG goes beside it)")
        if not out.parent.is_dir():
            raise ValueError(f"--out {out}: the folder {out.parent} does not exist")
    # While a run writes the warehouse, its read-only copy (said on stderr); a damaged or absent one in a line.
    con, note = open_reader(warehouse)
    try:
        if note:
            print(f"note: {note}", file=sys.stderr)
        ids = resolve_ids(con, args.index)
        png_path = out if args.out else default_chart_path(warehouse, ids)
        png, svg = draw_chart(con, ids, first, last, png_path)
    finally:
        con.close()
    print(png)
    print(svg)
    return 0
