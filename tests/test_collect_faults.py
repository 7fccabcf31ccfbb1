"""Fault injection: the daily flow against a local HTTP server whose endpoints misbehave on purpose.

The server (127.0.0.1, started and stopped here) answers SkyPilot-format catalogs for healthy providers, and
for the others: a hang longer than the client's read timeout, a 429 with Retry-After then the catalog, a 500
forever, a 429 asking for an hour, a connection dropped mid-body, garbage, and an empty page. The requests
are injected into the flow; short timeouts and delays come in through the flow's FetchPolicy parameter, not
by editing constants. The server counts the requests it gets, so the retries are checked where they land.

Bounded time comes from the policy (three attempts of 0.5 s at most on the hang), not from a timed assertion.
"""
from __future__ import annotations

import os
import threading
import time
from collections import defaultdict
from datetime import date, datetime, timezone
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")

from prefect.artifacts import Artifact  # noqa: E402
from prefect.testing.utilities import prefect_test_harness  # noqa: E402

from flows.collect import collect_flow  # noqa: E402
from flows.daily import daily_flow  # noqa: E402
from pipeline.http import FetchPolicy  # noqa: E402
from pipeline.sources import FetchRequest  # noqa: E402
from pipeline.warehouse import connect  # noqa: E402
from test_crash_safety import skypilot_catalog as catalog  # noqa: E402

FIXING_DATE = date(2026, 11, 20)
COLLECTED_AT = datetime(2026, 11, 20, 6, 0, tzinfo=timezone.utc)
RETRY_AFTER_SECONDS = 1
HANG_SECONDS = 30  # far beyond the 0.5 s read timeout; released at teardown
# Two retries, 0.1 s apart: each failing endpoint that is worth retrying is asked exactly three times.
POLICY = FetchPolicy(connect_timeout_seconds=2, read_timeout_seconds=0.5, source_budget_seconds=5, retries=2,
                     retry_delays_seconds=[0.1, 0.1], per_host_limit=2, max_retry_after_seconds=60)




class FaultServer:
    """A threading HTTP server on loopback with misbehaving endpoints; it counts and times every request."""

    def __init__(self):
        self.hits: dict[str, list[float]] = defaultdict(list)
        # Requests to /slow/ being worked on, from arrival to just before the answer is written: the client
        # holds its slot from before sending to after reading, so these spans cannot overlap beyond its limit.
        self.slow_in_flight = 0
        self.max_slow_in_flight = 0
        self.lock = threading.Lock()
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep pytest's output for failures
                pass

            def do_GET(self):
                with server.lock:
                    server.hits[self.path].append(time.monotonic())
                    n_hits = len(server.hits[self.path])
                try:
                    server.answer(self, self.path, n_hits)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timed out) first: what the hang is for

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def answer(self, h: BaseHTTPRequestHandler, path: str, n_hits: int) -> None:
        if path.startswith("/ok/"):
            return self.send(h, 200, catalog(path.split("/")[2]))
        if path.startswith("/slow/"):
            with self.lock:
                self.slow_in_flight += 1
                self.max_slow_in_flight = max(self.max_slow_in_flight, self.slow_in_flight)
            time.sleep(0.3)
            with self.lock:
                self.slow_in_flight -= 1
            return self.send(h, 200, catalog("2.00"))
        if path == "/limited":
            if n_hits == 1:
                return self.send(h, 429, b"slow down", {"Retry-After": str(RETRY_AFTER_SECONDS)})
            return self.send(h, 200, catalog("2.60"))
        if path == "/hang":
            self.release.wait(HANG_SECONDS)
            return self.send(h, 200, catalog("9.99"))
        if path == "/broken":
            return self.send(h, 500, b"internal error")
        if path == "/closed-for-an-hour":
            return self.send(h, 429, b"come back later", {"Retry-After": "3600"})
        if path == "/cut":
            # A source killed mid-body: promises 1000 bytes, sends 40, drops the connection.
            h.send_response(200)
            h.send_header("Content-Length", "1000")
            h.end_headers()
            h.wfile.write(catalog("9.99")[:40])
            h.wfile.flush()
            h.close_connection = True
            return None
        if path == "/garbage":
            return self.send(h, 200, b"<html><body>Down for maintenance</body></html>\x00\xff\xfe")
        if path == "/empty":
            return self.send(h, 200, b"")
        return self.send(h, 404, b"no such endpoint")

    @staticmethod
    def send(h: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict | None = None) -> None:
        h.send_response(status)
        h.send_header("Content-Type", "text/csv")
        h.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            h.send_header(name, value)
        h.end_headers()
        h.wfile.write(body)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def prefect_server():
    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def fault_server():
    with FaultServer() as server:
        yield server


def request(server: FaultServer, path: str, provider: str) -> FetchRequest:
    return FetchRequest("skypilot", server.url(path), provider)


def scalar(con, query: str, params: dict | None = None):
    return con.execute(query, params or {}).fetchall()[0][0]


