"""The views of sql/views/ (issue 12): each one queried on the demo warehouse (tests/demo_warehouse.py) and
checked against facts of the demo worked out by hand (README) or against a query of the base tables written
here, independently of the view.

`revised` is a copy of the demo in which Lambda's SkyPilot catalog is collected again on 2026-11-20 at 07:00
with its H100 SXM prices ten times higher, and the day is fixed again at 2026-11-21 10:00 (before the cutoff,
12:00): TSI-H100-SXM-OD gets a revision 2. Worked out from the 11 provider values of revision 1 (tsi explain):
1.49 hyperbolic, 1.99 verda, 2.40 hyperstack, 2.49 runpod, 2.5708 cudo, 2.745 primeintellect, 2.90
fluidstack, 2.95 nebius, 3.14 lambda (median of 3.29, 2.99, 3.29, 2.99), 5.95 paperspace, 6.74 do. Lambda
becomes the median of 32.90, 29.90, 32.90, 29.90 = 31.40. Median of the 11: 2.745; absolute deviations
sorted 0, 0.155, 0.1742, 0.205, 0.255, 0.345, 0.755, 1.255, 3.205, 3.995, 28.655: MAD 0.345. A provider
is dropped when 0.6745 x deviation > 3.5 x 0.345, i.e. deviation > 1.7902: paperspace, do and lambda. The
median of the 8 left is (2.49 + 2.5708) / 2 = 2.5304, a move of 1.6% from 2.5708: a revision.
"""
from __future__ import annotations

import shutil
from datetime import date, datetime, time, timezone
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from pipeline import collect, fixing, load
from pipeline.definitions import load_definitions
from pipeline.http import FetchedBody, FetchError, make_client
from pipeline.paths import DEMO_FIXTURES_DIR, SQL_DIR, Warehouse
from pipeline.rawstore import RawStore
from pipeline.replay import replay_transport
from pipeline.sources import SOURCES, FetchRequest, get_source
from pipeline.warehouse import MigrationError, _create_views, connect, migrate, sql

import demo_warehouse

H100 = "TSI-H100-SXM-OD"
DAY = date(2026, 11, 20)
LAMBDA_URL = "https://raw.githubusercontent.com/skypilot-org/skypilot-catalog/master/catalogs/v7/lambda/vms.csv"
RUNPOD_URL = "https://raw.githubusercontent.com/skypilot-org/skypilot-catalog/master/catalogs/v7/runpod/vms.csv"
PAPERSPACE_URL = (
    "https://raw.githubusercontent.com/skypilot-org/skypilot-catalog/master/catalogs/v7/paperspace/vms.csv"
)
QWEN_URL = "https://openrouter.ai/api/v1/models/qwen/qwen-2.5-72b-instruct/endpoints"
# The included providers of TSI-H100-SXM-OD on 2026-11-20 (tsi explain), and the two the screen dropped.
H100_INCLUDED = ["cudo", "fluidstack", "hyperbolic", "hyperstack", "lambda", "nebius", "primeintellect", "runpod",
                 "verda"]
H100_EXCLUDED = ["do", "paperspace"]


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def rows(con, query: str, params: dict | None = None) -> list[dict]:
    result = con.execute(query, params or {})
    names = [d[0] for d in result.description]
    return [dict(zip(names, r)) for r in result.fetchall()]


def record_demo_failures(warehouse: Warehouse) -> None:
    """tests/demo_warehouse.py skips the requests its recordings make fail; the collect flow records them in
    fetch_log (flows/collect.py: record_failure at the collection time), as `tsi demo` does. Do the same."""
    con = connect(warehouse)
    try:
        for day in demo_warehouse.DEMO_DATES:
            collected_at = datetime.combine(day, time(6, 0), tzinfo=timezone.utc)
            with make_client(replay_transport(DEMO_FIXTURES_DIR / day.isoformat())) as client:
                for source_id in sorted(SOURCES):
                    for request in get_source(source_id).requests():
                        try:
                            collect.fetch(get_source(source_id), client, request, lambda: collected_at)
                        except FetchError as error:
                            collect.record_failure(con, request, error, attempted_at=collected_at)
    finally:
        con.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Warehouse:
    warehouse = demo_warehouse.fresh_copy(tmp_path_factory)
    record_demo_failures(warehouse)
    return warehouse


