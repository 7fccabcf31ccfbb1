"""Vast.ai marketplace offers: the public search endpoint behind `vastai search offers`.

One body is one search: `GET https://console.vast.ai/api/v0/bundles/?q=<JSON query>` answers `{"offers": [...]}` (the
CLI's `--raw` output, as in ../shared/data/real/vast_offers/, is the bare list; both are read). Each offer is one host's
machine (or a slice of it) with its own price:

- `dph_total` is USD per hour for the whole offer: all `num_gpus` GPUs plus the storage the search assumed. The
  on-demand price per GPU-hour is dph_total / num_gpus.
- `min_bid` is the lowest interruptible bid the host accepts for the whole offer: the spot price is min_bid / num_gpus.
  A missing or zero min_bid means no interruptible offer (as SkyPilot's 0.00 spot), neither observation nor rejection.
- `gpu_frac` < 1 says the offer is a share of a bigger machine (one GPU of a 2-GPU box has gpu_frac 0.5); the offer's
  own GPU count is still num_gpus. It is kept as an attribute, with reliability, verification, the host and machine ids.

A marketplace is one provider ("vast", segment marketplace): its thousands of offers are one vote, which the methodology
collapses to a GPU-count-weighted median; this module only gives correct per-offer observations with their gpu_count.
One observation per offer and price type; the row key is `<offer id>|<price type>`.

GPU names are Vast's own ("A100 SXM4", "RTX 4070S Ti", "Tesla V100"); the catalog maps them. For the few whose memory
decides the product (A100 40/80 GB, V100 16/32 GB), `gpu_ram` (MB, as nvidia-smi reports it: 39936 for a 40 GB card,
81559 for an 80 GB one) is rounded to the nominal size first.

Numbers are read with json.loads(parse_float=Decimal) (on the columnar path, msgspec's float_hook=Decimal, or the
text itself for prices): Vast's floats carry full binary precision (0.6951851851851852) and that exact text is what
is kept.

Hostile or broken bodies (issue 10). Whatever the body holds, the parser answers with observations and rejections, or
refuses the body as a whole with one ParseError (not JSON, cut short, no offers list, the `offers` key repeated with
different values); it never raises anything else. Every number is read with records.read_decimal, so that a garbage
number is refused, never stored nor rounded:

- `num_gpus` must be a JSON number that is a whole count from 1 to MAX_NUM_GPUS (64: Vast's largest machines are 8 or
  10 GPUs, a few 16): 0, 0.5 (which would double the price per GPU), 100000000 (which would own the GPU-weighted
  median), a string, null or an object is `bad_gpu_count`.
- `dph_total` / `min_bid` must be JSON numbers, not negative, of magnitude at most 1e9: a string, an object, a list,
  null (on-demand), NaN or 1e20 is `bad_price` for that price type. A price that rounds to 0.0000000000 per GPU-hour is
  passed on, and the shared checks refuse it as `not_positive`.
- An offer that repeats a key with different values anywhere inside it (`"dph_total": 2.0, "dph_total": 0.2`; two
  `id`s) is refused as a whole, `duplicate_key`, naming the keys: which value holds cannot be known. The same offer id
  given twice collides on its row key: the shared checks refuse every copy (`conflicting_duplicate`) when they differ
  and keep one (`duplicate_row`) when they are identical.
- Attributes keep only scalar values (never a nested object), and `gpu_ram` is read like any number.

A large answer (pipeline.load.COLUMNAR_MIN_BYTES) is read by parse_columns (pipeline.sources.vast_columns), column by
column, with the same rows as parse(): decoded by msgspec, unless the body holds anything msgspec might read otherwise
(a key that repeats, NaN, ...), and offers of any unusual shape go through the same _parse_offer
(tests/test_columnar.py compares the two).

Rejection reasons: `malformed_offer`, `duplicate_key`, `unknown_instrument`, `bad_gpu_count`, `not_rentable`,
`bad_price`; the shared checks add `not_positive`, `outside_sanity_band`, `duplicate_row`, `conflicting_duplicate`.
"""
from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

import httpx

from pipeline.catalog import Catalog, default_catalog
from pipeline.columnar import ColumnarResult
from pipeline.http import FetchedBody, fetch_body, utc_now
from pipeline.records import (
    GPU,
    ON_DEMAND,
    SPOT,
    Observation,
    ParseContext,
    ParseResult,
    Rejection,
    quantize_usd,
    read_decimal,
)
from pipeline.sources import FetchRequest
from pipeline.sources.jsonbody import (
    DUPLICATE_KEY,
    Conflict,
    conflict_detail,
    conflicting_keys,
    json_records,
    load_json,
)

SOURCE_ID = "vast"
KIND = GPU
DESCRIPTION = "Vast.ai marketplace offers (console.vast.ai/api/v0/bundles/), USD per offer-hour: dph_total and min_bid"
PROVIDER = "vast"

SEARCH_URL = "https://console.vast.ai/api/v0/bundles/"

