"""SkyPilot catalog CSVs: one `vms.csv` per cloud, prices in USD per instance-hour.

Origin: github.com/skypilot-org/skypilot-catalog, `catalogs/<schema-version>/<cloud>/vms.csv`, refreshed by bots.
The body never names its cloud, so the provider comes from the request (`FetchRequest.provider`) or, for a saved
file, from its name (`context_for_file`).

What the files look like (see ../shared/data/real/SOURCES.md), and what this parser does about it:

- Columns appear in varying order and vary by cloud (no SpotPrice, an AvailabilityZone, an UpstreamCloudId):
  the parser reads the header and looks columns up by name, case-insensitively.
- Price and SpotPrice are USD per *instance*-hour; AcceleratorCount GPUs share that price, so the per-GPU-hour price
  is price / count. The count may be `8.0`, or a fraction of a GPU (`0.5`).
- An empty price cell means "not offered"; a spot price of `0.00` (Vast writes it on every row) means "no spot
  offer". Neither is an observation nor a rejection.
- CPU-only rows (no AcceleratorName) are recorded as rejections `no_accelerator`, so nothing vanishes silently. GCP's
  A2/A3/G2 machine rows are of this kind too: they carry only the host's price, while the GPUs are priced on their own
  rows with an empty InstanceType (kept, with the attribute `price_scope` = gpu_only; GCP publishes GPU prices so).
- Aggregators (Prime Intellect) name offers their own way (`hyperstack__1xH100_80GB__28__180`) and keep the upstream
  cloud's instance name in UpstreamCloudId (`n3-H100x1`); alias patterns are searched in both.
- Prices are read as written, float noise included (Cudo's `0.36979999999999996`); AWS adds an Arch column and GPU
  slices (`gr6f`: AcceleratorCount 0.5, GpuInfo Count 0); Shadeform states memory in GB under SizeInMiB.
- GpuInfo holds the per-GPU memory in five shapes (a Python-repr dict, the same with lowercase keys, real JSON,
  a bare name, or nothing) and that memory is sometimes wrong (Verda's older file and Vast write the instance
  total; Nebius writes host RAM; RunPod v8 writes GB). It is used only as a hint for names whose memory size
  decides the GPU (`A100` 40 vs 80 GB, `V100` 16 vs 32 GB), never trusted on its own.
- GPU names are mapped to canonical ids by the catalog (pipeline/catalog/gpu_aliases.csv). A name it cannot map
  with certainty (e.g. a bare `H100` whose form factor the data does not state) is a rejection
  `unknown_instrument`; TPUs and other non-GPU accelerators (Inferentia, Trainium, Gaudi, Qualcomm AI 100) are
  rejections `not_a_gpu` (GCP gives TPU slices a placeholder price of 700.0: refused before any price is read).

Prices are parsed with Decimal from the text of the cell (pipeline.records.read_decimal); no float ever touches them.

Hostile bodies (issue 10) are refused, never read as prices and never an exception of another kind:

- A body whose last line has no line end is cut short (a truncated download: `...,4` where the price was `4.77`):
  ParseError "cut short". Every real catalog ends with a line end.
- A header that repeats a column this parser reads (`Price` twice, compared case-insensitively): which copy holds
  the value cannot be known, so the body fails with a ParseError naming the column.
- A price that is not a plain number within 1e9 (`1e20`, `NaN`, 1_000) is `bad_price`; so is a price whose per-GPU
  value would exceed 1e9. A count that is not such a number is `bad_gpu_count`.
- A GpuInfo cell nested deeper than MAX_GPU_INFO_DEPTH or longer than MAX_GPU_INFO_CHARS (a 5,000-deep dict, which
  made json.loads raise RecursionError) is not read: the row is `malformed_row`.
"""
from __future__ import annotations

import ast
import csv
import io
import json
import math
import re
from collections import Counter
from collections.abc import Iterable
from typing import NamedTuple
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

import httpx

