"""Contract specifications are data (pipeline/contracts.toml), validated on load with errors that name the
contract and the field, and versioned like index definitions."""
from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from pipeline.contracts import (
    ContractError,
    contract_from_json,
    find_contract,
    load_contracts,
    register_contract,
)
from pipeline.definitions import load_definitions

BASE = {
    "id": '"T-X"', "name": '"test"', "version": '"1"', "index": '"TSI-H100-SXM-OD"',
    "contract_unit": '{ quantity = 1000, unit = "GPU-hours" }', "tick_size": "0.005", "first_month": '"2026-01"',
}


def write(tmp_path, text: str):
    path = tmp_path / "contracts.toml"
    path.write_text(text)
    return path


def entry(**fields) -> str:
    merged = {**BASE, **fields}
    return "[[contract]]\n" + "".join(f"{k} = {v}\n" for k, v in merged.items() if v is not None)


def load_one(tmp_path, **fields):
    [contract] = load_contracts(write(tmp_path, entry(**fields)))
    return contract


def test_the_shipped_contracts_load_on_their_indices():
    indices = {d.id: d for d in load_definitions()}
    contracts = {c.id: c for c in load_contracts()}
    assert set(contracts) == {"TSIF-H100-SXM-OD", "TSIF-H200-OD", "TSIF-OPEN-MAJORS-BLEND", "TSIF-GPT-5-BLEND",
                              "TSIF-FRONTIER-BLEND"}
    for c in contracts.values():
        assert c.index in indices and c.instrument_kind == indices[c.index].instrument_kind
        assert c.quote_unit == {"gpu": "USD/GPU-hour", "token": "USD/Mtok"}[c.instrument_kind]
        assert len(c.sha256) == 64 and contract_from_json(c.canonical_json()) == c
    # Every rule and day set is shipped at least once.
    assert {c.settlement_rule for c in contracts.values()} == {"average", "last_fixing", "average_last_n"}
    assert {c.day_set for c in contracts.values()} == {"calendar", "published"}
    h100, gpt5 = contracts["TSIF-H100-SXM-OD"], contracts["TSIF-GPT-5-BLEND"]
    assert (h100.multiplier, h100.tick_size, h100.fallback[0].max_days) == (Decimal(1000), Decimal("0.005"), 3)
    # 1,000,000,000 tokens x 0.000001 Mtok per token = 1000 Mtok.
    assert (gpt5.contract_quantity, gpt5.multiplier, gpt5.unit_words) == (10 ** 9, Decimal(1000),
                                                                           "1000000000 tokens = 1000 Mtok")
    h200 = contracts["TSIF-H200-OD"]
    assert (h200.counted_statuses, h200.min_days, h200.fallback) == (("final", "widened"), 15, ())


def test_last_trading_day_rules(tmp_path):
    # 2026-01-01 is a Thursday: 2026-01-31 and 2026-02-28 are Saturdays, 2026-11-30 a Monday.
    business = load_one(tmp_path, last_trading_day='"last_business_day"')
    assert business.last_trading_day_of(date(2026, 1, 1)) == date(2026, 1, 30)
    assert business.last_trading_day_of(date(2026, 2, 1)) == date(2026, 2, 27)
    assert business.last_trading_day_of(date(2026, 11, 1)) == date(2026, 11, 30)
    calendar_end = load_one(tmp_path)
    assert calendar_end.period(date(2026, 2, 1)) == (date(2026, 2, 1), date(2026, 2, 28))
    assert calendar_end.period(date(2028, 2, 1)) == (date(2028, 2, 1), date(2028, 2, 29))  # a leap year
    early = load_one(tmp_path, last_trading_day='{ rule = "days_before_month_end", days = 2 }')
    assert early.period(date(2026, 11, 1)) == (date(2026, 11, 1), date(2026, 11, 28))


def test_needed_dates_and_finality(tmp_path):
    [h100] = [d for d in load_definitions() if d.id == "TSI-H100-SXM-OD"]
    average = load_one(tmp_path)
    needed = average.needed_dates(date(2026, 11, 1))
    # the month and the 3 days the ladder may reach back before it
    assert (needed[0], needed[-1], len(needed)) == (date(2026, 10, 29), date(2026, 11, 30), 33)
    last = load_one(tmp_path, settlement='"last_fixing"', fallback="[]")
    assert last.needed_dates(date(2026, 11, 1)) == [date(2026, 11, 30)]
    assert average.finality_of(date(2026, 11, 1), h100) == (
        datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc), "the correction cutoff of the fixing of 2026-11-30")
    later = load_one(tmp_path, finality='{ rule = "after_last_trading_day", days = 2, time_utc = "09:00" }')
    assert later.finality_of(date(2026, 11, 1), h100)[0] == datetime(2026, 12, 2, 9, 0, tzinfo=timezone.utc)


