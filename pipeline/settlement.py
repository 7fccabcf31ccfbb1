"""The final settlement of a futures contract month: `tsi settle CONTRACT MONTH` (README "Settlement").

Three layers, each usable alone:

- settle_values(contract, month, days) (pipeline/settlement_rules.py): the rules on a plain list of daily
  fixings (date, value, status): the day set, the counted statuses, the fallback ladder, the settlement rule
  and the rounding. Pure: it is how another module recomputes a settlement on a replaced series (e.g. without
  one provider).
- settle / indicative: which fixings, as known when. A final settlement reads each date's revision as it
  stood at the contract's finality time and is refused before that time; an indicative one reads the newest
  revisions of the month so far and is recorded nowhere.
- recording and publishing: one row in `settlements` (and one per day in `settlement_days`) and one
  immutable file, published/v1/settlements/<contract>_<month>.csv with its .sha256. The file's bytes depend
  on the settlement alone, so settling again must give the same bytes; if it does not, it is refused.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import duckdb

from pipeline.contracts import CONTRACTS_FILE, Contract, find_contract, month_text, register_contract
from pipeline.definitions import Definition, load_definitions
from pipeline.http import utc_now
from pipeline.paths import Warehouse
from pipeline.readers import reading
from pipeline.settlement_rules import MEAN_PLACES, WIDE, DayFixing, Settlement, SettlementDay, date_ranges, settle_values
from pipeline.publish import _write_atomically, safe_cell
from pipeline.warehouse import WarehouseError, fetch_first, naive_utc, sql, transaction
from pipeline.writer import WriterBusyError, open_writer

# --- as known when: finality, reading the warehouse -----------------------------------------------------


def read_fixings(con: duckdb.DuckDBPyConnection, index_id: str, first: date, last: date,
                 as_of: datetime | None) -> list[DayFixing]:
    rows = con.execute(sql("select_settlement_fixings"), {
        "index_id": index_id, "first_day": first, "last_day": last,
        "as_of": naive_utc(as_of) if as_of is not None else None,
    }).fetchall()
    return [DayFixing(day, value, status, revision, computed_at)
            for day, revision, status, value, computed_at, _known in rows]


def _resolve(contract_id: str, month: str, contracts_file: Path) -> tuple[Contract, date, Definition]:
    definitions = load_definitions()
    contract = find_contract(contract_id, contracts_file, definitions)
    definition = next(d for d in definitions if d.id == contract.index)
    return contract, contract.contract_month(month), definition


def settle(warehouse: Warehouse, contract_id: str, month: str, *, now: datetime | None = None,
           contracts_file: Path = CONTRACTS_FILE) -> Settlement:
    """The final settlement of a contract month: computed, recorded and published once, or refused."""
    contract, first_of_month, definition = _resolve(contract_id, month, contracts_file)
    label = f"{contract.id} {month_text(first_of_month)}"
    final_at, why = contract.finality_of(first_of_month, definition)
    now = now or utc_now()
    if now < final_at:
        waiting = [d for d in contract.needed_dates(first_of_month) if definition.cutoff(d) > now]
        wait = f"; waiting for the correction cutoff of the fixings of {date_ranges(waiting)}" if waiting else ""
        raise ValueError(f"{label}: no final settlement before {final_at:%Y-%m-%dT%H:%MZ} ({why}){wait}; "
                         "--indicative shows the settlement so far")
    if not warehouse.db_path.exists():
        raise FileNotFoundError(f"no warehouse at {warehouse.db_path}; run `tsi demo` or a collection first")
    # The whole period is read (every day is listed, used or not) and the ladder's reach before it.
    first_read = min(first_of_month, contract.needed_dates(first_of_month)[0])
    try:
        with open_writer(warehouse) as con:
            days = read_fixings(con, contract.index, first_read, contract.last_trading_day_of(first_of_month),
                                final_at)
            result = settle_values(contract, first_of_month, days)
            result.final, result.finality_at, result.finality_reason = True, final_at, why
            result.days = [_mark_late(x, naive_utc(final_at)) for x in result.days]
            if result.missing:
                raise ValueError(f"{label}: the warehouse has no fixing of {contract.index} on "
                                 f"{date_ranges(result.missing)}; fix those dates first (tsi backfill --from "
                                 f"{result.missing[0]} --to {result.missing[-1]})")
            if result.price is None:
                raise ValueError(f"{label}: no settlement: {result.reason}")
            _record_and_publish(con, warehouse, result)
    except WriterBusyError as exc:
        raise WarehouseError(str(exc)) from None
    return result


def _mark_late(day: SettlementDay, final_at: datetime) -> SettlementDay:
    """Say so when a day's fixing was first computed after finality (imported history, fixed after the fact):
    the only revision it will ever have, since nothing is revised after its cutoff."""
    if day.fixing.computed_at is None or day.fixing.computed_at <= final_at:
        return day
    late = "first revision, computed after finality (backfill)"
    return replace(day, note=f"{day.note}; {late}" if day.note else late)


def indicative(warehouse: Warehouse, contract_id: str, month: str, *,
               contracts_file: Path = CONTRACTS_FILE) -> Settlement:
    """The settlement so far, from the newest revisions of the month's fixings: not final, recorded nowhere."""
    contract, first_of_month, definition = _resolve(contract_id, month, contracts_file)
    label = f"{contract.id} {month_text(first_of_month)}"
    # The whole period and the ladder's reach before it: the days "so far" are not those of the final rule
    # (the last fixing so far may be any day of the month).
    with reading(warehouse) as con:  # while a run writes: the read-only copy, and a note saying so
        days = read_fixings(con, contract.index, first_of_month - timedelta(days=contract.reach),
                            contract.last_trading_day_of(first_of_month), None)
    fixed = [d.day for d in days if d.day >= first_of_month]
    if not fixed:
        raise ValueError(f"{label}: no fixing of {contract.index} in {month_text(first_of_month)} yet")
    # Through the newest fixed date (a later day has no fixing yet, which is not a gap).
    result = settle_values(contract, first_of_month, days, through=max(fixed), partial=True)
    result.finality_at, result.finality_reason = contract.finality_of(first_of_month, definition)
    result.finality_passed = utc_now() >= result.finality_at
    if result.price is None:
        raise ValueError(f"{label}: no indicative settlement: {result.reason}")
    return result


