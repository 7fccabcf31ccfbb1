"""The Azure Retail Prices source: GPU VM prices per GPU-hour by price type, paging, the real dumps, the demo recordings.

Expected prices are worked out by hand from the items' text (retailPrice / hours in the term / GPUs per VM, rounded
half-even to 10 places), never copied from the parser's output.
"""
from __future__ import annotations

import csv
import json
import tomllib
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest

from pipeline.catalog import default_catalog
from pipeline.http import FetchError
from pipeline.normalise import parse_body
from pipeline.records import ON_DEMAND, SPOT, ParseContext, ParseError
from pipeline.sources import azure

TESTS = Path(__file__).resolve().parent
FIXTURES = TESTS / "fixtures" / "azure"
DEMO = TESTS / "fixtures" / "demo"
DEMO_DATES = ["2026-11-16", "2026-11-17", "2026-11-18", "2026-11-19", "2026-11-20"]
WHEN = datetime(2026, 11, 18, 6, 0, tzinfo=timezone.utc)
# The reasons this source gives on the real, unfiltered dumps, and why: the dumps are mostly other services and CPU
# VMs; their few GPU items include Windows and Low Priority meters.
EXPLAINED_ON_REAL_DUMPS = {"not_a_gpu_vm", "windows", "low_priority", "dev_test"}


def ctx() -> ParseContext:
    return ParseContext(source="azure", observed_at=WHEN, url="https://prices.azure.com/api/retail/prices", provider="azure")


def parse(raw: bytes):
    return parse_body(azure, raw, ctx())


def by_key(result) -> dict:
    return {o.row_key: o for o in result.observations}


# ----------------------------------------------------------------------------------------- hand-written pages


def test_price_types_and_per_gpu_prices():
    result = parse((FIXTURES / "prices_first.json").read_bytes())
    obs = by_key(result)
    assert sorted(obs) == [
        "Standard_ND96isr_H100_v5|eastus|on_demand",
        "Standard_ND96isr_H100_v5|eastus|reserved_1y",
        "Standard_ND96isr_H100_v5|eastus|reserved_3y",
        "Standard_ND96isr_H100_v5|eastus|spot",
        "Standard_NV6ads_A10_v5|southcentralus|on_demand",
    ]
    on_demand = obs["Standard_ND96isr_H100_v5|eastus|on_demand"]
    assert (on_demand.instrument, on_demand.price_type, on_demand.gpu_count) == ("H100-SXM", ON_DEMAND, Decimal(8))
    assert on_demand.usd_price == Decimal("12.29")  # 98.32 / 8
    assert (on_demand.original_price, on_demand.original_unit) == (Decimal("98.32"), "instance_hour")
    assert on_demand.segment == "hyperscaler" and on_demand.region == "eastus"
    spot = obs["Standard_ND96isr_H100_v5|eastus|spot"]  # the meter name says Spot
    assert (spot.price_type, spot.usd_price) == (SPOT, Decimal("4.916"))  # 39.328 / 8
    # A reservation's price is the whole term: 567454 / 8760 h / 8 GPUs = 567454 / 70080 = 8.09723173515...
    one_year = obs["Standard_ND96isr_H100_v5|eastus|reserved_1y"]
    assert one_year.usd_price == Decimal("8.0972317352")
    assert (one_year.original_unit, one_year.attributes["hours_in_term"]) == ("instance_1y_term", 8760)
    # 1232892 / 26280 h / 8 = 1232892 / 210240 = 5.86421232876...
    assert obs["Standard_ND96isr_H100_v5|eastus|reserved_3y"].usd_price == Decimal("5.8642123288")
    # A sixth of an A10: 0.454 per VM-hour is 0.454 x 6 = 2.724 per GPU-hour, with the exact fraction.
    slice_ = obs["Standard_NV6ads_A10_v5|southcentralus|on_demand"]
    assert (slice_.instrument, slice_.usd_price, slice_.gpu_count) == ("A10", Decimal("2.724"), Decimal("0.1667"))
    assert slice_.attributes["gpus_per_vm"] == "1/6"


