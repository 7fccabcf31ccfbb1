"""First-party HTML pricing pages: DeepSeek's pricing page in Chinese (CNY) and in English (USD).

The fixtures are written by hand in the pages' real structure (a Docusaurus table with rowspan and colspan;
see the module docstring). Golden values are read off the tables; CNY conversions are worked out by hand.
"""
from __future__ import annotations

from collections import Counter
from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from pipeline.normalise import FxTable, parse_body
from pipeline.records import CACHED_INPUT, INPUT, OUTPUT, FxRate, ParseError
from pipeline.sources import deepseek_pricing
from pipeline.sources.deepseek_pricing import table_grid

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "first_party"
ZH = (FIXTURES / "deepseek_pricing_zh.html").read_bytes()
EN = (FIXTURES / "deepseek_pricing_en.html").read_bytes()
EN_2025_06 = (FIXTURES / "deepseek_pricing_en_2025-06.html").read_bytes()
OBSERVED_AT = datetime(2025, 6, 28, 6, 0, tzinfo=timezone.utc)
RATES = FxTable([FxRate(date(2025, 6, 27), "CNY", Decimal("0.1394559039"))])  # 1.1703 / 8.3919, see test_fx
D = Decimal


def ctx():
    return deepseek_pricing.context_for_file("pricing.html", OBSERVED_AT)


def raw_rows(raw: bytes) -> dict:
    """What the parser itself gives (before the shared checks and the currency conversion)."""
    result = deepseek_pricing.parse(raw, ctx())
    return {o.row_key: (o.instrument, o.price_type, o.original_price, o.original_currency, o.usd_price, o.price_in_currency)
            for o in result.observations}


def page(table: str) -> bytes:
    return f"<html><body><article><div class='theme-doc-markdown markdown'>{table}</div></article></body></html>".encode()


def test_the_chinese_page_gives_cny_prices_per_million_tokens_for_the_load_to_convert():
    # 价格: 百万tokens输入（缓存命中） 0.2元, 输入（缓存未命中） 2元, 输出 3元, each spanning both models (colspan=2);
    # 模型版本 DeepSeek-V3.2 (both modes) -> deepseek-v3.2
    assert raw_rows(ZH) == {
        "deepseek-chat|cached_input": ("deepseek-v3.2", CACHED_INPUT, D("0.2"), "CNY", None, D("0.2")),
        "deepseek-reasoner|cached_input": ("deepseek-v3.2", CACHED_INPUT, D("0.2"), "CNY", None, D("0.2")),
        "deepseek-chat|input": ("deepseek-v3.2", INPUT, D("2"), "CNY", None, D("2")),
        "deepseek-reasoner|input": ("deepseek-v3.2", INPUT, D("2"), "CNY", None, D("2")),
        "deepseek-chat|output": ("deepseek-v3.2", OUTPUT, D("3"), "CNY", None, D("3")),
        "deepseek-reasoner|output": ("deepseek-v3.2", OUTPUT, D("3"), "CNY", None, D("3")),
    }
    obs = deepseek_pricing.parse(ZH, ctx()).observations[0]
    assert (obs.provider, obs.original_unit, obs.attributes["model_version"], obs.attributes["page_language"]) == (
        "deepseek", "million_tokens", "DeepSeek-V3.2（非思考模式）", "zh-cn")


def test_the_chinese_page_converts_at_the_ecb_rate():
    result = parse_body(deepseek_pricing, ZH, ctx(), fx=RATES)
    got = {o.row_key: (o.usd_price, o.fx_usd_per_unit, o.fx_rate_date) for o in result.observations}
    # 0.2 x 0.1394559039 = 0.02789118078 -> 0.0278911808; 2 x ... = 0.2789118078; 3 x ... = 0.4183677117
    rate, day = D("0.1394559039"), date(2025, 6, 27)
    assert got["deepseek-chat|cached_input"] == (D("0.0278911808"), rate, day)
    assert got["deepseek-chat|input"] == (D("0.2789118078"), rate, day)
    assert got["deepseek-reasoner|output"] == (D("0.4183677117"), rate, day)
    assert not result.rejections


def test_the_english_page_gives_usd_prices():
    assert raw_rows(EN) == {
        "deepseek-chat|cached_input": ("deepseek-v3.2", CACHED_INPUT, D("0.028"), "USD", D("0.028"), None),
        "deepseek-reasoner|cached_input": ("deepseek-v3.2", CACHED_INPUT, D("0.028"), "USD", D("0.028"), None),
        "deepseek-chat|input": ("deepseek-v3.2", INPUT, D("0.28"), "USD", D("0.28"), None),
        "deepseek-reasoner|input": ("deepseek-v3.2", INPUT, D("0.28"), "USD", D("0.28"), None),
        "deepseek-chat|output": ("deepseek-v3.2", OUTPUT, D("0.42"), "USD", D("0.42"), None),
        "deepseek-reasoner|output": ("deepseek-v3.2", OUTPUT, D("0.42"), "USD", D("0.42"), None),
    }
    result = parse_body(deepseek_pricing, EN, ctx())  # no rates needed: all USD
    assert len(result.observations) == 6 and not result.rejections


