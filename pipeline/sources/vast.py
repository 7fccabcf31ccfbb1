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

Numbers are read with json.loads(parse_float=Decimal): Vast's floats carry full binary precision (0.6951851851851852)
and that exact text is what is kept.
"""
from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

import httpx

from pipeline.catalog import Catalog, default_catalog
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
)
from pipeline.sources import FetchRequest
from pipeline.sources.jsonbody import json_records, load_json

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
# 3000 offers of ~3 kB each: under 10 MB. 32 MiB refuses a runaway body with room to spare.
MAX_BODY_BYTES = 32 * 1024 * 1024

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


def _read_offers(raw: bytes) -> list:
    # Nothing at all is a failed query (an error page, a changed API), not an empty market.
    return json_records(load_json(raw, "Vast.ai response"), "Vast.ai response", "offers", "offers")


def _parse_offer(number: int, offer: object, provider: str, catalog: Catalog, result: ParseResult) -> None:
    if not isinstance(offer, dict):
        result.rejections.append(
            Rejection.of(f"offer #{number}|*", "malformed_offer", f"offer #{number} is not a JSON object", offer)
        )
        return
    offer_id = offer.get("id")
    if isinstance(offer_id, bool) or not isinstance(offer_id, (int, str)) or not str(offer_id).strip():
        result.rejections.append(
            Rejection.of(f"offer #{number}|*", "malformed_offer", f"offer #{number} has no id", _excerpt(offer))
        )
        return
    offer_id = str(offer_id).strip()

    def reject(reason: str, detail: str, price_type: str = "*") -> None:
        result.rejections.append(Rejection.of(f"{offer_id}|{price_type}", reason, detail, _excerpt(offer)))

    gpu_name = offer.get("gpu_name")
    if not isinstance(gpu_name, str) or not gpu_name.strip():
        reject("unknown_instrument", f"offer {offer_id} names no GPU (gpu_name {gpu_name!r})")
        return
    count = _positive_number(offer.get("num_gpus"))
    if count is None:
        reject("bad_gpu_count", f"num_gpus {_show(offer.get('num_gpus'))} is not a positive number")
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
        if value is not None and not isinstance(value, (dict, list)):
            attributes[name] = value
    if memory is not None:
        attributes["gpu_memory_mib"] = memory
    region = offer.get("geolocation") if isinstance(offer.get("geolocation"), str) else None

    for field_name, price_type in (("dph_total", ON_DEMAND), ("min_bid", SPOT)):
        value = offer.get(field_name)
        if price_type == SPOT and (value is None or (_is_number(value) and Decimal(value) == 0)):
            continue  # no interruptible offer
        if not _is_number(value) or not Decimal(value).is_finite() or Decimal(value) < 0:
            reject("bad_price", f"{field_name} {_show(value)} is not a non-negative number", price_type)
            continue
        price = Decimal(value)
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
                # A zero dph_total is passed on: the shared checks reject it as not_positive.
                usd_price=quantize_usd(price / count),
                region=region,
                gpu_count=count,
                attributes=dict(attributes),
            )
        )


def _is_number(value: object) -> bool:
    return isinstance(value, (int, Decimal)) and not isinstance(value, bool)


def _positive_number(value: object) -> Decimal | None:
    if not _is_number(value):
        return None
    number = Decimal(value)
    if not number.is_finite() or number <= 0:
        return None
    return Decimal(int(number)) if number == number.to_integral_value() else number


def _nominal_mib(value: object) -> int | None:
    """gpu_ram as the nominal size the product is sold by: 39936 -> 40960, 81559 -> 81920, 16160 -> 16384."""
    if not _is_number(value) or Decimal(value) <= 0:
        return None
    mib = Decimal(value)
    nominal = (mib / _NOMINAL_STEP_MIB).to_integral_value() * _NOMINAL_STEP_MIB
    if nominal > 0 and abs(mib - nominal) <= _NOMINAL_TOLERANCE * nominal:
        return int(nominal)
    return int(mib)


def _show(value: object) -> str:
    """A value for a rejection's detail: numbers as written, anything else as repr (a string in quotes)."""
    return str(value) if isinstance(value, Decimal) else repr(value)


def _excerpt(offer: dict) -> str:
    """The fields that decided, not the whole 3 kB offer (the excerpt is capped anyway)."""
    keys = ("id", "gpu_name", "num_gpus", "gpu_ram", "dph_total", "min_bid", "rentable", "geolocation")
    return json.dumps({k: offer.get(k) for k in keys if k in offer}, sort_keys=True, default=str)