def test_contract_months(tmp_path):
    quarterly = load_one(tmp_path, months="[3, 6, 9, 12]", last_month='"2027-12"')
    assert quarterly.contract_month("2026-06") == date(2026, 6, 1)
    for text, message in (
        ("2026-6", "contract month must be YYYY-MM"), ("2026-13", "contract month must be YYYY-MM"),
        ("2026-04", "2026-04 is not a contract month of T-X (months [3, 6, 9, 12] from 2026-01 to 2027-12)"),
        ("2025-12", "is not a contract month"), ("2028-03", "is not a contract month"),
    ):
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                           .replace("]", r"\]")):
            quarterly.contract_month(text)


@pytest.mark.parametrize("fields, message", [
    ({"tick_size": "-0.005"}, "tick_size must lie in (0, 1000], got -0.005"),
    ({"tick_size": "0.0000001"}, "tick_size may have at most 6 decimal places"),
    ({"tick_size": '"a"'}, "tick_size must be a number"),
    ({"index": '"TSI-NOPE"'}, "index 'TSI-NOPE' is not an index of pipeline/indices.toml"),
    ({"quote_unit": '"USD/Mtok"'}, "quote_unit must be the index's unit 'USD/GPU-hour', got 'USD/Mtok'"),
    ({"contract_unit": '{ quantity = 1000, unit = "tokens" }'}, "contract_unit.unit for a gpu index must be one of "
                                                               "['GPU-hours'], got 'tokens'"),
    ({"contract_unit": '{ quantity = 1000.5, unit = "GPU-hours" }'}, "contract_unit.quantity must be a whole number"),
    ({"contract_unit": "1000"}, "contract_unit must be a table"),
    ({"settlement": '"median"'}, "settlement must be one of ['average', 'last_fixing', 'average_last_n'], "
                                 "got 'median'"),
    ({"settlement": '{ rule = "median" }'}, "settlement.rule must be one of"),
    ({"settlement": "3"}, "settlement must be one of ['average', 'last_fixing', 'average_last_n'] or a table"),
    ({"settlement": '{ rule = "average_last_n" }'}, "settlement needs ['n']"),
    ({"settlement": '{ rule = "average_last_n", n = 0 }'}, "settlement.n must be a whole number from 1 to 28"),
    ({"settlement": '{ rule = "average", n = 3 }'}, "settlement has unknown or inapplicable field(s) ['n']"),
    ({"day_set": '"business"'}, "day_set must be one of ['calendar', 'published'], got 'business'"),
    ({"counted_statuses": '["final", "suppressed"]'}, "counted_statuses must be a non-empty list of distinct "
                                                      "statuses from ['final', 'widened', 'carried']"),
    ({"counted_statuses": "[]"}, "counted_statuses must be a non-empty list"),
    ({"fallback": '[{ rule = "next_value", max_days = 3 }]'}, "fallback[1].rule must be one of ['previous_value']"),
    ({"fallback": '[{ rule = "previous_value", max_days = 0 }]'}, "fallback[1].max_days must be a whole number "
                                                                  "from 1 to 31, got 0"),
    ({"fallback": '[{ rule = "previous_value", max_days = 3, days = 2 }]'}, "fallback[1] has unknown or "
                                                                            "inapplicable field(s) ['days']"),
    ({"fallback": '{ rule = "previous_value", max_days = 3 }'}, "fallback must be a list of rungs"),
    ({"day_set": '"published"', "fallback": "[]"}, "fallback applies only to day_set = 'calendar'"),
    ({"min_days": "10"}, "min_days applies only to day_set = 'published'"),
    ({"day_set": '"published"', "min_days": "40"}, "min_days must be a whole number from 1 to 31"),
    ({"rounding": '"bankers"'}, "rounding must be one of ['half_even', 'half_up', 'half_down', 'down', 'up', "
                                "'floor', 'ceiling'], got 'bankers'"),
    ({"rounding_places": "7"}, "rounding_places must be a whole number from 0 to 6"),
    ({"finality": '"at_once"'}, "finality must be one of ['last_cutoff', 'after_last_trading_day']"),
    ({"finality": '{ rule = "after_last_trading_day", days = 1, time_utc = "10:00" }'},
     "finality (1 day(s) after the last trading day at 10:00 UTC) comes before the correction cutoff of "
     "TSI-H100-SXM-OD (1 day(s) after the fixing date at 12:00 UTC)"),
    ({"finality": '{ rule = "after_last_trading_day", days = 1, time_utc = "25:00" }'},
     "finality.time_utc must be HH:MM"),
    ({"finality": '{ rule = "after_last_trading_day", days = 1 }'}, "finality needs ['time_utc']"),
    ({"first_month": '"2026-13"'}, "first_month must be a month \"YYYY-MM\" (2000 to 2099), got '2026-13'"),
    ({"last_month": '"2025-12"'}, "last_month 2025-12 is before first_month 2026-01"),
    ({"months": "[0, 3]"}, "months must be a whole number from 1 to 12, got 0"),
    ({"months": "[3, 3]"}, "months must be a non-empty list of distinct month numbers"),
    ({"last_trading_day": '{ rule = "days_before_month_end" }'}, "last_trading_day needs ['days']"),
    ({"last_trading_day": '"third_wednesday"'}, "last_trading_day must be one of ['last_calendar_day', "
                                                "'last_business_day', 'days_before_month_end']"),
    ({"tick": "0.005"}, "unknown field(s) ['tick']"),
    ({"tick_size": None}, "missing field(s) ['tick_size']"),
    ({"id": '"t-x"'}, "id must match"),
    ({"version": '""'}, "version must match"),
    ({"name": '" "'}, "name must be a non-empty text"),
])
def test_a_bad_field_is_named_with_its_contract(tmp_path, fields, message):
    with pytest.raises(ContractError) as info:
        load_contracts(write(tmp_path, entry(**fields)))
    text = str(info.value)
    assert "contracts.toml: contract #1 (" in text and message in text, text


