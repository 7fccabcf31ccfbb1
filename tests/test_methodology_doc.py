"""The methodology in words (pipeline/methodology.py, `tsi methodology`): the text of an index against its
TOML by hand, every field of a definition in the words and in the table, and the command's errors."""
from __future__ import annotations

import dataclasses
import re
from decimal import Decimal

import pytest

from pipeline import definitions as defs
from pipeline.cli import main
from pipeline.definitions import BasketDefinition, IndexDefinition, definition_from_json, load_definitions
from pipeline.methodology import PARAMETERS_TITLE, describe, find, sections

DEFINITIONS = load_definitions()
BY_ID = {d.id: d for d in DEFINITIONS}


def words(d) -> str:
    """The text in words alone: without the parameter table (which lists every field whatever it says) and
    without the definition's sha256 (which changes with any field, so it would hide a field the words miss)."""
    text = describe(d).split(PARAMETERS_TITLE)[0]
    return text.replace(d.sha256, "<sha256>")


def parameter_table(d) -> dict[str, str]:
    table = describe(d).split(PARAMETERS_TITLE)[1]
    rows = {}
    for line in table.strip("\n").splitlines():
        match = re.match(r"^  (\w+) +(.*?)(  \*)?$", line)
        assert match, f"not a parameter row: {line!r}"
        rows[match.group(1)] = (match.group(2), bool(match.group(3)))
    return rows


def test_broad_h100_index_in_words_matches_its_toml():
    # pipeline/indices.toml, TSI-H100-SXM-OD-BROAD: instrument H100-SXM, on_demand, segments specialist and
    # marketplace, sources skypilot, html_tables, vast; everything else from the methodology's defaults
    # (window 24 h, ladder 72 / 168 h, carry 3 days, 3 providers, modified z 3.5 from 4 voters, median,
    # 4 places, cutoff next day 12:00, threshold 0.001) and [defaults] methodology_version "2.0".
    d = BY_ID["TSI-H100-SXM-OD-BROAD"]
    text = " ".join(describe(d).split())  # one line: the terminal text is wrapped
    assert text.startswith("TSI-H100-SXM-OD-BROAD: NVIDIA H100 SXM, on-demand, specialist clouds and marketplaces, "
                           "USD per GPU-hour Methodology version 2.0 ")
    for phrase in (
        "The on_demand price (price_type) of H100-SXM (instruments), a gpu instrument",
        "in USD/GPU-hour",
        "providers of the segment(s) specialist, marketplace only",
        "collected by the source(s) skypilot, html_tables, vast (sources)",
        "at T = D 16:00 UTC",
        "in the window (T - 24 h, T]",
        "the median of all its rows (regions, instance sizes, endpoints) (provider_value median_of_rows)",
        "the lower GPU-weighted median of its offers",
        "fewer than 1 distinct price(s)",
        "exceeds 3.5 (outlier_threshold)",
        "fewer than 4 providers vote",
        "the mean of the two middle values on an even count",
        "at least 3 included provider(s) (min_providers)",
        "the wider windows of 72 h, then 168 h ending at T",
        "within 3 day(s) before D is repeated with the status carried",
        "rounded half-even to 4 decimal places",
        "quartiles by Hyndman-Fan type 7",
        "until D + 1 day(s) at 12:00 UTC",
        "by more than 0.001 (0.1%) of the published value",
    ):
        assert phrase in text, phrase
    table = parameter_table(d)
    assert table["segments"] == ("specialist, marketplace", False)
    assert table["sources"] == ("skypilot, html_tables, vast", False)
    assert table["instruments"] == ("H100-SXM", False)
    assert table["min_providers"] == ("3", True)
    assert table["fallback_window_hours"] == ("72, 168", True)
    assert table["outlier_threshold"] == ("3.5", True)
    assert table["revision_threshold"] == ("0.001", True)
    assert table["methodology_version"] == ("2.0", False)


def test_first_party_blend_in_words_matches_its_toml():
    # TSI-GPT-4O-BLEND: gpt-4o, blended (default blend 3 : 1 -> shares 0.75 / 0.25), segment first_party,
    # sources llm_prices and litellm, min_providers = 1, outlier_screen = "none".
    d = BY_ID["TSI-GPT-4O-BLEND"]
    text = " ".join(describe(d).split())
    assert "The blended price (price_type) of gpt-4o (instruments), a token instrument" in text
    assert "in USD/Mtok" in text
    assert "input value x 0.75 (blend_input) + output value x 0.25 (blend_output)" in text
    assert "Outlier screen: none (outlier_screen none): no provider is dropped as an outlier" in text
    assert "at least 1 included provider(s) (min_providers)" in text
    table = parameter_table(d)
    assert table["min_providers"] == ("1", False)  # set by the entry: not the default
    assert table["outlier_screen"] == ("none", False)
    assert table["blend_input"] == ("0.75", True)  # 3 : 1 is the methodology's default blend
    assert table["blend_output"] == ("0.25", True)
    assert table["segments"] == ("first_party", False)
    assert table["sources"] == ("llm_prices, litellm", False)


