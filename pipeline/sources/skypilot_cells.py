"""The cells of a SkyPilot catalog by column, for its columnar path (skypilot_columns): what skypilot._read_rows reads,
without a Python list per row.

A catalog in plain CSV is read by polars' CSV reader: ASCII text, line ends \\n or \\r\\n, no NUL, no line longer than
the csv module's field limit, and every line one record whose fields are unquoted (without a quote) or quoted (quotes
doubled inside). For such text polars gives the very cells the csv module gives, and the line checks that decide it
run in polars too. Blank lines and rows of another field count than the header's are found in the same pass and
treated as the readable path treats them (skipped; malformed_row).

Any other body (not ASCII, a quoted line break, a stray quote, a bare \\r, a blank line before the header, a cut-short
last line, ...) is read by skypilot._read_rows itself, so every hostile rule and its message stays that reader's (see
the docstring of pipeline.sources.skypilot): this reader takes only the bodies it is sure of, and reads the header
with the csv module and skypilot._header_columns either way.
"""
from __future__ import annotations

import codecs
import csv
import re
from dataclasses import dataclass

import polars as pl

from pipeline.records import Rejection
from pipeline.sources.skypilot import READ_COLUMNS, _column, _header_columns, _malformed, _read_rows

# What str.strip() strips from ASCII text: the readable path strips every cell so.
_WHITESPACE = "".join(char for char in map(chr, range(128)) if char.isspace())
# One field that the csv module and polars read alike: unquoted without a quote, or quoted with its quotes doubled.
_FIELD = r'(?:[^",]*|"(?:[^"]|"")*")'
_RECORD = re.compile(rf"{_FIELD}(?:,{_FIELD})*")
# A character that is no whitespace, comma or quote: only a line without one can be a blank row.
_CONTENT = r'[^,"\t\n\x0B\x0C\r\x1C-\x1F ]'
# A header of more columns goes to the readable reader (the pattern of a line repeats the field once per column;
# real catalogs have at most 15).
_MOST_COLUMNS = 64


@dataclass
class CatalogCells:
    """The rows of a catalog whose field count is the header's. `rows` holds `_number` (the row's number, blank
    lines not counted, as parse() numbers them), `_line` (its text without the line end) and the stripped cells of
    each column of READ_COLUMNS ("" where the catalog has no such column); `columns` are the header's names
    (lowercase) and `malformed` the rejections of the rows of another field count."""

    columns: list[str]
    rows: pl.DataFrame
    malformed: list[Rejection]


def read_cells(raw: bytes) -> CatalogCells:
    """The cells of a catalog, read by polars when its CSV is plain, else by the readable path's reader."""
    plain = _read_plain_csv(raw)
    return plain if plain is not None else _read_any_csv(raw)


def _read_any_csv(raw: bytes) -> CatalogCells:
    rows, columns = _read_rows(raw)
    malformed, numbers, lines, whole = [], [], [], []
    for number, (line, cells) in enumerate(rows, start=1):
        text = line.rstrip("\r\n")
        if len(cells) != len(columns):
            malformed.append(_malformed(number, len(cells), len(columns), text))
            continue
        numbers.append(number)
        lines.append(text)
        whole.append(cells)
    frame = {"_number": pl.Series(numbers, dtype=pl.Int64), "_line": pl.Series(lines, dtype=pl.String)}
    for name in READ_COLUMNS:
        frame[name] = pl.Series(_column(whole, columns, name), dtype=pl.String)
    return CatalogCells(columns, pl.DataFrame(frame), malformed)


def _read_plain_csv(raw: bytes) -> CatalogCells | None:
    """The cells of a catalog in plain CSV (see the module's docstring), or None when the body is not."""
    body = raw[len(codecs.BOM_UTF8):] if raw.startswith(codecs.BOM_UTF8) else raw  # as utf-8-sig drops it
    if not body.endswith(b"\n") or not body.isascii() or b"\x00" in body:
        return None
    crlf = b"\r" in body  # \r\n line ends (polars drops the \r, as the csv module does), or a bare \r somewhere
    text = body.decode("ascii")
    limit = csv.field_size_limit()
    header_line = text[:text.index("\n")].removesuffix("\r")
    if (len(header_line) > limit or "\r" in header_line or not re.search(_CONTENT, header_line)
            or not _RECORD.fullmatch(header_line)):
        return None
    columns = _header_columns(next(csv.reader([header_line])))  # the readable reader's header, and its errors
    if len(columns) > _MOST_COLUMNS:
        return None
    lines = pl.Series("_line", [text]).str.split("\n").explode()
    data = lines.slice(1, len(lines) - 2)  # after the header, before the "" that follows the last line end
    if crlf:
        data = data.str.strip_suffix("\r")
    status = data.to_frame().select(
        usual=pl.col("_line").str.contains(rf"^{_FIELD}(?:,{_FIELD}){{{len(columns) - 1}}}$")
        & pl.col("_line").str.contains(_CONTENT),
        longest=pl.col("_line").str.len_bytes().max(),
        bare_return=pl.col("_line").str.contains("\r", literal=True).any() if crlf else pl.lit(False),
    )
    if data.len() and (status["bare_return"][0] or status["longest"][0] > limit):
        return None  # a bare \r ends a line for the csv module; an over-long line may hold an over-long field
    # The unusual lines (another field count, or no content character): few, and read by the csv module one by one.
    unusual = (~status["usual"]).arg_true().to_list()
    blank, malformed_fields = [], {}
    for index, line in zip(unusual, data.gather(unusual).to_list()):
        if not _RECORD.fullmatch(line):
            return None
        cells = next(csv.reader([line]), [])
        if not "".join(cells).strip():
            blank.append(index)
        elif len(cells) != len(columns):
            malformed_fields[index] = len(cells)
    numbers = pl.int_range(1, data.len() + 1, dtype=pl.Int64, eager=True)
    if blank:
        numbers = pl.repeat(1, data.len(), dtype=pl.Int64, eager=True).scatter(blank, 0).cum_sum()
    malformed = [_malformed(numbers[index], fields, len(columns), data[index])
                 for index, fields in sorted(malformed_fields.items())]
    csv_text = body
    if blank or malformed:
        kept = pl.repeat(True, data.len(), eager=True).scatter(blank + list(malformed_fields), False)
        data, numbers = data.filter(kept), numbers.filter(kept)
        kept_lines = data.str.join("\n").item() + "\n" if data.len() else ""
        csv_text = (header_line + "\n" + kept_lines).encode("ascii")
    cells = pl.read_csv(csv_text, has_header=False, infer_schema=False, empty_string_is_null=False,
                        truncate_ragged_lines=False)
    if cells.width != len(columns) or cells.height != 1 + data.len():
        return None  # polars read it otherwise than the lines say: not sure, so the readable reader reads it
    rows = cells.slice(1).select(
        _number=numbers,
        _line=data,
        **{name: pl.col(cells.columns[columns.index(name)]).fill_null("").str.strip_chars(_WHITESPACE)
           if name in columns else pl.lit("", dtype=pl.String) for name in READ_COLUMNS},
    )
    return CatalogCells(columns, rows, malformed)
