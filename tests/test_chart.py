"""`tsi chart` and pipeline.chart.draw_chart: the picture holds the published fixings, marks every day that
is not a plain final fixing, and says its units; the same fixings give the same bytes; bad requests get one
line. On the demo warehouse (tests/demo_warehouse.py) and on a small warehouse fixed by the real engine from
crafted observations, where a widened, a carried, a suppressed and a revised day exist."""
from __future__ import annotations

import fcntl
import math
import os
import shutil
import xml.etree.ElementTree as ET
from datetime import date, datetime, timezone
from pathlib import Path

import matplotlib
import pytest
from PIL import Image

from conftest import add_gpu_snapshot
from fixing_helpers import gpu_index
from pipeline import chart, fixing
from pipeline.cli import main
from pipeline.paths import Warehouse
from pipeline.warehouse import connect

import demo_warehouse

SVG = "{http://www.w3.org/2000/svg}"
# What the tests compare the picture with: the newest revision of each date, written here, not taken from
# pipeline/chart.py.
NEWEST = """
    select fixing_date, coalesce(usd_per_gpu_hour, usd_per_mtok), p25_provider_value, p75_provider_value
    from fixings where index_id = $index_id
    qualify revision = max(revision) over (partition by fixing_date)
    order by fixing_date
"""


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Warehouse:
    return demo_warehouse.fresh_copy(tmp_path_factory)


@pytest.fixture
def demo_con(demo):
    con = connect(demo, read_only=True)
    yield con
    con.close()


@pytest.fixture(scope="module")
def crafted(tmp_path_factory) -> Warehouse:
    """T-H100 (3 providers needed, one fallback window of 48 h, carried at most 1 day), fixed 2026-11-10 to
    14 in one run, then 11-14 again before its cutoff with a fourth provider:

      11-10  a 2.00, b 2.20, c 2.40                    final 2.20 (band 2.10 to 2.30)
      11-11  a alone in 24 h; a 2.10, b, c in 48 h     widened: median(2.10, 2.20, 2.40) = 2.20
      11-12  a alone in 24 h and in 48 h               carried: 2.20 of 11-11
      11-13  a alone, carry of 1 day used              suppressed, no value
      11-14  a, b, c again                             final 2.20, then with d 2.60: revision 2, median of
                                                       2.00 2.20 2.40 2.60 = 2.30 (band 2.15 to 2.45)
    """
    warehouse = Warehouse(tmp_path_factory.mktemp("crafted") / "warehouse").ensure()
    con = connect(warehouse)
    try:
        definition = gpu_index(fallback_window_hours=(48,), carry_days=1)
        for provider, price in (("a", "2.00"), ("b", "2.20"), ("c", "2.40")):
            add_gpu_snapshot(con, provider, "2026-11-10T06:00:00", [("H100-SXM", price)])
            add_gpu_snapshot(con, provider, "2026-11-14T06:00:00", [("H100-SXM", price)])
        for day in (11, 12, 13):
            add_gpu_snapshot(con, "a", f"2026-11-{day}T06:00:00", [("H100-SXM", "2.10")])
        fixing.fix_range(con, [definition], [date(2026, 11, d) for d in range(10, 15)],
                         computed_at=datetime(2026, 11, 14, 16, 5, tzinfo=timezone.utc))
        add_gpu_snapshot(con, "d", "2026-11-14T07:00:00", [("H100-SXM", "2.60")])
        fixing.fix_date(con, [definition], date(2026, 11, 14),
                        computed_at=datetime(2026, 11, 14, 16, 30, tzinfo=timezone.utc))
    finally:
        con.close()
    return warehouse


def artist(fig, gid: str):
    found = [a for a in fig.findobj() if a.get_gid() == gid]
    assert len(found) == 1, f"{gid}: {len(found)} artists"
    return found[0]


def gids(fig) -> set[str]:
    return {a.get_gid() for a in fig.findobj() if a.get_gid()}


def legend_texts(fig) -> list[str]:
    return [t.get_text() for t in fig.legends[0].get_texts()]


