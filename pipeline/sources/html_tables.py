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

Hostile pages (issue 10) are refused, never misread:

- A body without its closing `</html>` (only whitespace and comments may follow it) is cut short: a page cut after
  `$4` would otherwise price a GPU at $4 / 8. ParseError "cut short".
- The table selector must match exactly `table_count` elements (default 1; Lambda's four tabs: 4). More is a decoy
  (an archived price list or a promotion with the same headers beside the real one) and fails the page by name and
  count; fewer is a changed page.
- A configured header that appears twice in a table (two "Instance Price" columns) fails the page: which column
  holds the value cannot be known.
- A price cell naming another currency than the page's (`HK$`, `€`, `EUR`, `元`, ...), or a row whose currency column
  (a header containing "currency") says another, is `unexpected_currency`.
- A sign before or after the currency symbol (`-$0.28`, `$-0.28`) is `bad_price`; so is a number whose commas are not
  thousands groups (`$4,77`, `$0,280`: a decimal comma, never read as 477 or 280) and a number beyond 1e9.

BeautifulSoup always runs with the "lxml" parser (fast, lenient with real-world markup, same result everywhere).
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
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
    MAX_MAGNITUDE,
    Rejection,
    quantize_usd,
    read_decimal,
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
             "gpu_pattern", "price_pattern", "expect_headers", "columns", "gpu_memory_is_total", "table_count"}
PRICE_UNITS = {"gpu_hour", "instance_hour"}
# A cell that only says "not offered here".
_NOT_OFFERED = re.compile(r"^(|-|–|—|n/?a)$", re.I)
_NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
# The forms a price number may have: plain (2.99) or in well-formed thousands groups after a non-zero digit
# (2,149.00). Anything else with a comma (4,77 or 0,280: a decimal comma) is ambiguous and refused.
_PLAIN_NUMBER = re.compile(r"\d+(?:\.\d+)?|[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?")
# Currencies a cell may name: ISO codes (as whole words), symbols, and dollars with a country prefix (HK$, US$).
_ISO_CODES = frozenset(
    "USD EUR GBP JPY CNY RMB HKD CHF CAD AUD NZD SGD INR KRW BRL SEK NOK DKK PLN CZK HUF RON BGN ISK TRY ZAR MXN "
    "ILS TWD THB IDR MYR PHP AED SAR RUB UAH VND ARS CLP COP".split()
)
_CODE = re.compile(r"(?<![A-Za-z])([A-Z]{3})(?![A-Za-z])")
_PREFIXED_DOLLAR = re.compile(r"(?<![A-Za-z])([A-Za-z]{1,3})\s?\$")
_DOLLAR_PREFIXES = {"US": "USD", "U.S.": "USD", "HK": "HKD", "A": "AUD", "AU": "AUD", "C": "CAD", "CA": "CAD",
                    "NZ": "NZD", "S": "SGD", "SG": "SGD", "R": "BRL", "MX": "MXN", "NT": "TWD"}
_SYMBOLS = {"€": "EUR", "£": "GBP", "¥": "JPY or CNY", "￥": "JPY or CNY", "元": "CNY", "₹": "INR", "₩": "KRW",
            "₽": "RUB", "₺": "TRY", "₪": "ILS", "₫": "VND", "฿": "THB", "₱": "PHP"}
# A sign next to a currency symbol or a number's start: -$0.28, $-0.28, −0.28 (the Unicode minus), +$1.
_SIGNED = re.compile(r"[-+\u2212\u2012\u2013\u2014]\s*(?:[A-Za-z]{0,3}\$|[€£¥￥₹₩₽₺₪₫฿₱])?\s*\d"
                     r"|(?:\$|[€£¥￥₹₩₽₺₪₫฿₱])\s*[-+\u2212\u2012\u2013\u2014]\s*\d"
                     r"|\d\s*(?:元|[€£¥￥₹₩₽₺₪₫฿₱])?\s*[-\u2212]\s*$")
