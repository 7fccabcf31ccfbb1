"""Benchmark of the leave-one-out influence (run as a script; pytest does not collect it):

    python tests/benchmarks/bench_influence.py [--days 365]

On the synthetic year of bench_fixing.py (the same generator: specialist clouds, a marketplace, inference
providers; every shipped index and basket), it computes the year's fixings in one call, then times:

1. building the fixings' constituents (paid by any write of the fixings, shown apart);
2. pipeline.influence.leave_one_out over every fixing with a value: one scenario per (fixing, provider left
   out), all of them through the engine's screen and estimator SQL in one pass;
3. pipeline.influence.record_influence: the same, plus the anti-join on the keys and the insert into
   fixing_influence (what fix_range adds to a year's backfill);
4. pipeline.settlement_influence.settlement_influence for January of every shipped contract (pipeline/contracts.toml),
   after writing January's fixings (fix_range): the settlement without each provider and the cheapest move
   by a tick (--no-settlements skips it).

It prints the timings; nothing is asserted (timings are not tests).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_fixing import FIRST_DAY, warehouse_with  # noqa: E402
from pipeline.definitions import load_definitions  # noqa: E402
from pipeline.fixing import compute_range  # noqa: E402
from pipeline.contracts import load_contracts  # noqa: E402
from pipeline.fixing import fix_range  # noqa: E402
from pipeline.influence import leave_one_out, record_influence  # noqa: E402
from pipeline.settlement_influence import settlement_influence  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365, help="days of fixings (default 365)")
    parser.add_argument("--no-settlements", action="store_true", help="skip the settlement timings")
    args = parser.parse_args()
    definitions = load_definitions()
    print(f"machine: {os.cpu_count()} cores; DuckDB {duckdb.__version__}; {len(definitions)} definitions")
    with tempfile.TemporaryDirectory() as tmp:
        con, rows, _, _ = warehouse_with(args.days, Path(tmp))
        dates = [FIRST_DAY + timedelta(days=k) for k in range(args.days)]
        started = time.perf_counter()
        fixings = compute_range(con, definitions, dates)
        print(f"{rows:,} observations; {len(fixings):,} fixings computed in {time.perf_counter() - started:.2f} s")
        with_value = [f for f in fixings if f.value is not None]
        started = time.perf_counter()
        n_constituents = sum(len(f.constituents) for f in with_value)
        print(f"{len(with_value):,} fixings with a value, {n_constituents:,} constituents built in "
              f"{time.perf_counter() - started:.2f} s")
        voters = [sum(c.provider_value is not None for c in f.constituents) for f in with_value]
        scenarios = sum(n * n for n in voters)  # n scenarios of n - 1 providers, and the check of n
        for repeat in range(2):
            started = time.perf_counter()
            table = leave_one_out(fixings)
            seconds = time.perf_counter() - started
            print(f"leave_one_out: {sum(len(r) for r in table.values()):,} rows for {len(table):,} fixings "
                  f"(at most {scenarios:,} scenario rows) in {seconds:.2f} s (run {repeat + 1})")
        for f in fixings:  # as if just written: revision 1 of each
            f.revision, f.written = 1, True
        started = time.perf_counter()
        con.execute("begin transaction")
        written = record_influence(con, fixings)
        con.execute("commit")
        print(f"record_influence: {written:,} rows written in {time.perf_counter() - started:.2f} s")
        con.execute("delete from fixing_influence")
        if not args.no_settlements:
            settlements(con, definitions)
        con.close()


def settlements(con, definitions) -> None:
    january = [FIRST_DAY + timedelta(days=k) for k in range(31)]
    started = time.perf_counter()
    fix_range(con, definitions, january, computed_at=datetime(2025, 2, 2, tzinfo=timezone.utc))
    print(f"January's fixings and their influence rows written in {time.perf_counter() - started:.2f} s")
    for contract in load_contracts():
        started = time.perf_counter()
        result = settlement_influence(con, contract, "2025-01")
        seconds = time.perf_counter() - started
        if result.price is None:
            print(f"  {contract.id}: no settlement ({result.reason[:80]}) in {seconds:.2f} s")
            continue
        cheapest = result.cheapest
        shown = (f"{cheapest[0].provider} {cheapest[1].direction} at {cheapest[1].price.normalize():f}"
                 if cheapest else "none")
        exact = sum(m.exact for p in result.providers for m in (p.up, p.down) if m and m.price is not None)
        found = sum(1 for p in result.providers for m in (p.up, p.down) if m and m.price is not None)
        print(f"  {contract.id}: settlement {result.price}, {len(result.providers)} providers, {found} moves "
              f"found ({exact} exact), cheapest {shown}: {seconds:.2f} s")


if __name__ == "__main__":
    main()