def test_every_refused_item_has_its_reason():
    result = parse((FIXTURES / "prices_first.json").read_bytes())
    details = [(r.reason, r.detail) for r in result.rejections]
    reasons = sorted(r.reason for r in result.rejections)
    assert reasons == sorted([
        "windows",  # productName ends in " Windows"
        "dev_test",  # DevTestConsumption
        "low_priority",  # "NC40ads H100 v5 Low Priority"
        "not_a_gpu_vm", "not_a_gpu_vm",  # a storage meter, a CPU VM
        "unknown_instrument",  # an N-series size missing from azure_gpu_skus.csv
        "not_hourly",  # a GPU VM priced "1/Month"
        "not_usd",  # EUR
        "unsupported_price_type",  # a "5 Years" reservation
        "bad_price",  # retailPrice as a string
        "outside_sanity_band",  # 5000 USD for one H100 NVL-hour
        "malformed_item",  # not a JSON object
    ]), details
    unknown = next(r for r in result.rejections if r.reason == "unknown_instrument")
    assert "Standard_NC8ads_A10_v4" in unknown.detail and "azure_gpu_skus.csv" in unknown.detail


def test_real_dump_shape_is_a_bare_list():
    items = json.loads((FIXTURES / "prices_last.json").read_text())["Items"]
    text = (FIXTURES / "prices_last.json").read_text()
    bare = text[text.index('"Items": ') + len('"Items": '): text.rindex("]") + 1]
    [obs] = parse(bare.encode()).observations
    assert len(items) == 1 and (obs.instrument, obs.usd_price) == ("A100-80GB", Decimal("3.673"))  # 3.673 / 1


@pytest.mark.parametrize(
    "body, message",
    [
        (b"", "empty"),
        (b"<html><body>Service Unavailable</body></html>", "not JSON"),
        (b'{"error": {"code": "BadRequest", "message": "Invalid OData parameters supplied"}}', "no 'Items'"),
        (b'{"Items": {"retailPrice": 1}}', "not a list"),
        (b'{"BillingCurrency": "USD", "Items": [], "NextPageLink": null, "Count": 0}', "no items"),
    ],
)
def test_unreadable_pages_fail_loudly(body, message):
    with pytest.raises(ParseError, match=message):
        azure.parse(body, ctx())


# ----------------------------------------------------------------------------------------- the real dumps

REAL_DUMPS = {
    # date: (observations, rejections by reason), counted by hand from the files: the GPU items are NC48ads A100 v4
    # (on-demand, 1y, 3y), NV72ads A10 v5 (the same three), ND96ams A100 v4 Spot, NV4as v4 Spot, plus ND96isr H200 v5
    # (three) in October; NC64as T4 v3 Windows (Consumption and Dev/Test) and NC80adis H100 v5 Low Priority are refused.
    "2025-04-27": (8, {"not_a_gpu_vm": 989, "windows": 2, "low_priority": 1}),
    "2025-10-28": (11, {"not_a_gpu_vm": 986, "windows": 2, "low_priority": 1}),
}


