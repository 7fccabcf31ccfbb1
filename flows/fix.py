"""The fix and publish flows: one date's fixings (every index, one transaction) and its published file.

Both are thin: `pipeline.fixing.fix_date` computes and writes the fixings of a date in one transaction (a
crash leaves none of them), `pipeline.publish.publish_date` writes the file beside its final name and renames
it (a crash leaves no half-written file), then `pipeline.history.publish_history` rewrites the cumulative
history, the revisions log and the manifest beside it. Running either again for the same date adds nothing.
"""
from __future__ import annotations

from datetime import date

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from flows.common import recorded_run
from pipeline import definitions, fixing, history, load, publish, readers, report, runs, site
from pipeline.paths import Warehouse
from pipeline.rawstore import RawStore
from pipeline.writer import open_writer


@flow(name="fix")
def fix_flow(fixing_date: date, warehouse: str | None = None) -> dict:
    """Parse anything collected but not parsed yet, then fix every index for `fixing_date`."""
    logger = get_run_logger()
    wh = Warehouse.locate(warehouse)
    with recorded_run(wh, {"fixing_date": fixing_date, "warehouse": str(wh.root)}) as run:
        with open_writer(wh) as con:
            loaded = load.parse_pending(con, RawStore(wh.root))
            results = fixing.fix_date(con, definitions.load_definitions(), fixing_date)
        for snapshot_id, error in loaded.failed.items():
            logger.error("snapshot %s could not be parsed: %s", snapshot_id, error)
        table = report.fixings_table(results)
        n_final = sum(f.status == fixing.FINAL for f in results)
        n_new = sum(bool(f.written) for f in results)
        create_table_artifact(
            table,
            key="fixings",
            description=f"Fixings of {fixing_date.isoformat()}: {len(results)} indices, {n_final} final, "
                        f"{n_new} new revisions",
        )
        run.detail.update({"fixing_date": fixing_date, "fixings": len(results), "final": n_final, "new": n_new,
                           "parse_failures": loaded.failed})
        run.outcome = runs.COMPLETED if not loaded.failed else runs.COMPLETED_WITH_FAILURES
    logger.info("%s: %d fixings (%d final, %d new)", fixing_date, len(results), n_final, n_new)
    return {"fixing_date": fixing_date.isoformat(), "fixings": len(results), "final": n_final, "new": n_new,
            "parse_failures": loaded.failed}


@flow(name="publish")
def publish_flow(fixing_date: date, warehouse: str | None = None, cumulative_files: bool = True) -> dict:
    """Publish the newest revision of `fixing_date`'s fixings as one immutable, checksummed CSV, then (unless
    `cumulative_files` is false: a backfill writes them once, after its last date) the cumulative history files
    and the manifest of everything published (published/v1/history/, manifest.json)."""
    logger = get_run_logger()
    wh = Warehouse.locate(warehouse)
    with recorded_run(wh, {"fixing_date": fixing_date, "warehouse": str(wh.root)}) as run:
        with open_writer(wh) as con:
            publication = publish.publish_date(con, wh, fixing_date)
            cumulative = history.publish_history(con, wh) if cumulative_files else None
        summary = {
            "fixing_date": fixing_date.isoformat(),
            "published": str(publication.path) if publication else None,
            "sha256": publication.sha256 if publication else None,
            "new": bool(publication and publication.new),
            "manifest_sha256": cumulative.manifest_sha256 if cumulative else None,
            "history_written": cumulative.written if cumulative else [],
        }
        run.detail.update(summary)
    logger.info("%s: published %s%s", fixing_date, summary["published"] or "nothing",
                "" if summary["new"] else " (unchanged)")
    return summary


@flow(name="site")
def site_flow(warehouse: str | None = None) -> dict:
    """After a publication: the cumulative files and manifest brought up to date (nothing rewritten when they
    already are), then the static site rebuilt from them (pipeline/site.py; charts whose inputs did not change
    are reused). The site is read through the reader (the live file, or the copy the writer just published),
    so its build of some seconds never holds the writer. A site that cannot be built is reported and the run
    completes with failures: the published CSVs are the product, the site a view of them."""
    logger = get_run_logger()
    wh = Warehouse.locate(warehouse)
    with recorded_run(wh, {"warehouse": str(wh.root)}) as run:
        with open_writer(wh) as con:
            history.publish_history(con, wh)
        try:
            with readers.reading(wh) as con:
                built = site.build(con, wh)
        except Exception as exc:  # noqa: BLE001 - a view of the publication must not undo it
            logger.error("the site could not be built: %s: %s", type(exc).__name__, exc)
            run.detail["site_error"] = f"{type(exc).__name__}: {exc}"[:2000]
            run.outcome = runs.COMPLETED_WITH_FAILURES
            return {"site": None, "error": run.detail["site_error"]}
        summary = {"site": str(built.path), "pages": built.pages, "charts_drawn": len(built.charts_drawn),
                   "charts_reused": len(built.charts_reused), "seconds": round(built.seconds, 1)}
        run.detail.update(summary)
    logger.info("site: %d pages in %s (%d charts drawn, %d reused)", built.pages, built.path,
                len(built.charts_drawn), len(built.charts_reused))
    return summary
