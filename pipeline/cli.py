"""The `tsi` command. Commands that run flows import `flows` only when called, so that the library and the
inspection commands (`sources`, `parse`, `fixings`) work without starting Prefect."""
from __future__ import annotations

import argparse
import csv
import os
import sys
from collections import Counter
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from pipeline.paths import Warehouse

UNIT_LABEL = {"gpu": "USD/GPU-hour", "token": "USD/Mtok"}


def _warehouse_usable(warehouse_option: str | None) -> None:
    """Before a command starts Prefect: a damaged warehouse is said in one line here, not as the flow run's
    traceback in Prefect's log. A warehouse busy with another run is fine: the flow waits for the writer."""
    from pipeline.warehouse import BUSY, WarehouseError, connect

    warehouse = Warehouse.locate(warehouse_option)
    if not warehouse.db_path.exists():
        return  # made on first use
    try:
        connect(warehouse, read_only=True).close()
    except WarehouseError as exc:
        if BUSY not in str(exc):  # a lock held by a run is not damage
            raise


def _prefect_defaults() -> None:
    # Offline machines: Prefect's temporary server would otherwise log telemetry errors.
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "1")


def cmd_sources(args) -> int:
    from pipeline.sources import SOURCES

    if getattr(args, "unknown", False):
        return cmd_sources_unknown(args)
    for source_id, module in sorted(SOURCES.items()):
        print(f"{source_id}\t{module.KIND}\t{module.DESCRIPTION}")
    return 0


def cmd_sources_unknown(args) -> int:
    """The names the catalog could not map (pipeline/unknown_instruments.py), for a maintainer to add."""
    from pipeline.readers import reading
    from pipeline.unknown_instruments import format_table, unknown_instruments

    warehouse = Warehouse.locate(args.warehouse)
    with reading(warehouse) as con:
        rows = unknown_instruments(con)
    print(format_table(rows) if rows else f"no unknown instruments in {warehouse.db_path}")
    return 0


def cmd_parse(args) -> int:
    from pipeline.normalise import parse_body
    from pipeline.publish import safe_cell
    from pipeline.records import ParseContext, ParseError
    from pipeline.sources import get_source, read_saved_body

    source = get_source(args.source)
    path = Path(args.file)
    raw = read_saved_body(path, source)
    observed_at = args.observed_at or datetime.now(timezone.utc)
    if args.provider:
        ctx = ParseContext(source=args.source, observed_at=observed_at, url=path.resolve().as_uri(),
                           provider=args.provider)
    else:
        ctx = source.context_for_file(path, observed_at)
    fx = _fx_table(args.fx) if getattr(args, "fx", None) else None
    try:
        result = parse_body(source, raw, ctx, fx=fx)
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
    for x in result.fx_rates:  # FX sources: units per euro as published, and the USD rate derived from it
        writer.writerow([safe_cell(v) for v in (
            "fx_rate", f"{x.rate_date}|{x.currency}", "", "", "", "", "", "", "", x.units_per_eur, x.currency,
            "per_eur", x.usd_per_unit, "usd_per_unit", "", "", "")])
    reasons = Counter(r.reason for r in result.rejections)
    summary = ", ".join(f"{k} {v}" for k, v in sorted(reasons.items())) or "none"
    rates = f", {len(result.fx_rates)} fx rates" if result.fx_rates else ""
    print(f"{len(result.observations)} observations, {len(result.rejections)} rejections ({summary}){rates}",
          file=sys.stderr)
    return 0


def _fx_table(path: str):
    """The rates of a saved ECB file, to convert the non-USD rows of `tsi parse` (else: missing_fx_rate)."""
    from pipeline.sources.ecb_fx import fx_table_from_file

    return fx_table_from_file(Path(path))


def cmd_demo(args) -> int:
    _warehouse_usable(args.warehouse)
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
    from pipeline.collect import plan_requests

    plan_requests(args.sources)  # an unknown source is refused before Prefect starts
    _warehouse_usable(args.warehouse)
    _prefect_defaults()
    from flows.daily import daily_flow

    summary = daily_flow(fixing_date=args.date or datetime.now(timezone.utc).date(), warehouse=args.warehouse,
                         sources=args.sources)
    for failure in summary["failed_sources"]:
        print(f"source failed: {failure['source']} {failure['url']}: {failure['error']}")
    return _print_fixings(Warehouse.locate(args.warehouse), args.date)


