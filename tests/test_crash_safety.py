"""A crash between or inside steps leaves nothing partial: no half-fixed date, no half-written file.

The failures are injected from outside the code under test: a connection that breaks on the Nth write of a
fixing's constituents, and an `os.replace` that fails, as a full disk or a killed process would.
"""
from __future__ import annotations

import os
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from pipeline import definitions, fixing, load, publish
from pipeline.collect import store_fetched
from pipeline.http import FetchedBody
from pipeline.rawstore import RawStore
from pipeline.sources import FetchRequest

DAY = date(2026, 11, 20)
WHEN = datetime(2026, 11, 20, 6, 0, tzinfo=timezone.utc)
TABLES = ("fixings", "fixing_constituents", "index_definitions", "publications")


class Crash(RuntimeError):
    pass


class BreaksOnWrite:
    """A DuckDB connection that raises on the `after`-th statement writing to `table` (one row or a batch), as
    if the process died there; everything else goes to the real connection. `fixings_seen` is how many
    fixing rows the transaction held at that moment: what a non-transactional write would leave behind."""

    def __init__(self, con, table: str, after: int = 1):
        self._con, self._table, self._after, self.writes = con, table.lower(), after, 0
        self.fixings_seen = None

    def execute(self, query, *args, **kwargs):
        if f"insert into {self._table}" in " ".join(str(query).lower().split()):
            self.writes += 1
            if self.writes == self._after:
                self.fixings_seen = self._con.execute("select count(*) from fixings").fetchall()[0][0]
                raise Crash(f"injected failure on write {self.writes} to {self._table}")
        return self._con.execute(query, *args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._con, name)


def counts(con) -> dict:
    return {t: con.execute(f"select count(*) from {t}").fetchall()[0][0] for t in TABLES}


def skypilot_catalog(price: str) -> bytes:
    """A SkyPilot catalog with one 8-GPU H100 SXM instance: its per-GPU-hour price is `price` (x 8 / 8)."""
    return (
        "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,Region,GpuInfo,SpotPrice\n"
        f"gpu_8x_h100_sxm5,H100,8,208,1800,{Decimal(price) * 8},us-east-1,,\n"
    ).encode()


def three_providers(con, warehouse) -> None:
    """Three providers' catalogs collected at 06:00 on DAY, through the same store, parse and load as a run."""
    store = RawStore(warehouse.root)
    for provider, price in (("lambda", "2.99"), ("verda", "1.99"), ("fluidstack", "2.90")):
        request = FetchRequest("skypilot", f"https://catalog.test/{provider}/vms.csv", provider)
        store_fetched(con, store, request, FetchedBody(request.url, 200, "text/csv", skypilot_catalog(price), WHEN))
    assert not load.parse_pending(con, store).failed


def test_a_failure_in_the_middle_of_a_fixing_leaves_no_fixing_of_that_date(con, warehouse):
    three_providers(con, warehouse)
    defs = definitions.load_definitions()
    before = counts(con)
    broken = BreaksOnWrite(con, "fixing_constituents")
    with pytest.raises(Crash):
        fixing.fix_date(broken, defs, DAY)
    assert broken.writes == 1, "the injected failure must have fired inside fix_date"
    # The date's fixings were written when their constituents failed: all of it was rolled back.
    assert broken.fixings_seen > 0
    assert counts(con) == before

    results = fixing.fix_date(con, defs, DAY)
    h100 = [f for f in results if f.definition.id == "TSI-H100-SXM-OD"]
    # Median of 1.99, 2.90, 2.99 = 2.90.
    assert [(f.value, f.n_providers, f.revision) for f in h100] == [(Decimal("2.9000"), 3, 1)]
    assert con.execute(
        "select count(*) from fixing_constituents where index_id = 'TSI-H100-SXM-OD' and fixing_date = $d",
        {"d": DAY},
    ).fetchall() == [(3,)]


def test_a_failure_while_publishing_leaves_no_file_and_no_record(con, warehouse, monkeypatch):
    three_providers(con, warehouse)
    fixing.fix_date(con, definitions.load_definitions(), DAY)
    folder = warehouse.published_dir / "fixings"
    real_replace = os.replace

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        publish.publish_date(con, warehouse, DAY)
    assert not folder.exists() or list(folder.iterdir()) == []  # no file, not even a temporary one
    assert con.execute("select count(*) from publications").fetchall() == [(0,)]

    monkeypatch.setattr(os, "replace", real_replace)
    publication = publish.publish_date(con, warehouse, DAY)
    assert publication.new and publication.path.read_bytes().startswith(b"fixing_date,")
    assert sorted(p.name for p in folder.iterdir()) == ["fixings_2026-11-20.csv", "fixings_2026-11-20.csv.sha256"]
    assert con.execute("select count(*) from publications").fetchall() == [(1,)]
