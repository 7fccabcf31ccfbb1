"""When the runs happen: the collection and fixing schedules (cron, UTC) and the dates a run covers.

Kept here, as data, so that `flows/deployments.py` (serve) and `prefect.yaml` (work pool) say the same thing;
a test checks that they do.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

TIMEZONE = "UTC"
# Collections every six hours, the last one of each fixing window 15 minutes before the 16:00 fixing time, so
# that its retries (at most a few minutes) still land inside the window.
COLLECT_CRONS = ("45 3,9,15,21 * * *",)
# The daily fixing five minutes after the fixing time: every collection of the window has been recorded.
DAILY_CRON = "5 16 * * *"
MAX_BACKFILL_DAYS = 3660  # ten years: a typo in a year should not start a century of runs


def fixing_date_for(scheduled_start: datetime | None) -> date:
    """The fixing date of a run: the UTC date it was scheduled for (a run that starts late, after midnight,
    still fixes the day it was meant for); now, for an unscheduled run."""
    moment = scheduled_start or datetime.now(timezone.utc)
    if moment.tzinfo is None:
        raise ValueError(f"{moment!r} has no time zone")
    return moment.astimezone(timezone.utc).date()


def dates_between(first: date, last: date) -> list[date]:
    """Every date from `first` to `last`, both included."""
    if last < first:
        raise ValueError(f"the range ends ({last}) before it starts ({first})")
    days = (last - first).days + 1
    if days > MAX_BACKFILL_DAYS:
        raise ValueError(f"{days} days is more than {MAX_BACKFILL_DAYS}; split the backfill")
    return [first + timedelta(days=i) for i in range(days)]