def test_basket_in_words_matches_its_toml():
    # TSI-FRONTIER-IN: members GPT-4o, Claude 3.5 Sonnet and Gemini 2.5 Pro input indices; min_members 0 (all).
    d = BY_ID["TSI-FRONTIER-IN"]
    text = " ".join(describe(d).split())
    assert ("the equal-weight mean of the member indices TSI-GPT-4O-IN, TSI-CLAUDE-3.5-SONNET-IN, "
            "TSI-GEMINI-2.5-PRO-IN (members)") in text
    assert "token indices" in text and "of the price type input (price_type)" in text
    assert "a value needs every one of its 3 members with a value (min_members 0, which means all)" in text
    assert parameter_table(d)["members"] == ("TSI-GPT-4O-IN, TSI-CLAUDE-3.5-SONNET-IN, TSI-GEMINI-2.5-PRO-IN", False)


@pytest.mark.parametrize("d", DEFINITIONS, ids=lambda d: d.id)
def test_every_field_is_in_the_parameter_table(d):
    table = parameter_table(d)
    names = [f.name for f in dataclasses.fields(d)]
    assert list(table) == names  # every field, in the dataclass's order, nothing else
    for name in names:
        value = getattr(d, name)
        if isinstance(value, tuple):
            assert table[name][0] == ", ".join(str(v) for v in value)
        elif isinstance(value, Decimal):
            assert Decimal(table[name][0]) == value
        elif value is not None:
            assert table[name][0] == str(value)


def _other_value(d, name: str):
    """A different, plausible value of field `name` of d: what an edit of the TOML could give."""
    value = getattr(d, name)
    choices = {
        "provider_value": defs.PROVIDER_VALUE_RULES, "marketplace_value": defs.MARKETPLACE_RULES,
        "outlier_screen": defs.OUTLIER_SCREENS, "estimator": defs.ESTIMATORS,
        "dispersion_basis": defs.DISPERSION_BASES, "quantile_method": defs.QUANTILE_METHODS,
        "instrument_kind": ("gpu", "token"),
        "price_type": tuple(sorted(defs.PRICE_TYPES[d.instrument_kind])),
    }
    if name in choices:
        return next(c for c in choices[name] if c != value)
    if name in ("fixing_time_utc", "cutoff_time_utc"):
        return "09:30"
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        return value + "X"
    if isinstance(value, tuple):
        return value + ("X9",)
    field_type = next(f.type for f in dataclasses.fields(d) if f.name == name)
    if "Decimal" in str(field_type):
        return Decimal("0.123456") if value != Decimal("0.123456") else Decimal("0.5")
    if "tuple" in str(field_type):
        return ("X9",)
    raise AssertionError(f"no other value for field {name} ({field_type}): teach this test, and describe(), about it")


def _bases():
    """Definitions whose every field must show in the words: the shipped shapes and the other estimators,
    screen and ladder settings (each branch of the text)."""
    h100, gpt4o, basket = BY_ID["TSI-H100-SXM-OD"], BY_ID["TSI-GPT-4O-BLEND"], BY_ID["TSI-FRONTIER-IN"]
    return [
        h100, gpt4o, basket,
        dataclasses.replace(h100, estimator="trimmed_mean", trim_fraction=Decimal("0.1")),
        dataclasses.replace(h100, estimator="capped_weight_median", weight_cap=Decimal("0.25")),
        dataclasses.replace(h100, estimator="mean", mean_from_providers=5),
        dataclasses.replace(h100, fallback_window_hours=(), carry_days=0, segments=None, sources=None),
        dataclasses.replace(basket, min_members=2),
    ]


@pytest.mark.parametrize("base", _bases(), ids=lambda d: f"{d.id}-{getattr(d, 'estimator', 'basket')}")
def test_every_field_changes_the_words(base):
    """A field the words do not mention would leave them unchanged when it changes: a definition that gains
    a parameter nobody wrote a sentence for fails here."""
    before = words(base)
    silent = []
    for f in dataclasses.fields(base):
        changed = dataclasses.replace(base, **{f.name: _other_value(base, f.name)})
        if words(changed) == before:
            silent.append(f.name)
    assert not silent, f"the words of {base.id} do not change with {silent}"


def test_fields_of_both_kinds_are_covered():
    # The test above walks the dataclasses' fields, so it sees a new one; this pins which classes it walks.
    assert {type(d) for d in _bases()} == {IndexDefinition, BasketDefinition}


def test_stored_definition_reads_the_same_as_the_file():
    # The site describes the definition stored under a fixing's methodology version (canonical JSON): the
    # words must be those of the file's definition it came from.
    for d in (BY_ID["TSI-H100-SXM-OD-BROAD"], BY_ID["TSI-GPT-4O-BLEND"], BY_ID["TSI-OPEN-MAJORS-BLEND"]):
        stored = definition_from_json(d.canonical_json())
        assert sections(stored) == sections(d)
        assert describe(stored) == describe(d)


def test_cli_prints_every_index_or_one(capsys):
    assert main(["methodology"]) == 0
    out = capsys.readouterr().out
    assert out.count("\nParameters (every field") == len(DEFINITIONS) == 64
    assert main(["methodology", "TSI-H200-OD"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("TSI-H200-OD: NVIDIA H200, on-demand, specialist clouds, USD per GPU-hour\n")
    assert out.count("Methodology version") == 1


def test_unknown_index_is_one_line_with_exit_2(capsys):
    assert main(["methodology", "TSI-H100-SXM-0D"]) == 2  # a zero for the O
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("tsi methodology: unknown index 'TSI-H100-SXM-0D'")
    assert "did you mean TSI-H100-SXM-OD" in lines[0]
    with pytest.raises(ValueError, match="`tsi methodology` lists every index"):
        find(DEFINITIONS, "NOTHING-LIKE-IT")
