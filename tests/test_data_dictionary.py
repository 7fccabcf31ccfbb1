"""README "Data dictionary": every column of every table, view and table macro of a freshly migrated
warehouse, and of every published file, is documented there with its type, and nothing documented there is
gone.

The README's format, parsed here: under `## Data dictionary`, one heading per object,
`` ### `name` (table) ``, `` ### `name` (view) `` or `` ### `name(param, ...)` (table macro) ``, followed by a
markdown table `| column | type | unit | meaning |` whose first two cells are in backticks; the type is DuckDB's
(`information_schema.columns.data_type`, or `DESCRIBE` for a macro's result). Published files sit under
`### Published files`, one `` #### `path` `` each, with the same table; their columns, in order, must be the
code's constant that writes them (PUBLISHED_FILES below: a new published file adds its line there).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from pipeline import history, publish, settlement
from pipeline.paths import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"

# Published file (its heading under "### Published files") -> the column constant of the code writing it.
PUBLISHED_FILES = {
    "fixings/fixings_<date>.csv": publish.HEADER,
    "history/fixings_gpu.csv": history.family_header("gpu"),
    "history/fixings_token.csv": history.family_header("token"),
    "history/revisions.csv": history.REVISIONS_HEADER,
    "settlements/<contract>_<month>.csv": settlement.CSV_HEADER,
}

OBJECT_HEADING = re.compile(r"### `(?P<name>\w+)(?:\((?P<params>[\w, ]*)\))?` \((?P<kind>table|view|table macro)\)")
FILE_HEADING = re.compile(r"#### `(?P<path>[^`]+)`")
CODE = re.compile(r"`([^`]+)`")


@dataclass
class Documented:
    kind: str
    params: tuple[str, ...] = ()
    columns: dict[str, str] = field(default_factory=dict)  # name -> type text
    order: list[str] = field(default_factory=list)


def parse_dictionary(text: str) -> tuple[dict[str, Documented], dict[str, Documented], list[str]]:
    """(objects, published files, problems of form) of the README's Data dictionary section."""
    start = text.find("\n## Data dictionary\n")
    assert start >= 0, "README.md has no section `## Data dictionary`"
    end = text.find("\n## ", start + 1)
    section = text[start:end if end >= 0 else len(text)]
    objects: dict[str, Documented] = {}
    files: dict[str, Documented] = {}
    problems: list[str] = []
    current: Documented | None = None
    where = ""
    in_published = False
    in_code = False
    for line in section.splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            continue
        if line.startswith("### "):
            in_published = line == "### Published files"
            match = OBJECT_HEADING.fullmatch(line)
            current, where = None, line
            if match:
                name = match["name"]
                if name in objects:
                    problems.append(f"{name} is documented twice")
                params = tuple(p.strip() for p in (match["params"] or "").split(",") if p.strip())
                current = objects[name] = Documented(match["kind"], params)
            elif not in_published:
                problems.append(f"heading {line!r} is neither an object heading nor `### Published files`")
            continue
        if line.startswith("#### "):
            match = FILE_HEADING.fullmatch(line)
            current, where = None, line
            if not (in_published and match):
                problems.append(f"heading {line!r}: a published file goes under `### Published files` as #### `path`")
            else:
                current = files[match["path"]] = Documented("file")
            continue
        if not line.startswith("|") or line.startswith("| column |") or line.startswith("|---"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if current is None:
            problems.append(f"a table row outside any object: {line!r}")
            continue
        if len(cells) != 4 or not CODE.fullmatch(cells[0]) or not cells[1] or not cells[3]:
            problems.append(f"{where}: a row must be | `column` | type | unit | meaning |: {line!r}")
            continue
        name = CODE.fullmatch(cells[0])[1]
        if name in current.columns:
            problems.append(f"{where}: column {name} listed twice")
        current.columns[name] = cells[1].strip("`")
        current.order.append(name)
    return objects, files, problems


def warehouse_objects(con) -> dict[str, Documented]:
    """Every table, view and table macro of the warehouse with its columns and DuckDB types."""
    found: dict[str, Documented] = {}
    kinds = {"BASE TABLE": "table", "VIEW": "view"}
    for name, table_type in con.execute(
        "select table_name, table_type from information_schema.tables"
        " where table_catalog = current_database() and table_schema = 'main'").fetchall():
        found[name] = Documented(kinds[table_type])
    for table, column, data_type in con.execute(
        "select table_name, column_name, data_type from information_schema.columns"
        " where table_catalog = current_database() and table_schema = 'main'"
        " order by table_name, ordinal_position").fetchall():
        found[table].columns[column] = data_type
        found[table].order.append(column)
    for name, params in con.execute(
        "select function_name, parameters from duckdb_functions() where function_type = 'table_macro'"
        " and not internal and database_name = current_database() and schema_name = 'main'").fetchall():
        macro = found[name] = Documented("table macro", tuple(params))
        call = f"select * from {name}({', '.join('null' for _ in params)})"  # names from the catalog, not input
        for column, column_type, *_ in con.execute(f"describe {call}").fetchall():
            macro.columns[column] = column_type
            macro.order.append(column)
    return found


def differences(documented: dict[str, Documented], actual: dict[str, Documented]) -> list[str]:
    problems = []
    for name in sorted(set(actual) - set(documented)):
        problems.append(f"{actual[name].kind} {name} is not in the data dictionary")
    for name in sorted(set(documented) - set(actual)):
        problems.append(f"{documented[name].kind} {name} is in the data dictionary but not in the warehouse")
    for name in sorted(set(documented) & set(actual)):
        doc, real = documented[name], actual[name]
        if doc.kind != real.kind:
            problems.append(f"{name} is a {real.kind}, documented as a {doc.kind}")
        if doc.params != real.params:
            problems.append(f"{name} takes ({', '.join(real.params)}), documented as ({', '.join(doc.params)})")
        for column in real.order:
            if column not in doc.columns:
                problems.append(f"{name}.{column} ({real.columns[column]}) is not in the data dictionary")
            elif doc.columns[column] != real.columns[column]:
                problems.append(f"{name}.{column} is {real.columns[column]}, documented as {doc.columns[column]}")
        for column in doc.order:
            if column not in real.columns:
                problems.append(f"{name}.{column} is in the data dictionary but no longer exists")
    return problems


def file_differences(documented: dict[str, Documented], constants: dict[str, tuple[str, ...]]) -> list[str]:
    problems = []
    for path in sorted(set(constants) - set(documented)):
        problems.append(f"published file {path} is not in the data dictionary")
    for path in sorted(set(documented) - set(constants)):
        problems.append(f"published file {path} is documented but has no column constant in PUBLISHED_FILES")
    for path in sorted(set(documented) & set(constants)):
        if tuple(documented[path].order) != tuple(constants[path]):
            missing = [c for c in constants[path] if c not in documented[path].columns]
            gone = [c for c in documented[path].order if c not in constants[path]]
            problems.append(f"published file {path}: documented {documented[path].order}, written"
                            f" {list(constants[path])} (missing {missing}, no longer written {gone}; readers go by"
                            " position: same order)")
    return problems


def test_every_warehouse_column_is_in_the_data_dictionary_and_nothing_more(con):
    objects, _, form = parse_dictionary(README.read_text(encoding="utf-8"))
    assert form == []
    actual = warehouse_objects(con)
    assert {"fixings", "latest_fixings", "fixings_as_of", "schema_migrations"} <= set(actual)  # a real listing
    assert differences(objects, actual) == []


def test_every_published_column_is_in_the_data_dictionary_in_order():
    _, files, form = parse_dictionary(README.read_text(encoding="utf-8"))
    assert form == []
    assert file_differences(files, PUBLISHED_FILES) == []


def test_the_check_finds_a_missing_a_stale_and_a_mistyped_column(con):
    """The comparison itself: edit the README text as a careless change would and see each one reported."""
    text = README.read_text(encoding="utf-8")
    line = "| `computed_at` | `TIMESTAMP` | UTC | when this revision was computed (the as-of rule reads it) |\n"
    assert text.count(line) == 1
    broken = (text.replace(line, "")  # fixings.computed_at gone
              .replace("| `n_bytes` | `BIGINT` |", "| `n_bytes` | `HUGEINT` |")
              .replace("| `flag` | `VARCHAR` |", "| `flag` | `VARCHAR` | | a flag |\n| `flag_level` | `VARCHAR` |"))
    objects, files, form = parse_dictionary(broken)
    assert form == []
    assert differences(objects, warehouse_objects(con)) == [
        "fixings.computed_at (TIMESTAMP) is not in the data dictionary",
        "observation_flags.flag_level is in the data dictionary but no longer exists",
        "source_health_daily.n_bytes is BIGINT, documented as HUGEINT",
    ]
    reordered = dict(PUBLISHED_FILES)
    reordered["fixings/fixings_<date>.csv"] = publish.HEADER[:-1] + ("backfill_reason", "backfill")
    [problem] = file_differences(files, reordered)
    assert "missing ['backfill_reason']" in problem
    assert file_differences(files, {**PUBLISHED_FILES, "history/not_documented.csv": ("a",)}) == [
        "published file history/not_documented.csv is not in the data dictionary"]


def test_a_table_the_dictionary_lacks_is_reported(con):
    con.execute("create table extra_table (a integer)")
    objects, _, _ = parse_dictionary(README.read_text(encoding="utf-8"))
    assert differences(objects, warehouse_objects(con)) == ["table extra_table is not in the data dictionary"]
