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

Currency: 元/¥/￥ is CNY, $ is USD, per cell. A CNY row carries its price in price_in_currency and no USD
price: the load converts it at the ECB rate of the observation date (pipeline.normalise.convert_currency).
"""
from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
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
)
from pipeline.sources import FetchRequest

SOURCE_ID = "deepseek_pricing"
KIND = TOKEN
DESCRIPTION = "DeepSeek's pricing pages (HTML): first-party prices per million tokens, in CNY (zh-cn) and USD (en)"

PROVIDER = "deepseek"
URL_ZH = "https://api-docs.deepseek.com/zh-cn/quick_start/pricing"
URL_EN = "https://api-docs.deepseek.com/quick_start/pricing"
# The page is about 60 kB; the cap only stops a runaway or hostile body.
MAX_BYTES = 4 * 1024 * 1024
MAX_SPAN = 50  # a colspan/rowspan beyond this is not a pricing table's
UNIT = "million_tokens"

MODEL_LABELS = ("模型", "MODEL")
VERSION_LABELS = ("模型版本", "MODEL VERSION")
PER_MILLION = ("百万", "1M")
PROMOTIONAL_BANDS = ("DISCOUNT", "优惠")
TIME_OF_DAY_BANDS = ("OFF-PEAK", "PEAK", "高峰", "空闲", "闲时", "低谷", "夜间", "NIGHT")
MODE_SUFFIX = re.compile(r"\s*[（(][^（()）]*[)）]\s*$")
NUMBER = re.compile(r"\d+(?:\.\d+)?")
# The quantity a price label starts with: 百万 (a million), 千 (a thousand), 万, 1M, 1K, 1,000,000 ...
QUANTITY = re.compile(r"^\s*(?:百万|千|万|[\d,.]+\s*[KM]?\b)")

REJECTION_REASONS: dict[str, str] = {
    "promotional_price": "a discount band or a struck-out price: not the list price",
    "time_of_day_price": "a peak / off-peak price: which band is the list price is not stated",
    "bad_price": "a price cell without exactly one number and a currency sign (元, ¥, $)",
    "free_listing": "a price of 0",
    "unknown_instrument": "the model version (or API id) is not in pipeline/catalog/model_aliases.csv",
}


def requests() -> list[FetchRequest]:
    return [
        FetchRequest(source=SOURCE_ID, url=URL_ZH, provider=PROVIDER),
        FetchRequest(source=SOURCE_ID, url=URL_EN, provider=PROVIDER),
    ]


def fetch(client: httpx.Client, request: FetchRequest, clock: Callable[[], datetime] = utc_now) -> FetchedBody:
    return fetch_body(client, request.url, max_bytes=MAX_BYTES, clock=clock)


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
    """The pricing grid and the index of its model row."""
    tables = soup.find_all("table")
    for table in tables:
        grid = table_grid(table)
        for index, row in enumerate(grid):
            if row and _is_label(row[0].text, MODEL_LABELS):
                if any(_price_type(cell.text) for r in grid[index + 1:] for cell in r):
                    return grid, index
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
    if len(raw) > MAX_BYTES:
        raise ParseError(f"DeepSeek pricing: body of {len(raw)} bytes exceeds the cap of {MAX_BYTES}")
    soup = BeautifulSoup(raw, "lxml")
    grid, model_row = _find_table(soup)
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
    if isinstance(parsed, str):
        result.rejections.append(Rejection.of(row_key, "bad_price", parsed, excerpt))
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


def _money(text: str) -> tuple[Decimal, str] | str:
    """'0.2元' / '¥2' / '￥2' -> (Decimal, 'CNY'); '$0.028' -> (Decimal, 'USD'); otherwise why not."""
    numbers = NUMBER.findall(text.replace(",", ""))
    if len(numbers) != 1:
        return f"{len(numbers)} numbers in {text!r}, expected one"
    if "元" in text or "¥" in text or "￥" in text:
        currency = "CNY"
    elif "$" in text:
        currency = "USD"
    else:
        return f"no currency sign in {text!r}"
    try:
        amount = Decimal(numbers[0])
    except InvalidOperation:
        return f"{numbers[0]!r} is not a number"
    if amount > Decimal(10_000):  # a price per million tokens, not a phone number
        return f"{amount} per million tokens is implausibly large"
    return amount, currency
