"""The static site (pipeline/site.py, `tsi site`), built from the demo warehouse and opened in a real headless
browser: Debian's chromium (/usr/bin/chromium, installed by .ci/run) driven by playwright, from file://.

One warehouse, one site and one browser for the module. The tests that change the warehouse (a correction, a
hostile name) work on a copy of its file."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from urllib.parse import unquote, urlparse

import duckdb
import pytest
from bs4 import BeautifulSoup

import demo_warehouse
from pipeline import site as site_module
from pipeline.methodology import describe
from pipeline.paths import Warehouse
from pipeline.warehouse import connect

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
LINKED = "a[href], link[href], img[src], script[src], iframe[src], source[src], object[data]"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> Warehouse:
    wh = demo_warehouse.fresh_copy(tmp_path_factory)
    _ensure_manifest(wh)
    return wh


def _ensure_manifest(wh: Warehouse) -> None:
    """The history files and their manifest, as the publication writes them (published/v1/manifest.json). If
    the demo's publication did not write them, small stand-ins in the manifest's shape: the site only links
    them and shows their checksums."""
    manifest = wh.published_dir / "manifest.json"
    if manifest.exists():
        return
    files = []
    for name in ("fixings_gpu.csv", "fixings_gpu.parquet", "fixings_token.csv", "fixings_token.parquet",
                 "revisions.csv", "revisions.parquet"):
        body = f"stand-in for {name}\n".encode()
        path = wh.published_dir / "history" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        files.append({"path": f"history/{name}", "sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body)})
    manifest.write_text(json.dumps({"schema_version": 1, "files": files}), encoding="utf-8")


@pytest.fixture(scope="module")
def con(warehouse):
    connection = connect(warehouse, read_only=True)
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def built(con, warehouse) -> site_module.SiteBuild:
    return site_module.build(con, warehouse)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the site's tests need Debian's chromium; install it with "
                    "`apt-get update && apt-get install -y chromium` (.ci/run does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield b
        b.close()


class Visit:
    """A page opened from file://, with every console error, page error, failed request and dialog seen."""

    def __init__(self, browser, path: Path, viewport=(1280, 900)):
        self.context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("console", lambda m: m.type in ("error", "warning") and self.problems.append(f"console {m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("requestfailed", lambda r: self.problems.append(f"request failed: {r.url} {r.failure}"))
        self.page.on("dialog", lambda d: (self.problems.append(f"dialog: {d.message}"), d.dismiss()))
        self.page.goto(path.as_uri(), wait_until="load")

    def close(self):
        self.context.close()


def latest_fixings_by_sql(con) -> dict[str, dict]:
    """What the landing table must hold, written here independently of the site's SQL."""
    rows = con.execute("""
        with newest as (
            select index_id, fixing_date, revision, status, n_providers, methodology_version,
                   coalesce(usd_per_gpu_hour, usd_per_mtok) as value
            from fixings
            qualify revision = max(revision) over (partition by index_id, fixing_date)
        ),
        last_date as (select index_id, max(fixing_date) as fixing_date from fixings group by index_id)
        select n.index_id, n.fixing_date, n.revision, n.status, n.value, n.n_providers,
               (select value from newest b where b.index_id = n.index_id and b.fixing_date = n.fixing_date - 1),
               (select value from newest b where b.index_id = n.index_id and b.fixing_date = n.fixing_date - 7),
               (select value from newest b where b.index_id = n.index_id and b.fixing_date = n.fixing_date - 30),
               (select d.definition_json::json ->> 'instrument_kind' from index_definitions d
                where d.index_id = n.index_id and d.methodology_version = n.methodology_version)
        from newest n join last_date using (index_id, fixing_date)
        order by n.index_id
    """).fetchall()
    expected = {}
    for index_id, day, revision, status, value, n_providers, *before, kind in rows:
        expected[index_id] = {
            "date": day.isoformat(), "value": "" if value is None else str(value), "status": status,
            "revision": revision, "providers": str(n_providers),
            "unit": {"gpu": "USD/GPU-hour", "token": "USD/Mtok"}[kind],
            "changes": [_expected_change(value, b) for b in before],
        }
    return expected


def _expected_change(value, before) -> str:
    if value is None or before is None:
        return ""
    diff = value - before
    pct = (diff / before * 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_EVEN)
    sign = lambda d: ("+" if d > 0 else "") + format(d, "f")  # noqa: E731
    return f"{sign(diff)} ({sign(pct)}%)"


def landing_rows(page) -> dict[str, dict]:
    rows = page.eval_on_selector_all("tr[data-index]", """trs => trs.map(tr => ({
        id: tr.dataset.index,
        link: tr.querySelector('td.index a').getAttribute('href'),
        linkText: tr.querySelector('td.index a').textContent.trim(),
        date: tr.querySelector('td.date').textContent.trim(),
        value: tr.querySelector('td.value').textContent.trim(),
        unit: tr.querySelector('td.unit').textContent.trim(),
        status: tr.querySelector('td.status .badge').textContent.trim(),
        rev: (tr.querySelector('td.status .rev') || {textContent: ''}).textContent.trim(),
        changes: [1, 2, 3].map(i => tr.querySelector('td.change-' + i).textContent.trim().replace(/\\s+/g, ' ')),
        providers: tr.querySelector('td.providers').textContent.trim(),
    }))""")
    by_id = {r["id"]: r for r in rows}
    assert len(by_id) == len(rows), "an index is listed twice"
    return by_id


def check_landing(page, con) -> None:
    shown = landing_rows(page)
    expected = latest_fixings_by_sql(con)
    assert sorted(shown) == sorted(expected)
    for index_id, want in expected.items():
        got = shown[index_id]
        assert got["link"] == f"indices/{index_id}.html" and got["linkText"] == index_id
        assert (got["date"], got["value"], got["unit"], got["status"], got["providers"]) == (
            want["date"], want["value"], want["unit"], want["status"], want["providers"]), index_id
        assert got["rev"] == (f"rev {want['revision']}" if want["revision"] > 1 else "")
        assert got["changes"] == want["changes"], index_id


def check_links(page, page_path: Path) -> list[Path]:
    """Every link and image of the page leads to an existing local file; images are decoded."""
    urls = page.eval_on_selector_all(LINKED, "els => els.map(e => e.href || e.src || e.data)")
    assert urls, f"{page_path} has no link at all"
    targets = []
    for url in urls:
        parsed = urlparse(url)
        assert parsed.scheme == "file", f"{page_path.name}: external or non-file link {url}"
        target = Path(unquote(parsed.path))
        assert target.is_file(), f"{page_path.name}: dead link {url}"
        targets.append(target)
    broken = page.eval_on_selector_all("img", "imgs => imgs.filter(i => !i.complete || i.naturalWidth === 0)"
                                              ".map(i => i.src)")
    assert not broken, f"{page_path.name}: images that do not load: {broken}"
    html = page_path.read_text(encoding="utf-8")
    assert "http://" not in html and "https://" not in html and "<script" not in html
    return targets


# --- the browser tests --------------------------------------------------------------------------------------


def test_landing_page_holds_exactly_the_latest_fixings(browser, built, con):
    visit = Visit(browser, built.path / "index.html")
    try:
        assert visit.page.title() == "Token Spot Index: latest fixings"
        check_landing(visit.page, con)
        shown = landing_rows(visit.page)
        # By hand, from the demo's recordings (README quickstart table): H100 SXM on demand 2.5900 on 11-19 and
        # 2.5708 on 11-20: -0.0192, -0.0192 / 2.59 = -0.741%; spot 1.1000 then 1.1350: +0.0350, +3.182%.
        assert shown["TSI-H100-SXM-OD"]["value"] == "2.5708"
        assert shown["TSI-H100-SXM-OD"]["changes"] == ["-0.0192 (-0.74%)", "", ""]
        assert shown["TSI-H100-SXM-SPOT"]["changes"] == ["+0.0350 (+3.18%)", "", ""]
        assert shown["TSI-H200-OD"]["changes"] == ["0.0000 (0.00%)", "", ""]
        assert visit.problems == []
    finally:
        visit.close()


def test_every_page_loads_cleanly_and_every_link_resolves(browser, built, con):
    pages = [built.path / "index.html", *sorted((built.path / "indices").glob("*.html"))]
    assert len(pages) == 1 + con.execute("select count(distinct index_id) from fixings").fetchone()[0] == 65
    assert built.pages == 65
    values = dict(con.execute("""
        select index_id, coalesce(usd_per_gpu_hour, usd_per_mtok)::varchar from fixings
        qualify fixing_date = max(fixing_date) over (partition by index_id)
            and revision = max(revision) over (partition by index_id, fixing_date)
    """).fetchall())
    linked: set[Path] = set()
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    problems: list[str] = []
    page = context.new_page()
    page.on("console", lambda m: m.type in ("error", "warning") and problems.append(f"{page.url}: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"{page.url}: page error {e}"))
    page.on("requestfailed", lambda r: problems.append(f"{page.url}: request failed {r.url}"))
    try:
        for path in pages:
            page.goto(path.as_uri(), wait_until="load")
            linked.update(check_links(page, path))
            if path.parent.name == "indices":
                big = page.text_content(".figure-value .big").strip()
                assert big == (values[path.stem] or "no value"), path.name
    finally:
        context.close()
    assert problems == []
    # The links reach what a reader needs: every index page, chart (SVG), history file and day file.
    assert {p.name for p in linked if p.parent.name == "indices"} == {p.name for p in pages[1:]}
    assert {p.suffix for p in linked if p.parent.name == "charts"} == {".svg"}
    assert {p.name for p in linked if p.parent.name == "history"} == {
        "fixings_gpu.csv", "fixings_gpu.parquet", "fixings_token.csv", "fixings_token.parquet", "revisions.csv",
        "revisions.parquet"}
    assert any(p.parent.name == "fixings" and p.suffix == ".csv" for p in linked)


def test_screenshots_of_the_landing_and_an_index_page(browser, built, tmp_path):
    for path, name in ((built.path / "index.html", "landing.png"),
                       (built.path / "indices" / "TSI-H100-SXM-OD.html", "h100.png")):
        visit = Visit(browser, path)
        try:
            visit.page.screenshot(path=str(tmp_path / name), full_page=True)
            assert visit.problems == []
        finally:
            visit.close()
        body = (tmp_path / name).read_bytes()
        assert body[:8] == b"\x89PNG\r\n\x1a\n"
        width, height = int.from_bytes(body[16:20], "big"), int.from_bytes(body[20:24], "big")
        assert width == 1280 and height > 900  # the whole page, longer than one screen
        assert len(body) > 20_000


def test_index_page_shows_constituents_exclusions_methodology_and_files(browser, built, con, warehouse):
    visit = Visit(browser, built.path / "indices" / "TSI-H100-SXM-OD.html")
    try:
        page = visit.page
        rows = page.eval_on_selector_all("#constituents tbody tr", "trs => trs.map(tr => [tr.cells[0].firstChild"
                                         ".textContent.trim(), tr.cells[1].textContent.trim(), "
                                         "tr.cells[2].textContent.trim()])")
        stored = con.execute("""
            select provider, provider_value, n_observations, included, exclusion_reason
            from fixing_constituents
            where index_id = 'TSI-H100-SXM-OD' and fixing_date = date '2026-11-20' and revision = 1
            order by provider_value
        """).fetchall()
        plain = lambda v: format(v.normalize(), "f")  # noqa: E731  2.49000000000 -> 2.49
        assert rows == [[p, plain(v), str(n)] for p, v, n, inc, _ in stored if inc]
        excluded = page.eval_on_selector_all("#excluded tbody tr", "trs => trs.map(tr => "
                                             "[tr.cells[0].textContent.trim(), tr.cells[3].textContent.trim()])")
        assert excluded == [[p, why.replace(": ", " ", 1)] for p, _, _, inc, why in stored if not inc]
        assert [p for p, _ in excluded] == ["paperspace", "do"]  # the demo's two outliers (README explain)
        assert all(why.startswith("outlier_mad modified z") for _, why in excluded)
        text = " ".join(page.text_content("section.methodology").split())
        assert "exceeds 3.5 (outlier_threshold)" in text and "at least 3 included provider(s)" in text
        definition = con.execute("select definition_sha256 from index_definitions where index_id = "
                                 "'TSI-H100-SXM-OD' and methodology_version = '2.0'").fetchone()[0]
        assert definition in text  # the stored version's definition, by its hash
        params = dict(page.eval_on_selector_all("#parameters tbody tr", "trs => trs.map(tr => "
                                                "[tr.cells[0].textContent.trim(), tr.cells[1].textContent.trim()])"))
        assert params["sources"] == "skypilot" and params["min_providers"] == "3"
        manifest = json.loads((warehouse.published_dir / "manifest.json").read_text())
        sha = {f["path"]: f["sha256"] for f in manifest["files"]}
        files = " ".join(page.text_content("section.downloads").split())
        assert f"fixings_gpu.csv sha256 {sha['history/fixings_gpu.csv']}" in files
        assert f"fixings_gpu.parquet sha256 {sha['history/fixings_gpu.parquet']}" in files
        assert "fixings_token" not in files  # a GPU index links the GPU history
        day = con.execute("select sha256 from publications where fixing_date = date '2026-11-20'").fetchone()[0]
        assert f"fixings_2026-11-20.csv sha256 {day}" in files
        assert visit.problems == []
    finally:
        visit.close()


def test_basket_page_links_its_member_pages(browser, built):
    visit = Visit(browser, built.path / "indices" / "TSI-OPEN-MAJORS-BLEND.html")
    try:
        links = visit.page.eval_on_selector_all("#constituents a", "as => as.map(a => a.getAttribute('href'))")
        assert sorted(links) == sorted(f"{m}.html" for m in ("TSI-LLAMA-3.3-70B-BLEND", "TSI-DEEPSEEK-V3-0324-BLEND",
                                                              "TSI-QWEN-2.5-72B-BLEND", "TSI-GPT-OSS-120B-BLEND"))
        text = " ".join(visit.page.text_content("section.methodology").split())
        assert "the equal-weight mean of the member indices TSI-LLAMA-3.3-70B-BLEND" in text
    finally:
        visit.close()


def test_hostile_names_are_text_and_a_correction_redraws_only_its_chart(browser, built, warehouse, tmp_path):
    """On a copy of the warehouse: a correction of TSI-H200-OD (revision 2 on the latest date, +1.0000), a
    fixing 7 days earlier, and markup in a definition's name and a provider's name. The rebuild (over a copy of
    the module's site) redraws that one chart, and the page shows the markup as text."""
    copy = Warehouse(tmp_path / "warehouse")
    copy.root.mkdir()
    shutil.copyfile(warehouse.db_path, copy.db_path)
    shutil.copytree(warehouse.root / "published", copy.root / "published")
    shutil.copytree(built.path, tmp_path / "site")
    stale = tmp_path / "site" / "indices" / "TSI-GONE.html"
    stale.write_text("an index that no longer exists")
    hostile_name = '<script>alert("name")</script> & Co'
    hostile_provider = '<img src=x onerror=alert(1)>'
    con = connect(copy)
    try:
        con.execute("""
            insert into fixings select * replace (revision + 1 as revision, usd_per_gpu_hour + 1 as usd_per_gpu_hour,
                'test: a correction' as revision_reason, computed_at + interval 1 hour as computed_at)
            from fixings where index_id = 'TSI-H200-OD' and fixing_date = date '2026-11-20'
        """)
        con.execute("""
            insert into fixing_constituents select * replace (revision + 1 as revision)
            from fixing_constituents where index_id = 'TSI-H200-OD' and fixing_date = date '2026-11-20'
        """)
        con.execute("""
            insert into fixings select * replace (date '2026-11-13' as fixing_date, 2.5000 as usd_per_gpu_hour)
            from fixings where index_id = 'TSI-H200-OD' and fixing_date = date '2026-11-16'
        """)
        con.execute("update index_definitions set definition_json = json_merge_patch(definition_json, $patch) "
                    "where index_id = 'TSI-H200-OD'", {"patch": json.dumps({"name": hostile_name})})
        con.execute("""
            update fixing_constituents set provider = $p
            where index_id = 'TSI-H200-OD' and fixing_date = date '2026-11-20' and revision = 2
              and provider = (select min(provider) from fixing_constituents where index_id = 'TSI-H200-OD'
                              and fixing_date = date '2026-11-20' and revision = 2 and included)
        """, {"p": hostile_provider})
        report = site_module.build(con, copy, tmp_path / "site")
        landing = Visit(browser, report.path / "index.html")
        try:
            check_landing(landing.page, con)
            h200 = landing_rows(landing.page)["TSI-H200-OD"]
            # By hand: 2.6950 + 1 = 3.6950, revision 2. Against 11-19 (2.6950): +1.0000, 1 / 2.695 = 37.106%.
            # Against 11-13 (2.5000): +1.1950, 1.195 / 2.5 = 47.80%. No fixing 30 days before: blank.
            assert (h200["value"], h200["rev"]) == ("3.6950", "rev 2")
            assert h200["changes"] == ["+1.0000 (+37.11%)", "+1.1950 (+47.80%)", ""]
            assert landing.problems == []
        finally:
            landing.close()
        visit = Visit(browser, report.path / "indices" / "TSI-H200-OD.html")
        try:
            page = visit.page
            assert page.text_content("p.lede") == hostile_name
            assert hostile_provider in page.text_content("#constituents")
            assert page.eval_on_selector_all("script", "s => s.length") == 0
            assert page.eval_on_selector_all("#constituents img", "i => i.length") == 0
            assert "test: a correction" in page.text_content("#revisions")
            check_links(page, report.path / "indices" / "TSI-H200-OD.html")
            assert visit.problems == []  # no alert, no error
        finally:
            visit.close()
    finally:
        con.close()
    assert report.charts_drawn == ["TSI-H200-OD"]
    assert len(report.charts_reused) == 63
    old, new = built.path / "charts", report.path / "charts"
    assert (new / "TSI-H200-OD.inputs.sha256").read_text() != (old / "TSI-H200-OD.inputs.sha256").read_text()
    assert (new / "TSI-H200-OD.svg").read_bytes() != (old / "TSI-H200-OD.svg").read_bytes()
    assert (new / "TSI-H100-SXM-OD.svg").read_bytes() == (old / "TSI-H100-SXM-OD.svg").read_bytes()
    # The site was replaced whole: the page of the index that went is gone, nothing half-built is left beside.
    assert not stale.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".site")] in ([], [".site.lock"])


# --- without the browser ------------------------------------------------------------------------------------


def test_rebuild_without_changes_draws_no_chart_and_gives_the_same_pages(con, warehouse, built, tmp_path):
    before = {p.relative_to(built.path): p.read_bytes() for p in built.path.rglob("*") if p.is_file()}
    again = site_module.build(con, warehouse)
    assert again.charts_drawn == [] and len(again.charts_reused) == 64
    after = {p.relative_to(again.path): p.read_bytes() for p in again.path.rglob("*") if p.is_file()}
    assert after == before
    print(f"\nfull build {built.seconds:.1f} s ({len(built.charts_drawn)} charts drawn); "
          f"rebuild {again.seconds:.1f} s ({len(again.charts_reused)} reused)")


def test_without_a_manifest_the_history_files_are_not_published_yet(con, built, tmp_path):
    # A warehouse folder with no published files: the same fixings, nothing to link.
    bare = Warehouse(tmp_path / "bare")
    out = site_module.build_site(con, bare, tmp_path / "site")
    page = (out / "indices" / "TSI-H100-SXM-OD.html").read_text(encoding="utf-8")
    soup = BeautifulSoup(page, "lxml")
    text = " ".join(soup.get_text().split())
    assert "The cumulative history files of GPU indices (CSV and Parquet) are not published yet." in text
    assert "The daily fixings file of 2026-11-20 is not published yet." in text
    for tag in soup.select("a[href], img[src], link[href]"):
        target = (out / "indices" / (tag.get("href") or tag.get("src"))).resolve()
        assert target.is_file(), f"dead link {tag}"
    landing = " ".join(BeautifulSoup((out / "index.html").read_text(), "lxml").get_text().split())
    assert ("GPU indices, newest revision of each date: the cumulative files (CSV and Parquet) are not published "
            "yet.") in landing
    assert "manifest.json" not in landing


def test_swap_without_renameat2_replaces_the_site_whole(con, built, tmp_path, monkeypatch):
    # Where the system cannot exchange two folders in one step, the old site is renamed aside, then the new
    # one into place, then the old one deleted.
    shutil.copytree(built.path, tmp_path / "site")
    (tmp_path / "site" / "indices" / "TSI-GONE.html").write_text("old")
    monkeypatch.setattr(site_module, "_exchange", lambda a, b: False)
    report = site_module.build(con, Warehouse(tmp_path / "bare"), tmp_path / "site")
    assert report.charts_drawn == []  # the copied site's charts are the previous ones
    assert not (tmp_path / "site" / "indices" / "TSI-GONE.html").exists()
    assert (tmp_path / "site" / "indices" / "TSI-H100-SXM-OD.html").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".site.lock", "site"]


def test_a_file_that_does_not_match_the_manifest_is_not_linked(con, warehouse, built, tmp_path):
    # A history file rewritten after the manifest was read (or damaged): its manifest checksum would be wrong.
    copy = Warehouse(tmp_path / "wh")
    shutil.copytree(warehouse.root / "published" / "v1", copy.published_dir)
    with open(copy.published_dir / "history" / "fixings_gpu.csv", "ab") as changed:
        changed.write(b"one more line\n")
    out = site_module.build_site(con, copy, tmp_path / "site")
    soup = BeautifulSoup((out / "indices" / "TSI-H100-SXM-OD.html").read_text(encoding="utf-8"), "lxml")
    text = " ".join(soup.get_text().split())
    assert ("Listed in the manifest but not as its checksum says (being republished, or damaged), so not linked: "
            "fixings_gpu.csv.") in text
    hrefs = [a["href"] for a in soup.select("a[href]")]
    assert not [h for h in hrefs if h.endswith("fixings_gpu.csv")]
    assert [h for h in hrefs if h.endswith("fixings_gpu.parquet")] == ["../../wh/published/v1/history/fixings_gpu.parquet"]


def test_a_folder_not_written_by_tsi_site_is_never_replaced(con, warehouse, tmp_path):
    mine = tmp_path / "documents"
    mine.mkdir()
    (mine / "thesis.txt").write_text("years of work")
    with pytest.raises(ValueError, match="was not written by `tsi site`"):
        site_module.build_site(con, warehouse, mine)
    assert (mine / "thesis.txt").read_text() == "years of work"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["documents"]


def test_a_broken_manifest_is_one_error_and_no_site(con, warehouse, tmp_path):
    broken = Warehouse(tmp_path / "wh")
    broken.published_dir.mkdir(parents=True)
    (broken.published_dir / "manifest.json").write_text('{"schema_version": 1, "files": [')
    with pytest.raises(ValueError, match=r"manifest.json is not valid JSON .*no site is written"):
        site_module.build_site(con, broken, tmp_path / "site")
    assert not (tmp_path / "site").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".site.tmp-")]