# The closing tag of the document, followed only by whitespace and comments: the body is complete.
_COMPLETE = re.compile(rb"</html\s*>(?:\s|<!--(?:(?!-->).)*-->)*\Z", re.I | re.S)


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
    table_count: int = 1  # how many elements the tables selector must match: more is a decoy, fewer a change
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
        table_count = entry.get("table_count", 1)
        if isinstance(table_count, bool) or not isinstance(table_count, int) or not 1 <= table_count <= 100:
            raise ValueError(f"{where}: table_count must be a whole number of tables, 1 to 100")
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
                table_count=table_count,
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
    if not page_is_complete(raw):
        raise ParseError(f"page {page.id}: the body is cut short (no closing </html>): a truncated page is not read")
    if len(tables) != page.table_count:
        raise ParseError(
            f"page {page.id}: {len(tables)} tables match the table selector, the configuration expects "
            f"{page.table_count} (a decoy, archived or promotional table beside the price list, or a changed page); "
            "which one holds the prices is ambiguous"
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


def page_is_complete(raw: bytes) -> bool:
    """True when the body ends with its closing </html> (whitespace and comments may follow): not cut short."""
    end = raw.lower().rfind(b"</html")
    return end >= 0 and _COMPLETE.match(raw, end) is not None


def _header_positions(page: Page, table, number: int) -> dict[str, int]:
    """Field -> column index, from the header texts; a missing expected header fails the whole body. A header
    that says currency (not a configured field) is read as `currency`: its cells must name the page's currency."""
    headers = [_norm(cell.get_text(" ")).lower() for cell in table.select(page.header_cells)]
    wanted = dict(page.columns)
    missing = [text for text in list(wanted.values()) + list(page.expect_headers) if text.lower() not in headers]
    if missing:
        raise ParseError(
            f"page {page.id}, table {number}: expected header(s) {missing} not found; headers were {headers[:12]}"
        )
    repeated = [text for text in wanted.values() if headers.count(text.lower()) > 1]
    if repeated:
        raise ParseError(
            f"page {page.id}, table {number}: header(s) {repeated} appear more than once; which column holds the "
            "value cannot be known"
        )
    positions = {name: headers.index(text.lower()) for name, text in wanted.items()}
    currency_columns = [i for i, text in enumerate(headers) if "currency" in text or "währung" in text]
    if currency_columns:
        positions["currency"] = currency_columns[0]
    return positions


def _currencies(text: str) -> set[str]:
    """The currencies a cell names: ISO codes as whole words, symbols, prefixed dollars (HK$); a bare `$` is USD."""
    found = {code for code in _CODE.findall(text) if code in _ISO_CODES}
    bare = text
    for match in _PREFIXED_DOLLAR.finditer(text):
        prefix, spaced = match.group(1), match.group(0)[-2].isspace()
        if spaced and prefix.upper() not in _DOLLAR_PREFIXES:
            continue  # a word before a bare dollar ("at $2.99"), not a prefix
        found.add(_DOLLAR_PREFIXES.get(prefix.upper(), f"{prefix}$"))
        bare = bare.replace(match.group(0), " ", 1)
    if "$" in bare:
        found.add("USD")
    found |= {currency for symbol, currency in _SYMBOLS.items() if symbol in text}
    return {"CNY" if c == "RMB" else c for c in found}


def _price_number(text: str) -> Decimal | None:
    """The number of a price group: plain or in well-formed thousands groups, within 1e9; else None."""
    if not _PLAIN_NUMBER.fullmatch(text):
        return None
    return read_decimal(text.replace(",", ""))


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
        reject("bad_gpu_count", f"GPU count {count_text[:80]!r} is not a positive number")
        return
    if "currency" in positions and positions["currency"] < len(cells):
        stated = cells[positions["currency"]]
        if stated and _currencies(stated) != {page.currency}:
            reject("unexpected_currency", f"the currency column says {stated[:40]!r}; the page is priced in {page.currency}")
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
        named = _currencies(cell) - {page.currency}
        if named:
            reject("unexpected_currency", f"price {cell[:80]!r} is in {', '.join(sorted(named))}, the page is priced "
                   f"in {page.currency}", price_type)
            continue
        if _SIGNED.search(cell):
            reject("bad_price", f"price {cell[:80]!r} carries a sign: not a list price", price_type)
            continue
        priced = page.price_pattern.fullmatch(cell)
        if priced is None:
            if _NUMBER.search(cell):
                reject("unexpected_unit", f"price {cell[:80]!r} does not have the page's price form (another unit?)",
                       price_type)
            else:
                reject("no_price", f"price cell says {cell[:80]!r}: no number", price_type)
            continue
        price = _price_number(priced.group("price"))
        if price is None:
            reject("bad_price", f"price {cell[:80]!r} is not a plain number within {MAX_MAGNITUDE} (a decimal comma "
                   "or misplaced thousands separators are ambiguous)", price_type)
            continue
        per_gpu = price if page.price_unit == "gpu_hour" else price / count
        if per_gpu > MAX_MAGNITUDE:
            reject("bad_price", f"price {cell[:80]!r} is beyond {MAX_MAGNITUDE} per GPU-hour", price_type)
            continue
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
    return read_decimal(found.group(0).replace(",", ""))


def _positive(text: str) -> Decimal | None:
    number = _first_number(text)
    if number is None or number <= 0 or _norm(text) != _NUMBER.search(text).group(0):
        return None  # "8" is a count; "8 (coming soon)" or "0" is not
    return Decimal(int(number)) if number == number.to_integral_value() else number
