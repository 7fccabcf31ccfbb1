"""From a raw body to checked records: the source's parser, then the checks every source shares.

The shared checks live here, not in each parser, so that no source can skip them: a price must be
positive, inside its instrument's sanity band, and a row key must not repeat within one snapshot.
"""
from __future__ import annotations

from dataclasses import replace
from types import ModuleType

from pipeline.catalog import Catalog, default_catalog
from pipeline.records import ParseContext, ParseResult, Rejection


def parse_body(source: ModuleType, raw: bytes, ctx: ParseContext, catalog: Catalog | None = None) -> ParseResult:
    catalog = catalog or default_catalog()
    parsed = source.parse(raw, ctx, catalog=catalog)
    checked = ParseResult(rejections=list(parsed.rejections))
    seen: set[str] = set()
    for obs in parsed.observations:
        excerpt = f"{obs.provider} {obs.source_instrument} {obs.price_type} {obs.original_price} {obs.original_currency}/{obs.original_unit}"
        if obs.row_key in seen:
            checked.rejections.append(
                Rejection.of(obs.row_key, "duplicate_row", "the snapshot repeats this row key; the first row is kept", excerpt)
            )
            continue
        seen.add(obs.row_key)
        if obs.usd_price <= 0:
            checked.rejections.append(
                Rejection.of(obs.row_key, "not_positive", f"normalised price {obs.usd_price} is not positive", excerpt)
            )
            continue
        band = catalog.band(obs.instrument_kind, obs.instrument)
        if band is not None and not (band.low <= obs.usd_price <= band.high):
            checked.rejections.append(
                Rejection.of(
                    obs.row_key,
                    "outside_sanity_band",
                    f"{obs.usd_price} is outside [{band.low}, {band.high}] for {obs.instrument}",
                    excerpt,
                )
            )
            continue
        if obs.segment is None:
            obs = replace(obs, segment=catalog.segment(obs.provider))
        checked.observations.append(obs)
    return checked
