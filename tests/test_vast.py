"""The Vast.ai source: per-offer prices per GPU-hour, the real sample in ../shared, hostile offers, the demo recordings.

Expected prices are worked out by hand from the offers' text (dph_total or min_bid / num_gpus, rounded half-even to
10 places), never copied from the parser's output.
"""
from __future__ import annotations

import json
import random
import tomllib
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from test_columnar import FAST_READ_UNUSUAL, Raw, compare_paths, to_json, usual_offer, vast_offers

from pipeline.normalise import parse_body
from pipeline.records import ON_DEMAND, SPOT, ParseContext, ParseError
from pipeline.sources import vast
from pipeline.sources.jsonbody import fast_records
from pipeline.sources.vast_columns import Offer

TESTS = Path(__file__).resolve().parent
FIXTURES = TESTS / "fixtures" / "vast"
DEMO = TESTS / "fixtures" / "demo"
DEMO_DATES = ["2026-11-16", "2026-11-17", "2026-11-18", "2026-11-19", "2026-11-20"]
WHEN = datetime(2026, 11, 18, 6, 0, tzinfo=timezone.utc)
# Every reason this source may give, and why (README "Sources"): nothing else may appear on real data.
DOCUMENTED_REASONS = {"unknown_instrument", "bad_gpu_count", "bad_price", "not_rentable", "malformed_offer",
                      "not_positive", "outside_sanity_band", "duplicate_row"}


def ctx() -> ParseContext:
    return ParseContext(source="vast", observed_at=WHEN, url="https://console.vast.ai/api/v0/bundles/", provider="vast")


def parse(raw: bytes):
    return parse_body(vast, raw, ctx())


def by_key(result) -> dict:
    return {o.row_key: o for o in result.observations}


# ----------------------------------------------------------------------------------------- the real sample


def test_real_sample_first_three_offers(shared_real):
    path = shared_real / "vast_offers" / "vast_search_offers_first3.json"
    result = parse_body(vast, path.read_bytes(), vast.context_for_file(path, WHEN))
    assert result.rejections == []
    obs = by_key(result)
    assert sorted(obs) == [f"{i}|{t}" for i in (39185351, 39209551, 39235233) for t in (ON_DEMAND, SPOT)]
    first = obs["39185351|on_demand"]
    # One A100 SXM4 stating 39936 MB: the 40 GB card. dph_total 0.6951851851851852 / 1, to 10 places: 0.6951851852.
    assert (first.instrument, first.source_instrument) == ("A100-40GB", "A100 SXM4")
    assert first.original_price == Decimal("0.6951851851851852")  # the JSON text, exactly
    assert first.usd_price == Decimal("0.6951851852")
    assert (first.gpu_count, first.original_unit, first.region) == (Decimal(1), "offer_hour", "Alberta, CA")
    assert first.segment == "marketplace"
    assert obs["39185351|spot"].usd_price == Decimal("0.6")  # min_bid 0.6 / 1
    # 0.7648629629629631 -> 0.7648629630; min_bid 0.7333333333333334 -> 0.7333333333.
    assert obs["39235233|on_demand"].usd_price == Decimal("0.7648629630")
    assert obs["39235233|spot"].usd_price == Decimal("0.7333333333")
    # A slice of a bigger machine keeps its own GPU count; the slice is an attribute, as are reliability and checks.
    sliced = obs["39209551|on_demand"].attributes
    assert sliced["gpu_frac"] == Decimal("0.5") and sliced["reliability2"] == Decimal("0.997128")
    assert sliced["verification"] == "verified" and sliced["gpu_ram"] == 40960
    assert all(type(o.usd_price) is Decimal and type(o.original_price) is Decimal for o in result.observations)


# ----------------------------------------------------------------------------------------- hand-written offers


