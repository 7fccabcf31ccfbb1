"""The DuckDB warehouse: migrations, and the one place that writes.

DuckDB lets one process write a database file at a time, so every write goes through a `Warehouse`
connection opened by the flow (or CLI command) that owns the run. SQL lives in sql/*.sql; every value is a
bound parameter.
"""
from __future__ import annotations

import hashlib
import re
from contextlib import contextmanager
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import duckdb

from pipeline.http import utc_now
from pipeline.paths import MIGRATIONS_DIR, SQL_DIR, Warehouse


class MigrationError(Exception):
    pass


class WarehouseError(Exception):
    """The warehouse file cannot be opened or read: locked by a run, not a DuckDB file, or damaged. The
    message names the file and says what to do, in one line."""


BUSY = "being written by another process"


def explain_database_error(db_path: Path, exc: BaseException) -> str:
    """One line for a person from a DuckDB error about the warehouse file."""
    text = " ".join(str(exc).split())
    if "Could not set lock" in text or "Conflicting lock" in text:
        return f"the warehouse {db_path} is {BUSY} (a collection or fixing run); try again when it ends"
    if "not a valid DuckDB database" in text or "Corrupt" in text or "checksum" in text.lower():
        return f"the warehouse {db_path} is not a readable DuckDB database (damaged or another file): {text[:200]}"
    return f"the warehouse {db_path} cannot be read: {text[:300]}"


@lru_cache(maxsize=None)
def sql(name: str) -> str:
    """The text of sql/<name>.sql."""
    return (SQL_DIR / f"{name}.sql").read_text(encoding="utf-8")


def naive_utc(moment: datetime) -> datetime:
    """TIMESTAMP columns hold UTC without a zone; refuse local times rather than guess."""
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no time zone; pass an aware UTC datetime")
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


# The writer attaches the file under the name a plain duckdb.connect of tsi.duckdb gives it (views and readers
# see one catalog name), with row groups of ROW_GROUP_ROWS rows instead of DuckDB's 122,880. Rows appended in one
# transaction are then written to the file as compressed row groups each time one fills (DuckDB's optimistic
# write) instead of going through the WAL and a later checkpoint, which wrote each row twice: a 100,000-row
# snapshot's commit took 0.26-0.41 s (a 48 MB WAL, or the checkpoint it set off), and 0.06 s this way. Smaller
# row groups also give finer zone maps on observed_at, which the per-snapshot statements filter on. The size is
# a setting of the attach, not of the file: a file written either way reads the same.
CATALOG = "tsi"
ROW_GROUP_ROWS = 16_384


