"""The configured HTML pricing pages (html_tables): Lambda's tabbed tables, CoreWeave's div grid, changed pages and
hostile rows, the configuration's validation, the demo recordings.

The fixtures in tests/fixtures/html_tables/ are written by hand in the structure of the real pages. Expected prices are
worked out by hand from the page text (per-GPU prices as printed; per-instance prices / GPU count).
"""
from __future__ import annotations

import tomllib
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

from pipeline.normalise import parse_body
from pipeline.records import ON_DEMAND, ParseContext, ParseError
from pipeline.sources import html_tables

TESTS = Path(__file__).resolve().parent
FIXTURES = TESTS / "fixtures" / "html_tables"
DEMO = TESTS / "fixtures" / "demo"
DEMO_DATES = ["2026-11-16", "2026-11-17", "2026-11-18", "2026-11-19", "2026-11-20"]
WHEN = datetime(2026, 11, 18, 6, 0, tzinfo=timezone.utc)
LAMBDA_URL = "https://lambda.ai/pricing"
COREWEAVE_URL = "https://www.coreweave.com/pricing"


def ctx(url: str, provider: str | None = None) -> ParseContext:
    return ParseContext(source="html_tables", observed_at=WHEN, url=url, provider=provider)


def lambda_page() -> str:
    return (FIXTURES / "lambda_pricing.html").read_text()


def coreweave_page() -> str:
    return (FIXTURES / "coreweave_pricing.html").read_text()


def parse(text: str, url: str = LAMBDA_URL):
    return parse_body(html_tables, text.encode(), ctx(url))


def prices(result) -> dict[str, tuple[str, Decimal]]:
    return {o.attributes["gpu_cell"] + f" [{o.instrument}]": (o.price_type, o.usd_price) for o in result.observations}


# ----------------------------------------------------------------------------------------- Lambda


def test_lambda_tabs_per_gpu_prices():
    result = parse(lambda_page())
    assert result.rejections == []
    got = prices(result)
    assert len(got) == 16  # 5 + 2 + 2 + 7 rows of the four on-demand tabs
    # $2.99/GPU/hr on the 8x tab is the 8x H100 SXM instance at 23.92/h: 23.92 / 8 = 2.99.
    assert got["On-demand 8x NVIDIA H100 SXM [H100-SXM]"] == (ON_DEMAND, Decimal("2.99"))
    assert got["On-demand 1x NVIDIA H100 PCIe [H100-PCIE]"] == (ON_DEMAND, Decimal("2.49"))
    # One name twice on the 8x tab, told apart by the VRAM column: 80 GB at 1.79, 40 GB at 1.29.
    assert got["On-demand 8x NVIDIA A100 SXM [A100-80GB]"] == (ON_DEMAND, Decimal("1.79"))
    assert got["On-demand 8x NVIDIA A100 SXM [A100-40GB]"] == (ON_DEMAND, Decimal("1.29"))
    assert got["On-demand 8x NVIDIA Tesla V100 [V100-16GB]"] == (ON_DEMAND, Decimal("0.55"))
    assert got["On-demand 1x NVIDIA Quadro RTX 6000 [QUADRO-RTX6000]"] == (ON_DEMAND, Decimal("0.50"))
    assert got["On-demand 8x NVIDIA B200 SXM6 [B200]"] == (ON_DEMAND, Decimal("4.99"))
    h100 = next(o for o in result.observations if o.attributes["gpu_cell"] == "On-demand 4x NVIDIA H100 SXM")
    assert (h100.gpu_count, h100.original_price, h100.original_unit) == (Decimal(4), Decimal("3.09"), "gpu_hour")
    assert (h100.provider, h100.segment, h100.source_instrument) == ("lambda", "specialist", "H100 SXM")
    # The 1-Click Clusters section has the same classes but is not the on-demand table: nothing is read from it.
    assert all("4.49" not in str(o.original_price) for o in result.observations)


# ----------------------------------------------------------------------------------------- CoreWeave


