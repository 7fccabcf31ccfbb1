"""Index definitions are data (pipeline/indices.toml), validated on load with errors that name the field.

Two kinds of definition:

- `[[index]]` (IndexDefinition): one instrument (or a list of them), one price type, optional segment and
  source filters, and every number of the methodology (README "Methodology"): window, fallback ladder,
  provider-value rule, vote floor, outlier screen, estimator, dispersion, cutoff, precision.
- `[[basket]]` (BasketDefinition): the equal-weight mean of member indices of one kind and price type.

A `[defaults]` table sets parameters for every index and basket of the file; an entry's own value wins.
Numbers are read as Decimal straight from the TOML text (tomllib's parse_float), never through a float.

A definition is identified by (id, methodology_version) and its sha256 over canonical JSON of every resolved
parameter, defaults included: pipeline.fixing.register_definitions refuses a changed definition that kept
its version number.
"""
from __future__ import annotations

import functools
import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal, InvalidOperation
from pathlib import Path

from pipeline.catalog import Catalog, default_catalog
from pipeline.paths import DEFINITIONS_FILE
from pipeline.records import CACHED_INPUT, GPU, INPUT, ON_DEMAND, OUTPUT, SPOT, TOKEN

BLENDED = "blended"  # a token price type computed per provider from its input and output legs
RESERVED_1M, RESERVED_1Y, RESERVED_3Y = "reserved_1m", "reserved_1y", "reserved_3y"
PRICE_TYPES = {
    GPU: {ON_DEMAND, SPOT, RESERVED_1M, RESERVED_1Y, RESERVED_3Y},
    TOKEN: {INPUT, OUTPUT, CACHED_INPUT, BLENDED},
}
# Token price types some sources add: batch-API prices and long-context tiers (input_batch, output_above_200k).
TOKEN_VARIANT = re.compile(r"^(input|output|cached_input)(_batch|_above_[0-9]+k)$")
UNIT_COLUMN = {GPU: "usd_per_gpu_hour", TOKEN: "usd_per_mtok"}
UNIT_LABEL = {GPU: "USD/GPU-hour", TOKEN: "USD/Mtok"}
INDEX_ID = re.compile(r"^[A-Z0-9][A-Z0-9._-]{1,63}$")
VERSION = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]{0,31}$")

ESTIMATORS = ("median", "mean", "trimmed_mean", "capped_weight_median")
PROVIDER_VALUE_RULES = ("median_of_rows", "median_of_region_medians")
MARKETPLACE_RULES = ("gpu_weighted_median", "as_other_providers")
OUTLIER_SCREENS = ("modified_z", "none")
DISPERSION_BASES = ("provider_values", "observations")
QUANTILE_METHODS = ("hyndman_fan_7", "hyndman_fan_6", "hyndman_fan_1")
# Places a value may be rounded to. The warehouse keeps fixings as DECIMAL(20, 4): a definition asking for
# more (to reproduce a third party's index that publishes more places, with tsi fix --observations) is
# refused when fixings are written (pipeline.fixing.register_definitions).
MAX_DECIMALS = 10
WAREHOUSE_DECIMALS = 4
MAX_WINDOW_HOURS = 24 * 31
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
PARAMETER_PLACES = 6
# Blend shares stay within 8 places so that a blended provider value (a median of medians, 12 places, times a
# share) is exact in the DECIMAL(38, 20) the fixing keeps.
BLEND_SHARE_PLACES = 8


class DefinitionError(ValueError):
    pass


