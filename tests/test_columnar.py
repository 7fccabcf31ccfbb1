"""The two parse paths of a large body give exactly the same rows (pipeline.columnar, issue 11 item 8).

A body of a source with a columnar path (`parse_columns`) is parsed by it, and checked by
pipeline.normalise.check_columns, when it is at least pipeline.load.COLUMNAR_MIN_BYTES long; every other body by the
readable path (source.parse and pipeline.normalise.parse_body). Nothing may depend on which path a body took: the same
observations (every column, the attributes' JSON text included), the same rejections (row key, reason, detail, excerpt),
or the same exception (type and message). This file holds them to it on

1. every body of the corpus of each source with `parse_columns` (real files in ../shared/data/real, the project's
   fixtures, the demo recordings, the hostile bodies): the source's two paths, end to end;
2. every body of every source (fixtures, demo recordings, hostile bodies): the shared checks alone, parse_body's against
   check_columns' over the same parsed rows, with and without exchange rates;
3. synthetic marketplaces of a few thousand offers, made by a seeded random.Random with a share of unusual offers;
4. the loader: the same bodies loaded once through each path give identical warehouse tables;
5. the switch itself: a body from COLUMNAR_MIN_BYTES on takes parse_columns, a smaller one the readable path, and the
   rows loaded are those the body was built with.

No expected value here is an output of the code: the comparisons between the two paths are the point, and the one count
asserted (test 5) is worked out from how its body is built.
"""
from __future__ import annotations

import copy
import csv
import io
import json
import random
import tomllib
from collections import Counter
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

import pytest

from pipeline import collect, load
from pipeline.catalog import default_catalog
from pipeline.columnar import PARSED_SCHEMA, ColumnarResult, frame_from_observations
from pipeline.http import FetchedBody
from pipeline.normalise import FxTable, check_columns, parse_body
from pipeline.paths import Warehouse
from pipeline.rawstore import RawStore
from pipeline.records import FxRate, ParseContext
from pipeline.sources import SOURCES, FetchRequest, get_source, skypilot, vast
from pipeline.sources.ecb_fx import fx_table_from_file
from pipeline.warehouse import connect

TESTS = Path(__file__).resolve().parent
FIXTURES = TESTS / "fixtures"
DEMO = FIXTURES / "demo"
HOSTILE = TESTS / "hostile"
# ../shared beside the repository (as tests/conftest.py's SHARED_REAL): absent in a user's fresh clone.
REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
OBSERVED_AT = datetime(2026, 11, 20, 6, 0, tzinfo=timezone.utc)

# The sources that have a columnar path: every test below covers each of them, and one added later, unchanged.
COLUMNAR = sorted(source_id for source_id, module in SOURCES.items() if hasattr(module, "parse_columns"))


def test_vast_and_skypilot_have_a_columnar_path():
    assert {"vast", "skypilot"} <= set(COLUMNAR)


# ============================================================================================ the corpus


@dataclass(frozen=True)
class Body:
    label: str  # names the body in a test id and a failure
    source: str
    path: Path
    ctx: ParseContext
    fx_file: Path | None = None  # an ECB rates file a hostile case converts with

    @property
    def raw(self) -> bytes:
        return self.path.read_bytes()


def _context(source_id: str, path: Path, observed_at: datetime, provider: str | None = None,
             url: str | None = None) -> ParseContext:
    """The context `tsi parse` gives a saved body (source.context_for_file), with the recorded URL and provider when
    they are known."""
    module = get_source(source_id)
    try:
        ctx = module.context_for_file(path, observed_at)
    except ValueError:  # a file name that does not name its provider: the caller gives it
        ctx = ParseContext(source=source_id, observed_at=observed_at, url=path.resolve().as_uri())
    return replace(ctx, url=url or ctx.url, provider=provider or ctx.provider, snapshot_id="columnar-test")


def _rel(path: Path) -> str:
    for root, name in ((REAL, "real"), (TESTS, "tests")):
        try:
            return f"{name}/{path.relative_to(root).as_posix()}"
        except ValueError:
            continue
    return path.as_posix()


# The project's fixture files of each source (tests/test_<source>.py read them so): folder, file patterns.
FIXTURE_FILES: dict[str, tuple[str, tuple[str, ...]]] = {
    "azure": ("azure", ("*.json",)),
    "deepseek_pricing": ("first_party", ("deepseek_pricing*.html",)),
    "ecb_fx": ("ecb_fx", ("*.xml",)),
    "html_tables": ("html_tables", ("*.html",)),
    "litellm": ("litellm", ("*.json",)),
    "llm_prices": ("llm_prices", ("*.json",)),
    "openrouter": ("openrouter", ("models_*.json", "not_json.html")),
    "openrouter_endpoints": ("openrouter", ("endpoints_*.json", "not_json.html")),
    "skypilot": ("skypilot", ("*.csv",)),
    "vast": ("vast", ("*.json",)),
}


def fixture_bodies(source_id: str) -> list[Body]:
    folder, patterns = FIXTURE_FILES[source_id]
    paths = sorted({p for pattern in patterns for p in (FIXTURES / folder).glob(pattern)})
    return [Body(f"{source_id}:{_rel(p)}", source_id, p, _context(source_id, p, OBSERVED_AT)) for p in paths]


@lru_cache(maxsize=1)
def _requests_by_url() -> dict[str, FetchRequest]:
    return {request.url: request for request in collect.plan_requests()}


def demo_bodies(source_id: str) -> list[Body]:
    """Every recorded 200 answer of every demo day that a request of this source fetches (a page the requests do not
    list, as Azure's second page, belongs to its manifest's source)."""
    bodies = []
    for day in sorted(p for p in DEMO.iterdir() if p.is_dir()):
        when = datetime.combine(date.fromisoformat(day.name), datetime.min.time(), timezone.utc) + timedelta(hours=6)
        for manifest in sorted(day.glob("manifest-*.toml")):
            for response in tomllib.loads(manifest.read_text(encoding="utf-8")).get("response", []):
                if response.get("status", 200) != 200:
                    continue
                request = _requests_by_url().get(response["url"])
                owner = request.source if request else manifest.stem.removeprefix("manifest-")
                if owner != source_id:
                    continue
                path = day / response["file"]
                ctx = _context(source_id, path, when, provider=request.provider if request else None,
                               url=response["url"])
                bodies.append(Body(f"{source_id}:{_rel(path)}", source_id, path, ctx))
    return bodies