# The GPUs a collection asks for: the data-centre and workstation cards the indices are about, plus the consumer cards
# most rented on Vast. Asking by name keeps the body bounded (a search of everything returns every cheap consumer card
# first and would cut off the H100s at the limit). Names as Vast's search filter spells them, with spaces.
GPU_NAMES: tuple[str, ...] = (
    "B200", "H200", "H200 NVL", "H100 SXM", "H100 PCIE", "H100 NVL", "GH200 SXM",
    "A100 SXM4", "A100 PCIE", "A100X", "A800 PCIE", "L40S", "L40", "L4", "A40", "A10",
    "RTX PRO 6000 WS", "RTX PRO 6000 S", "RTX 6000Ada", "RTX A6000", "RTX 5090", "RTX 4090", "RTX 3090", "Tesla V100",
)
# The CLI's default filters (verified, rentable, not rented, not an external cloud's listing).
QUERY: dict = {
    "verified": {"eq": True},
    "external": {"eq": False},
    "rentable": {"eq": True},
    "rented": {"eq": False},
    "gpu_name": {"in": list(GPU_NAMES)},
    "type": "on-demand",
    "order": [["dph_total", "asc"]],
    "limit": 3000,
}
# 3000 offers of ~3 kB each: under 10 MB. 32 MiB refuses a runaway body with room to spare (the fetch applies it;
# a caller reading a file may apply it too).
MAX_BODY_BYTES = 32 * 1024 * 1024
# The most GPUs one offer may have: Vast's machines hold 1 to 8 GPUs (a few 10 or 16); more is garbage, and as the
# weight of a GPU-count-weighted median it would own the median.
MAX_NUM_GPUS = 64

# Rounding a measured memory to the product's nominal size: the nearest multiple of 8 GiB, when within 6% of it.
_NOMINAL_STEP_MIB = 8192
_NOMINAL_TOLERANCE = Decimal("0.06")

# Offer fields worth keeping beside the price (who sells, how reliable, what exactly is rented).
KEPT_FIELDS = (
    "machine_id", "host_id", "gpu_frac", "gpu_ram", "gpu_total_ram", "reliability2", "verification", "geolocation",
    "hosting_type", "dph_base", "storage_total_cost", "discounted_dph_total", "cuda_max_good", "compute_cap",
    "cpu_cores_effective", "cpu_ram", "inet_down", "inet_up", "external", "is_bid", "start_date", "end_date",
)


# --------------------------------------------------------------------------------------------- fetching


def search_url(query: dict | None = None) -> str:
    """The GET form of the search (the CLI's older, still served form): the query as compact JSON in `q`."""
    return f"{SEARCH_URL}?{urlencode({'q': json.dumps(query or QUERY, separators=(',', ':'))})}"


def requests() -> list[FetchRequest]:
    return [FetchRequest(source=SOURCE_ID, url=search_url(), provider=PROVIDER)]


def fetch(client: httpx.Client, request: FetchRequest, clock=utc_now) -> FetchedBody:
    return fetch_body(client, request.url, max_bytes=MAX_BODY_BYTES, clock=clock)


def context_for_file(path: Path, observed_at: datetime) -> ParseContext:
    return ParseContext(source=SOURCE_ID, observed_at=observed_at, url=Path(path).resolve().as_uri(), provider=PROVIDER)


# --------------------------------------------------------------------------------------------- parsing


def parse(raw: bytes, ctx: ParseContext, catalog: Catalog | None = None) -> ParseResult:
    catalog = catalog or default_catalog()
    offers = _read_offers(raw)
    provider = ctx.provider or PROVIDER
    result = ParseResult()
    for number, offer in enumerate(offers, start=1):
        _parse_offer(number, offer, provider, catalog, result)
    return result


def parse_columns(raw: bytes, ctx: ParseContext, catalog: Catalog | None = None) -> ColumnarResult:
    """parse(), as columns: the path of a large body (pipeline.sources.vast_columns)."""
    from pipeline.sources.vast_columns import parse_offer_columns

    return parse_offer_columns(raw, ctx, catalog)


def _read_offers(raw: bytes) -> list:
    # Nothing at all is a failed query (an error page, a changed API), not an empty market.
    return json_records(load_json(raw, "Vast.ai response"), "Vast.ai response", "offers", "offers")


