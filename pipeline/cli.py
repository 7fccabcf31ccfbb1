"""The `tsi` command. Commands that run flows import `flows` only when called, so that the library and the
inspection commands (`sources`, `parse`, `fixings`) work without starting Prefect."""
from __future__ import annotations

import argparse
import csv
import os
import sys
from collections import Counter
from datetime import date, datetime, timezone
from pathlib import Path

from pipeline.paths import Warehouse

UNIT_LABEL = {"gpu": "USD/GPU-hour", "token": "USD/Mtok"}


def _prefect_defaults() -> None:
    # Offline machines: Prefect's temporary server would otherwise log telemetry errors.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")


def cmd_sources(args) -> int:
    from pipeline.sources import SOURCES

    for source_id, module in sorted(SOURCES.items()):
        print(f"{source_id}\t{module.KIND}\t{module.DESCRIPTION}")
    return 0


def cmd_parse(args) -> int:
    from pipeline.normalise import parse_body
    from pipeline.publish import safe_cell
    from pipeline.records import ParseContext, ParseError
    from pipeline.sources import get_source

    source = get_source(args.source)
    path = Path(args.file)
    raw = path.read_bytes()
    observed_at = args.observed_at or datetime.now(timezone.utc)
    if args.provider:
        ctx = ParseContext(source=args.source, observed_at=observed_at, url=path.resolve().as_uri(),
                           provider=args.provider)
    else:
        ctx = source.context_for_file(path, observed_at)
    try:
        result = parse_body(source, raw, ctx)
    except ParseError as exc:
        raise ParseError(f"{path}: {exc}") from None
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(
        ["record", "row_key", "provider", "instrument_kind", "instrument", "source_instrument", "price_type",
         "region", "gpu_count", "original_price", "original_currency", "original_unit", "usd_price", "usd_unit",
         "reason", "detail", "raw_excerpt"]
    )
    for o in result.observations:
        unit = "usd_per_gpu_hour" if o.instrument_kind == "gpu" else "usd_per_mtok"
        writer.writerow([safe_cell(v) for v in (
            "observation", o.row_key, o.provider, o.instrument_kind, o.instrument, o.source_instrument,
            o.price_type, o.region, o.gpu_count, o.original_price, o.original_currency, o.original_unit,
            o.usd_price, unit, "", "", "")])
    for r in result.rejections:
        writer.writerow([safe_cell(v) for v in (
            "rejection", r.row_key, "", "", "", "", "", "", "", "", "", "", "", "", r.reason, r.detail,
            r.raw_excerpt)])
    reasons = Counter(r.reason for r in result.rejections)
    summary = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) or "none"
    print(f"{len(result.observations)} observations, {len(result.rejections)} rejections ({summary})", file=sys.stderr)
    return 0


def cmd_demo(args) -> int:
    _prefect_defaults()
    from flows.daily import demo_flow

    summaries = demo_flow(warehouse=args.warehouse)
    for s in summaries:
        for failure in s["failed_sources"]:
            print(f"{s['fixing_date']}: source failed: {failure['source']} {failure['url']}: {failure['error']}")
        for snapshot_id, error in s["parse_failures"].items():
            print(f"{s['fixing_date']}: snapshot {snapshot_id[:12]} could not be parsed: {error}")
    print()
    return _print_history(Warehouse.locate(args.warehouse))


def cmd_daily(args) -> int:
    _prefect_defaults()
    from flows.daily import daily_flow

    summary = daily_flow(fixing_date=args.date or datetime.now(timezone.utc).date(), warehouse=args.warehouse,
                         sources=args.sources)
    for failure in summary["failed_sources"]:
        print(f"source failed: {failure['source']} {failure['url']}: {failure['error']}")
    return _print_fixings(Warehouse.locate(args.warehouse), args.date)


def cmd_fixings(args) -> int:
    return _print_fixings(Warehouse.locate(args.warehouse), args.date)