@pytest.fixture(scope="module")
def demo_con(demo):
    con = connect(demo, read_only=True)
    yield con
    con.close()


@pytest.fixture(scope="module")
def revised(demo, tmp_path_factory) -> Warehouse:
    """The demo plus a revision (module docstring), a body that cannot be read and a fetch still failing."""
    warehouse = Warehouse(tmp_path_factory.mktemp("revised") / "warehouse")
    shutil.copytree(demo.root, warehouse.root)
    con = connect(warehouse)
    store = RawStore(warehouse.root)
    try:
        catalog = (DEMO_FIXTURES_DIR / "2026-11-20" / "skypilot" / "lambda_vms.csv").read_text(encoding="utf-8")
        lines = []
        for line in catalog.splitlines(keepends=True):
            if "_h100_sxm5," in line:
                line = line.replace(",3.29,", ",32.90,").replace(",23.92,", ",239.20,")
            lines.append(line)
        tenfold = "".join(lines)
        assert tenfold.count(",32.90,") == 2 and tenfold.count(",239.20,") == 2
        collect.store_fetched(con, store, FetchRequest("skypilot", LAMBDA_URL, "lambda"),
                              FetchedBody(LAMBDA_URL, 200, "text/csv", tenfold.encode(), utc("2026-11-20T07:00")))
        load.parse_pending(con, store)
        fixing.fix_date(con, load_definitions(), DAY, computed_at=utc("2026-11-21T10:00"))
        # A catalog cut short (no line end after its last line) arrives on 2026-11-21: stored, unreadable.
        cut = (DEMO_FIXTURES_DIR / "2026-11-20" / "skypilot" / "runpod_vms.csv").read_bytes().rstrip(b"\n")
        collect.store_fetched(con, store, FetchRequest("skypilot", RUNPOD_URL, "runpod"),
                              FetchedBody(RUNPOD_URL, 200, "text/csv", cut, utc("2026-11-21T06:00")))
        load.parse_pending(con, store)
        # Paperspace fails again on 2026-11-21, and stays failed: its newest attempt is a failure.
        collect.record_failure(con, FetchRequest("skypilot", PAPERSPACE_URL, "paperspace"),
                               RuntimeError("connection reset"), attempted_at=utc("2026-11-21T06:00"),
                               http_status=None)
    finally:
        con.close()
    return warehouse


@pytest.fixture(scope="module")
def revised_con(revised):
    con = connect(revised, read_only=True)
    yield con
    con.close()


# --- latest_fixings ---------------------------------------------------------------------------------------


def test_latest_fixing_of_h100_sxm_is_the_readme_one(demo_con):
    [row] = rows(demo_con, "select * from latest_fixings where index_id = $i", {"i": H100})
    assert row["fixing_date"] == DAY
    assert (row["revision"], row["status"], row["usd_per_gpu_hour"], row["usd_per_mtok"], row["unit"]) == (
        1, "final", Decimal("2.5708"), None, "USD/GPU-hour")
    assert row["n_providers"] == 9 and row["providers"] == H100_INCLUDED
    assert row["index_name"] == "NVIDIA H100 SXM, on-demand, specialist clouds, USD per GPU-hour"
    assert (row["computed_at"], row["backfill"], row["window_hours"]) == (datetime(2026, 11, 20, 16, 5), False, 24)
    # A token index (README: TSI-DEEPSEEK-R1-IN 1.7500 on 2026-11-20) is in USD per million tokens.
    [token] = rows(demo_con, "select * from latest_fixings where index_id = 'TSI-DEEPSEEK-R1-IN'")
    assert (token["usd_per_gpu_hour"], token["usd_per_mtok"], token["unit"]) == (None, Decimal("1.7500"), "USD/Mtok")


def test_latest_fixings_has_one_row_per_index_at_its_newest_date_and_revision(revised_con):
    expected = revised_con.execute(
        "select index_id, fixing_date, revision, coalesce(usd_per_gpu_hour, usd_per_mtok) from fixings"
        " qualify row_number() over (partition by index_id order by fixing_date desc, revision desc) = 1"
        " order by index_id").fetchall()
    got = revised_con.execute(
        "select index_id, fixing_date, revision, coalesce(usd_per_gpu_hour, usd_per_mtok) from latest_fixings"
        " order by index_id").fetchall()
    assert got == expected and len(got) == 64
    [h100] = rows(revised_con, "select * from latest_fixings where index_id = $i", {"i": H100})
    assert (h100["revision"], h100["usd_per_gpu_hour"]) == (2, Decimal("2.5304"))
    assert h100["providers"] == [p for p in H100_INCLUDED if p != "lambda"]
    assert h100["revision_reason"] and h100["computed_at"] == datetime(2026, 11, 21, 10, 0)


