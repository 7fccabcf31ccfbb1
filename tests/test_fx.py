"""FX: the ECB reference rates source, the cross rates it derives, and the conversion of non-USD prices.

Cross rates were worked out by long division by hand, and the tests also check them by bracketing: if
(r - h) x X <= U < (r + h) x X, with h half a unit in the 10th place, then U / X rounds to r at 10 places.
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from pipeline import collect, load
from pipeline.http import FetchedBody, make_client
from pipeline.normalise import FxTable, NotConvertible, convert_currency, parse_body
from pipeline.paths import DEMO_FIXTURES_DIR
from pipeline.rawstore import RawStore
from pipeline.records import FX, TOKEN, FxRate, Observation, ParseContext, ParseError
from pipeline.replay import replay_transport
from pipeline.sources import FetchRequest, deepseek_pricing, ecb_fx

FIXTURES = Path(__file__).resolve().parent / "fixtures"
DAILY = FIXTURES / "ecb_fx" / "eurofxref-daily.xml"
D = Decimal


def parse_rates(raw: bytes):
    return ecb_fx.parse(raw, ecb_fx.context_for_file("rates.xml", datetime(2025, 6, 28, tzinfo=timezone.utc)))


def envelope(days: str) -> bytes:
    return (
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        "<gesmes:Envelope xmlns:gesmes='http://www.gesmes.org/xml/2002-08-01' "
        "xmlns='http://www.ecb.int/vocabulary/2002-08-01/eurofxref'>"
        "<gesmes:subject>Reference rates</gesmes:subject><Cube>" + days + "</Cube></gesmes:Envelope>"
    ).encode()


# --- the ECB file -------------------------------------------------------------------------------------------


def test_daily_file_gives_usd_per_unit_of_every_currency():
    result = parse_rates(DAILY.read_bytes())
    assert ecb_fx.KIND == FX and not result.observations and not result.rejections
    rates = {r.currency: r for r in result.fx_rates}
    # 31 published rates: USD is the base of the cross rates and no row of its own; EUR is a row.
    assert len(rates) == 30 and "USD" not in rates
    assert {r.rate_date for r in result.fx_rates} == {date(2025, 6, 27)}
    # EUR: USD per EUR as published, 1.1703
    assert (rates["EUR"].usd_per_unit, rates["EUR"].units_per_eur) == (D("1.1703000000"), D("1"))
    # CNY: 1.1703 / 8.3919 = 0.139455903907... (long division) -> 0.1394559039
    cny = rates["CNY"]
    assert cny.usd_per_unit == D("0.1394559039") and cny.units_per_eur == D("8.3919")
    assert D("8.3919") * D("0.13945590385") <= D("1.1703") < D("8.3919") * D("0.13945590395")
    # JPY: 1.1703 / 169.21 = 0.006916257904... -> 0.0069162579
    assert rates["JPY"].usd_per_unit == D("0.0069162579")
    assert D("169.21") * D("0.00691625785") <= D("1.1703") < D("169.21") * D("0.00691625795")


def test_cross_rates_round_half_even_at_ten_places():
    # 1.0000000003 / 2 = 0.50000000015: exactly half way; half-even keeps the even neighbour 0.5000000002
    assert ecb_fx.cross_rate(D("1.0000000003"), D("2")) == D("0.5000000002")
    # 1.0000000001 / 2 = 0.50000000005: half way again; the even neighbour is 0.5000000000 (half-up: ...01)
    assert ecb_fx.cross_rate(D("1.0000000001"), D("2")) == D("0.5000000000")
    # 1 / 3 = 0.33333333333...: below half, down
    assert ecb_fx.cross_rate(D("1"), D("3")) == D("0.3333333333")


def test_the_90_day_history_gives_every_day():
    body = envelope(
        "<Cube time='2025-06-27'><Cube currency='USD' rate='1.1703'/><Cube currency='CNY' rate='8.3919'/></Cube>"
        "<Cube time='2025-06-26'><Cube currency='USD' rate='1.1671'/><Cube currency='CNY' rate='8.3730'/></Cube>"
    )
    result = parse_rates(body)
    got = {(r.rate_date, r.currency): r.usd_per_unit for r in result.fx_rates}
    # 1.1671 / 8.3730 = 0.13938851068... (long division) -> 0.1393885107
    assert got == {
        (date(2025, 6, 27), "EUR"): D("1.1703"), (date(2025, 6, 27), "CNY"): D("0.1394559039"),
        (date(2025, 6, 26), "EUR"): D("1.1671"), (date(2025, 6, 26), "CNY"): D("0.1393885107"),
    }
    assert D("8.3730") * D("0.13938851065") <= D("1.1671") < D("8.3730") * D("0.13938851075")


def test_bad_rates_are_rejected_with_their_reason():
    body = envelope(
        "<Cube time='2025-06-27'><Cube currency='USD' rate='1.1703'/><Cube currency='CNY' rate='abc'/>"
        "<Cube currency='JPY' rate='-169.21'/><Cube currency='GBP' rate='0'/><Cube currency='usd1' rate='1'/>"
        "<Cube currency='CHF' rate='0.9365'/><Cube currency='CHF' rate='0.9999'/>"
        "<Cube currency='SEK' rate='10.9'/><Cube currency='SEK' rate='10.90'/></Cube>"
        "<Cube time='2025-06-26'><Cube currency='CNY' rate='8.3730'/></Cube>"
        "<Cube time='26 June'><Cube currency='USD' rate='1.1671'/></Cube>"
    )
    result = parse_rates(body)
    assert sorted((r.row_key, r.reason) for r in result.rejections) == [
        ("#2", "bad_date"),
        ("2025-06-26|USD", "missing_usd_rate"),  # CNY alone: no USD rate to cross it with, never a guess
        # Two different CHF rates: which holds cannot be known, so neither is taken (issue 10; it was the first).
        ("2025-06-27|CHF", "conflicting_duplicate"),
        ("2025-06-27|CHF", "conflicting_duplicate"),
        ("2025-06-27|CNY", "bad_rate"),
        ("2025-06-27|GBP", "bad_rate"),
        ("2025-06-27|JPY", "bad_rate"),
        ("2025-06-27|SEK", "duplicate_row"),  # the same rate twice (10.9 = 10.90): harmless, kept once
        ("2025-06-27|usd1", "bad_currency"),
    ]
    # 1.1703 / 10.9 = 0.10736697247706... -> 0.1073669725
    assert {r.currency: r.usd_per_unit for r in result.fx_rates} == {"EUR": D("1.1703"), "SEK": D("0.1073669725")}
    assert D("10.9") * D("0.10736697245") <= D("1.1703") < D("10.9") * D("0.10736697255")


def test_a_rate_outside_its_band_is_implausible_and_a_refused_usd_rate_leaves_no_cross_rate():
    body = envelope(
        "<Cube time='2025-06-27'><Cube currency='USD' rate='1.1703'/><Cube currency='CNY' rate='8373.0'/>"
        "<Cube currency='XAU' rate='0.0004'/><Cube currency='JPY' rate='169.21'/></Cube>"
        "<Cube time='2025-06-26'><Cube currency='USD' rate='1167.1'/><Cube currency='CNY' rate='8.3730'/></Cube>"
        "<Cube time='2025-06-25'><Cube currency='USD' rate='1.1671'/></Cube>"
        "<Cube time='2025-06-25'><Cube currency='USD' rate='1.1700'/><Cube currency='GBP' rate='0.85'/></Cube>"
    )
    result = parse_rates(body)
    assert sorted((r.row_key, r.reason) for r in result.rejections) == [
        ("2025-06-25|USD", "conflicting_duplicate"),  # the same date in two Cubes is one day
        ("2025-06-25|USD", "conflicting_duplicate"),
        ("2025-06-25|USD", "missing_usd_rate"),
        ("2025-06-26|USD", "implausible_rate"),  # x1000: every conversion would be x1000
        ("2025-06-26|USD", "missing_usd_rate"),
        ("2025-06-27|CNY", "implausible_rate"),
        ("2025-06-27|XAU", "no_rate_band"),
    ]
    missing = [r.detail for r in result.rejections if r.reason == "missing_usd_rate"]
    assert any("refused (implausible_rate)" in d for d in missing)
    assert any("refused (conflicting_duplicate)" in d for d in missing)
    assert {(r.rate_date, r.currency) for r in result.fx_rates} == {(date(2025, 6, 27), "EUR"), (date(2025, 6, 27), "JPY")}


def test_the_shipped_bands_hold_every_rate_of_the_recordings_and_refuse_a_bad_file(tmp_path):
    bands = ecb_fx.load_fx_bands()
    for currency in ("USD", "CNY", "JPY", "GBP", "CHF", "HKD"):
        assert currency in bands
    for path in sorted(FIXTURES.rglob("*.xml")):
        result = ecb_fx.parse(path.read_bytes(), ecb_fx.context_for_file(path, datetime(2026, 11, 20, tzinfo=timezone.utc)))
        assert result.rejections == [], (path, result.rejections[:3])
    bad = tmp_path / "bands.csv"
    bad.write_text("# a comment\ncurrency,min_units_per_eur,max_units_per_eur\nUSD,3,1\n")
    with pytest.raises(ValueError, match="0 < min < max"):
        ecb_fx.load_fx_bands(bad)


def test_a_body_cut_short_is_refused_by_the_xml_parser():
    body = envelope("<Cube time='2025-06-27'><Cube currency='USD' rate='1.1703'/><Cube currency='CNY' rate='8.37")
    with pytest.raises(ParseError, match="not XML"):
        parse_rates(body[: body.index(b"8.37") + 4])


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01"><Cube>&lol3;</Cube></gesmes:Envelope>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY secret SYSTEM "file:///etc/passwd">]>
<gesmes:Envelope xmlns:gesmes="http://www.gesmes.org/xml/2002-08-01"><Cube>&secret;</Cube></gesmes:Envelope>"""


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (BILLION_LAUGHS, "refused unsafe XML"),
        (EXTERNAL_ENTITY, "refused unsafe XML"),
        (b"<html><body><h1>503 Service Unavailable</h1></body></html>", "not the gesmes Envelope"),
        (b"not xml at all", "not XML"),
        (b"", "not XML"),
        (b"<gesmes:Envelope xmlns:gesmes='http://www.gesmes.org/xml/2002-08-01'/>", "no Cube element"),
        (envelope(""), "no dated"),
        (envelope("<Cube time='2025-06-27'/>"), "hold no currency rates"),
        (b"<a>" + b" " * (ecb_fx.MAX_BYTES + 1) + b"</a>", "exceeds the cap"),
    ],
)
def test_hostile_or_wrong_bodies_fail_as_a_whole(body, message):
    with pytest.raises(ParseError, match=message):
        parse_rates(body)