def svg_texts(path: Path) -> list[str]:
    root = ET.parse(path).getroot()  # parses: well-formed XML
    return ["".join(t.itertext()).strip() for t in root.iter(f"{SVG}text")]


def run(capsys, warehouse: Warehouse | Path, *argv):
    root = warehouse.root if isinstance(warehouse, Warehouse) else warehouse
    code = main(["--warehouse", str(root), "chart", *argv])
    out, err = capsys.readouterr()
    return code, out, err


# --- the files ---------------------------------------------------------------------------------------------


def test_png_and_svg_of_one_index_with_title_and_units(demo_con, tmp_path):
    png, svg = chart.draw_chart(demo_con, ["TSI-H100-SXM-OD"], None, None, tmp_path / "h100.png")
    assert (png, svg) == (tmp_path / "h100.png", tmp_path / "h100.svg")
    with Image.open(png) as image:
        image.verify()
    with Image.open(png) as image:
        assert image.format == "PNG"
        assert image.size == (1320, 720)  # 11 x 6 inches at 120 dpi
    texts = svg_texts(svg)
    assert "TSI-H100-SXM-OD" in texts  # the title
    assert "USD per GPU-hour" in texts  # y axis, with its unit
    assert "fixing date (UTC)" in texts  # x axis
    assert any(t.startswith("NVIDIA H100 SXM, on-demand") and "2026-11-16 to 2026-11-20" in t for t in texts)
    assert {f"2026-11-{d}" for d in range(16, 21)} <= set(texts)  # a tick a day, as dates (no hours)
    root = ET.parse(svg).getroot()
    assert root.find(f"{SVG}title").text == "TSI-H100-SXM-OD"
    assert not any(a.text and "2026-" in a.text for a in root.iter("{http://purl.org/dc/elements/1.1/}date"))


def test_token_index_axis_says_usd_per_million_tokens(demo_con, tmp_path):
    _, svg = chart.draw_chart(demo_con, ["TSI-LLAMA-3.3-70B-IN"], None, None, tmp_path / "llama.png")
    assert "USD per million tokens" in svg_texts(svg)


def test_plotted_line_and_band_are_the_newest_fixings(demo_con):
    [series] = chart.chart_series(demo_con, ["TSI-H100-SXM-OD"])
    fig = chart.build_figure([series])
    expected = demo_con.execute(NEWEST, {"index_id": "TSI-H100-SXM-OD"}).fetchall()
    assert len(expected) == len(demo_warehouse.DEMO_DATES) == 5
    line = artist(fig, "fixings-TSI-H100-SXM-OD")
    assert list(line.get_xdata()) == [d for d, *_ in expected]
    assert list(line.get_ydata()) == [float(v) for _, v, _, _ in expected]
    band_y = {round(float(y), 6) for path in artist(fig, "band-TSI-H100-SXM-OD").get_paths()
              for _, y in path.vertices}
    assert {round(float(p), 6) for *_, p, _ in expected} <= band_y
    assert {round(float(p), 6) for *_, p in expected} <= band_y
    assert [(p.fixing_date, p.value, p.p25, p.p75) for p in series.points] == expected  # Decimals, exactly


def test_a_range_keeps_only_its_dates(demo_con):
    [series] = chart.chart_series(demo_con, ["TSI-H200-OD"], date(2026, 11, 17), date(2026, 11, 18))
    assert [p.fixing_date for p in series.points] == [date(2026, 11, 17), date(2026, 11, 18)]


def test_two_indices_of_one_unit_share_the_picture(demo_con, tmp_path):
    ids = ["TSI-H100-SXM-OD", "TSI-H200-OD"]
    series = chart.chart_series(demo_con, ids)
    fig = chart.build_figure(series)
    h100, h200 = (artist(fig, f"fixings-{i}") for i in ids)
    assert h100.get_color() != h200.get_color()
    for index_id, line in zip(ids, (h100, h200)):
        expected = demo_con.execute(NEWEST, {"index_id": index_id}).fetchall()
        assert list(line.get_ydata()) == [float(v) for _, v, _, _ in expected]
    assert legend_texts(fig)[:2] == ids
    _, svg = chart.draw_chart(demo_con, ids, None, None, tmp_path / "two.png")
    texts = svg_texts(svg)
    assert "TSI-H100-SXM-OD vs TSI-H200-OD" in texts
    assert {"TSI-H100-SXM-OD", "TSI-H200-OD", "USD per GPU-hour"} <= set(texts)