def cmd_fixings(args) -> int:
    return _print_fixings(Warehouse.locate(args.warehouse), args.date, args.as_of)


def _print_fixings(warehouse: Warehouse, on: date | None, as_of: datetime | None = None) -> int:
    from pipeline.readers import reading
    from pipeline.warehouse import naive_utc, sql

    with reading(warehouse) as con:
        # history is append-only: what was known then is the newest revision computed by then
        rows = con.execute(
            sql("select_fixings_as_of"),
            {"fixing_date": on, "as_of": naive_utc(as_of) if as_of is not None else None},
        ).fetchall()
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
    from pipeline.readers import reading
    from pipeline.warehouse import sql

    with reading(warehouse) as con:
        rows = con.execute(sql("select_fixings_as_of"), {"fixing_date": None, "as_of": None}).fetchall()
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


def cmd_explain(args) -> int:
    from pipeline.explain import from_warehouse, render_text
    from pipeline.readers import reading

    with reading(Warehouse.locate(args.warehouse)) as con:
        explanation = from_warehouse(con, args.index, args.date, as_of=args.as_of, revision=args.revision)
    sys.stdout.write(render_text(explanation))
    return 0


def cmd_verify(args) -> int:
    from pipeline.readers import reading
    from pipeline.verify import verify, verify_published

    if args.date and (args.first or args.last):
        raise ValueError("give --date, or --from and --to, not both")
    if args.last and not args.first:
        raise ValueError("--to needs --from")
    with reading(Warehouse.locate(args.warehouse)):
        pass  # says, once, when the warehouse is read from its copy because a run writes it
    first = args.date or args.first
    if first is None:  # no date: every published date, the history files and the manifest
        report = verify_published(Warehouse.locate(args.warehouse))
        first = report.first
    else:
        report = verify(Warehouse.locate(args.warehouse), first, args.date or args.last or first)
    span = first.isoformat() if report.last == first else f"{first.isoformat()} to {report.last.isoformat()}"
    if report.dates is not None:
        span = f"{len(report.dates)} published date(s), {span}"
    if not report.fixings:
        raise ValueError(f"no fixings published for {span}")
    for path, problem in sorted(report.file_problems.items()):
        print(f"published file {path}: {problem}")
    for snapshot_id, error in sorted(report.unreadable.items()):
        print(f"snapshot {snapshot_id[:12]}: {error}")
    for snapshot_id, error in sorted(report.parse_failures.items()):
        print(f"snapshot {snapshot_id[:12]} loaded when collected but could not be parsed again: {error}")
    for difference in report.differences:
        print(difference)
    problems = [f"{len(report.differences)} difference(s)"] if report.differences else []
    if report.unreadable:
        problems.append(f"{len(report.unreadable)} unreadable raw bod{'y' if len(report.unreadable) == 1 else 'ies'}")
    if report.parse_failures:
        problems.append(f"{len(report.parse_failures)} bod{'y' if len(report.parse_failures) == 1 else 'ies'} "
                        "no longer parsed")
    if report.file_problems:
        problems.append(f"{len(report.file_problems)} published file(s) not as published")
    verdict = "every field matches" if report.ok else ", ".join(problems)
    print(f"verified {report.fixings} fixing(s) of {span} from {report.snapshots} raw snapshot(s) and "
          f"{report.files} published file(s): {verdict}")
    return 0 if report.ok else 1


def cmd_fix(args) -> int:
    from pipeline.definitions import load_definitions
    from pipeline.explain import render_csv
    from pipeline.whatif import check_fixing_dates, fix_observations, read_observations_csv

    if args.date and (args.first or args.last):
        raise ValueError("give --date, or --from and --to, not both")
    definitions = load_definitions(args.definitions, strict=False) if args.definitions else load_definitions()
    observations = read_observations_csv(args.observations)
    dates = None
    if args.date or args.first or args.last:
        first, last = args.date or args.first, args.date or args.last
        days = sorted({o.observed_at.date() for o in observations})
        first, last = first or days[0], last or days[-1]
        if last < first:
            raise ValueError(f"--to {last.isoformat()} is before --from {first.isoformat()}")
        dates = [first + timedelta(days=k) for k in range((last - first).days + 1)]
        check_fixing_dates(dates)
    sys.stdout.write(render_csv(fix_observations(observations, definitions, dates)))
    return 0