# --- conversion -------------------------------------------------------------------------------------------


def cny_observation(price: str) -> Observation:
    return Observation(
        row_key="deepseek-chat|input", provider="deepseek", instrument_kind=TOKEN, instrument="deepseek-v3.2",
        source_instrument="deepseek-chat", price_type="input", original_price=D(price), original_currency="CNY",
        original_unit="million_tokens", usd_price=None, price_in_currency=D(price),
    )


RATES = FxTable([FxRate(date(2025, 6, 27), "CNY", D("0.1394559039"))])  # a Friday


def test_a_cny_price_converts_at_the_rate_of_its_date_and_keeps_the_rate():
    converted = convert_currency(cny_observation("2"), date(2025, 6, 27), RATES)
    # 2 CNY x 0.1394559039 USD/CNY = 0.2789118078 USD per million tokens (exact: no rounding needed)
    assert converted.usd_price == D("0.2789118078")
    assert (converted.fx_usd_per_unit, converted.fx_rate_date) == (D("0.1394559039"), date(2025, 6, 27))
    # 0.2 CNY -> 0.02789118078 -> 0.0278911808 (half-even at 10 places; the dropped digit is 8)
    assert convert_currency(cny_observation("0.2"), date(2025, 6, 27), RATES).usd_price == D("0.0278911808")


