"""The fix and publish flows: one date's fixings (every index, one transaction) and its published file.

Both are thin: `pipeline.fixing.fix_date` computes and writes the fixings of a date in one transaction (a
crash leaves none of them), `pipeline.publish.publish_date` writes the file beside its final name and renames
it (a crash leaves no half-written file). Running either again for the same date adds nothing.
"""
from __future__ import annotations

from datetime import date

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from flows.common import recorded_run
from pipeline import definitions, fixing, load, publish, report, runs
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
def publish_flow(fixing_date: date, warehouse: str | None = None) -> dict:
    """Publish the newest revision of `fixing_date`'s fixings as one immutable, checksummed CSV."""
    logger = get_run_logger()
    wh = Warehouse.locate(warehouse)
    with recorded_run(wh, {"fixing_date": fixing_date, "warehouse": str(wh.root)}) as run:
        with open_writer(wh) as con:
            publication = publish.publish_date(con, wh, fixing_date)
        summary = {
            "fixing_date": fixing_date.isoformat(),
            "published": str(publication.path) if publication else None,
            "sha256": publication.sha256 if publication else None,
            "new": bool(publication and publication.new),
        }
        run.detail.update(summary)
    logger.info("%s: published %s%s", fixing_date, summary["published"] or "nothing",
                "" if summary["new"] else " (unchanged)")
    return summary
