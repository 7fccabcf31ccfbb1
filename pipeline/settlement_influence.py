"""What could move a settlement: the settlement recomputed with one provider removed from every day of the
month, and the cheapest one-provider move by a tick (the price a single provider would have to post on every
day to shift the settlement by one tick). Built on pipeline.influence's scenarios (the engine's own steps 3 and
4 over every day at once) and pipeline.settlement.settle_values (the contract's own rules, fallback included).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_FLOOR, Decimal

import duckdb
import polars as pl
import pyarrow as pa

from pipeline.definitions import Definition
from pipeline.fixing import Fixing, divide, round_half_even
from pipeline.influence import _code, estimate, had_vote, leave_one_out, rerun, scenario_params, scratch
from pipeline.warehouse import registered, sql

GRID = Decimal("1E-10")  # observations keep prices to 10 places: the finest price a provider can post
SPLIT = 31  # grid prices tried inside a bracket per round: it shrinks 32-fold a round (about 6 rounds)
SCAN = 8  # candidates evaluated per provider and side per round of the scan outward from its reference
UP, DOWN = "up", "down"


@dataclass(frozen=True)
class Move:
    """The price one provider would have to post on every day to move the settlement one tick."""

    direction: str  # up: settles at least a tick above; down: at most a tick below
    price: Decimal | None  # nearest its reference (see settlement_influence); None: no price in the domain
    settles_at: Decimal | None = None
    cost: Decimal | None = None  # the mean change of its own values over the days it voted (else |price - S|)
    exact: bool = True  # False: the screen's outcome differs at the ends of the bracket searched (see note)
    note: str = ""


@dataclass(frozen=True)
class ProviderSettlementInfluence:
    provider: str  # a provider, or a basket's member index
    days: int  # days read whose fixing it is a constituent of
    mean_value: Decimal | None  # its mean value over the days it had a vote (None: it never had one)
    price_without: Decimal | None  # the settlement on the series without it; None: no settlement (reason)
    move: Decimal | None
    move_ticks: Decimal | None
    reason: str | None
    up: Move | None = None
    down: Move | None = None


@dataclass
class SettlementInfluence:
    contract: object  # pipeline.contracts.Contract
    month: date
    indicative: bool  # the month so far (some days not fixed yet), as `tsi settle --indicative`
    price: Decimal | None
    providers: list[ProviderSettlementInfluence]
    domain: tuple[Decimal, Decimal] | None = None  # where posted prices were searched
    reason: str | None = None  # why nothing could be computed

    @property
    def largest(self) -> ProviderSettlementInfluence | None:
        moving = [p for p in self.providers if p.move]
        return min(moving, key=lambda p: (-abs(p.move), p.provider)) if moving else None

    @property
    def cheapest(self) -> tuple[ProviderSettlementInfluence, Move] | None:
        """The move by a tick that changes its provider's quotes least (Move.cost)."""
        moves = [(p, m) for p in self.providers for m in (p.up, p.down) if m and m.price is not None]
        if not moves:
            return None
        return min(moves, key=lambda pm: (pm[1].cost, pm[0].provider, pm[1].direction))


@dataclass
class _Day:
    """One date's fixing with a value, as the search re-applies it: its voters and each one's value without."""

    definition: Definition
    voters: dict[str, tuple[Decimal, Decimal]]  # provider -> (value, listed GPUs or 1)
    without: dict[str, Decimal | None]  # every constituent -> the value without it (None: would not stand)
    required: int  # min_providers (a basket: its required members)