def test_the_newest_rate_at_most_five_days_old_is_used_and_an_older_one_never():
    # Monday 2025-06-30 uses Friday's rate (the ECB publishes none at weekends): 3 days old
    assert convert_currency(cny_observation("2"), date(2025, 6, 30), RATES).fx_rate_date == date(2025, 6, 27)
    # Wednesday 2025-07-02: 5 days, the Easter-Tuesday case, still used
    assert convert_currency(cny_observation("2"), date(2025, 7, 2), RATES).fx_rate_date == date(2025, 6, 27)
    # Thursday 2025-07-03: 6 days old: refused, not converted at a stale rate
    with pytest.raises(NotConvertible) as caught:
        convert_currency(cny_observation("2"), date(2025, 7, 3), RATES)
    assert caught.value.reason == "missing_fx_rate"
    # A rate dated after the observation is never used
    with pytest.raises(NotConvertible):
        convert_currency(cny_observation("2"), date(2025, 6, 26), RATES)


def test_a_missing_rate_is_a_rejection_with_its_reason():
    raw = (FIXTURES / "first_party" / "deepseek_pricing_zh.html").read_bytes()
    ctx = deepseek_pricing.context_for_file("page.html", datetime(2025, 7, 10, 6, 0, tzinfo=timezone.utc))
    result = parse_body(deepseek_pricing, raw, ctx, fx=RATES)  # the newest CNY rate is 13 days older
    assert not result.observations
    assert {r.reason for r in result.rejections} == {"missing_fx_rate"}
    detail = next(r.detail for r in result.rejections if r.row_key == "deepseek-chat|input")
    assert detail == "cannot convert 2 CNY to USD: no CNY rate dated from 2025-07-05 to 2025-07-10"