# --- the marks ---------------------------------------------------------------------------------------------


def test_widened_carried_suppressed_and_revised_days_are_marked(crafted, tmp_path):
    con = connect(crafted, read_only=True)
    try:
        [series] = chart.chart_series(con, ["T-H100"])
        fig = chart.build_figure([series])
        png, svg = chart.draw_chart(con, ["T-H100"], None, None, tmp_path / "crafted.png")
    finally:
        con.close()
    d = lambda day: date(2026, 11, day)  # noqa: E731
    assert [(p.fixing_date, p.revision, p.status) for p in series.points] == [
        (d(10), 1, "final"), (d(11), 1, "widened"), (d(12), 1, "carried"), (d(13), 1, "suppressed"),
        (d(14), 2, "final"),
    ]
    line = artist(fig, "fixings-T-H100")
    y = list(line.get_ydata())
    assert y[:3] == [2.2, 2.2, 2.2] and math.isnan(y[3]) and y[4] == 2.3  # the line breaks on no value
    widened, carried = artist(fig, "widened-T-H100"), artist(fig, "carried-T-H100")
    assert (list(widened.get_xdata()), list(widened.get_ydata())) == ([d(11)], [2.2])
    assert (list(carried.get_xdata()), list(carried.get_ydata())) == ([d(12)], [2.2])
    suppressed = artist(fig, "suppressed-T-H100")
    assert list(suppressed.get_xdata()) == [d(13)]
    ax = fig.axes[0]
    assert suppressed.get_transform() == ax.get_xaxis_transform()  # y in axes units: along the bottom
    assert 0 < suppressed.get_ydata()[0] < 0.1
    revised = artist(fig, "revised-T-H100")
    assert (list(revised.get_xdata()), list(revised.get_ydata())) == ([d(14)], [2.3])
    # 11-14 stands alone between a suppressed day and the end: its band (2.15 to 2.45) is a bar.
    alone = artist(fig, "band-alone-T-H100")
    [segment] = alone.get_segments()
    assert [round(float(v), 6) for v in segment[:, 1]] == [2.15, 2.45]
    # No band on the suppressed day, though the table keeps a dispersion for it (one provider's 2.10).
    band_x = {round(float(x), 6) for p in artist(fig, "band-T-H100").get_paths() for x, _ in p.vertices}
    assert round(float(matplotlib.dates.date2num(d(13))), 6) not in band_x
    legend = legend_texts(fig)
    assert "suppressed: no value (marked at the bottom)" in legend
    assert "widened: fixed from a wider window" in legend
    assert "carried: the last value repeated" in legend
    assert "revised: revision > 1, the newest shown" in legend
    texts = svg_texts(svg)
    assert "suppressed: no value (marked at the bottom)" in texts
    ids = {e.get("id") for e in ET.parse(svg).getroot().iter()}
    assert {"suppressed-T-H100", "revised-T-H100", "widened-T-H100", "carried-T-H100"} <= ids
    with Image.open(png) as image:
        assert image.size == (1320, 720)


def test_a_range_with_no_value_says_so_instead_of_a_scale(crafted):
    con = connect(crafted, read_only=True)
    try:
        series = chart.chart_series(con, ["T-H100"], date(2026, 11, 13), date(2026, 11, 13))
    finally:
        con.close()
    fig = chart.build_figure(series, date(2026, 11, 13), date(2026, 11, 13))
    assert artist(fig, "no-value").get_text() == "no value published in this range"
    assert list(artist(fig, "suppressed-T-H100").get_xdata()) == [date(2026, 11, 13)]
    assert list(fig.axes[0].get_yticks()) == []