from pipeline.catalog import Catalog, Resolution, default_catalog, gpu_name_key
from pipeline.columnar import ColumnarResult
from pipeline.http import FetchedBody, fetch_body, utc_now
from pipeline.records import (
    GPU,
    ON_DEMAND,
    SPOT,
    Observation,
    ParseContext,
    ParseError,
    ParseResult,
    MAX_MAGNITUDE,
    Rejection,
    quantize_usd,
    read_decimal,
)
from pipeline.sources import FetchRequest

SOURCE_ID = "skypilot"
KIND = GPU
DESCRIPTION = "SkyPilot per-cloud VM catalogs (github.com/skypilot-org/skypilot-catalog), USD per instance-hour"

CATALOG_URL = "https://raw.githubusercontent.com/skypilot-org/skypilot-catalog/master/catalogs/{version}/{cloud}/vms.csv"

# The clouds a live collection fetches: (catalog schema version, cloud), every cloud this module parses. v7 and v8
# are the versions the catalog repository still refreshes (v5/v6 are frozen); each cloud is fetched under the
# version it is published in (Verda, Hyperstack, AWS, GCP, Cudo, Hyperbolic, Mithril, Prime Intellect, Seeweb and
# Shadeform from v8; the others' v7 files are the current ones). Segments (pipeline/catalog/providers.csv): aws and
# gcp hyperscaler; shadeform, mithril, simplepod and vast marketplace (the `vast` catalog is the provider `vast` of
# the Vast API source too: one provider, one vote); the rest specialist. The demo recordings under
# tests/fixtures/demo/ cover exactly these clouds, so adding one here means recording it there too.
CLOUDS: tuple[tuple[str, str], ...] = (
    ("v7", "lambda"),
    ("v7", "runpod"),
    ("v7", "fluidstack"),
    ("v7", "paperspace"),
    ("v7", "do"),
    ("v8", "verda"),
    ("v7", "nebius"),
    ("v7", "vast"),
    ("v8", "hyperstack"),
    ("v8", "aws"),
    ("v8", "gcp"),
    ("v8", "cudo"),
    ("v8", "hyperbolic"),
    ("v8", "mithril"),
    ("v8", "primeintellect"),
    ("v8", "seeweb"),
    ("v8", "shadeform"),
    ("v7", "simplepod"),
)

# Other clouds whose catalogs exist and parse with this module, kept for later (not fetched by default: no demo
# recordings). Pass them to `requests(clouds=[...])` to fetch them. Every known cloud is in CLOUDS today.
OTHER_KNOWN_CLOUDS: tuple[tuple[str, str], ...] = ()

# Catalogs are small (all but AWS's are under 100 kB; AWS's, listing every zone, is the largest at some MB): 32 MiB
# leaves ample room and still refuses a runaway body.
MAX_BODY_BYTES = 32 * 1024 * 1024

# Columns every catalog has; matched case-insensitively (the schema README spells GPUInfo, the files GpuInfo).
# A price column is required too, but either one will do (some clouds have no SpotPrice).
REQUIRED_COLUMNS = ("InstanceType", "AcceleratorName", "AcceleratorCount", "Region")
PRICE_COLUMNS = {"price": ON_DEMAND, "spotprice": SPOT}
# Every column the parser reads (lowercase): a header that repeats one of them fails the body.
READ_COLUMNS = tuple(name.lower() for name in REQUIRED_COLUMNS) + tuple(PRICE_COLUMNS) + (
    "gpuinfo", "availabilityzone", "upstreamcloudid")
# The longest GpuInfo cell read (real ones are under 300 characters) and the deepest nesting of its brackets (real
# ones: 4); a longer or deeper one is a hostile cell, refused before json or ast reads it.
MAX_GPU_INFO_CHARS = 4096
MAX_GPU_INFO_DEPTH = 16