# --- the warehouse ------------------------------------------------------------------------------------------


def store_body(con, raw_store, source, url, path: Path, minute: int):
    request = FetchRequest(source=source, url=url)
    at = datetime(2025, 6, 28, 6, minute, tzinfo=timezone.utc)
    collect.store_fetched(con, raw_store, request, FetchedBody(url, 200, "", path.read_bytes(), at))


def test_rates_load_first_and_convert_a_page_fetched_before_them(con, warehouse):
    raw_store = RawStore(warehouse.root)
    # The page was fetched a minute before the rates: the loader still loads the rates first.
    store_body(con, raw_store, "deepseek_pricing", deepseek_pricing.URL_ZH, FIXTURES / "first_party" / "deepseek_pricing_zh.html", 0)
    store_body(con, raw_store, "ecb_fx", ecb_fx.DAILY_URL, DAILY, 1)
    report = load.parse_pending(con, raw_store)
    assert not report.failed and sorted(report.loaded.values()) == [(0, 0), (6, 0)]
    assert con.execute("select count(*) from fx_rates").fetchall() == [(30,)]
    rows = con.execute(
        "select row_key, original_price, original_currency, usd_per_mtok, fx_usd_per_unit, fx_rate_date"
        " from observations order by row_key"
    ).fetchall()
    # 2025-06-28 is a Saturday: Friday 2025-06-27's rate 0.1394559039. 3 CNY -> 0.4183677117.
    assert rows[:2] == [
        ("deepseek-chat|cached_input", D("0.2"), "CNY", D("0.0278911808"), D("0.1394559039"), date(2025, 6, 27)),
        ("deepseek-chat|input", D("2"), "CNY", D("0.2789118078"), D("0.1394559039"), date(2025, 6, 27)),
    ]
    assert rows[2] == ("deepseek-chat|output", D("3"), "CNY", D("0.4183677117"), D("0.1394559039"), date(2025, 6, 27))
    # Reloading a rates snapshot replaces its rows, never doubles them.
    ctx = ParseContext(source="ecb_fx", observed_at=datetime(2025, 6, 28, 6, 1, tzinfo=timezone.utc),
                       snapshot_id=con.execute("select snapshot_id from raw_snapshots where source = 'ecb_fx'").fetchall()[0][0])
    load.load_result(con, ctx, parse_rates(DAILY.read_bytes()))
    assert con.execute("select count(*) from fx_rates").fetchall() == [(30,)]


