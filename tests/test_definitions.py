"""Index definitions are data, validated on load with errors that say what is wrong."""
from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from pipeline.definitions import DefinitionError, load_definitions

GOOD = """
[[index]]
id = "TSI-X"
name = "x"
methodology_version = "1.0"
instrument_kind = "gpu"
instrument = "H100-SXM"
price_type = "on_demand"
sources = ["skypilot"]
"""


def write(tmp_path, text):
    path = tmp_path / "indices.toml"
    path.write_text(text)
    return path


def test_the_shipped_definitions_load():
    definitions = load_definitions()
    assert len({d.id for d in definitions}) == len(definitions) >= 5
    assert {d.instrument_kind for d in definitions} == {"gpu", "token"}


def test_defaults_and_window(tmp_path):
    [d] = load_definitions(write(tmp_path, GOOD))
    assert (d.min_providers, d.window_hours, d.decimals) == (3, 24, 4)
    start, end = d.window(date(2026, 11, 20))
    assert end == datetime(2026, 11, 20, 16, 0, tzinfo=timezone.utc)
    assert start == datetime(2026, 11, 19, 16, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "change, message",
    [
        (('instrument = "H100-SXM"', 'instrument = "H100"'), "not a canonical gpu"),
        (('price_type = "on_demand"', 'price_type = "input"'), "price_type for gpu"),
        (('sources = ["skypilot"]', 'sources = ["nowhere"]'), "unknown source"),
        (('sources = ["skypilot"]', 'sources = ["openrouter"]'), "gives token prices"),
        (('id = "TSI-X"', 'id = "=cmd|calc"'), "id must match"),
        (('name = "x"', 'name = "x"\nmin_providers = 0'), "min_providers"),
        (('name = "x"', 'name = "x"\nfixing_time_utc = "25:00"'), "fixing_time_utc"),
        (('name = "x"', 'name = "x"\nestimator = "mean"'), "unknown field"),
        (('methodology_version = "1.0"\n', ""), "missing field"),
    ],
)
def test_bad_definitions_are_refused_with_a_reason(tmp_path, change, message):
    old, new = change
    assert old in GOOD
    with pytest.raises(DefinitionError, match=message):
        load_definitions(write(tmp_path, GOOD.replace(old, new)))


def test_duplicate_ids_and_bad_toml_are_refused(tmp_path):
    with pytest.raises(DefinitionError, match="defined twice"):
        load_definitions(write(tmp_path, GOOD + GOOD))
    with pytest.raises(DefinitionError, match="not valid TOML"):
        load_definitions(write(tmp_path, "[[index]\nid="))