def _tsi(*argv: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TSI_DEBUG"}
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_cli_errors_are_one_line(warehouse, tmp_path):
    missing = _tsi("--warehouse", str(tmp_path / "nowhere"), "site")
    assert missing.returncode == 2 and missing.stdout == ""
    assert missing.stderr.splitlines() == [f"tsi site: no warehouse at {tmp_path / 'nowhere' / 'tsi.duckdb'}; "
                                           "run `tsi demo` or a collection first"]
    corrupt = Warehouse(tmp_path / "corrupt")
    corrupt.root.mkdir()
    corrupt.db_path.write_bytes(b"not a database" * 1000)
    damaged = _tsi("--warehouse", str(corrupt.root), "site")
    assert damaged.returncode == 2 and len(damaged.stderr.splitlines()) == 1
    assert damaged.stderr.startswith(f"tsi site: the warehouse {corrupt.db_path}")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("x")
    refused = _tsi("--warehouse", str(warehouse.root), "site", "--out", str(foreign))
    assert refused.returncode == 2 and len(refused.stderr.splitlines()) == 1
    assert "was not written by `tsi site`" in refused.stderr


def test_cli_while_a_writer_holds_the_warehouse_is_one_line(warehouse, tmp_path):
    held = Warehouse(tmp_path / "held")
    held.root.mkdir()
    shutil.copyfile(warehouse.db_path, held.db_path)
    writer = duckdb.connect(str(held.db_path))  # a run writing: DuckDB locks the file against other processes
    try:
        result = _tsi("--warehouse", str(held.root), "site", "--out", str(tmp_path / "site"))
    finally:
        writer.close()
    assert result.returncode == 2 and len(result.stderr.splitlines()) == 1, result.stderr
    assert "being written by another process" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_builds_the_site(warehouse, tmp_path):
    out = tmp_path / "site"
    result = _tsi("--warehouse", str(warehouse.root), "site", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{out / 'index.html'}: 65 pages, ")
    assert (out / "indices" / "TSI-H100-SXM-OD.html").is_file() and (out / site_module.MARKER).is_file()


def test_the_page_describes_the_fixing_s_own_methodology_version(built, con):
    from pipeline.definitions import definition_from_json

    stored = con.execute("select definition_json from index_definitions where index_id = 'TSI-GPT-4O-BLEND'"
                         ).fetchone()[0]
    words = describe(definition_from_json(stored)).split("Parameters (")[0]
    page = BeautifulSoup((built.path / "indices" / "TSI-GPT-4O-BLEND.html").read_text(), "lxml")
    shown = " ".join(page.select_one("section.methodology").get_text(" ").split())
    for line in words.splitlines()[3:]:  # after the title and version lines, each wrapped line of the words
        if line.strip():
            assert " ".join(line.split()) in shown, line