# --- fixing_history and fixings_as_of ------------------------------------------------------------------------


def test_fixing_history_of_the_demo_is_one_revision_per_index_and_date(demo_con):
    assert demo_con.execute(
        "select count(*), count(distinct index_id), count(distinct fixing_date), bool_and(is_newest_revision),"
        " max(n_revisions), count(superseded_at) from fixing_history").fetchall() == [(320, 64, 5, True, 1, 0)]
    got = demo_con.execute(
        "select fixing_date, usd_per_gpu_hour from fixing_history where index_id = $i order by fixing_date",
        {"i": H100}).fetchall()
    # README, the demo's table: 2.6900 2.6900 2.5900 2.5900 2.5708
    assert [v for _, v in got] == [Decimal(x) for x in ("2.6900", "2.6900", "2.5900", "2.5900", "2.5708")]


def test_fixing_history_keeps_both_revisions_and_says_which_is_newest(revised_con):
    got = rows(revised_con, "select * from fixing_history where index_id = $i and fixing_date = $d order by revision",
               {"i": H100, "d": DAY})
    assert [(r["revision"], r["usd_per_gpu_hour"], r["is_newest_revision"], r["n_revisions"]) for r in got] == [
        (1, Decimal("2.5708"), False, 2), (2, Decimal("2.5304"), True, 2)]
    assert got[0]["superseded_at"] == datetime(2026, 11, 21, 10, 0) and got[1]["superseded_at"] is None
    assert got[0]["revision_reason"] is None and "2.5708" in got[1]["revision_reason"]
    # every row of fixings, once
    assert revised_con.execute("select count(*) from fixing_history").fetchall() == \
        revised_con.execute("select count(*) from fixings").fetchall()


def h100_as_of(con, moment):
    return con.execute(
        "select fixing_date, revision, usd_per_gpu_hour, is_newest_revision from fixings_as_of($t)"
        " where index_id = $i and fixing_date >= date '2026-11-19' order by fixing_date",
        {"t": moment, "i": H100}).fetchall()


def test_fixings_as_of_a_moment_between_two_revisions(revised_con):
    # revision 1 was computed at 2026-11-20 16:05, revision 2 at 2026-11-21 10:00
    assert h100_as_of(revised_con, datetime(2026, 11, 21, 9, 0)) == [
        (date(2026, 11, 19), 1, Decimal("2.5900"), True), (DAY, 1, Decimal("2.5708"), False)]
    assert h100_as_of(revised_con, datetime(2026, 11, 21, 10, 30)) == [
        (date(2026, 11, 19), 1, Decimal("2.5900"), True), (DAY, 2, Decimal("2.5304"), True)]
    assert h100_as_of(revised_con, datetime(2026, 11, 21, 10, 0))[-1][:2] == (DAY, 2)  # at or before: inclusive
    # before the date was first fixed, the date is not there at all
    assert h100_as_of(revised_con, datetime(2026, 11, 20, 12, 0)) == [(date(2026, 11, 19), 1, Decimal("2.5900"), True)]
    assert h100_as_of(revised_con, None)[-1][:3] == (DAY, 2, Decimal("2.5304"))
    # the SQL form people type
    assert revised_con.execute(
        "select revision from fixings_as_of(timestamp '2026-11-21 09:59:59') where index_id = $i"
        " and fixing_date = $d", {"i": H100, "d": DAY}).fetchall() == [(1,)]


@pytest.mark.parametrize("moment", [None, datetime(2026, 11, 18, 17, 0), datetime(2026, 11, 21, 9, 0),
                                    datetime(2026, 11, 21, 10, 0), datetime(2030, 1, 1)])