def _print_fixings(warehouse: Warehouse, on: date | None) -> int:
    from pipeline.warehouse import connect, sql

    con = connect(warehouse, read_only=True)
    try:
        rows = con.execute(sql("select_fixings_table"), {"fixing_date": on}).fetchall()
    finally:
        con.close()
    header = ("fixing_date", "index_id", "rev", "status", "value", "unit", "providers", "obs")
    table = [tuple("" if v is None else str(v) for v in row) for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in table]) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for r in table:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)))
    print(f"\nwarehouse: {warehouse.db_path}\npublished: {warehouse.published_dir / 'fixings'}")
    return 0


def _print_history(warehouse: Warehouse) -> int:
    """One line per index, one column per fixing date: the newest revision's value, or why there is none."""
    from pipeline.definitions import load_definitions
    from pipeline.warehouse import connect, sql

    con = connect(warehouse, read_only=True)
    try:
        rows = con.execute(sql("select_fixings_table"), {"fixing_date": None}).fetchall()
    finally:
        con.close()
    dates = sorted({r[0] for r in rows})
    units = {d.id: UNIT_LABEL[d.instrument_kind] for d in load_definitions()}
    cells: dict[str, dict] = {}
    for fixing_date, index_id, _rev, status, value, _unit, n_providers, _n_obs in rows:
        cells.setdefault(index_id, {})[fixing_date] = str(value) if value is not None else f"{status}({n_providers})"
    header = ["index_id", "unit"] + [d.isoformat() for d in dates]
    table = [[i, units.get(i, "")] + [cells[i].get(d, "") for d in dates] for i in sorted(cells)]
    widths = [max([len(header[c])] + [len(r[c]) for r in table]) for c in range(len(header))]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for r in table:
        print("  ".join(v.ljust(w) if c < 2 else v.rjust(w) for c, (v, w) in enumerate(zip(r, widths))))
    print("\nsuppressed(n): fewer than the index's minimum number of providers (n had prices)")
    print(f"warehouse: {warehouse.db_path}\npublished: {warehouse.published_dir / 'fixings'}")
    return 0


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from None


def _utc_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO time: {text!r}") from None
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give a time zone, e.g. {text}Z")
    return moment.astimezone(timezone.utc)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tsi", description="Token Spot Index: GPU-hour and token price fixings.")
    parser.add_argument("--warehouse", help="warehouse folder (default: $TSI_WAREHOUSE or ./warehouse)")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("demo", help="run the daily flow over the bundled recordings, fix and publish every date")
    p.set_defaults(func=cmd_demo)

    p = commands.add_parser("sources", help="list the source ids")
    p.set_defaults(func=cmd_sources)

    p = commands.add_parser("parse", help="print, as CSV, the observations and rejections one raw body gives")
    p.add_argument("source", help="a source id (see `tsi sources`)")
    p.add_argument("file", help="a saved response body")
    p.add_argument("--provider", help="the provider, for bodies that do not name it (default: from the file name)")
    p.add_argument("--observed-at", type=_utc_time, help="when the body was fetched (ISO time with zone; default now)")
    p.set_defaults(func=cmd_parse)

    p = commands.add_parser("daily", help="collect live from every source, then fix and publish one date")
    p.add_argument("--date", type=_date, help="fixing date (default: today, UTC)")
    p.add_argument("--sources", nargs="+", help="only these source ids")
    p.set_defaults(func=cmd_daily)

    p = commands.add_parser("fixings", help="print the fixings in the warehouse")
    p.add_argument("--date", type=_date, help="only this fixing date")
    p.set_defaults(func=cmd_fixings)
    return parser


def main(argv: list[str] | None = None) -> int:
    from pipeline.records import ParseError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:
        # The reader went away (`tsi parse ... | head`): not an error worth a message.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (OSError, ValueError, KeyError, ParseError) as exc:
        # Bad input gets a sentence, not a traceback (TSI_DEBUG=1 shows the traceback).
        if os.environ.get("TSI_DEBUG"):
            raise
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"tsi {args.command}: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