def settlement_influence(con: duckdb.DuckDBPyConnection, spec, month, as_of=None) -> SettlementInfluence:
    """What could move a contract month's settlement (spec: a pipeline.contracts.Contract; month: its first
    day or "YYYY-MM"; as_of: the moment the fixings are read as of, None for the newest revisions; a month
    not fixed to its end is taken so far, as an indicative settlement).

    Without a provider: every day's fixing is replaced by its leave-one-out value (fixing_influence; computed
    from the stored constituents for a fixing older than the table) and the contract's own rules settle that
    series (pipeline.settlement.settle_values): a day that would not stand without it has no usable fixing
    and follows the contract's fallback ladder.

    The cheapest move by a tick: the price x a provider would post on every day (in place of its value where
    it had one; as one more provider of the same window where it had none; with a vote either way) to settle
    at least one tick above the settlement (up) or at most one tick below (down), found for each provider
    and direction nearest its reference r, the median of its own values over the days it voted (the price
    at which the mean change of its quotes is least; the settlement price for a provider that never voted).
    Its cost is that mean change, mean |x - its value| over those days; the cheapest move is the one of
    least cost. Each day's fixing with x is the method re-applied (the screen and the estimator, by the
    engine's SQL), a function v_d(x), and the settlement is the contract's rule over the v_d(x). The search:

    1. Candidates: the order statistics where some v_d can change slope, i.e. every value the other
       providers have on any day, r, and the ends of the domain (the instrument's sanity band of
       pipeline/catalog: a price outside it is refused at load). Between two consecutive candidates x keeps
       its rank among the others on every day, so v_d is linear in x with a slope of 0, 1/2 or 1 (median: x
       clamped between its neighbours, or the mean of x and the other middle value), 1/n (mean) or
       1/(n - 2g) (trimmed mean), and the rounded daily fixings and the settlement are monotone in x there,
       as long as the screen drops the same providers.
    2. Scanning the candidates outward from r on each side (all providers at once, a few a round), the first
       one that settles a tick away brackets the answer on that side with the candidate before it.
    3. Inside each bracket, rounds of SPLIT prices on the 1E-10 grid of observed prices (all brackets at
       once, about six rounds) narrow it to the grid: the nearest grid price to r on that side that settles
       a tick away. The nearer of the two sides (by cost) is the answer.

    The answer is exact when the screen drops the same providers on every day at both ends of its bracket
    (`exact`); otherwise the screen's outcome changes inside it (another provider crosses the threshold as
    x moves the median and the MAD) and the price found is a crossing on the grid that the note qualifies;
    a price at which the screen drops the provider itself is the same as withdrawing there, and the note
    says so. A provider that cannot move the settlement a tick in a direction anywhere in the domain gets no
    price and says so. A day without a value of its own (suppressed) stays as it is: posting x is not taken
    to rescue it. For a basket the providers are its member indices, and v_d(x) the mean of the members.
    """
    from pipeline.settlement import read_fixings
    from pipeline.settlement_rules import DayFixing, settle_values

    contract = spec
    month = contract.contract_month(month) if isinstance(month, str) else month
    # As pipeline.settlement reads a month: the whole period, and the fallback ladder's reach before it.
    first, last = contract.period(month)
    reach = max((rung.max_days for rung in contract.fallback), default=0)
    days = read_fixings(con, contract.index, first - timedelta(days=reach), last, as_of)
    fixed = [d.day for d in days if d.day >= month]

    def settle(series):
        return settle_values(contract, month, series)

    base = settle(days)
    indicative = bool(base.missing and fixed)
    if indicative:
        def settle(series):  # noqa: F811 - the month so far
            return settle_values(contract, month, series, through=max(fixed), partial=True)
        base = settle(days)
    result = SettlementInfluence(contract, month, indicative, base.price, [], reason=base.reason)
    if base.price is None:
        return result
    per_day = _settlement_days(con, contract.index, days)
    tick = contract.tick_size
    providers = sorted({p for day in per_day.values() for p in day.without})

    def replaced(values: dict) -> list:
        return [d if d.day not in values else DayFixing(
            d.day, values[d.day], d.status if values[d.day] is not None else "suppressed", d.revision, d.computed_at)
            for d in days]

    means = {}
    for p in providers:
        own = [rows.voters[p][0] for rows in per_day.values() if p in rows.voters]
        means[p] = divide(sum(own, Decimal(0)), len(own)) if own else None
    result.domain = domain = _domain(per_day)
    moves = _cheapest_moves(per_day, providers, base.price, tick, domain,
                            lambda values: settle(replaced(values)).price)
    for p in providers:
        present = {day: rows.without[p] for day, rows in per_day.items() if p in rows.without}
        without = settle(replaced(present))
        move = None if without.price is None else without.price - base.price
        result.providers.append(ProviderSettlementInfluence(
            provider=p, days=len(present), mean_value=means[p],
            price_without=without.price, move=move, move_ticks=None if move is None else move / tick,
            reason=None if without.price is not None else f"no settlement without it: {without.reason}",
            up=moves.get((p, UP)), down=moves.get((p, DOWN)),
        ))
    return result