def test_fixings_as_of_follows_the_rule_of_tsi_fixings_as_of(revised_con, moment):
    """Same rows as sql/select_fixings_as_of.sql, the query behind `tsi fixings --as-of`."""
    expected = revised_con.execute(sql("select_fixings_as_of"), {"as_of": moment, "fixing_date": None}).fetchall()
    got = revised_con.execute(
        "select fixing_date, index_id, revision, status, coalesce(usd_per_gpu_hour, usd_per_mtok),"
        " n_providers, n_observations from fixings_as_of($t) order by fixing_date, index_id", {"t": moment}).fetchall()
    assert got == [(d, i, r, s, v, n, o) for d, i, r, s, v, _unit, n, o in expected]
    assert got or moment < datetime(2026, 11, 16, 16, 5)


def test_fixings_as_of_refuses_a_time_with_a_zone_rather_than_shift_it(demo_con):
    with pytest.raises(duckdb.BinderException):
        demo_con.execute("select * from fixings_as_of(timestamptz '2026-11-21 10:00+00')").fetchall()


# --- fixing_constituent_details -------------------------------------------------------------------------------


def test_constituents_of_a_fixing_with_the_screened_providers(demo_con):
    got = rows(demo_con, "select * from fixing_constituent_details where index_id = $i and fixing_date = $d",
               {"i": H100, "d": DAY})
    assert sorted(r["provider"] for r in got if r["included"]) == H100_INCLUDED
    excluded = {r["provider"]: r for r in got if not r["included"]}
    assert sorted(excluded) == H100_EXCLUDED
    # modified z of paperspace: 0.6745 x (5.95 - 2.745) / 0.345 = 6.266; of do: 0.6745 x 3.995 / 0.345 = 7.810
    assert excluded["paperspace"]["exclusion_code"] == "outlier_mad"
    assert excluded["paperspace"]["exclusion_reason"].startswith("outlier_mad: modified z 6.27 beyond 3.5")
    assert excluded["do"]["exclusion_reason"].startswith("outlier_mad: modified z 7.81 beyond 3.5")
    assert excluded["do"]["weight"] == 0 and excluded["do"]["provider_usd_per_gpu_hour"] == Decimal("6.74")
    cudo = next(r for r in got if r["provider"] == "cudo")
    assert (cudo["provider_usd_per_gpu_hour"], cudo["provider_usd_per_mtok"], cudo["exclusion_code"]) == (
        Decimal("2.5708"), None, None)
    assert cudo["weight"] == Decimal("0.1111111111")  # one vote in 9, to 10 places
    assert {(r["source"], r["fixing_status"], r["is_newest_revision"], r["n_jump_flags_in_snapshot"]) for r in got} \
        == {("skypilot", "final", True, 0)}
    assert {r["observed_at"] for r in got} == {datetime(2026, 11, 20, 6, 0)}


def test_a_basket_lists_its_member_indices(demo_con):
    got = demo_con.execute(
        "select provider, provider_usd_per_mtok, provider_usd_per_gpu_hour, included, snapshot_id, source,"
        " n_jump_flags_in_snapshot, value_rule from fixing_constituent_details"
        " where index_id = 'TSI-FRONTIER-BLEND' and fixing_date = $d order by provider", {"d": DAY}).fetchall()
    # README: the frontier basket is (4.3750 + 6.0000 + 3.4375) / 3
    assert got == [
        ("TSI-CLAUDE-3.5-SONNET-BLEND", Decimal("6"), None, True, None, None, None, "member_index"),
        ("TSI-GEMINI-2.5-PRO-BLEND", Decimal("3.4375"), None, True, None, None, None, "member_index"),
        ("TSI-GPT-4O-BLEND", Decimal("4.375"), None, True, None, None, None, "member_index"),
    ]


def test_the_revised_fixing_excludes_the_jump_and_counts_its_flags(revised_con):
    got = {(r["revision"], r["provider"]): r for r in rows(
        revised_con, "select * from fixing_constituent_details where index_id = $i and fixing_date = $d",
        {"i": H100, "d": DAY})}
    assert len(got) == 22  # 11 providers in each revision
    old, new = got[(1, "lambda")], got[(2, "lambda")]
    assert (old["included"], old["provider_usd_per_gpu_hour"], old["is_newest_revision"]) == (
        True, Decimal("3.14"), False)
    assert (new["included"], new["exclusion_code"], new["provider_usd_per_gpu_hour"], new["is_newest_revision"]) == (
        False, "outlier_mad", Decimal("31.4"), True)
    # the four H100 SXM rows moved tenfold from the 06:00 catalog: four jump_vs_previous flags
    assert (new["n_jump_flags_in_snapshot"], new["observed_at"]) == (4, datetime(2026, 11, 20, 7, 0))
    assert old["n_jump_flags_in_snapshot"] == 0
    assert sorted(p for (rev, p), r in got.items() if rev == 2 and not r["included"]) == ["do", "lambda", "paperspace"]


