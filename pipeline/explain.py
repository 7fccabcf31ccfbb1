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
from pipeline.influence import ProviderInfluence, largest_of, leave_one_out, stored_influence
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
    # The value without each provider in turn (pipeline.influence), and whether it was read from the warehouse
    # (fixing_influence) or computed now from the stored constituents (a fixing written before migration 012).
    influence: list[ProviderInfluence] | None = None
    influence_stored: bool = False


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
    influence, stored = None, False
    if fixing.value is not None:
        influence = stored_influence(con, index_id, fixing_date, rev)
        stored = influence is not None
        if influence is None:
            influence = leave_one_out([fixing]).get((index_id, fixing_date))
    return Explanation(fixing, computed_at.replace(tzinfo=timezone.utc), reason, revisions, influence, stored)


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
    if explanation.influence is not None:
        lines.extend(_influence_lines(f, explanation.influence, explanation.influence_stored))
    elif f.value is None:
        lines += ["", f"  without each {'member index' if d.is_basket else 'provider'}: nothing to move (no value)"]
    if explanation.revisions:
        lines.append("")
        lines.append("  revisions (append-only)")
        for rev, status, value, computed_at, version, reason in explanation.revisions:
            shown = value if value is not None else "-"
            note = f"  {reason}" if reason else ""
            lines.append(f"    {rev}  {_utc(computed_at)}  {status} {shown}  methodology {version}{note}")
    return "\n".join(lines) + "\n"


def _influence_lines(f: Fixing, rows: list[ProviderInfluence], stored: bool) -> list[str]:
    """The section "without each provider": the value the method gives without each one in turn."""
    what = "member index" if f.definition.is_basket else "provider"
    source = "" if stored else "; computed now from the stored constituents, not recorded in the warehouse"
    carried = f"; of the fixing carried from {f.carried_from.isoformat()}" if f.carried_from else ""
    how = ("the equal-weight mean of the other members, if enough have a value" if f.definition.is_basket else
           "the method re-applied without it: same window, screen and estimator re-run, never widened")
    lines = ["", f"  without each {what} ({how}{carried}{source})"]
    screened = {c.provider for c in f.constituents if (c.exclusion_reason or "").startswith("outlier_mad")}
    header = (what, "value without", "change", "change %", "")
    table = []
    for r in rows:
        if r.stands:
            notes = ["largest influence"] if r.largest else []
            if r.reason:  # no vote: nothing changes
                notes.append(r.reason)
            elif set(r.screened_without) != screened - {r.provider}:
                # without it the screen drops others than it did: the median and MAD moved
                notes.append("the screen then drops: " + (", ".join(r.screened_without) or "nobody"))
            table.append((r.provider, str(r.value_without), f"{r.move:+f}",
                          f"{r.move_pct.quantize(Decimal('0.01')):+f}%", "; ".join(notes)))
        elif (r.reason or "").startswith("insufficient"):
            table.append((r.provider, "-", "-", "-", f"would not stand: {r.reason}"))
        else:
            table.append((r.provider, "-", "-", "-", r.reason or ""))
    widths = [max(len(h), *(len(t[i]) for t in table)) for i, h in enumerate(header)]
    lines.append("  " + "  ".join(h.ljust(w) for h, w in zip(header, widths)).rstrip())
    for t in table:
        lines.append("  " + "  ".join(v.ljust(w) for v, w in zip(t, widths)).rstrip())
    top = largest_of(rows)
    falls = [r.provider for r in rows if not r.stands and (r.reason or "").startswith("insufficient")]
    if top:
        lines.append(f"  largest influence  {top.provider}: {top.value_without} without it ({top.move:+f}, "
                     f"{top.move_pct.quantize(Decimal('0.01')):+f}%)")
    elif any(r.stands for r in rows):
        lines.append(f"  largest influence  none: no single {what} moves the value")
    if falls:
        lines.append(f"  would not stand    without any one of: {', '.join(falls)}")
    return lines


def _utc(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
