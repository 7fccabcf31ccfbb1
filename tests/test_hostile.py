"""The hostile corpus (tests/hostile/<source>/cases.toml): malformed and hostile bodies of every source, each with the
behaviour a careful user of a settlement index demands. Never a wrong number: a body is read, with its bad
rows refused for a reason, or refused as a whole with a clear error; never an exception of another kind, never
a traceback from `tsi parse`, and in the loader one failed body never stops the others."""
from __future__ import annotations

import hashlib
import tomllib
from collections import Counter
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from pipeline import cli, load
from pipeline.normalise import FxTable, parse_body
from pipeline.rawstore import RawStore
from pipeline.records import ParseContext, ParseError
from pipeline.sources import SOURCES, get_source
from pipeline.sources.ecb_fx import fx_table_from_file
from pipeline.warehouse import naive_utc, sql

HOSTILE = Path(__file__).resolve().parent / "hostile"
OBSERVED_AT = datetime(2026, 11, 20, 6, 0, tzinfo=timezone.utc)
CLASSES = {"poison", "duplicate", "decoy", "truncation", "numbers", "bomb"}


def _cases() -> list[dict]:
    """Every case of every source folder, its `file` made relative to tests/hostile/."""
    cases = []
    for listing in sorted(HOSTILE.glob("*/cases.toml")):
        for case in tomllib.loads(listing.read_text(encoding="utf-8"))["case"]:
            case = dict(case, file=f"{listing.parent.name}/{case['file']}")
            if case.get("fx"):
                case["fx"] = f"{listing.parent.name}/{case['fx']}"
            cases.append(case)
    return cases


CASES = _cases()


def case_id(case: dict) -> str:
    return case["file"]


def context(case: dict) -> ParseContext:
    source = get_source(case["source"])
    path = HOSTILE / case["file"]
    if case.get("provider"):
        return ParseContext(source=case["source"], observed_at=OBSERVED_AT, url=path.resolve().as_uri(),
                            provider=case["provider"], snapshot_id="hostile")
    ctx = source.context_for_file(path, OBSERVED_AT)
    return ParseContext(source=ctx.source, observed_at=ctx.observed_at, url=ctx.url, provider=ctx.provider,
                        snapshot_id="hostile")


def fx_for(case: dict) -> FxTable | None:
    return fx_table_from_file(HOSTILE / case["fx"]) if case.get("fx") else None


def test_the_corpus_is_well_formed_and_covers_every_class_and_source():
    files = {p.relative_to(HOSTILE).as_posix() for p in HOSTILE.rglob("*") if p.is_file()
             and p.name not in {"cases.toml", "README.md"}}
    listed = [c["file"] for c in CASES]
    assert len(listed) == len(set(listed)), "a file is listed twice"
    helpers = {c["fx"] for c in CASES if c.get("fx")}  # rate files that cases convert with
    assert files == set(listed) | helpers, "every body is a case and every case has its body"
    for case in CASES:
        assert case["source"] in SOURCES, case
        assert case["class"] in CLASSES, case
        assert case["expect"] in {"rejected", "failed"}, case
        assert case.get("why"), f"{case['file']}: say what the body does"
        assert case["expect"] != "failed" or case.get("error"), f"{case['file']}: name the error expected"
        assert case["expect"] != "rejected" or case.get("reasons"), f"{case['file']}: name the reasons expected"
    # At least one malformed body per class, and per source (issue 10).
    assert {c["class"] for c in CASES} == CLASSES
    assert {c["source"] for c in CASES} == set(SOURCES)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_a_hostile_body_is_refused_for_a_reason_never_read_as_a_price(case):
    raw = (HOSTILE / case["file"]).read_bytes()
    source = get_source(case["source"])
    if case["expect"] == "failed":
        with pytest.raises(ParseError) as failure:
            parse_body(source, raw, context(case), fx=fx_for(case))
        assert case["error"].lower() in str(failure.value).lower()
        assert "\n" not in str(failure.value).strip(), "one line"
        return
    result = parse_body(source, raw, context(case), fx=fx_for(case))
    reasons = Counter(r.reason for r in result.rejections)
    for reason in case["reasons"]:
        assert reasons[reason] > 0, f"no {reason} among {dict(reasons)}"
    if "observations" in case:
        assert len(result.observations) == case["observations"], [
            (o.row_key, o.usd_price) for o in result.observations]
    prices = {o.usd_price for o in result.observations} | {r.usd_per_unit for r in result.fx_rates}
    for forbidden in case.get("forbidden_prices", []):
        assert Decimal(forbidden) not in prices, f"{forbidden} was read as a price"


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_tsi_parse_answers_a_hostile_body_in_one_line(case, capsys):
    argv = ["parse", case["source"], str(HOSTILE / case["file"]), "--observed-at", "2026-11-20T06:00:00Z"]
    if case.get("provider"):
        argv += ["--provider", case["provider"]]
    if case.get("fx"):
        argv += ["--fx", str(HOSTILE / case["fx"])]
    status = cli.main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    if case["expect"] == "failed":
        assert status == 2
        assert len(err.strip().splitlines()) == 1 and case["error"].lower() in err.lower()
    else:
        assert status == 0
        assert err.strip().splitlines()[-1].split()[1] == "observations,"


