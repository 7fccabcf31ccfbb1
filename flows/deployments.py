"""The scheduled deployments, served by one long-running process: `tsi serve` (or `python -m flows.deployments`).

- `collect/collect`: every enabled source, on the cron schedules of pipeline/schedule.py (UTC).
- `daily/daily`: the day's fixing and publication at 16:05 UTC (the schedule passes collect=false: a
  collection after the 16:00 fixing time would fall outside the day's window; the 15:45 collection is the
  last one that counts). Run by hand (`prefect deployment run daily/daily`) it collects first.
- `backfill/backfill`: no schedule; fix and publish a date range on demand.
- `import/import`: no schedule; import a folder of dated price records (`folder`, and `manifest` if it lies
  elsewhere), then fix and publish the dates they reach.

`serve()` runs each flow run in a subprocess of this process and needs a Prefect server that keeps schedules
(`prefect server start`; set PREFECT_API_URL). The same deployments for a process work pool and its workers
are in prefect.yaml.
"""
from __future__ import annotations

from prefect import serve
from prefect.schedules import Cron
from prefect.settings import get_current_settings

from flows.collect import collect_flow
from flows.daily import backfill_flow, daily_flow
from flows.importing import import_flow
from pipeline import schedule

TAGS = ["tsi"]


def build_deployments(warehouse: str | None = None) -> list:
    """The RunnerDeployments to serve; `warehouse` (a folder) becomes every deployment's default parameter."""
    defaults = {"warehouse": warehouse} if warehouse else {}
    collect = collect_flow.to_deployment(
        name="collect",
        schedules=[Cron(cron, timezone=schedule.TIMEZONE) for cron in schedule.COLLECT_CRONS],
        parameters=defaults,
        concurrency_limit=1,  # a collection still retrying when the next is due: the next one waits
        tags=TAGS,
    )
    daily = daily_flow.to_deployment(
        name="daily",
        schedules=[Cron(schedule.DAILY_CRON, timezone=schedule.TIMEZONE, parameters={"collect": False})],
        parameters=defaults,
        concurrency_limit=1,
        tags=TAGS,
    )
    backfill = backfill_flow.to_deployment(name="backfill", parameters=defaults, tags=TAGS)
    imports = import_flow.to_deployment(name="import", parameters=defaults, tags=TAGS)
    return [collect, daily, backfill, imports]


def serve_deployments(warehouse: str | None = None, limit: int = 2) -> None:
    """Register the deployments and run their flow runs until interrupted. Schedules stay active when this
    process stops (pause_on_shutdown=False): a restart picks up where it left, and runs missed while it was
    down show as Late in the UI rather than silently paused."""
    if not get_current_settings().api.url:
        # Without it Prefect would start a temporary server, which keeps no schedules.
        raise ValueError("PREFECT_API_URL is not set: schedules need a running `prefect server start` "
                         "(see README, Operations)")
    serve(*build_deployments(warehouse), pause_on_shutdown=False, limit=limit)


if __name__ == "__main__":
    serve_deployments()