def test_coreweave_div_grid_per_instance_prices():
    result = parse(coreweave_page(), COREWEAVE_URL)
    assert result.rejections == []
    got = prices(result)
    assert got["NVIDIA HGX H100 [H100-SXM]"] == (ON_DEMAND, Decimal("6.155"))  # 49.24 / 8
    assert got["NVIDIA GB200 NVL72 [GB200]"] == (ON_DEMAND, Decimal("10.5"))  # 42.00 / 4
    assert got["NVIDIA HGX B200 [B200]"] == (ON_DEMAND, Decimal("8.6"))  # 68.80 / 8
    assert got["NVIDIA HGX H200 [H200]"] == (ON_DEMAND, Decimal("6.305"))  # 50.44 / 8
    assert got["NVIDIA GH200 [GH200]"] == (ON_DEMAND, Decimal("6.50"))  # 6.50 / 1
    assert got["NVIDIA HGX A100 [A100-80GB]"] == (ON_DEMAND, Decimal("2.7"))  # 21.60 / 8, VRAM 80
    assert got["NVIDIA RTX PRO 6000 Blackwell Server Edition [RTXPRO6000]"] == (ON_DEMAND, Decimal("2.5"))  # 20 / 8
    h100 = next(o for o in result.observations if o.instrument == "H100-SXM")
    assert (h100.original_price, h100.original_unit, h100.gpu_count) == (Decimal("49.24"), "instance_hour", Decimal(8))
    assert len(result.observations) == 9  # the CPU table is another grid: not read


# ----------------------------------------------------------------------------------------- a changed page fails


@pytest.mark.parametrize(
    "change, message",
    [
        # The tabbed section was renamed: no table to read.
        (lambda t: t.replace("comp-tabbed-content__tab-panel", "pricing-panel"), "no element matches the table selector"),
        # The "Choose your GPU configuration" intro is gone: the selector no longer knows the on-demand section.
        (lambda t: t.replace("Choose your GPU configuration", "Pick a size"), "no element matches the table selector"),
        # A column title changed: reading by position would read the wrong column.
        (lambda t: t.replace("<td>Price / GPU / hr</td>", "<td>Price</td>", 1), "expected header(s) ['Price / GPU / hr']"),
        (lambda t: t.replace("<td>vCPUs</td>", "<td>CPU cores</td>", 1), "expected header(s) ['vCPUs']"),
        # The tables are there but their rows moved out of the table body.
        (lambda t: t.replace("<tr><td><span", "<!-- <tr><td><span").replace("</strong></td></tr>", "</strong></td></tr> -->"),
         "no data row"),
        # Not a page at all: an empty body, a bot challenge, JSON.
        (lambda t: "", "empty"),
        (lambda t: "<html><body><h1>Just a moment...</h1><p>Checking your browser</p></body></html>", "no element"),
        (lambda t: '{"error": "rate limited"}', "no element"),
    ],
)
def test_changed_lambda_page_fails_with_a_clear_message(change, message):
    with pytest.raises(ParseError, match=message.replace("[", r"\[").replace("]", r"\]").replace("(", r"\(").replace(")", r"\)")):
        html_tables.parse(change(lambda_page()).encode(), ctx(LAMBDA_URL))


def test_changed_coreweave_grid_fails_with_a_clear_message():
    with pytest.raises(ParseError, match=r"expected header\(s\) \['Instance Price'\]"):
        html_tables.parse(coreweave_page().replace(">Instance Price<", ">Price per hour<").encode(), ctx(COREWEAVE_URL))
    with pytest.raises(ParseError, match="no element matches"):
        html_tables.parse(coreweave_page().replace('class="pricing-table"', 'class="pricing-grid"').encode(), ctx(COREWEAVE_URL))


# ----------------------------------------------------------------------------------------- hostile rows


def test_hostile_and_unpriceable_rows_are_rejected_with_reasons():
    text = lambda_page()
    text = text.replace("NVIDIA Tesla V100</td><td>16 GB", "=cmd|' /C calc'!A0</td><td>16 GB")
    text = text.replace("$0.75/GPU/hr", "Contact sales")  # the 1x A10
    text = text.replace("$1.49/GPU/hr", "$1,073/GPU/mo")  # the GH200 priced per month: another unit
    text = text.replace("$3.29/GPU/hr", "$0.01/GPU/hr")  # an H100 for a cent: a magnitude error
    text = text.replace("<td>14</td><td>46 GiB</td><td>512 GiB SSD</td><td><strong>$0.50/GPU/hr</strong></td>", "")
    text = text.replace("$0.80/GPU/hr</strong></td></tr>\n            </tbody>", "—</strong></td></tr>\n            </tbody>", 1)
    result = parse(text)
    reasons = {(r.row_key.split("|")[0], r.reason) for r in result.rejections}
    assert reasons == {
        ("On-demand 8x =cmd|' /C calc'!A0".split("|")[0], "unknown_instrument"),
        ("On-demand 1x NVIDIA A10", "no_price"),
        ("On-demand 1x NVIDIA GH200", "unexpected_unit"),
        ("On-demand 1x NVIDIA H100 SXM", "outside_sanity_band"),
        ("On-demand 1x NVIDIA Quadro RTX 6000", "malformed_row"),
    }
    formula = next(r for r in result.rejections if r.reason == "unknown_instrument")
    assert "=cmd|' /C calc'!A0" in formula.raw_excerpt
    # The "—" cell (4x A6000: not offered) is neither an observation nor a rejection.
    assert not any(o.attributes["gpu_cell"] == "On-demand 4x NVIDIA A6000" for o in result.observations)
    assert len(result.observations) == 16 - 5 - 1  # 16 rows, 5 refused, 1 not offered


