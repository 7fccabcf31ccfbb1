"""The pieces under the flows, without Prefect: politeness per host, Retry-After, time budgets, the single
writer, run records, reports, schedules and the deployments' agreement with prefect.yaml."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import date, datetime, time as clock_time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import yaml

from pipeline import report, runs, schedule
from pipeline.definitions import load_definitions
from pipeline.http import FetchError, FetchPolicy, HostPoliteness, fetch_body, fetch_scope, make_client
from pipeline.writer import WriterBusyError, open_writer

ROOT = Path(__file__).resolve().parents[1]
UTC = timezone.utc


# --- politeness per host ----------------------------------------------------------------------------------


def test_no_more_than_the_limit_in_flight_per_host_and_other_hosts_are_not_held_up():
    politeness = HostPoliteness(per_host=2)
    in_flight, most, guard = [0], [0], threading.Lock()

    def one():
        with politeness.slot("a.test", time.monotonic() + 30):
            with guard:
                in_flight[0] += 1
                most[0] = max(most[0], in_flight[0])
            time.sleep(0.05)
            with guard:
                in_flight[0] -= 1

    threads = [threading.Thread(target=one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert most[0] <= 2
    # A full host does not block another host.
    full = HostPoliteness(per_host=1)
    with full.slot("a.test", time.monotonic() + 30):
        with full.slot("b.test", time.monotonic() + 0.5):
            pass
        with pytest.raises(FetchError, match="no free slot") as busy:
            with full.slot("a.test", time.monotonic() + 0.2):
                pass
    assert busy.value.transient


def test_a_retry_after_holds_every_request_to_that_host_until_it_passes():
    politeness = HostPoliteness()
    politeness.defer("a.test", 0.3)
    opens = politeness.not_before("a.test")
    with politeness.slot("a.test", time.monotonic() + 30) as waited:
        entered = time.monotonic()
    assert entered >= opens and waited > 0  # lower bounds the gate guarantees, not speed measurements
    # A wait longer than the caller may wait fails at once, without asking the server.
    politeness.defer("b.test", 60)
    with pytest.raises(FetchError, match="asked to wait") as caught:
        with politeness.slot("b.test", time.monotonic() + 1):
            pass
    assert caught.value.transient


def busy_transport(status: int, retry_after: str | None, seen: list):
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        headers = {"Retry-After": retry_after} if retry_after else {}
        return httpx.Response(status, headers=headers, content=b"busy")

    return httpx.MockTransport(handler)


def test_fetch_body_records_a_503_retry_after_for_the_whole_host():
    politeness, seen = HostPoliteness(), []
    before = time.monotonic()
    with make_client(busy_transport(503, "2", seen)) as client, fetch_scope(30, politeness):
        with pytest.raises(FetchError) as caught:
            fetch_body(client, "https://busy.test/a")
    assert caught.value.transient and caught.value.status == 503 and caught.value.retry_after == 2.0
    assert politeness.not_before("busy.test") >= before + 2
    assert politeness.not_before("other.test") == 0.0
    # The next request to that host, even another path, is not sent before then: here it may wait less.
    with make_client(busy_transport(200, None, seen)) as client, fetch_scope(30, politeness, 300, 0.5):
        with pytest.raises(FetchError, match="asked to wait"):
            fetch_body(client, "https://busy.test/b")
    assert seen == ["https://busy.test/a"]


def test_waiting_for_the_host_is_not_charged_to_the_source_budget():
    # The host is closed for 1.5 s and the source has a 1 s budget: the wait is politeness, not the source
    # being slow, so the request is still made once the host opens.
    politeness, seen = HostPoliteness(), []
    politeness.defer("calm.test", 1.5)
    with make_client(busy_transport(200, None, seen)) as client, fetch_scope(1.0, politeness):
        assert fetch_body(client, "https://calm.test/a").body == b"busy"
    assert seen == ["https://calm.test/a"]


def test_a_retry_after_beyond_the_cap_is_not_retried_in_this_run():
    politeness, seen = HostPoliteness(), []
    with make_client(busy_transport(429, "3600", seen)) as client, fetch_scope(30, politeness, 300):
        with pytest.raises(FetchError, match="exceeds the cap of 300 s") as caught:
            fetch_body(client, "https://busy.test/a")
    assert not caught.value.transient and caught.value.status == 429
    assert politeness.not_before("busy.test") == 0.0  # nothing to wait for: we gave up on it


class Trickle(httpx.SyncByteStream):
    """A body sent a little at a time, each piece well within a read timeout, for ever (bounded here)."""

    def __iter__(self):
        for _ in range(200):
            time.sleep(0.02)
            yield b"x,"


def test_a_body_that_trickles_in_is_cut_off_at_the_budget():
    transport = httpx.MockTransport(lambda request: httpx.Response(200, stream=Trickle()))
    with make_client(transport) as client, fetch_scope(0.2):
        with pytest.raises(FetchError, match="budget") as caught:
            fetch_body(client, "https://slow.test/catalog.csv")
    assert caught.value.transient


def test_fetch_policy_refuses_nonsense_and_picks_the_budget():
    with pytest.raises(ValueError, match="per_host_limit"):
        FetchPolicy(per_host_limit=0)
    with pytest.raises(ValueError, match="retry_delays_seconds"):
        FetchPolicy(retry_delays_seconds=[-1])
    assert FetchPolicy().budget_for(SimpleNamespace(FETCH_BUDGET_SECONDS=900)) == 900
    assert FetchPolicy().budget_for(SimpleNamespace()) == 300
    assert FetchPolicy(source_budget_seconds=5).budget_for(SimpleNamespace(FETCH_BUDGET_SECONDS=900)) == 5


# --- the single writer ------------------------------------------------------------------------------------


def test_a_second_writer_waits_then_gives_up_with_a_clear_error(warehouse):
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT);"
         " fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()",
         str(warehouse.root / ".writer.lock")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(WriterBusyError, match="another process"):
            with open_writer(warehouse, wait_seconds=0.3):
                pass
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
    with open_writer(warehouse, wait_seconds=5) as con:  # free again
        assert con.execute("select count(*) from runs").fetchall() == [(0,)]


def test_one_process_cannot_nest_writers(warehouse):
    with open_writer(warehouse):
        with pytest.raises(WriterBusyError, match="already holds"):
            with open_writer(warehouse, wait_seconds=0.1):
                pass
    with open_writer(warehouse):  # released on exit
        pass


# --- run records ------------------------------------------------------------------------------------------


def test_a_run_is_recorded_when_it_starts_and_completed_when_it_ends(con):
    started = datetime(2026, 11, 20, 16, 5, tzinfo=UTC)
    runs.start_run(con, "run-1", "daily", started, {"parameters": {"fixing_date": date(2026, 11, 20)}})
    assert con.execute("select flow, outcome, finished_at, detail from runs").fetchall() == [
        ("daily", "running", None, '{"parameters":{"fixing_date":"2026-11-20"}}')
    ]
    runs.finish_run(con, "run-1", started + timedelta(minutes=2), runs.COMPLETED_WITH_FAILURES,
                    {"failed": [{"source": "skypilot"}], "value": Decimal("3.0200")})
    assert con.execute("select outcome, finished_at, detail from runs").fetchall() == [
        ("completed_with_failures", datetime(2026, 11, 20, 16, 7),
         '{"failed":[{"source":"skypilot"}],"value":"3.0200"}')
    ]
    # Prefect retrying the flow run reuses its id: the record starts over rather than doubling.
    runs.start_run(con, "run-1", "daily", started + timedelta(minutes=5), {})
    assert con.execute("select count(*), any_value(outcome) from runs").fetchall() == [(1, "running")]
    with pytest.raises(ValueError, match="unknown run outcome"):
        runs.finish_run(con, "run-1", started, "running", {})


# --- reports ----------------------------------------------------------------------------------------------


def test_the_failures_report_names_each_failure_and_survives_hostile_error_text():
    text = report.failures_markdown(
        "Collection", [{"source": "skypilot", "url": "https://x.test/a", "error": "HTTP 500 | boom\nsecond line"}],
        {"a" * 64: "ParseError: SkyPilot catalog body is empty"},
    )
    assert "| skypilot | https://x.test/a | HTTP 500 \\| boom second line |" in text
    assert "## Bodies that could not be read (1)" in text and "| aaaaaaaaaaaa | ParseError" in text
    assert report.failures_markdown("Collection", [], {}) == (
        "# Collection\n\nEvery source answered and every body was read.\n"
    )


def test_the_fixings_table_keeps_exact_values_as_text():
    gpu = SimpleNamespace(id="TSI-H100-SXM-OD", instrument_kind="gpu")
    fixings = [
        SimpleNamespace(definition=gpu, fixing_date=date(2026, 11, 20), revision=1, status="final",
                        value=Decimal("3.0200"), n_providers=6, n_observations=16, written=True),
    ]
    assert report.fixings_table(fixings) == [{
        "index_id": "TSI-H100-SXM-OD", "fixing_date": "2026-11-20", "revision": 1, "status": "final",
        "value": "3.0200", "unit": "USD/GPU-hour", "n_providers": 6, "n_observations": 16, "new": True,
    }]


# --- schedules and deployments ----------------------------------------------------------------------------


def test_a_scheduled_run_fixes_the_utc_date_it_was_scheduled_for():
    # 16:05 UTC on the 20th is 01:05 on the 21st in Tokyo: still the 20th's fixing.
    tokyo = timezone(timedelta(hours=9))
    assert schedule.fixing_date_for(datetime(2026, 11, 21, 1, 5, tzinfo=tokyo)) == date(2026, 11, 20)
    with pytest.raises(ValueError, match="no time zone"):
        schedule.fixing_date_for(datetime(2026, 11, 20, 16, 5))


def test_backfill_ranges_are_inclusive_and_bounded():
    assert schedule.dates_between(date(2026, 2, 27), date(2026, 3, 1)) == [
        date(2026, 2, 27), date(2026, 2, 28), date(2026, 3, 1)
    ]
    with pytest.raises(ValueError, match="before it starts"):
        schedule.dates_between(date(2026, 3, 1), date(2026, 2, 1))
    with pytest.raises(ValueError, match="split the backfill"):
        schedule.dates_between(date(2000, 1, 1), date(2026, 1, 1))


def test_the_daily_run_starts_after_every_index_fixing_time():
    minute, hour = (int(field) for field in schedule.DAILY_CRON.split()[:2])
    starts = clock_time(hour, minute)
    for d in load_definitions():
        assert clock_time.fromisoformat(d.fixing_time_utc) < starts, d.id


def test_served_deployments_and_prefect_yaml_schedule_the_same_runs_in_utc():
    from flows.deployments import build_deployments

    served = {d.name: d for d in build_deployments("/srv/tsi")}
    assert sorted(served) == ["backfill", "collect", "daily", "import"]
    assert all(d.parameters == {"warehouse": "/srv/tsi"} for d in served.values())
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    declared = {d["name"]: d for d in spec["deployments"]}
    assert sorted(declared) == sorted(served)
    for name, deployment in served.items():
        from_serve = sorted((s.schedule.cron, s.schedule.timezone, s.parameters) for s in deployment.schedules)
        from_yaml = sorted((s["cron"], s["timezone"], s.get("parameters", {}))
                           for s in declared[name].get("schedules", []))
        assert from_serve == from_yaml, name
        # serve() writes the entrypoint relative to the working directory; prefect.yaml's is the project's.
        assert deployment.entrypoint.replace("\\", "/").endswith(declared[name]["entrypoint"]), name
    assert [s.schedule.timezone for d in served.values() for s in d.schedules] == ["UTC", "UTC"]
    assert [(s.schedule.cron, s.parameters) for s in served["daily"].schedules] == [("5 16 * * *", {"collect": False})]


# --- the commands -----------------------------------------------------------------------------------------


def test_tsi_runs_prints_the_run_records(capsys, warehouse):
    from pipeline.cli import main

    with open_writer(warehouse) as con:
        runs.start_run(con, "r-1", "collect", datetime(2026, 11, 20, 15, 45, tzinfo=UTC), {})
        runs.finish_run(con, "r-1", datetime(2026, 11, 20, 15, 46, tzinfo=UTC), runs.COMPLETED, {"stored": 14})
    assert main(["--warehouse", str(warehouse.root), "runs"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "run_id,flow,started_at,finished_at,outcome,detail",
        'r-1,collect,2026-11-20 15:45:00,2026-11-20 15:46:00,completed,"{""stored"":14}"',
    ]


@pytest.mark.parametrize(
    "argv, message",
    [
        (("backfill", "--from", "2026-03-01", "--to", "2026-02-01"), "ends (2026-02-01) before it starts"),
        (("serve",), "PREFECT_API_URL is not set"),
        (("daily", "--sources", "nope"), "unknown source 'nope'"),
    ],
)
def test_orchestration_commands_refuse_bad_input_in_one_line(capsys, monkeypatch, tmp_path, argv, message):
    from pipeline.cli import main

    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.setenv("PREFECT_PROFILES_PATH", str(tmp_path / "no-profiles.toml"))  # no profile sets a URL
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