def cmd_serve(args) -> int:
    """Serve the scheduled deployments (flows/deployments.py) until interrupted."""
    _warehouse_usable(args.warehouse)
    _prefect_defaults()
    from flows.deployments import serve_deployments

    # An absolute folder, so that every run writes to the same warehouse whatever its working directory.
    serve_deployments(warehouse=str(Warehouse.locate(args.warehouse).root), limit=args.limit)
    return 0


def cmd_backfill(args) -> int:
    from pipeline.schedule import dates_between

    dates_between(args.first, args.last)  # a bad range is refused before Prefect starts
    _warehouse_usable(args.warehouse)
    _prefect_defaults()
    from flows.daily import backfill_flow

    for s in backfill_flow(first=args.first, last=args.last, warehouse=args.warehouse):
        print(f"{s['fixing_date']}: {s['fixings']} fixings ({s['final']} final, {s['new']} new), "
              f"published {s['published'] or 'nothing'}")
    return 0


def cmd_import(args) -> int:
    """Dated public price records into the warehouse (pipeline/importer.py), fixed and published."""
    from uuid import uuid4

    from pipeline import importer, progress, runs
    from pipeline.definitions import load_definitions
    from pipeline.http import utc_now
    from pipeline.writer import open_writer

    warehouse = Warehouse.locate(args.warehouse)
    rows = importer.read_manifest(Path(args.folder), Path(args.manifest) if args.manifest else None)
    definitions = load_definitions()
    run_id = str(uuid4())
    labels = {"store": "keeping bodies", "parse": "parsing", "fix": "fixing dates", "publish": "publishing"}
    with open_writer(warehouse) as con:
        runs.start_run(con, run_id, "import", utc_now(), {"folder": str(args.folder), "rows": len(rows)})
        try:
            with progress.stages(labels) as tick:
                report = importer.import_folder(con, warehouse, rows, definitions, args.valid_days, tick)
        except BaseException as exc:
            runs.finish_run(con, run_id, utc_now(), runs.FAILED, {"error": f"{type(exc).__name__}: {exc}"[:2000]})
            raise
        runs.finish_run(con, run_id, utc_now(), runs.COMPLETED_WITH_FAILURES if report.failed else runs.COMPLETED,
                        report.summary())
    for snapshot_id, error in sorted(report.failed.items()):
        print(f"snapshot {snapshot_id[:12]} could not be parsed: {error}")
    span = f"{report.dates[0]} to {report.dates[-1]}" if report.dates else "no date"
    print(f"imported {report.rows} bodies ({report.new_snapshots} new, {len(report.failed)} unreadable); "
          f"fixed {len(report.dates)} date(s), {span}: {report.fixings_written} new fixing(s), "
          f"{report.published} file(s) published; `tsi site` rebuilds the site")
    return 0


def cmd_runs(args) -> int:
    from pipeline.readers import reading
    from pipeline.warehouse import sql

    warehouse = Warehouse.locate(args.warehouse)
    with reading(warehouse) as con:
        rows = con.execute(sql("select_runs"), {"limit": args.limit}).fetchall()
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["run_id", "flow", "started_at", "finished_at", "outcome", "detail"])
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    return 0


def cmd_sql(args) -> int:
    """Read-only SQL on the warehouse, also while a run writes it (pipeline/sql_command.py)."""
    from pipeline.sql_command import cmd_sql as run

    return run(args)


def cmd_chart(args) -> int:
    from pipeline.chart import cmd_chart as run

    return run(args)


def cmd_site(args) -> int:
    from pipeline.site import cmd_site as run

    return run(args)


def cmd_methodology(args) -> int:
    from pipeline.methodology import cmd_methodology as run

    return run(args)


def cmd_settle(args) -> int:
    from pipeline.settlement import cmd_settle as run

    return run(args)