def test_zero_gpu_count_is_refused():
    text = coreweave_page().replace('<div class="w-col w-col-1">1</div>', '<div class="w-col w-col-1">0</div>', 1)
    result = parse(text, COREWEAVE_URL)
    assert [(r.row_key.split("|")[0], r.reason) for r in result.rejections] == [("NVIDIA GH200", "bad_gpu_count")]


# ----------------------------------------------------------------------------------------- configuration


def write_config(tmp_path, **overrides) -> Path:
    entry = {
        "id": "test", "provider": "lambda", "url": "https://example.test/pricing", "tables": "table",
        "header_cells": "thead th", "rows": "tbody tr", "cells": "td", "price_unit": "instance_hour",
        "currency": "USD", "gpu_pattern": "^(?P<name>.+)$", "price_pattern": r"^\$(?P<price>[\d.]+)/h$",
    }
    entry.update(overrides)
    lines = ["[[page]]"] + [f"{k} = {v!r}".replace("'", '"') if not isinstance(v, str) else f"{k} = '{v}'"
                            for k, v in entry.items() if k != "columns"]
    columns = overrides.get("columns", {"gpu": "GPU", "gpu_count": "GPUs", "on_demand": "Price"})
    lines += ["[page.columns]"] + [f"{k} = '{v}'" for k, v in columns.items()]
    path = tmp_path / "pages.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_new_page_is_configuration(tmp_path):
    pages = html_tables.load_pages(write_config(tmp_path))
    body = (
        "<html><body><table><thead><tr><th>GPU</th><th>GPUs</th><th>Price</th></tr></thead><tbody>"
        "<tr><td>H100 SXM</td><td>8</td><td>$20.00/h</td></tr>"
        "<tr><td>L40S</td><td>4</td><td>$3.00/h</td></tr></tbody></table></body></html>"
    ).encode()
    result = html_tables.parse(body, ctx("https://example.test/pricing"), pages=pages)
    assert [(o.instrument, o.usd_price) for o in result.observations] == [
        ("H100-SXM", Decimal("2.5")),  # 20.00 / 8
        ("L40S", Decimal("0.75")),  # 3.00 / 4
    ]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"colour": "red"}, "unknown keys"),
        ({"columns": {"gpu": "GPU", "gpu_count": "GPUs"}}, "price field"),
        ({"columns": {"gpu": "GPU", "on_demand": "Price"}}, "GPU count"),
        ({"price_unit": "gpu_month"}, "price_unit"),
        ({"currency": "EUR"}, "only USD"),
        ({"gpu_pattern": "^(?P<name>[$"}, "bad regular expression"),
        ({"price_pattern": r"^\$([\d.]+)$"}, "price_pattern a group"),
        ({"tables": "table:nth-child(("}, "not a CSS selector"),
    ],
)
def test_bad_configuration_is_refused(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        html_tables.load_pages(write_config(tmp_path, **overrides))


def test_shipped_configuration_and_requests():
    pages = html_tables.load_pages()
    assert [(p.id, p.provider, p.price_unit) for p in pages] == [
        ("lambda", "lambda", "gpu_hour"),
        ("coreweave", "coreweave", "instance_hour"),
    ]
    assert [(r.source, r.url, r.provider) for r in html_tables.requests()] == [
        ("html_tables", LAMBDA_URL, "lambda"),
        ("html_tables", COREWEAVE_URL, "coreweave"),
    ]


def test_page_is_found_by_url_then_by_provider(tmp_path):
    assert html_tables.page_for(ctx(LAMBDA_URL + "/")).id == "lambda"
    assert html_tables.page_for(ctx("file:///tmp/saved.html", "coreweave")).id == "coreweave"
    with pytest.raises(ParseError, match="no page in html_pages.toml"):
        html_tables.page_for(ctx("https://elsewhere.test/", "nobody"))
    assert html_tables.context_for_file(tmp_path / "coreweave_2026-11-18.html", WHEN).provider == "coreweave"
    with pytest.raises(ValueError, match="start its name with a page id"):
        html_tables.context_for_file(tmp_path / "pricing.html", WHEN)


def test_fetch_uses_the_request_url():
    body = lambda_page().encode()
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, content=body, headers={"Content-Type": "text/html; charset=utf-8"})

    request = html_tables.requests()[0]
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        fetched = html_tables.fetch(client, request, clock=lambda: WHEN)
    assert seen == [LAMBDA_URL] and fetched.body == body and fetched.fetched_at == WHEN


