"""Records of flow runs in the warehouse's `runs` table: one row per run, written when it starts and
completed when it ends, so a row still 'running' long after its start is a run that died.

Outcomes: running, completed, completed_with_failures (some sources or snapshots failed; the run still did
its job on the others), failed (the run itself raised).
"""
from __future__ import annotations

import json
from datetime import datetime

import duckdb

from pipeline.warehouse import naive_utc, sql, transaction

RUNNING = "running"
COMPLETED = "completed"
COMPLETED_WITH_FAILURES = "completed_with_failures"
FAILED = "failed"
OUTCOMES = (RUNNING, COMPLETED, COMPLETED_WITH_FAILURES, FAILED)


def detail_json(detail: dict) -> str:
    # Decimals, dates and paths become their text: exact, and readable by anyone's JSON parser.
    return json.dumps(detail, sort_keys=True, separators=(",", ":"), default=str)


def start_run(con: duckdb.DuckDBPyConnection, run_id: str, flow: str, started_at: datetime, detail: dict) -> None:
    with transaction(con):
        con.execute(sql("delete_run"), {"run_id": run_id})
        con.execute(
            sql("insert_run"),
            {"run_id": run_id, "flow": flow, "started_at": naive_utc(started_at), "detail": detail_json(detail)},
        )


def finish_run(con: duckdb.DuckDBPyConnection, run_id: str, finished_at: datetime, outcome: str, detail: dict) -> None:
    if outcome not in OUTCOMES[1:]:
        raise ValueError(f"unknown run outcome {outcome!r}")
    con.execute(
        sql("update_run"),
        {"run_id": run_id, "finished_at": naive_utc(finished_at), "outcome": outcome, "detail": detail_json(detail)},
    )
