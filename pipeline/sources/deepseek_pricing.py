"""DeepSeek's own pricing page (first-party, HTML): the Chinese page in CNY and the English page in USD.

https://api-docs.deepseek.com/zh-cn/quick_start/pricing and https://api-docs.deepseek.com/quick_start/pricing
are Docusaurus pages with one "model details" table, transposed (models are columns) and built with
rowspan/colspan:

    <tr><td colspan="2">模型</td><td>deepseek-chat</td><td>deepseek-reasoner</td></tr>
    <tr><td colspan="2">模型版本</td><td>DeepSeek-V3.2（非思考模式）</td><td>DeepSeek-V3.2（思考模式）</td></tr>
    ...
    <tr><td rowspan="3">价格</td><td>百万tokens输入（缓存命中）</td><td colspan="2">0.2元</td></tr>
    <tr><td>百万tokens输入（缓存未命中）</td><td colspan="2">2元</td></tr>
    <tr><td>百万tokens输出</td><td colspan="2">3元</td></tr>

The English page has the same table with MODEL / MODEL VERSION / 1M INPUT TOKENS (CACHE HIT) / (CACHE MISS) /
1M OUTPUT TOKENS and "$0.028" cells. The table is expanded into a grid (a spanned cell repeats in every
position it covers), so a price shared by both models (colspan=2) is each model's price.

Selection is by structure, not by position or CSS class: the table whose row starts with 模型/MODEL and which
has rows labelled per million tokens. The labels say the unit (百万 / 1M); a price label without it, or a
missing model row or price row, is a ParseError naming what is missing: a changed page fails loudly.

Price types: cache miss -> input, cache hit -> cached_input, output -> output. Prices tied to a time of day
are not a list price: a DISCOUNT/优惠 band is rejected as `promotional_price`, a PEAK/OFF-PEAK (高峰/空闲)
band as `time_of_day_price` (the page has used both), a STANDARD/标准 band is the list price. A struck-out
(<del>/<s>) price is `promotional_price`.

Model: the MODEL VERSION cell, without its mode suffix ("DeepSeek-V3.2（思考模式）" -> "DeepSeek-V3.2"),
resolved through the catalog (deepseek-chat and deepseek-reasoner are the non-thinking and thinking modes of
the same weights, so both are rows of that model). Without a version row the API id is looked up, and the
moving aliases deepseek-chat / deepseek-reasoner stay unknown_instrument, never guessed.

Currency: 元/¥/￥ (or CNY/RMB) is CNY, $ (or USD/US$) is USD, per cell. A CNY row carries its price in
price_in_currency and no USD price: the load converts it at the ECB rate of the observation date
(pipeline.normalise.convert_currency).

Hostile pages (issue 10), refused rather than misread:
- Two tables that both look like the price list (a model row followed by price rows: an archived price list or a
  promotion beside the real one) fail the page, naming the count: which one holds is ambiguous.
- A page without its closing </html> (only whitespace and comments after it) is cut short and fails; so does a
  page of more than MAX_TABLES tables (nested thousands deep they cost minutes to expand).
- A price in another currency (HK$, €, EUR, ...) is `unexpected_currency`; a sign before or after the symbol
  (-$0.28), a decimal comma or a thousands separator (0,2元: never read as 2), more than one number, no currency
  sign, or a number beyond 10,000 per million tokens is `bad_price`.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from pathlib import Path

import httpx
from bs4 import BeautifulSoup

from pipeline.catalog import Catalog, default_catalog
from pipeline.http import FetchedBody, fetch_body, utc_now
from pipeline.records import (
    CACHED_INPUT,
    INPUT,
    OUTPUT,
    TOKEN,
    Observation,
    ParseContext,
    ParseError,
    ParseResult,
    Rejection,
    quantize_usd,
    read_decimal,
)
from pipeline.sources import FetchRequest
from pipeline.sources.html_tables import _SIGNED, _currencies, page_is_complete

SOURCE_ID = "deepseek_pricing"
KIND = TOKEN
DESCRIPTION = "DeepSeek's pricing pages (HTML): first-party prices per million tokens, in CNY (zh-cn) and USD (en)"

PROVIDER = "deepseek"
URL_ZH = "https://api-docs.deepseek.com/zh-cn/quick_start/pricing"
URL_EN = "https://api-docs.deepseek.com/quick_start/pricing"
# The page is about 60 kB; the cap only stops a runaway or hostile body.
MAX_BODY_BYTES = 4 * 1024 * 1024
MAX_BYTES = MAX_BODY_BYTES  # the former name
MAX_SPAN = 50  # a colspan/rowspan beyond this is not a pricing table's
# The real page has one table. Thousands of tables nested in one another cost quadratic time to expand (3,000 took
# 40 seconds): more than this is not a pricing page, and it is refused before any is read.
MAX_TABLES = 50
UNIT = "million_tokens"

MODEL_LABELS = ("模型", "MODEL")
VERSION_LABELS = ("模型版本", "MODEL VERSION")
PER_MILLION = ("百万", "1M")
PROMOTIONAL_BANDS = ("DISCOUNT", "优惠")
TIME_OF_DAY_BANDS = ("OFF-PEAK", "PEAK", "高峰", "空闲", "闲时", "低谷", "夜间", "NIGHT")
MODE_SUFFIX = re.compile(r"\s*[（(][^（()）]*[)）]\s*$")
# The quantity a price label starts with: 百万 (a million), 千 (a thousand), 万, 1M, 1K, 1,000,000 ...
QUANTITY = re.compile(r"^\s*(?:百万|千|万|[\d,.]+\s*[KM]?\b)")

REJECTION_REASONS: dict[str, str] = {
    "promotional_price": "a discount band or a struck-out price: not the list price",
    "time_of_day_price": "a peak / off-peak price: which band is the list price is not stated",
    "bad_price": "a price cell without exactly one plain number and a currency sign (元, ¥, $); a sign, a decimal "
                 "comma or thousands separators, or a number beyond 10,000 per million tokens",
    "unexpected_currency": "a price in a currency other than CNY (元, ¥) or USD ($): HK$, €, EUR, ...",
    "free_listing": "a price of 0",
    "unknown_instrument": "the model version (or API id) is not in pipeline/catalog/model_aliases.csv",
}


def requests() -> list[FetchRequest]:
    return [
        FetchRequest(source=SOURCE_ID, url=URL_ZH, provider=PROVIDER),
        FetchRequest(source=SOURCE_ID, url=URL_EN, provider=PROVIDER),
    ]


def fetch(client: httpx.Client, request: FetchRequest, clock: Callable[[], datetime] = utc_now) -> FetchedBody:
    return fetch_body(client, request.url, max_bytes=MAX_BODY_BYTES, clock=clock)


def context_for_file(path: str | Path, observed_at: datetime) -> ParseContext:
    return ParseContext(source=SOURCE_ID, observed_at=observed_at, provider=PROVIDER)


# --- the table as a grid ---------------------------------------------------------------------------------


class Cell:
    __slots__ = ("text", "struck")

    def __init__(self, text: str, struck: bool):
        self.text = text
        self.struck = struck


def _span(tag, name: str) -> int:
    try:
        return max(1, min(MAX_SPAN, int(str(tag.get(name, "1")).strip() or 1)))
    except ValueError:
        return 1


def table_grid(table) -> list[list[Cell]]:
    """Rows of cells with rowspan and colspan expanded: a spanned cell appears in every position it covers."""
    grid: list[list[Cell]] = []
    carried: dict[int, list] = {}  # column -> [rows still to fill, cell]
    for tr in table.find_all("tr"):
        if tr.find_parent("table") is not table:
            continue  # a nested table's rows are not this table's
        row: list[Cell] = []
        col = 0

        def take_carried():
            nonlocal col
            while col in carried:
                remaining, cell = carried[col]
                row.append(cell)
                if remaining <= 1:
                    del carried[col]
                else:
                    carried[col][0] = remaining - 1
                col += 1

        for td in tr.find_all(["td", "th"], recursive=False):
            take_carried()
            cell = Cell(" ".join(td.get_text(" ", strip=True).split()), td.find(["del", "s", "strike"]) is not None)
            rowspan, colspan = _span(td, "rowspan"), _span(td, "colspan")
            for offset in range(colspan):
                row.append(cell)
                if rowspan > 1:
                    carried[col + offset] = [rowspan - 1, cell]
            col += colspan
        take_carried()
        grid.append(row)
    return grid


# --- the page -------------------------------------------------------------------------------------------


def _is_label(text: str, labels: tuple[str, ...]) -> bool:
    return text.strip().upper() in {label.upper() for label in labels}


def _price_type(text: str) -> str | None:
    """The price type a row label names, or None. A price label starts with its quantity of tokens
    ("百万tokens输入", "1M INPUT TOKENS"): "MAX OUTPUT TOKENS" is not one. Which quantity is checked later."""
    upper = text.upper()
    if not QUANTITY.match(upper) or "TOKEN" not in upper:
        return None
    if "缓存未命中" in text or "CACHE MISS" in upper:
        return INPUT
    if "缓存命中" in text or "CACHE HIT" in upper:
        return CACHED_INPUT
    if "输出" in text or "OUTPUT" in upper:
        return OUTPUT
    if "输入" in text or "INPUT" in upper:
        return INPUT  # a page without cache pricing
    return None


def _find_table(soup) -> tuple[list[list[Cell]], int]:
    """The pricing grid and the index of its model row: the one table that has a model row followed by price
    rows. Two such tables (an archived price list or a promotion beside the real one) are ambiguous: the page fails."""
    tables = soup.find_all("table")
    if len(tables) > MAX_TABLES:
        raise ParseError(f"DeepSeek pricing: the page has {len(tables)} tables (at most {MAX_TABLES} are read): "
                         "not the pricing page")
    found = []
    for table in tables:
        grid = table_grid(table)
        for index, row in enumerate(grid):
            if row and _is_label(row[0].text, MODEL_LABELS):
                if any(_price_type(cell.text) for r in grid[index + 1:] for cell in r):
                    found.append((grid, index))
                    break
    if len(found) == 1:
        return found[0]
    if found:
        raise ParseError(
            f"DeepSeek pricing: {len(found)} of the {len(tables)} tables have a {'/'.join(MODEL_LABELS)} row followed "
            "by price rows (an archived or promotional table beside the price list?); which one holds is ambiguous"
        )
    raise ParseError(
        f"DeepSeek pricing: none of the {len(tables)} tables has a row starting {'/'.join(MODEL_LABELS)} followed "
        "by price rows (百万tokens输入 / 1M INPUT TOKENS); the page structure changed"
    )


def _models(header: list[Cell]) -> list[str]:
    """The API model ids of the model row: its cells after the label's own (spanned) cells."""
    label = header[0]
    models = [c.text for c in header if c is not label]
    if not models or not all(models):
        raise ParseError("DeepSeek pricing: the model row names no model (or has an empty model cell)")
    return models