# Accelerators that are not GPUs (Google TPUs, AWS Inferentia/Trainium, Intel Gaudi): a clearer reason than
# `unknown_instrument`, since no alias will ever map them to a GPU index.
NOT_A_GPU = re.compile(r"^(tpu[-_]|inferentia|trainium|gaudi|qualcomm)", re.I)

# A GPU's memory written in the SizeInMiB field but below 1 GiB can only be in GiB (RunPod's v8 catalog writes
# `'SizeInMiB': 80` for an 80 GB card); no GPU in any catalog has less than 1 GiB.
_SMALLEST_PLAUSIBLE_MIB = 1024
# How far a stated memory may be from a round number of GiB and still count as that size (nvidia-smi reports
# 81559 MiB for an 80 GB card, 40536 for a 40 GB one, 16160 for a 16 GB one).
_SNAP_TOLERANCE = Decimal("0.03")
# How far a stated memory may be from the canonical GPU's nominal size and still be kept as an attribute.
_CONSISTENT_TOLERANCE = Decimal("0.25")
# Two memories this close are "the same" when comparing a multi-GPU row with its single-GPU sibling.
_SAME_TOLERANCE = Decimal("0.02")

_SIZE_IN_MIB = re.compile(r"""["']?sizeinmib["']?\s*:\s*(\d{1,9})(?!\d)""", re.I)
_GPU_NAME = re.compile(r"""["']?name["']?\s*:\s*["']([^"']+)["']""", re.I)


# --------------------------------------------------------------------------------------------- fetching


def requests(clouds: Iterable[str] | None = None) -> list[FetchRequest]:
    """One request per cloud; `clouds` (names) picks from CLOUDS and OTHER_KNOWN_CLOUDS, default: CLOUDS."""
    known = dict((cloud, version) for version, cloud in CLOUDS + OTHER_KNOWN_CLOUDS)
    if clouds is None:
        chosen = [(version, cloud) for version, cloud in CLOUDS]
    else:
        chosen = []
        for cloud in clouds:
            if cloud not in known:
                raise ValueError(f"unknown SkyPilot cloud {cloud!r}; known: {', '.join(sorted(known))}")
            chosen.append((known[cloud], cloud))
    return [
        FetchRequest(source=SOURCE_ID, url=CATALOG_URL.format(version=version, cloud=cloud), provider=cloud)
        for version, cloud in chosen
    ]


def fetch(client: httpx.Client, request: FetchRequest, clock=utc_now) -> FetchedBody:
    return fetch_body(client, request.url, max_bytes=MAX_BODY_BYTES, clock=clock)


def context_for_file(path: Path, observed_at: datetime) -> ParseContext:
    """`tsi parse skypilot FILE`: the cloud is in the file name (`lambda_vms.csv`, `verda_vms_older.csv`) or, for
    the origin layout `catalogs/v7/lambda/vms.csv`, in the folder name."""
    path = Path(path)
    stem = path.stem.lower()
    if stem == "vms":
        provider = path.resolve().parent.name.lower()
    elif "_vms" in stem:
        provider = stem.split("_vms", 1)[0]
    else:
        provider = ""
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*", provider):
        raise ValueError(
            f"cannot tell the cloud of SkyPilot catalog {str(path)!r}: name it <cloud>_vms.csv "
            "(e.g. lambda_vms.csv) or keep the origin layout <cloud>/vms.csv"
        )
    return ParseContext(source=SOURCE_ID, observed_at=observed_at, url=path.resolve().as_uri(), provider=provider)


# --------------------------------------------------------------------------------------------- parsing