@dataclass(frozen=True, kw_only=True)
class _Common:
    """What every definition has: identity, fixing time, precision, revision policy."""

    id: str
    name: str
    methodology_version: str
    instrument_kind: str
    price_type: str
    fixing_time_utc: str = "16:00"
    decimals: int = 4
    quantile_method: str = "hyndman_fan_7"
    # Corrections: before fixing_date + cutoff_days at cutoff_time_utc, a recomputation that moves the value
    # by more than revision_threshold (a fraction: 0.001 = 0.1%) is written as the next revision.
    cutoff_days: int = 1
    cutoff_time_utc: str = "12:00"
    revision_threshold: Decimal = Decimal("0.001")

    @property
    def unit_column(self) -> str:
        return UNIT_COLUMN[self.instrument_kind]

    @property
    def unit_label(self) -> str:
        return UNIT_LABEL[self.instrument_kind]

    def fixing_time(self, fixing_date: date) -> datetime:
        return datetime.combine(fixing_date, time.fromisoformat(self.fixing_time_utc), tzinfo=timezone.utc)

    def cutoff(self, fixing_date: date) -> datetime:
        """After this moment the fixing of `fixing_date` never changes."""
        day = fixing_date + timedelta(days=self.cutoff_days)
        return datetime.combine(day, time.fromisoformat(self.cutoff_time_utc), tzinfo=timezone.utc)

    def canonical_json(self) -> str:
        return json.dumps(_to_json(self), sort_keys=True, separators=(",", ":"))

    @functools.cached_property
    def sha256(self) -> str:
        # Cached: a backfill writes tens of thousands of fixings of a few definitions (frozen, so it cannot go
        # stale; dataclasses.replace makes a new definition with its own).
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


@dataclass(frozen=True, kw_only=True)
class IndexDefinition(_Common):
    instruments: tuple[str, ...]
    sources: tuple[str, ...] | None = None  # None: any source
    segments: tuple[str, ...] | None = None  # None: any segment (a provider without one included)
    # Blended token price: shares of the input and output legs (3 : 1 -> 0.75 and 0.25); blended only.
    blend_input: Decimal | None = None
    blend_output: Decimal | None = None
    provider_value: str = "median_of_rows"
    marketplace_value: str = "gpu_weighted_median"
    min_distinct_prices: int = 1  # the vote floor: fewer distinct prices than this and the provider has no vote
    outlier_screen: str = "modified_z"
    outlier_threshold: Decimal = Decimal("3.5")
    outlier_min_providers: int = 4
    estimator: str = "median"
    trim_fraction: Decimal | None = None  # trimmed_mean only: the share cut from each end
    weight_cap: Decimal | None = None  # capped_weight_median only: the largest share one provider may have
    mean_from_providers: int = 0  # median estimator: the mean instead from this many providers on (0: never)
    min_providers: int = 3
    dispersion_basis: str = "provider_values"
    window_hours: int = 24
    fallback_window_hours: tuple[int, ...] = (72, 168)
    carry_days: int = 3

    is_basket = False

    @property
    def instrument(self) -> str:
        return ",".join(self.instruments)

    @property
    def leg_price_types(self) -> tuple[str, ...]:
        """The observed price types the index reads: both legs for a blended price."""
        return (INPUT, OUTPUT) if self.price_type == BLENDED else (self.price_type,)

    @property
    def rung_window_hours(self) -> tuple[int, ...]:
        """The window of each rung of the fallback ladder, the fixing's own window first."""
        return (self.window_hours, *self.fallback_window_hours)

    def window(self, fixing_date: date, hours: int | None = None) -> tuple[datetime, datetime]:
        """(start exclusive, end inclusive) in UTC."""
        end = self.fixing_time(fixing_date)
        return end - timedelta(hours=hours or self.window_hours), end


@dataclass(frozen=True, kw_only=True)
class BasketDefinition(_Common):
    members: tuple[str, ...]
    min_members: int = 0  # 0: every member must have a value
    window_hours: int = 24  # for the record only: a basket reads its members' fixings, not observations

    is_basket = True

    @property
    def required_members(self) -> int:
        return self.min_members or len(self.members)

    @property
    def instrument(self) -> str:
        return "basket"

    def window(self, fixing_date: date, hours: int | None = None) -> tuple[datetime, datetime]:
        end = self.fixing_time(fixing_date)
        return end - timedelta(hours=hours or self.window_hours), end