def hostile_bodies(source_id: str) -> list[Body]:
    """The hostile cases of this source (tests/hostile/*/cases.toml), with their context as tests/test_hostile.py
    gives it."""
    bodies = []
    for listing in sorted(HOSTILE.glob("*/cases.toml")):
        for case in tomllib.loads(listing.read_text(encoding="utf-8"))["case"]:
            if case["source"] != source_id:
                continue
            path = listing.parent / case["file"]
            if case.get("provider"):
                ctx = ParseContext(source=source_id, observed_at=OBSERVED_AT, url=path.resolve().as_uri(),
                                   provider=case["provider"], snapshot_id="columnar-test")
            else:
                ctx = _context(source_id, path, OBSERVED_AT)
            fx_file = listing.parent / case["fx"] if case.get("fx") else None
            bodies.append(Body(f"{source_id}:{_rel(path)}", source_id, path, ctx, fx_file))
    return bodies


# The real files of ../shared/data/real per source with a columnar path (globbed, so that files added later count).
REAL_PATTERNS: dict[str, tuple[str, str]] = {
    "vast": ("vast_offers", "**/*.json"),
    "skypilot": ("skypilot_catalog", "**/*.csv"),
}


def real_bodies(source_id: str) -> list[Body]:
    if source_id not in REAL_PATTERNS or not REAL.is_dir():
        return []
    folder, pattern = REAL_PATTERNS[source_id]
    paths = sorted((REAL / folder).glob(pattern))
    return [Body(f"{source_id}:{_rel(p)}", source_id, p, _context(source_id, p, OBSERVED_AT)) for p in paths]


def project_bodies(source_id: str) -> list[Body]:
    return fixture_bodies(source_id) + demo_bodies(source_id) + hostile_bodies(source_id)


def test_every_source_and_fixture_file_is_mapped():
    assert set(FIXTURE_FILES) == set(SOURCES), "map the fixtures of a new source in FIXTURE_FILES"
    for folder in {folder for folder, _ in FIXTURE_FILES.values()}:
        mapped = {b.path for s in FIXTURE_FILES if FIXTURE_FILES[s][0] == folder for b in fixture_bodies(s)}
        assert mapped == {p for p in (FIXTURES / folder).iterdir() if p.is_file()}, folder


# ============================================================================================ comparing the paths

CATALOG = default_catalog()


def _rejection_tuples(rejections) -> Counter:
    return Counter((r.row_key, r.reason, r.detail, r.raw_excerpt) for r in rejections)


def _fx_tuples(rates) -> Counter:
    return Counter((r.rate_date, r.currency, r.usd_per_unit, r.units_per_eur) for r in rates)


def differences(readable, columnar, columnar_rejections=(), columnar_fx=()) -> list[str]:
    """What differs between parse_body's result (or exception) and the columnar path's checked frame and rejections
    (or exception); empty when they agree."""
    if isinstance(readable, BaseException) or isinstance(columnar, BaseException):
        if type(readable) is type(columnar) and str(readable) == str(columnar):
            return []
        return [f"readable gave {readable!r:.600}, columnar {columnar!r:.600}"]
    found = []
    expected = frame_from_observations(readable.observations).drop("_seq")
    if dict(columnar.schema) != dict(expected.schema):
        found.append(f"columnar frame schema {dict(columnar.schema)} is not {dict(expected.schema)}")
    elif not expected.sort("row_key", maintain_order=True).equals(columnar.sort("row_key", maintain_order=True)):
        a = {row["row_key"]: row for row in expected.iter_rows(named=True)}
        b = {row["row_key"]: row for row in columnar.iter_rows(named=True)}
        if len(a) != expected.height or len(b) != columnar.height:
            found.append(f"row keys repeat among kept rows: readable {expected.height} rows / {len(a)} keys, "
                         f"columnar {columnar.height} rows / {len(b)} keys")
        only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
        if only_a or only_b:
            found.append(f"kept only by the readable path: {only_a[:5]} ({len(only_a)}); "
                         f"only by the columnar one: {only_b[:5]} ({len(only_b)})")
        shown = 0
        for key in sorted(set(a) & set(b)):
            columns = [c for c in a[key] if a[key][c] != b[key][c] or type(a[key][c]) is not type(b[key][c])]
            if columns and shown < 5:
                shown += 1
                found.append(f"row {key}: " + "; ".join(f"{c} readable {a[key][c]!r} columnar {b[key][c]!r}"
                                                       for c in columns))
        if not found:
            found.append("the kept frames differ (polars .equals), though no row differs by value")
    ra, rb = _rejection_tuples(readable.rejections), _rejection_tuples(columnar_rejections)
    if ra != rb:
        readable_only, columnar_only = ra - rb, rb - ra
        found.append(f"rejections only of the readable path: {sorted(readable_only.elements())[:4]} "
                     f"({sum(readable_only.values())}); only of the columnar one: "
                     f"{sorted(columnar_only.elements())[:4]} ({sum(columnar_only.values())})")
    fa, fb = _fx_tuples(readable.fx_rates), _fx_tuples(columnar_fx)
    if fa != fb:
        found.append(f"FX rates differ: readable {sorted(fa.elements(), key=repr)[:4]}, "
                     f"columnar {sorted(fb.elements(), key=repr)[:4]}")
    return found


def compare_paths(module, raw: bytes, ctx: ParseContext, fx=None) -> list[str]:
    """parse_body against parse_columns + check_columns, end to end."""
    try:
        readable = parse_body(module, raw, ctx, CATALOG, fx=fx)
    except Exception as exc:  # noqa: BLE001 - the other path must fail alike
        readable = exc
    try:
        parsed = module.parse_columns(raw, ctx, CATALOG)
        assert isinstance(parsed, ColumnarResult)
        assert dict(parsed.observations.schema) == PARSED_SCHEMA
        kept, rejections = check_columns(parsed, ctx, CATALOG, fx)
    except AssertionError:
        raise
    except Exception as exc:  # noqa: BLE001
        return differences(readable, exc)
    return differences(readable, kept, rejections, parsed.fx_rates)


def _fx_tables(body: Body) -> list[tuple[str, object]]:
    """The exchange rates a comparison runs with: none (non-USD rows are missing_fx_rate), rates for the observation
    date (so that CNY and other rows convert), and the hostile case's own rates file."""
    on = body.ctx.observed_at.date()
    rates = []
    for day in (on, on - timedelta(days=1)):
        rates += [
            FxRate(day, "CNY", Decimal("0.14"), None),
            FxRate(day, "EUR", Decimal("1.1580"), Decimal("1")),
            FxRate(day, "GBP", Decimal("1.27"), None),
            FxRate(day, "HKD", Decimal("0.1285"), None),
            FxRate(day, "JPY", Decimal("0.0066"), None),
        ]
    tables: list[tuple[str, object]] = [("no rates", None), ("rates of the day", FxTable(rates))]
    if body.fx_file is not None:
        tables.append((body.fx_file.name, fx_table_from_file(body.fx_file)))
    return tables


def _assert_same(found: list[str], body_label: str) -> None:
    assert not found, f"{body_label}: the two paths differ:\n  " + "\n  ".join(found)


# ============================================================================================ 1. corpus, end to end

