"""`tsi sql`: read-only SQL on the warehouse, also while a run writes it (pipeline.readers).

Statements are classified by DuckDB's own parser before anything runs, so no spelling, case, comment or
statement count gets a write past the check: every statement must be a plain read (DuckDB's SELECT type:
SELECT, WITH ... SELECT, FROM ..., VALUES, TABLE t, DESCRIBE, SHOW, SUMMARIZE, UNPIVOT). Refused, with the
rest: EXPLAIN (EXPLAIN ANALYZE runs the statement it explains, and the parser does not say which), PIVOT
without an IN list (DuckDB runs it as several statements, one creating a type), PRAGMA (SHOW TABLES and the
duckdb_* functions say the same), and a statement DuckDB's Python API cannot name. The connection itself is
read-only with external access off (pipeline.readers.READER_CONFIG), which refuses a file-reading table
function inside a SELECT.
"""
from __future__ import annotations

import csv
import io
import json
import math
import sys
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from uuid import UUID

import duckdb

from pipeline.paths import Warehouse
from pipeline.publish import safe_cell
from pipeline.readers import reading

FORMATS = ("table", "csv", "json")
READS = "SELECT, WITH ... SELECT, FROM, VALUES, TABLE, DESCRIBE, SHOW, SUMMARIZE"


def read_only_statements(text: str) -> list:
    """DuckDB's parse of `text`, every statement a read; a ValueError naming the first that is not."""
    parser = duckdb.connect()  # in memory: parsing needs a connection, not the warehouse
    try:
        try:
            statements = parser.extract_statements(text)
        except duckdb.Error as exc:
            raise ValueError(f"the SQL does not parse: {_first_line(exc)}") from None
    finally:
        parser.close()
    if not statements:
        raise ValueError("no SQL statement given")
    for number, statement in enumerate(statements, start=1):
        try:
            kind = statement.type.name
        except ValueError:  # a statement type newer than the Python API's enum (UPDATE EXTENSIONS)
            kind = "a statement of a kind DuckDB's Python API does not name"
        if kind != "SELECT":
            which = f"statement {number}" if len(statements) > 1 else "the statement"
            raise ValueError(
                f"only reads may run ({READS}): {which} is {kind} "
                f"({_snippet(statement.query)}); nothing was run"
            )
    return statements


def run_sql(warehouse: Warehouse, text: str) -> tuple[list[str], list[tuple]]:
    """Run every statement (all reads) and return the last one's column names and rows."""
    statements = read_only_statements(text)
    with reading(warehouse) as con:
        for statement in statements:
            try:
                result = con.execute(statement)
                rows = result.fetchall()
            except duckdb.PermissionException as exc:
                raise ValueError(
                    "only the warehouse's tables may be read: files, URLs, other databases, extensions and "
                    f"settings are refused ({_first_line(exc)})"
                ) from None
            except duckdb.Error as exc:
                raise ValueError(f"the query failed: {_first_line(exc)}") from None
            columns = [d[0] for d in result.description or ()]
    return columns, rows


def render(columns: list[str], rows: list[tuple], fmt: str) -> str:
    if fmt == "csv":
        return render_csv(columns, rows)
    if fmt == "json":
        return render_json(columns, rows)
    return render_table(columns, rows)


def render_table(columns: list[str], rows: list[tuple]) -> str:
    """Aligned columns under their names; numbers to the right; NULL said; control characters escaped (a
    name in the data must not move a terminal's cursor)."""
    cells = [[_printable(_text(v, null="NULL")) for v in row] for row in rows]
    header = [_printable(c) for c in columns]
    numeric = []
    for i in range(len(columns)):
        present = [row[i] for row in rows if row[i] is not None]
        numeric.append(bool(present) and all(_is_number(v) for v in present))
    widths = [max([len(header[i])] + [len(r[i]) for r in cells]) for i in range(len(columns))]

    def line(values: list[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)).rstrip()

    out = [line(header), line(["-" * w for w in widths])] + [line(r) for r in cells]
    out.append(f"({len(rows)} row{'' if len(rows) == 1 else 's'})")
    return "\n".join(out) + "\n"


def render_csv(columns: list[str], rows: list[tuple]) -> str:
    """RFC 4180 CSV; text that a spreadsheet would run as a formula is quoted with ' (publish.safe_cell),
    numbers are left as they are (a negative price stays a number)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([safe_cell(c) for c in columns])
    for row in rows:
        writer.writerow([_csv_cell(v) for v in row])
    return buffer.getvalue()


def render_json(columns: list[str], rows: list[tuple]) -> str:
    """An array of objects, one a line. DECIMAL values are strings holding the exact decimal ("2.4900"): a
    JSON number is read as a binary float by most parsers, which would change the price. Integers are
    numbers, dates and times ISO 8601 strings, NULL is null."""
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise ValueError(f"JSON objects need distinct column names; name each column with AS: {', '.join(repeated)}")
    objects = [json.dumps(dict(zip(columns, (_json_value(v) for v in row))), ensure_ascii=False, allow_nan=False)
               for row in rows]
    return "[\n" + ",\n".join(objects) + ("\n" if objects else "") + "]\n"


def cmd_sql(args) -> int:
    text = sys.stdin.read() if args.query == "-" else args.query
    columns, rows = run_sql(Warehouse.locate(args.warehouse), text)
    sys.stdout.write(render(columns, rows, args.format))
    return 0


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def _text(value: object, *, null: str) -> str:
    """One value as exact text: Decimal without exponent, ISO dates, JSON for lists and structs."""
    if value is None:
        return null
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(_json_value(value), ensure_ascii=False)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "\\x" + bytes(value).hex()
    return str(value)


def _csv_cell(value: object) -> str:
    if value is None or _is_number(value):
        return _text(value, null="")
    return safe_cell(_text(value, null=""))


def _json_value(value: object):
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)  # NaN and infinity are not JSON numbers
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    if isinstance(value, (timedelta, UUID)):
        return str(value)
    return _text(value, null="")


def _printable(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _snippet(text: str, limit: int = 60) -> str:
    one = " ".join(text.split())
    return one if len(one) <= limit else one[:limit] + "..."