Definition = IndexDefinition | BasketDefinition


def _to_json(definition: _Common) -> dict:
    out: dict = {"definition_type": "basket" if definition.is_basket else "index"}
    for f in fields(definition):
        value = getattr(definition, f.name)
        if isinstance(value, Decimal):
            value = format(value.normalize(), "f")
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def definition_from_json(text: str) -> Definition:
    """The definition stored in index_definitions.definition_json, as it was (tsi verify recomputes with it)."""
    data = json.loads(text)
    if "instruments" not in data and "instrument" in data and "members" not in data:
        return _legacy_definition(data)
    kind = data.pop("definition_type", "index")
    cls = BasketDefinition if kind == "basket" else IndexDefinition
    decimals = {f.name for f in fields(cls) if "Decimal" in str(f.type)}
    tuples = {f.name for f in fields(cls) if "tuple" in str(f.type)}
    values = {}
    for f in fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        if f.name in decimals and value is not None:
            value = Decimal(value)
        elif f.name in tuples and value is not None:
            value = tuple(value)
        values[f.name] = value
    return cls(**values)


def _legacy_definition(data: dict) -> IndexDefinition:
    """Methodology 1.0 (before the outlier screen and the fallback ladder): median of provider values of the
    24-hour window, or suppressed."""
    return IndexDefinition(
        id=data["id"], name=data["name"], methodology_version=data["methodology_version"],
        instrument_kind=data["instrument_kind"], instruments=(data["instrument"],), price_type=data["price_type"],
        sources=tuple(data["sources"]), min_providers=data.get("min_providers", 3),
        window_hours=data.get("window_hours", 24), fixing_time_utc=data.get("fixing_time_utc", "16:00"),
        decimals=data.get("decimals", 4), outlier_screen="none", fallback_window_hours=(), carry_days=0,
    )


# --- loading and validation -----------------------------------------------------------------------------

INDEX_REQUIRED = ("id", "name", "methodology_version", "instrument_kind", "price_type")
BASKET_REQUIRED = ("id", "name", "methodology_version", "members")
# Parameters that only mean something with a given choice: set elsewhere they are an error (a typo or a
# misunderstanding), except when they come from [defaults].
CONDITIONAL = {
    "trim_fraction": ("estimator", "trimmed_mean"),
    "weight_cap": ("estimator", "capped_weight_median"),
    "blend": ("price_type", BLENDED),
}
INDEX_KEYS = {f.name for f in fields(IndexDefinition)} - {"instruments", "blend_input", "blend_output"} | {
    "instrument", "instruments", "segment", "segments", "blend"
}
BASKET_KEYS = {f.name for f in fields(BasketDefinition)} - {"instrument_kind", "price_type"}
DEFAULT_KEYS = (INDEX_KEYS | BASKET_KEYS) - {"id", "name", "instrument", "instruments", "members", "price_type",
                                            "instrument_kind"}