# --- recording and publishing ---------------------------------------------------------------------------


def _record_and_publish(con: duckdb.DuckDBPyConnection, warehouse: Warehouse, result: Settlement) -> None:
    contract, month = result.contract, result.month
    body = render_csv(result)
    digest = hashlib.sha256(body).hexdigest()
    target = warehouse.published_dir / "settlements" / f"{contract.id}_{month_text(month)}.csv"
    relative = target.relative_to(warehouse.root).as_posix()
    recorded = fetch_first(con, sql("select_settlement"), {"contract_id": contract.id, "contract_month": month})
    if recorded:
        version, contract_sha, price, _path, file_sha, settled_at = recorded
        price = format(price.normalize(), "f")  # DECIMAL(20, 6): 2.085000 -> 2.085
        if contract_sha != contract.sha256:
            raise ValueError(f"{contract.id} {month_text(month)} was settled at {price} under contract version "
                             f"{version} (sha256 {contract_sha[:12]}); pipeline/contracts.toml now gives version "
                             f"{contract.version} (sha256 {contract.sha256[:12]}): a settlement is never redone")
        if file_sha != digest:
            # Cannot happen through the engine (nothing is revised after its cutoff): a fixing written with an
            # earlier computed_at, or the file's format changed (that would be a published/v2).
            what = (f"the same price {price} but another file" if Decimal(price) == result.price
                    else f"{result.price}, but the settlement recorded is {price}")
            raise ValueError(f"{contract.id} {month_text(month)}: recomputed {what} (recorded "
                             f"{settled_at:%Y-%m-%dT%H:%MZ} with file sha256 {file_sha[:12]}, recomputed "
                             f"{digest[:12]}): the fixings as of finality differ from those it recorded; the "
                             "recorded settlement and its file stand, investigate")
        result.settled_at = settled_at.replace(tzinfo=timezone.utc)
    else:
        result.settled_at = utc_now()
        with transaction(con):
            register_contract(con, contract)
            con.execute(sql("insert_settlement"), _settlement_row(result, relative, digest))
            con.executemany(sql("insert_settlement_days"), [_day_row(result, d) for d in result.days])
    if target.exists():
        if hashlib.sha256(target.read_bytes()).hexdigest() != digest:
            raise FileExistsError(f"{target} exists with other content; published files are never overwritten")
    else:
        # Recorded first, then published: a crash in between leaves the record, and settling again writes
        # the same bytes. The checksum file is written last, so it never names a file not yet there. A
        # `.tmp-*` file here is a publication killed before its rename (only the one writer publishes).
        for stale in target.parent.glob(".tmp-*"):
            stale.unlink(missing_ok=True)
        _write_atomically(target, body)
    checksum = target.with_name(target.name + ".sha256")
    if not checksum.exists():
        _write_atomically(checksum, f"{digest}  {target.name}\n".encode())
    result.published, result.sha256 = target, digest


