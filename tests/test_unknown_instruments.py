"""`tsi sources --unknown`: the names refused as unknown_instrument, read back from a warehouse filled the real way
(bodies stored, then parsed from the raw store)."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from pipeline import collect, load
from pipeline.cli import main
from pipeline.http import FetchedBody
from pipeline.rawstore import RawStore
from pipeline.sources import FetchRequest
from pipeline.unknown_instruments import unknown_instruments

FIXTURES = Path(__file__).resolve().parent / "fixtures"
HEADER = "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,Region,GpuInfo,SpotPrice\n"
# Seeweb's bare H100 says nothing of its form factor: two rows, refused, never guessed.
SEEWEB = HEADER + "ECS1GPU8,H100,1,16,256.0,1.89,it-fr2,,\nECS2GPU8,H100,2,32,512.0,3.78,it-fr2,,\nECS1GPU7,L40S,1,8,32.0,0.85,it-fr2,,\n"
SHADEFORM = HEADER + "lambdalabs_H100,H100,1.0,26.0,200,4.29,saltlakecity-usa-1,,\n"
VAST = json.dumps({"offers": [
    {"id": 1, "gpu_name": "RTX 4090 'turbo'", "num_gpus": 1, "dph_total": 0.4, "rentable": True},
    {"id": 2, "gpu_name": "RTX 4090", "num_gpus": 1, "dph_total": 0.4, "rentable": True},
]}).encode()


def store(con, raw_store, source: str, provider: str, body: bytes, when: datetime) -> None:
    request = FetchRequest(source=source, url=f"https://example.test/{source}/{provider}", provider=provider)
    collect.store_fetched(con, raw_store, request, FetchedBody(request.url, 200, "text/plain", body, when))


def fill(con, warehouse) -> None:
    raw_store = RawStore(warehouse.root)
    day1, day2 = datetime(2026, 11, 17, 6, tzinfo=timezone.utc), datetime(2026, 11, 18, 6, tzinfo=timezone.utc)
    store(con, raw_store, "skypilot", "seeweb", SEEWEB.encode(), day1)
    store(con, raw_store, "skypilot", "seeweb", SEEWEB.encode(), day2)
    store(con, raw_store, "skypilot", "shadeform", SHADEFORM.encode(), day1)
    store(con, raw_store, "vast", "vast", VAST, day2)
    report = load.parse_pending(con, raw_store)
    assert not report.failed and len(report.loaded) == 4


def test_unknown_names_grouped_most_frequent_first(con, warehouse):
    fill(con, warehouse)
    rows = unknown_instruments(con)
    assert [(r.source, r.provider, r.source_instrument, r.n_rows) for r in rows] == [
        ("skypilot", "seeweb", "H100", 4),  # 2 rows x 2 snapshots
        ("vast", "vast", "RTX 4090 'turbo'", 1),  # a name holding a quote (its repr is double-quoted)
        ("skypilot", "shadeform", "H100", 1),  # same count: the more recent first
    ]
    assert rows[0].last_seen == datetime(2026, 11, 18, 6)  # UTC, as the warehouse keeps it
    assert "ECS1GPU8" in rows[0].example_detail or "ECS2GPU8" in rows[0].example_detail


def test_cli_lists_them(con, warehouse, capsys):
    fill(con, warehouse)
    con.close()
    assert main(["--warehouse", str(warehouse.root), "sources", "--unknown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["rows", "last_seen_utc", "source", "provider", "name", "example"]
    assert lines[1].split()[:6] == ["4", "2026-11-18", "06:00", "skypilot", "seeweb", "'H100'"]
    assert len(lines) == 4


def test_cli_on_a_warehouse_without_unknowns(con, warehouse, capsys):
    con.close()
    assert main(["--warehouse", str(warehouse.root), "sources", "--unknown"]) == 0
    assert "no unknown instruments" in capsys.readouterr().out


def test_cli_without_a_warehouse_is_a_one_line_error(tmp_path, capsys):
    assert main(["--warehouse", str(tmp_path / "none"), "sources", "--unknown"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tsi sources: no warehouse at") and err.count("\n") == 1