def test_the_loader_records_each_failed_body_and_loads_every_other(con, warehouse):
    """All hostile bodies in one warehouse, as one collection would bring them: the failed ones are recorded
    as failed with their reason, the others load, and nothing stops the run."""
    store = RawStore(warehouse.root)
    expected_failed = set()
    for n, case in enumerate(CASES):
        raw = (HOSTILE / case["file"]).read_bytes()
        ctx = context(case)
        digest = store.put(raw)
        snapshot_id = hashlib.sha256(f"hostile|{case['file']}".encode()).hexdigest()
        con.execute(sql("insert_raw_snapshot"), {
            "snapshot_id": snapshot_id, "sha256": digest, "source": case["source"], "url": ctx.url,
            "provider": ctx.provider, "fetched_at": naive_utc(OBSERVED_AT), "http_status": 200,
            "content_type": "application/octet-stream", "byte_size": len(raw),
            "storage_path": store.relative_path(digest),
        })
        if case["expect"] == "failed":
            expected_failed.add(snapshot_id)
    report = load.parse_pending(con, store)
    assert set(report.failed) == expected_failed
    assert len(report.loaded) == len(CASES) - len(expected_failed)
    outcomes = dict(con.execute("select outcome, count(*) from snapshot_parses group by all").fetchall())
    assert outcomes == {"loaded": len(report.loaded), **({"failed": len(expected_failed)} if expected_failed else {})}
    assert all(error for error in report.failed.values())


# --- files that enter through `tsi fix --observations` and `tsi parse` ---------------------------------------

HEADER = "date,provider,instrument,price_type,usd_price\n"


@pytest.mark.parametrize("body, message", [
    # A row dated 9999-12-31 made the run plan every date up to it (24 GB, killed); year 1 overflowed the window.
    (HEADER + "2026-11-20,a,H100-SXM,on_demand,2.9\n9999-12-31,b,H100-SXM,on_demand,2.9\n",
     "line 3: date '9999-12-31' is outside 2000-01-01 .. 2099-12-31"),
    (HEADER + "0001-01-01,a,H100-SXM,on_demand,2.9\n", "line 2: date '0001-01-01' is outside"),
    ("observed_at,provider,instrument,price_type,usd_price\n0001-01-01T00:30:00+01:00,a,H100-SXM,on_demand,2.9\n",
     "line 2: observed_at"),
    # 1e-11 kept to 10 places is 0: a constituent of 0 once moved an index from 2.90 to 2.49.
    (HEADER + "2026-11-20,a,H100-SXM,on_demand,1e-11\n", "line 2: usd_price '1e-11' rounds to 0"),
    (HEADER + "2026-11-20,a,H100-SXM,on_demand,1_000\n", "line 2: usd_price"),
    (HEADER + "2026-11-20," + "p" * 300 + ",H100-SXM,on_demand,2.9\n", "line 2: provider is longer than 200"),
    # A 1 MB provider name: the csv module's field limit, reported with the file and line, not a traceback.
    (HEADER + "2026-11-20,a,H100-SXM,on_demand,2.9\n2026-11-20," + "x" * 1_000_000 + ",H100-SXM,on_demand,2.9\n",
     "line 3: not a CSV row"),
    # Two price columns: the second would silently win.
    ("date,provider,instrument,price_type,usd_price,usd_price\n2026-11-20,a,H100-SXM,on_demand,2.9,0.1\n",
     "the header repeats ['usd_price']"),
])
def test_tsi_fix_refuses_hostile_observation_files_in_one_line(tmp_path, capsys, body, message):
    path = tmp_path / "observations.csv"
    path.write_text(body, encoding="utf-8")
    status = cli.main(["fix", "--observations", str(path)])
    out, err = capsys.readouterr()
    assert status == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and str(path) in err and message in err, err


def test_tsi_fix_names_the_line_of_a_byte_that_is_not_utf8(tmp_path, capsys):
    path = tmp_path / "observations.csv"
    path.write_bytes(HEADER.encode() + b"2026-11-20,ok,H100-SXM,on_demand,2.9\n2026-11-20,b\xffd,H100-SXM,on_demand,2.9\n")
    assert cli.main(["fix", "--observations", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: line 3, column 13: byte 0xff is not UTF-8 text" in err


def test_tsi_fix_bounds_the_dates_it_is_asked_to_fix(tmp_path, capsys):
    path = tmp_path / "observations.csv"
    path.write_text(HEADER + "2026-11-20,a,H100-SXM,on_demand,2.9\n", encoding="utf-8")
    assert cli.main(["fix", "--observations", str(path), "--from", "2000-01-01", "--to", "2099-12-31"]) == 2
    err = capsys.readouterr().err
    # 100 years of 365 days and 25 leap days (2000, divisible by 400, is one; 2004 .. 2096 the other 24)
    assert "36525 fixing dates (2000-01-01 to 2099-12-31): at most 3660 at once" in err


@pytest.mark.parametrize("source_id", sorted(SOURCES))
def test_tsi_parse_refuses_a_body_over_its_sources_cap_unread(tmp_path, capsys, source_id):
    from pipeline.sources import max_body_bytes

    cap = max_body_bytes(get_source(source_id))
    path = tmp_path / "huge_vms.csv"
    with path.open("wb") as out:
        out.truncate(cap + 1)  # sparse: no disk, no time
    status = cli.main(["parse", source_id, str(path), "--provider", "lambda"])
    err = capsys.readouterr().err
    assert status == 2 and f"larger than the {cap:,} bytes that source {source_id} accepts" in err
