from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from pipeline.load import load_result
from pipeline.paths import Warehouse
from pipeline.records import GPU, Observation, ParseContext, ParseResult
from pipeline.warehouse import connect

# ../shared beside the repository: real public data for development and CI. A user's fresh clone may not
# have it; the tests that read it skip then.
SHARED_REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"


# pytest-xdist (--dist loadfile) hands out whole files, in collection order, to whichever worker is free: the
# slowest files go first (from --durations on the 2-core VM), so that both workers finish together instead of
# one running a long file alone at the end while the other waits (some 4 minutes of a 14-minute run). The order
# holds only with --no-loadscope-reorder (pyproject's addopts): by default xdist sorts the files by their number
# of tests, which put the three slowest (few tests each, some 7 minutes together) last on one worker.
SLOWEST_FIRST = (
    "test_daily_flow.py", "test_flows.py", "test_verify.py", "test_site.py", "test_verify_all.py",
    "test_prefect_integration.py", "test_import.py", "test_columnar.py", "test_soak.py", "test_collect_faults.py",
    "test_crash_kill.py", "test_sql_command.py", "test_views.py", "test_chart.py", "test_settlement.py",
    "test_history_files.py", "test_readers.py", "test_influence.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file's tests keep their order


@pytest.fixture
def shared_real() -> Path:
    if not SHARED_REAL.is_dir():
        pytest.skip(f"{SHARED_REAL} is absent (real data is only beside the repo in development and CI)")
    return SHARED_REAL


@pytest.fixture
def warehouse(tmp_path) -> Warehouse:
    return Warehouse(tmp_path / "warehouse").ensure()


@pytest.fixture
def con(warehouse):
    connection = connect(warehouse)
    yield connection
    connection.close()


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def add_gpu_snapshot(con, provider: str, observed_at: str, prices: list[tuple[str, str] | tuple[str, str, str]],
                     *, source: str = "skypilot", price_type: str = "on_demand",
                     valid_from=None, valid_to=None) -> str:
    """Load one synthetic snapshot: prices are (instrument, usd_per_gpu_hour[, row suffix])."""
    snapshot_id = hashlib.sha256(f"{source}|{provider}|{observed_at}|{prices}".encode()).hexdigest()
    observations = [
        Observation(
            row_key=f"{instrument}|{i}|{extra[0] if extra else ''}",
            provider=provider,
            instrument_kind=GPU,
            instrument=instrument,
            source_instrument=instrument,
            price_type=price_type,
            original_price=Decimal(price),
            original_currency="USD",
            original_unit="gpu_hour",
            usd_price=Decimal(price),
            region="r1",
            gpu_count=Decimal(1),
            valid_from=valid_from,
            valid_to=valid_to,
        )
        for i, (instrument, price, *extra) in enumerate(prices)
    ]
    ctx = ParseContext(source=source, observed_at=utc(observed_at), snapshot_id=snapshot_id, provider=provider)
    load_result(con, ctx, ParseResult(observations=observations))
    return snapshot_id
