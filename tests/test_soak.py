"""Soak: thirty simulated days of scheduled collection and fixing against a local HTTP server that misbehaves at
random, then checks that nothing was lost, that every published fixing recomputes from the raw store alone,
and that running every day again adds nothing.

The server (127.0.0.1, a free port, started and stopped here) serves SkyPilot catalogs of four clouds, built
from the demo recordings of 2026-11-20 with every price scaled per day and cloud (so the indices move). Each
request meets a fate drawn from a random generator seeded by (seed, collection, URL, attempt number), so a run
is reproducible whatever the machine's timing: the catalog, a hang past the read timeout, a 500 or 503, a 429
with a short Retry-After, a body cut mid-transfer, or a poisoned body (UTF-16, an HTML maintenance page, a
header without the required columns, a `1e20` price cell, a GpuInfo cell nested 5,000 deep). On two days two
clouds are down all day (OUTAGES), so that the fixing's fallback ladder is taken too.

Each day has two of the schedule's collections inside its window (09:45 and 15:45 UTC), each request tried
up to three times on transient failures (as the collect flow's retries, every attempt recorded in fetch_log at
its own simulated time, 30 s apart), then, as the fix flow, parse_pending, fix_date at 16:05 and publish_date.
Plain pipeline functions (tests/day_runner.py), no Prefect server. The test uses only tmp_path and an ephemeral
port, so it can run in parallel with the rest of the suite (pytest-xdist) as it is.
"""
from __future__ import annotations

import csv
import hashlib
import io
import random
import ssl
import threading
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from decimal import ROUND_HALF_EVEN, Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import httpx

from day_runner import FIXING_TIME, collect_once
from pipeline import fixing, load, publish
from pipeline.definitions import load_definitions
from pipeline.http import FetchPolicy, HostPoliteness
from pipeline.paths import DEMO_FIXTURES_DIR
from pipeline.rawstore import RawStore
from pipeline.sources import FetchRequest
from pipeline.verify import verify
from pipeline.warehouse import connect

SEED = 20261001
FIRST_DAY, N_DAYS = date(2026, 10, 1), 30
DAYS = [FIRST_DAY + timedelta(days=i) for i in range(N_DAYS)]
COLLECTIONS = [(9, 45), (15, 45)]  # two of pipeline.schedule's collections inside the 16:00 UTC window
ATTEMPTS = 3  # 1 + 2 retries
ATTEMPT_SPACING = timedelta(seconds=30)  # each attempt at its own simulated time (fetch_log's key)
PROVIDERS = ("lambda", "runpod", "fluidstack", "verda")
# Hangs are cut off by the read timeout (and the budget); a hang holds the server 1 s at most.
POLICY = FetchPolicy(connect_timeout_seconds=1, read_timeout_seconds=0.3, source_budget_seconds=2, retries=0)
HANG_SECONDS = 1.0
FATES = {"ok": 60, "hang": 2, "http_500": 6, "http_503": 4, "http_429": 6, "cut": 6, "poison": 14}
# Two clouds down all day (503 to every attempt) on two days: the other two are fewer than an index's three
# providers, so those days' fixings widen to the 72-hour rung (which still holds the clouds' earlier days).
OUTAGES = {DAYS[9]: {"lambda", "verda"}, DAYS[19]: {"runpod", "fluidstack"}}
POISONS = ("utf16", "maintenance", "no_columns", "price_1e20", "nested")
TABLES = ("raw_snapshots", "fetch_log", "snapshot_parses", "observations", "rejections", "observation_digests",
          "index_definitions", "fixings", "fixing_constituents", "publications")


def scaled_catalog(provider: str, factor: Decimal) -> bytes:
    """The demo catalog of `provider` with every Price and SpotPrice cell multiplied by `factor` (cents)."""
    text = (DEMO_FIXTURES_DIR / "2026-11-20" / "skypilot" / f"{provider}_vms.csv").read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header = rows[0]
    price_columns = [i for i, name in enumerate(header) if name in ("Price", "SpotPrice")]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row in rows[1:]:
        for i in price_columns:
            if row[i]:
                row[i] = str((Decimal(row[i]) * factor).quantize(Decimal("0.01"), ROUND_HALF_EVEN))
        writer.writerow(row)
    return out.getvalue().encode("utf-8")