def test_file_level_errors(tmp_path):
    with pytest.raises(ContractError, match="no such contracts file"):
        load_contracts(tmp_path / "absent.toml")
    with pytest.raises(ContractError, match="not valid TOML"):
        load_contracts(write(tmp_path, "[[contract]\n"))
    with pytest.raises(ContractError, match=r"expected one or more \[\[contract\]\] tables"):
        load_contracts(write(tmp_path, "[defaults]\nversion = \"1\"\n"))
    with pytest.raises(ContractError, match=r"unknown top-level key\(s\) \['index'\]"):
        load_contracts(write(tmp_path, entry() + "[[index]]\nid = \"x\"\n"))
    with pytest.raises(ContractError, match=r"contract #2 \(T-X\): id 'T-X' is defined twice"):
        load_contracts(write(tmp_path, entry() + entry()))
    with pytest.raises(ContractError, match=r"\[defaults\] has unknown or per-contract field\(s\) \['index'\]"):
        load_contracts(write(tmp_path, "[defaults]\nindex = \"TSI-H200-OD\"\n" + entry()))
    with pytest.raises(ValueError, match="unknown contract 'T-Y'; known: T-X"):
        find_contract("T-Y", write(tmp_path, entry()))


def test_defaults_apply_and_an_entry_wins(tmp_path):
    text = "[defaults]\ntick_size = 0.01\nrounding = \"half_up\"\n" + entry(tick_size=None) + entry(
        id='"T-Y"', tick_size="0.005")
    x, y = load_contracts(write(tmp_path, text))
    assert (x.tick_size, x.rounding, y.tick_size, y.rounding) == (Decimal("0.01"), "half_up", Decimal("0.005"),
                                                                  "half_up")
    # Numbers are read from the TOML text as decimals: 0.1 + 0.2 is 0.3 exactly, never a float's 0.30000000000000004.
    z = load_one(tmp_path, tick_size="0.3")
    assert z.tick_size == Decimal("0.1") + Decimal("0.2")


def test_a_changed_specification_needs_a_new_version(con, tmp_path):
    contract = load_one(tmp_path)
    register_contract(con, contract)
    register_contract(con, contract)  # the same one again: nothing new
    changed = replace(contract, tick_size=Decimal("0.01"))
    with pytest.raises(ContractError, match="contract T-X version 1 differs from the specification already used"):
        register_contract(con, changed)
    register_contract(con, replace(changed, version="2"))
    rows = con.execute("select contract_id, contract_version, definition_sha256 from settlement_contracts "
                       "order by contract_version").fetchall()
    assert rows == [("T-X", "1", contract.sha256), ("T-X", "2", replace(changed, version="2").sha256)]
    assert contract.sha256 != changed.sha256