def _settlement_row(result: Settlement, relative: str, digest: str) -> dict:
    c = result.contract
    price_gpu, price_tok = c.unit_pair(result.price)
    mean = result.mean.quantize(MEAN_PLACES, context=WIDE)  # half-even
    mean_gpu, mean_tok = c.unit_pair(mean)
    return {
        "contract_id": c.id, "contract_month": result.month, "contract_version": c.version,
        "contract_sha256": c.sha256, "index_id": c.index, "first_day": result.first_day,
        "last_day": result.last_day, "finality_at": naive_utc(result.finality_at),
        "usd_per_gpu_hour": price_gpu, "usd_per_mtok": price_tok, "mean_usd_per_gpu_hour": mean_gpu,
        "mean_usd_per_mtok": mean_tok, "n_days": result.n_used, "contract_value_usd": result.contract_value,
        "file_path": relative, "file_sha256": digest, "settled_at": naive_utc(result.settled_at),
    }


def _day_row(result: Settlement, d: SettlementDay) -> dict:
    c = result.contract
    used_gpu, used_tok = c.unit_pair(d.value)
    fix_gpu, fix_tok = c.unit_pair(d.fixing.value)
    return {
        "contract_id": c.id, "contract_month": result.month, "day": d.day, "used": d.used,
        "used_usd_per_gpu_hour": used_gpu, "used_usd_per_mtok": used_tok, "fallback": d.fallback,
        "fallback_from": d.fallback_from, "fixing_revision": d.fixing.revision, "fixing_status": d.fixing.status,
        "fixing_usd_per_gpu_hour": fix_gpu, "fixing_usd_per_mtok": fix_tok,
        "fixing_computed_at": d.fixing.computed_at, "note": d.note or None,
    }


# --- output ---------------------------------------------------------------------------------------------

CSV_HEADER = (
    "contract_id", "contract_version", "contract_sha256", "contract_month", "index_id", "final", "finality_utc",
    "settlement_usd_per_gpu_hour", "settlement_usd_per_mtok", "contract_value_usd", "contract_unit",
    "day", "used", "used_usd_per_gpu_hour", "used_usd_per_mtok", "fallback", "fallback_from",
    "fixing_revision", "fixing_status", "fixing_usd_per_gpu_hour", "fixing_usd_per_mtok", "fixing_computed_at_utc",
    "note",
)


def render_csv(result: Settlement) -> bytes:
    """One row per day of the period, the settlement's own fields repeated on each (the published file's
    bytes: nothing in it depends on when or where it was computed)."""
    c = result.contract
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    head = (c.id, c.version, c.sha256, month_text(result.month), c.index, "true" if result.final else "false",
            result.finality_at, *c.unit_pair(result.price), result.contract_value, c.unit_words)
    for d in result.days:
        writer.writerow([safe_cell(v) for v in (
            *head, d.day, "true" if d.used else "false", *c.unit_pair(d.value), d.fallback, d.fallback_from,
            d.fixing.revision, d.fixing.status, *c.unit_pair(d.fixing.value), d.fixing.computed_at, d.note)])
    return buffer.getvalue().encode("utf-8")


def render_json(result: Settlement) -> str:
    c = result.contract
    text = (lambda v: None if v is None else safe_cell(v))
    out = {
        "contract_id": c.id, "contract_version": c.version, "contract_sha256": c.sha256,
        "contract_month": month_text(result.month), "index_id": c.index, "final": result.final,
        "status": "final" if result.final else "indicative, not final",
        "quote_unit": c.quote_unit, f"settlement_{c.unit_column}": text(result.price),
        f"mean_{c.unit_column}": None if result.mean is None else _plain(result.mean), "rounding": c.rounding,
        "increment": text(c.increment),
        "tick_size": text(c.tick_size), "contract_unit": c.unit_words, "contract_multiplier": text(c.multiplier),
        "contract_value_usd": text(result.contract_value), "settlement_rule": c.settlement_rule,
        "settlement_n": c.settlement_n, "day_set": c.day_set, "first_day": text(result.first_day),
        "last_day": text(result.last_day), "days_used": result.n_used,
        "finality_utc": text(result.finality_at), "finality_rule": result.finality_reason,
        "settled_at_utc": text(result.settled_at),
        "published": None if result.published is None else str(result.published), "sha256": result.sha256,
        "days": [{
            "day": text(d.day), "used": d.used, f"used_{c.unit_column}": text(d.value), "fallback": d.fallback,
            "fallback_from": text(d.fallback_from), "fixing_revision": d.fixing.revision,
            "fixing_status": d.fixing.status, f"fixing_{c.unit_column}": text(d.fixing.value),
            "fixing_computed_at_utc": text(d.fixing.computed_at), "note": d.note or None,
        } for d in result.days],
    }
    return json.dumps(out, indent=2)


