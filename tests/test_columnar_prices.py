"""The columnar SkyPilot path divides plain prices in 128-bit integers (skypilot_columns._plain_prices): its rounding,
worked out by hand, at the half-way points where half-even decides, and against the readable path's Decimal.

Lambda's gpu_8x_h100_sxm5 is 8 x H100 SXM (band 0.10 to 50 USD per GPU-hour). Per GPU-hour = price / 8, rounded
half-even to 10 places:
    16.0000000012 / 8 = 2.00000000015  -> 2.0000000002 (the 10th place 1 is odd: up)
    16.0000000020 / 8 = 2.00000000025  -> 2.0000000002 (2 is even: stays)
    16.0000000028 / 8 = 2.00000000035  -> 2.0000000004 (3 is odd: up)
    16.0000000036 / 8 = 2.00000000045  -> 2.0000000004 (4 is even: stays)
    16.00000000121 / 8 = 2.00000000015125 -> 2.0000000002 (past half: up)
    16.000000001199999999 / 8 = 2.000000000149999999875 -> 2.0000000001 (short of half: down)
gpu_1x_h100_sxm5_v3 is priced 1 (one GPU): 1; gpu_3x... has no alias; the 3-GPU count comes from a made-up
H100 SXM row: 10 / 3 = 3.333333333333... -> 3.3333333333, 20 / 3 = 6.6666666666... -> 6.6666666667.
"""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import pytest

from pipeline.columnar import frame_from_observations
from pipeline.normalise import check_columns, parse_body
from pipeline.records import ParseContext
from pipeline.sources import skypilot

WHEN = datetime(2026, 11, 20, 6, tzinfo=timezone.utc)
HEADER = "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,Region,GpuInfo,SpotPrice\n"
CASES = [  # (region, instance type, count, price, expected USD per GPU-hour)
    ("r1", "gpu_8x_h100_sxm5", "8.0", "16.0000000012", "2.0000000002"),
    ("r2", "gpu_8x_h100_sxm5", "8.0", "16.0000000020", "2.0000000002"),
    ("r3", "gpu_8x_h100_sxm5", "8.0", "16.0000000028", "2.0000000004"),
    ("r4", "gpu_8x_h100_sxm5", "8.0", "16.0000000036", "2.0000000004"),
    ("r5", "gpu_8x_h100_sxm5", "8.0", "16.00000000121", "2.0000000002"),
    ("r6", "gpu_8x_h100_sxm5", "8.0", "16.000000001199999999", "2.0000000001"),
    ("r7", "gpu_1x_h100_sxm5", "1", "1", "1"),
    ("r8", "gpu_3x_h100_sxm5", "3", "10", "3.3333333333"),
    ("r9", "gpu_3x_h100_sxm5", "3", "20", "6.6666666667"),
]


def _catalog_body() -> bytes:
    lines = [f"{instance},H100,{count},8,64,{price},{region},,\n" for region, instance, count, price, _ in CASES]
    return (HEADER + "".join(lines)).encode()


def _context() -> ParseContext:
    return ParseContext("skypilot", WHEN, provider="lambda", snapshot_id="s")


def test_plain_prices_round_half_even_as_worked_by_hand():
    kept, rejections = check_columns(skypilot.parse_columns(_catalog_body(), _context()), _context())
    assert rejections == []
    got = {row["region"]: row["usd_price"] for row in kept.iter_rows(named=True)}
    assert got == {region: Decimal(expected) for region, _, _, _, expected in CASES}


def test_plain_prices_equal_the_readable_path():
    body = _catalog_body()
    readable = parse_body(skypilot, body, _context())
    kept, rejections = check_columns(skypilot.parse_columns(body, _context()), _context())
    assert kept.sort("row_key").equals(frame_from_observations(readable.observations).drop("_seq").sort("row_key"))
    assert rejections == readable.rejections == []


@pytest.mark.parametrize("price, reason", [
    ("12345678.5", "outside_sanity_band"), ("1e1", None), ("+3", None), (" 4", None), ("-2", "bad_price"),
    ("0.1234567890123456789", None),
])
def test_cells_beyond_the_plain_form_take_the_readable_reader(price, reason):
    """A price with 8 integer digits, an exponent, a sign, or 19 decimals is not read by column; the row gives
    what the readable path gives: an observation, bad_price for the negative one, outside_sanity_band for
    12,345,678.5 USD an hour for one H100."""
    body = (HEADER + f"gpu_1x_h100_sxm5,H100,1,8,64,{price},r1,,\n").encode()
    readable = parse_body(skypilot, body, _context())
    kept, rejections = check_columns(skypilot.parse_columns(body, _context()), _context())
    assert kept.sort("row_key").equals(frame_from_observations(readable.observations).drop("_seq").sort("row_key"))
    assert sorted(rejections, key=repr) == sorted(readable.rejections, key=repr)
    assert [r.reason for r in rejections] == ([reason] if reason else [])
    assert kept.height == (0 if reason else 1)
