"""The digests the parsing thread makes from a batch (pipeline.batch_digests) are those the loader makes from the
table, and a failure there fails its snapshot alone, never hanging the loader."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

from pipeline import load
from pipeline.batch_digests import BatchDigester
from pipeline.collect import store_fetched
from pipeline.http import FetchedBody
from pipeline.paths import Warehouse
from pipeline.rawstore import RawStore
from pipeline.sources import FetchRequest, get_source
from pipeline.warehouse import connect, sql

FIXTURES = Path(__file__).parent / "fixtures"
WHEN = datetime(2026, 11, 20, 6, tzinfo=timezone.utc)
# GPU rows of a marketplace and of clouds (several providers, regions, GPU counts), token rows with dated price
# intervals (valid_from / valid_to) and a price map: every column a digest hashes, nulls included.
BODIES = [("vast", "vast/offers.json"), ("skypilot", "skypilot/aws_vms.csv"), ("skypilot", "skypilot/gcp_vms.csv"),
          ("llm_prices", "llm_prices/openai.json"), ("litellm", "litellm/model_prices_excerpt.json")]
DIGEST_ROWS = "select * from observation_digests order by all"


def _loaded_warehouse(root: Path, monkeypatch, digest_here: bool):
    """A warehouse with BODIES loaded, each digested by the parsing thread (digest_here) or by the loader. The
    second body's snapshot is made an imported one (valid_until set), whose digests hash that date too."""
    monkeypatch.setattr(load, "_digest_here", lambda batch, in_flight, last: digest_here and
                        isinstance(batch, load.LoadBatch) and batch.observations.height > 0)
    warehouse = Warehouse(root).ensure()
    con = connect(warehouse)
    store = RawStore(warehouse.root)
    for number, (source_id, name) in enumerate(BODIES):
        path = FIXTURES / name
        when = WHEN + timedelta(minutes=number)
        ctx = get_source(source_id).context_for_file(path, when)
        request = FetchRequest(source_id, ctx.url, ctx.provider)
        body = FetchedBody(ctx.url, 200, "application/octet-stream", path.read_bytes(), when)
        store_fetched(con, store, request, body)
    con.execute("update raw_snapshots set valid_until = date '2026-11-25' where fetched_at = ?",
                [(WHEN + timedelta(minutes=1)).replace(tzinfo=None)])
    report = load.parse_pending(con, store)
    assert not report.failed and len(report.loaded) == len(BODIES)
    return con


def test_digests_made_from_the_batch_are_those_made_from_the_table(tmp_path, monkeypatch):
    calls = []
    real_digests = BatchDigester.digests
    monkeypatch.setattr(BatchDigester, "digests", lambda self, frame, ctx: calls.append(ctx.source) or
                        real_digests(self, frame, ctx))
    from_batch = _loaded_warehouse(tmp_path / "batch", monkeypatch, digest_here=True)
    assert sorted(calls) == sorted(source for source, _ in BODIES)  # every body took the parsing thread's way
    from_table = _loaded_warehouse(tmp_path / "table", monkeypatch, digest_here=False)
    assert len(calls) == len(BODIES)  # and none of these
    rows = from_batch.execute(DIGEST_ROWS).fetchall()
    assert rows == from_table.execute(DIGEST_ROWS).fetchall()
    kinds = {kind for (kind,) in
             from_batch.execute("select distinct instrument_kind from observation_digests").fetchall()}
    [(with_until, with_interval)] = from_batch.execute(
        "select count(*) filter (valid_until is not null), count(*) filter (valid_from is not null) "
        "from observation_digests").fetchall()
    assert kinds == {"gpu", "token"} and with_until > 0 and with_interval > 0
    # and both are what the statement gives over the loaded table, every snapshot at once (its backfill branch)
    from_batch.execute("delete from observation_digests")
    from_batch.execute(sql("insert_observation_digests"), {"snapshot_id": None, "observed_at": None})
    assert from_batch.execute(DIGEST_ROWS).fetchall() == rows


def test_a_digest_that_fails_in_the_parsing_thread_fails_its_snapshot_alone(tmp_path, monkeypatch):
    def failing(self, frame, ctx):
        raise RuntimeError("digest broke")
    monkeypatch.setattr(BatchDigester, "digests", failing)
    monkeypatch.setattr(load, "_digest_here", lambda batch, in_flight, last: last)  # the last body only
    warehouse = Warehouse(tmp_path / "wh").ensure()
    con = connect(warehouse)
    store = RawStore(warehouse.root)
    for number, name in enumerate(("skypilot/aws_vms.csv", "skypilot/gcp_vms.csv")):
        path = FIXTURES / name
        ctx = get_source("skypilot").context_for_file(path, WHEN)
        store_fetched(con, store, FetchRequest("skypilot", ctx.url, ctx.provider),
                      FetchedBody(ctx.url, 200, "text/csv", path.read_bytes(), WHEN + timedelta(minutes=number)))
    report = load.parse_pending(con, store)
    [(failed_id, reason)] = report.failed.items()
    assert reason == "RuntimeError: digest broke" and len(report.loaded) == 1
    assert con.execute("select count(*) from observations where snapshot_id = ?", [failed_id]).fetchone() == (0,)
    assert con.execute("select outcome from snapshot_parses where snapshot_id = ?", [failed_id]).fetchone() == (
        "failed",)


def test_an_interrupt_while_digesting_ends_the_load_instead_of_hanging_it(tmp_path, monkeypatch):
    def interrupted(self, frame, ctx):
        raise KeyboardInterrupt
    monkeypatch.setattr(BatchDigester, "digests", interrupted)
    warehouse = Warehouse(tmp_path / "wh").ensure()
    con = connect(warehouse)
    store = RawStore(warehouse.root)
    path = FIXTURES / "vast/offers.json"
    ctx = get_source("vast").context_for_file(path, WHEN)
    store_fetched(con, store, FetchRequest("vast", ctx.url, ctx.provider),
                  FetchedBody(ctx.url, 200, "application/json", path.read_bytes(), WHEN))
    raised = []

    def run():
        try:
            load.parse_pending(con, store)
        except KeyboardInterrupt:
            raised.append(True)
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(timeout=120)
    assert not worker.is_alive(), "the loader waited for ever on digests that never came"
    assert raised == [True]
    assert con.execute("select count(*) from observations").fetchone() == (0,)  # nothing of it committed
