"""Small builders for methodology tests: observations and definitions in a few words each.

The fixings are computed by the real engine (pipeline.fixing.compute_range, the same SQL as the daily run)
over an in-memory observations table (pipeline.whatif), so each test states only what it is about.
"""
from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from pipeline.definitions import IndexDefinition
from pipeline.fixing import Fixing
from pipeline.whatif import CsvObservation, fix_observations

DAY = date(2026, 11, 20)  # fixing at 16:00 UTC; window (2026-11-19 16:00, 2026-11-20 16:00]


def obs(provider: str, price: str, *, at: str = "2026-11-20T06:00", instrument: str = "H100-SXM",
        price_type: str = "on_demand", region: str | None = None, gpu_count: str | None = None,
        segment: str | None = None) -> CsvObservation:
    kind = "gpu" if price_type in ("on_demand", "spot", "reserved_1y") else "token"
    return CsvObservation(
        observed_at=datetime.fromisoformat(at), provider=provider, instrument=instrument, price_type=price_type,
        usd_price=Decimal(price), instrument_kind=kind, region=region,
        gpu_count=Decimal(gpu_count) if gpu_count else None, segment=segment,
    )


def gpu_index(**overrides) -> IndexDefinition:
    fields = dict(id="T-H100", name="test", methodology_version="1", instrument_kind="gpu",
                  instruments=("H100-SXM",), price_type="on_demand")
    return IndexDefinition(**{**fields, **overrides})


def token_index(model: str, price_type: str, **overrides) -> IndexDefinition:
    fields = dict(id=f"T-{model.upper()}-{price_type.upper()}", name="test", methodology_version="1",
                  instrument_kind="token", instruments=(model,), price_type=price_type)
    if price_type == "blended":
        fields.update(blend_input=Decimal("0.75"), blend_output=Decimal("0.25"))
    return IndexDefinition(**{**fields, **overrides})


def fix(observations, definitions, dates=(DAY,)) -> list[Fixing]:
    if not isinstance(definitions, list):
        definitions = [definitions]
    return fix_observations(observations, definitions, list(dates))


def one(observations, definition, day: date = DAY) -> Fixing:
    [f] = fix(observations, [definition], [day])
    return f


def values(f: Fixing) -> dict[str, Decimal]:
    return {c.provider: c.provider_value for c in f.constituents}


def excluded(f: Fixing) -> dict[str, str]:
    return {c.provider: c.exclusion_reason.split(":")[0] for c in f.constituents if not c.included}