@pytest.mark.parametrize("date", sorted(REAL_DUMPS))
def test_real_unfiltered_dumps(shared_real, date):
    path = shared_real / "azure_retail_prices" / f"azure_retail_items_{date}.json"
    result = parse_body(azure, path.read_bytes(), azure.context_for_file(path, WHEN))
    reasons: dict[str, int] = {}
    for r in result.rejections:
        reasons[r.reason] = reasons.get(r.reason, 0) + 1
    assert set(reasons) <= EXPLAINED_ON_REAL_DUMPS
    assert (len(result.observations), reasons) == REAL_DUMPS[date]
    obs = by_key(result)
    # 42066 for one year of a 2-GPU VM: 42066 / 8760 / 2 = 42066 / 17520 = 2.40102739726...
    assert obs["Standard_NC48ads_A100_v4|eastus2|reserved_1y"].usd_price == Decimal("2.4010273973")
    assert obs["Standard_NC48ads_A100_v4|eastus2|on_demand"].usd_price == Decimal("3.673")  # 7.346 / 2
    mi25 = obs["Standard_NV4as_v4|usgovarizona|spot"]  # an eighth of an MI25
    spot_price = {"2025-04-27": "0.32592", "2025-10-28": "0.430216"}[date]  # 0.04074 x 8, 0.053777 x 8
    assert (mi25.instrument, mi25.usd_price) == ("MI25", Decimal(spot_price))
    if date == "2025-10-28":
        assert obs["Standard_ND96isr_H200_v5|usgovvirginia|on_demand"].usd_price == Decimal("13.25")  # 106 / 8
        # 1225699 / 26280 / 8 = 1225699 / 210240 = 5.82999904870...
        assert obs["Standard_ND96isr_H200_v5|usgovvirginia|reserved_3y"].usd_price == Decimal("5.8299990487")


# ----------------------------------------------------------------------------------------- the SKU table


def test_sku_table_is_consistent_with_the_gpu_catalog():
    skus = azure.load_skus()
    catalog = default_catalog()
    assert len(skus) >= 50
    assert {s.canonical_gpu for s in skus.values()} <= set(catalog.gpus)
    with azure.SKU_TABLE.open() as handle:
        rows = list(csv.DictReader(line for line in handle if not line.startswith("#")))
    assert all(r["note"].strip() for r in rows)  # every size says where its GPU count comes from
    assert skus["standard_nd96isr_h100_v5"].per_gpu(Decimal("98.32")) == Decimal("12.29")
    assert skus["standard_nv12ads_a10_v5"].per_gpu(Decimal("0.908")) == Decimal("2.724")  # a third: 0.908 x 3


def test_sku_table_refuses_bad_rows(tmp_path):
    bad = tmp_path / "skus.csv"
    bad.write_text("arm_sku_name,canonical_gpu,gpu_count,note\nStandard_X,H100-SXM,0,zero GPUs\n")
    with pytest.raises(ValueError, match="bad row"):
        azure.load_skus(bad)


def test_request_filters_the_gpu_vm_families():
    [request] = azure.requests()
    assert request.url.startswith("https://prices.azure.com/api/retail/prices?currencyCode=%27USD%27&$filter=")
    flt = unquote(request.url.split("$filter=", 1)[1])
    assert flt == ("serviceName eq 'Virtual Machines' and (contains(armSkuName, 'Standard_NC') or "
                   "contains(armSkuName, 'Standard_ND') or contains(armSkuName, 'Standard_NG') or "
                   "contains(armSkuName, 'Standard_NV'))")
    # Every size of the table is of one of the families the filter asks for.
    assert all(azure.GPU_FAMILY.match(sku.arm_sku_name) for sku in azure.load_skus().values())


# ----------------------------------------------------------------------------------------- paging


def _pages_transport(bodies: dict[str, bytes], calls: list[str]):
    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(str(request.url))
        body = bodies.get(str(request.url))
        if body is None:
            return httpx.Response(404, content=b"not found")
        return httpx.Response(200, content=body, headers={"Content-Type": "application/json"})

    return httpx.MockTransport(handler)


def test_fetch_follows_next_page_link_and_stamps_one_time():
    first = (FIXTURES / "prices_first.json").read_bytes()
    last = (FIXTURES / "prices_last.json").read_bytes()
    link = json.loads(first)["NextPageLink"]
    [request] = azure.requests()
    calls: list[str] = []
    ticks = iter([WHEN, datetime(2026, 11, 18, 6, 5, tzinfo=timezone.utc)])
    transport = _pages_transport({request.url: first, str(httpx.URL(link)): last}, calls)
    with httpx.Client(transport=transport) as client:
        pages = azure.fetch(client, request, clock=lambda: next(ticks))
    assert [p.body for p in pages] == [first, last]
    assert [p.fetched_at for p in pages] == [WHEN, WHEN]  # one clock() call for the whole collection
    assert calls == [request.url, str(httpx.URL(link))]


