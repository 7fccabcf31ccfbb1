"""Provider pricing pages read as tables: one mechanism, one entry per page in html_pages.toml.

Each page entry names the CSS selectors of its table(s), header cells, rows and cells, which header text holds which
field (GPU, GPU count, memory, prices), the price unit (per GPU-hour or per instance-hour) and the exact form a price
cell must have. Lambda (a <table> per tab) and CoreWeave (a grid of <div>s) are the shipped entries; adding a provider
page is configuration.

The parser is strict about structure and forgiving about nothing else:

- No element matching the table selector, a table lacking an expected header, or tables with no data row at all: the
  body fails with a ParseError naming what is missing (a page whose structure changed is a failed source, never zero
  rows and never rows read from the wrong column).
- Within a sound table, a row that cannot be priced is a rejection with its reason: a GPU the catalog does not know or a
  GPU cell the page's pattern does not fit (`unknown_instrument`), no GPU count (`bad_gpu_count`), a price cell with no
  number ("Contact sales": `no_price`), a number in another form than the page's price pattern (a monthly price: the
  wrong unit, `unexpected_unit`), too few cells (`malformed_row`). An empty or dash cell means "not offered" at that price
  type, as an empty catalog cell does.
- Prices are read with Decimal from the cell text ("$2,149.00" -> 2149.00). A per-instance price is divided by the GPU
  count; a per-GPU price is taken as is.

BeautifulSoup always runs with the "lxml" parser (fast, lenient with real-world markup, same result everywhere).
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path

import httpx
from bs4 import BeautifulSoup
import soupsieve  # BeautifulSoup's own selector engine (a dependency of beautifulsoup4)
from soupsieve import SelectorSyntaxError

from pipeline.catalog import Catalog, default_catalog
from pipeline.http import FetchedBody, fetch_body, utc_now
from pipeline.records import (
    GPU,
    ON_DEMAND,
    SPOT,
    Observation,
    ParseContext,
    ParseError,
    ParseResult,
    Rejection,
    quantize_usd,
)
from pipeline.sources import FetchRequest

SOURCE_ID = "html_tables"
KIND = GPU
DESCRIPTION = "Provider pricing pages (Lambda, CoreWeave, ...) read as HTML tables configured in html_pages.toml"

CONFIG_FILE = Path(__file__).with_name("html_pages.toml")
MAX_BODY_BYTES = 8 * 1024 * 1024

PRICE_FIELDS = {"on_demand": ON_DEMAND, "spot": SPOT, "reserved_1m": "reserved_1m", "reserved_1y": "reserved_1y",
                "reserved_3y": "reserved_3y"}
OTHER_FIELDS = {"gpu", "gpu_count", "gpu_memory", "region"}
PAGE_KEYS = {"id", "provider", "url", "tables", "header_cells", "rows", "cells", "price_unit", "currency",
             "gpu_pattern", "price_pattern", "expect_headers", "columns", "gpu_memory_is_total"}
PRICE_UNITS = {"gpu_hour", "instance_hour"}
# A cell that only says "not offered here".
_NOT_OFFERED = re.compile(r"^(|-|–|—|n/?a)$", re.I)
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")


@dataclass(frozen=True)
class Page:
    id: str
    provider: str
    url: str
    tables: str
    header_cells: str
    rows: str
    cells: str
    price_unit: str
    currency: str
    gpu_pattern: re.Pattern
    price_pattern: re.Pattern
    columns: dict[str, str]
    expect_headers: tuple[str, ...] = ()
    gpu_memory_is_total: bool = False
    price_columns: dict[str, str] = field(default_factory=dict)  # price type -> field name (on_demand, spot, ...)


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text or "").strip()


def load_pages(path: Path = CONFIG_FILE) -> list[Page]:
    return list(_load_pages(Path(path)))


@lru_cache(maxsize=4)
def _load_pages(path: Path) -> tuple[Page, ...]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: no such page configuration") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    pages, seen = [], set()
    for number, entry in enumerate(document.get("page", []), start=1):
        where = f"{path}: page #{number} ({entry.get('id', 'no id')})"
        unknown = set(entry) - PAGE_KEYS
        missing = {"id", "provider", "url", "tables", "header_cells", "rows", "cells", "price_unit", "gpu_pattern",
                   "price_pattern", "columns"} - set(entry)
        if unknown or missing:
            raise ValueError(f"{where}: unknown keys {sorted(unknown)}, missing keys {sorted(missing)}")
        if entry["id"] in seen:
            raise ValueError(f"{where}: id {entry['id']!r} is used twice")
        seen.add(entry["id"])
        columns = {k: _norm(v) for k, v in entry["columns"].items()}
        bad_fields = set(columns) - OTHER_FIELDS - set(PRICE_FIELDS)
        prices = {PRICE_FIELDS[k]: k for k in columns if k in PRICE_FIELDS}
        if bad_fields or "gpu" not in columns or not prices:
            raise ValueError(f"{where}: columns need gpu and a price field; unknown fields {sorted(bad_fields)}")
        if entry["price_unit"] not in PRICE_UNITS:
            raise ValueError(f"{where}: price_unit must be one of {sorted(PRICE_UNITS)}")
        if entry.get("currency", "USD") != "USD":
            raise ValueError(f"{where}: only USD pages are supported (no FX conversion yet)")
        try:
            gpu_pattern, price_pattern = re.compile(entry["gpu_pattern"]), re.compile(entry["price_pattern"])
        except re.error as exc:
            raise ValueError(f"{where}: bad regular expression: {exc}") from None
        if "name" not in gpu_pattern.groupindex or "price" not in price_pattern.groupindex:
            raise ValueError(f"{where}: gpu_pattern needs a group (?P<name>...), price_pattern a group (?P<price>...)")
        if "gpu_count" not in columns and "count" not in gpu_pattern.groupindex:
            raise ValueError(f"{where}: give the GPU count by a gpu_count column or a (?P<count>...) group")
        for key in ("tables", "header_cells", "rows", "cells"):
            try:
                soupsieve.compile(entry[key])
            except SelectorSyntaxError as exc:
                raise ValueError(f"{where}: {key} is not a CSS selector soupsieve reads: {exc}") from None
        pages.append(
            Page(
                id=entry["id"], provider=entry["provider"], url=entry["url"], tables=entry["tables"],
                header_cells=entry["header_cells"], rows=entry["rows"], cells=entry["cells"],
                price_unit=entry["price_unit"], currency="USD", gpu_pattern=gpu_pattern, price_pattern=price_pattern,
                columns=columns, expect_headers=tuple(_norm(h) for h in entry.get("expect_headers", [])),
                gpu_memory_is_total=bool(entry.get("gpu_memory_is_total", False)), price_columns=prices,
            )
        )
    if not pages:
        raise ValueError(f"{path}: no [[page]] entries")
    return tuple(pages)


# --------------------------------------------------------------------------------------------- fetching


def requests(pages: list[Page] | None = None) -> list[FetchRequest]:
    return [FetchRequest(source=SOURCE_ID, url=p.url, provider=p.provider) for p in (pages or load_pages())]


def fetch(client: httpx.Client, request: FetchRequest, clock=utc_now) -> FetchedBody:
    return fetch_body(client, request.url, max_bytes=MAX_BODY_BYTES, clock=clock)


def context_for_file(path: Path, observed_at: datetime) -> ParseContext:
    """`tsi parse html_tables lambda_pricing.html`: the page is the one whose id starts the file name."""
    stem = Path(path).name.lower()
    matches = [p for p in load_pages() if stem.startswith(p.id.lower())]
    if len(matches) != 1:
        ids = ", ".join(p.id for p in load_pages())
        raise ValueError(f"cannot tell which page {str(path)!r} is: start its name with a page id ({ids})")
    return ParseContext(source=SOURCE_ID, observed_at=observed_at, url=Path(path).resolve().as_uri(),
                        provider=matches[0].provider)


def page_for(ctx: ParseContext, pages: list[Page] | None = None) -> Page:
    """The page entry a body belongs to: by its URL (the collection fetched it), else by provider when one page has it
    (`tsi parse` of a saved file)."""
    pages = pages or load_pages()
    url = ctx.url.split("#", 1)[0].rstrip("/")
    for page in pages:
        if page.url.rstrip("/") == url:
            return page
    by_provider = [p for p in pages if ctx.provider and p.provider == ctx.provider]
    if len(by_provider) == 1:
        return by_provider[0]
    raise ParseError(f"no page in html_pages.toml for url {ctx.url!r} / provider {ctx.provider!r}")


# --------------------------------------------------------------------------------------------- parsing


def parse(raw: bytes, ctx: ParseContext, catalog: Catalog | None = None, pages: list[Page] | None = None) -> ParseResult:
    catalog = catalog or default_catalog()
    page = page_for(ctx, pages)
    if not raw.strip():
        raise ParseError(f"page {page.id}: the body is empty")
    soup = BeautifulSoup(raw, "lxml")
    try:
        tables = soup.select(page.tables)
    except SelectorSyntaxError as exc:
        raise ValueError(f"page {page.id}: bad table selector {page.tables!r}: {exc}") from None
    if not tables:
        raise ParseError(
            f"page {page.id}: no element matches the table selector {page.tables!r} (the page structure changed?)"
        )
    result = ParseResult()
    data_rows = 0
    for number, table in enumerate(tables, start=1):
        positions = _header_positions(page, table, number)
        for row in table.select(page.rows):
            cells = [_norm(cell.get_text(" ")) for cell in row.select(page.cells)]
            if not any(cells):
                continue
            data_rows += 1
            _parse_row(page, cells, positions, catalog, result)
    if data_rows == 0:
        raise ParseError(
            f"page {page.id}: {len(tables)} table(s) found but no data row matches {page.rows!r} (the page structure changed?)"
        )
    return result


def _header_positions(page: Page, table, number: int) -> dict[str, int]:
    """Field -> column index, from the header texts; a missing expected header fails the whole body."""
    headers = [_norm(cell.get_text(" ")).lower() for cell in table.select(page.header_cells)]
    wanted = dict(page.columns)
    missing = [text for text in list(wanted.values()) + list(page.expect_headers) if text.lower() not in headers]
    if missing:
        raise ParseError(
            f"page {page.id}, table {number}: expected header(s) {missing} not found; headers were {headers[:12]}"
        )
    return {name: headers.index(text.lower()) for name, text in wanted.items()}


def _parse_row(page: Page, cells: list[str], positions: dict[str, int], catalog: Catalog, result: ParseResult) -> None:
    gpu_text = cells[positions["gpu"]] if positions["gpu"] < len(cells) else ""
    line = " | ".join(cells)
    base_key = gpu_text or line[:80]

    def reject(reason: str, detail: str, price_type: str = "*") -> None:
        result.rejections.append(Rejection.of(f"{base_key}|{price_type}", reason, detail, line))

    if max(positions.values()) >= len(cells):
        reject("malformed_row", f"row has {len(cells)} cells; the headers need {max(positions.values()) + 1}")
        return
    match = page.gpu_pattern.search(gpu_text)
    if match is None:
        reject("unknown_instrument", f"GPU cell {gpu_text!r} does not fit the page's gpu_pattern")
        return
    name = _norm(match.group("name"))
    count_text = cells[positions["gpu_count"]] if "gpu_count" in positions else (match.groupdict().get("count") or "")
    count = _positive(count_text)
    if count is None:
        reject("bad_gpu_count", f"GPU count {count_text!r} is not a positive number")
        return
    memory = None
    if "gpu_memory" in positions:
        gb = _first_number(cells[positions["gpu_memory"]])
        if gb is not None and gb > 0:
            per_gpu = gb / count if page.gpu_memory_is_total else gb
            memory = int(per_gpu * 1024) if per_gpu == per_gpu.to_integral_value() else None
    resolution = catalog.resolve_gpu(name, provider=page.provider, instance_type=gpu_text, gpu_memory_mib=memory)
    if resolution.canonical is None:
        reject("unknown_instrument", resolution.detail)
        return
    region = cells[positions["region"]] if "region" in positions else None
    attributes = {"page": page.id, "gpu_cell": gpu_text}
    if memory is not None:
        attributes["gpu_memory_mib"] = memory

    for price_type, field_name in page.price_columns.items():
        cell = cells[positions[field_name]]
        if _NOT_OFFERED.match(cell):
            continue  # not offered at this price type
        priced = page.price_pattern.fullmatch(cell)
        if priced is None:
            if _NUMBER.search(cell):
                reject("unexpected_unit", f"price {cell!r} does not have the page's price form (another unit?)", price_type)
            else:
                reject("no_price", f"price cell says {cell!r}: no number", price_type)
            continue
        try:
            price = Decimal(priced.group("price").replace(",", ""))
        except InvalidOperation:
            reject("bad_price", f"price {cell!r} is not a number", price_type)
            continue
        per_gpu = price if page.price_unit == "gpu_hour" else price / count
        result.observations.append(
            Observation(
                # The canonical GPU is in the key: a page may list one name twice, told apart by memory (A100 SXM
                # 40 GB and 80 GB on Lambda's 8x tab).
                row_key=f"{base_key}|{resolution.canonical}|x{count}|{price_type}",
                provider=page.provider,
                instrument_kind=GPU,
                instrument=resolution.canonical,
                source_instrument=name,
                price_type=price_type,
                original_price=price,
                original_currency=page.currency,
                original_unit=page.price_unit,
                usd_price=quantize_usd(per_gpu),
                region=region or None,
                gpu_count=count,
                attributes=dict(attributes),
            )
        )


def _first_number(text: str) -> Decimal | None:
    found = _NUMBER.search(text or "")
    if not found:
        return None
    try:
        return Decimal(found.group(0).replace(",", ""))
    except InvalidOperation:
        return None


def _positive(text: str) -> Decimal | None:
    number = _first_number(text)
    if number is None or number <= 0 or _norm(text) != _NUMBER.search(text).group(0):
        return None  # "8" is a count; "8 (coming soon)" or "0" is not
    return Decimal(int(number)) if number == number.to_integral_value() else number
