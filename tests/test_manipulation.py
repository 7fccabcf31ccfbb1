"""Manipulation resistance, property-based (hypothesis): what one provider can and cannot do to a fixing.

Each property runs the real engine on generated providers. Where a property compares two situations they are
put side by side in one run as two instruments with their own index (same method), so that each example
costs one computation; input hashes, which name the instrument, are compared in separate runs.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.whatif import CsvObservation, fix_observations

from fixing_helpers import DAY, gpu_index

INSTRUMENTS = ("H100-SXM", "H200", "A100-80GB")
T = datetime(2026, 11, 20, 16, 0)  # the fixing time of DAY; the window is (T - 24 h, T]
PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
PAIRED = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])  # two runs each

# Prices in cents, 0.01 .. 100,000.00 USD: wide enough for absurd quotes, exact as decimals.
cents = st.integers(min_value=1, max_value=10_000_000).map(lambda c: Decimal(c).scaleb(-2))
usual = st.integers(min_value=100, max_value=1_000).map(lambda c: Decimal(c).scaleb(-2))


@pytest.fixture(scope="module")
def engine():
    con = duckdb.connect()
    yield con
    con.close()


def row(provider: str, price: Decimal, instrument: str = "H100-SXM", *, at: datetime = T - timedelta(hours=10),
        gpu_count: Decimal | None = None, segment: str | None = None) -> CsvObservation:
    return CsvObservation(observed_at=at, provider=provider, instrument=instrument, price_type="on_demand",
                          usd_price=price, instrument_kind="gpu", gpu_count=gpu_count, segment=segment)


def indices(**method):
    return [gpu_index(id=f"T-{i}", instruments=(instrument,), carry_days=0, **method)
            for i, instrument in enumerate(INSTRUMENTS)]


def run(engine, observations, definitions):
    return fix_observations(observations, definitions, [DAY], con=engine)


def median_bounds(others: list[Decimal]) -> tuple[Decimal, Decimal]:
    """Where the median of n values can lie whatever one of them is, from the other n - 1 (sorted y, 1-based):
    n = 2m + 1: [y_m, y_m+1]; n = 2m: [(y_m-1 + y_m) / 2, (y_m + y_m+1) / 2]."""
    y = sorted(others)
    n = len(y) + 1
    m = n // 2
    if n % 2:
        return y[m - 1], y[m]
    return (y[m - 2] + y[m - 1]) / 2, (y[m - 1] + y[m]) / 2


@PROPERTY
@given(others=st.lists(cents, min_size=2, max_size=8), quotes=st.lists(cents, min_size=3, max_size=3))
def test_one_provider_moves_the_median_by_at_most_the_gap_between_its_neighbours(engine, others, quotes):
    # Provider x quotes three different prices (one per instrument, the others' prices the same for all):
    # the index stays inside the bounds the other providers set, so x moves it at most by their width.
    observations = [row(f"p{i}", price, instrument) for instrument in INSTRUMENTS for i, price in enumerate(others)]
    observations += [row("x", quote, instrument) for quote, instrument in zip(quotes, INSTRUMENTS)]
    fixings = run(engine, observations, indices(outlier_screen="none"))
    low, high = median_bounds(others)
    for f in fixings:
        assert low <= f.value <= high, (f.value, low, high)
    assert max(f.value for f in fixings) - min(f.value for f in fixings) <= high - low


@PROPERTY
@given(others=st.lists(usual, min_size=4, max_size=8), quotes=st.lists(cents, min_size=3, max_size=3))
def test_with_the_screen_one_provider_cannot_take_the_index_outside_the_others(engine, others, quotes):
    # With the full method (outlier screen on), a fixing still has at least 3 included providers, so its median
    # lies between the second smallest and second largest of them: never beyond the other providers' range.
    observations = [row(f"p{i}", price, instrument) for instrument in INSTRUMENTS for i, price in enumerate(others)]
    observations += [row("x", quote, instrument) for quote, instrument in zip(quotes, INSTRUMENTS)]
    for f in run(engine, observations, indices()):
        assert f.value is None or min(others) <= f.value <= max(others), (f.value, others)
        assert sum(c.provider == "x" and c.included for c in f.constituents) <= 1


@PROPERTY
@given(others=st.lists(usual, min_size=2, max_size=6), offers=st.lists(cents, min_size=1, max_size=6),
       copies=st.integers(min_value=2, max_value=5))
def test_offers_and_duplicate_listings_count_as_one_vote(engine, others, offers, copies):
    # H100-SXM: x lists its offers; H200: the same offers, each listed `copies` times; A100-80GB: x lists one
    # price, its provider value computed here by hand (the median of its offers). All three give the same
    # fixing: whatever x lists, it has one vote, worth the median of what it lists.
    ordered = sorted(offers)
    k = len(ordered)
    one_price = (ordered[(k - 1) // 2] + ordered[k // 2]) / 2
    observations = []
    for instrument, listing in zip(INSTRUMENTS, (offers, offers * copies, [one_price])):
        observations += [row(f"p{i}", price, instrument) for i, price in enumerate(others)]
        observations += [row("x", price, instrument) for price in listing]
    fixings = run(engine, observations, indices(outlier_screen="none"))
    assert len({(f.status, f.value, f.n_providers) for f in fixings}) == 1, fixings
    assert {f.n_providers for f in fixings} == {len(others) + 1}
    assert {next(c.provider_value for c in f.constituents if c.provider == "x") for f in fixings} == {one_price}


@PROPERTY
@given(others=st.lists(usual, min_size=2, max_size=6), offers=st.lists(
    st.tuples(cents, st.integers(min_value=1, max_value=8)), min_size=1, max_size=5),
       copies=st.integers(min_value=2, max_value=4))
def test_a_marketplace_relisting_its_offers_changes_nothing(engine, others, offers, copies):
    # A marketplace's value is the GPU-weighted median of its offers: listing every offer again scales every
    # weight alike, so the value and the fixing are unchanged.
    observations = []
    for instrument, times in zip(INSTRUMENTS[:2], (1, copies)):
        observations += [row(f"p{i}", price, instrument, segment="specialist") for i, price in enumerate(others)]
        observations += [row("vast", price, instrument, gpu_count=Decimal(gpus), segment="marketplace")
                         for price, gpus in offers * times]
    once, repeated = run(engine, observations, indices(outlier_screen="none")[:2])
    assert (once.value, once.n_providers) == (repeated.value, repeated.n_providers)


stale_times = st.one_of(
    st.integers(min_value=24 * 60, max_value=24 * 60 * 30).map(lambda m: T - timedelta(minutes=m)),  # at or before the start
    st.integers(min_value=1, max_value=24 * 60 * 30).map(lambda m: T + timedelta(minutes=m)),  # after the fixing time
)


@PAIRED
@given(others=st.lists(usual, min_size=3, max_size=6), stale=st.lists(st.tuples(cents, stale_times), min_size=1, max_size=4),
       superseded=cents)
def test_a_stale_provider_or_a_superseded_collection_has_no_effect(engine, others, stale, superseded):
    # The 24-hour window holds three or more providers (so no wider window is needed). A provider observed
    # only outside the window, at any price, and an older collection of p0 earlier in the window, change
    # nothing: not the value, not the constituents, not the input hash.
    base = [row(f"p{i}", price) for i, price in enumerate(others)]
    noise = [row("stale", price, at=moment) for price, moment in stale]
    noise.append(row("p0", superseded, at=T - timedelta(hours=20)))  # p0's later collection is at T - 10 h
    definition = indices()[0]
    [clean] = run(engine, base, [definition])
    [noisy] = run(engine, base + noise, [definition])
    assert (noisy.status, noisy.value, noisy.n_providers, noisy.input_hash) == (
        clean.status, clean.value, clean.n_providers, clean.input_hash)
    assert [(c.provider, c.provider_value) for c in noisy.constituents] == [
        (c.provider, c.provider_value) for c in clean.constituents]


@PAIRED
@given(prices=st.lists(st.tuples(st.sampled_from("abcdef"), cents, st.sampled_from(["r1", "r2"])),
                       min_size=3, max_size=14), data=st.data())
def test_the_result_does_not_depend_on_the_order_of_the_input(engine, prices, data):
    observations = [CsvObservation(observed_at=T - timedelta(hours=3), provider=p, instrument="H100-SXM",
                                   price_type="on_demand", usd_price=v, instrument_kind="gpu", region=r)
                    for p, v, r in prices]
    shuffled = data.draw(st.permutations(observations))
    definition = gpu_index(provider_value="median_of_region_medians", min_providers=1, carry_days=0)
    [first] = run(engine, observations, [definition])
    [second] = run(engine, list(shuffled), [definition])
    assert (first.status, first.value, first.input_hash, first.p25, first.p75, first.mean) == (
        second.status, second.value, second.input_hash, second.p25, second.p75, second.mean)
    assert [(c.provider, c.provider_value, c.included) for c in first.constituents] == [
        (c.provider, c.provider_value, c.included) for c in second.constituents]