def parse(raw: bytes, ctx: ParseContext, catalog: Catalog | None = None) -> ParseResult:
    if not ctx.provider:
        raise ParseError("a SkyPilot catalog does not name its cloud: the ParseContext must give the provider")
    catalog = catalog or default_catalog()
    provider = ctx.provider
    rows, columns = _read_rows(raw)
    memory_reference = _single_gpu_memories(rows, columns)

    result = ParseResult()
    for number, (line, cells) in enumerate(rows, start=1):
        if len(cells) != len(columns):
            result.rejections.append(
                Rejection.of(
                    f"row {number}|malformed",
                    "malformed_row",
                    f"row has {len(cells)} fields, the header has {len(columns)}",
                    line.rstrip("\r\n"),
                )
            )
            continue
        row = dict(zip(columns, (cell.strip() for cell in cells)))
        _parse_row(row, line.rstrip("\r\n"), provider, catalog, memory_reference, result)
    return result


def parse_columns(raw: bytes, ctx: ParseContext, catalog: Catalog | None = None) -> ColumnarResult:
    """parse(), as columns: the path of a large catalog (pipeline.sources.skypilot_columns)."""
    from pipeline.sources.skypilot_columns import parse_catalog_columns

    return parse_catalog_columns(raw, ctx, catalog)


def _read_rows(raw: bytes) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """Decode, read the header, check the columns; return (line text, cells) per data row and the column names."""
    try:
        text = raw.decode("utf-8-sig")  # a BOM, if any, is dropped
    except UnicodeDecodeError as exc:
        raise ParseError(f"SkyPilot catalog is not UTF-8: {exc}") from None
    if not text.strip():
        raise ParseError("SkyPilot catalog body is empty")
    if not text.endswith(("\n", "\r")):
        last = text.rsplit("\n", 1)[-1]
        raise ParseError(
            f"SkyPilot catalog is cut short: its last line has no line end (a truncated body?): {last[-80:]!r}"
        )
    # StringIO with newline="" splits on \n, \r\n and \r only and keeps them, as the csv module expects. The
    # reader's line_num says how many lines each row took: a row's own text is those lines (its excerpt).
    lines = list(io.StringIO(text, newline=""))
    reader = csv.reader(lines)
    try:
        header = next(reader)
        while not "".join(header).strip():  # blank lines before the header
            header = next(reader)
    except StopIteration:
        raise ParseError("SkyPilot catalog has no header line") from None
    except csv.Error as exc:
        raise ParseError(f"SkyPilot catalog header is not CSV: {exc}") from None
    consumed = reader.line_num  # the header's text is not part of the first row's excerpt
    columns = [name.strip().lower() for name in header]
    counts = Counter(columns)
    repeated = [name for name in READ_COLUMNS if counts[name] > 1]
    if repeated:
        spelled = [" / ".join(cell.strip() for cell in header if cell.strip().lower() == name) for name in repeated]
        raise ParseError(
            f"SkyPilot catalog header repeats column(s) {'; '.join(spelled)} (compared case-insensitively): "
            "which copy holds the value cannot be known"
        )
    missing = [name for name in REQUIRED_COLUMNS if name.lower() not in columns]
    if not any(name in columns for name in PRICE_COLUMNS):
        missing.append("Price or SpotPrice")
    if missing:
        raise ParseError(
            f"SkyPilot catalog lacks required column(s) {', '.join(missing)}; header was {','.join(header)[:200]!r}"
        )
    try:
        records = list(reader)
    except csv.Error:
        records = None  # read again row by row below, to say where
    if records is not None and consumed + len(records) == len(lines):
        # Every record one line (no quoted line break anywhere, the usual case): record i is line i.
        return [(lines[consumed + i], cells) for i, cells in enumerate(records)
                if cells and (cells[0].strip() or "".join(cells).strip())], columns  # blank lines are no rows
    return _rows_line_by_line(lines, consumed), columns


def _rows_line_by_line(lines: list[str], consumed: int) -> list[tuple[str, list[str]]]:
    """The data rows after the header's `consumed` lines, each with the text of the lines it took."""
    reader = csv.reader(lines[consumed:])
    start = 0
    rows = []
    try:
        for cells in reader:
            end = reader.line_num
            line = lines[consumed + start] if end == start + 1 else "".join(lines[consumed + start:consumed + end])
            start = end
            if not cells or not "".join(cells).strip():
                continue  # blank line
            rows.append((line, cells))
    except csv.Error as exc:
        near = "".join(lines[consumed + start:consumed + reader.line_num])
        raise ParseError(f"SkyPilot catalog is not valid CSV near {near[:120]!r}: {exc}") from None
    return rows


