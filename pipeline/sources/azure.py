"""Azure Retail Prices API: Microsoft's public, unauthenticated price list, one body per page.

`GET https://prices.azure.com/api/retail/prices?currencyCode='USD'&$filter=...` answers
`{"BillingCurrency": "USD", "Items": [...], "NextPageLink": "...&$skip=1000", "Count": 1000}`. The collection asks for
Virtual Machines of the GPU families (armSkuName containing Standard_NC, _ND, _NG or _NV) and follows NextPageLink to
the last page; every page is a body of its own, all stamped with one clock() call so that they count as one collection.
pipeline/catalog/azure_gpu_skus.csv, the maintained table of Azure GPU sizes, gives each size's GPU model and count. The real samples in ../shared/data/real/azure_retail_prices/ are
unfiltered dumps (the Items of ten pages, as a bare list): the parser reads both shapes.

What an item says, and what this parser does with it:

- `retailPrice` (a JSON number, read as Decimal) is in `currencyCode` per `unitOfMeasure`. For a VM, "1 Hour" is one
  hour of the whole VM: USD per GPU-hour = retailPrice / GPU count of the size (a fraction for sizes that slice a GPU,
  e.g. NV6ads A10 v5 = 1/6 of an A10: the division is done with the exact fraction).
- `type` Consumption is pay-as-you-go: `on_demand`, or `spot` when the meter name says "Spot" ("ND96amsA100v4 Spot").
  `type` Reservation is a 1- or 3-year reservation whose retailPrice is the price of the WHOLE TERM although its unit
  reads "1 Hour": it becomes `reserved_1y` / `reserved_3y` at retailPrice / hours in the term / GPU count, with 8760 hours
  a year (365 days x 24; 3 years = 26280 hours).
- Refused, each with its reason (nothing vanishes): any item that is not a GPU VM (`not_a_gpu_vm`: another service, or
  a VM size without GPUs), a GPU size the SKU table lacks (`unknown_instrument`: `tsi sources --unknown` lists it so a
  maintainer can add it), Windows prices (`windows`: productName ends in " Windows"; the index is of Linux prices, the
  Windows licence is not compute), Dev/Test rates (`dev_test`: only for Visual Studio subscribers), Low Priority meters
  (`low_priority`: the retired Batch/scale-set tier, neither on-demand nor spot), a unit other than "1 Hour"
  (`not_hourly`), another currency (`not_usd`), an unknown price type or term (`unsupported_price_type`), and a price
  that is not a non-negative number (`bad_price`).

Hostile or broken pages (issue 10). A page is read into observations and rejections, or refused as a whole with one
ParseError (not JSON, cut short, no `Items` list, `Items` repeated with different values, a `BillingCurrency` other than
USD); the parser never raises anything else.

- Every number is read with records.read_decimal: `retailPrice` must be a JSON number, not negative, of magnitude at
  most 1e9; a string, an object, a list, null, NaN or 1e20 is `bad_price`. A price that rounds to 0.0000000000 per
  GPU-hour is passed on and refused by the shared checks as `not_positive`.
- `currencyCode` must be exactly USD (a missing one is `not_usd` too), `unitOfMeasure` exactly "1 Hour" (else
  `not_hourly`), `type` Consumption or Reservation (DevTestConsumption is `dev_test`, anything else, or none,
  `unsupported_price_type`).
- An item that repeats a key with different values anywhere inside it (`"retailPrice": 98.32, "retailPrice": 9.832`)
  is refused as a whole, `duplicate_key`, naming the keys. The row key is the size, region and price type, so the same
  price given twice collides: the shared checks refuse every copy when they differ (`conflicting_duplicate`) and keep
  one when they are identical (`duplicate_row`).

Rejection reasons: `malformed_item`, `duplicate_key`, `not_a_gpu_vm`, `unknown_instrument`, `windows`, `dev_test`,
`low_priority`, `not_hourly`, `not_usd`, `unsupported_price_type`, `bad_price`; the shared checks add `not_positive`,
`outside_sanity_band`, `duplicate_row`, `conflicting_duplicate`.
"""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote, urlsplit

import httpx