# --- provider_coverage ------------------------------------------------------------------------------------


def test_provider_coverage_of_h100_and_a_widened_day(demo_con):
    [row] = rows(demo_con, "select * from provider_coverage where index_id = $i and fixing_date = $d",
                 {"i": H100, "d": DAY})
    assert (row["n_providers"], row["n_providers_considered"], row["n_providers_included"],
            row["n_providers_excluded"]) == (9, 11, 9, 2)
    assert row["included_providers"] == H100_INCLUDED and row["excluded_providers"] == H100_EXCLUDED
    # 2026-11-18: the qwen endpoints answered 429, so TSI-QWEN-2.5-72B-IN widened to 72 h with 3 providers
    [qwen] = rows(demo_con, "select * from provider_coverage where index_id = 'TSI-QWEN-2.5-72B-IN'"
                            " and fixing_date = date '2026-11-18'")
    assert (qwen["status"], qwen["n_providers_included"]) == ("widened", 3)


def test_provider_coverage_counts_agree_with_the_constituents(revised_con):
    expected = revised_con.execute("""
        select c.index_id, c.fixing_date, c.revision, count(*), sum(case when c.included then 1 else 0 end)
        from fixing_constituents c
        join (select index_id, fixing_date, max(revision) as revision from fixings group by all) n
            using (index_id, fixing_date, revision)
        group by all order by 1, 2""").fetchall()
    got = revised_con.execute(
        "select index_id, fixing_date, revision, n_providers_considered, n_providers_included"
        " from provider_coverage where n_providers_considered > 0 order by 1, 2").fetchall()
    assert got == expected
    assert revised_con.execute("select count(*) from provider_coverage").fetchall() == revised_con.execute(
        "select count(*) from (select distinct index_id, fixing_date from fixings)").fetchall()
    [h100] = revised_con.execute("select revision, n_providers_included, excluded_providers from provider_coverage"
                                 " where index_id = $i and fixing_date = $d", {"i": H100, "d": DAY}).fetchall()
    assert h100 == (2, 8, ["do", "lambda", "paperspace"])


# --- rejections_by_source_reason ------------------------------------------------------------------------------


def test_rejections_by_source_and_reason_agree_with_a_group_by(demo_con):
    expected = demo_con.execute(
        "select source, reason, count(*), min(observed_at), max(observed_at) from rejections"
        " group by source, reason order by source, reason").fetchall()
    got = demo_con.execute(
        "select source, reason, n_rejections, first_seen_at, last_seen_at from rejections_by_source_reason"
        " order by source, reason").fetchall()
    assert got == expected and len(got) > 3
    total = demo_con.execute("select sum(n_rejections) from rejections_by_source_reason").fetchall()[0][0]
    assert total == demo_con.execute("select count(*) from rejections").fetchall()[0][0]
    # Azure's Windows and low-priority meters are refused on every demo day
    azure = dict((r, (n, s, first, last)) for r, n, s, first, last in demo_con.execute(
        "select reason, n_rejections, n_snapshots, first_seen_at, last_seen_at from rejections_by_source_reason"
        " where source = 'azure'").fetchall())
    assert set(azure) == {"windows", "low_priority"}
    assert {v[2:] for v in azure.values()} == {(datetime(2026, 11, 16, 6, 0), datetime(2026, 11, 20, 6, 0))}
    example = demo_con.execute(
        "select example_detail from rejections_by_source_reason where source = 'azure' and reason = 'windows'"
    ).fetchall()[0][0]
    assert example == demo_con.execute(
        "select min(detail) from rejections where source = 'azure' and reason = 'windows'").fetchall()[0][0]


# --- source_health and source_health_daily ---------------------------------------------------------------------


