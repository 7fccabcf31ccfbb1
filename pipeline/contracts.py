"""Futures contract specifications are data (pipeline/contracts.toml), validated on load with errors that name
the contract and the field, versioned like index definitions (pipeline/definitions.py).

No exchange has published the terms of its GPU-hour or token futures yet, so every term is a field: the
underlying index, the contract unit and its quote unit, the tick, the listed months, the last trading day,
the settlement rule (average, last fixing, average of the last N), the day set (calendar days carrying the
previous value, or published days only), the fixing statuses that count, the fallback ladder for a day
without a usable fixing, the rounding and the finality rule. README "Settlement" states what each one does;
pipeline/settlement.py applies them.

Numbers are read as Decimal straight from the TOML text, never through a float. A contract is identified by
(id, version) and the sha256 of canonical JSON over every resolved field: register_contract refuses a changed
specification that kept its version, as pipeline.fixing.register_definitions does for an index.
"""
from __future__ import annotations

import calendar
import functools
import hashlib
import json
import re
from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import duckdb

from pipeline.definitions import (
    INDEX_ID, UNIT_COLUMN, UNIT_LABEL, VERSION, Definition, DefinitionError, _clock, _decimal, _whole, load_definitions,
    read_toml_document,
)
from pipeline.http import utc_now
from pipeline.warehouse import fetch_first, naive_utc, sql

CONTRACTS_FILE = Path(__file__).resolve().parent / "contracts.toml"

COUNTABLE_STATUSES = ("final", "widened", "carried")  # suppressed has no value; it is what the ladder is for
SETTLEMENT_RULES = ("average", "last_fixing", "average_last_n")
DAY_SETS = ("calendar", "published")
LAST_TRADING_DAY_RULES = ("last_calendar_day", "last_business_day", "days_before_month_end")
FALLBACK_RULES = ("previous_value",)
FINALITY_RULES = ("last_cutoff", "after_last_trading_day")
ROUNDING_MODES = {
    "half_even": "ROUND_HALF_EVEN", "half_up": "ROUND_HALF_UP", "half_down": "ROUND_HALF_DOWN",
    "down": "ROUND_DOWN", "up": "ROUND_UP", "floor": "ROUND_FLOOR", "ceiling": "ROUND_CEILING",
}
# The contract unit in the quote unit's denominator: a token contract may be written in tokens (1 billion
# tokens = 1000 Mtok) or in Mtok.
CONTRACT_UNITS = {"gpu": {"GPU-hours": Decimal(1)}, "token": {"Mtok": Decimal(1), "tokens": Decimal("0.000001")}}
MONTH = re.compile(r"^(20[0-9]{2})-(0[1-9]|1[0-2])$")
MAX_PLACES = 6  # settlement prices are kept as DECIMAL(20, 6)


class ContractError(DefinitionError):
    pass


@dataclass(frozen=True, kw_only=True)
class FallbackRung:
    rule: str
    max_days: int