CORPUS = [body for source_id in COLUMNAR for body in project_bodies(source_id)]
REAL_CORPUS = [body for source_id in COLUMNAR for body in real_bodies(source_id)]


def test_the_corpus_of_each_columnar_source_is_there():
    for source_id in COLUMNAR:
        bodies = project_bodies(source_id)
        kinds = Counter(body.label.split(":", 1)[1].split("/")[1] for body in bodies)
        assert kinds["fixtures"] > 0 and kinds["hostile"] > 0, (source_id, kinds)
        assert sum(1 for b in bodies if "/demo/" in b.label) > 0, source_id


@pytest.mark.parametrize("body", CORPUS, ids=lambda b: b.label)
def test_columnar_path_equals_readable_path_on_the_corpus(body):
    module = get_source(body.source)
    found = []
    for name, fx in [("no rates", None)] + ([(body.fx_file.name, fx_table_from_file(body.fx_file))]
                                            if body.fx_file else []):
        found += [f"({name}) {difference}" for difference in compare_paths(module, body.raw, body.ctx, fx)]
    _assert_same(found, body.label)


@pytest.mark.parametrize(
    "body",
    REAL_CORPUS if REAL.is_dir() else [None],
    ids=lambda b: b.label if b is not None else "shared-real-absent",
)
def test_columnar_path_equals_readable_path_on_the_real_files(body):
    if body is None:
        pytest.skip(f"{REAL} is absent (real data is only beside the repo in development and CI)")
    _assert_same(compare_paths(get_source(body.source), body.raw, body.ctx), body.label)


def test_the_real_vast_files_are_there():
    if not REAL.is_dir():
        pytest.skip(f"{REAL} is absent (real data is only beside the repo in development and CI)")
    assert real_bodies("vast"), "no ../shared/data/real/vast_offers/*.json"
    assert real_bodies("skypilot") or "skypilot" not in COLUMNAR


# ======================================================================================== 2. the shared checks, every source

ALL_BODIES = [body for source_id in sorted(SOURCES) for body in project_bodies(source_id)]


@lru_cache(maxsize=None)
def _parsed(body: Body):
    """source.parse of the body, or None when the body does not parse (not compared by the shared-checks test)."""
    try:
        return get_source(body.source).parse(body.raw, body.ctx, catalog=CATALOG)
    except Exception:  # noqa: BLE001
        return None


@pytest.mark.parametrize("body", ALL_BODIES, ids=lambda b: b.label)
def test_check_columns_equals_parse_body_on_the_same_parse(body):
    parsed = _parsed(body)
    if parsed is None:
        return  # a body refused whole has no rows to check: test_hostile.py holds it to its error
    module = get_source(body.source)
    found = []
    for name, fx in _fx_tables(body):
        try:
            readable = parse_body(module, body.raw, body.ctx, CATALOG, fx=fx)
        except Exception as exc:  # noqa: BLE001
            readable = exc
        columnar = ColumnarResult(frame_from_observations(parsed.observations), list(parsed.rejections),
                                  list(parsed.fx_rates))
        try:
            kept, rejections = check_columns(columnar, body.ctx, CATALOG, fx)
        except Exception as exc:  # noqa: BLE001
            differing = differences(readable, exc)
        else:
            differing = differences(readable, kept, rejections, parsed.fx_rates)
        found += [f"({name}) {difference}" for difference in differing]
    _assert_same(found, body.label)


@pytest.mark.parametrize("source_id", sorted(SOURCES))
def test_the_shared_checks_are_compared_on_bodies_of_every_source(source_id):
    bodies = [b for b in ALL_BODIES if b.source == source_id]
    compared = [b for b in bodies if _parsed(b) is not None]
    assert len(compared) >= 2, f"{source_id}: only {len(compared)} of {len(bodies)} bodies parse"
    assert any(_parsed(b).observations or _parsed(b).fx_rates for b in compared), f"{source_id}: no rows at all"


def test_the_shared_checks_see_converted_and_unconverted_rows():
    """The FX comparisons are not vacuous: some compared body has non-USD rows (deepseek_pricing's CNY page)."""
    currencies = {o.original_currency for b in ALL_BODIES if _parsed(b) is not None for o in _parsed(b).observations}
    assert "CNY" in currencies


# ============================================================================================ 3. synthetic marketplaces


class Raw(str):
    """A JSON value written as this exact text (a number as a source might spell it)."""


class Pairs(list):
    """A JSON object as (key, value) pairs: a key may repeat."""


