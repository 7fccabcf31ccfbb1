"""Issue 11: one demo collection is a market, not a handful of clouds.

The SkyPilot recordings hold every cloud of the live collection (pipeline/sources/skypilot.py CLOUDS), beside
the Vast API, Azure's Retail Prices and the two pricing pages. Counted from the observations of one demo day
(2026-11-20, the demo's last), each GPU provider once in the segment pipeline/catalog/providers.csv gives it:

- hyperscaler: aws, gcp (SkyPilot) and azure (Retail Prices API): 3;
- specialist: lambda, runpod, fluidstack, paperspace, do, verda, nebius, hyperstack, cudo, hyperbolic,
  primeintellect, seeweb (SkyPilot) and coreweave (its pricing page): 13;
- marketplace: vast (its API and its SkyPilot catalog: one provider), shadeform, mithril, simplepod: 4.

20 distinct GPU providers in 3 segments; the issue asks for at least 15.
"""
from __future__ import annotations

from datetime import date

import pytest

from pipeline.paths import Warehouse
from pipeline.warehouse import connect

import demo_warehouse

DAY = date(2026, 11, 20)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Warehouse:
    return demo_warehouse.fresh_copy(tmp_path_factory)


def providers_by_segment(warehouse: Warehouse, day: date) -> dict[str, set[str]]:
    from pipeline.catalog import default_catalog

    con = connect(warehouse, read_only=True)
    try:
        providers = {p for (p,) in con.execute(
            "select distinct provider from observations where instrument_kind = 'gpu'"
            " and cast(observed_at as date) = $d", {"d": day}).fetchall()}
    finally:
        con.close()
    catalog = default_catalog()
    out: dict[str, set[str]] = {}
    for provider in providers:
        out.setdefault(catalog.segment(provider) or "", set()).add(provider)
    return out


def test_one_demo_collection_reaches_fifteen_gpu_providers_in_three_segments(demo):
    segments = providers_by_segment(demo, DAY)
    assert segments == {
        "hyperscaler": {"aws", "gcp", "azure"},
        "specialist": {"lambda", "runpod", "fluidstack", "paperspace", "do", "verda", "nebius", "hyperstack", "cudo",
                       "hyperbolic", "primeintellect", "seeweb", "coreweave"},
        "marketplace": {"vast", "shadeform", "mithril", "simplepod"},
    }
    assert sum(len(p) for p in segments.values()) >= 15 and len(segments) >= 3


def test_every_demo_day_has_three_segments(demo):
    # On 2026-11-19 Paperspace's catalog fails (HTTP 503): one specialist fewer, the three segments stay.
    for day in demo_warehouse.DEMO_DATES:
        segments = providers_by_segment(demo, day)
        assert {"hyperscaler", "specialist", "marketplace"} <= set(segments), day
        assert sum(len(p) for p in segments.values()) >= 15, day