@dataclass(frozen=True, kw_only=True)
class Contract:
    id: str
    name: str
    version: str
    index: str
    instrument_kind: str  # the index's: gpu or token
    contract_quantity: int
    contract_quantity_unit: str
    tick_size: Decimal
    first_month: str
    last_month: str | None = None
    listed_months: tuple[int, ...] = tuple(range(1, 13))
    last_trading_day: str = "last_calendar_day"
    last_trading_day_days: int = 0  # days_before_month_end only
    settlement_rule: str = "average"
    settlement_n: int | None = None  # average_last_n only
    day_set: str = "calendar"
    counted_statuses: tuple[str, ...] = COUNTABLE_STATUSES
    fallback: tuple[FallbackRung, ...] = (FallbackRung(rule="previous_value", max_days=3),)
    min_days: int = 1  # published day set: the fewest usable fixings a period needs
    rounding: str = "half_even"
    rounding_places: int | None = None  # None: to the tick
    finality: str = "last_cutoff"
    finality_days: int | None = None  # after_last_trading_day only
    finality_time_utc: str | None = None

    @property
    def quote_unit(self) -> str:
        return UNIT_LABEL[self.instrument_kind]

    @property
    def unit_column(self) -> str:
        return UNIT_COLUMN[self.instrument_kind]

    @property
    def multiplier(self) -> Decimal:
        """Quote-unit denominators in one contract: 1000 GPU-hours -> 1000; 1,000,000,000 tokens -> 1000 Mtok."""
        quantity = Decimal(self.contract_quantity) * CONTRACT_UNITS[self.instrument_kind][self.contract_quantity_unit]
        # 1000.000000 -> 1000 (never 1E+3): the multiplier is printed beside the contract value
        return quantity.quantize(Decimal(1)) if quantity == quantity.to_integral_value() else quantity.normalize()

    @property
    def unit_words(self) -> str:
        """1000 GPU-hours; 1000000000 tokens = 1000 Mtok."""
        words = f"{self.contract_quantity} {self.contract_quantity_unit}"
        return words + (f" = {self.multiplier} Mtok" if self.contract_quantity_unit == "tokens" else "")

    def unit_pair(self, value: Decimal | None) -> tuple[Decimal | None, Decimal | None]:
        """(usd_per_gpu_hour, usd_per_mtok): a value goes in its unit's column, the other stays empty."""
        return (value, None) if self.instrument_kind == "gpu" else (None, value)

    @property
    def increment(self) -> Decimal:
        """What the settlement price is rounded to: the tick, or 10^-rounding_places."""
        return self.tick_size if self.rounding_places is None else Decimal(1).scaleb(-self.rounding_places)

    @property
    def rounding_mode(self) -> str:
        return ROUNDING_MODES[self.rounding]

    def contract_month(self, text: str) -> date:
        """The first day of a listed contract month written YYYY-MM; a one-line error otherwise."""
        match = MONTH.match(text or "")
        if not match:
            raise ValueError(f"contract month must be YYYY-MM (2000 to 2099), got {text!r}")
        month = date(int(match[1]), int(match[2]), 1)
        if text < self.first_month or (self.last_month and text > self.last_month) \
                or month.month not in self.listed_months:
            listed = "every month" if len(self.listed_months) == 12 else f"months {list(self.listed_months)}"
            span = f"from {self.first_month}" + (f" to {self.last_month}" if self.last_month else "")
            raise ValueError(f"{text} is not a contract month of {self.id} ({listed} {span})")
        return month

    def last_trading_day_of(self, month: date) -> date:
        last = month.replace(day=calendar.monthrange(month.year, month.month)[1])
        if self.last_trading_day == "last_business_day":
            # Monday to Friday; no holiday calendar (none is agreed for these markets yet).
            while last.weekday() >= 5:
                last -= timedelta(days=1)
        elif self.last_trading_day == "days_before_month_end":
            last -= timedelta(days=self.last_trading_day_days)
        return last

    def period(self, month: date) -> tuple[date, date]:
        """The settlement period: the first day of the month through the last trading day, both included."""
        return month, self.last_trading_day_of(month)

    @property
    def reach(self) -> int:
        """How many days before a day the fallback ladder may read."""
        return max((r.max_days for r in self.fallback), default=0)

    def needed_dates(self, month: date) -> list[date]:
        """Every date whose fixing the month's settlement may read: the days its rule can choose and the
        ladder's reach before them (a published-days rule may choose any day of the period)."""
        first, last = self.period(month)
        if self.day_set == "published" or self.settlement_rule == "average":
            start = first
        elif self.settlement_rule == "last_fixing":
            start = last
        else:
            start = max(first, last - timedelta(days=self.settlement_n - 1))
        start -= timedelta(days=self.reach)
        return [start + timedelta(days=k) for k in range((last - start).days + 1)]

    def finality_of(self, month: date, definition: Definition) -> tuple[datetime, str]:
        """The moment the month's fixings are read as of, and the rule that gives it in words."""
        last = self.last_trading_day_of(month)
        if self.finality == "after_last_trading_day":
            clock = time.fromisoformat(self.finality_time_utc)
            moment = datetime.combine(last + timedelta(days=self.finality_days), clock, tzinfo=timezone.utc)
            return moment, f"{self.finality_days} day(s) after the last trading day {last} at {clock:%H:%M} UTC"
        # Cutoffs grow with the date, so the last needed fixing's cutoff is the last trading day's.
        return definition.cutoff(last), f"the correction cutoff of the fixing of {last}"

    def canonical_json(self) -> str:
        return json.dumps(_to_json(self), sort_keys=True, separators=(",", ":"))

    @functools.cached_property
    def sha256(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


def _to_json(contract: Contract) -> dict:
    out: dict = {}
    for f in fields(contract):
        value = getattr(contract, f.name)
        if isinstance(value, Decimal):
            value = format(value.normalize(), "f")
        elif f.name == "fallback":
            value = [{"rule": r.rule, "max_days": r.max_days} for r in value]
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


# --- loading and validation -----------------------------------------------------------------------------

REQUIRED = ("id", "name", "version", "index", "contract_unit", "tick_size", "first_month")
KEYS = set(REQUIRED) | {"quote_unit", "last_month", "months", "last_trading_day", "settlement", "day_set",
                        "counted_statuses", "fallback", "min_days", "rounding", "rounding_places", "finality"}
DEFAULT_KEYS = KEYS - {"id", "name", "index", "quote_unit"}


def load_contracts(path: Path = CONTRACTS_FILE, definitions: list[Definition] | None = None) -> list[Contract]:
    """Every contract of the file, validated against the index definitions (pipeline/indices.toml)."""
    document, defaults = read_toml_document(path, ("contract",), DEFAULT_KEYS, "contracts", "per-contract",
                                            ContractError)
    entries = document.get("contract", [])
    if not isinstance(entries, list) or not entries:
        raise ContractError(f"{path}: expected one or more [[contract]] tables")
    indices = {d.id: d for d in (definitions if definitions is not None else load_definitions())}
    contracts, seen = [], set()
    for number, entry in enumerate(entries, start=1):
        name = entry.get("id", "no id") if isinstance(entry, dict) else "?"
        where = f"{path}: contract #{number} ({name})"
        try:
            contract = validate_contract(entry, defaults, where, indices)
        except ContractError:
            raise
        except DefinitionError as exc:  # from the number and clock readers shared with index definitions
            raise ContractError(str(exc)) from None
        if contract.id in seen:
            raise ContractError(f"{where}: id {contract.id!r} is defined twice")
        seen.add(contract.id)
        contracts.append(contract)
    return contracts


def find_contract(contract_id: str, path: Path = CONTRACTS_FILE,
                  definitions: list[Definition] | None = None) -> Contract:
    contracts = {c.id: c for c in load_contracts(path, definitions)}
    if contract_id not in contracts:
        raise ValueError(f"unknown contract {contract_id!r}; known: {', '.join(sorted(contracts))}")
    return contracts[contract_id]


def validate_contract(entry: object, defaults: dict, where: str, indices: dict[str, Definition]) -> Contract:
    if not isinstance(entry, dict):
        raise ContractError(f"{where}: must be a table")
    unknown = set(entry) - KEYS
    if unknown:
        raise ContractError(f"{where}: unknown field(s) {sorted(unknown)}; allowed: {sorted(KEYS)}")
    merged = {**{k: v for k, v in defaults.items()}, **entry}
    missing = [k for k in REQUIRED if k not in merged]
    if missing:
        raise ContractError(f"{where}: missing field(s) {sorted(missing)}")
    day_set = _choice(merged.get("day_set", "calendar"), "day_set", DAY_SETS, where)
    # A field that only means something under another choice is a mistake when the entry sets it itself.
    if day_set == "published" and "fallback" in entry:
        raise ContractError(f"{where}: fallback applies only to day_set = 'calendar' (a published-days average "
                            "leaves a day without a usable fixing out; min_days bounds how few may remain)")
    if day_set == "calendar" and "min_days" in entry:
        raise ContractError(f"{where}: min_days applies only to day_set = 'published' (a calendar average "
                            "fills every day or does not settle)")

    v: dict = {"day_set": day_set}
    v["id"] = _pattern(merged["id"], "id", INDEX_ID, where)
    v["name"] = _text(merged["name"], "name", where)
    v["version"] = _pattern(merged["version"], "version", VERSION, where)
    index_id = merged["index"]
    if index_id not in indices:
        raise ContractError(f"{where}: index {index_id!r} is not an index of pipeline/indices.toml")
    definition = indices[index_id]
    v["index"], kind = index_id, definition.instrument_kind
    v["instrument_kind"] = kind
    quote = merged.get("quote_unit", UNIT_LABEL[kind])
    if quote != UNIT_LABEL[kind]:
        raise ContractError(f"{where}: quote_unit must be the index's unit {UNIT_LABEL[kind]!r}, got {quote!r}")

    unit = merged["contract_unit"]
    if not isinstance(unit, dict) or set(unit) != {"quantity", "unit"}:
        raise ContractError(f"{where}: contract_unit must be a table {{ quantity = 1000, unit = "
                            f"\"{next(iter(CONTRACT_UNITS[kind]))}\" }}")
    v["contract_quantity"] = _whole(unit["quantity"], "contract_unit.quantity", where, 1, 10 ** 15)
    if unit["unit"] not in CONTRACT_UNITS[kind]:
        raise ContractError(f"{where}: contract_unit.unit for a {kind} index must be one of "
                            f"{sorted(CONTRACT_UNITS[kind])}, got {unit['unit']!r}")
    v["contract_quantity_unit"] = unit["unit"]

    v["tick_size"] = _decimal(merged["tick_size"], "tick_size", where, low=Decimal(0), low_open=True,
                              high=Decimal(1000), places=MAX_PLACES)
    v["first_month"] = _month(merged["first_month"], "first_month", where)
    if "last_month" in merged:
        v["last_month"] = _month(merged["last_month"], "last_month", where)
        if v["last_month"] < v["first_month"]:
            raise ContractError(f"{where}: last_month {v['last_month']} is before first_month {v['first_month']}")
    if "months" in merged:
        months = merged["months"]
        if not isinstance(months, list) or not months or len(set(months)) != len(months):
            raise ContractError(f"{where}: months must be a non-empty list of distinct month numbers 1 to 12")
        v["listed_months"] = tuple(sorted(_whole(m, "months", where, 1, 12) for m in months))

    rule, params = _rule(merged.get("last_trading_day", "last_calendar_day"), "last_trading_day",
                         LAST_TRADING_DAY_RULES, where)
    v["last_trading_day"] = rule
    if rule == "days_before_month_end":
        _only(params, {"days"}, "last_trading_day", where)
        v["last_trading_day_days"] = _whole(params.get("days"), "last_trading_day.days", where, 0, 27)
    else:
        _only(params, set(), "last_trading_day", where)

    rule, params = _rule(merged.get("settlement", "average"), "settlement", SETTLEMENT_RULES, where)
    v["settlement_rule"] = rule
    if rule == "average_last_n":
        _only(params, {"n"}, "settlement", where)
        v["settlement_n"] = _whole(params.get("n"), "settlement.n", where, 1, 28)
    else:
        _only(params, set(), "settlement", where)

    statuses = merged.get("counted_statuses", list(COUNTABLE_STATUSES))
    if not isinstance(statuses, list) or not statuses or len(set(statuses)) != len(statuses) \
            or not set(statuses) <= set(COUNTABLE_STATUSES):
        raise ContractError(f"{where}: counted_statuses must be a non-empty list of distinct statuses from "
                            f"{list(COUNTABLE_STATUSES)}, got {statuses!r}")
    v["counted_statuses"] = tuple(s for s in COUNTABLE_STATUSES if s in statuses)

    if day_set == "calendar":
        ladder = merged.get("fallback", [{"rule": "previous_value", "max_days": 3}])
        if not isinstance(ladder, list):
            raise ContractError(f"{where}: fallback must be a list of rungs such as "
                                "[{ rule = \"previous_value\", max_days = 3 }] ([] for none)")
        rungs = []
        for k, rung in enumerate(ladder, start=1):
            name = f"fallback[{k}]"
            if not isinstance(rung, dict):
                raise ContractError(f"{where}: {name} must be a table {{ rule = \"previous_value\", max_days = 3 }}")
            _only({key: val for key, val in rung.items() if key != "rule"}, {"max_days"}, name, where)
            rule = _choice(rung.get("rule"), f"{name}.rule", FALLBACK_RULES, where)
            rungs.append(FallbackRung(rule=rule, max_days=_whole(rung.get("max_days"), f"{name}.max_days",
                                                                 where, 1, 31)))
        v["fallback"] = tuple(rungs)
    else:
        v["fallback"] = ()
        v["min_days"] = _whole(merged.get("min_days", 1), "min_days", where, 1, 31)

    v["rounding"] = _choice(merged.get("rounding", "half_even"), "rounding", tuple(ROUNDING_MODES), where)
    if "rounding_places" in merged:
        v["rounding_places"] = _whole(merged["rounding_places"], "rounding_places", where, 0, MAX_PLACES)

    rule, params = _rule(merged.get("finality", "last_cutoff"), "finality", FINALITY_RULES, where)
    v["finality"] = rule
    if rule == "after_last_trading_day":
        _only(params, {"days", "time_utc"}, "finality", where)
        v["finality_days"] = _whole(params.get("days"), "finality.days", where, 0, 366)
        v["finality_time_utc"] = _clock(params.get("time_utc"), "finality.time_utc", where)
        # Every fixing a settlement reads is of a date up to the last trading day, so its cutoff comes at the
        # latest at the last trading day's cutoff: a finality before that could be moved by a correction.
        after = timedelta(days=v["finality_days"]) + _offset(v["finality_time_utc"])
        cutoff = timedelta(days=definition.cutoff_days) + _offset(definition.cutoff_time_utc)
        if after < cutoff:
            raise ContractError(
                f"{where}: finality ({v['finality_days']} day(s) after the last trading day at "
                f"{v['finality_time_utc']} UTC) comes before the correction cutoff of {index_id} "
                f"({definition.cutoff_days} day(s) after the fixing date at {definition.cutoff_time_utc} UTC)")
    else:
        _only(params, set(), "finality", where)
    return Contract(**v)


def _offset(clock: str) -> timedelta:
    parsed = time.fromisoformat(clock)
    return timedelta(hours=parsed.hour, minutes=parsed.minute)


def _rule(value: object, name: str, allowed: tuple[str, ...], where: str) -> tuple[str, dict]:
    """A rule written as its name, or as a table { rule = "...", parameters... }."""
    if isinstance(value, str):
        return _choice(value, name, allowed, where), {}
    if isinstance(value, dict) and "rule" in value:
        return _choice(value["rule"], f"{name}.rule", allowed, where), {k: v for k, v in value.items() if k != "rule"}
    raise ContractError(f"{where}: {name} must be one of {list(allowed)} or a table {{ rule = ..., ... }}")


def _only(params: dict, allowed: set[str], name: str, where: str) -> None:
    extra = set(params) - allowed
    if extra:
        raise ContractError(f"{where}: {name} has unknown or inapplicable field(s) {sorted(extra)}"
                            + (f"; allowed: {sorted(allowed)}" if allowed else ""))
    missing = allowed - set(params)
    if missing:
        raise ContractError(f"{where}: {name} needs {sorted(missing)}")


def _choice(value: object, name: str, allowed: tuple[str, ...], where: str) -> str:
    if value not in allowed:
        raise ContractError(f"{where}: {name} must be one of {list(allowed)}, got {value!r}")
    return value


def _pattern(value: object, name: str, pattern: re.Pattern, where: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise ContractError(f"{where}: {name} must match {pattern.pattern}, got {value!r}")
    return value


def _text(value: object, name: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ContractError(f"{where}: {name} must be a non-empty text")
    return value


def _month(value: object, name: str, where: str) -> str:
    if not isinstance(value, str) or not MONTH.match(value):
        raise ContractError(f"{where}: {name} must be a month \"YYYY-MM\" (2000 to 2099), got {value!r}")
    return value


# --- the warehouse's record of the specifications used --------------------------------------------------


def register_contract(con: duckdb.DuckDBPyConnection, contract: Contract) -> None:
    """Keep the specification a settlement used; a changed one under an old version number is refused."""
    known = fetch_first(con, sql("select_settlement_contract_hash"),
                        {"contract_id": contract.id, "contract_version": contract.version})
    if known and known[0] != contract.sha256:
        raise ContractError(f"contract {contract.id} version {contract.version} differs from the specification "
                            "already used under that version; bump its version in pipeline/contracts.toml")
    if not known:
        con.execute(sql("insert_settlement_contract"), {
            "contract_id": contract.id, "contract_version": contract.version,
            "definition_json": contract.canonical_json(), "definition_sha256": contract.sha256,
            "first_seen_at": naive_utc(utc_now()),
        })


def contract_from_json(text: str) -> Contract:
    """A specification as stored in settlement_contracts.definition_json."""
    data = json.loads(text)
    data["tick_size"] = Decimal(data["tick_size"])
    data["fallback"] = tuple(FallbackRung(**r) for r in data["fallback"])
    for name in ("listed_months", "counted_statuses"):
        data[name] = tuple(data[name])
    return Contract(**data)


def month_text(month: date | datetime) -> str:
    return f"{month.year:04d}-{month.month:02d}"
