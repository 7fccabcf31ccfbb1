"""The rules of a futures contract's settlement on a plain list of daily fixings (README "Settlement"): the day set,
the counted statuses, the fallback ladder, the settlement rule and the rounding. Pure (no warehouse): it is how
pipeline.settlement settles a month and how pipeline.settlement_influence recomputes one on a replaced series
(e.g. without one provider).

Decimal throughout: the mean is exact (a 60-digit quotient for display), and the rounding to the increment is
decided on exact integers, so a mean exactly half an increment away follows the stated mode.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal
from pathlib import Path

from pipeline.contracts import Contract
from pipeline.fixing import divide

MISSING = "missing"  # the warehouse holds no fixing of the date at all
MEAN_PLACES = Decimal(1).scaleb(-20)
WIDE = Context(prec=60, rounding=ROUND_HALF_EVEN)  # the mean to 20 places, whatever its size


@dataclass(frozen=True)
class DayFixing:
    """One date's fixing as the settlement reads it."""

    day: date
    value: Decimal | None
    status: str  # final, widened, carried, suppressed, ... or MISSING
    revision: int | None = None
    computed_at: datetime | None = None  # naive UTC, as stored


@dataclass(frozen=True)
class SettlementDay:
    """One day of the period and what the settlement made of it."""

    fixing: DayFixing
    used: bool
    value: Decimal | None = None  # the value the day enters the settlement with
    fallback: str | None = None
    fallback_from: date | None = None
    note: str = ""

    @property
    def day(self) -> date:
        return self.fixing.day


@dataclass
class Settlement:
    contract: Contract
    month: date
    first_day: date
    last_day: date  # the last day the period reached (the last trading day, or today when indicative)
    days: list[SettlementDay]
    price: Decimal | None  # None: no settlement, see reason
    mean: Decimal | None
    reason: str | None = None
    missing: list[date] = field(default_factory=list)  # dates read that have no fixing in the warehouse
    final: bool = False
    finality_at: datetime | None = None
    finality_reason: str = ""
    finality_passed: bool = False  # indicative only: the final settlement could be made now
    settled_at: datetime | None = None  # when it was first recorded
    published: Path | None = None
    sha256: str | None = None

    @property
    def n_used(self) -> int:
        return sum(d.used for d in self.days)

    @property
    def contract_value(self) -> Decimal | None:
        """USD for one contract: the price times the contract unit in the quote unit's denominator."""
        return None if self.price is None else self.price * self.contract.multiplier


# --- the rules ------------------------------------------------------------------------------------------


def settle_values(contract: Contract, month: date, days: Iterable[DayFixing | tuple], *,
                  through: date | None = None, partial: bool = False) -> Settlement:
    """The settlement the contract's rules give on these daily fixings (tuples: date, value, status[, ...]).

    A date of the period absent from `days` counts as MISSING (no fixing): the result lists it in `missing`,
    and a final settlement is refused on it (pipeline.settlement.settle). Look-back dates before the period
    feed the fallback ladder only. An indicative settlement (partial) ends the period early (`through`),
    leaves a date with no fixing yet out instead of filling it, and does not hold the period to min_days.
    """
    by_day = {}
    for d in days:
        d = d if isinstance(d, DayFixing) else DayFixing(*d)
        by_day[d.day] = d
    first, last = contract.period(month)
    if through is not None:
        last = min(last, through)
    period = [first + timedelta(days=k) for k in range((last - first).days + 1)]

    def fixing(day: date) -> DayFixing:
        return by_day.get(day) or DayFixing(day, None, MISSING)

    def usable(f: DayFixing) -> bool:
        return f.value is not None and f.status in contract.counted_statuses

    result = Settlement(contract, month, first, last, [], None, None)
    missing: set[date] = set()
    rule, n = contract.settlement_rule, contract.settlement_n
    if contract.day_set == "calendar":
        # Every calendar day is a settlement day; the rule picks which of them enter the price.
        chosen = {"average": period, "last_fixing": period[-1:], "average_last_n": period[-(n or 1):]}[rule]
        if rule == "average_last_n" and len(period) < n:
            result.reason = f"the period {first} to {last} has {len(period)} day(s); the rule needs the last {n}"
        unfilled = []
        for day in period:
            f = fixing(day)
            if day not in chosen:
                result.days.append(SettlementDay(f, False, note=_not_chosen(rule, n)))
                continue
            if f.status == MISSING:
                # Unknown, not suppressed: what the day will hold once fixed decides whether the ladder is
                # needed at all, so nothing is filled (a final settlement is refused on it).
                missing.add(day)
                note = ("no fixing yet: left out of the indicative settlement" if partial
                        else "no fixing in the warehouse")
                result.days.append(SettlementDay(f, False, note=note))
                continue
            if usable(f):
                result.days.append(SettlementDay(f, True, f.value))
                continue
            filled, consulted = _ladder(contract, day, fixing, usable)
            missing.update(d for d in consulted if fixing(d).status == MISSING)
            if filled is None:
                unfilled.append(day)
                result.days.append(SettlementDay(f, False, note=f"no usable fixing ({_status(f)}); "
                                                              f"{_ladder_words(contract)} cannot fill it"))
            else:
                source, rung = filled
                result.days.append(SettlementDay(
                    f, True, source.value, rung, source.day,
                    f"{_status(f)}: {rung} from {source.day} ("
                    + ("" if source.revision is None else f"revision {source.revision}, ") + f"{source.status})"))
        if unfilled and not result.reason:
            result.reason = (f"no usable fixing of {contract.index} on {date_ranges(unfilled)} and "
                             f"{_ladder_words(contract)} cannot fill {'it' if len(unfilled) == 1 else 'them'}")
    else:
        # Published days only: a day counts with a usable fixing of its own, else it is left out.
        good = [day for day in period if usable(fixing(day))]
        missing.update(day for day in period if fixing(day).status == MISSING)
        chosen = {"average": good, "last_fixing": good[-1:], "average_last_n": good[-(n or 1):]}[rule]
        for day in period:
            f = fixing(day)
            if day in chosen:
                result.days.append(SettlementDay(f, True, f.value))
            elif day in good:
                result.days.append(SettlementDay(f, False, note=_not_chosen(rule, n, published=True)))
            else:
                result.days.append(SettlementDay(f, False, note=f"not counted: {_status(f)}"))
        needed = max(1 if partial else contract.min_days, n if rule == "average_last_n" else 1)
        if len(good) < needed:
            result.reason = (f"{len(good)} day(s) of {first} to {last} have a usable fixing of {contract.index} "
                             f"({', '.join(contract.counted_statuses)}); the contract needs {needed}")
    result.missing = sorted(missing)
    if missing and not partial and not result.reason:
        result.reason = f"no fixing of {contract.index} on {date_ranges(result.missing)} in the warehouse"
    values = [d.value for d in result.days if d.used]
    if result.reason is None and not values:
        result.reason = f"no day of {first} to {last} has a fixing of {contract.index} to use"
    if result.reason is None:
        total = sum(values, Decimal(0))
        result.mean = divide(total, len(values))
        result.price = round_to_increment(total, len(values), contract.increment, contract.rounding_mode)
    return result


