"""The daily refresh: after each weekday's close, re-materialise the month in progress of each universe."""


import datetime as dt

import dagster as dg

from quantlab_assets.defs.jobs import main_job
from quantlab_assets.defs.partitions import bars_key, month_partitions

# Universes refreshed every day. Packaged static data (sp500_sample) never changes, so it is not listed.
DAILY_UNIVERSES = ("synthetic",)


def refresh_requests(scheduled: dt.datetime, universes: tuple[str, ...] = DAILY_UNIVERSES) -> list[dg.RunRequest]:
    """One run per universe for the month containing `scheduled` (the newest, possibly incomplete, month)."""
    month = month_partitions.get_partition_key_for_timestamp(scheduled.timestamp())
    return [
        dg.RunRequest(run_key=f"{month}|{name}|{scheduled.date()}", partition_key=bars_key(month, name))
        for name in universes
    ]


@dg.schedule(job=main_job, cron_schedule="30 22 * * 1-5", execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.STOPPED)
def daily_refresh_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
    """Weekdays 22:30 UTC (after the US close): refresh the current month of each daily universe."""
    return refresh_requests(context.scheduled_execution_time)