def test_multi_gpu_offers_divide_by_num_gpus():
    result = parse((FIXTURES / "offers.json").read_bytes())
    obs = by_key(result)
    h100 = obs["41000001|on_demand"]
    assert (h100.instrument, h100.gpu_count) == ("H100-SXM", Decimal(8))
    assert h100.usd_price == Decimal("1.9011111111")  # 15.208888888888889 / 8 = 1.901111111111111125
    assert obs["41000001|spot"].usd_price == Decimal("1.3")  # 10.4 / 8
    a100 = obs["41000002|on_demand"]  # gpu_ram 81920 per GPU: the 80 GB card
    assert (a100.instrument, a100.usd_price) == ("A100-80GB", Decimal("0.8368518519"))  # 1.6737037037037037 / 2
    assert obs["41000002|spot"].usd_price == Decimal("0.45")  # 0.9 / 2
    v100 = obs["41000010|on_demand"]  # 16160 MB: the 16 GB card; 0.5481481481481482 / 4 = 0.13703703703703705
    assert (v100.instrument, v100.usd_price) == ("V100-16GB", Decimal("0.1370370370"))
    assert obs["41000003|on_demand"].instrument == "RTX4070TI-SUPER"
    assert "41000003|spot" not in obs  # min_bid 0: no interruptible offer, and no rejection either
    assert h100.attributes["host_id"] == 150001 and h100.attributes["gpu_memory_mib"] == 81920


def test_hostile_and_broken_offers_are_rejected_with_reasons():
    result = parse((FIXTURES / "offers.json").read_bytes())
    reasons = {(r.row_key, r.reason) for r in result.rejections}
    assert reasons == {
        ("41000004|*", "unknown_instrument"),  # a spreadsheet formula as the GPU name
        ("41000005|*", "bad_gpu_count"),  # num_gpus 0
        ("41000006|on_demand", "bad_price"),  # a price as a string
        ("41000007|on_demand", "bad_price"),  # a negative price
        ("41000008|on_demand", "outside_sanity_band"),  # 4000 USD for one H100-hour
        ("41000009|*", "not_rentable"),
        ("41000010|spot", "bad_price"),  # NaN is not a number
        ("offer #11|*", "malformed_offer"),
    }
    formula = next(r for r in result.rejections if r.reason == "unknown_instrument")
    assert '=HYPERLINK(\\"http://evil.example\\"' in formula.raw_excerpt  # kept as data, in the excerpt
    obs = by_key(result)
    # The other price of a half-broken offer survives.
    assert obs["41000006|spot"].usd_price == Decimal("0.4")  # 1.6 / 4
    assert obs["41000008|spot"].usd_price == Decimal("1.5")
    assert "41000006|on_demand" not in obs and "41000008|on_demand" not in obs


def test_bare_list_and_wrapped_offers_read_alike():
    # `vastai search offers --raw` prints the bare list, the API wraps it in {"offers": ...}.
    wrapped_text = (FIXTURES / "offers.json").read_text()
    bare_text = wrapped_text[wrapped_text.index("["): wrapped_text.rindex("]") + 1]
    bare, wrapped = parse(bare_text.encode()), parse(wrapped_text.encode())
    assert [(o.row_key, o.usd_price) for o in bare.observations] == [(o.row_key, o.usd_price) for o in wrapped.observations]
    assert len(bare.observations) == 8


@pytest.mark.parametrize(
    "body, message",
    [
        (b"", "empty"),
        (b"  \n", "empty"),
        (b"<html>502 Bad Gateway</html>", "not JSON"),
        (b'{"success": false, "error": "invalid_args"}', "no 'offers'"),
        (b'{"offers": {"id": 1}}', "not a list"),
        (b'{"offers": []}', "no offers"),
        (b"[]", "no offers"),
    ],
)
def test_unreadable_bodies_fail_loudly(body, message):
    with pytest.raises(ParseError, match=message):
        vast.parse(body, ctx())


# ----------------------------------------------------------------------------------------- requests and fetch


def test_request_is_one_get_with_the_query_as_json():
    [request] = vast.requests()
    assert (request.source, request.provider) == ("vast", "vast")
    parts = urlsplit(request.url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://console.vast.ai/api/v0/bundles/"
    query = json.loads(parse_qs(parts.query)["q"][0])
    assert query["verified"] == {"eq": True} and query["rentable"] == {"eq": True} and query["rented"] == {"eq": False}
    assert "H100 SXM" in query["gpu_name"]["in"] and query["type"] == "on-demand"


def test_fetch_uses_the_request_url_and_clock():
    body = (FIXTURES / "offers.json").read_bytes()
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, content=body, headers={"Content-Type": "application/json"})

    [request] = vast.requests()
    with httpx.Client(transport=httpx.MockTransport(handler)) as client:
        fetched = vast.fetch(client, request, clock=lambda: WHEN)
    assert seen == [request.url] and (fetched.body, fetched.fetched_at) == (body, WHEN)


