"""`tsi import FOLDER`: dated public price records into the warehouse with their manifest's times, the
standing-list rule (an imported list counts until the next snapshot of its series, at most N days), backfill
marking, idempotence, and a manifest refused before anything is written."""
from __future__ import annotations

import csv
import hashlib
import sys
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from pipeline import cli, collect, fixing, load
from pipeline.definitions import load_definitions
from pipeline.http import FetchedBody
from pipeline.paths import Warehouse
from pipeline.rawstore import RawStore
from pipeline.sources import FetchRequest
from pipeline.warehouse import connect

HEADER = "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,Region,GpuInfo,SpotPrice\n"
H100 = "TSI-H100-SXM-OD"  # specialist clouds, skypilot, at least 3 providers, carry 3 days


def catalog(per_gpu: str) -> bytes:
    """A one-row SkyPilot catalog: an 8x H100 SXM instance at 8 x per_gpu USD per instance-hour."""
    return (HEADER + f"gpu_8x_h100_sxm5,H100,8,208,1800,{Decimal(per_gpu) * 8},us-east-1,,\n").encode()


def write_folder(folder: Path, bodies: list[tuple[str, str, str, str]], extra_rows: list[list[str]] = ()) -> Path:
    """bodies: (file name, provider, observed_at, per-GPU price); a manifest listing them."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "manifest.csv").open("w", newline="") as handle:
        out = csv.writer(handle, lineterminator="\n")
        out.writerow(["path", "source", "observed_at", "provider"])
        for name, provider, observed_at, price in bodies:
            (folder / name).write_bytes(catalog(price))
            out.writerow([name, "skypilot", observed_at, provider])
        out.writerows(extra_rows)
    return folder


# lambda 3.00 from 10-01 06:00, 3.30 from 10-05 06:00; paperspace 2.00 from 10-01; fluidstack 2.50 fetched 10-02 at
# 20:00, after that day's 16:00 fixing time, so it counts from 10-03.
BODIES = [
    ("lambda_1.csv", "lambda", "2026-10-01T06:00:00Z", "3.00"),
    ("paperspace_1.csv", "paperspace", "2026-10-01T06:00:00", "2.00"),  # no zone: UTC
    ("fluidstack_1.csv", "fluidstack", "2026-10-02T20:00:00+00:00", "2.50"),
    ("lambda_2.csv", "lambda", "2026-10-05T06:00:00Z", "3.30"),
]


def run_import(capsys, warehouse: Warehouse, folder: Path, *extra: str) -> tuple[int, str, str]:
    status = cli.main(["--warehouse", str(warehouse.root), "import", str(folder), *extra])
    out, err = capsys.readouterr()
    return status, out, err


def fixings_of(warehouse: Warehouse, index_id: str) -> dict[date, tuple]:
    con = connect(warehouse, read_only=True)
    try:
        rows = con.execute(
            "select fixing_date, status, coalesce(usd_per_gpu_hour, usd_per_mtok), carried_from, backfill from fixings "
            "where index_id = ? qualify revision = max(revision) over (partition by fixing_date) order by 1",
            [index_id]).fetchall()
    finally:
        con.close()
    return {r[0]: r[1:] for r in rows}


def test_standing_lists_count_until_the_next_snapshot_at_most_n_days(tmp_path, capsys):
    warehouse = Warehouse(tmp_path / "wh")
    folder = write_folder(tmp_path / "records", BODIES)
    status, out, err = run_import(capsys, warehouse, folder, "--valid-days", "3")
    assert status == 0, err
    # valid_until: lambda_1 min(next 10-05, 10-01 + 3 = 10-04) = 10-04; paperspace 10-04; fluidstack 10-02 + 3 =
    # 10-05; lambda_2 10-08. Reachable dates 10-01 .. 10-08.
    assert "fixed 8 date(s), 2026-10-01 to 2026-10-08" in out
    got = fixings_of(warehouse, H100)
    S, F, C = fixing.SUPPRESSED, fixing.FINAL, fixing.CARRIED
    # 10-01, 10-02: lambda and paperspace only (fluidstack's body came after 10-02's fixing time): 2 < 3, nothing
    # to carry. 10-03, 10-04: lambda 3.00, paperspace 2.00, fluidstack 2.50 -> median 2.50. 10-05: paperspace's list is
    # past its 3 days; lambda 3.30 (the newer, there by 16:00) and fluidstack: 2 -> 10-04's value carried.
    # 10-06, 10-07: lambda alone -> carried from 10-04 (within 3 days). 10-08: 4 days after 10-04 -> suppressed.
    expected = {
        date(2026, 10, 1): (S, None, None), date(2026, 10, 2): (S, None, None),
        date(2026, 10, 3): (F, Decimal("2.5000"), None), date(2026, 10, 4): (F, Decimal("2.5000"), None),
        date(2026, 10, 5): (C, Decimal("2.5000"), date(2026, 10, 4)),
        date(2026, 10, 6): (C, Decimal("2.5000"), date(2026, 10, 4)),
        date(2026, 10, 7): (C, Decimal("2.5000"), date(2026, 10, 4)),
        date(2026, 10, 8): (S, None, None),
    }
    assert {d: v[:3] for d, v in got.items()} == expected
    assert all(v[3] for v in got.values() if v[0] != S), "every fixing with a value read imported bodies"
    # The raw snapshots carry the manifest's times, never the import's.
    con = connect(warehouse, read_only=True)
    times = con.execute("select provider, fetched_at, valid_until, imported_at is not null from raw_snapshots "
                        "order by fetched_at").fetchall()
    con.close()
    assert times == [
        ("lambda", datetime(2026, 10, 1, 6), date(2026, 10, 4), True),
        ("paperspace", datetime(2026, 10, 1, 6), date(2026, 10, 4), True),
        ("fluidstack", datetime(2026, 10, 2, 20), date(2026, 10, 5), True),
        ("lambda", datetime(2026, 10, 5, 6), date(2026, 10, 8), True),
    ]


def test_explain_and_the_published_file_say_backfill(tmp_path, capsys):
    warehouse = Warehouse(tmp_path / "wh")
    run_import(capsys, warehouse, write_folder(tmp_path / "records", BODIES))
    assert cli.main(["--warehouse", str(warehouse.root), "explain", H100, "2026-10-04"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{H100} on 2026-10-04: 2.5000 USD/GPU-hour (final, backfill, revision 1 of 1)")
    assert "backfill      computed after the fact" in out
    # lambda's first list counts until the next one's date (10-05; 31 days by default would be later)
    assert any(line.split()[:2] == ["lambda", "3"] and "2026-10-01T06:00:00Z" in line and "2026-10-05" in line
               for line in out.splitlines())
    published = (warehouse.published_dir / "fixings" / "fixings_2026-10-04.csv").read_text()
    rows = list(csv.DictReader(published.splitlines()))
    assert {r["index_id"]: r["backfill"] for r in rows}[H100] == "true"


def test_importing_the_same_folder_twice_adds_nothing(tmp_path, capsys):
    warehouse = Warehouse(tmp_path / "wh")
    folder = write_folder(tmp_path / "records", BODIES)
    assert run_import(capsys, warehouse, folder)[0] == 0

    def state():
        con = connect(warehouse, read_only=True)
        counts = [con.execute(f"select count(*) from {t}").fetchall()[0][0] for t in
                  ("raw_snapshots", "observations", "observation_digests", "rejections", "fixings",
                   "fixing_constituents", "publications", "snapshot_parses")]
        con.close()
        files = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in warehouse.published_dir.rglob("*.csv")}
        return counts, files

    before = state()
    status, out, _ = run_import(capsys, warehouse, folder)
    assert status == 0 and "(0 new, 0 unreadable)" in out and "0 new fixing(s), 0 file(s) published" in out
    assert state() == before


def test_a_later_snapshot_of_the_series_cuts_the_earlier_one_and_reloads_it(tmp_path, capsys):
    """Import lambda's 10-01 list alone, then a folder adding its 10-03 list: the first one's validity is cut at
    10-03 and its rows carry the new date."""
    warehouse = Warehouse(tmp_path / "wh")
    run_import(capsys, warehouse, write_folder(tmp_path / "a", [BODIES[0]]))
    status, out, err = run_import(capsys, warehouse, write_folder(
        tmp_path / "b", [("lambda_3.csv", "lambda", "2026-10-03T06:00:00Z", "3.10")]))
    assert status == 0, err
    con = connect(warehouse, read_only=True)
    assert con.execute("select fetched_at::date, valid_until from raw_snapshots order by 1").fetchall() == [
        (date(2026, 10, 1), date(2026, 10, 3)), (date(2026, 10, 3), date(2026, 11, 3))]
    assert con.execute("select distinct valid_until from observations where usd_per_gpu_hour = 3").fetchall() == [
        (date(2026, 10, 3),)]
    con.close()


def test_a_live_fixing_of_an_imported_date_follows_the_revision_rules(tmp_path, capsys):
    """After the import, bodies collected live on 10-04 (before its cutoff) move the median from 2.50 to 2.90:
    revision 2, no longer a backfill (every provider's latest collection is the live one)."""
    warehouse = Warehouse(tmp_path / "wh")
    run_import(capsys, warehouse, write_folder(tmp_path / "records", BODIES))
    con = connect(warehouse)
    store = RawStore(warehouse.root)
    at = datetime(2026, 10, 4, 6, tzinfo=timezone.utc)
    for provider, price in (("lambda", "3.00"), ("paperspace", "2.80"), ("fluidstack", "2.90")):
        request = FetchRequest("skypilot", f"https://example.test/{provider}/vms.csv", provider)
        collect.store_fetched(con, store, request, FetchedBody(request.url, 200, "text/csv", catalog(price), at))
    load.parse_pending(con, store)
    [f] = [f for f in fixing.fix_date(con, load_definitions(), date(2026, 10, 4),
                                      computed_at=datetime(2026, 10, 4, 16, 5, tzinfo=timezone.utc))
           if f.index_id == H100]
    con.close()
    assert (f.value, f.revision, f.written, f.backfill) == (Decimal("2.9000"), 2, True, False)
    assert fixings_of(warehouse, H100)[date(2026, 10, 4)][:2] == (fixing.FINAL, Decimal("2.9000"))


def test_a_body_that_does_not_parse_is_recorded_failed_and_the_rest_imports(tmp_path, capsys):
    folder = write_folder(tmp_path / "records", BODIES[:3])
    (folder / "broken_vms.csv").write_bytes(b"<html>503 Service Unavailable</html>\n")
    with (folder / "manifest.csv").open("a") as handle:
        handle.write("broken_vms.csv,skypilot,2026-10-01T06:00:00Z,do\n")
    warehouse = Warehouse(tmp_path / "wh")
    status, out, _ = run_import(capsys, warehouse, folder)
    assert status == 0
    assert "could not be parsed: ParseError: SkyPilot catalog lacks required column(s)" in out
    assert "imported 4 bodies (4 new, 1 unreadable)" in out
    assert fixings_of(warehouse, H100)[date(2026, 10, 3)][:2] == (fixing.FINAL, Decimal("2.5000"))


@pytest.mark.parametrize("rows, header, message", [
    ([["missing.csv", "skypilot", "2026-10-01T06:00:00Z", "lambda"]], None, "line 6: no such file 'missing.csv'"),
    ([["lambda_1.csv", "nosuch", "2026-10-01T06:00:00Z", "lambda"]], None, "line 6: unknown source 'nosuch'"),
    ([["extra.csv", "skypilot", "yesterday", "lambda"]], None, "line 6: observed_at 'yesterday' is not an ISO 8601"),
    ([["extra.csv", "skypilot", "2099-01-01T00:00:00Z", "lambda"]], None, "line 6: observed_at '2099-01-01T00:00:00Z' is in the future"),
    ([["extra.csv", "skypilot", "1999-12-31", "lambda"]], None, "line 6: observed_at '1999-12-31' is before 2000-01-01"),
    # the same body listed twice with different times (a copy under another name, or the same path)
    ([["copy_of_lambda.csv", "skypilot", "2026-10-09T06:00:00Z", "lambda"]], None, "line 6: the same body as line 2"),
    ([["lambda_1.csv", "skypilot", "2026-10-09T06:00:00Z", "lambda"]], None, "line 6: lambda_1.csv is listed already on line 2"),
    ([["../outside.csv", "skypilot", "2026-10-01T06:00:00Z", "lambda"]], None, "line 6: path '../outside.csv' leads out of the folder"),
    ([["extra.csv", "skypilot", "2026-10-01T06:00:00Z", "Not An Id!"]], None, "line 6: provider 'Not An Id!' is not an id"),
    ([["extra.csv", "skypilot", "2026-10-01T06:00:00Z"]], None, "line 6: 3 cells, the header has 4"),
    ([], "path,source,observed_at,provider,price", "line 1: unknown column(s) ['price']"),
    ([], "path,source,provider", "line 1: missing column(s) ['observed_at']"),
])
def test_a_bad_manifest_is_refused_before_anything_is_written(tmp_path, capsys, rows, header, message):
    folder = write_folder(tmp_path / "records", BODIES, extra_rows=rows)
    (folder / "extra.csv").write_bytes(catalog("2.20"))
    (folder / "copy_of_lambda.csv").write_bytes((folder / "lambda_1.csv").read_bytes())
    (tmp_path / "outside.csv").write_bytes(catalog("2.20"))
    if header:
        text = (folder / "manifest.csv").read_text().splitlines()
        (folder / "manifest.csv").write_text("\n".join([header] + text[1:]) + "\n")
    warehouse = Warehouse(tmp_path / "wh")
    status, out, err = run_import(capsys, warehouse, folder)
    assert status == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and message in err, err
    assert not warehouse.root.exists(), "nothing is written"


def test_the_manifest_format_is_documented_in_the_readme():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    assert "path,source,observed_at" in readme and "`tsi import FOLDER" in readme


# --- the real history of ../shared/data/real ---------------------------------------------------------------

REAL_HISTORY = Path(__file__).resolve().parent / "fixtures" / "real_history"
REAL_MANIFEST = REAL_HISTORY / "manifest.csv"


def _write_manifest_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("write_manifest", REAL_HISTORY / "write_manifest.py")
    module = importlib.util.module_from_spec(spec)
    # dataclasses looks its module up in sys.modules while the class is built
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def real_manifest(tmp_path_factory):
    """The manifest written for ../shared/data/real as it is today (a file added to it since the committed
    manifest was written is in it too): (its path, its rows, {path: why left out})."""
    from conftest import SHARED_REAL

    if not SHARED_REAL.is_dir():
        pytest.skip(f"{SHARED_REAL} is absent")
    writer = _write_manifest_module()
    rows, left_out = writer.manifest(SHARED_REAL)
    path = tmp_path_factory.mktemp("manifest") / "manifest.csv"
    with path.open("w", newline="") as out:
        writer.write(rows, out)
    return path, rows, left_out


@pytest.fixture(scope="module")
def real_history(tmp_path_factory, real_manifest):
    from conftest import SHARED_REAL

    warehouse = Warehouse(tmp_path_factory.mktemp("real") / "wh")
    status = cli.main(["--warehouse", str(warehouse.root), "import", str(SHARED_REAL), "--manifest",
                       str(real_manifest[0])])
    assert status == 0
    return warehouse


def test_the_committed_manifest_is_what_sources_md_gives(real_manifest):
    from conftest import SHARED_REAL

    _, rows, left_out = real_manifest
    written = {row["path"]: row for row in rows}
    committed = list(csv.DictReader(REAL_MANIFEST.open()))
    # Each committed row is what SOURCES.md gives today (the folder may have grown since it was written).
    assert committed and all(written.get(row["path"]) == row for row in committed)
    # Every file of the folder is listed or left out for a reason; none is listed twice.
    files = {p.relative_to(SHARED_REAL).as_posix() for p in SHARED_REAL.rglob("*") if p.is_file()} - {"SOURCES.md"}
    assert set(written) | set(left_out) == files and not set(written) & set(left_out)
    assert len(written) == len(rows)
    # Left out on purpose: the SkyPilot catalogs (a schema era, no date), the Vast sample (its date inferred from
    # its offers) and OpenRouter's providers list (no prices).
    assert left_out["openrouter/providers_response_2026-05-07.json"] == "holds no prices"
    assert all(not p.startswith(("skypilot_catalog/", "vast_offers/")) for p in written)
    # SOURCES.md: "their dates are the committer's local date. In UTC, 74a4d560 is 2024-10-14"
    assert written["litellm_model_prices/model_prices_2024-10-13.json"]["observed_at"] == "2024-10-14T23:59:59Z"
    assert written["litellm_model_prices/model_prices_2024-03-25.json"]["observed_at"] == "2024-03-25T23:59:59Z"


def test_the_manifest_writer_reads_dates_globs_and_utc_notes(tmp_path):
    writer = _write_manifest_module()
    (tmp_path / "llm_prices_simonw" / "2025-12-17").mkdir(parents=True)
    (tmp_path / "llm_prices_simonw" / "2025-12-17" / "openai.json").write_text("{}")
    (tmp_path / "litellm_model_prices").mkdir()
    for name in ("a.json", "b.json", "c.json"):
        (tmp_path / "litellm_model_prices" / name).write_text("{}")
    # d.json is c.json again: an unchanged map committed a day later
    (tmp_path / "litellm_model_prices" / "d.json").write_text("{}")
    (tmp_path / "litellm_model_prices" / "e.json").write_text('{"x": 1}')
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "x.json").write_text("{}")
    commit = "ab" * 20
    (tmp_path / "SOURCES.md").write_text(
        "| path | origin | date | format |\n|---|---|---|---|\n"
        "| llm_prices_simonw/2025-12-17/*.json (1 vendor file) | x | 2025-12-17 | JSON |\n\n"
        "| path | commit | date the data reflect |\n|---|---|---|\n"
        f"| litellm_model_prices/a.json | {commit} | 2024-10-13 |\n"
        "| litellm_model_prices/b.json | cd | v5 era; exact date unknown |\n"
        "| litellm_model_prices/d.json | cd | 2024-10-15 |\n"
        "| litellm_model_prices/e.json | cd | 2024-10-16 |\n"
        f"| elsewhere/x.json | {commit} | 2024-01-01 |\n\n"
        "Note: these dates are the committer's local date. In UTC, abababab is 2024-10-14; the others agree.\n")
    rows, left_out = writer.manifest(tmp_path)
    assert rows == [
        {"path": "litellm_model_prices/a.json", "source": "litellm", "observed_at": "2024-10-14T23:59:59Z",
         "provider": "", "url": writer.RULES["litellm_model_prices"].url},
        {"path": "litellm_model_prices/e.json", "source": "litellm", "observed_at": "2024-10-16T23:59:59Z",
         "provider": "", "url": writer.RULES["litellm_model_prices"].url},
        {"path": "llm_prices_simonw/2025-12-17/openai.json", "source": "llm_prices",
         "observed_at": "2025-12-17T23:59:59Z", "provider": "",
         "url": "https://raw.githubusercontent.com/simonw/llm-prices/main/data/openai.json"},
    ]
    assert left_out == {
        "elsewhere/x.json": "dated, but RULES names no source for its folder",
        "litellm_model_prices/b.json": "no exact date in SOURCES.md ('v5 era; exact date unknown')",
        "litellm_model_prices/c.json": "not in a table of SOURCES.md",
        "litellm_model_prices/d.json": "the same bytes as litellm_model_prices/a.json, which is listed at its earlier date",
    }