def test_demo_day_converts_deepseeks_cny_prices_at_that_days_ecb_rate(con, warehouse):
    folder = DEMO_FIXTURES_DIR / "2026-11-19"
    at = datetime(2026, 11, 19, 6, 0, tzinfo=timezone.utc)
    store = RawStore(warehouse.root)
    with make_client(replay_transport(folder)) as client:
        for source in (deepseek_pricing, ecb_fx):
            for request in source.requests():
                for body in collect.fetch(source, client, request, lambda: at):
                    collect.store_fetched(con, store, request, body)
    report = load.parse_pending(con, store)
    assert not report.failed
    got = con.execute(
        "select row_key, original_currency, usd_per_mtok, fx_usd_per_unit, fx_rate_date from observations"
        " where source = 'deepseek_pricing' and row_key like 'deepseek-chat|%' order by original_currency, row_key"
    ).fetchall()
    # The recording fetched at 06:00 on 2026-11-19 holds the ECB rates of 2026-11-18: USD 1.1610, CNY 8.2702
    # per euro. 1.1610 / 8.2702 = 0.14038354574... (long division) -> 0.1403835457.
    # 2 CNY -> 0.2807670914; 3 CNY -> 0.4211506371; 0.2 CNY -> 0.02807670914 -> 0.0280767091.
    # The English page's USD prices need no rate: 0.028, 0.28, 0.42.
    assert D("8.2702") * D("0.14038354565") <= D("1.1610") < D("8.2702") * D("0.14038354575")
    rate, day = D("0.1403835457"), date(2026, 11, 18)
    assert got == [
        ("deepseek-chat|cached_input", "CNY", D("0.0280767091"), rate, day),
        ("deepseek-chat|input", "CNY", D("0.2807670914"), rate, day),
        ("deepseek-chat|output", "CNY", D("0.4211506371"), rate, day),
        ("deepseek-chat|cached_input", "USD", D("0.028"), None, None),
        ("deepseek-chat|input", "USD", D("0.28"), None, None),
        ("deepseek-chat|output", "USD", D("0.42"), None, None),
    ]


# --- the command line ---------------------------------------------------------------------------------------


def test_tsi_parse_prints_rates_and_converts_with_a_saved_ecb_file(capsys):
    from pipeline.cli import main

    assert main(["parse", "ecb_fx", str(DAILY)]) == 0
    out, err = capsys.readouterr()
    assert "fx_rate,2025-06-27|CNY,,,,,,,,8.3919000000,CNY,per_eur,0.1394559039,usd_per_unit,,," in out.splitlines()
    assert "30 fx rates" in err
    page = FIXTURES / "first_party" / "deepseek_pricing_zh.html"
    assert main(["parse", "deepseek_pricing", str(page), "--fx", str(DAILY), "--observed-at", "2025-06-28T06:00Z"]) == 0
    out, err = capsys.readouterr()
    # 2 CNY x 0.1394559039 = 0.2789118078 (see above)
    assert any(line.startswith("observation,deepseek-chat|input,") and ",2,CNY,million_tokens,0.2789118078," in line
               for line in out.splitlines())
    assert err.startswith("6 observations, 0 rejections")


def test_tsi_parse_with_a_bad_fx_file_is_a_one_line_error(capsys, tmp_path):
    from pipeline.cli import main

    bogus = tmp_path / "rates.xml"
    bogus.write_text("<html>not the ECB</html>")
    page = FIXTURES / "first_party" / "deepseek_pricing_zh.html"
    assert main(["parse", "deepseek_pricing", str(page), "--fx", str(bogus)]) == 2
    _, err = capsys.readouterr()
    assert err.count("\n") == 1 and "not the gesmes Envelope" in err


# --- the hostile corpus (tests/hostile/ecb_fx/cases.toml) -------------------------------------------------

HOSTILE_ECB = Path(__file__).resolve().parent / "hostile" / "ecb_fx"
HOSTILE_CASES = [case for case in __import__("tomllib").loads((HOSTILE_ECB / "cases.toml").read_text())["case"]
                 if "fx_rates" in case]


@pytest.mark.parametrize("case", HOSTILE_CASES, ids=lambda case: case["file"])
def test_a_hostile_ecb_body_keeps_exactly_its_sound_rates(case):
    """test_hostile.py counts observations; an FX body has none, so the rates it must still give are counted here."""
    result = parse_rates((HOSTILE_ECB / case["file"]).read_bytes())
    assert len(result.fx_rates) == case["fx_rates"], [(r.currency, r.usd_per_unit) for r in result.fx_rates]
    assert len({(r.rate_date, r.currency) for r in result.fx_rates}) == len(result.fx_rates)  # one rate per day and currency
