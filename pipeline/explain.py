"""What a fixing rests on: `tsi explain INDEX DATE` for a person, and the same fields as CSV (`tsi fix`).

A stored fixing is read back from the warehouse (the revision that stood at a moment, or a given one) with
the definition of the methodology version it used; a fresh computation (`tsi fix --observations`) is a
pipeline.fixing.Fixing already. Both give the same fields, built by one function.
"""
from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import Decimal

import duckdb

from pipeline.definitions import Definition, definition_from_json
from pipeline.fixing import Constituent, Fixing
from pipeline.publish import safe_cell
from pipeline.warehouse import fetch_first, naive_utc, sql

EXPLAIN_FIELDS = (
    "fixing_date", "index_id", "revision", "status", "value", "unit", "method", "methodology_version",
    "window_start_utc", "window_end_utc", "window_hours", "carried_from", "n_providers", "n_observations",
    "p25", "p75", "min", "max", "mean", "dispersion_basis", "quantile_method", "input_hash", "constituents",
    "excluded",
)


@dataclass
class Explanation:
    fixing: Fixing
    computed_at: datetime | None = None
    revision_reason: str | None = None
    revisions: list[tuple] = field(default_factory=list)  # (revision, status, value, computed_at, version, reason)


def plain(value: Decimal | None) -> str:
    """A provider value without the trailing zeros of its DECIMAL(38, 20) column: 2.49, not 2.4900000000..."""
    if value is None:
        return ""
    text = format(value.normalize(), "f")
    return text


def from_warehouse(
    con: duckdb.DuckDBPyConnection, index_id: str, fixing_date: date, *, as_of: datetime | None = None,
    revision: int | None = None,
) -> Explanation:
    row = fetch_first(
        con, sql("select_fixing_as_of"),
        {"index_id": index_id, "fixing_date": fixing_date, "revision": revision,
         "as_of": naive_utc(as_of) if as_of else None},
    )
    if row is None:
        when = f" as of {as_of:%Y-%m-%dT%H:%M:%SZ}" if as_of else ""
        which = f" revision {revision}" if revision else ""
        raise ValueError(f"no fixing{which} of {index_id} on {fixing_date.isoformat()} in the warehouse{when}")
    (index_id, fixing_date, rev, status, value, version, definition_sha, n_providers, n_observations,
     window_start, window_end, window_hours, carried_from, p25, p75, low, high, mean, input_hash, reason,
     computed_at, backfill) = row
    stored = fetch_first(con, sql("select_index_definition"), {"index_id": index_id, "methodology_version": version})
    if stored is None:
        raise ValueError(f"the warehouse lacks the definition of {index_id} methodology {version}")
    definition = definition_from_json(stored[0])
    constituents = [
        Constituent(provider=p, snapshot_id=s, provider_value=v, n_observations=n, included=inc,
                    exclusion_reason=why, weight=w, value_rule=rule, observed_at=seen, valid_until=until)
        for p, s, v, n, inc, why, w, rule, seen, until in con.execute(
            sql("select_fixing_constituents"), {"index_id": index_id, "fixing_date": fixing_date, "revision": rev}
        ).fetchall()
    ]
    fixing = Fixing(
        definition=definition, fixing_date=fixing_date, status=status, value=value, n_providers=n_providers,
        n_observations=n_observations, window_start=window_start.replace(tzinfo=timezone.utc),
        window_end=window_end.replace(tzinfo=timezone.utc), p25=p25, p75=p75, min=low, max=high,
        input_hash=input_hash, constituent_rows=constituents, mean=mean, window_hours=window_hours,
        carried_from=carried_from, revision=rev, written=True, backfill=backfill,
    )
    revisions = con.execute(sql("select_fixing_revisions"), {"index_id": index_id, "fixing_date": fixing_date}).fetchall()
    return Explanation(fixing, computed_at.replace(tzinfo=timezone.utc), reason, revisions)