@pytest.mark.prefect
def test_faulty_sources_fail_alone_and_the_fixing_runs_on_the_others(prefect_server, fault_server, warehouse, caplog):
    s = fault_server
    requests = [
        request(s, "/ok/2.00", "lambda"),
        request(s, "/ok/2.20", "nebius"),
        request(s, "/ok/2.40", "verda"),
        request(s, "/limited", "fluidstack"),  # 429 + Retry-After: 1, then the catalog at 2.60
        request(s, "/hang", "paperspace"),
        request(s, "/broken", "do"),
        request(s, "/closed-for-an-hour", "cudo"),
        request(s, "/cut", "hyperbolic"),
        request(s, "/garbage", "seeweb"),
        request(s, "/empty", "hyperstack"),
    ]
    summary = daily_flow(fixing_date=FIXING_DATE, warehouse=str(warehouse.root), requests=requests,
                         collected_at=COLLECTED_AT, policy=POLICY)

    # Retries where they help and nowhere else: timeouts, 5xx and a connection cut mid-body three times (1 + 2
    # retries); the 429 once
    # more after its Retry-After; an hour-long Retry-After is beyond the cap, so not retried; a 200 with an
    # unreadable body is a parse failure, not a fetch to repeat.
    assert {path: len(times) for path, times in s.hits.items()} == {
        "/ok/2.00": 1, "/ok/2.20": 1, "/ok/2.40": 1, "/limited": 2, "/hang": 3, "/broken": 3,
        "/closed-for-an-hour": 1, "/cut": 3, "/garbage": 1, "/empty": 1,
    }
    # Retry-After honoured: the second request came no sooner than the server asked (a lower bound that the
    # code guarantees, not a speed measurement).
    first, second = s.hits["/limited"]
    assert second - first >= RETRY_AFTER_SECONDS

    failed = {f["url"]: f["error"] for f in summary["failed_sources"]}
    assert sorted(failed) == sorted([s.url("/hang"), s.url("/broken"), s.url("/closed-for-an-hour"), s.url("/cut")])
    assert "transport error" in failed[s.url("/cut")]
    assert "timed out" in failed[s.url("/hang")]
    assert failed[s.url("/broken")] == "HTTP 500"
    assert "exceeds the cap" in failed[s.url("/closed-for-an-hour")]

    con = connect(warehouse)
    try:
        unreadable = dict(con.execute(
            "select s.url, p.error from snapshot_parses p join raw_snapshots s using (snapshot_id)"
            " where p.outcome = 'failed'"
        ).fetchall())
        logged = dict(con.execute("select url, http_status from fetch_log where outcome = 'failed'").fetchall())
        h100 = con.execute(
            "select usd_per_gpu_hour, n_providers, status from fixings"
            " where index_id = 'TSI-H100-SXM-OD' and fixing_date = $d", {"d": FIXING_DATE}
        ).fetchall()
        constituents = dict(con.execute(
            "select provider, provider_value from fixing_constituents"
            " where index_id = 'TSI-H100-SXM-OD' and fixing_date = $d", {"d": FIXING_DATE}
        ).fetchall())
        outcomes = dict(con.execute("select flow, outcome from runs").fetchall())
        collect_detail = scalar(con, "select detail from runs where flow = 'collect'")
    finally:
        con.close()
    assert sorted(unreadable) == sorted([s.url("/garbage"), s.url("/empty")])
    assert sorted(summary["parse_failures"].values()) == sorted(unreadable.values())
    assert logged == {s.url("/hang"): None, s.url("/broken"): 500, s.url("/closed-for-an-hour"): 429,
                      s.url("/cut"): None}

    # The fixing runs on the four providers that answered. Each served one 8-GPU instance at 8x its per-GPU
    # price: lambda 2.00, nebius 2.20, verda 2.40, fluidstack 2.60 (after its 429). Median of four = mean of
    # the middle two = (2.20 + 2.40) / 2 = 2.30.
    assert constituents == {"lambda": Decimal("2.00"), "nebius": Decimal("2.20"), "verda": Decimal("2.40"),
                            "fluidstack": Decimal("2.60")}
    assert h100 == [(Decimal("2.3000"), 4, "final")]

    assert outcomes == {"daily": "completed_with_failures", "collect": "completed_with_failures",
                        "fix": "completed", "publish": "completed", "site": "completed"}
    assert s.url("/broken") in collect_detail and "HTTP 500" in collect_detail

    markdown = Artifact.get("collect-failures").data
    assert "Sources that failed (4)" in markdown and "Bodies that could not be read (2)" in markdown
    for path in ("/hang", "/broken", "/closed-for-an-hour", "/cut"):
        assert s.url(path) in markdown
    # A source's failure is its answer, reported above, not a fault of the run: no traceback in the log
    # (Prefect logs one for a task that fails for good, so the last attempt returns the error instead).
    # the records of this run's tasks and flows (Prefect's own server may log its housekeeping beside them)
    records = [r for r in caplog.records if r.name in ("prefect.task_runs", "prefect.flow_runs")]
    assert any("source failed" in r.getMessage() for r in records)
    assert [r.getMessage() for r in records if r.exc_info or "Traceback" in r.getMessage()] == []


@pytest.mark.prefect
def test_no_more_requests_in_flight_per_host_than_the_limit(prefect_server, fault_server, warehouse):
    s = fault_server
    requests = [request(s, f"/slow/{i}", f"p{i}") for i in range(6)]
    result = collect_flow(warehouse=str(warehouse.root), requests=requests, collected_at=COLLECTED_AT,
                          policy=FetchPolicy(read_timeout_seconds=5, source_budget_seconds=30, retries=0,
                                             per_host_limit=1))
    assert len(result["stored"]) == 6 and not result["failed"]
    # Six requests that each hold the server 0.3 s, submitted at once: with a limit of one, the server never
    # works on two at a time.
    assert s.max_slow_in_flight == 1