# ----------------------------------------------------------------------------------------- the demo recordings


@pytest.mark.parametrize("date", DEMO_DATES)
def test_demo_recordings_cover_the_pages_and_parse_cleanly(date):
    responses = tomllib.loads((DEMO / date / "manifest-html_tables.toml").read_text())["response"]
    assert [r["url"] for r in responses] == [r.url for r in html_tables.requests()]
    values = {}
    for response in responses:
        result = parse((DEMO / date / response["file"]).read_text(), response["url"])
        assert response["status"] == 200 and result.rejections == []
        values.update(prices(result))
    # The demo moves two prices: Lambda's 8x H100 on 2026-11-18, CoreWeave's HGX H100 from 2026-11-19 on.
    lambda_8x = {"2026-11-18": Decimal("2.89")}.get(date, Decimal("2.99"))
    coreweave = Decimal("5.98") if date >= "2026-11-19" else Decimal("6.155")  # 47.84 / 8, 49.24 / 8
    assert values["On-demand 8x NVIDIA H100 SXM [H100-SXM]"] == (ON_DEMAND, lambda_8x)
    assert values["NVIDIA HGX H100 [H100-SXM]"] == (ON_DEMAND, coreweave)


# ----------------------------------------------------------------------------------------- hostile pages (issue 10)


def test_table_count_is_configuration_and_a_decoy_table_fails_the_page(tmp_path):
    (tmp_path / "two").mkdir(), (tmp_path / "one").mkdir()  # load_pages caches by path: one file per configuration
    pages = html_tables.load_pages(write_config(tmp_path / "two", table_count=2))
    assert pages[0].table_count == 2 and html_tables.load_pages()[0].table_count == 4
    table = ("<table><thead><tr><th>GPU</th><th>GPUs</th><th>Price</th></tr></thead><tbody>"
             "<tr><td>L40S</td><td>4</td><td>$3.00/h</td></tr></tbody></table>")
    body = f"<html><body>{table}{table.replace('$3.00', '$2.00')}</body></html>".encode()
    assert len(html_tables.parse(body, ctx("https://example.test/pricing"), pages=pages).observations) == 2
    one_table = html_tables.load_pages(write_config(tmp_path / "one"))
    with pytest.raises(ParseError, match="page test: 2 tables match the table selector, the configuration expects 1"):
        html_tables.parse(body, ctx("https://example.test/pricing"), pages=one_table)
    for n, bad in enumerate((0, "4", 101)):
        (tmp_path / f"bad{n}").mkdir()
        with pytest.raises(ValueError, match="table_count"):
            html_tables.load_pages(write_config(tmp_path / f"bad{n}", table_count=bad))


@pytest.mark.parametrize("tail, complete", [
    ("</body></html>\n", True), ("</body></HTML >\n<!-- cached 12:00 -->\n", True),
    ("</body>", False), ("</body></html><script>x()</script>", False), ("", False),
])
def test_a_page_is_complete_only_with_its_closing_html_tag(tail, complete):
    assert html_tables.page_is_complete("<html><body><p>$4".encode() + tail.encode()) is complete


@pytest.mark.parametrize("cell, reason", [
    ("HK$2.99/GPU/hr", "unexpected_currency"), ("US$2.99/GPU/hr", "unexpected_unit"), ("$2.99/GPU/hr", None), ("€2.99/GPU/hr", "unexpected_currency"),
    ("$2.99/GPU/hr EUR", "unexpected_currency"), ("-$2.99/GPU/hr", "bad_price"), ("$-2.99/GPU/hr", "bad_price"),
    ("\u2212$2.99/GPU/hr", "bad_price"), ("$2,99/GPU/hr", "bad_price"), ("$0,299/GPU/hr", "bad_price"),
    ("$1,2,3/GPU/hr", "bad_price"), ("$1,299.00/GPU/hr", "outside_sanity_band"),
])
def test_a_price_cell_in_another_currency_with_a_sign_or_a_decimal_comma_is_refused(cell, reason):
    result = parse(lambda_page().replace("$2.99/GPU/hr", cell, 1))
    eight_h100 = [r.reason for r in result.rejections if r.row_key.startswith("On-demand 8x NVIDIA H100 SXM")]
    assert eight_h100 == ([reason] if reason else [])
    if reason is None:
        assert any(o.usd_price == Decimal("2.99") for o in result.observations)