def _parse_offer(number: int, offer: object, provider: str, catalog: Catalog, result: ParseResult) -> None:
    if not isinstance(offer, dict):
        result.rejections.append(
            Rejection.of(f"offer #{number}|*", "malformed_offer", f"offer #{number} is not a JSON object",
                         _type_excerpt(offer))
        )
        return
    offer_id = offer.get("id")
    readable_id = not isinstance(offer_id, bool) and isinstance(offer_id, (int, str)) and bool(str(offer_id).strip())
    conflicts = conflicting_keys(offer)
    if conflicts:
        # Before anything else: a record that says two things of one key cannot say which one holds.
        key = f"{str(offer_id).strip()}|*" if readable_id else f"offer #{number}|*"
        result.rejections.append(Rejection.of(key, DUPLICATE_KEY, conflict_detail(conflicts), _excerpt(offer)))
        return
    if not readable_id:
        result.rejections.append(
            Rejection.of(f"offer #{number}|*", "malformed_offer", f"offer #{number} has no id", _excerpt(offer))
        )
        return
    offer_id = str(offer_id).strip()

    def reject(reason: str, detail: str, price_type: str = "*") -> None:
        result.rejections.append(Rejection.of(f"{offer_id}|{price_type}", reason, detail, _excerpt(offer)))

    gpu_name = offer.get("gpu_name")
    if not isinstance(gpu_name, str) or not gpu_name.strip():
        reject("unknown_instrument", f"offer {offer_id} names no GPU (gpu_name {_show(gpu_name)})")
        return
    count = _gpu_count(offer.get("num_gpus"))
    if count is None:
        reject("bad_gpu_count", f"num_gpus {_show(offer.get('num_gpus'))} is not a whole number from 1 to {MAX_NUM_GPUS}")
        return
    if offer.get("rentable") is False:
        reject("not_rentable", "the offer is listed but not rentable: no price anyone can pay")
        return
    memory = _nominal_mib(offer.get("gpu_ram"))
    resolution = catalog.resolve_gpu(gpu_name, provider=provider, instance_type=gpu_name, gpu_memory_mib=memory)
    if resolution.canonical is None:
        reject("unknown_instrument", resolution.detail)
        return

    attributes = {"offer_id": offer_id, "gpu_name": gpu_name}
    for name in KEPT_FIELDS:
        value = offer.get(name)
        if isinstance(value, (str, int, Decimal)):  # bools are ints; never a nested object
            attributes[name] = value
    if memory is not None:
        attributes["gpu_memory_mib"] = memory
    region = offer.get("geolocation") if isinstance(offer.get("geolocation"), str) else None

    for field_name, price_type in (("dph_total", ON_DEMAND), ("min_bid", SPOT)):
        value = offer.get(field_name)
        price = _number(value)
        if price_type == SPOT and (value is None or price == 0):
            continue  # no interruptible offer
        if price is None or price < 0:
            reject("bad_price", f"{field_name} {_show(value)} is not a non-negative number of at most 1e9", price_type)
            continue
        result.observations.append(
            Observation(
                row_key=f"{offer_id}|{price_type}",
                provider=provider,
                instrument_kind=GPU,
                instrument=resolution.canonical,
                source_instrument=gpu_name,
                price_type=price_type,
                original_price=price,
                original_currency="USD",
                original_unit="offer_hour",
                # A zero dph_total (or one that rounds to zero) is passed on: the shared checks reject it as not_positive.
                usd_price=quantize_usd(price / count),
                region=region,
                gpu_count=count,
                attributes=dict(attributes),
            )
        )


def _number(value: object) -> Decimal | None:
    """A JSON number (never a string, a bool, an object or a Conflict) as its exact Decimal, or None when it is not one
    or is not a finite number of magnitude at most 1e9 (records.read_decimal)."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        return None
    return read_decimal(value)


def _gpu_count(value: object) -> Decimal | None:
    """num_gpus as a whole count from 1 to MAX_NUM_GPUS (8.0 is 8), else None."""
    number = _number(value)
    if number is None or number != number.to_integral_value() or not 1 <= number <= MAX_NUM_GPUS:
        return None
    return Decimal(int(number))


def _nominal_mib(value: object) -> int | None:
    """gpu_ram as the nominal size the product is sold by: 39936 -> 40960, 81559 -> 81920, 16160 -> 16384."""
    mib = _number(value)
    if mib is None or mib <= 0:
        return None
    nominal = (mib / _NOMINAL_STEP_MIB).to_integral_value() * _NOMINAL_STEP_MIB
    if nominal > 0 and abs(mib - nominal) <= _NOMINAL_TOLERANCE * nominal:
        return int(nominal)
    return int(mib)


def _show(value: object) -> str:
    """A value for a rejection's detail: numbers as written, anything else as a short repr (a string in quotes)."""
    if isinstance(value, Decimal):
        text = str(value)
    elif isinstance(value, (dict, list, Conflict)):
        text = f"<{type(value).__name__}>" if not isinstance(value, Conflict) else f"<{len(value.values)} values>"
    else:
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _excerpt(offer: dict) -> str:
    """The fields that decided, not the whole 3 kB offer (the excerpt is capped anyway); a nested value is named by
    its type, so that a hostile depth cannot exhaust the encoder."""
    keys = ("id", "gpu_name", "num_gpus", "gpu_ram", "dph_total", "min_bid", "rentable", "geolocation")
    shown = {}
    for key in keys:
        if key in offer:
            value = offer[key]
            shown[key] = value if value is None or isinstance(value, (str, int, Decimal)) else _show(value)
    return json.dumps(shown, sort_keys=True, default=str)


def _type_excerpt(value: object) -> str:
    return value if isinstance(value, str) else _show(value)