# ----------------------------------------------------------------------------------------- the demo recordings


@pytest.mark.parametrize("date", DEMO_DATES)
def test_demo_recording_matches_the_request_and_parses_cleanly(date):
    [response] = tomllib.loads((DEMO / date / "manifest-vast.toml").read_text())["response"]
    assert response["url"] == vast.requests()[0].url and response["status"] == 200
    result = parse((DEMO / date / response["file"]).read_bytes())
    assert result.rejections == []
    on_demand = {o.instrument for o in result.observations if o.price_type == ON_DEMAND}
    assert {"H100-SXM", "H200", "A100-80GB", "L40S", "RTX4090"} <= on_demand
    assert {o.provider for o in result.observations} == {"vast"}


# ----------------------------------------------------------------------------------------- hostile offers (issue 10)


def _offer(offer_id: int = 1, gpu: str = "H100 SXM", num_gpus: str = "8", dph: str = "16.0", bid: str = "8.0",
           extra: str = "") -> str:
    """One offer as JSON text, so that a test can repeat a key (a dict cannot)."""
    return (f'{{"id": {offer_id}, "gpu_name": "{gpu}", "num_gpus": {num_gpus}, "gpu_ram": 81559, '
            f'"dph_total": {dph}, "min_bid": {bid}, "rentable": true{extra}}}')


def _offers(*offers: str) -> bytes:
    return ('{"offers": [' + ", ".join(offers) + "]}").encode()


def test_an_offer_that_repeats_dph_total_with_two_values_is_refused_the_others_kept():
    result = parse(_offers(_offer(1, extra=', "dph_total": 1.6'), _offer(2)))
    [refused] = result.rejections
    assert (refused.row_key, refused.reason) == ("1|*", "duplicate_key")
    assert "'dph_total'" in refused.detail
    # Offer 2 reads: 16.0 / 8 = 2, 8.0 / 8 = 1; nothing of offer 1 (the old code took 1.6 / 8 = 0.2).
    assert {o.row_key: o.usd_price for o in result.observations} == {"2|on_demand": Decimal(2), "2|spot": Decimal(1)}


def test_a_key_repeated_with_the_same_value_is_harmless():
    result = parse(_offers(_offer(1, extra=', "num_gpus": 8')))
    assert result.rejections == [] and len(result.observations) == 2


def test_a_conflict_deep_inside_an_offer_refuses_it_and_an_unreadable_id_is_named_by_position():
    result = parse(_offers(_offer(1, extra=', "search": {"totalHour": 16.0, "totalHour": 1.6}'),
                           '{"id": 3, "id": 4, "gpu_name": "H100 SXM", "num_gpus": 8, "dph_total": 16.0}'))
    assert {(r.row_key, r.reason) for r in result.rejections} == {("1|*", "duplicate_key"), ("offer #2|*", "duplicate_key")}
    assert "search.totalHour" in result.rejections[0].detail and not result.observations


def test_the_same_offer_id_twice_with_different_prices_is_refused_not_resolved_by_position():
    result = parse(_offers(_offer(1, dph="16.0"), _offer(1, dph="1.6")))
    reasons = sorted((r.row_key, r.reason) for r in result.rejections)
    assert reasons == [("1|on_demand", "conflicting_duplicate")] * 2 + [("1|spot", "duplicate_row")]
    assert [(o.row_key, o.usd_price) for o in result.observations] == [("1|spot", Decimal(1))]  # both copies agree


@pytest.mark.parametrize("num_gpus", ["0.5", "100000000", "65", "0", "-8", '"8"', "true", "null", '{"n": 8}', "1e20", "NaN"])
def test_num_gpus_must_be_a_whole_count_from_1_to_64(num_gpus):
    result = parse(_offers(_offer(1, num_gpus=num_gpus)))
    assert [(r.row_key, r.reason) for r in result.rejections] == [("1|*", "bad_gpu_count")]
    assert result.observations == []


