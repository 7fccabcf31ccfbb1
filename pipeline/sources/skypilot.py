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
- A GpuInfo cell nested deeper than MAX_GPU_INFO_DEPTH or longer than MAX_GPU_INFO_CHARS (skypilot_gpus: a 5,000-deep
  dict made json.loads raise RecursionError) is not read: the row is `malformed_row`.

This module fetches and reads a catalog row by row; what GPU a row prices is skypilot_gpus', and the columnar path of a
large catalog (parse_columns) is skypilot_cells (the cells, by column) and skypilot_columns (the rows).
"""
from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from pathlib import Path

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
    ParseError,
    ParseResult,
    MAX_MAGNITUDE,
    Rejection,
    quantize_usd,
    read_decimal,
)
from pipeline.sources import FetchRequest
from pipeline.sources.skypilot_gpus import Refusal, identity, instance_label, reference_memories

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
            result.rejections.append(_malformed(number, len(cells), len(columns), line.rstrip("\r\n")))
            continue
        row = dict(zip(columns, (cell.strip() for cell in cells)))
        _parse_row(row, line.rstrip("\r\n"), provider, catalog, memory_reference, result)
    return result


def parse_columns(raw: bytes, ctx: ParseContext, catalog: Catalog | None = None) -> ColumnarResult:
    """parse(), as columns: the path of a large catalog (pipeline.sources.skypilot_columns)."""
    from pipeline.sources.skypilot_columns import parse_catalog_columns

    return parse_catalog_columns(raw, ctx, catalog)


def _malformed(number: int, fields: int, expected: int, line: str) -> Rejection:
    """The rejection of data row `number` (blank lines not counted), whose field count is not the header's."""
    detail = f"row has {fields} fields, the header has {expected}"
    return Rejection.of(f"row {number}|malformed", "malformed_row", detail, line)


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
    columns = _header_columns(header)
    try:
        records = list(reader)
    except csv.Error:
        records = None  # read again row by row below, to say where
    if records is not None and consumed + len(records) == len(lines):
        # Every record one line (no quoted line break anywhere, the usual case): record i is line i.
        return [(lines[consumed + i], cells) for i, cells in enumerate(records)
                if cells and (cells[0].strip() or "".join(cells).strip())], columns  # blank lines are no rows
    return _rows_line_by_line(lines, consumed), columns


def _header_columns(header: list[str]) -> list[str]:
    """The column names (stripped, lowercase) of a header's cells; a ParseError if it repeats a column this parser
    reads or lacks a required one."""
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
    return columns


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
    base_key = f"{instance_label(instance_type, accelerator, row['acceleratorcount'])}|{region}|{zone}"
    gpu = identity(instance_type, accelerator, row["acceleratorcount"], row.get("gpuinfo", ""), upstream, provider,
                   catalog, memory_reference)
    if isinstance(gpu, Refusal):
        result.rejections.append(Rejection.of(f"{base_key}|*", gpu.reason, gpu.detail, line))
        return
    canonical, memory_mib, count = gpu
    attributes = _attributes(instance_type, memory_mib, zone, upstream)
    for column, price_type in PRICE_COLUMNS.items():
        if column not in row:
            continue  # this cloud has no such price (e.g. no SpotPrice column at all)
        priced = _price(column, price_type, row[column], count)
        if priced is None:
            continue
        if isinstance(priced, Refusal):
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


def _price(column: str, price_type: str, cell: str, count: Decimal) -> tuple[Decimal, Decimal] | Refusal | None:
    """(price as written, USD per GPU-hour) of one price cell, None when the cell offers nothing (empty, or a spot
    price of 0), or the cell's refusal."""
    if not cell:
        return None  # empty: not offered at this price type
    price = _parse_decimal(cell)
    if price is None or price < 0:
        return Refusal("bad_price", f"{column} {cell[:80]!r} is not a non-negative number within {MAX_MAGNITUDE}")
    if price == 0 and price_type == SPOT:
        return None  # 0.00 spot = no spot offer (Vast writes it on every row)
    if price / count > MAX_MAGNITUDE:
        return Refusal("bad_price", f"{column} {cell!r} over {count} GPUs is beyond {MAX_MAGNITUDE} per GPU-hour")
    # A zero on-demand price is passed on as is: the shared checks reject it as not_positive.
    return price, quantize_usd(price / count)


def _parse_decimal(text: str) -> Decimal | None:
    """The exact number of a cell, or None (see read_decimal: not a number, NaN, beyond 1e9, over-long)."""
    return read_decimal(text)


# --------------------------------------------------------------------------------------------- memory reference


def _single_gpu_memories(rows: list[tuple[str, list[str]]], columns: list[str]) -> dict[str, int]:
    """Per GPU name, the memory most often stated on single-GPU rows of this file.

    Multi-GPU rows state either the per-GPU memory (most clouds) or the instance total (Vast, Verda's older
    file). Comparing a multi-GPU row with its single-GPU siblings tells which, per file, without trusting either.
    """
    if "gpuinfo" not in columns:
        return {}
    whole = [cells for _line, cells in rows if len(cells) == len(columns)]
    return reference_memories(_column(whole, columns, "acceleratorname"), _column(whole, columns, "acceleratorcount"),
                              _column(whole, columns, "gpuinfo"))


def _column(rows: list[list[str]], columns: list[str], name: str) -> list[str]:
    """The stripped cells of one column (as dict(zip(columns, cells)) reads a row: the last column of that name),
    or empty cells when the file has no such column."""
    if name not in columns:
        return [""] * len(rows)
    position = len(columns) - 1 - columns[::-1].index(name)
    return [cells[position].strip() for cells in rows]