def test_every_dated_real_file_parses(real_history, real_manifest):
    _, rows, _ = real_manifest
    con = connect(real_history, read_only=True)
    outcomes = con.execute("select outcome, count(*) from snapshot_parses group by all").fetchall()
    con.close()
    assert outcomes == [("loaded", len(rows))]


def test_real_history_values_checked_by_hand(real_history, capsys):
    # LiteLLM's map of 2024-05-14 prices gpt-4o at input_cost_per_token 5e-06 and output 1.5e-05: 5 and 15 USD
    # per million tokens, blended 0.75 x 5 + 0.25 x 15 = 7.5. The map counts from 2024-05-15 (it is dated
    # 23:59:59 on the 14th, after that day's fixing time) until the 2024-06-14 (31 days; the next map is of 06-24).
    got = {i: fixings_of(real_history, i) for i in ("TSI-GPT-4O-IN", "TSI-GPT-4O-OUT", "TSI-GPT-4O-BLEND")}
    assert got["TSI-GPT-4O-IN"][date(2024, 6, 1)][:2] == (fixing.FINAL, Decimal("5.0000"))
    assert got["TSI-GPT-4O-OUT"][date(2024, 6, 1)][:2] == (fixing.FINAL, Decimal("15.0000"))
    assert got["TSI-GPT-4O-BLEND"][date(2024, 6, 1)][:2] == (fixing.FINAL, Decimal("7.5000"))
    assert got["TSI-GPT-4O-IN"][date(2024, 5, 14)][0] == fixing.SUPPRESSED
    assert cli.main(["--warehouse", str(real_history.root), "explain", "TSI-GPT-4O-IN", "2024-06-01"]) == 0
    assert "(final, backfill, revision 1 of 1)" in capsys.readouterr().out


def test_real_history_verifies_and_imports_once(real_history, real_manifest, capsys):
    from conftest import SHARED_REAL

    status = cli.main(["--warehouse", str(real_history.root), "verify", "--from", "2025-06-01", "--to", "2025-06-30"])
    out = capsys.readouterr().out
    assert status == 0 and out.strip().splitlines()[-1].endswith("every field matches"), out
    status = cli.main(["--warehouse", str(real_history.root), "import", str(SHARED_REAL), "--manifest",
                       str(real_manifest[0])])
    assert status == 0 and "(0 new, 0 unreadable)" in capsys.readouterr().out