def test_source_health_names_the_two_recorded_failures(demo_con):
    health = {r["source"]: r for r in rows(demo_con, "select * from source_health")}
    assert set(health) == {"azure", "deepseek_pricing", "ecb_fx", "html_tables", "litellm", "llm_prices",
                           "openrouter", "openrouter_endpoints", "skypilot", "vast"}
    sky = health["skypilot"]
    assert (sky["last_failure_at"], sky["last_failure_url"], sky["last_failure_http_status"]) == (
        datetime(2026, 11, 19, 6, 0), PAPERSPACE_URL, 503)
    assert sky["last_failure_error"].endswith("HTTP 503")
    # Paperspace answered again on 2026-11-20: nothing is failing now
    assert (sky["n_failed_attempts"], sky["n_urls_failing_now"], sky["last_success_at"]) == (
        1, 0, datetime(2026, 11, 20, 6, 0))
    qwen = health["openrouter_endpoints"]
    assert (qwen["last_failure_at"], qwen["last_failure_url"], qwen["last_failure_http_status"]) == (
        datetime(2026, 11, 18, 6, 0), QWEN_URL, 429)
    assert "HTTP 429" in qwen["last_failure_error"] and qwen["n_failed_attempts"] == 1
    healthy = [r for s, r in health.items() if s not in {"skypilot", "openrouter_endpoints"}]
    assert {(r["n_failed_attempts"], r["last_failure_at"], r["n_urls_failing_now"]) for r in healthy} == {(0, None, 0)}
    # every source collected on each of the five days, at 06:00; 18 SkyPilot catalogs on the last one
    assert {(r["n_days_with_bodies"], r["last_body_date"], r["last_attempt_at"]) for r in health.values()} == {
        (5, DAY, datetime(2026, 11, 20, 6, 0))}
    assert sky["n_bodies_last_day"] == 18
    assert {s: r["n_unreadable_bodies"] for s, r in health.items()} == {s: 0 for s in health}


def test_source_health_counts_agree_with_the_base_tables(revised_con):
    expected = revised_con.execute("""
        select f.source, f.attempts, f.failed, coalesce(b.bodies, 0)
        from (select source, count(*) attempts, sum(case when outcome = 'failed' then 1 else 0 end) failed
              from fetch_log group by source) f
        left join (select source, count(*) bodies from raw_snapshots group by source) b using (source)
        order by f.source""").fetchall()
    got = revised_con.execute(
        "select source, n_attempts, n_failed_attempts, n_bodies from source_health order by source").fetchall()
    assert got == expected


def test_source_health_reports_an_unreadable_body_and_a_url_failing_now(revised_con):
    [sky] = rows(revised_con, "select * from source_health where source = 'skypilot'")
    assert (sky["n_unreadable_bodies"], sky["last_unreadable_fetched_at"]) == (1, datetime(2026, 11, 21, 6, 0))
    assert sky["last_unreadable_error"]  # the loader's reason, whatever its words
    assert (sky["last_failure_at"], sky["last_failure_url"], sky["last_failure_http_status"]) == (
        datetime(2026, 11, 21, 6, 0), PAPERSPACE_URL, None)
    assert sky["last_failure_error"] == "RuntimeError: connection reset"
    assert (sky["n_failed_attempts"], sky["n_urls_failing_now"]) == (2, 1)
    assert (sky["last_body_date"], sky["n_bodies_last_day"], sky["n_days_with_bodies"]) == (date(2026, 11, 21), 1, 6)
    assert sky["last_success_at"] == datetime(2026, 11, 21, 6, 0)