def _split(row: list[Cell], k: int) -> tuple[list[Cell], list[Cell]]:
    """(label cells, the k value cells). Values are the last k positions of the expanded row, one per model:
    this holds whether the label spans two columns (colspan) or one, and with a time-band column between."""
    return row[: len(row) - k], row[len(row) - k:]


def parse(raw: bytes, ctx: ParseContext, catalog: Catalog | None = None) -> ParseResult:
    catalog = catalog or default_catalog()
    if len(raw) > MAX_BODY_BYTES:
        raise ParseError(f"DeepSeek pricing: body of {len(raw)} bytes exceeds the cap of {MAX_BODY_BYTES}")
    soup = BeautifulSoup(raw, "lxml")
    grid, model_row = _find_table(soup)
    if not page_is_complete(raw):
        raise ParseError("DeepSeek pricing: the body is cut short (no closing </html>): a truncated page is not read")
    models = _models(grid[model_row])
    k = len(models)
    versions: list[str] = []
    for row in grid[model_row + 1:]:
        if row and _is_label(row[0].text, VERSION_LABELS) and len(row) > k:
            versions = [c.text for c in _split(row, k)[1]]
            break
    result = ParseResult()
    price_rows = 0
    for row in grid[model_row + 1:]:
        if len(row) <= k:
            continue
        labels, values = _split(row, k)
        price_label = next((c.text for c in labels if _price_type(c.text)), None)
        if price_label is None:
            continue
        price_rows += 1
        if not any(unit in price_label.upper() for unit in PER_MILLION):
            raise ParseError(f"DeepSeek pricing: price label {price_label!r} does not say per million tokens (百万/1M)")
        band = " ".join(c.text for c in labels).upper()
        for position, api_id in enumerate(models):
            version = versions[position] if position < len(versions) else ""
            _price_cell(api_id, version, price_label, band, values[position], catalog, result)
    if price_rows == 0:
        raise ParseError("DeepSeek pricing: the table has no price rows")
    return result