def render_text(result: Settlement) -> str:
    c = result.contract
    unit = c.quote_unit
    rule = {"average": "average of the {n} day(s) used",
            "last_fixing": "the last fixing so far" if not result.final else
            "the last trading day's fixing" if c.day_set == "calendar" else "the last usable fixing",
            "average_last_n": f"average of the last {c.settlement_n} day(s)"}[c.settlement_rule]
    days = "calendar days (a day without a usable fixing takes the fallback)" if c.day_set == "calendar" else \
        "published days only (a day without a usable fixing is left out)"
    lines = []
    if result.final:
        lines.append(f"{c.id} {month_text(result.month)}: FINAL SETTLEMENT {result.price} {unit}")
    else:
        lines.append(f"{c.id} {month_text(result.month)}: INDICATIVE, NOT FINAL: {result.price} {unit} "
                     f"(so far: {result.first_day} to {result.last_day} of the period to "
                     f"{c.last_trading_day_of(result.month)}; nothing recorded or published)")
    lines += [
        f"  contract        {c.name} (version {c.version}, sha256 {c.sha256[:12]})",
        f"  index           {c.index}",
        f"  rule            {rule.format(n=result.n_used)}, {result.first_day} to {result.last_day}; {days}; "
        f"counted: {', '.join(c.counted_statuses)}",
        f"  mean            {_plain(result.mean)} {unit}, rounded {c.rounding} to "
        + (f"the tick {c.tick_size}" if c.rounding_places is None else f"{c.rounding_places} places"),
        f"  contract value  {result.contract_value} USD ({c.unit_words} x {result.price} {unit})",
    ]
    if result.finality_at is not None:
        lines.append(f"  final at        {result.finality_at:%Y-%m-%dT%H:%MZ} ({result.finality_reason})"
                     + ("" if result.final else ": passed; `tsi settle` without --indicative settles it"
                        if result.finality_passed else ": not yet final"))
    if result.final:
        lines.append(f"  recorded        {result.settled_at:%Y-%m-%dT%H:%M:%SZ}; published {result.published} "
                     f"(sha256 {result.sha256})")
    if result.missing:
        lines.append(f"  no fixing yet   {date_ranges(result.missing)}")
    lines.append("")
    table = [("day", "used", "fixing", "status", "rev", "note")]
    for d in result.days:
        table.append((str(d.day), "-" if d.value is None or not d.used else str(d.value),
                      "-" if d.fixing.value is None else str(d.fixing.value), d.fixing.status,
                      "-" if d.fixing.revision is None else str(d.fixing.revision), d.note))
    widths = [max(len(r[i]) for r in table) for i in range(5)]
    lines += ["  " + "  ".join(v.ljust(w) for v, w in zip(r[:5], widths)) + "  " + r[5] for r in table]
    return "\n".join(line.rstrip() for line in lines)


def _plain(value: Decimal | None) -> str:
    if value is None:
        return "-"
    return format(value.quantize(MEAN_PLACES, context=WIDE).normalize(), "f")


# --- tsi settle -----------------------------------------------------------------------------------------


def cmd_settle(args) -> int:
    warehouse = Warehouse.locate(args.warehouse)
    if getattr(args, "influence", False) and args.format != "text":
        raise ValueError("--influence prints a table for people: give it without --format")
    if args.indicative:
        result = indicative(warehouse, args.contract, args.month)
    else:
        result = settle(warehouse, args.contract, args.month)
    if args.format == "csv":
        print(render_csv(result).decode("utf-8"), end="")
    elif args.format == "json":
        print(render_json(result))
    else:
        print(render_text(result))
    if getattr(args, "influence", False):
        from pipeline.settlement_influence import render_settlement_influence, settlement_influence

        # As known at finality for a final settlement (the fixings it used); the newest revisions so far else.
        as_of = result.finality_at if result.final else None
        with reading(warehouse) as con:
            print()
            print(render_settlement_influence(settlement_influence(con, result.contract, args.month, as_of)), end="")
    return 0