def test_source_health_daily_agrees_with_the_base_tables(revised_con):
    attempts = {(s, d): (n, f) for s, d, n, f in revised_con.execute(
        "select source, cast(attempted_at as date), count(*), sum(case when outcome = 'failed' then 1 else 0 end)"
        " from fetch_log group by all").fetchall()}
    bodies = {(s, d): (n, k) for s, d, n, k in revised_con.execute(
        "select source, cast(fetched_at as date), count(*), count(distinct sha256) from raw_snapshots"
        " group by all").fetchall()}
    got = revised_con.execute(
        "select source, fetch_date, n_attempts, n_failed_attempts, n_bodies, n_distinct_bodies from"
        " source_health_daily").fetchall()
    assert {(s, d) for s, d, *_ in got} == set(attempts) | set(bodies)
    for s, d, n, f, b, k in got:
        assert (n, f) == attempts.get((s, d), (0, 0)) and (b, k) == bodies.get((s, d), (0, 0)), (s, d)
    by_day = {(s, d): (f, u) for s, d, f, u in revised_con.execute(
        "select source, fetch_date, n_failed_attempts, n_unreadable_bodies from source_health_daily"
        " where source = 'skypilot'").fetchall()}
    assert by_day[("skypilot", date(2026, 11, 19))] == (1, 0)
    assert by_day[("skypilot", date(2026, 11, 21))] == (1, 1)
    assert revised_con.execute("select sum(n_bytes) from source_health_daily").fetchall() == revised_con.execute(
        "select sum(byte_size) from raw_snapshots").fetchall()


# --- creation by migrate() --------------------------------------------------------------------------------------


def view_folder(tmp_path: Path) -> tuple[Path, Path]:
    migrations, views = tmp_path / "sql" / "migrations", tmp_path / "sql" / "views"
    migrations.mkdir(parents=True)
    views.mkdir()
    (migrations / "001_t.sql").write_text("create table t (a integer); insert into t values (1), (2);")
    return migrations, views


def test_migrate_creates_the_views_and_a_changed_file_changes_its_view(tmp_path):
    migrations, views = view_folder(tmp_path)
    (views / "t_total.sql").write_text("-- what is the sum?\ncreate or replace view t_total as select sum(a) s from t;")
    (views / "t_above.sql").write_text("create or replace macro t_above(x) as table select a from t where a > x;")
    db = duckdb.connect()
    assert migrate(db, migrations) == [1]
    assert db.execute("select s from t_total").fetchall() == [(3,)]
    assert db.execute("select * from t_above(1)").fetchall() == [(2,)]
    assert _create_views(db, views, after_migrations=False) == []  # unchanged: nothing to replace
    (views / "t_total.sql").write_text("create or replace view t_total as select sum(a) * 10 as s from t;")
    assert migrate(db, migrations) == []
    assert db.execute("select s from t_total").fetchall() == [(30,)]
    (views / "t_above.sql").write_text("create or replace macro t_above(x) as table select a from t where a >= x;")
    migrate(db, migrations)
    assert db.execute("select * from t_above(1) order by a").fetchall() == [(1,), (2,)]


def test_a_view_file_that_fails_changes_no_view(tmp_path):
    migrations, views = view_folder(tmp_path)
    (views / "a_total.sql").write_text("create or replace view a_total as select sum(a) as s from t;")
    db = duckdb.connect()
    migrate(db, migrations)
    (views / "a_total.sql").write_text("create or replace view a_total as select count(*) as s from t;")
    (views / "b_broken.sql").write_text("create or replace view b_broken as select no_such_column from t;")
    with pytest.raises(MigrationError, match="view file b_broken.sql does not apply"):
        migrate(db, migrations)
    assert db.execute("select s from a_total").fetchall() == [(3,)]  # the whole set rolled back
    assert "b_broken" not in {r[0] for r in db.execute("select view_name from duckdb_views()").fetchall()}


def test_a_view_file_must_create_the_view_it_is_named_after(tmp_path):
    migrations, views = view_folder(tmp_path)
    (views / "total.sql").write_text("create or replace view other_name as select 1 as one;")
    with pytest.raises(MigrationError, match="total.sql must hold one `create or replace view|macro total`"):
        migrate(duckdb.connect(), migrations)


def test_every_view_file_answers_a_question_and_is_in_the_demo(demo_con):
    files = sorted((SQL_DIR / "views").glob("*.sql"))
    assert {"latest_fixings", "fixing_history", "fixings_as_of", "fixing_constituent_details", "provider_coverage",
            "rejections_by_source_reason", "source_health", "source_health_daily"} <= {p.stem for p in files}
    for path in files:
        first = path.read_text(encoding="utf-8").splitlines()[0]
        assert first.startswith("-- ") and "?" in first, path.name
    names = {r[0] for r in demo_con.execute(
        "select view_name from duckdb_views() where not internal union all"
        " select function_name from duckdb_functions() where function_type = 'table_macro' and not internal"
    ).fetchall()}
    assert {p.stem for p in files} <= names