def _settlement_days(con, index_id: str, days: list) -> dict[date, _Day]:
    """The constituents and leave-one-out values of each read date's revision with a value, in one query;
    a fixing without stored rows has them computed from its constituents."""
    from pipeline.definitions import definition_from_json
    from pipeline.fixing import Constituent

    revisions = pl.DataFrame([(d.day, d.revision) for d in days if d.value is not None],
                             schema={"fixing_date": pl.Date, "revision": pl.Int32}, orient="row")
    try:
        with registered(con, settlement_revisions=revisions.to_arrow()):
            rows = con.execute(sql("select_settlement_influence_rows"), {"index_id": index_id}).fetchall()
    except duckdb.CatalogException:
        raise ValueError("the warehouse predates table fixing_influence (migration 012): open it with a writer "
                         "(tsi backfill) first") from None
    definitions: dict[str, Definition] = {}
    grouped: dict[date, list] = {}
    for row in rows:
        grouped.setdefault(row[0], []).append(row)
        if row[1] not in definitions:
            stored = con.execute(sql("select_index_definition"),
                                 {"index_id": index_id, "methodology_version": row[1]}).fetchall()
            if not stored:
                raise ValueError(f"the warehouse lacks the definition of {index_id} methodology {row[1]}")
            definitions[row[1]] = definition_from_json(stored[0][0])
    by_day = {d.day: d for d in days}
    out, recompute = {}, []
    for day, group in grouped.items():
        d = definitions[group[0][1]]
        constituents = [Constituent(provider=p, snapshot_id=None, provider_value=v, n_observations=0, included=inc,
                                    exclusion_reason=why, capacity=gpus)
                        for _, _, p, v, inc, why, _, _, _, gpus, _ in group]
        if d.is_basket:
            voters = {c.provider: (c.provider_value, Decimal(1)) for c in constituents if c.included}
            required = d.required_members
        else:
            voters = {c.provider: (c.provider_value, c.capacity if c.capacity is not None else Decimal(1))
                      for c in constituents if had_vote(_code(c.exclusion_reason), c.provider_value)}
            required = d.min_providers
        fixing = by_day[day]
        out[day] = _Day(d, voters, {p: (without if stands else None)
                                    for _, _, p, _, _, _, has, stands, without, _, _ in group if has}, required)
        if not all(row[6] for row in group):
            recompute.append(Fixing(definition=d, fixing_date=day, status=fixing.status, value=fixing.value,
                                    n_providers=len(voters), n_observations=0, window_start=None, window_end=None,
                                    p25=None, p75=None, min=None, max=None, input_hash="",
                                    constituent_rows=constituents))
    for (_, day), rows in leave_one_out(recompute).items():
        if any(_code(r.reason) == "not_reproduced" for r in rows):
            raise ValueError(f"{index_id} {day}: its fixing cannot be re-applied from the stored constituents "
                             "(a capped-weight fixing needs its providers' listed GPUs): tsi backfill that date")
        out[day].without = {r.provider: r.value_without if r.stands else None for r in rows}
    return out


def _domain(per_day: dict[date, _Day]) -> tuple[Decimal, Decimal]:
    """Where a posted price is searched: the sanity band of the index's instruments (pipeline/catalog), the
    prices a provider can post at all; for a basket, or an instrument without a band, a tenth of the lowest
    value to ten times the highest."""
    from pipeline.catalog import default_catalog

    d = next(iter(per_day.values())).definition
    values = [v for day in per_day.values() for v, _ in day.voters.values()] or [Decimal(1)]
    if not d.is_basket:
        catalog = default_catalog()
        bands = [catalog.band(d.instrument_kind, i) for i in d.instruments]
        if bands and all(bands):
            return min(b.low for b in bands), max(b.high for b in bands)
    return min(values) / 10, max(values) * 10


def _posted(per_day: dict[date, _Day], points: list[tuple[str, Decimal]], con) -> dict[tuple[int, date], tuple]:
    """Each day's fixing with provider P posting x, for every point (P, x) and day at once: (value, the
    providers the screen drops). Indices through the engine's SQL (rerun); baskets as the mean of the members."""
    out: dict[tuple[int, date], tuple] = {}
    columns = {name: [] for name in ("target_id", "provider", "provider_value", "capacity")}
    definitions, keys = {}, []
    for number, (provider, x) in enumerate(points):
        for day, rows in per_day.items():
            d = rows.definition
            others = [(p, v, g) for p, (v, g) in rows.voters.items() if p != provider]
            if d.is_basket:
                k = len(others) + 1
                value = (round_half_even(divide(sum((v for _, v, _ in others), Decimal(0)) + x, k), d.decimals)
                         if k >= rows.required else None)
                out[(number, day)] = (value, ())
                continue
            target = len(keys)
            keys.append((number, day))
            definitions[target] = d
            for p, v, g in [*others, (provider, x, rows.voters.get(provider, (None, Decimal(1)))[1])]:
                columns["target_id"].append(target)
                columns["provider"].append(p)
                columns["provider_value"].append(v)
                columns["capacity"].append(g)
    if keys:
        # Built as Arrow directly: polars' Decimal construction from Python objects is the slow part here.
        n = len(columns["target_id"])
        frame = pa.table({
            "target_id": pa.array(columns["target_id"], pa.int64()),
            "provider": pa.array(columns["provider"], pa.string()),
            "provider_value": pa.array(columns["provider_value"], pa.decimal128(38, 20)),
            "capacity": pa.array(columns["capacity"], pa.decimal128(38, 4)),
            "n_observations": pa.array([0] * n, pa.int64()),
            "exclusion": pa.nulls(n, pa.string()),
        })
        results = rerun(frame, scenario_params(definitions), con)
        for target, key in enumerate(keys):
            row = results.get(target)
            value, _ = estimate(definitions[target], row)
            out[key] = (value, tuple((row or {}).get("screened") or ()))
    return out