def _parse_row(
    row: dict[str, str],
    line: str,
    provider: str,
    catalog: Catalog,
    memory_reference: dict[str, int],
    result: ParseResult,
) -> None:
    instance_type = row["instancetype"]
    accelerator = row["acceleratorname"]
    region = row["region"]
    zone = row.get("availabilityzone", "")
    upstream = row.get("upstreamcloudid", "")
    base_key = f"{_instance_label(instance_type, accelerator, row['acceleratorcount'])}|{region}|{zone}"
    identity = _identity(instance_type, accelerator, row["acceleratorcount"], row.get("gpuinfo", ""), upstream,
                         provider, catalog, memory_reference)
    if isinstance(identity, _Refusal):
        result.rejections.append(Rejection.of(f"{base_key}|*", identity.reason, identity.detail, line))
        return
    canonical, memory_mib, count = identity
    attributes = _attributes(instance_type, memory_mib, zone, upstream)
    for column, price_type in PRICE_COLUMNS.items():
        if column not in row:
            continue  # this cloud has no such price (e.g. no SpotPrice column at all)
        priced = _price(column, price_type, row[column], count)
        if priced is None:
            continue
        if isinstance(priced, _Refusal):
            result.rejections.append(Rejection.of(f"{base_key}|{price_type}", priced.reason, priced.detail, line))
            continue
        price, usd_price = priced
        result.observations.append(
            Observation(
                row_key=f"{base_key}|{price_type}",
                provider=provider,
                instrument_kind=GPU,
                instrument=canonical,
                source_instrument=accelerator,
                price_type=price_type,
                original_price=price,
                original_currency="USD",
                original_unit="instance_hour",
                usd_price=usd_price,
                region=region or None,
                gpu_count=count,
                attributes=dict(attributes),
            )
        )


class _Refusal(NamedTuple):
    reason: str
    detail: str


def _instance_label(instance_type: str, accelerator: str, count_text: str) -> str:
    # GCP lists GPUs that attach to any VM with an empty InstanceType; the GPU and its count then name the row.
    return instance_type or f"[{accelerator} x{count_text}]"


def _identity(instance_type: str, accelerator: str, count_text: str, gpu_info: str, upstream: str, provider: str,
              catalog: Catalog, memory_reference: dict[str, int]) -> tuple[str, int | None, Decimal] | _Refusal:
    """What GPU a row prices, from the cells that say it: (canonical GPU, memory worth keeping, GPU count), or
    the row's refusal. The same cells give the same answer, so the columnar path asks once per distinct set."""
    instance_label = _instance_label(instance_type, accelerator, count_text)
    if not accelerator:
        # GCP's A2/A3/G2 machine rows carry only the host (vCPU and RAM) part of the price: their GPUs are priced on
        # their own accelerator rows, so the host row is no GPU observation either.
        return _Refusal("no_accelerator",
                        f"{instance_label!r} has no GPU on this row (a CPU-only instance or a host-only price)")
    count = _parse_count(count_text)
    if count is None:
        return _Refusal("bad_gpu_count", f"AcceleratorCount {count_text!r} is not a positive number")
    if NOT_A_GPU.match(accelerator):
        return _Refusal("not_a_gpu",
                        f"accelerator {accelerator!r} is not a GPU (TPU, Inferentia, Trainium, Gaudi or Qualcomm AI)")
    try:
        info_name, stated_mib = _gpu_info(gpu_info)
    except _HostileCell as exc:
        return _Refusal("malformed_row", f"GpuInfo {exc}")
    # Aggregators (Prime Intellect) name the offer their way and keep the upstream cloud's own instance name beside
    # it; alias patterns are searched in both, since the upstream name is often the one that states the form factor.
    described_as = f"{instance_type} {upstream}".strip() if upstream and upstream != instance_type else instance_type
    canonical, memory_mib, detail = _resolve(
        catalog, accelerator, info_name, provider, described_as, count, stated_mib, memory_reference
    )
    if canonical is None:
        return _Refusal("unknown_instrument", detail)
    return canonical, memory_mib, count