@pytest.mark.parametrize("num_gpus, per_gpu", [("64", "0.25"), ("8.0", "2"), ("1", "16")])
def test_whole_counts_up_to_64_read(num_gpus, per_gpu):
    obs = by_key(parse(_offers(_offer(1, num_gpus=num_gpus))))
    assert obs["1|on_demand"].usd_price == Decimal(per_gpu)  # 16.0 / num_gpus
    assert vast.MAX_NUM_GPUS == 64


@pytest.mark.parametrize("dph", ["1e20", "-1E+400", "1E+400", '{"amount": 16}', "[16.0]", "null", '"16.0"', "NaN", "-16"])
def test_an_unreadable_on_demand_price_is_bad_price_and_the_spot_price_stays(dph):
    result = parse(_offers(_offer(1, dph=dph)))
    assert [(r.row_key, r.reason) for r in result.rejections] == [("1|on_demand", "bad_price")]
    assert [(o.row_key, o.usd_price) for o in result.observations] == [("1|spot", Decimal(1))]


def test_a_price_that_rounds_to_zero_is_not_positive():
    # 1e-10 / 8 and 1e-11 / 8 round to 0 at 10 places: passed on, and refused by the shared checks.
    result = parse(_offers(_offer(1, dph="0.0000000001", bid="0.00000000001")))
    assert sorted((r.row_key, r.reason) for r in result.rejections) == [
        ("1|on_demand", "not_positive"), ("1|spot", "not_positive")]


@pytest.mark.parametrize("memory", ["NaN", "1e20", '"81559"', "[81559]"])
def test_an_unreadable_gpu_ram_is_no_memory_not_a_crash(memory):
    # H100 SXM needs no memory size to resolve; the old code raised InvalidOperation on NaN <= 0.
    result = parse(_offers(_offer(1).replace('"gpu_ram": 81559', f'"gpu_ram": {memory}')))
    assert result.rejections == []
    assert by_key(result)["1|on_demand"].usd_price == Decimal(2) and "gpu_memory_mib" not in result.observations[0].attributes


@pytest.mark.parametrize(
    "body, message",
    [
        (b'{"offers": [' + _offer(1).encode() + b'], "offers": [' + _offer(2).encode() + b"]}", "repeats 'offers'"),
        (_offers(_offer(1))[:-20], "not JSON"),  # cut inside the body
        (b'{"offers": [{"id": 1, "dph_total": 2.', "not JSON"),  # cut inside a number
        (b'{"offers": [' + b"[" * 5000 + b"]" * 5000 + b"]}", "not JSON"),  # too deep for the decoder
    ],
)
def test_hostile_bodies_fail_with_one_line(body, message):
    with pytest.raises(ParseError, match=message) as caught:
        vast.parse(body, ctx())
    assert "\n" not in str(caught.value)


def test_the_body_cap_is_a_module_constant():
    assert vast.MAX_BODY_BYTES == 32 * 1024 * 1024


# ----------------------------------------------------------------------------------------- the columnar path's fast reading
# A large body is read by parse_columns (pipeline.sources.vast_columns): msgspec into typed records when
# jsonbody.fast_records takes the body, the offers of the usual shape by column, any other through _parse_offer.
# Each body below is one fast_records takes, and its rows must be the readable path's (test_columnar's comparison:
# every column, the attributes' text, every rejection).


def _same_rows_by_the_fast_path(raw: bytes) -> None:
    assert fast_records(raw, Offer, "offers") is not None, "the body should take the fast path"
    found = compare_paths(vast, raw, ctx())
    assert not found, "\n".join(found)


@pytest.mark.parametrize("seed, wrapped", [(31, True), (32, False)])
def test_unusual_offers_among_usual_ones_read_by_the_fast_path_give_the_readable_rows(seed, wrapped):
    offers = vast_offers(seed, 1500, 0.2, changes=FAST_READ_UNUSUAL)
    _same_rows_by_the_fast_path(to_json({"offers": offers} if wrapped else offers).encode())


def _with_one(changed: dict, seed: int = 40) -> bytes:
    """300 usual offers and one changed one in the middle."""
    offers = vast_offers(seed, 300, 0.0)
    offers.insert(150, {**usual_offer(random.Random(seed), 99), **changed})
    return to_json({"offers": offers}).encode()


PRICE_TEXTS = [
    "5e-05", "1E+2", "-1E+2", "1.5e1", "-0.0", "-0", "0", "0.0", "16", "-1", "-1e-19", "1e-19", "0.1234567890123456789",
    "99999999.999999999999999999", "99999999.9999999999999999999", "100000000", "1e8", "12345678901234567890123",
    "0.000000000000000001", '"2.5"', "true", "null", "{}", "[1]",
]