def _price_cell(api_id: str, version: str, label: str, band: str, cell: Cell, catalog: Catalog,
                result: ParseResult) -> None:
    price_type = _price_type(label)
    language = "zh-cn" if re.search(r"[\u4e00-\u9fff]", label) else "en"
    row_key = f"{api_id}|{price_type}"
    excerpt = f"{api_id} | {version} | {band} | {cell.text}"
    if any(word in band for word in PROMOTIONAL_BANDS) or cell.struck:
        result.rejections.append(Rejection.of(row_key, "promotional_price", "discount band or struck-out price", excerpt))
        return
    if any(word in band for word in TIME_OF_DAY_BANDS):
        result.rejections.append(Rejection.of(row_key, "time_of_day_price", "priced by time of day", excerpt))
        return
    parsed = _money(cell.text)
    if isinstance(parsed, Refusal):
        result.rejections.append(Rejection.of(row_key, parsed.reason, parsed.detail, excerpt))
        return
    amount, currency = parsed
    if amount == 0:
        result.rejections.append(Rejection.of(row_key, "free_listing", "price is 0", excerpt))
        return
    name = MODE_SUFFIX.sub("", version) if version else api_id
    resolution = catalog.resolve_model(name)
    if resolution.canonical is None:
        result.rejections.append(Rejection.of(row_key, "unknown_instrument", resolution.detail, excerpt))
        return
    attributes = {"model_version": version or None, "page_language": language, "label": label}
    result.observations.append(
        Observation(
            row_key=row_key,
            provider=PROVIDER,
            instrument_kind=TOKEN,
            instrument=resolution.canonical,
            source_instrument=api_id,
            price_type=price_type,
            original_price=amount,
            original_currency=currency,
            original_unit=UNIT,
            # Already per million tokens. A CNY price waits for the load's conversion.
            usd_price=quantize_usd(amount) if currency == "USD" else None,
            price_in_currency=amount if currency != "USD" else None,
            attributes={k: v for k, v in attributes.items() if v is not None},
        )
    )


