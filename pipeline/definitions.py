"""Index definitions are data (pipeline/indices.toml), validated on load with errors that name the problem."""
from __future__ import annotations

import hashlib
import json
import re
import tomllib
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

from pipeline.catalog import Catalog, default_catalog
from pipeline.paths import DEFINITIONS_FILE
from pipeline.records import CACHED_INPUT, GPU, INPUT, ON_DEMAND, OUTPUT, SPOT, TOKEN

PRICE_TYPES = {GPU: {ON_DEMAND, SPOT}, TOKEN: {INPUT, OUTPUT, CACHED_INPUT}}
UNIT_COLUMN = {GPU: "usd_per_gpu_hour", TOKEN: "usd_per_mtok"}
INDEX_ID = re.compile(r"^[A-Z0-9][A-Z0-9._-]{1,63}$")
FIELDS = {
    "id", "name", "methodology_version", "instrument_kind", "instrument", "price_type", "sources",
    "min_providers", "window_hours", "fixing_time_utc", "decimals",
}


class DefinitionError(ValueError):
    pass


@dataclass(frozen=True)
class IndexDefinition:
    id: str
    name: str
    methodology_version: str
    instrument_kind: str
    instrument: str
    price_type: str
    sources: tuple[str, ...]
    min_providers: int = 3
    window_hours: int = 24
    fixing_time_utc: str = "16:00"
    decimals: int = 4

    @property
    def unit_column(self) -> str:
        return UNIT_COLUMN[self.instrument_kind]

    def fixing_time(self, fixing_date: date) -> datetime:
        return datetime.combine(fixing_date, time.fromisoformat(self.fixing_time_utc), tzinfo=timezone.utc)

    def window(self, fixing_date: date) -> tuple[datetime, datetime]:
        """(start exclusive, end inclusive) in UTC."""
        end = self.fixing_time(fixing_date)
        return end - timedelta(hours=self.window_hours), end

    def canonical_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


def load_definitions(path: Path = DEFINITIONS_FILE, catalog: Catalog | None = None) -> list[IndexDefinition]:
    catalog = catalog or default_catalog()
    try:
        document = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DefinitionError(f"{path}: no such definitions file") from None
    except tomllib.TOMLDecodeError as exc:
        raise DefinitionError(f"{path}: not valid TOML: {exc}") from None
    entries = document.get("index")
    if not isinstance(entries, list) or not entries:
        raise DefinitionError(f"{path}: expected one or more [[index]] tables")
    definitions, seen = [], set()
    for number, entry in enumerate(entries, start=1):
        where = f"{path}: index #{number} ({entry.get('id', 'no id')})"
        definition = _validate(entry, where, catalog)
        if definition.id in seen:
            raise DefinitionError(f"{where}: id {definition.id!r} is defined twice")
        seen.add(definition.id)
        definitions.append(definition)
    return definitions


def _validate(entry: dict, where: str, catalog: Catalog) -> IndexDefinition:
    from pipeline.sources import SOURCES  # the registry of source ids; definitions name sources, never import them

    unknown = set(entry) - FIELDS
    if unknown:
        raise DefinitionError(f"{where}: unknown field(s) {sorted(unknown)}; allowed: {sorted(FIELDS)}")
    missing = {"id", "name", "methodology_version", "instrument_kind", "instrument", "price_type", "sources"} - set(entry)
    if missing:
        raise DefinitionError(f"{where}: missing field(s) {sorted(missing)}")
    if not isinstance(entry["id"], str) or not INDEX_ID.match(entry["id"]):
        raise DefinitionError(f"{where}: id must match {INDEX_ID.pattern}")
    kind = entry["instrument_kind"]
    if kind not in PRICE_TYPES:
        raise DefinitionError(f"{where}: instrument_kind must be one of {sorted(PRICE_TYPES)}")
    if entry["price_type"] not in PRICE_TYPES[kind]:
        raise DefinitionError(f"{where}: price_type for {kind} must be one of {sorted(PRICE_TYPES[kind])}")
    known = catalog.gpus if kind == GPU else catalog.models
    if entry["instrument"] not in known:
        raise DefinitionError(f"{where}: instrument {entry['instrument']!r} is not a canonical {kind} in the catalog")
    sources = entry["sources"]
    if not isinstance(sources, list) or not sources or not all(isinstance(s, str) for s in sources):
        raise DefinitionError(f"{where}: sources must be a non-empty list of source ids")
    for source_id in sources:
        if source_id not in SOURCES:
            raise DefinitionError(f"{where}: unknown source {source_id!r}; known: {sorted(SOURCES)}")
        if SOURCES[source_id].KIND != kind:
            raise DefinitionError(f"{where}: source {source_id!r} gives {SOURCES[source_id].KIND} prices, not {kind}")
    for field, low, high in (("min_providers", 1, 1000), ("window_hours", 1, 24 * 31), ("decimals", 0, 10)):
        value = entry.get(field, IndexDefinition.__dataclass_fields__[field].default)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise DefinitionError(f"{where}: {field} must be a whole number from {low} to {high}")
    fixing_time = entry.get("fixing_time_utc", "16:00")
    try:
        time.fromisoformat(fixing_time)
    except (TypeError, ValueError):
        raise DefinitionError(f"{where}: fixing_time_utc must be HH:MM, got {fixing_time!r}") from None
    return IndexDefinition(**{**entry, "sources": tuple(sources)})