@pytest.mark.parametrize("text", PRICE_TEXTS)
@pytest.mark.parametrize("field", ["dph_total", "min_bid"])
def test_prices_beyond_the_plain_form_read_as_the_readable_path_reads_them(field, text):
    """Plain prices (digits and a point, at most 8 before and 18 after it) are read by Arrow; any other text by
    load_json, and the offer by _parse_offer whenever it is not of the usual shape (a 9-digit price: the division
    by column is exact below 1e8 only; 23 digits overflow Arrow's DECIMAL(38, 18) without a word)."""
    _same_rows_by_the_fast_path(_with_one({field: Raw(text)}))


ATTRIBUTE_VALUES = [
    "Québec, CA", "東京", "a\x7fb", "😀 é\x7f\"", "x{y", "[z]", 'q"uo\\te\n\t\x01', "\u2028", "", {"city": "Austin"},
    ["Texas"],
    True, False, 42, 10 ** 30, -7, Raw("1E+5"), Raw("1e-7"), Raw("0.00000010"), Raw("-0.0"), Raw("2.50"), None,
]


@pytest.mark.parametrize("value", ATTRIBUTE_VALUES, ids=repr)
@pytest.mark.parametrize("field", ["geolocation", "verification", "machine_id"])
def test_attributes_of_any_value_are_the_readable_paths_text(field, value):
    """msgspec writes the attributes; a row with text json.dumps writes otherwise (beyond ASCII, DEL, a nested
    value) is written by json.dumps."""
    _same_rows_by_the_fast_path(_with_one({field: value}))


@pytest.mark.parametrize("changed", [
    {"num_gpus": 0}, {"num_gpus": Raw("8.0")}, {"id": "x"}, {"id": True}, {"gpu_name": 4090}, {"gpu_name": None},
    {"gpu_name": "  "}, {"rentable": False}, {"rentable": 0}, {"gpu_ram": True}, {"gpu_ram": Raw("1e400")},
], ids=repr)
def test_an_offer_the_typed_decode_or_its_checks_refuse_is_read_by_parse_offer(changed):
    _same_rows_by_the_fast_path(_with_one(changed))


def test_real_shaped_offers_take_the_fast_path_with_the_rows_of_the_readable_one(shared_real):
    """Offers shaped like the real sample (some hundred keys, nested `instance` and `search`, a `gpu_ids` list,
    the CLI's pretty-printing), a few thousand of them with their own ids, GPUs, counts and prices."""
    real = json.loads((shared_real / "vast_offers" / "vast_search_offers_first3.json").read_bytes())
    rng = random.Random(5)
    offers = []
    for k in range(2000):
        offer = dict(real[k % 3])
        offer["id"], offer["machine_id"] = 50_000_000 + k, k % 700
        offer["gpu_name"], offer["gpu_ram"] = rng.choice([("A100 SXM4", 39936), ("A100 SXM4", 81920),
                                                           ("RTX 4090", 24564), ("H100 SXM", 81559)])
        offer["num_gpus"] = rng.choice((1, 2, 4, 8))
        offer["dph_total"] = rng.uniform(0.2, 3.0) * offer["num_gpus"]
        offer["min_bid"] = rng.choice((0, None, offer["dph_total"] * 0.6))
        offer["geolocation"] = rng.choice(("Alberta, CA", "Québec, CA", "Texas, US"))
        offers.append(offer)
    _same_rows_by_the_fast_path(json.dumps(offers, indent=1, ensure_ascii=rng.random() < 0.5).encode())


def test_a_body_of_as_many_gpu_names_and_memory_sizes_as_offers_reads_alike():
    """Every GPU name and memory size is resolved once: here each offer's is its own (most unknown to the catalog)."""
    offers = vast_offers(41, 400, 0.0)
    for k, offer in enumerate(offers):
        if isinstance(offer, dict):
            offer["gpu_name"] = offer["gpu_name"] + (f" v{k}" if k % 2 else "")
            offer["gpu_ram"] = 10_000 + k
    _same_rows_by_the_fast_path(to_json({"offers": offers}).encode())
