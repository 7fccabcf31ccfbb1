"""Where things live: the project's own files and the warehouse (runtime data)."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = PROJECT_ROOT / "sql"
MIGRATIONS_DIR = SQL_DIR / "migrations"
CATALOG_DIR = Path(__file__).resolve().parent / "catalog"
DEFINITIONS_FILE = Path(__file__).resolve().parent / "indices.toml"
DEMO_FIXTURES_DIR = PROJECT_ROOT / "tests" / "fixtures" / "demo"

WAREHOUSE_ENV = "TSI_WAREHOUSE"


@dataclass(frozen=True)
class Warehouse:
    """The runtime data folder: DuckDB file, raw store and published files."""

    root: Path

    @classmethod
    def locate(cls, explicit: str | os.PathLike | None = None) -> "Warehouse":
        """`explicit` (a --warehouse option) wins, then $TSI_WAREHOUSE, then ./warehouse."""
        chosen = explicit or os.environ.get(WAREHOUSE_ENV) or "warehouse"
        return cls(Path(chosen).expanduser().resolve())

    @property
    def db_path(self) -> Path:
        return self.root / "tsi.duckdb"

    @property
    def raw_dir(self) -> Path:
        return self.root / "raw"

    @property
    def published_dir(self) -> Path:
        return self.root / "published" / "v1"

    def ensure(self) -> "Warehouse":
        for folder in (self.root, self.raw_dir, self.published_dir):
            folder.mkdir(parents=True, exist_ok=True)
        return self
