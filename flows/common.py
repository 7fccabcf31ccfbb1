"""What every flow shares: the run record in the warehouse and the rule for which failures are retried."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from uuid import uuid4

from prefect import get_run_logger
from prefect.runtime import flow_run

from pipeline import runs
from pipeline.http import FetchError, utc_now
from pipeline.paths import Warehouse
from pipeline.writer import open_writer


def retry_transient_only(task, task_run, state) -> bool:
    """Retry timeouts, 429 and 5xx (FetchError.transient); a 404, an oversized body or a bug will not improve
    by asking again."""
    try:
        state.result()
    except FetchError as exc:
        return exc.transient
    except Exception:
        return False
    return False


@dataclass
class RunRecord:
    """Filled in by the flow while it runs; written to the `runs` table when it ends."""

    detail: dict = field(default_factory=dict)
    outcome: str = runs.COMPLETED


@contextmanager
def recorded_run(warehouse: Warehouse, parameters: dict) -> Iterator[RunRecord]:
    """A `runs` row for this Prefect flow run: written 'running' at the start, then completed or failed.

    The row is written through a short-lived writer, never held while the flow's body runs: the body opens
    the writer itself, and a subflow must be able to open it too."""
    run_id = str(flow_run.id or uuid4())
    name = flow_run.flow_name or "unknown"
    record = RunRecord(detail={"parameters": parameters})
    with open_writer(warehouse) as con:
        runs.start_run(con, run_id, name, utc_now(), record.detail)
    try:
        yield record
    except BaseException as exc:
        record.detail["error"] = f"{type(exc).__name__}: {exc}"[:2000]
        try:
            with open_writer(warehouse) as con:
                runs.finish_run(con, run_id, utc_now(), runs.FAILED, record.detail)
        except Exception as record_exc:  # the run's own error matters more than its record's
            get_run_logger().error("could not record the failed run %s: %s", run_id, record_exc)
        raise
    with open_writer(warehouse) as con:
        runs.finish_run(con, run_id, utc_now(), record.outcome, record.detail)