def cursor(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A second connection to the database `con` is on (for another thread): a DuckDB cursor starts on the
    database its connection was opened on, which for the writer is the in-memory one it attached the file to."""
    [(database,)] = con.execute("select current_database()").fetchall()
    other = con.cursor()
    other.execute("use " + '"' + database.replace('"', '""') + '"')  # an identifier: USE takes no parameter
    return other


def connect(warehouse: Warehouse, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    if read_only:
        if not warehouse.db_path.exists():
            raise FileNotFoundError(f"no warehouse at {warehouse.db_path}; run `tsi demo` or a collection first")
        try:
            return duckdb.connect(str(warehouse.db_path), read_only=True)
        except duckdb.Error as exc:
            raise WarehouseError(explain_database_error(warehouse.db_path, exc)) from None
    warehouse.ensure()
    # Spills go where DuckDB puts them for a database file (beside it), not in an in-memory database's ".tmp" of
    # whatever directory the command was run from.
    con = duckdb.connect(config={"temp_directory": f"{warehouse.db_path}.tmp"})
    try:
        con.execute(f"attach ? as {CATALOG} (row_group_size ?)", [str(warehouse.db_path), ROW_GROUP_ROWS])
        con.execute(f"use {CATALOG}")
    except duckdb.Error as exc:
        con.close()
        raise WarehouseError(explain_database_error(warehouse.db_path, exc)) from None
    try:
        migrate(con)
    except BaseException:
        con.close()
        raise
    return con


# Statements that fill what a migration adds from the rows already there, run in the migration's
# transaction: a warehouse loaded before migration 007 gets the digests of all its observations. The
# statement runs with the latest migration its columns need (009 added valid_until to the digests); on a
# warehouse that already has its digests it adds nothing.
BACKFILLS = {"009_imported_history.sql": "insert_observation_digests"}


def migrate(con: duckdb.DuckDBPyConnection, folder: Path = MIGRATIONS_DIR) -> list[int]:
    """Apply the numbered migrations not applied yet; each in its own transaction. Returns those applied."""
    con.execute(
        "create table if not exists schema_migrations ("
        " version integer primary key, name varchar not null, sha256 varchar not null, applied_at timestamp not null)"
    )
    applied = {v: s for v, s in con.execute("select version, sha256 from schema_migrations").fetchall()}
    done = []
    for path in sorted(folder.glob("[0-9][0-9][0-9]_*.sql")):
        version = int(path.name[:3])
        text = path.read_text(encoding="utf-8")
        digest = hashlib.sha256(text.encode()).hexdigest()
        if version in applied:
            if applied[version] != digest:
                raise MigrationError(
                    f"migration {path.name} changed after it was applied; add a new migration instead"
                )
            continue
        con.execute("begin transaction")
        try:
            con.execute(text)
            if path.name in BACKFILLS:
                con.execute(sql(BACKFILLS[path.name]), {"snapshot_id": None, "observed_at": None})
            con.execute(
                "insert into schema_migrations values ($version, $name, $sha256, $applied_at)",
                {"version": version, "name": path.name, "sha256": digest, "applied_at": naive_utc(utc_now())},
            )
            con.execute("commit")
        except Exception:
            con.execute("rollback")
            raise
        done.append(version)
    _create_views(con, folder.parent / "views", after_migrations=bool(done))
    return done


# A view file holds one statement that creates, or replaces, the view or table macro of its own name.
VIEW_STATEMENT = re.compile(r"\s*create\s+or\s+replace\s+(view|macro)\s+(\w+)\b", re.IGNORECASE)


def _create_views(con: duckdb.DuckDBPyConnection, folder: Path, *, after_migrations: bool) -> list[str]:
    """(Re)create the views and table macros of folder (sql/views/*.sql, one per file, named by it) after the
    numbered migrations, all in one transaction. A view is derived from the tables, so it is not numbered:
    editing its file changes it. Each one carries the sha256 of the whole folder as its comment, so that a
    connection replaces them only when a file changed or a migration was just applied (a view is bound to the
    columns it saw), not on every open. A folder of migrations without views beside it (a test's) creates
    none. Returns the names (re)created."""
    statements = []
    folder_digest = hashlib.sha256()
    for path in sorted(folder.glob("*.sql")) if folder.is_dir() else []:
        text = path.read_text(encoding="utf-8")
        code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("--"))
        match = VIEW_STATEMENT.match(code)
        if match is None or match.group(2) != path.stem:
            raise MigrationError(
                f"view file {path.name} must hold one `create or replace view|macro {path.stem}` statement"
            )
        statements.append((path, match.group(1).lower(), text))
        folder_digest.update(f"{path.name}\n{len(text)}\n{text}".encode())
    if not statements:
        return []
    comment = "sha256 " + folder_digest.hexdigest()
    views = [path.stem for path, kind, _ in statements if kind == "view"]
    # duckdb_views() answers in a millisecond; duckdb_functions() lists every built-in function (15 ms), so
    # the macros are trusted to be as current as the views created with them.
    current = dict(con.execute(
        "select view_name, comment from duckdb_views()"
        " where database_name = current_database() and not internal and list_contains($names, view_name)",
        {"names": views},
    ).fetchall()) if views else {}
    if views and not after_migrations and all(current.get(name) == comment for name in views):
        return []
    con.execute("begin transaction")
    try:
        for path, kind, text in statements:
            try:
                con.execute(text)
            except duckdb.Error as exc:
                detail = " ".join(str(exc).split())[:300]
                raise MigrationError(f"view file {path.name} does not apply: {detail}") from None
            # COMMENT takes no bound parameter: the name matched \w+ and the comment is a hex digest
            con.execute(f"comment on {'view' if kind == 'view' else 'macro table'} {path.stem} is '{comment}'")
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return [path.stem for path, _, _ in statements]


def fetch_first(con: duckdb.DuckDBPyConnection, query: str, params: dict | None = None) -> tuple | None:
    """The first row or None. Reads the whole result: DuckDB refuses new work on a connection that still
    has an unfinished result, which `fetchone` would leave behind."""
    rows = con.execute(query, params or {}).fetchall()
    return rows[0] if rows else None


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection):
    con.execute("begin transaction")
    try:
        yield con
    except BaseException:
        con.execute("rollback")
        raise
    else:
        con.execute("commit")


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, **tables):
    """Arrow tables visible to the block's SQL under these names, unregistered after it even when it fails (a
    registered table keeps its name taken on the connection, and its memory alive, until it is unregistered)."""
    names = []
    try:
        for name, table in tables.items():
            con.register(name, table)
            names.append(name)
        yield con
    finally:
        for name in names:
            con.unregister(name)