def test_many_indices_title_names_three_and_the_legend_all(demo_con):
    ids = ["TSI-LLAMA-3.3-70B-IN", "TSI-LLAMA-3.3-70B-OUT", "TSI-LLAMA-3.3-70B-BLEND", "TSI-OPEN-MAJORS-IN",
           "TSI-OPEN-MAJORS-OUT"]
    series = chart.chart_series(demo_con, ids)
    assert chart.title_of(series) == ("TSI-LLAMA-3.3-70B-IN vs TSI-LLAMA-3.3-70B-OUT vs TSI-LLAMA-3.3-70B-BLEND "
                                      "and 2 more")
    assert legend_texts(chart.build_figure(series))[:5] == ids


def test_marks_and_legend_only_for_what_happened(demo_con):
    """The demo's Qwen input index is widened on 2026-11-18 and nothing else: no other mark, no other key."""
    fig = chart.build_figure(chart.chart_series(demo_con, ["TSI-QWEN-2.5-72B-IN"]))
    widened = artist(fig, "widened-TSI-QWEN-2.5-72B-IN")
    assert list(widened.get_xdata()) == [date(2026, 11, 18)]
    assert not {g for g in gids(fig) if g.split("-")[0] in ("carried", "suppressed", "revised", "provisional")}
    assert not [t for t in legend_texts(fig) if t.startswith(("carried", "suppressed", "revised"))]


# --- determinism and no global state -----------------------------------------------------------------------


def test_same_fixings_give_the_same_bytes_and_leave_matplotlib_as_it_was(demo_con, tmp_path):
    before = dict(matplotlib.rcParams)
    first = chart.draw_chart(demo_con, ["TSI-H100-SXM-OD", "TSI-H200-OD"], None, None, tmp_path / "a.png")
    second = chart.draw_chart(demo_con, ["TSI-H100-SXM-OD", "TSI-H200-OD"], None, None, tmp_path / "b.png")
    assert first[1].read_bytes() == second[1].read_bytes()  # SVG
    assert first[0].read_bytes() == second[0].read_bytes()  # PNG
    assert b"<dc:date>" not in first[1].read_bytes()
    assert b"Matplotlib" not in first[0].read_bytes()  # no Software chunk
    assert dict(matplotlib.rcParams) == before


# --- the command -------------------------------------------------------------------------------------------


@pytest.fixture
def demo_copy(demo, tmp_path) -> Warehouse:
    """The demo's database alone (the raw store is not needed to draw): the command writes published/charts."""
    copy = Warehouse(tmp_path / "copy").ensure()
    shutil.copyfile(demo.db_path, copy.db_path)
    return copy


def test_command_writes_beside_the_warehouse_and_prints_both_paths(demo_copy, capsys):
    code, out, err = run(capsys, demo_copy, "TSI-H100-SXM-OD", "tsi-h200-od")  # ids in any case
    assert code == 0, err
    png = demo_copy.root / "published" / "charts" / "TSI-H100-SXM-OD_vs_TSI-H200-OD.png"
    assert out.splitlines() == [str(png), str(png.with_suffix(".svg"))]
    with Image.open(png) as image:
        assert image.size == (1320, 720)
    assert "TSI-H100-SXM-OD vs TSI-H200-OD" in svg_texts(png.with_suffix(".svg"))


def test_command_out_option(demo_copy, tmp_path, capsys):
    code, out, err = run(capsys, demo_copy, "TSI-H200-OD", "--from", "2026-11-17", "--to", "2026-11-19",
                         "--out", str(tmp_path / "h200.png"))
    assert code == 0, err
    assert out.splitlines() == [str(tmp_path / "h200.png"), str(tmp_path / "h200.svg")]
    assert any("2026-11-17 to 2026-11-19" in t for t in svg_texts(tmp_path / "h200.svg"))


