"""A warehouse built from the bundled demo recordings without Prefect: the same collect, parse, fix and
publish functions the flows call, day by day, each day fixed at 16:05 UTC (before its correction cutoff)."""
from __future__ import annotations

import shutil
from datetime import date, datetime, time, timezone
from pathlib import Path

from pipeline import collect, fixing, load, publish
from pipeline.definitions import load_definitions
from pipeline.http import FetchError, make_client
from pipeline.paths import DEMO_FIXTURES_DIR, Warehouse
from pipeline.rawstore import RawStore
from pipeline.replay import replay_transport
from pipeline.sources import SOURCES, get_source
from pipeline.warehouse import connect

DEMO_DATES = sorted(date.fromisoformat(p.name) for p in DEMO_FIXTURES_DIR.iterdir() if p.is_dir())


def build(warehouse: Warehouse) -> Warehouse:
    con = connect(warehouse)
    store = RawStore(warehouse.root)
    definitions = load_definitions()
    try:
        for day in DEMO_DATES:
            collected_at = datetime.combine(day, time(6, 0), tzinfo=timezone.utc)
            with make_client(replay_transport(DEMO_FIXTURES_DIR / day.isoformat())) as client:
                for source_id in sorted(SOURCES):
                    for request in get_source(source_id).requests():
                        try:
                            pages = collect.fetch(get_source(source_id), client, request, lambda: collected_at)
                        except FetchError:
                            continue  # the recordings hold failing sources on purpose
                        for page in pages:
                            collect.store_fetched(con, store, request, page)
            load.parse_pending(con, store)
            fixing.fix_date(con, definitions, day, computed_at=datetime.combine(day, time(16, 5), tzinfo=timezone.utc))
            publish.publish_date(con, warehouse, day)
    finally:
        con.close()
    return warehouse


_built: dict[Path, Path] = {}  # per test process (an xdist worker has its own base folder): the one build


def fresh_copy(tmp_path_factory) -> Warehouse:
    """A demo warehouse of the module's own: a copy of the one this test process built (a build takes most of a
    minute; a copy of its files a fraction of a second, and gives the same tables, raw store and files)."""
    base = tmp_path_factory.getbasetemp()
    if base not in _built:
        _built[base] = build(Warehouse(base / "demo-built" / "warehouse").ensure()).root
    target = tmp_path_factory.mktemp("demo") / "warehouse"
    shutil.copytree(_built[base], target)
    return Warehouse(target)