def test_a_discount_band_is_promotional_and_each_model_keeps_its_own_version():
    """The mid-2025 page: per-model prices, and a night-time discount band below the standard one."""
    result = parse_body(deepseek_pricing, EN_2025_06, ctx())
    got = {o.row_key: (o.instrument, o.usd_price) for o in result.observations}
    assert got == {
        "deepseek-chat|cached_input": ("deepseek-v3-0324", D("0.07")),
        "deepseek-chat|input": ("deepseek-v3-0324", D("0.27")),
        "deepseek-chat|output": ("deepseek-v3-0324", D("1.10")),
        "deepseek-reasoner|cached_input": ("deepseek-r1-0528", D("0.14")),
        "deepseek-reasoner|input": ("deepseek-r1-0528", D("0.55")),
        "deepseek-reasoner|output": ("deepseek-r1-0528", D("2.19")),
    }
    assert Counter(r.reason for r in result.rejections) == Counter({"promotional_price": 6})
    assert {r.row_key for r in result.rejections} == set(got)  # one refused discount per standard price


PEAK_TABLE = """<table><tbody>
<tr><td colspan="3">模型</td><td>deepseek-v4-flash</td><td>deepseek-v4-pro</td></tr>
<tr><td colspan="3">模型版本</td><td>DeepSeek-V3.2</td><td>DeepSeek-V3.2</td></tr>
<tr><td rowspan="4">价格</td><td rowspan="2">百万tokens输入（缓存未命中）</td><td>空闲时段</td><td>1元</td><td>4.5元</td></tr>
<tr><td>高峰时段</td><td>2元</td><td>9元</td></tr>
<tr><td rowspan="2">百万tokens输出</td><td>空闲时段</td><td>4元</td><td>13.5元</td></tr>
<tr><td>高峰时段</td><td>8元</td><td>27元</td></tr>
</tbody></table>"""


def test_peak_and_off_peak_prices_are_not_list_prices():
    result = parse_body(deepseek_pricing, page(PEAK_TABLE), ctx(), fx=RATES)
    assert not result.observations
    assert Counter(r.reason for r in result.rejections) == Counter({"time_of_day_price": 8})


def test_grid_expands_rowspan_and_colspan():
    soup = BeautifulSoup(PEAK_TABLE, "lxml")
    grid = [[c.text for c in row] for row in table_grid(soup.find("table"))]
    assert grid[0] == ["模型", "模型", "模型", "deepseek-v4-flash", "deepseek-v4-pro"]
    assert grid[3] == ["价格", "百万tokens输入（缓存未命中）", "高峰时段", "2元", "9元"]
    assert grid[5] == ["价格", "百万tokens输出", "高峰时段", "8元", "27元"]


@pytest.mark.parametrize(
    ("cell", "reason"),
    [
        ("<td>免费</td>", "bad_price"),  # no number
        ("<td>2</td>", "bad_price"),  # no currency sign
        ("<td>2元 / 3元</td>", "bad_price"),  # two numbers: which?
        ("<td>0元</td>", "free_listing"),
        ("<td><del>4元</del> 2元</td>", "promotional_price"),  # a struck-out list price
        ("<td>99999元</td>", "bad_price"),  # implausibly large for a price per million tokens
    ],
)
def test_unusable_cells_are_refused_with_their_reason(cell, reason):
    table = (
        "<table><tr><td colspan='2'>模型</td><td>deepseek-chat</td></tr>"
        "<tr><td colspan='2'>模型版本</td><td>DeepSeek-V3.2</td></tr>"
        f"<tr><td rowspan='2'>价格</td><td>百万tokens输入（缓存未命中）</td>{cell}</tr>"
        "<tr><td>百万tokens输出</td><td>3元</td></tr></table>"
    )
    result = parse_body(deepseek_pricing, page(table), ctx(), fx=RATES)
    assert [(r.row_key, r.reason) for r in result.rejections] == [("deepseek-chat|input", reason)]
    assert [o.row_key for o in result.observations] == ["deepseek-chat|output"]


def test_a_per_thousand_slip_falls_outside_the_sanity_band():
    # 2000元 where 2元 was meant: 2000 x 0.1394559039 = 278.9118078 USD per million, above deepseek-v3.2's 4
    table = (
        "<table><tr><td colspan='2'>模型</td><td>deepseek-chat</td></tr>"
        "<tr><td colspan='2'>模型版本</td><td>DeepSeek-V3.2</td></tr>"
        "<tr><td>价格</td><td>百万tokens输入（缓存未命中）</td><td>2000元</td></tr></table>"
    )
    result = parse_body(deepseek_pricing, page(table), ctx(), fx=RATES)
    assert [(r.reason, r.detail) for r in result.rejections] == [
        ("outside_sanity_band", "278.9118078000 is outside [0.0025, 4] for deepseek-v3.2")
    ]