class Refusal:
    """Why a price cell is not read: a reason code and its detail."""

    __slots__ = ("reason", "detail")

    def __init__(self, reason: str, detail: str):
        self.reason, self.detail = reason, detail


# A number as written, separators included, so that 0,2 is seen as one number with a comma (never as 2).
_NUMBER_AS_WRITTEN = re.compile(r"\d(?:[\d,.]*\d)?")
_PLAIN = re.compile(r"\d+(?:\.\d+)?")


def _money(text: str) -> tuple[Decimal, str] | Refusal:
    """'0.2元' / '¥2' / '￥2' -> (Decimal, 'CNY'); '$0.028' -> (Decimal, 'USD'); otherwise the refusal."""
    shown = text[:80]
    currencies = {"CNY" if c in {"JPY or CNY", "CNY"} else c for c in _currencies(text)}
    if not currencies:
        return Refusal("bad_price", f"no currency sign in {shown!r}")
    others = currencies - {"CNY", "USD"}
    if others:
        return Refusal("unexpected_currency", f"{shown!r} is in {', '.join(sorted(others))}, not CNY or USD")
    if len(currencies) > 1:
        return Refusal("bad_price", f"{shown!r} names both CNY and USD")
    if _SIGNED.search(text):
        return Refusal("bad_price", f"{shown!r} carries a sign: not a list price")
    numbers = _NUMBER_AS_WRITTEN.findall(text)
    if len(numbers) != 1:
        return Refusal("bad_price", f"{len(numbers)} numbers in {shown!r}, expected one")
    if not _PLAIN.fullmatch(numbers[0]):
        return Refusal("bad_price", f"{numbers[0]!r} in {shown!r} is not a plain decimal number (a decimal comma or "
                                    "a thousands separator is ambiguous)")
    amount = read_decimal(numbers[0])
    if amount is None:
        return Refusal("bad_price", f"{numbers[0][:40]!r} is not a number within 1E9")
    if amount > Decimal(10_000):  # a price per million tokens, not a phone number
        return Refusal("bad_price", f"{amount} per million tokens is implausibly large")
    return amount, currencies.pop()