def round_to_increment(total: Decimal, count: int, increment: Decimal, mode: str) -> Decimal:
    """(total / count) rounded to a multiple of `increment` with the Decimal rounding `mode`, exactly.

    The quotient q = total / (count x increment) is a ratio of integers a / b: its whole part and remainder
    say exactly where it lies (on a multiple, below, on or above the half), and a stand-in with the same
    whole part and a fraction of 0, 1/4, 1/2 or 3/4 rounds the same way under every mode. No precision limit
    can turn a tie into a near-tie.
    """
    tn, td = total.as_integer_ratio()
    inc_n, inc_d = increment.as_integer_ratio()
    a, b = tn * inc_d, td * count * inc_n  # q = a / b, b > 0
    whole, remainder = divmod(a, b)  # floor: 0 <= remainder < b
    twice = 2 * remainder
    fraction = Decimal(0) if remainder == 0 else (
        Decimal("0.25") if twice < b else Decimal("0.5") if twice == b else Decimal("0.75"))
    steps = (Decimal(whole) + fraction).quantize(Decimal(1), rounding=mode)
    return (steps * increment).quantize(increment)


def _ladder(contract: Contract, day: date, fixing, usable) -> tuple[tuple[DayFixing, str] | None, list[date]]:
    """The first rung that fills `day`, and every date it read (a missing one makes the result unknowable)."""
    consulted: list[date] = []
    for rung in contract.fallback:
        if rung.rule == "previous_value":
            # The newest usable fixing of the max_days days before (across the month's start too), as SOFR
            # averaging repeats the last published rate: a filled day never feeds the next one.
            for back in range(1, rung.max_days + 1):
                earlier = day - timedelta(days=back)
                consulted.append(earlier)
                if usable(fixing(earlier)):
                    return (fixing(earlier), rung.rule), consulted
    return None, consulted


def _ladder_words(contract: Contract) -> str:
    if not contract.fallback:
        return "no fallback (the contract has none)"
    rungs = ", then ".join(f"{r.rule} up to {r.max_days} day(s) back" for r in contract.fallback)
    return f"the fallback ({rungs})"


def _not_chosen(rule: str, n: int | None, *, published: bool = False) -> str:
    kind = "usable fixings" if published else "days"
    return f"not among the last {n} {kind}" if rule == "average_last_n" else (
        "not the last usable fixing" if published else "not the last trading day")


def _status(f: DayFixing) -> str:
    if f.status == MISSING:
        return "no fixing in the warehouse"
    if f.value is None:
        return f.status
    return f"{f.status} {f.value}, a status the contract does not count"


def date_ranges(days: list[date]) -> str:
    """2026-11-03, 2026-11-05 to 2026-11-07: consecutive dates as ranges."""
    runs: list[list[date]] = []
    for day in sorted(days):
        if runs and day - runs[-1][-1] == timedelta(days=1):
            runs[-1].append(day)
        else:
            runs.append([day])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]} to {r[-1]}" for r in runs)
