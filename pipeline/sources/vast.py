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

A large answer (pipeline.load.COLUMNAR_MIN_BYTES) is read by parse_columns, column by column, with the same rows as
parse(): offers of any unusual shape go through the same _parse_offer (tests/test_columnar.py compares the two).

Rejection reasons: `malformed_offer`, `duplicate_key`, `unknown_instrument`, `bad_gpu_count`, `not_rentable`,
`bad_price`; the shared checks add `not_positive`, `outside_sanity_band`, `duplicate_row`, `conflicting_duplicate`.
"""
from __future__ import annotations

import json
from datetime import datetime
from decimal import ROUND_HALF_EVEN
from itertools import repeat
from operator import truediv
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlencode

import httpx
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.catalog import Catalog, default_catalog
from pipeline.columnar import (
    ColumnarResult,
    attributes_column,
    checked_prices,
    concat_frames,
    frame_from_columns,
    frame_from_observations,
    json_fragments,
)
from pipeline.http import FetchedBody, fetch_body, utc_now
from pipeline.records import (
    GPU,
    ON_DEMAND,
    SPOT,
    USD_PRICE_QUANTUM,
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
    load_json_with_repeats,
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
    """parse(), as columns (pipeline.columnar): the path of a large body. Offers of the usual shape (an object
    whose id is an int, gpu_name a str, num_gpus an int from 1 to MAX_NUM_GPUS, rentable not false, prices and
    gpu_ram numbers) are read column by column, each GPU name and memory size resolved once; every other offer
    goes through _parse_offer, as in parse(). A body that repeats a key anywhere is read by parse() whole."""
    catalog = catalog or default_catalog()
    provider = ctx.provider or PROVIDER
    body, repeats = load_json_with_repeats(raw, "Vast.ai response")
    offers = json_records(body, "Vast.ai response", "offers", "offers")
    if repeats:
        result = ParseResult()
        for number, offer in enumerate(offers, start=1):
            _parse_offer(number, offer, provider, catalog, result)
        return ColumnarResult(frame_from_observations(result.observations), result.rejections)
    regular = [_usual_shape(offer) for offer in offers]
    result = ParseResult()  # the other offers', read one by one
    seqs: list[int] = []
    for number, (offer, usual) in enumerate(zip(offers, regular), start=1):
        if not usual:
            before = len(result.observations)
            _parse_offer(number, offer, provider, catalog, result)
            seqs.extend(2 * number + (obs.price_type == SPOT) for obs in result.observations[before:])
    frames = [frame_from_observations(result.observations, seqs)]
    numbers = [n for n, usual in enumerate(regular, start=1) if usual]
    usual_offers = [offers[n - 1] for n in numbers]
    if usual_offers:
        frames.append(_usual_offers_frame(numbers, usual_offers, provider, catalog, result.rejections))
    return ColumnarResult(concat_frames(frames), result.rejections)


def _usual_shape(offer: object) -> bool:
    if type(offer) is not dict:
        return False
    gpu_name, num_gpus = offer.get("gpu_name"), offer.get("num_gpus")
    return (type(offer.get("id")) is int and type(gpu_name) is str and bool(gpu_name.strip())
            and type(num_gpus) is int and 1 <= num_gpus <= MAX_NUM_GPUS and offer.get("rentable") is not False
            and type(offer.get("dph_total")) in _NUMBER_TYPES and type(offer.get("min_bid")) in _OPTIONAL_NUMBER_TYPES
            and type(offer.get("gpu_ram")) in _OPTIONAL_NUMBER_TYPES)


_NUMBER_TYPES = (int, Decimal)
_OPTIONAL_NUMBER_TYPES = (int, Decimal, type(None))


def _usual_offers_frame(numbers: list[int], offers: list[dict], provider: str, catalog: Catalog,
                        rejections: list[Rejection]) -> pl.DataFrame:
    """The observations of offers of the usual shape, built by column; their rejections appended."""
    ids = [str(o["id"]) for o in offers]
    names = [o["gpu_name"] for o in offers]
    counts = [Decimal(o["num_gpus"]) for o in offers]
    memory_of = _memo(_nominal_mib)
    memories = [memory_of(o.get("gpu_ram")) for o in offers]
    resolutions: dict[tuple[str, int | None], object] = {}
    for name, memory in set(zip(names, memories)):
        resolutions[(name, memory)] = catalog.resolve_gpu(name, provider=provider, instance_type=name,
                                                          gpu_memory_mib=memory)
    instruments = [resolutions[key].canonical for key in zip(names, memories)]
    geolocations = [o.get("geolocation") for o in offers]
    present = set().union(*offers)  # the keys any offer has: a kept field no offer has costs nothing
    fragments = {
        "offer_id": json_fragments(ids),
        "gpu_name": json_fragments(names),
        "gpu_memory_mib": json_fragments(memories),
        **{field: json_fragments(list(map(dict.get, offers, repeat(field, len(offers)))))
           for field in KEPT_FIELDS if field in present},
    }
    per_offer = pl.DataFrame({
        "_number": numbers,
        "_id": ids,
        "instrument": pl.Series(instruments, dtype=pl.String),
        "source_instrument": names,
        "region": pl.Series([g if type(g) is str else None for g in geolocations], dtype=pl.String),
        "attributes": attributes_column(fragments, len(offers)),
    })
    known = [i for i, instrument in enumerate(instruments) if instrument is not None]
    for i, instrument in enumerate(instruments):
        if instrument is None:
            rejections.append(Rejection.of(f"{ids[i]}|*", "unknown_instrument", resolutions[(names[i], memories[i])].detail,
                                           _excerpt(offers[i])))
    frames = []
    for field_name, price_type in (("dph_total", ON_DEMAND), ("min_bid", SPOT)):
        rows, prices, price_array = _priced_rows(offers, known, field_name, price_type, ids, rejections)
        if not rows:
            continue
        picked = per_offer[rows]
        frames.append(frame_from_columns(len(rows), {
            "_seq": picked["_number"] * 2 + int(price_type == SPOT),
            "row_key": picked["_id"] + f"|{price_type}",
            "provider": provider,
            "instrument_kind": GPU,
            "instrument": picked["instrument"],
            "source_instrument": picked["source_instrument"],
            "price_type": price_type,
            "region": picked["region"],
            "gpu_count": [counts[i] for i in rows],
            "original_price": prices if price_array is None else price_array,
            "original_currency": "USD",
            "original_unit": "offer_hour",
            "usd_price": _per_gpu(prices, [counts[i] for i in rows]),
            "attributes": picked["attributes"],
        }))
    return concat_frames(frames)


def _priced_rows(offers: list[dict], candidates: list[int], field_name: str, price_type: str, ids: list[str],
                 rejections: list[Rejection]) -> tuple[list[int], list, pa.Array | None]:
    """(offers priced at this price type, their prices, the prices as DECIMAL(38, 18) when they all fit), the rules
    of _parse_offer: no spot offer when min_bid is absent or zero, bad_price when the number is negative or not one
    the readers accept."""
    if price_type == SPOT:
        candidates = [i for i in candidates if offers[i].get(field_name) is not None]
    values = [offers[i].get(field_name) for i in candidates]
    array = checked_prices(values)
    if array is not None:  # every value a readable number: only signs (and zeros of spot) left to look at
        refused = pc.less(array, 0)
        if price_type == SPOT:
            refused = pc.or_(refused, pc.equal(array, 0))
        if not pc.any(refused).as_py():
            return candidates, values, array
        numbers = values
    else:
        numbers = [_number(v) for v in values]
    kept, prices = [], []
    for i, value, price in zip(candidates, values, numbers):
        if price_type == SPOT and price == 0:
            continue
        if price is None or price < 0:
            rejections.append(Rejection.of(
                f"{ids[i]}|{price_type}", "bad_price",
                f"{field_name} {_show(value)} is not a non-negative number of at most 1e9", _excerpt(offers[i])))
            continue
        kept.append(i)
        prices.append(price)
    return kept, prices, None


def _per_gpu(prices: list, counts: list[Decimal]) -> list[Decimal]:
    """quantize_usd(price / count) for each pair: the same operations, without a call per row."""
    return [share.quantize(USD_PRICE_QUANTUM, rounding=ROUND_HALF_EVEN) for share in map(truediv, prices, counts)]


def _memo(function):
    """function(value), computed once per distinct value (a marketplace repeats a few memory sizes)."""
    seen: dict = {}

    def once(value):
        try:
            return seen[value]
        except KeyError:
            seen[value] = result = function(value)
            return result
        except TypeError:  # an unhashable value
            return function(value)

    return once


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