def _cheapest_moves(per_day, providers, price, tick, domain, settle_price) -> dict:
    """Steps 1 to 3 of settlement_influence's docstring, for every provider and direction together."""
    low, high = domain
    own = {p: sorted(rows.voters[p][0] for rows in per_day.values() if p in rows.voters) for p in providers}
    # The reference: the median of its own values (where the mean change of its quotes is least), else the
    # settlement price for a provider that never had a vote.
    reference = {p: (xs[(len(xs) - 1) // 2] + xs[len(xs) // 2]) / 2 if xs else price for p, xs in own.items()}
    targets = {UP: price + tick, DOWN: price - tick}
    cache: dict[tuple, Decimal | None] = {}

    con = scratch()

    def evaluate(points):
        daily = _posted(per_day, points, con)
        states = []
        for n in range(len(points)):
            values = tuple(daily[(n, day)][0] for day in per_day)
            if values not in cache:
                cache[values] = settle_price(dict(zip(per_day, values)))
            states.append((cache[values], {day: daily[(n, day)][1] for day in per_day}))
        return states

    def meets(direction: str, state: tuple) -> bool:
        s = state[0]
        return s is not None and (s >= targets[UP] if direction == UP else s <= targets[DOWN])

    # Steps 1 and 2, scanning the candidates outward from the reference on each side, a few a round, until
    # each direction has met its target on that side (or the side has no candidate left).
    sides = {}
    for p in providers:
        xs = sorted({v for rows in per_day.values() for q, (v, _) in rows.voters.items() if q != p
                     and low <= v <= high} | {low, high, reference[p]})
        sides[(p, "above")] = [x for x in xs if x >= reference[p]]
        sides[(p, "below")] = [x for x in xs if x <= reference[p]][::-1]
    seen: dict[tuple, tuple] = {}
    found: dict[tuple, list] = {}  # (provider, direction) -> [(price, its state, the near end's state)]
    brackets: dict[tuple, list] = {}  # (provider, direction, side) -> [near, far, near state, far state]
    position = {key: 0 for key in sides}
    settled = set()  # (provider, direction, side) decided on the scan
    while True:
        scanned = [(p, side) for (p, side), xs in sides.items()
                   if position[(p, side)] < len(xs) and not all((p, d, side) in settled for d in (UP, DOWN))]
        if not scanned:
            break
        batch = list(dict.fromkeys((p, x) for p, side in scanned
                                   for x in sides[(p, side)][position[(p, side)]:position[(p, side)] + SCAN]
                                   if (p, x) not in seen))
        seen.update(zip(batch, evaluate(batch)))
        for p, side in scanned:
            xs = sides[(p, side)]
            start = position[(p, side)]
            position[(p, side)] = min(len(xs), start + SCAN)
            for k in range(start, position[(p, side)]):
                for d in (UP, DOWN):
                    if (p, d, side) in settled or not meets(d, seen[(p, xs[k])]):
                        continue
                    settled.add((p, d, side))
                    if k == 0:  # the reference itself, posted every day, already moves it a tick
                        found.setdefault((p, d), []).append((xs[0], seen[(p, xs[0])], seen[(p, xs[0])]))
                    else:
                        brackets[(p, d, side)] = [xs[k - 1], xs[k], seen[(p, xs[k - 1])], seen[(p, xs[k])]]
    # Step 3: each round puts SPLIT grid prices inside every open bracket and keeps the piece where the
    # settlement first reaches the tick (near end: not reached; far end: reached).
    while brackets:
        inside = {}
        for key, (near, far, _, _) in brackets.items():
            step = (far - near) / (SPLIT + 1)
            xs = sorted({(near + step * i).quantize(GRID, rounding=ROUND_FLOOR) for i in range(1, SPLIT + 1)},
                        reverse=far < near)
            xs = [x for x in xs if min(near, far) < x < max(near, far)]
            if xs:
                inside[key] = xs
            else:  # no grid price between: the far end is the answer
                found.setdefault(key[:2], []).append((far, brackets[key][3], brackets[key][2]))
        brackets = {key: brackets[key] for key in inside}
        if not brackets:
            break
        order = [(key, x) for key, xs in inside.items() for x in xs]
        states = dict(zip(order, evaluate([(key[0], x) for key, x in order])))
        for key, xs in inside.items():
            hit = next((k for k, x in enumerate(xs) if meets(key[1], states[(key, x)])), None)
            bracket = brackets[key]
            if hit is None:
                bracket[0], bracket[2] = xs[-1], states[(key, xs[-1])]
            else:
                bracket[1], bracket[3] = xs[hit], states[(key, xs[hit])]
                if hit:
                    bracket[0], bracket[2] = xs[hit - 1], states[(key, xs[hit - 1])]
    con.close()
    moves = {}
    for p in providers:
        def cost(x: Decimal, p=p) -> Decimal:
            xs = own[p]
            return divide(sum((abs(x - v) for v in xs), Decimal(0)), len(xs)) if xs else abs(x - price)

        for direction in (UP, DOWN):
            options = found.get((p, direction))
            if not options:
                moves[(p, direction)] = Move(direction, None, note=(
                    f"no price from {low} to {high} posted every day settles a tick {direction} "
                    f"(at {targets[direction]})"))
                continue
            x, state, near = min(options, key=lambda o: (cost(o[0]), o[0]))
            moves[(p, direction)] = _move(p, direction, x, cost(x), state, near, domain)
    return moves


def _move(provider: str, direction: str, price: Decimal, cost: Decimal, found: tuple, near: tuple,
          domain: tuple) -> Move:
    settles_at, screen = found
    notes = ["at the end of the domain"] if price in domain else []
    dropped = sum(provider in screened for screened in screen.values())
    if dropped:
        notes.append(f"at that price the screen drops it on {dropped} day(s): the same as withdrawing there")
    exact = near[1] == screen
    if not exact:
        notes.append("the screen drops other providers at the two ends of the bracket searched: a crossing "
                     "on the grid, not proven the nearest")
    return Move(direction, price, settles_at, cost, exact, "; ".join(notes))


def render_settlement_influence(result: SettlementInfluence) -> str:
    """For a person: the settlement without each provider, and the cheapest move by a tick."""
    c = result.contract
    unit = c.quote_unit
    month = f"{result.month:%Y-%m}"
    if result.price is None:
        return f"{c.id} {month}: no settlement to move ({result.reason})\n"
    so_far = " (indicative: the month so far)" if result.indicative else ""
    lines = [f"{c.id} {month}{so_far}: what could move the settlement {result.price} {unit} (tick {c.tick_size})",
             "", "  without each provider (every day's fixing without it; the contract's rules on that series)"]
    table = [("provider", "days", "settlement", "change", "ticks")]
    for p in result.providers:
        table.append((p.provider, str(p.days), "-" if p.price_without is None else str(p.price_without),
                      f"{p.move:+f}" if p.move is not None else "-",
                      f"{p.move_ticks.normalize():+f}" if p.move_ticks is not None else (p.reason or "")))
    lines += _columns(table)
    top = result.largest
    if top:
        lines.append(f"  largest influence  {top.provider}: {top.price_without} without it ({top.move:+f}, "
                     f"{top.move_ticks.normalize():+f} ticks)")
    low, high = (_plain(x) for x in result.domain) if result.domain else ("", "")
    lines += ["", f"  one tick by one provider: the price it would post every day (searched from {low} to {high}); "
              "cost: the mean change of its own values"]
    table = [("provider", "up", "cost", "down", "cost", "note")]
    for p in result.providers:
        notes = "; ".join(f"{m.direction}: {m.note}" for m in (p.up, p.down) if m and m.note and m.price is not None)
        table.append((p.provider, *(x for m in (p.up, p.down) for x in (_plain(m.price) or "none", _plain(m.cost)
                                                                           or "-")), notes))
    lines += _columns(table)
    cheapest = result.cheapest
    if cheapest:
        p, m = cheapest
        lines.append(f"  cheapest move      {p.provider} posting {_plain(m.price)} every day settles at {m.settles_at} "
                     f"({m.direction} a tick or more; mean change of its values {_plain(m.cost)})")
    return "\n".join(lines) + "\n"


def _plain(value: Decimal | None) -> str:
    return "" if value is None else format(value.normalize(), "f")


def _columns(table: list[tuple]) -> list[str]:
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    return ["  " + "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in table]