def fields(f: Fixing) -> dict:
    """The explanation of one fixing as flat fields (the columns of `tsi fix` output)."""
    d: Definition = f.definition
    included = sorted((c for c in f.constituents if c.included), key=lambda c: c.provider)
    excluded = sorted((c for c in f.constituents if not c.included), key=lambda c: c.provider)
    return {
        "fixing_date": f.fixing_date,
        "index_id": d.id,
        "revision": f.revision or "",
        "status": f.status,
        "value": f.value,
        "unit": d.unit_label,
        "method": f.method,
        "methodology_version": d.methodology_version,
        "window_start_utc": f.window_start,
        "window_end_utc": f.window_end,
        "window_hours": f.window_hours,
        "carried_from": f.carried_from,
        "n_providers": f.n_providers,
        "n_observations": f.n_observations,
        "p25": f.p25,
        "p75": f.p75,
        "min": f.min,
        "max": f.max,
        "mean": f.mean,
        "dispersion_basis": "member_values" if d.is_basket else d.dispersion_basis,
        "quantile_method": d.quantile_method,
        "input_hash": f.input_hash,
        "backfill": "backfill" if f.backfill else "",
        "constituents": ";".join(f"{c.provider}={plain(c.provider_value)}" for c in included),
        "excluded": ";".join(f"{c.provider}={(c.exclusion_reason or '').split(':')[0]}" for c in excluded),
    }


def render_csv(fixings: list[Fixing]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(EXPLAIN_FIELDS)
    for f in fixings:
        row = fields(f)
        writer.writerow([safe_cell(row[name]) for name in EXPLAIN_FIELDS])
    return buffer.getvalue()


def render_text(explanation: Explanation) -> str:
    f = explanation.fixing
    d = f.definition
    row = fields(f)
    value = f"{row['value']} {d.unit_label}" if f.value is not None else "no value"
    backfill = ", backfill" if f.backfill else ""
    lines = [
        f"{d.id} on {f.fixing_date.isoformat()}: {value} ({f.status}{backfill}, revision {f.revision} of "
        f"{len(explanation.revisions) or f.revision})",
        f"  {d.name}",
        f"  method        {f.method}",
        f"  methodology   {d.methodology_version} (definition sha256 {d.sha256[:16]})",
        f"  window        ({_utc(f.window_start)}, {_utc(f.window_end)}], {f.window_hours} h"
        + (f"; carried from {f.carried_from.isoformat()}" if f.carried_from else ""),
    ]
    n_in = sum(c.included for c in f.constituents)
    what = "members" if d.is_basket else "providers"
    lines.append(f"  {what:<13} {n_in} included of {len(f.constituents)} considered; "
                 f"{f.n_observations} observations")
    if f.min is not None:
        basis = row["dispersion_basis"].replace("_", " ")
        lines.append(f"  dispersion    p25 {f.p25}  p75 {f.p75}  min {f.min}  max {f.max}  mean {f.mean}  "
                     f"(over {basis}, quantiles {d.quantile_method})")
    lines.append(f"  input hash    {f.input_hash}")
    if f.backfill:
        lines.append("  backfill      computed after the fact from imported price records (tsi import), not live "
                     "at its fixing time")
    if explanation.computed_at:
        lines.append(f"  computed at   {_utc(explanation.computed_at)}")
    if explanation.revision_reason:
        lines.append(f"  revised       {explanation.revision_reason}")
    if f.constituents:
        lines.append("")
        header = ("member index" if d.is_basket else "provider", "value", "obs", "weight", "rule", "collected",
                  "valid until", "")
        table = [
            (c.provider, plain(c.provider_value) or "-", str(c.n_observations), plain(c.weight) or "0",
             c.value_rule or "", _utc(c.observed_at) if c.observed_at else "-",
             c.valid_until.isoformat() if c.valid_until else "-",
             "included" if c.included else f"excluded: {c.exclusion_reason}")
            for c in f.constituents
        ]
        widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(header)]
        lines.append("  " + "  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
        for r in table:
            lines.append("  " + "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
    if explanation.revisions:
        lines.append("")
        lines.append("  revisions (append-only)")
        for rev, status, value, computed_at, version, reason in explanation.revisions:
            shown = value if value is not None else "-"
            note = f"  {reason}" if reason else ""
            lines.append(f"    {rev}  {_utc(computed_at)}  {status} {shown}  methodology {version}{note}")
    return "\n".join(lines) + "\n"


def _utc(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