def _attributes(instance_type: str, memory_mib: int | None, zone: str, upstream: str) -> dict:
    attributes: dict = {"instance_type": instance_type}
    if memory_mib is not None:
        attributes["gpu_memory_mib"] = memory_mib
    if zone:
        attributes["availability_zone"] = zone
    if upstream:
        attributes["upstream_cloud_id"] = upstream
    if not instance_type:
        # GCP's attachable-GPU rows: the price of the GPUs alone, without the VM they attach to (GCP publishes its
        # GPU prices this way too). Kept, and marked, so that a methodology can tell them from all-in instance prices.
        attributes["price_scope"] = "gpu_only"
    return attributes


def _price(column: str, price_type: str, cell: str, count: Decimal) -> tuple[Decimal, Decimal] | _Refusal | None:
    """(price as written, USD per GPU-hour) of one price cell, None when the cell offers nothing (empty, or a spot
    price of 0), or the cell's refusal."""
    if not cell:
        return None  # empty: not offered at this price type
    price = _parse_decimal(cell)
    if price is None or price < 0:
        return _Refusal("bad_price", f"{column} {cell[:80]!r} is not a non-negative number within {MAX_MAGNITUDE}")
    if price == 0 and price_type == SPOT:
        return None  # 0.00 spot = no spot offer (Vast writes it on every row)
    if price / count > MAX_MAGNITUDE:
        return _Refusal("bad_price", f"{column} {cell!r} over {count} GPUs is beyond {MAX_MAGNITUDE} per GPU-hour")
    # A zero on-demand price is passed on as is: the shared checks reject it as not_positive.
    return price, quantize_usd(price / count)


def _parse_decimal(text: str) -> Decimal | None:
    """The exact number of a cell, or None (see read_decimal: not a number, NaN, beyond 1e9, over-long)."""
    return read_decimal(text)


def _parse_count(text: str) -> Decimal | None:
    value = _parse_decimal(text)
    if value is None or value <= 0:
        return None
    # `8.0` and `8` are the same count; a fraction of a GPU (0.5) stays a fraction.
    return Decimal(int(value)) if value == value.to_integral_value() else value


# --------------------------------------------------------------------------------------------- GPU identity


def _gpu_info(text: str) -> tuple[str | None, int | None]:
    """(GPU name, per-GPU memory in MiB as stated) from a GpuInfo cell, each None when absent.

    The cell is a Python-repr dict, the same with lowercase keys (DigitalOcean), real JSON (Verda), a bare name
    (RunPod v5, Paperspace) or empty. Hyperstack's dict mixes Python quotes with JSON's `null`, which neither
    ast.literal_eval nor json.loads accepts, so a regular expression is the last resort. Never eval().
    """
    text = text.strip()
    if not text:
        return None, None
    if len(text) > MAX_GPU_INFO_CHARS:
        raise _HostileCell(f"is {len(text)} characters long (at most {MAX_GPU_INFO_CHARS} are read)")
    if not text.startswith("{"):
        return text, None  # a bare name, e.g. RTX_A6000
    depth = _nesting_depth(text)
    if depth > MAX_GPU_INFO_DEPTH:
        raise _HostileCell(f"is nested {depth} deep (at most {MAX_GPU_INFO_DEPTH} levels are read)")
    data = None
    try:
        data = json.loads(text)
    except RecursionError:
        raise _HostileCell("is nested too deep to read") from None
    except ValueError:
        try:
            data = ast.literal_eval(text)
        except (MemoryError, RecursionError):
            raise _HostileCell("is nested too deep to read") from None
        except (ValueError, SyntaxError, TypeError, OverflowError):
            data = None
    if isinstance(data, dict):
        gpus = _get_ci(data, "gpus")
        first = gpus[0] if isinstance(gpus, list) and gpus and isinstance(gpus[0], dict) else {}
        name = _get_ci(first, "name")
        memory = _get_ci(_get_ci(first, "memoryinfo") or {}, "sizeinmib")
        name = name if isinstance(name, str) and name.strip() else None
        return name, _memory_number(memory)
    size, name = _SIZE_IN_MIB.search(text), _GPU_NAME.search(text)
    return (name.group(1) if name else None), (int(size.group(1)) if size and int(size.group(1)) > 0 else None)