def _at_least_one(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a whole number of at least 1: {text!r}")
    return int(text)


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
    p.add_argument("--unknown", action="store_true",
                   help="list instead the names refused as unknown_instrument in the warehouse, most frequent first")
    p.set_defaults(func=cmd_sources)

    p = commands.add_parser("parse", help="print, as CSV, the observations and rejections one raw body gives")
    p.add_argument("source", help="a source id (see `tsi sources`)")
    p.add_argument("file", help="a saved response body")
    p.add_argument("--provider", help="the provider, for bodies that do not name it (default: from the file name)")
    p.add_argument("--observed-at", type=_utc_time, help="when the body was fetched (ISO time with zone; default now)")
    p.add_argument("--fx", metavar="ECB_XML", help="an ECB rates file (eurofxref-*.xml) to convert non-USD prices with")
    p.set_defaults(func=cmd_parse)

    p = commands.add_parser("daily", help="collect live from every source, then fix and publish one date")
    p.add_argument("--date", type=_date, help="fixing date (default: today, UTC)")
    p.add_argument("--sources", nargs="+", help="only these source ids")
    p.set_defaults(func=cmd_daily)

    p = commands.add_parser("fixings", help="print the fixings in the warehouse")
    p.add_argument("--date", type=_date, help="only this fixing date")
    p.add_argument("--as-of", type=_utc_time,
                   help="as known at this moment (ISO time with zone): the newest revision computed by then")
    p.set_defaults(func=cmd_fixings)

    p = commands.add_parser("explain", help="print what one fixing rests on: providers, exclusions, rung, hash")
    p.add_argument("index", help="an index id, e.g. TSI-H100-SXM-OD")
    p.add_argument("date", type=_date, help="the fixing date")
    p.add_argument("--as-of", type=_utc_time, help="the revision that stood at this moment (ISO time with zone)")
    p.add_argument("--revision", type=int, help="this revision")
    p.set_defaults(func=cmd_explain)

    p = commands.add_parser("verify", help="recompute published fixings from the raw store alone and check the "
                                           "published files; exit 1 on a difference (no date: every published date)")
    p.add_argument("--date", type=_date, help="one fixing date")
    p.add_argument("--from", dest="first", type=_date, help="first fixing date of a range")
    p.add_argument("--to", dest="last", type=_date, help="last fixing date of a range (default: --from)")
    p.set_defaults(func=cmd_verify)

    p = commands.add_parser("fix", help="compute fixings from a CSV of observations, without the warehouse; "
                                        "print them as CSV")
    p.add_argument("--observations", required=True, help="CSV: date or observed_at, provider, instrument, region, "
                                                         "price_type, usd_price[, gpu_count, segment, instrument_kind]")
    p.add_argument("--definitions", help="index definitions TOML (default: pipeline/indices.toml)")
    p.add_argument("--date", type=_date, help="only this fixing date")
    p.add_argument("--from", dest="first", type=_date, help="first fixing date (default: the first observation's)")
    p.add_argument("--to", dest="last", type=_date, help="last fixing date (default: the last observation's)")
    p.set_defaults(func=cmd_fix)

    p = commands.add_parser("serve", help="serve the scheduled deployments (collect, daily, backfill) on a Prefect "
                                          "server (PREFECT_API_URL) until interrupted")
    p.add_argument("--limit", type=_at_least_one, default=2, help="flow runs at a time (default 2)")
    p.set_defaults(func=cmd_serve)

    p = commands.add_parser("backfill", help="fix and publish every date of a range from the warehouse (no fetching)")
    p.add_argument("--from", dest="first", type=_date, required=True, help="first fixing date")
    p.add_argument("--to", dest="last", type=_date, required=True, help="last fixing date (inclusive)")
    p.set_defaults(func=cmd_backfill)

    p = commands.add_parser("import", help="import dated price records listed in FOLDER/manifest.csv, then fix and "
                                          "publish every date they reach")
    p.add_argument("folder", help="the folder of bodies; its manifest.csv lists path,source,observed_at[,provider,url]")
    p.add_argument("--manifest", help="a manifest elsewhere (paths in it stay relative to FOLDER)")
    p.add_argument("--valid-days", type=_at_least_one, default=31,
                   help="how many days after its date an imported price list may count at most (default 31)")
    p.set_defaults(func=cmd_import)

    p = commands.add_parser("runs", help="print the newest flow runs recorded in the warehouse, as CSV")
    p.add_argument("--limit", type=_at_least_one, default=20, help="how many (default 20)")
    p.set_defaults(func=cmd_runs)

    p = commands.add_parser("sql", help="run read-only SQL on the warehouse (also while a run writes it) and print "
                                        "the last statement's result")
    p.add_argument("query", help="one or more read statements (SELECT, WITH, FROM, DESCRIBE, SHOW, SUMMARIZE); "
                                 "- reads them from stdin")
    p.add_argument("--format", choices=("table", "csv", "json"), default="table",
                   help="table (default: aligned columns), csv (safe for spreadsheets) or json (an array of "
                        "objects, DECIMAL as exact strings)")
    p.set_defaults(func=cmd_sql)

    p = commands.add_parser("chart", help="draw the history of one or more indices as a PNG and an SVG")
    p.add_argument("index", nargs="+", help="index ids; several share one picture (same unit)")
    p.add_argument("--from", dest="first", type=_date, help="first fixing date (default: the first fixed)")
    p.add_argument("--to", dest="last", type=_date, help="last fixing date (default: the last fixed)")
    p.add_argument("--out", help="the PNG to write; the SVG goes beside it (default: published/charts/<index>.png)")
    p.set_defaults(func=cmd_chart)

    p = commands.add_parser("site", help="write the static site (published/site/): latest fixings, one page per index")
    p.add_argument("--out", help="the folder to write (default: <warehouse>/published/site)")
    p.set_defaults(func=cmd_site)

    p = commands.add_parser("methodology", help="print each index's definition in words, from pipeline/indices.toml")
    p.add_argument("index", nargs="?", help="only this index id")
    p.set_defaults(func=cmd_methodology)

    p = commands.add_parser("settle", help="the final settlement price of a contract month (pipeline/contracts.toml)")
    p.add_argument("contract", help="a contract id of pipeline/contracts.toml")
    p.add_argument("month", help="the contract month, YYYY-MM")
    p.add_argument("--indicative", action="store_true",
                   help="mid-month: the average so far, said not to be final (nothing recorded or published)")
    p.add_argument("--format", choices=("text", "csv", "json"), default="text", help="output format (default text)")
    p.add_argument("--influence", action="store_true",
                   help="also print what could move it: the settlement without each provider, and the cheapest "
                        "one-provider move by a tick")
    p.set_defaults(func=cmd_settle)
    return parser


def main(argv: list[str] | None = None) -> int:
    import duckdb

    from pipeline.rawstore import RawStoreError
    from pipeline.records import ParseError
    from pipeline.warehouse import MigrationError, WarehouseError, explain_database_error

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:
        # The reader went away (`tsi parse ... | head`): not an error worth a message.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"tsi {args.command}: interrupted", file=sys.stderr)
        return 130
    except (OSError, ValueError, KeyError, ParseError, WarehouseError, MigrationError, RawStoreError,
            duckdb.Error) as exc:
        # Bad input, or a warehouse that cannot be read, gets a sentence, not a traceback (TSI_DEBUG=1 shows it).
        if os.environ.get("TSI_DEBUG"):
            raise
        if isinstance(exc, duckdb.Error):  # damaged inside, or locked: the file is named, DuckDB's text kept short
            message = explain_database_error(Warehouse.locate(args.warehouse).db_path, exc)
        else:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"tsi {args.command}: {_one_line(message)}", file=sys.stderr)
        return 2
    except Exception as exc:  # noqa: BLE001 - a bug still gets one line and a way to see more
        if os.environ.get("TSI_DEBUG"):
            raise
        print(f"tsi {args.command}: unexpected error ({type(exc).__name__}: {_one_line(exc)}); "
              "TSI_DEBUG=1 shows the traceback", file=sys.stderr)
        return 3


def _one_line(message: object, limit: int = 1000) -> str:
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[:limit] + "..."


if __name__ == "__main__":
    sys.exit(main())