def test_without_a_version_row_the_moving_api_alias_stays_unknown():
    table = (
        "<table><tr><td colspan='2'>MODEL</td><td>deepseek-chat</td></tr>"
        "<tr><td>PRICING</td><td>1M INPUT TOKENS (CACHE MISS)</td><td>$0.28</td></tr></table>"
    )
    result = parse_body(deepseek_pricing, page(table), ctx())
    assert [(r.row_key, r.reason) for r in result.rejections] == [("deepseek-chat|input", "unknown_instrument")]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html><body><p>Page moved</p></body></html>", "none of the 0 tables"),
        (page("<table><tr><td>模型</td><td>deepseek-chat</td></tr><tr><td>上下文长度</td><td>128K</td></tr></table>"),
         "none of the 1 tables"),
        # prices per thousand tokens: the unit changed, refuse the page rather than misread it by 1000
        (page("<table><tr><td>模型</td><td>deepseek-chat</td></tr>"
              "<tr><td>千tokens输入（缓存未命中）</td><td>0.002元</td></tr></table>"), "does not say per million"),
        (page("<table><tr><td>MODEL</td><td></td></tr>"
              "<tr><td>1M INPUT TOKENS (CACHE MISS)</td><td>$0.28</td></tr></table>"), "names no model"),
        (b"\xff\xfe\x00garbage" * 10, "none of the 0 tables"),
        (b"<html>" + b" " * (deepseek_pricing.MAX_BYTES + 1), "exceeds the cap"),
    ],
)
def test_a_changed_page_fails_loudly_naming_what_is_missing(body, message):
    with pytest.raises(ParseError, match=message):
        deepseek_pricing.parse(body, ctx())


def test_hostile_spans_are_capped():
    table = (
        "<table><tr><td colspan='100000'>MODEL</td><td>deepseek-chat</td></tr>"
        "<tr><td rowspan='999999'>PRICING</td><td colspan='100000'>1M INPUT TOKENS (CACHE MISS)</td><td>$0.28</td></tr>"
        "</table>"
    )
    grid = table_grid(BeautifulSoup(table, "lxml").find("table"))
    assert max(len(row) for row in grid) <= 2 * deepseek_pricing.MAX_SPAN
    result = parse_body(deepseek_pricing, page(table), ctx())
    assert [r.reason for r in result.rejections] == ["unknown_instrument"]  # no version row; read, not crashed


def test_requests_fetch_both_pages():
    assert [(r.url, r.provider) for r in deepseek_pricing.requests()] == [
        ("https://api-docs.deepseek.com/zh-cn/quick_start/pricing", "deepseek"),
        ("https://api-docs.deepseek.com/quick_start/pricing", "deepseek"),
    ]


# --- hostile pages (issue 10) ---------------------------------------------------------------------------


@pytest.mark.parametrize(("cell", "expected"), [
    ("0.2元", (D("0.2"), "CNY")), ("¥2", (D("2"), "CNY")), ("￥3", (D("3"), "CNY")), ("$0.028", (D("0.028"), "USD")),
    ("US$0.28", (D("0.28"), "USD")), ("0.28 USD", (D("0.28"), "USD")),
    ("0,2元", "bad_price"), ("1,000元", "bad_price"), ("-$0.28", "bad_price"), ("$-0.28", "bad_price"),
    ("−0.2元", "bad_price"), ("0.2", "bad_price"), ("$0.28 / ¥2", "bad_price"), ("$100000000000000000000", "bad_price"),
    ("HK$0.28", "unexpected_currency"), ("€0.28", "unexpected_currency"), ("0.28 EUR", "unexpected_currency"),
])
def test_a_price_cell_is_read_exactly_or_refused_for_its_reason(cell, expected):
    parsed = deepseek_pricing._money(cell)
    if isinstance(expected, str):
        assert isinstance(parsed, deepseek_pricing.Refusal) and parsed.reason == expected, parsed
    else:
        assert parsed == expected


def test_two_price_tables_fail_the_page_and_a_cut_page_fails():
    table = (
        "<table><tr><td colspan='2'>MODEL</td><td>deepseek-chat</td></tr>"
        "<tr><td colspan='2'>MODEL VERSION</td><td>DeepSeek-V3.2</td></tr>"
        "<tr><td>PRICING</td><td>1M INPUT TOKENS (CACHE MISS)</td><td>$0.28</td></tr></table>"
    )
    assert len(parse_body(deepseek_pricing, page(table), ctx()).observations) == 1
    with pytest.raises(ParseError, match="2 of the 2 tables"):
        deepseek_pricing.parse(page(table + table.replace("$0.28", "$0.14")), ctx())
    with pytest.raises(ParseError, match="cut short"):
        deepseek_pricing.parse(page(table)[:-20], ctx())
    with pytest.raises(ParseError, match="at most 50 are read"):
        deepseek_pricing.parse(page("<table><tr><td>" * 60 + table), ctx())