def test_fetch_refuses_a_page_link_to_another_host():
    body = json.dumps({"Items": [], "NextPageLink": "https://evil.example/prices?$skip=1000"}).encode()
    [request] = azure.requests()
    with httpx.Client(transport=_pages_transport({request.url: body}, [])) as client:
        with pytest.raises(FetchError, match="leaves prices.azure.com") as caught:
            azure.fetch(client, request, clock=lambda: WHEN)
    assert caught.value.transient is False


def test_fetch_refuses_a_page_link_loop():
    [request] = azure.requests()
    body = json.dumps({"Items": [], "NextPageLink": request.url}).encode()
    with httpx.Client(transport=_pages_transport({request.url: body}, [])) as client:
        with pytest.raises(FetchError, match="already fetched"):
            azure.fetch(client, request, clock=lambda: WHEN)


# ----------------------------------------------------------------------------------------- the demo recordings


@pytest.mark.parametrize("date", DEMO_DATES)
def test_demo_recordings_are_the_pages_a_collection_fetches(date):
    responses = tomllib.loads((DEMO / date / "manifest-azure.toml").read_text())["response"]
    assert [r["status"] for r in responses] == [200, 200]
    assert responses[0]["url"] == azure.requests()[0].url
    page1 = (DEMO / date / responses[0]["file"]).read_bytes()
    assert str(httpx.URL(json.loads(page1)["NextPageLink"])) == str(httpx.URL(responses[1]["url"]))
    results = [parse((DEMO / date / r["file"]).read_bytes()) for r in responses]
    assert sorted(r.reason for res in results for r in res.rejections) == ["low_priority", "windows"]
    on_demand = {o.instrument: o.usd_price for res in results for o in res.observations if o.price_type == ON_DEMAND}
    assert on_demand["H100-SXM"] == Decimal("12.29")  # 98.32 / 8
    assert on_demand["H200"] == Decimal("10.6")  # 84.8 / 8
    assert on_demand["A10"] == Decimal("2.724")  # NV6ads: 0.454 x 6 (NV36ads: 3.2 / 1 is the other A10 row)


# ----------------------------------------------------------------------------------------- hostile pages (issue 10)

H100_ITEM = ('{"currencyCode": "USD", "retailPrice": 98.32, "armRegionName": "eastus", "meterId": "m-1", '
             '"meterName": "ND96isr H100 v5", "productName": "Virtual Machines NDsr H100 v5 Series", '
             '"skuName": "ND96isr H100 v5", "serviceName": "Virtual Machines", "unitOfMeasure": "1 Hour", '
             '"type": "Consumption", "armSkuName": "Standard_ND96isr_H100_v5"')
A100_ITEM = ('{"currencyCode": "USD", "retailPrice": 3.673, "armRegionName": "eastus2", "meterId": "m-2", '
             '"meterName": "NC24ads_A100_v4", "productName": "NCads A100 v4 Series Linux", "skuName": "NC24ads_A100_v4", '
             '"serviceName": "Virtual Machines", "unitOfMeasure": "1 Hour", "type": "Consumption", '
             '"armSkuName": "Standard_NC24ads_A100_v4"')


def _page(*items: str, billing: str = '"USD"') -> bytes:
    """A page as JSON text (each item without its closing brace, so that a test can add keys, even repeated ones)."""
    return ('{"BillingCurrency": ' + billing + ', "Items": [' + ", ".join(i + "}" for i in items) + "]}").encode()


def test_an_item_that_repeats_retail_price_with_two_values_is_refused_the_others_kept():
    result = parse(_page(H100_ITEM + ', "retailPrice": 9.832', A100_ITEM))
    [refused] = result.rejections
    assert refused.reason == "duplicate_key" and "'retailPrice'" in refused.detail
    # The A100 reads (3.673 / 1); nothing of the H100 (the old code took 9.832 / 8 = 1.229).
    assert [(o.instrument, o.usd_price) for o in result.observations] == [("A100-80GB", Decimal("3.673"))]