def to_json(value) -> str:
    """JSON text, with numbers as written (Raw), floats as Python writes them (NaN, Infinity as json.dumps does),
    non-ASCII strings as UTF-8, and objects that may repeat a key (Pairs)."""
    if isinstance(value, Raw):
        return str(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return int.__repr__(value)
    if isinstance(value, float):
        return json.dumps(value)
    if isinstance(value, str):
        text = json.dumps(value, ensure_ascii=False)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: only as an escape
            text = json.dumps(value)
        return text
    if isinstance(value, Pairs):
        return "{" + ", ".join(f"{to_json(k)}: {to_json(v)}" for k, v in value) + "}"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{to_json(k)}: {to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(to_json(v) for v in value) + "]"
    raise TypeError(type(value))


# (gpu_name, gpu_ram MB as nvidia-smi reports it, per-GPU USD range): mostly cards the catalog maps, a few it does not.
VAST_GPUS = [
    ("H100 SXM", 81559, (1.2, 3.0)), ("H100 PCIE", 81559, (1.0, 2.5)), ("H100 NVL", 95830, (1.5, 3.0)),
    ("H200", 143771, (2.0, 4.0)), ("A100 SXM4", 81920, (0.6, 1.6)), ("A100 PCIE", 40960, (0.4, 1.2)),
    ("A100 SXM4", 39936, (0.4, 1.2)), ("RTX 4090", 24564, (0.2, 0.7)), ("RTX 3090", 24576, (0.1, 0.4)),
    ("RTX 4070S Ti", 16376, (0.1, 0.3)), ("L40S", 46068, (0.4, 1.2)), ("L4", 23034, (0.2, 0.5)),
    ("A40", 46068, (0.2, 0.6)), ("Tesla V100", 16160, (0.1, 0.4)), ("Tesla V100", 32768, (0.1, 0.5)),
    ("RTX A6000", 49140, (0.3, 0.8)), ("RTX 5090", 32607, (0.3, 0.9)), ("B200", 183359, (3.0, 6.0)),
    ("GTX 1080 Ti", 11264, (0.05, 0.15)), ("Radeon VII", 16384, (0.1, 0.3)),
]
GEOLOCATIONS = ["Texas, US", "Oregon, US", "Bulgaria, BG", "Québec, CA", "東京, JP", "São Paulo, BR", "Ontario, CA",
                None]


def usual_offer(rng: random.Random, offer_id: int, integer_prices: bool = False, with_ram: bool = True) -> dict:
    """One offer shaped like `vastai search offers` gives it (tests/benchmarks/bench_import.py's vast_bodies, with more
    of the kept fields)."""
    name, ram, (low, high) = rng.choice(VAST_GPUS)
    gpus = rng.choice((1, 1, 1, 2, 2, 4, 8, 8, 10, 16))
    per_gpu = rng.uniform(low, high)
    dph = rng.randint(1, 40) if integer_prices else per_gpu * gpus
    bid = rng.choice((0, rng.randint(1, 20))) if integer_prices else rng.choice((0, dph * rng.uniform(0.3, 0.8)))
    offer = {
        "id": offer_id, "machine_id": offer_id % 50_000, "host_id": offer_id % 9_000, "gpu_name": name,
        "num_gpus": gpus, "gpu_frac": rng.choice((1.0, 1.0, 0.5, 0.25)), "rentable": True, "rented": False,
        "verification": rng.choice(("verified", "unverified", "deverified")), "external": False,
        "reliability2": round(rng.uniform(0.9, 1.0), 7), "geolocation": rng.choice(GEOLOCATIONS),
        "hosting_type": rng.choice((0, 1)), "dph_base": dph, "storage_total_cost": rng.uniform(0, 0.05),
        "dph_total": dph, "discounted_dph_total": dph, "min_bid": bid, "is_bid": False,
        "cuda_max_good": rng.choice((12.2, 12.8, 13.0)), "compute_cap": rng.choice((800, 860, 890, 900)),
        "cpu_cores_effective": float(rng.choice((8, 16, 32))), "cpu_ram": rng.choice((64_000, 515_000)),
        "inet_down": round(rng.uniform(100, 10_000), 1), "inet_up": round(rng.uniform(100, 10_000), 1),
        "start_date": 1_763_000_000.0 + rng.randint(0, 10_000), "end_date": None, "disk_space": 100.0,
        "search": {"gpuCostPerHour": dph, "totalHour": dph, "discountTotalHour": 0},
    }
    if with_ram:
        offer["gpu_ram"] = ram
        offer["gpu_total_ram"] = ram * gpus
    if rng.random() < 0.2:
        del offer["min_bid"]  # an offer without a bid at all: no interruptible price
    return offer


HUGE = 10 ** 100
# What makes an offer unusual: ("set", key, value), ("del", key) or ("replace", value) for a non-object offer.
UNUSUAL: list[tuple] = [
    # dph_total of every wrong type and size
    *[("set", "dph_total", v) for v in (
        "1.5", True, False, None, {"amount": 1.5}, [1.5], -1.25, 0, Raw("0.0"), Raw("-0.0"), float("nan"),
        float("inf"), float("-inf"), Raw("1e20"), Raw("1E+9"), Raw("1000000000.0000000001"), Raw("999999999.99"),
        HUGE, -HUGE, Raw("1e-25"), Raw("0.00000000001"), Raw("0.00004"), 1.2345678901234567e-05,
        Raw("0.1234567890123456789012345678901234567"), Raw("12.3456789012345678901234"), Raw("4000"),
        Raw("4000.0000000000000000001"), 2, Raw("2.50"), Raw("2E0"), Raw("-1e-30"),
    )],
    ("del", "dph_total"),
    # min_bid: negative, zero, absent, null and the rest
    *[("set", "min_bid", v) for v in (
        -0.5, 0, Raw("0.000"), Raw("-0.0"), None, "0.3", True, float("nan"), Raw("1e20"), Raw("1e-25"), HUGE,
        {"x": 1}, [0.3], Raw("0.00004"), 1.2345678901234567e-05, Raw("4000"), 3,
    )],
    ("del", "min_bid"),
    # num_gpus
    *[("set", "num_gpus", v) for v in (
        0, 65, 64, "2", 8.0, Raw("8.00"), Raw("8e0"), Raw("1e1"), True, False, None, -1, 0.5, Raw("2.5"), HUGE,
        {"n": 2}, [2], 1, 128, 10 ** 9,
    )],
    ("del", "num_gpus"),
    # gpu_name missing, blank, unknown, odd
    *[("set", "gpu_name", v) for v in (
        "", "   ", "Voodoo 5", None, 4090, True, "h100 sxm", " H100 SXM ", "H100", "A100", "=HYPERLINK(\"x\")",
        "RTX 4090\u00a0", "Ｈ100 SXM", ["H100 SXM"], "H100 SXM" * 40,
    )],
    ("del", "gpu_name"),
    # gpu_ram absent, odd, NaN
    *[("set", "gpu_ram", v) for v in (
        0, -100, 12345, 39936, 40536, 16160, Raw("81559.5"), "81920", float("nan"), Raw("1e20"), True, None, HUGE,
        {"mb": 1}, 81920.0, Raw("1e-3"), 1,
    )],
    ("del", "gpu_ram"),
    # the offer id: a string, missing, a bool and the rest
    *[("set", "id", v) for v in (
        "abc", " 777 ", "", "   ", True, False, None, 1.5, 0, -5, HUGE, "id-東京", {"id": 1}, ["x"], 10.0,
    )],
    ("del", "id"),
    # rentable
    *[("set", "rentable", v) for v in (False, "false", 0, None, "no")],
    ("del", "rentable"),
    # kept fields holding a nested object, a bool, non-ASCII text, a huge integer, NaN
    *[("set", "geolocation", v) for v in (
        {"city": "Austin"}, True, "Québec, CA", "東京", None, 42, "😀 \"quoted\" \\ back\nnew\tline", "\ud800",
        ["Texas", "US"], "",
    )],
    *[("set", "machine_id", v) for v in (True, HUGE, {"a": [1, {"b": 2}]}, [1, 2], "東京", float("nan"), -0.0)],
    *[("set", "host_id", v) for v in (float("nan"), float("inf"), Raw("1e400"), False, "", None)],
    *[("set", "verification", v) for v in (False, "✓ vérifié", {"level": 2}, 3)],
    *[("set", "reliability2", v) for v in (Raw("0.99999999999999999999999"), Raw("1E-7"), "0.99")],
    *[("set", "gpu_frac", v) for v in (Raw("1e-30"), 0, True, "half")],
    *[("set", "external", v) for v in (True, None, "yes")],
    *[("set", "is_bid", v) for v in (True, 1)],
    ("set", "start_date", Raw("1e400")), ("set", "end_date", HUGE), ("set", "cuda_max_good", "12.8"),
    ("set", "hosting_type", Raw("-0")), ("set", "compute_cap", Raw("9.0E+2")), ("set", "cpu_ram", -HUGE),
    ("set", "gpu_total_ram", {"total": 1}), ("set", "dph_base", float("nan")), ("set", "inet_down", HUGE),
    ("set", "discounted_dph_total", "cheap"), ("set", "storage_total_cost", Raw("-0.0")),
    # not an object at all
    *[("replace", v) for v in ([1, 2], "offer", None, 42, True, {}, [], Raw("1.5"), [{"id": 1}])],
]


# One of the unusual values fails a whole body on both paths (a lone surrogate in a string is no text: the JSON reader
# refuses the body): the bodies the loader test must see loaded are made without it.
BODY_FAILING = [("set", "geolocation", "\ud800")]
LOADABLE_UNUSUAL = [change for change in UNUSUAL if change not in BODY_FAILING]


def _not_finite(value) -> bool:
    if isinstance(value, float):
        return value != value or value in (float("inf"), float("-inf"))
    if isinstance(value, dict):
        return any(map(_not_finite, value.values()))
    if isinstance(value, (list, tuple)):
        return any(map(_not_finite, value))
    return False


# NaN and Infinity are no JSON: msgspec refuses such a body, which then takes the standard library's reader. The
# bodies made without them take the fast reader (jsonbody.fast_records), with their unusual offers one by one.
FAST_READ_UNUSUAL = [change for change in LOADABLE_UNUSUAL if not _not_finite(change)]


def _apply(offer: dict, change: tuple):
    kind = change[0]
    if kind == "replace":
        return copy.deepcopy(change[1])
    changed = dict(offer)
    if kind == "del":
        changed.pop(change[1], None)
    else:
        changed[change[1]] = copy.deepcopy(change[2])
    return changed


def vast_offers(seed: int, n: int, unusual_share: float, integer_prices: bool = False,
                with_ram: bool = True, changes: list[tuple] = UNUSUAL) -> list:
    """n offers (and some copies), a share of them unusual; ids 30,000,000 on, some copies of an offer repeating its
    id identical, some with another price, another bid, another host, or the id as a string."""
    rng = random.Random(seed)
    offers: list = []
    for k in range(n):
        offer = usual_offer(rng, 30_000_000 + seed * 100_000 + k, integer_prices, with_ram)
        if rng.random() < unusual_share:  # one change, sometimes two or three
            offer = _apply(offer, rng.choice(changes))
            while isinstance(offer, dict) and rng.random() < 0.3:
                offer = _apply(offer, rng.choice(changes))
        offers.append(offer)
    originals = [o for o in offers if isinstance(o, dict) and "id" in o]
    for _ in range(max(4, n // 60)):
        original = rng.choice(originals)
        twin = copy.deepcopy(original)
        variant = rng.choice(("identical", "identical", "price", "bid", "host", "string id", "padded id"))
        if variant == "price":
            twin["dph_total"] = Raw("0.2") if twin.get("dph_total") != Raw("0.2") else Raw("2.0")
        elif variant == "bid":
            twin["min_bid"] = Raw("0.1") if twin.get("min_bid") != Raw("0.1") else Raw("1.0")
        elif variant == "host":
            twin["host_id"] = "another host"  # an attribute only: the copy is a duplicate, not a conflict
        elif variant == "string id" and type(twin["id"]) is int:
            twin["id"] = str(twin["id"])
        elif variant == "padded id" and type(twin["id"]) is int:
            twin["id"] = f"  {twin['id']} "
        offers.insert(rng.randrange(len(offers) + 1), twin)
        if rng.random() < 0.2:  # three copies
            offers.insert(rng.randrange(len(offers) + 1), copy.deepcopy(twin))
    return offers


def _body(offers, wrapped: bool = True) -> bytes:
    return to_json({"offers": offers} if wrapped else offers).encode("utf-8")


def _repeating_body(seed: int, n: int, repeated: Pairs) -> bytes:
    """A body of n offers, one of which (in the middle) is written with a repeated key."""
    offers = vast_offers(seed, n, 0.05)
    offers.insert(len(offers) // 2, repeated)
    return _body(offers)


def _offer_pairs(offer_id: int, *extra: tuple) -> Pairs:
    base = [("id", offer_id), ("gpu_name", "H100 SXM"), ("num_gpus", 8), ("gpu_ram", 81559),
            ("dph_total", Raw("16.0")), ("min_bid", Raw("8.0")), ("rentable", True), ("geolocation", "Texas, US")]
    return Pairs(base + list(extra))


def _bodies_of_one(offer: dict, n: int = 400) -> bytes:
    offers = vast_offers(900, n, 0.0)
    offers.insert(n // 3, offer)
    return _body(offers)


def _all_unknown() -> bytes:
    offers = vast_offers(7, 500, 0.0)
    for offer in offers:
        offer["gpu_name"] = "Voodoo 5"
    return _body(offers)


def _out_of_band() -> bytes:
    offers = vast_offers(8, 500, 0.0)
    for offer in offers:
        offer["dph_total"], offer["min_bid"] = Raw("4000"), Raw("0.000001")
    return _body(offers)


def _no_spot() -> bytes:
    rng = random.Random(9)
    offers = vast_offers(9, 1000, 0.0)
    for offer in offers:
        offer["min_bid"] = rng.choice((0, Raw("0.0"), None))
    return _body(offers)


# The synthetic Vast bodies, by name: a few thousand offers each.
VAST_SYNTHETIC = {
    "mixed-1": lambda: _body(vast_offers(1, 3000, 0.12)),
    "mixed-2": lambda: _body(vast_offers(2, 3000, 0.12)),
    "mixed-3-bare-list": lambda: _body(vast_offers(3, 2500, 0.12), wrapped=False),
    "clean-4": lambda: _body(vast_offers(4, 3000, 0.0)),
    "clean-integer-prices-no-ram-5": lambda: _body(vast_offers(5, 2000, 0.0, integer_prices=True, with_ram=False)),
    "unusual-only-6": lambda: _body(vast_offers(6, 700, 1.0)),
    "all-unknown-gpus": _all_unknown,
    "all-outside-the-band": _out_of_band,
    "no-spot-offer": _no_spot,
    "one-offer": lambda: _body([usual_offer(random.Random(10), 1)]),
    "one-non-object": lambda: _body(["offer"]),
    "repeated-key-conflicting": lambda: _repeating_body(11, 2000, _offer_pairs(123, ("dph_total", Raw("0.2")))),
    "repeated-key-harmless": lambda: _repeating_body(
        12, 2000, _offer_pairs(124, ("num_gpus", 8), ("gpu_name", "H100 SXM"))),
    "repeated-key-same-number-other-text": lambda: _repeating_body(
        13, 2000, _offer_pairs(125, ("dph_total", Raw("16.00")), ("num_gpus", Raw("8.0")),
                               ("dph_base", Raw("15.5")), ("dph_base", Raw("15.50")))),
    "repeated-key-nested": lambda: _repeating_body(
        14, 2000, _offer_pairs(126, ("search", Pairs([("totalHour", 1), ("totalHour", 2)])))),
    "repeated-id-key": lambda: _repeating_body(15, 2000, _offer_pairs(127, ("id", 128))),
    "mixed-loadable-21": lambda: _body(vast_offers(21, 3000, 0.12, changes=LOADABLE_UNUSUAL)),
    "unusual-only-loadable-22": lambda: _body(vast_offers(22, 700, 1.0, changes=LOADABLE_UNUSUAL)),
    "mixed-fast-read-31": lambda: _body(vast_offers(31, 3000, 0.12, changes=FAST_READ_UNUSUAL)),
    "mixed-fast-read-bare-list-32": lambda: _body(vast_offers(32, 2500, 0.12, changes=FAST_READ_UNUSUAL), wrapped=False),
    "unusual-only-fast-read-33": lambda: _body(vast_offers(33, 700, 1.0, changes=FAST_READ_UNUSUAL)),
    # one unusual offer among clean ones, to name each kind of difference on its own
    "one-offer-price-of-37-digits": lambda: _bodies_of_one(
        {**usual_offer(random.Random(18), 1), "dph_total": Raw("0.1234567890123456789012345678901234567")}),
    "one-offer-price-of-21-decimal-places": lambda: _bodies_of_one(
        {**usual_offer(random.Random(19), 1), "dph_total": Raw("0.000012345678901234568")}),
    "one-offer-price-of-minus-zero": lambda: _bodies_of_one(
        {**usual_offer(random.Random(20), 1), "dph_total": Raw("-0.0")}),
    "one-offer-lone-surrogate-in-geolocation": lambda: _bodies_of_one(
        {**usual_offer(random.Random(21), 1), "geolocation": "\ud800"}),
    "one-offer-with-non-ascii-id": lambda: _bodies_of_one({**usual_offer(random.Random(16), 1), "id": "東京-1"}),
    "one-offer-with-huge-kept-int": lambda: _bodies_of_one({**usual_offer(random.Random(17), 1), "machine_id": HUGE}),
}


@lru_cache(maxsize=None)
def vast_synthetic(name: str) -> bytes:
    return VAST_SYNTHETIC[name]()


@pytest.mark.parametrize("name", list(VAST_SYNTHETIC), ids=str)
def test_columnar_path_equals_readable_path_on_synthetic_vast_bodies(name):
    raw = vast_synthetic(name)
    ctx = _context("vast", Path(f"synthetic/vast_{name}.json"), OBSERVED_AT)
    _assert_same(compare_paths(vast, raw, ctx), f"synthetic vast body {name}")


@pytest.mark.parametrize("name", [name for name in VAST_SYNTHETIC if "fast-read" in name])
def test_the_fast_read_bodies_are_read_by_msgspec(name):
    """The comparison above covers the fast reader only on bodies it takes: these it must."""
    from pipeline.sources.jsonbody import fast_records
    from pipeline.sources.vast_columns import Offer

    assert fast_records(vast_synthetic(name), Offer, "offers") is not None


def test_the_synthetic_vast_bodies_exercise_both_paths_inside_parse_columns():
    """The mixed bodies hold, beside the usual offers, every kind of unusual one: the readable path finds in them every
    rejection reason a Vast body can give."""
    raw = vast_synthetic("mixed-1")
    ctx = _context("vast", Path("synthetic/vast_mixed-1.json"), OBSERVED_AT)
    reasons = Counter(r.reason for r in parse_body(vast, raw, ctx, CATALOG).rejections)
    for reason in ("malformed_offer", "unknown_instrument", "bad_gpu_count", "not_rentable", "bad_price",
                   "not_positive", "outside_sanity_band", "duplicate_row", "conflicting_duplicate"):
        assert reasons[reason] > 0, (reason, dict(reasons))
    repeated = vast_synthetic("repeated-key-conflicting")
    assert "duplicate_key" in {r.reason for r in parse_body(vast, repeated, ctx, CATALOG).rejections}


# --- SkyPilot --------------------------------------------------------------------------------------------------

SKYPILOT_HEADER = ["InstanceType", "AcceleratorName", "AcceleratorCount", "vCPUs", "MemoryGiB", "Price", "Region",
                   "GpuInfo", "SpotPrice", "AvailabilityZone"]


def _py_info(name: str, mib: int, count: int = 1, lower: bool = False) -> str:
    text = (f"{{'Gpus': [{{'Name': '{name}', 'Manufacturer': 'NVIDIA', 'Count': {count}, "
            f"'MemoryInfo': {{'SizeInMiB': {mib}}}}}], 'TotalGpuMemoryInMiB': {mib * count}}}")
    return text.lower() if lower else text


def _json_info(name: str, mib: int) -> str:
    return json.dumps({"Gpus": [{"Name": name, "Count": 1, "MemoryInfo": {"SizeInMiB": mib}}]})


# (InstanceType pattern, AcceleratorName, AcceleratorCount, GpuInfo) of the machines a synthetic cloud lists.
SKYPILOT_MACHINES = [
    ("gpu_8x_h100_sxm5", "H100", "8", _py_info("H100", 81920, 8)),
    ("gpu_1x_h100_sxm5", "H100", "1", _py_info("H100", 81559)),
    ("gpu_1x_h100_pcie", "H100", "1", _json_info("H100", 81920)),
    ("gpu_2x_h100_pcie", "H100", "2.0", ""),
    ("gpu_1x_a100", "A100", "1", _py_info("A100", 40960)),
    ("gpu_8x_a100_80gb_sxm4", "A100", "8", _py_info("A100", 655360, 8)),  # the instance total, as Vast writes it
    ("gpu_1x_a100_80gb", "A100-80GB", "1", "A100-80GB"),  # a bare name
    ("gpu_1x_a10", "A10", "1", _py_info("A10", 23028, lower=True)),
    ("gpu_4x_v100", "V100", "4", _py_info("V100", 16384, 4)),
    ("gpu_1x_v100_32gb", "V100", "1", "{'Gpus': [{'Name': 'V100', 'MemoryInfo': {'SizeInMiB': null}}]}"),
    ("gpu_half_l4", "L4", "0.5", ""),
    ("gpu_1x_l40s", "L40S", "1", "{'Gpus': [{'Name': 'L40S', 'MemoryInfo': {'SizeInMiB': 46068}}],}"),
    ("gpu_1x_rtx6000", "RTX6000", "1", "RTX6000"),
    ("gpu_1x_mystery", "Voodoo5", "1", ""),
    ("cpu_32x", "", "", ""),  # CPU only
    ("cpu_host_of_a2", "", "0", ""),
    ("tpu-v4-8", "tpu-v4-8", "1", ""),  # a TPU slice
    ("trn1.32xlarge", "Trainium", "16", ""),
    ("gpu_zero", "H100", "0", ""),
    ("gpu_negative", "H100", "-1", ""),
    ("gpu_words", "H100", "abc", ""),
    ("gpu_huge_count", "H100", "1e20", ""),
    ("", "A100", "2", ""),  # GCP's attachable GPUs: no instance type
]
SKYPILOT_BAD_PRICES = ["", "0", "0.00", "-1.5", "abc", "1e20", "NaN", "1_000", " 3.5 ", "4000", "1e-30", "١٫٥",
                       "0.000000000001"]


def skypilot_synthetic_catalog(seed: int, rows: int = 1500) -> bytes:
    """A catalog whose instance types repeat across regions and zones, with CPU, TPU and broken rows, GpuInfo in every
    shape, prices good and bad, rows repeated identical and conflicting, and rows with too few or too many fields."""
    rng = random.Random(seed)
    regions = [f"region-{n}" for n in range(12)]
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(SKYPILOT_HEADER)
    written: list[list[str]] = []
    for k in range(rows):
        instance, accelerator, count, info = rng.choice(SKYPILOT_MACHINES)
        number = Decimal(count) if count.replace(".", "").isdigit() else Decimal(1)
        per_gpu = Decimal(rng.randint(10, 400)) / 100
        price = str(per_gpu * number) if rng.random() > 0.1 else rng.choice(SKYPILOT_BAD_PRICES)
        spot = rng.choice(["", "0.00", str((per_gpu * number * Decimal("0.4")).normalize()),
                           str(per_gpu * number * Decimal("0.6"))]) if rng.random() > 0.05 \
            else rng.choice(SKYPILOT_BAD_PRICES)
        suffix = f"_{k % 300}" if instance else ""
        row = [instance + suffix, accelerator, count, "8", "64", price, rng.choice(regions), info, spot,
               rng.choice(["", "", "a", "b"])]
        written.append(row)
        writer.writerow(row)
        if rng.random() < 0.02:  # the same row again, identical
            writer.writerow(row)
        if rng.random() < 0.02:  # the same row key with another price
            writer.writerow(row[:5] + ["9.99"] + row[6:])
        if rng.random() < 0.003:
            out.write(",".join(row[:4]) + "\n")  # too few fields
        if rng.random() < 0.003:
            out.write(",".join(row) + ",extra\n")  # too many
        if rng.random() < 0.003:
            out.write("\n")  # a blank line
    return out.getvalue().encode("utf-8")


SKYPILOT_SYNTHETIC = {f"{provider}-{seed}": (provider, seed) for seed, provider in
                      enumerate(("lambda", "runpod", "aws", "gcp", "verda", "vast"), start=1)}


@pytest.mark.parametrize("name", list(SKYPILOT_SYNTHETIC), ids=str)
def test_columnar_path_equals_readable_path_on_synthetic_skypilot_catalogs(name):
    provider, seed = SKYPILOT_SYNTHETIC[name]
    raw = skypilot_synthetic_catalog(seed)
    ctx = _context("skypilot", Path(f"synthetic/{provider}_vms.csv"), OBSERVED_AT)
    assert ctx.provider == provider
    _assert_same(compare_paths(skypilot, raw, ctx), f"synthetic skypilot catalog {name}")


def test_the_synthetic_skypilot_catalogs_hold_what_they_are_for():
    """Whichever path reads them, the catalogs hold observations and every kind of refusal they are built for."""
    raw = skypilot_synthetic_catalog(1)
    result = parse_body(skypilot, raw, _context("skypilot", Path("synthetic/lambda_vms.csv"), OBSERVED_AT), CATALOG)
    reasons = Counter(r.reason for r in result.rejections)
    assert len(result.observations) > 500
    for reason in ("no_accelerator", "not_a_gpu", "bad_gpu_count", "bad_price", "malformed_row", "duplicate_row",
                   "conflicting_duplicate", "unknown_instrument"):
        assert reasons[reason] > 0, (reason, dict(reasons))


# ============================================================================================ 4. the loader, both paths

WHEN = datetime(2026, 11, 20, 6, 0, tzinfo=timezone.utc)
TABLES = {
    "observations": "select * from observations order by all",
    "rejections": "select * from rejections order by all",
    "observation_digests": "select * from observation_digests order by all",
    "observation_flags": "select * from observation_flags order by all",
    "fx_rates": "select * from fx_rates order by all",
    "snapshot_parses": "select snapshot_id, outcome, n_observations, n_rejections, error from snapshot_parses "
                       "order by all",
}


def _loader_bodies() -> list[tuple[str, str, str | None, bytes]]:
    """(source, URL, provider, body) of every corpus body of the columnar sources, and synthetic ones."""
    bodies = []
    for body in CORPUS + REAL_CORPUS:
        bodies.append((body.source, f"https://corpus.test/{body.label}", body.ctx.provider, body.raw))
    for name in ("mixed-1", "mixed-loadable-21", "clean-4", "unusual-only-loadable-22", "repeated-key-conflicting",
                 "no-spot-offer"):
        bodies.append(("vast", f"https://synthetic.test/vast/{name}", "vast", vast_synthetic(name)))
    for name in ("lambda-1", "aws-3"):
        provider, seed = SKYPILOT_SYNTHETIC[name]
        bodies.append(("skypilot", f"https://synthetic.test/skypilot/{name}", provider,
                       skypilot_synthetic_catalog(seed, rows=800)))
    return bodies


def _load_all(root: Path, bodies, spy_calls: list) -> tuple[dict[str, list], load.LoadReport]:
    warehouse = Warehouse(root).ensure()
    con = connect(warehouse)
    try:
        store = RawStore(warehouse.root)
        for number, (source_id, url, provider, raw) in enumerate(bodies):
            request = FetchRequest(source_id, url, provider)
            collect.store_fetched(con, store, request, FetchedBody(url, 200, "application/octet-stream", raw,
                                                                   WHEN + timedelta(minutes=number)))
        report = load.parse_pending(con, store)
        return {name: con.execute(query).fetchall() for name, query in TABLES.items()}, report
    finally:
        con.close()


def _spy_on_parse_columns(monkeypatch, calls: list) -> None:
    for source_id in COLUMNAR:
        module = get_source(source_id)
        original = module.parse_columns

        def spy(raw, ctx, catalog=None, _original=original, _source=source_id):
            calls.append((_source, len(raw)))
            return _original(raw, ctx, catalog)

        monkeypatch.setattr(module, "parse_columns", spy)


def test_the_loader_gives_the_same_tables_through_either_path(tmp_path, monkeypatch):
    bodies = _loader_bodies()
    columnar_bodies = sum(1 for source_id, *_ in bodies if source_id in COLUMNAR)
    tables = {}
    for name, threshold in (("columnar", 0), ("readable", 10 ** 12)):
        calls: list = []
        with monkeypatch.context() as patch:
            patch.setattr(load, "COLUMNAR_MIN_BYTES", threshold)
            _spy_on_parse_columns(patch, calls)
            tables[name], report = _load_all(tmp_path / name, bodies, calls)
        # Every body of a columnar source took that path in the first warehouse, none in the second.
        assert len(calls) == (columnar_bodies if threshold == 0 else 0), name
        assert report.loaded and report.failed, "the corpus has bodies that load and bodies refused whole"
    columnar, readable = tables["columnar"], tables["readable"]
    assert len(readable["observations"]) > 10_000 and len(readable["rejections"]) > 500
    assert readable["observation_digests"] and readable["snapshot_parses"]
    found = []
    for table in TABLES:
        if columnar[table] != readable[table]:
            only_c = Counter(columnar[table]) - Counter(readable[table])
            only_r = Counter(readable[table]) - Counter(columnar[table])
            found.append(f"table {table}: {len(columnar[table])} rows through the columnar path, "
                         f"{len(readable[table])} through the readable one; {sum(only_c.values())} rows only columnar "
                         f"{sorted(only_c.elements(), key=repr)[:2]}; {sum(only_r.values())} only readable "
                         f"{sorted(only_r.elements(), key=repr)[:2]}")
    assert not found, "\n".join(found)


# ======================================================================================== 5. which path a body takes

SPY_GPUS = [("H100 SXM", 81559, 120, 280), ("RTX 4090", 24564, 20, 90), ("L40S", 46068, 50, 150)]


def vast_spy_body(offers: int, seed: int) -> tuple[bytes, dict[str, Decimal]]:
    """A body of `offers` clean offers, and the per-GPU price of each row it must give: dph_total / num_gpus on demand
    and min_bid / num_gpus on spot, for the two offers in three that bid (prices in whole cents per GPU, so that the
    per-GPU prices are exact)."""
    rng = random.Random(seed)
    rows: dict[str, Decimal] = {}
    listed = []
    for k in range(offers):
        offer_id = 50_000_000 + seed * 100_000 + k
        name, ram, low, high = SPY_GPUS[k % len(SPY_GPUS)]
        gpus = (1, 2, 4, 8)[k % 4]
        per_gpu = Decimal(rng.randint(low, high)) / 100
        offer = {"id": offer_id, "machine_id": offer_id % 7_000, "host_id": offer_id % 3_000, "gpu_name": name,
                 "num_gpus": gpus, "gpu_ram": ram, "gpu_frac": Raw("1.0"), "rentable": True,
                 "verification": "verified", "geolocation": "Texas, US", "reliability2": Raw("0.9971893"),
                 "dph_total": Raw(str(per_gpu * gpus))}
        rows[f"{offer_id}|on_demand"] = per_gpu
        if k % 3:
            offer["min_bid"] = Raw(str(per_gpu * gpus * Decimal("0.6")))
            rows[f"{offer_id}|spot"] = per_gpu * Decimal("0.6")
        listed.append(offer)
    return _body(listed), rows


def skypilot_spy_body(rows_wanted: int, seed: int) -> tuple[bytes, dict[str, Decimal]]:
    """A Lambda-like catalog of H100 SXM and A10 machines across regions; the rows' per-GPU prices: Price / count, and
    SpotPrice / count on the two rows in three that have one."""
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["InstanceType", "AcceleratorName", "AcceleratorCount", "vCPUs", "MemoryGiB", "Price", "Region",
                     "GpuInfo", "SpotPrice"])
    rows: dict[str, Decimal] = {}
    for k in range(rows_wanted):
        gpus = (1, 2, 4, 8)[k % 4]
        instance, accelerator = (f"gpu_{gpus}x_h100_sxm5_{k}", "H100") if k % 2 else (f"gpu_{gpus}x_a10_{k}", "A10")
        per_gpu = Decimal(rng.randint(100, 300)) / 100 if accelerator == "H100" else Decimal(rng.randint(20, 90)) / 100
        region = f"us-east-{k % 5}"
        spot = str(per_gpu * gpus * Decimal("0.5")) if k % 3 else ""
        writer.writerow([instance, accelerator, gpus, 8 * gpus, 64 * gpus, per_gpu * gpus, region, "", spot])
        rows[f"{instance}|{region}||on_demand"] = per_gpu
        if spot:
            rows[f"{instance}|{region}||spot"] = per_gpu * Decimal("0.5")
    return out.getvalue().encode("utf-8"), rows


SPY_BODIES = {"vast": (vast_spy_body, 1_200, 6), "skypilot": (skypilot_spy_body, 6_000, 8)}


def test_every_columnar_source_has_a_spy_body():
    assert set(COLUMNAR) <= set(SPY_BODIES)


@pytest.mark.parametrize("source_id", [s for s in COLUMNAR if s in SPY_BODIES])
def test_a_large_body_takes_parse_columns_and_a_small_one_the_readable_path(source_id, tmp_path, monkeypatch):
    make, large_size, small_size = SPY_BODIES[source_id]
    large, large_rows = make(large_size, 1)
    small, small_rows = make(small_size, 2)
    assert len(large) >= load.COLUMNAR_MIN_BYTES > len(small)
    module = get_source(source_id)
    columnar_calls: list[int] = []
    readable_calls: list[int] = []
    original_columns, original_body = module.parse_columns, load.parse_body

    def counting_columns(raw, ctx, catalog=None):
        columnar_calls.append(len(raw))
        return original_columns(raw, ctx, catalog)

    def counting_body(source, raw, ctx, catalog=None, fx=None):
        readable_calls.append(len(raw))
        return original_body(source, raw, ctx, catalog, fx=fx)

    monkeypatch.setattr(module, "parse_columns", counting_columns)
    monkeypatch.setattr(load, "parse_body", counting_body)
    warehouse = Warehouse(tmp_path / "wh").ensure()
    con = connect(warehouse)
    store = RawStore(warehouse.root)
    snapshots = {}
    for number, (name, raw) in enumerate((("large", large), ("small", small))):
        request = FetchRequest(source_id, f"https://spy.test/{source_id}/{name}", "lambda" if source_id == "skypilot"
                               else "vast")
        snapshots[name] = collect.store_fetched(
            con, store, request, FetchedBody(request.url, 200, "application/octet-stream", raw,
                                             WHEN + timedelta(minutes=number))).snapshot_id
    report = load.parse_pending(con, store)
    assert not report.failed
    assert columnar_calls == [len(large)]
    assert readable_calls == [len(small)]
    for name, expected in (("large", large_rows), ("small", small_rows)):
        loaded = dict(con.execute("select row_key, usd_per_gpu_hour from observations where snapshot_id = ?",
                                  [snapshots[name]]).fetchall())
        assert len(loaded) == len(expected), name
        assert loaded == expected, name
        assert report.loaded[snapshots[name]] == (len(expected), 0)
    con.close()
