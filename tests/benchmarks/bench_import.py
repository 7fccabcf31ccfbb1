"""Benchmark of the parse-and-load path (run as a script; pytest does not collect it):

    python tests/benchmarks/bench_import.py [--sizes 10000 100000 1000000] [--source vast|skypilot|both]
                                            [--repeat 3] [--history N] [--per-body N]

For each size N (observations) it writes synthetic bodies shaped like the real ones (Vast offers as `vastai search
offers` returns them, N / 2 offers each with an on-demand and a spot price, in bodies of at most 100,000 offers;
SkyPilot catalogs of at most 50,000 rows shaped like AWS's, N / 2 rows each with both prices), stores them as a
collection would (raw store, raw_snapshots), then times pipeline.load.parse_pending, which reads every body back
from the store, parses it (by column: pipeline/columnar.py), applies the shared checks and loads observations,
rejections and digests, the next body's parse overlapping the last one's load: the path of a collection and of
`tsi import`. It prints the median of --repeat runs, each in a fresh warehouse, with the range; beside it, the
time a plain reader takes to read the same bodies (json.loads with Decimal numbers / csv.reader), so that the rate
can be judged against the cost of reading the bytes at all. Peak memory is the process's maximum resident set.

With --per-body N, the bodies are instead successive snapshots of one market, N observations each, 6 hours apart
(the same offers or catalog rows, prices drawn afresh): what a history of 4-a-day snapshots gives an import,
each body's jump check finding the same rows in the one before. `--sizes 1000000 --per-body 10000` times 100
such bodies: the rate an import of bodies of 10,000 keeps up, where the first size (one body of 10,000, alone)
also pays, once, the fixed costs of a load (its transaction, digests, jump check and commit), with no next body
to parse meanwhile.

With --history N, the warehouse first holds N observations of the same shape, loaded the same way from earlier
bodies (not timed): a load must not slow down as the history grows. Before the first size, a small body of each
source goes through the same path untimed (warm_up: the libraries a columnar reader imports on first use and the
catalog, read once per process). It prints the figures; nothing is asserted.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import random
import resource
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pipeline import collect, load  # noqa: E402
from pipeline.http import FetchedBody  # noqa: E402
from pipeline.paths import Warehouse  # noqa: E402
from pipeline.rawstore import RawStore  # noqa: E402
from pipeline.sources import FetchRequest  # noqa: E402
from pipeline.warehouse import connect  # noqa: E402

OFFERS_PER_BODY = 100_000
ROWS_PER_CATALOG = 50_000
VAST_GPUS = [("H100 SXM", 81559), ("A100 SXM4", 81920), ("RTX 4090", 24564), ("L40S", 46068), ("H200", 143771)]
SKYPILOT_GPUS = [("gpu_{n}x_h100_sxm5", "H100", 81559), ("gpu_{n}x_a100_80gb_sxm4", "A100", 81920),
                 ("gpu_{n}x_a10", "A10", 24576)]
INSTANCE_TYPES, REGIONS, ZONES = 250, 40, 5  # 50,000 rows: AWS lists some hundred GPU types over its regions and zones
WHEN = datetime(2026, 11, 20, 6, tzinfo=timezone.utc)
SNAPSHOTS_APART = timedelta(hours=6)  # --per-body: 4 snapshots a day


def vast_bodies(n: int, rng: random.Random) -> list[bytes]:
    """n observations: n / 2 offers (each an on-demand and a spot price) in bodies of OFFERS_PER_BODY."""
    bodies, offer_id = [], 10_000_000
    offers_wanted = n // 2
    for start in range(0, offers_wanted, OFFERS_PER_BODY):
        offers = []
        for _ in range(min(OFFERS_PER_BODY, offers_wanted - start)):
            offer_id += 1
            name, ram = rng.choice(VAST_GPUS)
            gpus = rng.choice((1, 1, 2, 4, 8))
            per_gpu = rng.uniform(0.2, 3.5)
            offers.append({
                "id": offer_id, "machine_id": offer_id % 50_000, "host_id": offer_id % 9_000, "gpu_name": name,
                "num_gpus": gpus, "gpu_ram": ram, "gpu_frac": 1.0, "rentable": True, "verification": "verified",
                "reliability": round(rng.uniform(0.9, 1.0), 7), "geolocation": "Texas, US",
                "dph_total": per_gpu * gpus, "min_bid": per_gpu * gpus * 0.6, "disk_space": 100.0,
            })
        bodies.append(json.dumps({"offers": offers}).encode())
    return bodies


def skypilot_bodies(n: int, rng: random.Random) -> list[bytes]:
    """n observations as catalogs of ROWS_PER_CATALOG rows (each row an on-demand and a spot price), shaped like
    the largest real catalog (AWS's): each instance type listed once per region and availability zone, the
    on-demand price set per region, the spot price per zone, GpuInfo a Python-repr dict. INSTANCE_TYPES types x
    REGIONS regions x ZONES zones make one catalog."""
    bodies = []
    rows_wanted = n // 2
    types = [(pattern.format(n=gpus) + f"_v{variant}", name, gpus, ram)
             for variant in range(INSTANCE_TYPES // (len(SKYPILOT_GPUS) * 4) + 1)
             for pattern, name, ram in SKYPILOT_GPUS for gpus in (1, 2, 4, 8)][:INSTANCE_TYPES]
    for start in range(0, rows_wanted, ROWS_PER_CATALOG):
        buffer = io.StringIO()
        out = csv.writer(buffer, lineterminator="\n")
        out.writerow(["InstanceType", "AcceleratorName", "AcceleratorCount", "vCPUs", "MemoryGiB", "GpuInfo", "Price",
                      "SpotPrice", "Region", "AvailabilityZone", "Arch"])
        written = 0
        wanted = min(ROWS_PER_CATALOG, rows_wanted - start)
        for instance_type, name, gpus, ram in types:
            per_gpu = Decimal(str(round(rng.uniform(0.5, 4.0), 4)))
            info = (f"{{'Gpus': [{{'Name': '{name}', 'Manufacturer': 'NVIDIA', 'Count': {gpus}, "
                    f"'MemoryInfo': {{'SizeInMiB': {ram}}}}}], 'TotalGpuMemoryInMiB': {ram * gpus}}}")
            for region in range(REGIONS):
                price = per_gpu * gpus * Decimal(100 + region) / 100
                for zone in range(ZONES):
                    if written == wanted:
                        break
                    spot = (price * Decimal(str(round(rng.uniform(0.3, 0.7), 2)))).quantize(Decimal("0.000001"))
                    out.writerow([instance_type, name, f"{gpus}.0", 8 * gpus, 64 * gpus, info, price, spot,
                                  f"region-{region}", f"region-{region}-az{zone}", "x86_64"])
                    written += 1
        bodies.append(buffer.getvalue().encode())
    return bodies


def plain_read(source: str, bodies: list[bytes]) -> tuple[float, int]:
    start = time.perf_counter()
    count = 0
    for body in bodies:
        if source == "vast":
            count += len(json.loads(body, parse_float=Decimal)["offers"])
        else:
            count += sum(1 for _ in csv.reader(io.StringIO(body.decode()))) - 1
    return time.perf_counter() - start, count


def bodies_of(source: str, n: int, rng: random.Random, per_body: int | None = None) -> list[bytes]:
    """n observations of the source: in its largest bodies, or (per_body) as successive snapshots of one market
    of per_body observations, each generated afresh (offer ids and catalog rows repeat: a generator numbers its
    offers from the same id and walks the same instance types, regions and zones)."""
    make = vast_bodies if source == "vast" else skypilot_bodies
    if per_body is None:
        return make(n, rng)
    sizes = [per_body] * (n // per_body) + ([n % per_body] if n % per_body else [])
    return [body for size in sizes for body in make(size, random.Random(rng.getrandbits(64)))]


def store_bodies(con, store: RawStore, source: str, bodies: list[bytes], first: datetime, label: str,
                 stream: bool = False) -> None:
    """Store the bodies as fetched from `first` on: a second apart, SkyPilot's each another cloud's catalog; or
    (stream) SNAPSHOTS_APART apart, all of one provider."""
    for number, body in enumerate(bodies):
        provider = "vast" if source == "vast" else "cloud0" if stream else f"cloud{number}"
        apart = SNAPSHOTS_APART if stream else timedelta(seconds=1)
        request = FetchRequest(source, f"https://bench.test/{source}/{label}/{number}", provider)
        collect.store_fetched(con, store, request, FetchedBody(request.url, 200, "application/octet-stream", body,
                                                               first + number * apart))


def timed_load(source: str, bodies: list[bytes], history: int, seed: int,
               stream: bool = False) -> tuple[float, int, int]:
    """(seconds, observations loaded, bodies failed) of one parse_pending over the bodies in a fresh warehouse."""
    with tempfile.TemporaryDirectory() as folder:
        warehouse = Warehouse(Path(folder) / "wh").ensure()
        con = connect(warehouse)
        store = RawStore(warehouse.root)
        if history:  # earlier bodies of the same shape, a day apart, loaded before the timed ones
            for day, chunk in enumerate(range(0, history, 100_000)):
                earlier = bodies_of(source, min(100_000, history - chunk), random.Random(seed + 1 + day))
                store_bodies(con, store, source, earlier, WHEN - timedelta(days=day + 1), f"history{day}")
                load.parse_pending(con, store)
        store_bodies(con, store, source, bodies, WHEN, "timed", stream)
        start = time.perf_counter()
        report = load.parse_pending(con, store)
        seconds = time.perf_counter() - start
        [(n_obs,)] = con.execute("select count(*) from observations where observed_at >= $t",
                                 {"t": WHEN.replace(tzinfo=None)}).fetchall()
        con.close()
    return seconds, n_obs, len(report.failed)


def run(source: str, n: int, history: int = 0, repeat: int = 3, seed: int = 7, per_body: int | None = None) -> None:
    """The median of `repeat` runs (each in a fresh warehouse), with the slowest and fastest."""
    bodies = bodies_of(source, n, random.Random(seed), per_body)
    runs = [timed_load(source, bodies, history, seed, stream=per_body is not None) for _ in range(repeat)]
    seconds = sorted(r[0] for r in runs)
    n_obs, failures = runs[0][1], max(r[2] for r in runs)
    median = statistics.median(seconds)
    plain_seconds, records = plain_read(source, bodies)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    megabytes = sum(len(b) for b in bodies) / 1e6
    failed = f", {failures} failed" if failures else ""
    held = f"  (after {history:,} already held)" if history else ""
    spread = f" ({n_obs / seconds[-1]:,.0f} to {n_obs / seconds[0]:,.0f} over {repeat} runs)" if repeat > 1 else ""
    print(f"{source:<8} {n:>9,} asked  {n_obs:>9,} observations  {megabytes:8.1f} MB in {len(bodies)} bodies  "
          f"parse+load {median:7.2f} s = {n_obs / median:>9,.0f} obs/s{spread}  plain read of {records:,} records "
          f"{plain_seconds:6.2f} s  peak RSS {peak_mb:,.0f} MB{failed}{held}", flush=True)


def warm_up() -> None:
    """A small body of each source (over load.COLUMNAR_MIN_BYTES) through the same path, not timed: the first large body of a process would
    otherwise also pay for importing the columnar readers' libraries and reading the catalog (some 0.1 s, once
    per process, whatever the size), which is no rate of parsing."""
    with tempfile.TemporaryDirectory() as folder:
        warehouse = Warehouse(Path(folder) / "wh").ensure()
        con = connect(warehouse)
        store = RawStore(warehouse.root)
        for source in ("vast", "skypilot"):
            store_bodies(con, store, source, bodies_of(source, 4_000, random.Random(1)), WHEN, "warm-up")
        load.parse_pending(con, store)
        con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--source", choices=("vast", "skypilot", "both"), default="both")
    parser.add_argument("--repeat", type=int, default=3, metavar="R",
                        help="runs of each size, each in a fresh warehouse: the median is printed, with the range")
    parser.add_argument("--history", type=int, default=0, metavar="N",
                        help="observations already in the warehouse before the timed bodies load")
    parser.add_argument("--per-body", type=int, default=None, metavar="N",
                        help="successive snapshots of one market, N observations each (even, at most 100,000)")
    args = parser.parse_args()
    if args.per_body is not None and not (2 <= args.per_body <= 2 * ROWS_PER_CATALOG and args.per_body % 2 == 0):
        parser.error("--per-body takes an even number of observations from 2 to 100,000 (each offer or row gives "
                     "two; a larger snapshot would be split into several bodies)")
    warm_up()
    for source in (("vast", "skypilot") if args.source == "both" else (args.source,)):
        for n in args.sizes:
            run(source, n, args.history, args.repeat, per_body=args.per_body)


if __name__ == "__main__":
    main()