def test_the_same_item_twice_with_different_prices_is_refused_both_copies():
    result = parse(_page(H100_ITEM, H100_ITEM.replace("98.32", "9.832"), A100_ITEM))
    assert sorted(r.reason for r in result.rejections) == ["conflicting_duplicate"] * 2
    assert [o.instrument for o in result.observations] == ["A100-80GB"]


@pytest.mark.parametrize("price", ["1e20", "1E+400", "-98.32", '"98.32"', "null", "[98.32]", '{"value": 98.32}', "NaN"])
def test_an_unreadable_retail_price_is_bad_price_not_an_exception(price):
    result = parse(_page(H100_ITEM.replace('"retailPrice": 98.32', f'"retailPrice": {price}'), A100_ITEM))
    assert [(r.row_key, r.reason) for r in result.rejections] == [("Standard_ND96isr_H100_v5|eastus|on_demand", "bad_price")]
    assert len(result.observations) == 1


def test_a_price_that_rounds_to_zero_per_gpu_hour_is_not_positive():
    result = parse(_page(H100_ITEM.replace("98.32", "0.0000000001")))  # 1.25e-11 per GPU-hour: 0 at 10 places
    assert [r.reason for r in result.rejections] == ["not_positive"] and not result.observations


@pytest.mark.parametrize(
    "change, reason",
    [
        (('"currencyCode": "USD", ', ""), "not_usd"),  # no currency at all
        (('"currencyCode": "USD"', '"currencyCode": "EUR"'), "not_usd"),
        (('"currencyCode": "USD"', '"currencyCode": ["USD"]'), "not_usd"),
        (('"unitOfMeasure": "1 Hour"', '"unitOfMeasure": "100 Hours"'), "not_hourly"),
        (('"unitOfMeasure": "1 Hour", ', ""), "not_hourly"),
        (('"type": "Consumption"', '"type": "SavingsPlanConsumption"'), "unsupported_price_type"),
        (('"type": "Consumption", ', ""), "unsupported_price_type"),
    ],
)
def test_an_item_not_in_usd_per_hour_of_a_known_type_is_refused(change, reason):
    item = H100_ITEM.replace(*change)
    assert item != H100_ITEM
    result = parse(_page(item, A100_ITEM))
    assert [r.reason for r in result.rejections] == [reason] and len(result.observations) == 1


@pytest.mark.parametrize(
    "body, message",
    [
        (_page(H100_ITEM, billing='"EUR"'), "BillingCurrency is 'EUR'"),
        (b'{"Items": [' + (H100_ITEM + "}").encode() + b'], "Items": [' + (A100_ITEM + "}").encode() + b"]}",
         "repeats 'Items'"),
        (b'{"Items": [{"retailPrice": 98.', "not JSON"),  # cut inside a number
    ],
)
def test_hostile_pages_fail_with_one_line(body, message):
    with pytest.raises(ParseError, match=message) as caught:
        azure.parse(body, ctx())
    assert "\n" not in str(caught.value)


def test_fetch_refuses_a_page_that_repeats_next_page_link_with_two_values():
    [request] = azure.requests()
    body = (b'{"Items": [], "NextPageLink": "https://prices.azure.com/api/retail/prices?$skip=1000", '
            b'"NextPageLink": "https://prices.azure.com/api/retail/prices?$skip=2000"}')
    with httpx.Client(transport=_pages_transport({request.url: body}, [])) as client:
        with pytest.raises(FetchError, match="repeats NextPageLink"):
            azure.fetch(client, request, clock=lambda: WHEN)


def test_the_body_cap_is_a_module_constant():
    assert azure.MAX_BODY_BYTES == 16 * 1024 * 1024
