"""The import flow: dated public price records (a folder and its manifest) into the warehouse, then fixed and
published for every date they reach (pipeline/importer.py does the work; `tsi import` runs the same function
with a progress bar). Run by hand or by a deployment (`import/import`, no schedule)."""
from __future__ import annotations

from pathlib import Path

from prefect import flow, get_run_logger

from flows.common import recorded_run
from flows.fix import site_flow
from pipeline import importer, runs
from pipeline.definitions import load_definitions
from pipeline.paths import Warehouse
from pipeline.writer import open_writer


@flow(name="import")
def import_flow(folder: str, manifest: str | None = None, warehouse: str | None = None,
                valid_days: int = importer.DEFAULT_VALID_DAYS) -> dict:
    """Import FOLDER's bodies listed in its manifest.csv (or `manifest`); a bad manifest fails the run before
    anything is written; a body that does not parse is reported and the rest goes on."""
    logger = get_run_logger()
    wh = Warehouse.locate(warehouse)
    rows = importer.read_manifest(Path(folder), Path(manifest) if manifest else None)
    parameters = {"folder": folder, "manifest": manifest, "warehouse": str(wh.root), "valid_days": valid_days}
    with recorded_run(wh, parameters) as run:
        with open_writer(wh) as con:
            report = importer.import_folder(con, wh, rows, load_definitions(), valid_days)
        for snapshot_id, error in report.failed.items():
            logger.error("snapshot %s could not be parsed: %s", snapshot_id, error)
        run.detail.update(report.summary())
        run.outcome = runs.COMPLETED_WITH_FAILURES if report.failed else runs.COMPLETED
    logger.info("imported %d bodies (%d new); fixed %d dates, %d new fixings, %d files published",
                report.rows, report.new_snapshots, len(report.dates), report.fixings_written, report.published)
    site_flow(str(wh.root))
    return report.summary()