def poisoned(kind: str, body: bytes) -> bytes:
    text = body.decode("utf-8")
    if kind == "utf16":
        return text.encode("utf-16")
    if kind == "maintenance":
        return b"<html><body>Down for maintenance</body></html>\n"
    if kind == "no_columns":
        return text.replace("AcceleratorName", "Accel", 1).replace("Region", "Zone", 1).encode()
    rows = list(csv.reader(io.StringIO(text, newline="")))
    header = rows[0]
    if kind == "price_1e20":
        # The first H100 row's price becomes 1e20 (what once raised InvalidOperation and stopped the day).
        h100 = next(row for row in rows[1:] if "H100" in row[header.index("AcceleratorName")])
        h100[header.index("Price")] = "1e20"
    elif kind == "nested":
        # One more row, whose GpuInfo cell is nested 5,000 deep (a recursion bomb for a naive literal_eval).
        values = {"InstanceType": "gpu_1x_h100_nested", "AcceleratorName": "H100", "AcceleratorCount": "1",
                  "Price": "3.00", "Region": "us-east-1", "GpuInfo": "{'Gpus': " + "[" * 5000 + "]" * 5000 + "}"}
        rows.append([values.get(name, "") for name in header])
    else:
        raise AssertionError(kind)
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


class SoakServer:
    """Serves /v7/<provider>/vms.csv: the day's catalog, or a fault drawn from the seeded generator."""

    def __init__(self, seed: int):
        self.seed = seed
        prices = random.Random(seed)
        self.bodies = {(day, p): scaled_catalog(p, Decimal(prices.randint(85, 115)) / 100)
                       for day in DAYS for p in PROVIDERS}
        self.day = DAYS[0]
        self.collection = ""  # set by the test before each collection
        self.attempts: Counter = Counter()  # (collection, path) -> requests so far
        self.hits: list[tuple[str, str, str | None]] = []  # (path, fate, sha256 of a body sent whole)
        self.lock = threading.Lock()
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                try:
                    server.answer(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out first

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, provider: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v7/{provider}/vms.csv"

    def answer(self, h: BaseHTTPRequestHandler) -> None:
        provider = h.path.split("/")[2]
        with self.lock:
            # Each attempt's fate is drawn from a generator seeded by the seed, the collection, the URL and the
            # attempt's number: the same in every run, however the machine's load times the requests.
            self.attempts[(self.collection, h.path)] += 1
            draw = random.Random(f"{self.seed}|{self.collection}|{h.path}|{self.attempts[(self.collection, h.path)]}")
            fate = draw.choices(list(FATES), weights=list(FATES.values()))[0]
            poison = draw.choice(POISONS)
            if provider in OUTAGES.get(self.day, ()):
                fate = "outage"
            body = self.bodies[(self.day, provider)]
            if fate == "poison":
                body, fate = poisoned(poison, body), f"poison:{poison}"
            index = len(self.hits)
            self.hits.append((h.path, fate, None))
        if fate == "hang":
            self.release.wait(HANG_SECONDS)
            return self.send(h, 200, body)
        if fate in ("http_500", "http_503", "outage"):
            return self.send(h, 500 if fate == "http_500" else 503, b"internal error")
        if fate == "http_429":
            return self.send(h, 429, b"slow down", {"Retry-After": "0.05"})
        if fate == "cut":
            h.send_response(200)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body[: len(body) // 2])
            h.wfile.flush()
            h.close_connection = True
            return None
        with self.lock:
            self.hits[index] = (h.path, fate, hashlib.sha256(body).hexdigest())
        return self.send(h, 200, body)

    @staticmethod
    def send(h, status: int, body: bytes, headers: dict | None = None) -> None:
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


# A client's default transport builds an SSL context (tens of ms, for each of the soak's ~350 fetches); the
# server is plain HTTP on loopback, so every fetch gets a fresh transport sharing one context.
SSL_CONTEXT = ssl.create_default_context()


def local_transport() -> httpx.HTTPTransport:
    return httpx.HTTPTransport(verify=SSL_CONTEXT)


def collect(con, store, server: SoakServer, requests: list[FetchRequest], collected_at: datetime) -> None:
    """One scheduled collection: every request, retried (up to ATTEMPTS) while its failure is transient."""
    politeness = HostPoliteness(POLICY.per_host_limit)  # one run's politeness, shared by its requests
    pending = requests
    for attempt in range(ATTEMPTS):
        if not pending:
            break
        when = collected_at + attempt * ATTEMPT_SPACING
        _, failed = collect_once(con, store, pending, local_transport, when, POLICY, politeness)
        pending = failed  # every failure here is transient (timeouts, 5xx, 429, a cut): retried


def counts(con) -> dict:
    return {t: con.execute(f"select count(*) from {t}").fetchall()[0][0] for t in TABLES}


def published(warehouse) -> dict:
    return {p.name: p.read_bytes() for p in sorted((warehouse.published_dir / "fixings").iterdir())}


def test_thirty_days_of_random_faults_lose_nothing_verify_and_rerun_to_nothing(warehouse):
    store = RawStore(warehouse.root)
    # The two indices that all four catalogs feed. (Indices short of providers on most days, such as H100 PCIe
    # with two of these clouds, would walk the whole fallback ladder every day: seconds, and nothing learnt.
    # The OUTAGES send these two down the ladder.)
    definitions = [d for d in load_definitions() if d.id in ("TSI-H100-SXM-OD", "TSI-A100-80GB-OD")]
    assert len(definitions) == 2
    with SoakServer(SEED) as server:
        requests = [FetchRequest("skypilot", server.url(p), p) for p in PROVIDERS]
        con = connect(warehouse)
        try:
            for day in DAYS:
                server.day = day
                for hour, minute in COLLECTIONS:
                    collected_at = datetime(day.year, day.month, day.day, hour, minute, tzinfo=timezone.utc)
                    server.collection = collected_at.isoformat()
                    collect(con, store, server, requests, collected_at)
                load.parse_pending(con, store)  # as the fix flow: parse what is new, then fix
                fixed_at = datetime.combine(day, FIXING_TIME, tzinfo=timezone.utc)
                fixing.fix_date(con, definitions, day, computed_at=fixed_at)
                publish.publish_date(con, warehouse, day)
            first_counts = counts(con)
            first_files = published(warehouse)

            # The faults really happened, every kind of them (the seed's draws, not a hope).
            fates = Counter(fate.split(":")[0] for _, fate, _ in server.hits)
            assert set(fates) == {"ok", "hang", "http_500", "http_503", "http_429", "cut", "poison", "outage"}, fates
            assert fates["outage"] == len(OUTAGES) * 2 * len(COLLECTIONS) * ATTEMPTS
            assert len({fate for _, fate, _ in server.hits if fate.startswith("poison:")}) == len(POISONS)

            # No attempt is lost: the server's every request is one fetch_log row.
            logged = dict(con.execute("select outcome, count(*) from fetch_log group by 1").fetchall())
            assert sum(logged.values()) == len(server.hits)
            # No body is lost: every whole 200 body the server sent (the catalog or a poisoned one) is a snapshot
            # with that very sha256, in the raw store, and reads back (RawStore.get checks the address); each
            # snapshot has its fetch_log row and is parsed once. One exception, which is not a loss: an answer
            # the server was too slow to send (a loaded machine) timed out in the client first, and is a failed
            # attempt in fetch_log like a hang. So: nothing stored that was not sent, and what was sent but not
            # stored is at most the timeouts beyond the hangs.
            delivered = Counter((path, sha) for path, _, sha in server.hits if sha is not None)
            snapshots = con.execute("select url, sha256, snapshot_id from raw_snapshots").fetchall()
            stored = Counter((urlsplit(url).path, sha) for url, sha, _ in snapshots)
            timeouts = con.execute("select count(*) from fetch_log where outcome = 'failed'"
                                   " and error like '%timed out%'").fetchall()[0][0]
            assert stored - delivered == Counter()
            assert (delivered - stored).total() <= timeouts - fates["hang"]
            assert logged["stored"] == len(snapshots) >= delivered.total() - (timeouts - fates["hang"])
            for _, sha, _ in snapshots:
                assert hashlib.sha256(store.get(sha)).hexdigest() == sha
            assert con.execute(
                "select count(*) from raw_snapshots s join fetch_log f using (snapshot_id)"
                " where f.outcome = 'stored'").fetchall() == [(len(snapshots),)]
            assert con.execute("select count(distinct snapshot_id), count(*) from snapshot_parses").fetchall() == [
                (len(snapshots), len(snapshots))]
            failed_parses = {r[0] for r in con.execute(
                "select snapshot_id from snapshot_parses where outcome = 'failed'").fetchall()}
            assert failed_parses, "the unreadable poisons failed as bodies"
            # Nothing absurd reached an observation or a fixing.
            assert con.execute("select max(usd_per_gpu_hour) from observations").fetchall()[0][0] < 100
            assert con.execute("select max(usd_per_gpu_hour) from fixings").fetchall()[0][0] < 100

            # Every day was fixed and published, once; the H100 SXM index moved with the prices.
            assert sorted(first_files) == sorted(
                [f"fixings_{d.isoformat()}.csv" for d in DAYS] + [f"fixings_{d.isoformat()}.csv.sha256" for d in DAYS])
            h100 = con.execute(
                "select fixing_date, status, usd_per_gpu_hour from fixings where index_id = 'TSI-H100-SXM-OD'"
            ).fetchall()
            assert len(h100) == N_DAYS
            assert len({value for _, _, value in h100}) > N_DAYS // 2
            # The outage days widened; on every other day each cloud answered at least once in its window
            # (random faults rarely last through three attempts at both collections): final. Same for A100.
            statuses = con.execute("select index_id, fixing_date, status from fixings").fetchall()
            assert {(day, status) for index_id, day, status in statuses if day in OUTAGES} == {
                (day, "widened") for day in OUTAGES}
            assert {status for _, day, status in statuses if day not in OUTAGES} == {"final"}

            # Rerun every day, as `tsi backfill` does (all thirty dates in one set-based fix_range, which gives
            # each date the fixing it gets alone), at each day's own 16:05: nothing new to parse, the same
            # fixings (none written), the same files (none published): it adds nothing.
            assert not load.parse_pending(con, store).loaded
            again = fixing.fix_range(con, definitions, DAYS, computed_at=datetime.combine(
                DAYS[0], FIXING_TIME, tzinfo=timezone.utc))
            assert len(again) == len(definitions) * N_DAYS
            assert not [(f.index_id, f.fixing_date, f.note) for f in again if f.written]
            for day in DAYS:
                publication = publish.publish_date(con, warehouse, day)
                assert publication is not None and not publication.new
            assert counts(con) == first_counts
        finally:
            con.close()
    assert published(warehouse) == first_files

    # Every published fixing of the thirty days recomputes from the raw store alone, exactly: verify re-reads
    # every body the fixings could have used (the loaded ones; a body that failed was never an input), checks
    # it against its sha256 and parses it again into a scratch warehouse.
    report = verify(warehouse, DAYS[0], DAYS[-1])
    assert report.differences == []
    assert report.ok and report.fixings == first_counts["fixings"]
    assert report.parse_failures == {}
    assert report.snapshots == first_counts["snapshot_parses"] - len(failed_parses)