def read_toml_document(path: Path, tables: tuple[str, ...], default_keys: set[str], what: str, per: str,
                       error: type[Exception]) -> tuple[dict, dict]:
    """(the document, its [defaults]) of a TOML file of definitions or contracts: numbers read as decimals,
    never floats; a top-level key other than [defaults] and `tables`, or a [defaults] field not in
    `default_keys`, is refused with `error` naming the file."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: no such {what} file") from None
    try:
        document = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{path}: not valid TOML: {exc}") from None
    unknown = set(document) - {"defaults", *tables}
    if unknown:
        raise error(f"{path}: unknown top-level key(s) {sorted(unknown)}; allowed: {', '.join(('defaults', *tables))}")
    defaults = document.get("defaults", {})
    if not isinstance(defaults, dict):
        raise error(f"{path}: [defaults] must be a table")
    bad = set(defaults) - default_keys
    if bad:
        raise error(f"{path}: [defaults] has unknown or {per} field(s) {sorted(bad)}")
    return document, defaults


def load_definitions(
    path: Path = DEFINITIONS_FILE, catalog: Catalog | None = None, *, strict: bool = True
) -> list[Definition]:
    """Every definition of the file, indices first, each validated.

    strict (the warehouse's own definitions): instruments must be canonical ids of the catalog and sources
    registered source ids. `tsi fix --observations` loads with strict=False: its observations come from a
    CSV file, so any instrument and source name is allowed there.
    """
    document, defaults = read_toml_document(path, ("index", "basket"), DEFAULT_KEYS, "definitions", "per-index",
                                            DefinitionError)
    entries = document.get("index", [])
    baskets = document.get("basket", [])
    if not isinstance(entries, list) or not isinstance(baskets, list) or not (entries or baskets):
        raise DefinitionError(f"{path}: expected one or more [[index]] (or [[basket]]) tables")
    catalog = catalog or (default_catalog() if strict else None)
    definitions: list[Definition] = []
    seen: set[str] = set()
    for number, entry in enumerate(entries, start=1):
        where = f"{path}: index #{number} ({entry.get('id', 'no id') if isinstance(entry, dict) else '?'})"
        definition = validate_index(entry, defaults, where, catalog if strict else None, strict=strict)
        if definition.id in seen:
            raise DefinitionError(f"{where}: id {definition.id!r} is defined twice")
        seen.add(definition.id)
        definitions.append(definition)
    by_id = {d.id: d for d in definitions}
    for number, entry in enumerate(baskets, start=1):
        where = f"{path}: basket #{number} ({entry.get('id', 'no id') if isinstance(entry, dict) else '?'})"
        basket = validate_basket(entry, defaults, where, by_id)
        if basket.id in seen:
            raise DefinitionError(f"{where}: id {basket.id!r} is defined twice")
        seen.add(basket.id)
        definitions.append(basket)
    return definitions


def validate_index(entry: dict, defaults: dict, where: str, catalog: Catalog | None, *, strict: bool = True
                   ) -> IndexDefinition:
    if not isinstance(entry, dict):
        raise DefinitionError(f"{where}: must be a table")
    unknown = set(entry) - INDEX_KEYS
    if unknown:
        raise DefinitionError(f"{where}: unknown field(s) {sorted(unknown)}; allowed: {sorted(INDEX_KEYS)}")
    missing = [k for k in INDEX_REQUIRED if k not in entry and k not in defaults]
    if "instrument" not in entry and "instruments" not in entry:
        missing.append("instrument")
    if missing:
        raise DefinitionError(f"{where}: missing field(s) {sorted(missing)}")
    if "instrument" in entry and "instruments" in entry:
        raise DefinitionError(f"{where}: give instrument or instruments, not both")
    for key, (switch, needed) in CONDITIONAL.items():
        chosen = entry.get(switch, defaults.get(switch))
        if key in entry and chosen != needed:
            raise DefinitionError(f"{where}: {key} applies only to {switch} = {needed!r}")
    merged = {k: v for k, v in defaults.items() if k in INDEX_KEYS}
    merged.update(entry)
    for key, (switch, needed) in CONDITIONAL.items():
        if merged.get(switch) != needed:
            merged.pop(key, None)  # from [defaults], meaningless for this index

    values: dict = {}
    values["id"] = _index_id(merged["id"], where)
    values["name"] = _text(merged["name"], "name", where)
    values["methodology_version"] = _version(merged["methodology_version"], where)
    kind = merged["instrument_kind"]
    if kind not in PRICE_TYPES:
        raise DefinitionError(f"{where}: instrument_kind must be one of {sorted(PRICE_TYPES)}, got {kind!r}")
    values["instrument_kind"] = kind
    price_type = merged["price_type"]
    if price_type not in PRICE_TYPES[kind] and not is_price_type(kind, price_type):
        raise DefinitionError(f"{where}: price_type for {kind} must be one of {sorted(PRICE_TYPES[kind])}, got {price_type!r}")
    values["price_type"] = price_type
    instruments = _names(merged.get("instruments", merged.get("instrument")), "instrument", where)
    if catalog is not None:
        known = catalog.gpus if kind == GPU else catalog.models
        for instrument in instruments:
            if instrument not in known:
                raise DefinitionError(f"{where}: instrument {instrument!r} is not a canonical {kind} in the catalog")
    values["instruments"] = instruments

    if "sources" in merged:
        sources = _names(merged["sources"], "sources", where)
        if strict:
            from pipeline.sources import SOURCES  # the registry of ids; definitions name sources, never import them

            for source_id in sources:
                if source_id not in SOURCES:
                    raise DefinitionError(f"{where}: unknown source {source_id!r}; known: {sorted(SOURCES)}")
                if SOURCES[source_id].KIND != kind:
                    raise DefinitionError(
                        f"{where}: source {source_id!r} gives {SOURCES[source_id].KIND} prices, not {kind}"
                    )
        values["sources"] = sources
    if "segment" in merged and "segments" in merged:
        raise DefinitionError(f"{where}: give segment or segments, not both")
    if "segment" in merged or "segments" in merged:
        values["segments"] = _names(merged.get("segments", merged.get("segment")), "segment", where)

    if price_type == BLENDED:
        values["blend_input"], values["blend_output"] = _blend(merged.get("blend", {"input": 3, "output": 1}), where)

    values["provider_value"] = _choice(merged, "provider_value", PROVIDER_VALUE_RULES, where)
    values["marketplace_value"] = _choice(merged, "marketplace_value", MARKETPLACE_RULES, where)
    values["outlier_screen"] = _choice(merged, "outlier_screen", OUTLIER_SCREENS, where)
    values["estimator"] = _choice(merged, "estimator", ESTIMATORS, where)
    values["dispersion_basis"] = _choice(merged, "dispersion_basis", DISPERSION_BASES, where)
    values["quantile_method"] = _choice(merged, "quantile_method", QUANTILE_METHODS, where)
    if values.get("dispersion_basis") == "observations" and price_type == BLENDED:
        raise DefinitionError(f"{where}: dispersion_basis 'observations' has no meaning for a blended price "
                              "(no observation is blended); use 'provider_values'")
    if values.get("estimator") == "trimmed_mean":
        values["trim_fraction"] = _decimal(merged.get("trim_fraction", Decimal("0.1")), "trim_fraction", where,
                                           low=Decimal(0), high=Decimal("0.5"), high_open=True)
    if values.get("estimator") == "capped_weight_median":
        values["weight_cap"] = _decimal(merged.get("weight_cap", Decimal("0.25")), "weight_cap", where,
                                        low=Decimal(0), high=Decimal(1), low_open=True)

    for name, low, high in (
        ("min_providers", 1, 1000), ("window_hours", 1, MAX_WINDOW_HOURS), ("decimals", 0, MAX_DECIMALS),
        ("min_distinct_prices", 1, 1000), ("outlier_min_providers", 3, 1000), ("mean_from_providers", 0, 1000),
        ("carry_days", 0, 31), ("cutoff_days", 0, 366),
    ):
        if name in merged:
            values[name] = _whole(merged[name], name, where, low, high)
    if "outlier_threshold" in merged:
        values["outlier_threshold"] = _decimal(merged["outlier_threshold"], "outlier_threshold", where,
                                               low=Decimal(0), low_open=True)
    if "revision_threshold" in merged:
        values["revision_threshold"] = _decimal(merged["revision_threshold"], "revision_threshold", where,
                                                low=Decimal(0), high=Decimal(1))
    if "fallback_window_hours" in merged:
        ladder = merged["fallback_window_hours"]
        if not isinstance(ladder, list):
            raise DefinitionError(f"{where}: fallback_window_hours must be a list of whole numbers of hours")
        ladder = tuple(_whole(h, "fallback_window_hours", where, 1, MAX_WINDOW_HOURS) for h in ladder)
        values["fallback_window_hours"] = ladder
    window = values.get("window_hours", 24)
    rungs = (window, *values.get("fallback_window_hours", (72, 168)))
    if any(b <= a for a, b in zip(rungs, rungs[1:])):
        raise DefinitionError(f"{where}: fallback_window_hours must widen the window: each longer than the one "
                              f"before (window_hours {window}, ladder {list(rungs[1:])})")
    for name in ("fixing_time_utc", "cutoff_time_utc"):
        if name in merged:
            values[name] = _clock(merged[name], name, where)
    return IndexDefinition(**values)


def validate_basket(entry: dict, defaults: dict, where: str, indices: dict[str, Definition]) -> BasketDefinition:
    if not isinstance(entry, dict):
        raise DefinitionError(f"{where}: must be a table")
    unknown = set(entry) - BASKET_KEYS
    if unknown:
        raise DefinitionError(f"{where}: unknown field(s) {sorted(unknown)}; allowed: {sorted(BASKET_KEYS)}")
    missing = [k for k in BASKET_REQUIRED if k not in entry and k not in defaults]
    if missing:
        raise DefinitionError(f"{where}: missing field(s) {sorted(missing)}")
    merged = {k: v for k, v in defaults.items() if k in BASKET_KEYS}
    merged.update(entry)
    members = _names(merged["members"], "members", where)
    if len(set(members)) != len(members):
        raise DefinitionError(f"{where}: members repeat an index")
    for member in members:
        if member not in indices:
            raise DefinitionError(f"{where}: member {member!r} is not an [[index]] of this file (baskets of baskets "
                                  "are not allowed)")
    kinds = {(indices[m].instrument_kind, indices[m].price_type) for m in members}
    if len(kinds) != 1:
        raise DefinitionError(f"{where}: members must share one instrument kind and price type, got {sorted(kinds)}")
    kind, price_type = kinds.pop()
    values: dict = {
        "id": _index_id(merged["id"], where),
        "name": _text(merged["name"], "name", where),
        "methodology_version": _version(merged["methodology_version"], where),
        "members": members,
        "instrument_kind": kind,
        "price_type": price_type,
    }
    values["min_members"] = _whole(merged.get("min_members", 0), "min_members", where, 0, len(members))
    for name, low, high in (("decimals", 0, MAX_DECIMALS), ("cutoff_days", 0, 366), ("window_hours", 1, MAX_WINDOW_HOURS)):
        if name in merged:
            values[name] = _whole(merged[name], name, where, low, high)
    if "quantile_method" in merged:
        values["quantile_method"] = _choice(merged, "quantile_method", QUANTILE_METHODS, where)
    if "revision_threshold" in merged:
        values["revision_threshold"] = _decimal(merged["revision_threshold"], "revision_threshold", where,
                                                low=Decimal(0), high=Decimal(1))
    for name in ("fixing_time_utc", "cutoff_time_utc"):
        if name in merged:
            values[name] = _clock(merged[name], name, where)
    return BasketDefinition(**values)


def is_price_type(kind: str, price_type: object) -> bool:
    """An observed price type of the kind (blended is computed, never observed)."""
    if not isinstance(price_type, str) or price_type == BLENDED:
        return False
    return price_type in PRICE_TYPES[kind] or (kind == TOKEN and bool(TOKEN_VARIANT.match(price_type)))


def _index_id(value: object, where: str) -> str:
    if not isinstance(value, str) or not INDEX_ID.match(value):
        raise DefinitionError(f"{where}: id must match {INDEX_ID.pattern}")
    return value


def _version(value: object, where: str) -> str:
    if not isinstance(value, str) or not VERSION.match(value):
        raise DefinitionError(f"{where}: methodology_version must be a short text such as \"2.0\", got {value!r}")
    return value


def _text(value: object, name: str, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise DefinitionError(f"{where}: {name} must be a non-empty text")
    return value


def _names(value: object, name: str, where: str) -> tuple[str, ...]:
    """One name or a non-empty list of names, as a tuple."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(s, str) and s.strip() for s in items):
        raise DefinitionError(f"{where}: {name} must be a name or a non-empty list of names")
    return tuple(items)


def _choice(merged: dict, name: str, allowed: tuple[str, ...], where: str) -> str:
    value = merged.get(name, allowed[0])
    if value not in allowed:
        raise DefinitionError(f"{where}: {name} must be one of {list(allowed)}, got {value!r}")
    return value


def _whole(value: object, name: str, where: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise DefinitionError(f"{where}: {name} must be a whole number from {low} to {high}, got {value!r}")
    return value


def _decimal(value: object, name: str, where: str, *, low: Decimal | None = None, high: Decimal | None = None,
             low_open: bool = False, high_open: bool = False, places: int = PARAMETER_PLACES) -> Decimal:
    """A TOML number (read as Decimal) or a numeric string, inside its bounds, with at most `places` decimals
    (the fixing SQL carries parameters as DECIMAL(12, 6): more places would be rounded silently there)."""
    if isinstance(value, bool):
        raise DefinitionError(f"{where}: {name} must be a number, got {value!r}")
    try:
        number = Decimal(value) if isinstance(value, (int, str)) else value
    except InvalidOperation:
        raise DefinitionError(f"{where}: {name} must be a number, got {value!r}") from None
    if not isinstance(number, Decimal) or not number.is_finite():
        raise DefinitionError(f"{where}: {name} must be a number, got {value!r}")
    below = low is not None and (number <= low if low_open else number < low)
    above = high is not None and (number >= high if high_open else number > high)
    if below or above:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        raise DefinitionError(f"{where}: {name} must lie in {left}{low if low is not None else '-inf'}, "
                              f"{high if high is not None else 'inf'}{right}, got {value}")
    try:
        too_fine = number != number.quantize(Decimal(1).scaleb(-places))
    except InvalidOperation:  # more digits than Decimal's context holds: far out of any sensible range
        too_fine = True
    if too_fine:
        raise DefinitionError(f"{where}: {name} may have at most {places} decimal places, got {value}")
    return number


def _clock(value: object, name: str, where: str) -> str:
    try:
        parsed = time.fromisoformat(value)
    except (TypeError, ValueError):
        raise DefinitionError(f"{where}: {name} must be HH:MM, got {value!r}") from None
    if parsed.tzinfo is not None:
        raise DefinitionError(f"{where}: {name} is UTC; give it without a zone, got {value!r}")
    if parsed.second or parsed.microsecond:
        raise DefinitionError(f"{where}: {name} is a whole minute (HH:MM), got {value!r}")
    return value


def _blend(value: object, where: str) -> tuple[Decimal, Decimal]:
    """Blend weights {input = a, output = b} as exact shares a/(a+b), b/(a+b).

    The shares must be exact decimals (the denominator a power of 2 times a power of 5, e.g. 3:1 -> 0.75 and
    0.25), so that every blended provider value is exact; 2:1 would need 0.666... and is refused.
    """
    if not isinstance(value, dict) or set(value) != {"input", "output"}:
        raise DefinitionError(f"{where}: blend must be a table {{ input = 3, output = 1 }}")
    weights = [_decimal(value[k], f"blend.{k}", where, low=Decimal(0)) for k in ("input", "output")]
    total = sum(weights)
    if total == 0:
        raise DefinitionError(f"{where}: blend weights must not both be 0")
    shares = []
    for weight in weights:
        share = weight / total
        if share != share.quantize(Decimal(1).scaleb(-BLEND_SHARE_PLACES)) or share * total != weight:
            raise DefinitionError(
                f"{where}: blend {value['input']}:{value['output']} gives shares that are not exact decimals; "
                f"choose weights whose shares terminate within {BLEND_SHARE_PLACES} places (e.g. 3:1, 1:1, 1:4)"
            )
        shares.append(share.normalize())
    return shares[0], shares[1]