def _nesting_depth(text: str) -> int:
    """The deepest nesting of brackets in the text (quotes ignored: an upper bound is all that is needed)."""
    depth = deepest = 0
    for char in text:
        if char in "{[(":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "}])":
            depth = max(0, depth - 1)
    return deepest


class _HostileCell(Exception):
    """A GpuInfo cell this parser will not read (too long, nested too deep): the row is refused."""


def _memory_number(value: object) -> int | None:
    """A stated memory in whole MiB, or None: a positive int or finite float within 1e9 (json gives `81920.0`)."""
    if isinstance(value, float):
        if not math.isfinite(value) or not 0 < value <= float(MAX_MAGNITUDE):
            return None
        return int(value)
    number = read_decimal(value)
    return int(number) if number is not None and number > 0 else None


def _get_ci(mapping: object, key: str):
    """dict lookup ignoring key case: DigitalOcean writes 'gpus'/'sizeinmib' where others write 'Gpus'/'SizeInMiB'."""
    if not isinstance(mapping, dict):
        return None
    for k, v in mapping.items():
        if isinstance(k, str) and k.lower() == key:
            return v
    return None


def _as_mib(stated: int | None) -> int | None:
    if stated is None:
        return None
    return stated * 1024 if stated < _SMALLEST_PLAUSIBLE_MIB else stated


def _single_gpu_memories(rows: list[tuple[str, list[str]]], columns: list[str]) -> dict[str, int]:
    """Per GPU name, the memory most often stated on single-GPU rows of this file.

    Multi-GPU rows state either the per-GPU memory (most clouds) or the instance total (Vast, Verda's older
    file). Comparing a multi-GPU row with its single-GPU siblings tells which, per file, without trusting either.
    """
    if "gpuinfo" not in columns:
        return {}
    whole = [cells for _line, cells in rows if len(cells) == len(columns)]
    return _memory_reference(_column(whole, columns, "acceleratorname"), _column(whole, columns, "acceleratorcount"),
                             _column(whole, columns, "gpuinfo"))


def _column(rows: list[list[str]], columns: list[str], name: str) -> list[str]:
    """The stripped cells of one column (as dict(zip(columns, cells)) reads a row: the last column of that name),
    or empty cells when the file has no such column."""
    if name not in columns:
        return [""] * len(rows)
    position = len(columns) - 1 - columns[::-1].index(name)
    return [cells[position].strip() for cells in rows]


def _memory_reference(accelerators: list[str], count_texts: list[str], gpu_infos: list[str]) -> dict[str, int]:
    count_of, info_of = _memo(_parse_count), _memo(_stated_memory)
    seen: dict[str, Counter] = {}
    for accelerator, count_text, info in zip(accelerators, count_texts, gpu_infos):
        if not accelerator or count_of(count_text) != 1:
            continue
        memory = info_of(info)
        if memory is not None:
            seen.setdefault(gpu_name_key(accelerator), Counter())[memory] += 1
    return {name: counter.most_common(1)[0][0] for name, counter in seen.items()}


def _stated_memory(gpu_info: str) -> int | None:
    try:
        return _as_mib(_gpu_info(gpu_info)[1])
    except _HostileCell:
        return None  # refused as malformed_row when the row itself is read