def test_default_name_of_many_indices_is_short_and_safe():
    ids = [f"TSI-INDEX-{n:02d}-OUT" for n in range(20)]
    path = chart.default_chart_path(Warehouse(Path("/w")), ids)
    assert path.parent == Path("/w/published/charts") and path.suffix == ".png"
    assert len(path.name) == 150 + 1 + 12 + 4
    assert chart.default_chart_path(Warehouse(Path("/w")), ["../A B"]).name == "_A_B.png"


@pytest.mark.parametrize("argv, message", [
    (["TSI-H100"], "unknown index 'TSI-H100': did you mean TSI-H100-PCIE-OD, TSI-H100-SXM-HYPERSCALER-OD, "
                   "TSI-H100-SXM-OD, TSI-H100-SXM-OD-BROAD (and 1 more)?"),
    (["TSI-H2OO-OD"], "unknown index 'TSI-H2OO-OD': did you mean TSI-H200-OD"),
    (["NOTHING-LIKE-IT"], "unknown index 'NOTHING-LIKE-IT': none of the"),
    (["TSI-H100-SXM-OD", "TSI-GPT-4O-IN"],
     "TSI-H100-SXM-OD is in USD per GPU-hour and TSI-GPT-4O-IN in USD per million tokens: chart indices of one "
     "unit together"),
    (["TSI-H200-OD", "--from", "2026-11-20", "--to", "2026-11-18"], "--to 2026-11-18 is before --from 2026-11-20"),
    (["TSI-H200-OD", "--from", "2027-01-01"],
     "no fixing of TSI-H200-OD from 2027-01-01 on (it has fixings from 2026-11-16 to 2026-11-20)"),
    (["TSI-H200-OD", "--out", "{tmp}/chart.svg"], "does not end in .png"),
    (["TSI-H200-OD", "--out", "{tmp}"], "is a folder: name the PNG to write"),
    (["TSI-H200-OD", "--out", "{tmp}/a-file/chart.png"], "the folder {tmp}/a-file does not exist"),
    (["TSI-H200-OD", "--out", "{tmp}/taken.png"], "cannot write the chart {tmp}/taken.svg: a folder has that name"),
])
def test_bad_requests_get_one_line_and_status_2(demo, tmp_path, capsys, argv, message):
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "taken.svg").mkdir()
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, out, err = run(capsys, demo, *argv)
    assert code == 2
    assert out == ""
    assert err.startswith("tsi chart: ") and err.count("\n") == 1, err
    assert message.replace("{tmp}", str(tmp_path)) in err
    assert "Traceback" not in err
    assert not (tmp_path / "taken.png").exists()  # refused before either file is written


def test_missing_and_damaged_warehouses_get_one_line(tmp_path, capsys):
    code, _, err = run(capsys, tmp_path / "none", "TSI-H200-OD")
    assert code == 2 and err == f"tsi chart: no warehouse at {tmp_path / 'none' / 'tsi.duckdb'}; run `tsi demo` or " \
                                "a collection first\n"
    damaged = Warehouse(tmp_path / "damaged").ensure()
    damaged.db_path.write_bytes(b"not a database" * 100)
    code, _, err = run(capsys, damaged, "TSI-H200-OD")
    assert code == 2 and err.count("\n") == 1 and "is not a readable DuckDB database" in err


def test_while_a_run_writes_the_chart_is_drawn_from_the_read_only_copy(demo_copy, capsys):
    """pipeline.readers: a run holding the writer's lock sends readers to the copy the last run published."""
    copy = demo_copy.root / "published" / "readonly" / "tsi.duckdb"
    copy.parent.mkdir(parents=True)
    shutil.copy2(demo_copy.db_path, copy)
    lock = os.open(demo_copy.root / ".writer.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # what pipeline.writer.open_writer holds during a run
        code, out, err = run(capsys, demo_copy, "TSI-H200-OD")
    finally:
        os.close(lock)
    assert code == 0, err
    assert err.startswith("note: the warehouse is being written by a run; read the copy of ")
    assert out.splitlines()[0] == str(demo_copy.root / "published" / "charts" / "TSI-H200-OD.png")