from pipeline.catalog import Catalog, default_catalog
from pipeline.http import FetchedBody, FetchError, fetch_body, utc_now
from pipeline.paths import CATALOG_DIR
from pipeline.records import (
    GPU,
    ON_DEMAND,
    SPOT,
    Observation,
    ParseContext,
    ParseResult,
    ParseError,
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

SOURCE_ID = "azure"
KIND = GPU
DESCRIPTION = "Azure Retail Prices API (prices.azure.com), GPU VM sizes: on-demand, spot, 1- and 3-year reservations"
PROVIDER = "azure"

PRICES_URL = "https://prices.azure.com/api/retail/prices"
SKU_TABLE = CATALOG_DIR / "azure_gpu_skus.csv"

RESERVED_1Y = "reserved_1y"
RESERVED_3Y = "reserved_3y"
# Reservation terms: the price type and the hours the whole-term price is spread over (365-day years).
TERMS: dict[str, tuple[str, int]] = {"1 Year": (RESERVED_1Y, 8760), "3 Years": (RESERVED_3Y, 26280)}

# Sizes of the GPU families (NC, ND, NG, NV): one missing from the SKU table is an unknown instrument, not a CPU VM.
GPU_FAMILY_PREFIXES = ("Standard_NC", "Standard_ND", "Standard_NG", "Standard_NV")
GPU_FAMILY = re.compile(r"^Standard_N[CDGV]", re.I)
# A page is 1000 items at most; the GPU sizes of every region and price type are a few thousand. 200 pages is far more
# than any real answer and stops a server that keeps sending new NextPageLinks.
MAX_PAGES = 200
# A page of 1000 items is about 0.7 MB; 16 MiB refuses a runaway body (the fetch applies it; a caller reading a file
# may apply it too).
MAX_BODY_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class GpuSku:
    arm_sku_name: str
    canonical_gpu: str
    gpus_numerator: int  # GPU count as a fraction: 1/6 of an A10 is (1, 6); eight H100s are (8, 1)
    gpus_denominator: int

    @property
    def gpu_count(self) -> Decimal:
        """For display and weighting; rounded to 4 places as the warehouse column keeps it (1/6 -> 0.1667)."""
        return (Decimal(self.gpus_numerator) / Decimal(self.gpus_denominator)).quantize(Decimal("0.0001"))

    def per_gpu(self, instance_price: Decimal, hours: int = 1) -> Decimal:
        # price / hours / (n / d) = price * d / (hours * n): exact until the one final rounding.
        return quantize_usd(instance_price * self.gpus_denominator / (hours * self.gpus_numerator))


@lru_cache(maxsize=4)
def load_skus(path: Path = SKU_TABLE) -> dict[str, GpuSku]:
    skus: dict[str, GpuSku] = {}
    with Path(path).open(newline="", encoding="utf-8") as handle:
        for row in csv.DictReader(line for line in handle if not line.startswith("#")):
            name, canonical, count = (row.get(k, "").strip() for k in ("arm_sku_name", "canonical_gpu", "gpu_count"))
            match = re.fullmatch(r"(\d+)(?:/(\d+))?", count)
            if not name or not canonical or not match or int(match.group(1)) == 0 or match.group(2) == "0":
                raise ValueError(f"{path}: bad row {row!r} (need arm_sku_name, canonical_gpu, gpu_count like 8 or 1/6)")
            if name.lower() in skus:
                raise ValueError(f"{path}: {name} is listed twice")
            skus[name.lower()] = GpuSku(name, canonical, int(match.group(1)), int(match.group(2) or 1))
    return skus


# --------------------------------------------------------------------------------------------- fetching


def request_url() -> str:
    """The first page: USD prices of Virtual Machines of the GPU families (NC, ND, NG, NV). The filter names the
    families, not the sizes of the SKU table: a new GPU size then arrives as a rejection unknown_instrument, which
    `tsi sources --unknown` lists for a maintainer to add to azure_gpu_skus.csv, instead of never being fetched."""
    families = " or ".join(f"contains(armSkuName, '{prefix}')" for prefix in GPU_FAMILY_PREFIXES)
    flt = f"serviceName eq 'Virtual Machines' and ({families})"
    return f"{PRICES_URL}?currencyCode={quote(chr(39) + 'USD' + chr(39))}&$filter={quote(flt, safe='')}"


def requests() -> list[FetchRequest]:
    return [FetchRequest(source=SOURCE_ID, url=request_url(), provider=PROVIDER)]


def fetch(client: httpx.Client, request: FetchRequest, clock=utc_now) -> list[FetchedBody]:
    """Every page, following NextPageLink; all stamped with the collection's one start time."""
    started = clock()
    pages: list[FetchedBody] = []
    url: str | None = request.url
    seen: set[str] = set()
    while url:
        if url in seen:
            raise FetchError(url, "NextPageLink points back to a page already fetched", transient=False)
        if len(pages) >= MAX_PAGES:
            raise FetchError(url, f"more than {MAX_PAGES} pages: refusing to follow NextPageLink further", transient=False)
        seen.add(url)
        page = fetch_body(client, url, max_bytes=MAX_BODY_BYTES, clock=lambda: started)
        pages.append(page)
        url = _next_page_link(page.body, url)
    return pages


def _next_page_link(body: bytes, current: str) -> str | None:
    """The only thing fetch reads from a body. A body that is not the expected JSON ends the paging; the parse step
    then fails on it loudly."""
    try:
        page = load_json(body, "Azure Retail Prices")
    except ParseError:
        return None
    if not isinstance(page, dict):
        return None
    link = page.get("NextPageLink")
    if isinstance(link, Conflict):
        raise FetchError(current, "the page repeats NextPageLink with different values: which page follows is unknown",
                         transient=False)
    if not link:
        return None
    if not isinstance(link, str) or urlsplit(link).hostname != urlsplit(PRICES_URL).hostname:
        raise FetchError(current, f"NextPageLink {str(link)[:200]!r} leaves {urlsplit(PRICES_URL).hostname}", transient=False)
    return link


def context_for_file(path: Path, observed_at: datetime) -> ParseContext:
    return ParseContext(source=SOURCE_ID, observed_at=observed_at, url=Path(path).resolve().as_uri(), provider=PROVIDER)


# --------------------------------------------------------------------------------------------- parsing


def parse(raw: bytes, ctx: ParseContext, catalog: Catalog | None = None, skus: dict[str, GpuSku] | None = None) -> ParseResult:
    catalog = catalog or default_catalog()
    skus = skus if skus is not None else load_skus()
    missing = sorted({s.canonical_gpu for s in skus.values()} - set(catalog.gpus))
    if missing:
        raise ValueError(f"azure_gpu_skus.csv names GPUs that gpus.csv lacks: {', '.join(missing)}")
    items = _read_items(raw)
    provider = ctx.provider or PROVIDER
    result = ParseResult()
    for number, item in enumerate(items, start=1):
        _parse_item(number, item, provider, skus, result)
    return result


def _read_items(raw: bytes) -> list:
    # Nothing at all is a failed query (an error page, a changed API), not an empty market.
    body = load_json(raw, "Azure Retail Prices")
    if isinstance(body, dict) and "BillingCurrency" in body and body["BillingCurrency"] != "USD":
        # The page says it is billed in another currency (or says two): none of its prices is in USD as asked.
        shown = body["BillingCurrency"]
        shown = f"{len(shown.values)} different values" if isinstance(shown, Conflict) else repr(shown)[:40]
        raise ParseError(f"Azure Retail Prices: BillingCurrency is {shown}, not USD; the collection asks for USD")
    return json_records(body, "Azure Retail Prices", "Items", "items")


def _text(item: dict, key: str) -> str:
    value = item.get(key)
    return value.strip() if isinstance(value, str) else ""


def _parse_item(number: int, item: object, provider: str, skus: dict[str, GpuSku], result: ParseResult) -> None:
    if not isinstance(item, dict):
        result.rejections.append(
            Rejection.of(f"item #{number}|*", "malformed_item", "item is not a JSON object", _excerpt(item)))
        return
    sku_name, region = _text(item, "armSkuName"), _text(item, "armRegionName")
    meter, product, kind = _text(item, "meterName"), _text(item, "productName"), _text(item, "type")
    base_key = f"{sku_name or _text(item, 'skuName') or f'item #{number}'}|{region}"

    def reject(reason: str, detail: str, price_type: str = "*") -> None:
        # The price kind and meter id keep keys of distinct refused items apart (a meter has Consumption and Dev/Test
        # items; many non-GPU items share an empty armSkuName).
        key = (f"{base_key}|{price_type}" if price_type != "*"
               else f"{base_key}|{kind}|{_text(item, 'meterId') or number}|*")
        result.rejections.append(Rejection.of(key, reason, detail, _excerpt(item)))

    conflicts = conflicting_keys(item)
    if conflicts:
        # Before anything else: an item that says two things of one key cannot say which one holds.
        reject(DUPLICATE_KEY, conflict_detail(conflicts))
        return
    service = _text(item, "serviceName")
    if service != "Virtual Machines":
        reject("not_a_gpu_vm", f"service {service!r} is not Virtual Machines")
        return
    sku = skus.get(sku_name.lower())
    if sku is None:
        if GPU_FAMILY.match(sku_name):
            reject("unknown_instrument", f"GPU VM size {sku_name!r} is not in azure_gpu_skus.csv")
        else:
            reject("not_a_gpu_vm", f"VM size {sku_name!r} has no GPU")
        return
    if product.endswith(" Windows"):
        reject("windows", f"{product!r}: a Windows price includes the licence; the index is of Linux prices")
        return
    if kind == "DevTestConsumption":
        reject("dev_test", "a Dev/Test rate (Visual Studio subscribers only), not a public price")
        return
    if "low priority" in f"{meter} {_text(item, 'skuName')}".lower():
        reject("low_priority", f"meter {meter!r}: the retired Low Priority tier, neither on-demand nor spot")
        return
    unit = _text(item, "unitOfMeasure")
    if unit != "1 Hour":
        reject("not_hourly", f"unit of measure {_show(item.get('unitOfMeasure'))} is not '1 Hour'")
        return
    currency = _text(item, "currencyCode")
    if currency != "USD":
        # A missing currencyCode is refused too: a price of unknown currency is not a USD price.
        reject("not_usd", f"currency {_show(item.get('currencyCode'))}: the collection asks for USD")
        return

    hours = 1
    if kind == "Consumption":
        price_type = SPOT if "spot" in f"{meter} {_text(item, 'skuName')}".lower() else ON_DEMAND
        unit_name = "instance_hour"
    elif kind == "Reservation":
        term = _text(item, "reservationTerm")
        if term not in TERMS:
            reject("unsupported_price_type", f"reservation term {term!r} is not one of {sorted(TERMS)}")
            return
        price_type, hours = TERMS[term]
        unit_name = f"instance_{price_type.split('_')[1]}_term"  # instance_1y_term: the whole term, paid for one VM
    else:
        reject("unsupported_price_type", f"price type {_show(item.get('type'))} is neither Consumption nor Reservation")
        return

    price = _decimal(item.get("retailPrice"))
    if price is None or price < 0:
        reject("bad_price", f"retailPrice {_show(item.get('retailPrice'))} is not a non-negative number of at most 1e9",
               price_type)
        return

    attributes = {
        "arm_sku_name": sku.arm_sku_name,
        "gpus_per_vm": f"{sku.gpus_numerator}/{sku.gpus_denominator}" if sku.gpus_denominator != 1 else str(sku.gpus_numerator),
        "meter_name": meter,
        "product_name": product,
        "sku_name": _text(item, "skuName"),
        "meter_id": _text(item, "meterId"),
        "location": _text(item, "location"),
        "effective_start_date": _text(item, "effectiveStartDate"),
        "price_kind": kind,
    }
    if hours != 1:
        attributes["hours_in_term"] = hours
    if isinstance(item.get("isPrimaryMeterRegion"), bool):
        attributes["is_primary_meter_region"] = item["isPrimaryMeterRegion"]
    result.observations.append(
        Observation(
            row_key=f"{base_key}|{price_type}",
            provider=provider,
            instrument_kind=GPU,
            instrument=sku.canonical_gpu,
            source_instrument=sku.arm_sku_name,
            price_type=price_type,
            original_price=price,
            original_currency="USD",
            original_unit=unit_name,
            usd_price=sku.per_gpu(price, hours),
            region=region or None,
            gpu_count=sku.gpu_count,
            attributes=attributes,
        )
    )


def _decimal(value: object) -> Decimal | None:
    """A JSON number (never a string, a bool, an object or a Conflict) as its exact Decimal; None when it is not one or
    not a finite number of magnitude at most 1e9 (records.read_decimal)."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        return None
    return read_decimal(value)


def _show(value: object) -> str:
    """A value for a rejection's detail: short, and a nested value named by its type."""
    if isinstance(value, Decimal):
        text = str(value)
    elif isinstance(value, Conflict):
        text = f"<{len(value.values)} values>"
    elif isinstance(value, (dict, list)):
        text = f"<{type(value).__name__}>"
    else:
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _excerpt(item: object) -> str:
    """The item as compact JSON for the rejection (capped by Rejection.of), its nested values named by their type: an
    Azure item is flat, and a hostile depth must not exhaust the encoder."""
    if not isinstance(item, dict):
        return item if isinstance(item, str) else _show(item)
    flat = {key: value if value is None or isinstance(value, (str, int, Decimal)) else _show(value)
            for key, value in item.items()}
    return json.dumps(flat, sort_keys=True, default=str)