def _memo(function):
    """function(value), computed once per distinct value (a catalog repeats its cells region after region)."""
    seen: dict = {}

    def once(*key):
        try:
            return seen[key]
        except KeyError:
            seen[key] = result = function(*key)
            return result

    return once


def _close(a: Decimal | int, b: Decimal | int, tolerance: Decimal) -> bool:
    a, b = Decimal(a), Decimal(b)
    return b != 0 and abs(a - b) <= tolerance * abs(b)


def _snap(mib: int) -> int:
    """Round to a whole number of GiB when the stated value is within 3% of one (81559 -> 81920)."""
    gib = (Decimal(mib) / 1024).to_integral_value()
    return int(gib) * 1024 if gib > 0 and _close(mib, gib * 1024, _SNAP_TOLERANCE) else mib


def _memory_candidates(
    accelerator: str, count: Decimal, stated: int | None, memory_reference: dict[str, int]
) -> list[int | None]:
    """Per-GPU memories to try, most likely first (see _single_gpu_memories)."""
    stated = _as_mib(stated)
    if stated is None:
        return [None]
    if count == 1:
        return [stated]
    divided = Decimal(stated) / count
    per_gpu_if_total = int(divided) if divided == divided.to_integral_value() else None
    reference = memory_reference.get(gpu_name_key(accelerator))
    if reference is not None:
        if _close(stated, reference, _SAME_TOLERANCE):
            return [stated]  # this file states memory per GPU
        if _close(stated, reference * count, _SAME_TOLERANCE):
            return [per_gpu_if_total or reference]  # this file states the instance total
    # No sibling to compare with: the stated value first, the total reading only if the first maps to nothing.
    return [stated] + ([per_gpu_if_total] if per_gpu_if_total else [])


def _resolve(
    catalog: Catalog,
    accelerator: str,
    info_name: str | None,
    provider: str,
    instance_type: str,
    count: Decimal,
    stated_mib: int | None,
    memory_reference: dict[str, int],
) -> tuple[str | None, int | None, str]:
    """(canonical GPU, per-GPU memory worth keeping, failure detail).

    The AcceleratorName is tried first; GpuInfo's own name (e.g. RunPod's 'A100 PCIe', Hyperstack's
    'H100-80G-PCIe') only when the AcceleratorName maps to nothing, since it is the same cloud describing the
    same GPU. Memory candidates are tried in order; the first that resolves wins.
    """
    names = [accelerator]
    if info_name and gpu_name_key(info_name) != gpu_name_key(accelerator):
        names.append(info_name)
    first_failure: Resolution | None = None
    for memory in _memory_candidates(accelerator, count, stated_mib, memory_reference):
        for name in names:
            resolution = catalog.resolve_gpu(
                name,
                provider=provider,
                instance_type=instance_type,
                gpu_memory_mib=_snap(memory) if memory is not None else None,
            )
            if resolution.canonical is not None:
                return resolution.canonical, _consistent_memory(catalog, resolution.canonical, memory, count), ""
            first_failure = first_failure or resolution
    assert first_failure is not None
    return None, None, first_failure.detail


def _consistent_memory(catalog: Catalog, canonical: str, memory: int | None, count: Decimal) -> int | None:
    """The stated per-GPU memory if it agrees with the GPU's nominal size, else None (it is only a hint: Nebius
    states host RAM there, Verda's older file and Vast the instance total)."""
    if memory is None:
        return None
    nominal_gb = (catalog.gpus.get(canonical) or {}).get("memory_gb", "")
    try:
        nominal_mib = Decimal(nominal_gb) * 1024
    except InvalidOperation:
        return memory  # nothing to compare with: keep what the source says
    for candidate in (memory, Decimal(memory) / count if count > 1 else None):
        if candidate is not None and _close(candidate, nominal_mib, _CONSISTENT_TOLERANCE):
            return int(candidate)
    return None
